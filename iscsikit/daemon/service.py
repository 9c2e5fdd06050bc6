"""What iscsikitd does: the IPC operations over the session manager, start-up logins,
the NBD exports of userspace sessions, and an orderly stop.

:class:`Daemon` is the IPC handler (:mod:`iscsikit.daemon.server` calls
:meth:`Daemon.handle`).  Each operation is one coroutine in :data:`OPERATIONS`; the
manager's errors travel back with iscsiadm's exit codes.  The operations (docs/ipc.md):

=========  ==========================================  ==============================
op         args                                        result
=========  ==========================================  ==============================
hello      --                                          ``{version, protocol, pid}``
sessions   --                                          list of session objects
login      ``node`` (every record key), ``wait``       the session object
logout     ``sid``                                     null
rescan     ``sid``                                     the session object
stats      ``sid``                                     ``{counter: int}``
reload     --                                          null (iscsid.conf re-read)
shutdown   --                                          null (logs out, then exits)
=========  ==========================================  ==============================
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from iscsikit import __version__
from iscsikit.config.iscsid_conf import IscsidConf
from iscsikit.config.paths import Paths, read_iscsikit_conf
from iscsikit.daemon.devices import DeviceWatcher
from iscsikit.daemon.exports import Exports
from iscsikit.daemon.server import PeerCred
from iscsikit.errors import InvalidParameterError, IscsiErr, IscsiError
from iscsikit.ipc.iscsid import iscsid_running
from iscsikit.manager.connect import transport
from iscsikit.manager.failover import FailoverPreferences, failover_order
from iscsikit.manager.kernel_session import KernelManagedSession
from iscsikit.manager.managed import ManagedSession
from iscsikit.manager.node_login import node_settings
from iscsikit.manager.policy import State
from iscsikit.manager.service import SessionManager, driver_for, is_kernel_driver
from iscsikit.manager.sessions import (
    STATS_KEYS,
    SessionInfo,
    session_from_sysfs,
    session_to_json,
)
from iscsikit.proto.address import Portal, format_portal, parse_portal
from iscsikit.records.model import NodeRecord
from iscsikit.records.store import Records
from iscsikit.sysfs import SysfsContext

__all__ = ["OPERATIONS", "PROTOCOL_VERSION", "Daemon"]

log = logging.getLogger(__name__)

PROTOCOL_VERSION = 1
#: Seconds a stop waits for NBD clients to go when ``iscsid.safe_logout = Yes``.
SAFE_LOGOUT_GRACE = 30.0


def _sid(args: dict[str, Any]) -> int:
    sid = args.get("sid")
    if not isinstance(sid, int) or isinstance(sid, bool) or sid < 0:
        raise InvalidParameterError(f"invalid session id {sid!r}")
    return sid


class Daemon:
    """The daemon's state: configuration, records, sessions, exports."""

    def __init__(self, paths: Paths, conf_path: Path | None = None) -> None:
        self.paths = paths
        self.conf_path = conf_path or paths.iscsid_conf
        self.conf = IscsidConf.load(self.conf_path)
        self.records = Records.at(paths.db_root, lock_dir=paths.lock_dir)
        self.sysfs = SysfsContext.from_paths(paths)
        self.manager = SessionManager(on_change=self._changed, sysfs=self.sysfs)
        self.exports = Exports(paths.run_dir)
        self.stopping = asyncio.Event()
        self.devices: DeviceWatcher | None = None
        self._background: set[asyncio.Task[Any]] = set()

    # -- IPC ------------------------------------------------------------------------------

    async def handle(self, op: str, args: dict[str, Any], peer: PeerCred) -> Any:
        operation = OPERATIONS.get(op)
        if operation is None:  # the server refuses unknown ops first; belt and braces
            raise InvalidParameterError(f"unknown operation {op!r}")
        log.debug("%s from pid %d uid %d", op, peer.pid, peer.uid)
        return await operation(self, args)

    async def op_hello(self, args: dict[str, Any]) -> Any:
        return {"version": __version__, "protocol": PROTOCOL_VERSION, "pid": os.getpid()}

    def info(self, session: ManagedSession) -> SessionInfo:
        """What ``-m session`` shows of a session: the manager's view, with its NBD
        exports' multipath path states as they are now."""
        info = self.manager.info(session)
        exports = self.exports.current(session.sid)
        return dataclasses.replace(info, exports=exports) if exports else info

    async def op_sessions(self, args: dict[str, Any]) -> Any:
        return [session_to_json(self.info(s)) for s in self.manager.sessions()]

    async def op_login(self, args: dict[str, Any]) -> Any:
        node = _node(args.get("node"))
        if args.get("wait", True) is False:
            self._spawn(self.login(node))
            return None
        session = await self.login(node)
        return session_to_json(self.info(session))

    async def op_logout(self, args: dict[str, Any]) -> Any:
        sid = _sid(args)
        session = self.manager.get(sid)
        busy = self.exports.in_use(session)
        if busy and self.conf.safe_logout:
            # iscsid: "Session is actively in use for mounted storage, and
            # iscsid.safe_logout is configured" -> ISCSI_ERR_BUSY.
            raise IscsiError(
                f"session {sid} is in use: NBD client connected to {busy[0].socket} "
                "(iscsid.safe_logout = Yes)",
                code=IscsiErr.BUSY,
            )
        await self.exports.stop(session)
        await self.manager.logout(sid)
        return None

    async def op_rescan(self, args: dict[str, Any]) -> Any:
        session = self.manager.get(_sid(args))
        if isinstance(session, KernelManagedSession):
            found = self.sysfs.session(session.sid)
            if found is None:
                raise IscsiError(f"session {session.sid} is gone", code=IscsiErr.SYSFS_LOOKUP)
            await asyncio.to_thread(found.rescan)
        else:
            await self.exports.refresh(session)
        return session_to_json(self.info(session))

    async def op_stats(self, args: dict[str, Any]) -> Any:
        session = self.manager.get(_sid(args))
        return session_stats(session)

    async def op_reload(self, args: dict[str, Any]) -> Any:
        self.reload()
        return None

    async def op_shutdown(self, args: dict[str, Any]) -> Any:
        log.info("stop requested over IPC")
        self.stopping.set()
        return None

    # -- sessions -------------------------------------------------------------------------

    def failover_portals(
        self, node: NodeRecord, settings: dict[str, str] | None = None
    ) -> tuple[Portal, ...]:
        """Where a recovery of ``node``'s session may log in: the portals of the same
        target, portal group and iface in the records, in the preferred order."""
        conf = read_iscsikit_conf(self.paths.root) if settings is None else settings
        prefs = FailoverPreferences.from_settings(conf)
        others = [
            n.portal
            for n in self.records.nodes(target=node.target)
            if n.iface == node.iface and n.tpgt == node.tpgt and n.portal != node.portal
        ]
        return failover_order(parse_portal(node.portal), map(parse_portal, others), prefs)

    def kernel_transports(self) -> list[str]:
        """The iSCSI transports the kernel offers (``/sys/class/iscsi_transport``)."""
        return [t.path.name for t in self.sysfs.iscsi_transports()]

    async def login(self, node: NodeRecord) -> ManagedSession:
        """Log ``node`` in (the driver chosen by :mod:`iscsikit.manager.transports`) and
        serve its LUNs."""
        settings = read_iscsikit_conf(self.paths.root)
        driver = driver_for(node, kernel_transports=self.kernel_transports(), settings=settings)
        session = await self.manager.login_node(
            node, failover=self.failover_portals(node, settings), driver=driver
        )
        if isinstance(session, KernelManagedSession):
            if node.get("node.session.scan") != "manual":
                # As iscsid: the host scan runs on its own, the login answers at once.
                self._spawn(self._scan(session))
            return session
        try:
            await self.exports.refresh(session)
        except IscsiError as exc:
            log.warning("session %d: LUN scan failed: %s", session.sid, exc)
        return session

    async def _scan(self, session: KernelManagedSession) -> None:
        kernel = session.kernel
        if kernel is not None:
            try:
                await asyncio.to_thread(kernel.scan)
            except (IscsiError, OSError) as exc:
                log.warning("session %d: SCSI host scan failed: %s", session.sid, exc)

    async def adopt_kernel_sessions(self) -> None:
        """Start-up: take over the kernel sessions a previous daemon left running, as
        iscsid does after a restart (their recovery, logout and statistics are ours
        again).  Not while open-iscsi's iscsid runs: those sessions are its own."""
        if iscsid_running():
            log.info("iscsid is running: its kernel sessions are left to it")
            return
        for found in self.sysfs.sessions():
            info = session_from_sysfs(found)
            if info is None or info.sid in self.manager.sids() or info.host_no is None:
                continue
            if not is_kernel_driver(info.transport):
                continue
            node = self._record_of(info)
            settings = node_settings(node, transport=info.transport)
            isid = found.attr("isid") or ""
            if len(isid) == 12:  # recoveries reinstate the session the kernel has
                settings = settings.with_isid(bytes.fromhex(isid))
            try:
                inner = await asyncio.to_thread(
                    transport(info.transport).adopt, info.sid, settings.spec()
                )
            except (IscsiError, OSError) as exc:
                log.error("cannot adopt kernel session %d: %s", info.sid, exc)
                continue
            session = KernelManagedSession(settings, sid=info.sid, on_change=self._changed)
            session.node = node
            session.adopt(inner, failed=found.state not in (None, "LOGGED_IN"))
            self.manager.adopt(session)
            log.info("adopted kernel session %d (%s at %s:%d)", info.sid, info.target,
                     info.persistent_address, info.persistent_port)  # fmt: skip

    def _record_of(self, info: SessionInfo) -> NodeRecord:
        """The node record a kernel session was made from (as iscsid finds it), else
        one with the compiled defaults for its target and portal."""
        portal = format_portal(info.persistent_address, info.persistent_port)
        for node in self.records.nodes(target=info.target):
            if node.portal == portal and node.iface == info.iface:
                return node
        return NodeRecord.new(info.target, info.persistent_address, info.persistent_port, info.tpgt)

    def watch_devices(self) -> None:
        """Follow udev for the disks of the daemon's kernel sessions (:mod:`.devices`)."""
        watcher = DeviceWatcher(self.sysfs, lambda sid: sid in self.manager.sids())
        if watcher.start():
            self.devices = watcher

    def _changed(self, session: ManagedSession) -> None:
        log.info("session %d (%s): %s", session.sid, session.settings.target,
                 session.state.value)  # fmt: skip
        if session.state in (State.CLOSED, State.FAILED) and session.exports:
            self._spawn(self.exports.stop(session))

    async def login_automatic(self) -> None:
        """Start-up: every record with ``node.startup = automatic``, concurrently."""
        from iscsikit.manager.login_plan import sessions_for_node

        existing = [self.info(s) for s in self.manager.sessions()]
        nodes = [
            n
            for n in self.records.nodes()
            if n.get("node.startup") == "automatic" and not sessions_for_node(existing, n)
        ]
        if not nodes:
            return
        log.info("logging in to %d automatic record(s)", len(nodes))
        results = await asyncio.gather(*(self.login(n) for n in nodes), return_exceptions=True)
        for node, result in zip(nodes, results, strict=True):
            if isinstance(result, BaseException):
                log.error("login to %s at %s failed: %s", node.target, node.portal, result)

    def reload(self) -> None:
        """SIGHUP: read iscsid.conf again (new logins use it)."""
        try:
            self.conf = IscsidConf.load(self.conf_path)
        except IscsiError as exc:
            log.error("reload: %s", exc)
            return
        log.info("reloaded %s", self.conf_path)

    async def stop(self, *, grace: float = SAFE_LOGOUT_GRACE) -> None:
        """Stop serving and log every session out (each with its logout timeout).

        With ``iscsid.safe_logout = Yes``, exports that still have NBD clients get up to
        ``grace`` seconds for them to disconnect first (a clean shutdown stops the
        clients before the daemon); then every export closes, a request in flight
        unanswered, so no client takes a write for done that was not."""
        for task in list(self._background):
            task.cancel()
        if self.devices is not None:
            self.devices.stop()
        if self.conf.safe_logout:
            deadline = asyncio.get_running_loop().time() + grace
            while (busy := self.exports.in_use()) and asyncio.get_running_loop().time() < deadline:
                log.warning("waiting for NBD clients of %s (iscsid.safe_logout)", busy[0].socket)
                await asyncio.sleep(0.5)
        await self.exports.stop_all()
        # Kernel sessions outlive the daemon, as iscsid's do: the next one adopts them.
        for session in self.manager.sessions():
            if isinstance(session, KernelManagedSession):
                session.release()
                self.manager.forget(session.sid)
        for error in await self.manager.logout_all():
            log.warning("logout at shutdown: %s", error)

    def _spawn(self, coro: Awaitable[Any]) -> None:
        task: asyncio.Task[Any] = asyncio.ensure_future(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)
        task.add_done_callback(_log_failure)


def _log_failure(task: asyncio.Task[Any]) -> None:
    if not task.cancelled() and (exc := task.exception()) is not None:
        log.error("%s", exc)


def _node(doc: object) -> NodeRecord:
    if not isinstance(doc, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in doc.items()
    ):
        raise InvalidParameterError("login needs 'node': an object of record keys to strings")
    node = NodeRecord(dict(doc))
    if not node.target or not node.address:
        raise InvalidParameterError("the node record has no node.name or address")
    return node


def session_stats(session: ManagedSession) -> dict[str, int]:
    """``struct iscsi_stats`` of the session, summed over its connections."""
    stats: dict[str, int] = dict.fromkeys(STATS_KEYS, 0)
    for key, value in session.statistics().items():
        if key in stats:
            stats[key] = int(value)
    return stats


OPERATIONS: dict[str, Callable[[Daemon, dict[str, Any]], Awaitable[Any]]] = {
    "hello": Daemon.op_hello,
    "sessions": Daemon.op_sessions,
    "login": Daemon.op_login,
    "logout": Daemon.op_logout,
    "rescan": Daemon.op_rescan,
    "stats": Daemon.op_stats,
    "reload": Daemon.op_reload,
    "shutdown": Daemon.op_shutdown,
}
