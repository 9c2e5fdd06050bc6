"""The session layer: one interface for everything the CLI does with sessions.

``session_service(env)`` is the only way the CLI reaches sessions.  It returns a
:class:`SessionService`; which one depends on what runs on the machine, never on the
caller:

* :class:`DaemonSessionService` when iscsikit's daemon socket
  (``<paths.run_dir>/iscsikitd.sock``) exists: the daemon (iscsikitd) owns the
  sessions and answers over its versioned JSON unix-socket IPC (docs/ipc.md); a socket
  nobody answers on gives "could not connect to iscsid" (20), as iscsiadm does.
* :class:`SysfsSessionService` otherwise: kernel sessions read from
  ``<root>/sys`` (:mod:`iscsikit.sysfs`), rescans written to sysfs; login, logout and
  statistics need a daemon and fail as iscsiadm fails without iscsid (exit 20).

A kernel netlink driver plugs in the same way: another :class:`SessionService`.
:class:`SessionInfo` carries everything the iscsiadm output formats print, so no mode
reads sysfs for a session itself.  The library never prints; the CLI does.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from iscsikit.errors import IscsiErr, IscsiError
from iscsikit.ipc.client import DaemonCommError, DaemonNotRunningError

if TYPE_CHECKING:
    from iscsikit.config.paths import Paths
    from iscsikit.records import NodeRecord
    from iscsikit.sysfs import IscsiSession, SysfsContext

__all__ = [
    "DAEMON_SOCKET_NAME",
    "DaemonSessionService",
    "IscsidCommError",
    "IscsidNotConnectedError",
    "LunExport",
    "ScsiLun",
    "STATS_KEYS",
    "SessionInfo",
    "SessionService",
    "SysfsSessionService",
    "grouped",
    "login_each",
    "session_from_sysfs",
    "session_service",
]

#: ``struct iscsi_stats`` counters, in the order iscsiadm prints them.
STATS_KEYS = (
    "txdata_octets", "rxdata_octets", "noptx_pdus", "scsicmd_pdus", "tmfcmd_pdus",
    "login_pdus", "text_pdus", "dataout_pdus", "logout_pdus", "snack_pdus", "noprx_pdus",
    "scsirsp_pdus", "tmfrsp_pdus", "textrsp_pdus", "datain_pdus", "logoutrsp_pdus",
    "r2t_pdus", "async_pdus", "rjt_pdus", "digest_err", "timeout_err",
)  # fmt: skip
#: The daemon's socket, under ``Paths.run_dir``.
DAEMON_SOCKET_NAME = "iscsikitd.sock"
#: iscsiadm's "iSCSI Connection State" / "Internal iscsid Session State" without a daemon.
UNKNOWN_STATE = "Unknown"


# The IPC client's errors, under the names the session layer has always used.
IscsidNotConnectedError = DaemonNotRunningError
IscsidCommError = DaemonCommError


@dataclass(frozen=True, slots=True)
class ScsiLun:
    """A SCSI device of a session: ``scsiH Channel CC Id T Lun: L`` and its disk."""

    host_no: int
    channel: int
    target: int
    lun: int
    disk: str | None = None
    state: str | None = None
    #: The dm-multipath map holding the disk (``mpatha``, ``dm-0``) and the disk's state
    #: as its path (``active`` / ``failed``) and its priority group's (``active`` /
    #: ``enabled`` / ``disabled``); ``unknown`` when the device-mapper cannot be asked.
    multipath: str | None = None
    multipath_dm: str | None = None
    path_state: str | None = None
    path_group: str | None = None


@dataclass(frozen=True, slots=True)
class LunExport:
    """A LUN of a userspace session, served over NBD by the daemon at ``socket``."""

    lun: int
    socket: str
    #: Bytes, and the logical block size the LUN reports.
    size: int = 0
    block_size: int = 512
    #: The daemon's multipath export this LUN is a path of (its socket), the path's
    #: state there (``active`` / ``standby`` / ``failed``, :class:`~iscsikit.lun.pathset.
    #: PathInfo`) and its ALUA state (None: the LU reports no ALUA).
    multipath: str | None = None
    path_state: str | None = None
    path_alua: str | None = None

    @property
    def uri(self) -> str:
        """The NBD URI clients (qemu, nbdcopy, nbd-client) use."""
        return f"nbd+unix:///?socket={self.socket}"


@dataclass(frozen=True)
class SessionInfo:
    """One session, with what ``iscsiadm -m session -P 0..3`` prints.

    The first block of fields is docs/cli-contract.md's; the ones after ``timeouts``
    (all defaulted) carry the rest of iscsiadm's display.  ``params`` uses the RFC 7143
    key names with iscsiadm's printed values (``HeaderDigest: CRC32C``, ``ImmediateData:
    Yes``); a key the session does not report is absent.  ``timeouts`` holds
    ``recovery_tmo``, ``tgt_reset_tmo``, ``lu_reset_tmo`` and ``abort_tmo`` as decimal
    strings (-1: unknown).
    """

    sid: int
    transport: str
    target: str
    address: str
    port: int
    tpgt: int
    persistent_address: str
    persistent_port: int
    iface: str
    initiator_name: str
    state: str
    conn_state: str
    internal_state: str
    host_no: int | None
    params: Mapping[str, str]
    username: str
    password: str
    username_in: str
    password_in: str
    timeouts: Mapping[str, str]
    #: The iface the session is bound to, as the kernel reports it ("default": unbound).
    iface_ipaddress: str = "default"
    iface_hwaddress: str = "default"
    iface_netdev: str = "default"
    #: Created by an HBA's firmware ("flash") rather than by an initiator daemon.
    flash: bool = False
    #: The SCSI host's state ("running") and the session's LUNs (``-P 3``).
    host_state: str = UNKNOWN_STATE
    devices: tuple[ScsiLun, ...] = field(default=())
    #: A userspace session's LUNs as the daemon exports them over NBD (``-P 3``).
    exports: tuple[LunExport, ...] = field(default=())

    def timeout(self, name: str) -> int:
        """A timeout as an int (-1 when unknown)."""
        try:
            return int(self.timeouts.get(name, "-1"))
        except ValueError:
            return -1


def grouped(sessions: Iterable[SessionInfo]) -> list[SessionInfo]:
    """open-iscsi's ``session_info_create_list`` order: each session goes after the last
    one with its target (and portal, when one has it too), else at the end.  Logouts
    and host mode's session blocks use it."""
    out: list[SessionInfo] = []
    for info in sessions:
        at = -1
        for i, cur in enumerate(out):
            if cur.target == info.target:
                at = i
                if (cur.address, cur.port) == (info.address, info.port):
                    break
        out.insert(at + 1 if at >= 0 else len(out), info)
    return out


class SessionService(Protocol):
    """What the CLI (and later the daemon's clients) can do with sessions."""

    def sessions(self) -> list[SessionInfo]:
        """Every session, in the order iscsiadm lists them."""
        ...

    def login(self, node: NodeRecord, *, wait: bool = True) -> SessionInfo | None:
        """Log in to ``node``; IscsiError (with iscsiadm's code) on failure.  Without
        ``wait`` the request is only sent (None: nothing is known yet)."""
        ...

    def logout(self, session: SessionInfo) -> None: ...

    def rescan(self, session: SessionInfo) -> None: ...

    def stats(self, session: SessionInfo) -> Mapping[str, int]:
        """``struct iscsi_stats`` counters by name, in iscsiadm's order."""
        ...


def login_each(
    service: SessionService, nodes: Sequence[NodeRecord], *, wait: bool = True
) -> Iterator[SessionInfo | IscsiError | None]:
    """Log in to every node; yield each outcome (the session, or the error) in order.

    A service that can run logins concurrently (the daemon's: iscsiadm sends every
    request before it waits for the first answer) offers ``login_many``; the others log
    in one after the other.
    """
    many = getattr(service, "login_many", None)
    if many is not None:
        yield from many(nodes, wait=wait)
        return
    for node in nodes:
        try:
            yield service.login(node, wait=wait)
        except IscsiError as exc:
            yield exc


class _HasPaths(Protocol):
    @property
    def paths(self) -> Paths: ...


def daemon_socket(paths: Paths) -> Path:
    return paths.run_dir / DAEMON_SOCKET_NAME


def session_service(env: _HasPaths) -> SessionService:
    """The session service for this machine (see the module docstring)."""
    from iscsikit.sysfs import SysfsContext

    sysfs = SysfsSessionService(SysfsContext.from_paths(env.paths), run_dir=env.paths.run_dir)
    sock = daemon_socket(env.paths)
    if sock.exists():
        return DaemonSessionService(sock, sysfs)
    return sysfs


# -- sysfs ----------------------------------------------------------------------------

_NO_DAEMON = (
    "could not connect to iscsid: iscsikitd is not running (no socket at {sock}); "
    "{what} needs the daemon"
)
_ISCSID_RUNNING = (
    "; open-iscsi's iscsid is running and its sessions are its own: use iscsiadm, or "
    "stop iscsid and start iscsikitd (which adopts the kernel sessions)"
)


def _yes_no(value: int) -> str:
    return "Yes" if value else "No"


def _digest(value: int) -> str:
    return "CRC32C" if value else "None"


#: (RFC key, object, kernel attribute, formatter), in iscsiadm's print order.
_PARAMS = (
    ("HeaderDigest", "conn", "header_digest", _digest),
    ("DataDigest", "conn", "data_digest", _digest),
    ("MaxRecvDataSegmentLength", "conn", "max_recv_dlength", str),
    ("MaxXmitDataSegmentLength", "conn", "max_xmit_dlength", str),
    ("FirstBurstLength", "session", "first_burst_len", str),
    ("MaxBurstLength", "session", "max_burst_len", str),
    ("ImmediateData", "session", "immediate_data", _yes_no),
    ("InitialR2T", "session", "initial_r2t", _yes_no),
    ("MaxOutstandingR2T", "session", "max_outstanding_r2t", str),
)
_TIMEOUTS = ("recovery_tmo", "tgt_reset_tmo", "lu_reset_tmo", "abort_tmo")


def _is_ipv6(address: str) -> bool:
    first = address.find(":")
    return first >= 0 and address.find(":", first + 1) > 0


def _luns(s: IscsiSession) -> tuple[ScsiLun, ...]:
    """The session's LUNs with their disks and, for a disk dm-multipath holds, its map
    and path state (each map's status read once)."""
    from iscsikit.sysfs.dm import multipath_of

    statuses: dict[str, str | None] = {}
    out: list[ScsiLun] = []
    for d in s.scsi_devices():
        block = d.block()
        path = multipath_of(block.path, block.devnum, statuses) if block else None
        if path is None:
            out.append(ScsiLun(*d.hctl, disk=d.block_device, state=d.state))
            continue
        out.append(
            ScsiLun(
                *d.hctl, disk=d.block_device, state=d.state, multipath=path.map_name,
                multipath_dm=path.dm, path_state=path.state, path_group=path.group_state,
            )
        )  # fmt: skip
    return tuple(out)


def session_from_sysfs(s: IscsiSession) -> SessionInfo | None:
    """A :class:`SessionInfo` from a kernel session, read as open-iscsi 2.1.8 reads it
    (libopeniscsiusr/session.c and iface.c); None if the session vanished meanwhile."""
    target = s.targetname
    if target is None:
        return None
    conn = s.connection()
    address = (conn.address if conn else None) or ""
    persistent = (conn.persistent_address if conn else None) or ""
    port = conn.port if conn else None
    pport = conn.persistent_port if conn else None
    # Each of current / persistent stands in for the other when missing (iser, qla4xxx).
    address, persistent = address or persistent, persistent or address
    port = port if port is not None else pport
    pport = pport if pport is not None else port
    host = s.host()
    transport = (host.transport_name if host else None) or ""
    hwaddress = (host.hwaddress if host else None) or "default"
    netdev = (host.netdev if host else None) or "default"
    ipaddress = (host.ipaddress if host else None) or "default"
    iname = s.initiatorname or (host.initiatorname if host else None) or ""
    iface = s.ifacename or ""
    if hwaddress != "default":
        # Offload binding: libopeniscsiusr names the iface <transport>.<mac>.<ipv4|ipv6>.0
        family = "ipv6" if _is_ipv6(ipaddress) else "ipv4"
        iface = f"{transport}.{hwaddress}.{family}.0"
    objects = {"session": s, "conn": conn}
    params: dict[str, str] = {}
    for key, where, attr, fmt in _PARAMS:
        obj = objects[where]
        value = obj.attr_int(attr) if obj is not None else None
        if value is not None and value != -1:
            params[key] = fmt(value)
    timeouts = {name: str(s.attr_int(name, -1)) for name in _TIMEOUTS}
    luns = _luns(s)
    return SessionInfo(
        sid=s.sid,
        transport=transport,
        target=target,
        address=address,
        port=port if port is not None else -1,
        tpgt=s.tpgt if s.tpgt is not None else -1,
        persistent_address=persistent,
        persistent_port=pport if pport is not None else -1,
        iface=iface or "default",
        initiator_name=iname,
        state=s.state or UNKNOWN_STATE,
        conn_state=UNKNOWN_STATE,
        internal_state=UNKNOWN_STATE,
        host_no=s.host_no,
        params=params,
        username=s.attr("username") or "",
        password=s.attr("password") or "",
        username_in=s.attr("username_in") or "",
        password_in=s.attr("password_in") or "",
        timeouts=timeouts,
        iface_ipaddress=ipaddress,
        iface_hwaddress=hwaddress,
        iface_netdev=netdev,
        flash=s.is_flash,
        host_state=(host.state if host else None) or UNKNOWN_STATE,
        devices=luns,
    )


class SysfsSessionService:
    """Kernel sessions from sysfs; no daemon, so no login, logout or statistics."""

    def __init__(self, sysfs: SysfsContext, *, run_dir: Path | None = None) -> None:
        self.sysfs = sysfs
        self._sock = (run_dir or sysfs.root / "run/iscsikit") / DAEMON_SOCKET_NAME

    def sessions(self) -> list[SessionInfo]:
        out = []
        for s in self.sysfs.sessions():
            info = session_from_sysfs(s)
            if info is not None:  # raced with a logout: iscsiadm skips it too
                out.append(info)
        return out

    def _no_daemon(self, what: str) -> IscsidNotConnectedError:
        from iscsikit.ipc.iscsid import iscsid_running  # socket: not on the listing path

        message = _NO_DAEMON.format(sock=self._sock, what=what)
        if iscsid_running():
            message += _ISCSID_RUNNING
        return IscsidNotConnectedError(message)

    def login(self, node: NodeRecord, *, wait: bool = True) -> SessionInfo:
        raise self._no_daemon(f"login to {node.target}")

    def logout(self, session: SessionInfo) -> None:
        raise self._no_daemon(f"logout of session {session.sid}")

    def rescan(self, session: SessionInfo) -> None:
        found = self.sysfs.session(session.sid)
        if found is None:
            raise IscsiError(f"session {session.sid} is gone", code=IscsiErr.SYSFS_LOOKUP)
        found.rescan()

    def stats(self, session: SessionInfo) -> Mapping[str, int]:
        raise self._no_daemon(f"statistics of session {session.sid}")


def session_to_json(info: SessionInfo) -> dict[str, Any]:
    """A :class:`SessionInfo` as the daemon's IPC carries it (plain JSON types)."""
    return dataclasses.asdict(info)


def session_from_json(doc: Mapping[str, Any]) -> SessionInfo:
    """The inverse of :func:`session_to_json` (unknown fields are ignored, so a newer
    daemon's additions do not break an older client)."""
    values = _known(SessionInfo, doc)
    values["params"] = dict(values.get("params") or {})
    values["timeouts"] = dict(values.get("timeouts") or {})
    values["devices"] = tuple(ScsiLun(**_known(ScsiLun, d)) for d in values.get("devices") or ())
    values["exports"] = tuple(
        LunExport(**_known(LunExport, e)) for e in values.get("exports") or ()
    )
    return SessionInfo(**values)


def _known(cls: type[Any], doc: Mapping[str, Any]) -> dict[str, Any]:
    """The fields of ``doc`` the dataclass ``cls`` has (a newer daemon may send more)."""
    names = {f.name for f in dataclasses.fields(cls)}
    return {k: v for k, v in doc.items() if k in names}


class DaemonSessionService:
    """Sessions as iscsikitd owns them, over its IPC (:mod:`iscsikit.ipc`).

    A login waits as long as the daemon's login takes (iscsiadm waits for iscsid too);
    other calls are bounded by the client's timeout.  Kernel sessions the daemon does
    not own (made by open-iscsi, an HBA's firmware) are listed from sysfs as well.
    """

    def __init__(self, socket_path: Path, sysfs: SysfsSessionService | None = None) -> None:
        from iscsikit.ipc.client import DaemonClient

        self.socket_path = socket_path
        self._client = DaemonClient(socket_path)
        self._sysfs = sysfs
        self._owned: set[int] = set()

    def _call(self, op: str, *, timeout: float | None = None, **args: Any) -> Any:
        return self._client.request(op, args, timeout=timeout)

    def sessions(self) -> list[SessionInfo]:
        owned = [session_from_json(d) for d in self._call("sessions")]
        self._owned = {s.sid for s in owned}
        # The daemon's kernel sessions are in sysfs too: its entry (with the states
        # only the owner knows) replaces the sysfs one, in the kernel's order.
        mine = {s.sid: s for s in owned if s.host_no is not None}
        kernel = self._sysfs.sessions() if self._sysfs is not None else []
        listed = [mine.pop(k.sid, k) for k in kernel]
        return [*listed, *mine.values(), *(s for s in owned if s.host_no is None)]

    def login(self, node: NodeRecord, *, wait: bool = True) -> SessionInfo | None:
        doc = self._call("login", timeout=math.inf, node=dict(node.values), wait=wait)
        return session_from_json(doc) if doc is not None else None

    #: Logins in flight at once (each on its own connection to the daemon).
    MAX_CONCURRENT_LOGINS = 64

    def login_many(
        self, nodes: Sequence[NodeRecord], *, wait: bool = True
    ) -> Iterator[SessionInfo | IscsiError | None]:
        """Every login sent at once (one IPC connection each, as iscsiadm does), the
        outcomes yielded in request order."""
        if len(nodes) <= 1:
            for node in nodes:
                try:
                    yield self.login(node, wait=wait)
                except IscsiError as exc:
                    yield exc
            return
        from concurrent.futures import ThreadPoolExecutor

        from iscsikit.ipc.client import DaemonClient

        def one(node: NodeRecord) -> SessionInfo | IscsiError | None:
            try:
                with DaemonClient(self.socket_path) as client:
                    doc = client.request(
                        "login", {"node": dict(node.values), "wait": wait}, timeout=math.inf
                    )
                return session_from_json(doc) if doc is not None else None
            except IscsiError as exc:
                return exc

        workers = min(len(nodes), self.MAX_CONCURRENT_LOGINS)
        with ThreadPoolExecutor(workers, thread_name_prefix="login") as pool:
            yield from pool.map(one, nodes)

    def _is_kernel(self, session: SessionInfo) -> bool:
        """Whether ``session`` is a kernel session the daemon does not own (open-iscsi's,
        an HBA's): those are acted on through sysfs.  A sid this service has not seen
        listed (a session from an earlier listing, another process's login) is asked
        of the daemon."""
        if self._sysfs is None or session.host_no is None:
            return False
        if session.sid not in self._owned:
            self._owned = {int(d["sid"]) for d in self._call("sessions")}
        return session.sid not in self._owned

    def logout(self, session: SessionInfo) -> None:
        if self._is_kernel(session):
            assert self._sysfs is not None
            self._sysfs.logout(session)
            return
        self._call("logout", timeout=math.inf, sid=session.sid)

    def rescan(self, session: SessionInfo) -> None:
        if self._is_kernel(session):
            assert self._sysfs is not None
            self._sysfs.rescan(session)
            return
        self._call("rescan", timeout=math.inf, sid=session.sid)

    def stop_daemon(self) -> None:
        """``-k 0``: the daemon logs its sessions out and exits."""
        self._call("shutdown")

    def stats(self, session: SessionInfo) -> Mapping[str, int]:
        if self._is_kernel(session):
            assert self._sysfs is not None
            return self._sysfs.stats(session)
        counters = self._call("stats", sid=session.sid)
        return {k: int(counters.get(k, 0)) for k in STATS_KEYS}
