"""One kernel iscsi_tcp session, driven as iscsid drives it (open-iscsi-notes.md §1.5, §5).

Login (:meth:`KernelSession.login`)::

    CREATE_SESSION(initial CmdSN, cmds_max, queue_depth) -> sid, host_no
    CREATE_CONN(sid, 0)                                  -> cid
    connect + log in in userspace (iscsikit.net.run_login), detach the socket
    BIND_CONN(transport_eph = the socket's fd, is_leading = 1)
    SET_PARAM x N (params.session_params, then params.negotiated_params)
    START_CONN                                           -> the kernel scans LUNs

Where iscsid differs: it binds *before* logging in and sends the Login PDUs through the
kernel (SEND_PDU, answers as RECV_PDU events).  Logging in first on a plain socket and
binding afterwards gives the kernel the same connection in the same state (it never
reads the Login Responses; the CmdSN window it starts with comes from CREATE_SESSION and
opens with the first response), and reuses the login machine every transport uses.

The socket: iscsi_tcp's bind does ``sockfd_lookup(transport_eph)`` and keeps that file
reference until the connection is released (``sockfd_put`` in
``iscsi_sw_tcp_release_conn``), so our fd may be closed at any time after BIND_CONN.
iscsid keeps its fd until the connection is torn down (``iscsi_io_tcp_disconnect``
after STOP_CONN, with ``SO_LINGER`` 0 unless it is a clean logout); so does this module.

Logout (:meth:`KernelSession.logout`), as iscsid: UNBIND_SESSION (the kernel removes the
SCSI target and answers with an UNBIND_SESSION event), a Logout Request (close the
session) sent through the kernel with SEND_PDU (the kernel fills ITT, CmdSN and
ExpStatSN), its response awaited as a RECV_PDU event, then STOP_CONN(TERM),
DESTROY_CONN, DESTROY_SESSION.
"""

from __future__ import annotations

import contextlib
import socket
import struct
import subprocess
from pathlib import Path

from iscsikit import net
from iscsikit.errors import IscsiErr, TransportError
from iscsikit.netlink import KernelEvent, NetlinkRequestError, StopConnFlag
from iscsikit.netlink.events import (
    ConnCreated,
    ConnFailed,
    PduReceived,
    RequestDone,
    SessionCreated,
    SessionUnbound,
    StatsReceived,
)
from iscsikit.netlink.messages import (
    BindConn,
    CreateConn,
    CreateSession,
    DestroyConn,
    DestroySession,
    GetStats,
    Request,
    SendPdu,
    SetParam,
    StartConn,
    StopConn,
    UnbindSession,
)
from iscsikit.plugin import ConnectSpec
from iscsikit.proto.login import LoginAccepted, TargetRedirected

from .netlink import NetlinkChannel
from .params import KernelSettings, negotiated_params, session_params

__all__ = ["KernelSession", "KernelSettings", "transport_handle"]

#: RFC 7143 §11.14: Logout Request, immediate, Final, reason 0 (close the session).
_LOGOUT_BHS = struct.pack(">BB46x", 0x06 | 0x40, 0x80)
_LOGOUT_RESPONSE = 0x26


def transport_handle(name: str = "tcp", *, sysfs: Path = Path("/sys"), load: bool = True) -> int:
    """The kernel transport's handle (``class/iscsi_transport/<name>/handle``).

    Loads ``iscsi_<name>`` with modprobe first when the transport is absent and ``load``.
    """
    path = sysfs / "class" / "iscsi_transport" / name / "handle"
    if not path.exists() and load:
        subprocess.run(["modprobe", f"iscsi_{name}"], capture_output=True, check=False)
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        raise TransportError(
            f"the kernel offers no iSCSI transport {name!r} ({path})", code=IscsiErr.TRANS_NOT_FOUND
        ) from None


class KernelSession:
    """A session the kernel's iscsi_tcp carries; see the module docstring."""

    def __init__(
        self,
        channel: NetlinkChannel,
        handle: int,
        sid: int,
        host_no: int,
        cid: int,
        settings: KernelSettings,
    ) -> None:
        self.channel = channel
        self.handle = handle
        self.sid = sid
        self.host_no = host_no
        self.cid = cid
        self.settings = settings
        self.accepted: LoginAccepted | None = None
        #: Parameters the kernel does not implement (SET_PARAM answered -ENOSYS).
        self.unsupported: list[int] = []
        self.sock: socket.socket | None = None

    # -- life ------------------------------------------------------------------------------

    @classmethod
    def login(
        cls,
        spec: ConnectSpec,
        settings: KernelSettings | None = None,
        *,
        channel: NetlinkChannel | None = None,
        handle: int | None = None,
    ) -> KernelSession | TargetRedirected:
        """Create, log in, bind, set and start a session; a redirect is returned as is.

        On any failure what was created in the kernel is destroyed again.
        """
        settings = settings or KernelSettings()
        channel = channel or NetlinkChannel()
        handle = transport_handle() if handle is None else handle
        created = channel.request(
            CreateSession(
                transport_handle=handle,
                initial_cmdsn=spec.login.cmdsn,
                cmds_max=settings.cmds_max,
                queue_depth=settings.queue_depth,
            )
        )
        assert isinstance(created, SessionCreated)
        session = cls(channel, handle, created.sid, created.host_no, 0, settings)
        try:
            conn = channel.request(CreateConn(transport_handle=handle, sid=session.sid, cid=0))
            if not isinstance(conn, ConnCreated) or not conn.ok:
                raise TransportError(f"the kernel could not create a connection for {session.sid}")
            session.cid = conn.cid
            result = net.run_login(spec)
            if isinstance(result, TargetRedirected):
                session.destroy()
                return result
            session.start(spec, *result)
        except BaseException:
            session.destroy()
            raise
        return session

    def start(self, spec: ConnectSpec, conn: net.PduConnection, accepted: LoginAccepted) -> None:
        """Hand a logged-in connection to the kernel: bind, set parameters, start."""
        sock, buffered = conn.detach()
        self.sock = sock
        if buffered:
            # The target spoke before we did; the kernel cannot be given those bytes.
            raise TransportError(f"{len(buffered)} bytes from the target after login")
        sock.setblocking(True)
        self._checked(
            BindConn(
                transport_handle=self.handle,
                sid=self.sid,
                cid=self.cid,
                transport_eph=sock.fileno(),
                is_leading=1,
            )
        )
        for param, value in session_params(spec, self.settings) + negotiated_params(accepted):
            self.set_param(param, value)
        self._checked(StartConn(transport_handle=self.handle, sid=self.sid, cid=self.cid))
        self.accepted = accepted

    def scan(self, sysfs: Path = Path("/sys")) -> None:
        """Ask the SCSI host to scan every LUN, as iscsid does after START_CONN."""
        (sysfs / "class" / "scsi_host" / f"host{self.host_no}" / "scan").write_text("- - -")

    def set_param(self, param: int, value: str) -> None:
        """SET_PARAM; a parameter the kernel lacks (-ENOSYS) is noted, not fatal (iscsid)."""
        msg = SetParam(
            transport_handle=self.handle, sid=self.sid, cid=self.cid, param=param, value=value
        )
        try:
            self.channel.request(msg)
        except NetlinkRequestError as exc:
            if not exc.not_supported:
                raise
            self.unsupported.append(param)

    def stats(self) -> dict[str, int]:
        """GET_STATS: the connection's counters by ``STATS_FIELDS`` name (and custom ones)."""
        reply = self.channel.request(
            GetStats(transport_handle=self.handle, sid=self.sid, cid=self.cid)
        )
        assert isinstance(reply, StatsReceived)
        return dict(reply.counters)

    def wait_conn_error(self, timeout: float) -> ConnFailed | None:
        """The next CONN_ERROR event of this session, within ``timeout`` seconds."""
        event = self.channel.wait_event(self._mine(ConnFailed), timeout)
        assert event is None or isinstance(event, ConnFailed)
        return event

    def logout(self, timeout: float = 15.0) -> None:
        """Log out as iscsid does (module docstring), then destroy the session."""
        try:
            self._unbind(timeout)
            self.channel.request(
                SendPdu(transport_handle=self.handle, sid=self.sid, cid=self.cid, hdr=_LOGOUT_BHS)
            )
            self.channel.wait_event(
                lambda e: (
                    self._mine(PduReceived)(e)
                    and isinstance(e, PduReceived)
                    and e.pdu[0] & 0x3F == _LOGOUT_RESPONSE
                ),
                timeout,
            )
        finally:
            self.destroy(clean=True)

    def _unbind(self, timeout: float) -> None:
        try:
            self.channel.request(UnbindSession(transport_handle=self.handle, sid=self.sid))
        except NetlinkRequestError as exc:
            if exc.not_supported:
                return
            raise
        self.channel.wait_event(self._mine(SessionUnbound), timeout)

    def stop(self, flag: StopConnFlag = StopConnFlag.TERM) -> None:
        """STOP_CONN (TERM: for good; RECOVER: keep the session for a new connection)."""
        self.channel.request(
            StopConn(transport_handle=self.handle, sid=self.sid, cid=self.cid, flag=flag)
        )

    def destroy(self, *, clean: bool = False) -> None:
        """STOP_CONN(TERM), DESTROY_CONN, DESTROY_SESSION, close our fd; errors ignored."""
        steps: list[Request] = []
        if self.accepted is not None:
            steps.append(
                StopConn(
                    transport_handle=self.handle, sid=self.sid, cid=self.cid, flag=StopConnFlag.TERM
                )
            )
        steps += [
            DestroyConn(transport_handle=self.handle, sid=self.sid, cid=self.cid),
            DestroySession(transport_handle=self.handle, sid=self.sid),
        ]
        for step in steps:
            with contextlib.suppress(NetlinkRequestError, TransportError, OSError):
                self.channel.request(step)
        self.accepted = None
        self._close_socket(clean)

    def _close_socket(self, clean: bool) -> None:
        if self.sock is None:
            return
        if not clean:  # iscsid: an abortive close (RST) unless this is a clean logout
            with contextlib.suppress(OSError):
                self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.sock.close()
        self.sock = None

    # -- helpers ---------------------------------------------------------------------------

    def _checked(self, msg: Request) -> None:
        reply = self.channel.request(msg)
        if isinstance(reply, RequestDone) and reply.retcode != 0:
            raise TransportError(f"{msg.TYPE.name} of session {self.sid} returned {reply.retcode}")

    def _mine(self, kind: type[KernelEvent]) -> _Matcher:
        return _Matcher(kind, self.sid)


class _Matcher:
    """An event of ``kind`` about session ``sid``."""

    def __init__(self, kind: type[KernelEvent], sid: int) -> None:
        self.kind = kind
        self.sid = sid

    def __call__(self, event: KernelEvent) -> bool:
        return isinstance(event, self.kind) and getattr(event, "sid", None) == self.sid
