"""The manager's session API: every session this process owns, by session id.

This is one of iscsikit's two seams (the other is the driver's
:class:`~iscsikit.plugin.transport.Transport`): the daemon's IPC handlers, and through
them ``iscsikit-adm``, call :class:`SessionManager`; nothing else creates, recovers or
ends a session.  ``login`` takes a node record (what ``-m node -l`` sends) or
ready :class:`~iscsikit.manager.spec.SessionSettings`; each session is a
:class:`~iscsikit.manager.managed.ManagedSession` that recovers by itself, and
:meth:`SessionManager.info` describes it as the CLI prints sessions
(:class:`~iscsikit.manager.sessions.SessionInfo`).
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import itertools
from collections.abc import Callable, Collection, Mapping

from iscsikit.errors import IscsiError, SessionNotFoundError
from iscsikit.manager.kernel_session import KernelManagedSession
from iscsikit.manager.managed import ManagedSession
from iscsikit.manager.node_login import node_settings
from iscsikit.manager.policy import State
from iscsikit.manager.sessions import SessionInfo, session_from_sysfs
from iscsikit.manager.spec import SessionSettings
from iscsikit.manager.transports import choose_driver
from iscsikit.proto.address import Portal
from iscsikit.records.model import NodeRecord
from iscsikit.sysfs import SysfsContext

__all__ = ["SessionManager", "driver_for", "is_kernel_driver"]

# iscsiadm's three state lines (-P 1): session, connection, iscsid's own.
_STATES: dict[State, tuple[str, str, str]] = {
    State.IDLE: ("FREE", "FREE", "NO CHANGE"),
    State.LOGGING_IN: ("FREE", "IN LOGIN", "NO CHANGE"),
    State.LOGIN_WAIT: ("FREE", "FREE", "NO CHANGE"),
    State.LOGGED_IN: ("LOGGED_IN", "LOGGED IN", "NO CHANGE"),
    State.DRAINING: ("LOGGED_IN", "LOGGED IN", "NO CHANGE"),
    State.TARGET_LOGOUT: ("LOGGED_IN", "IN LOGOUT", "LOGOUT"),
    State.RECOVERY_WAIT: ("FAILED", "TRANSPORT WAIT", "REOPEN"),
    State.RECONNECTING: ("FAILED", "IN LOGIN", "REOPEN"),
    State.LOGOUT_PENDING: ("FAILED", "IN LOGIN", "LOGOUT"),
    State.LOGGING_OUT: ("LOGGED_IN", "IN LOGOUT", "LOGOUT"),
    State.FAILED: ("FREE", "FREE", "NO CHANGE"),
    State.CLOSED: ("FREE", "FREE", "NO CHANGE"),
}
# Negotiated keys -P 2 prints; MaxXmitDataSegmentLength is the target's declared MRDSL.
_PARAMS = (
    "HeaderDigest", "DataDigest", "MaxRecvDataSegmentLength", "MaxXmitDataSegmentLength",
    "FirstBurstLength", "MaxBurstLength", "ImmediateData", "InitialR2T", "MaxOutstandingR2T",
)  # fmt: skip


def _tpgt(session: ManagedSession) -> int:
    inner = session.transport_session
    if inner is not None and inner.tpgt is not None:
        return inner.tpgt
    return session.node.tpgt if session.node is not None else -1


def driver_for(
    node: NodeRecord,
    *,
    kernel_transports: Collection[str] = (),
    settings: Mapping[str, str] | None = None,
) -> str:
    """The driver that logs ``node`` in (:func:`~iscsikit.manager.transports.choose_driver`
    over the registered drivers; TransportNotFoundError, 12, when none does)."""
    from iscsikit.plugin import manager as plugins

    return choose_driver(
        node.get("iface.transport_name"),
        registered=plugins.transports().names(),
        kernel_transports=kernel_transports,
        settings=settings,
    )


def is_kernel_driver(name: str) -> bool:
    """Whether driver ``name`` gives kernel sessions (:attr:`Capability.BLOCK_DEVICE`)."""
    from iscsikit.plugin import Capability
    from iscsikit.plugin import manager as plugins

    registry = plugins.transports()
    return name in registry and Capability.BLOCK_DEVICE in registry.get(name).capabilities


class SessionManager:
    """Sessions by sid (from 1, never reused while the process lives)."""

    def __init__(
        self,
        *,
        on_change: Callable[[ManagedSession], None] | None = None,
        sysfs: SysfsContext | None = None,
    ) -> None:
        #: Where kernel sessions are seen (the real /sys unless told otherwise).
        self.sysfs = sysfs or SysfsContext()
        self._sessions: dict[int, ManagedSession] = {}
        self._sids = itertools.count(1)
        self.on_change = on_change

    def _new_sid(self) -> int:
        """A sid no session of this process has, and no kernel session has now (the
        kernel numbers its sessions itself: a daemon's kernel sessions keep its sids)."""
        taken = set(self._sessions) | set(self.kernel_sids())
        while (sid := next(self._sids)) in taken:
            pass
        return sid

    def kernel_sids(self) -> list[int]:
        """The kernel's session ids now (``/sys/class/iscsi_session``)."""
        return [s.sid for s in self.sysfs.sessions()]

    async def login(
        self, settings: SessionSettings, *, node: NodeRecord | None = None
    ) -> ManagedSession:
        """Log a new session in; it is listed from the first attempt on, and dropped
        from the list again if the login fails (the error is raised).  A kernel
        session is listed under the kernel's sid once the kernel made it."""
        shell = KernelManagedSession if is_kernel_driver(settings.transport) else ManagedSession
        provisional = self._new_sid()
        session = shell(settings, sid=provisional, on_change=self.on_change)
        session.node = node
        session.portal_taken = functools.partial(self._portal_taken, session)
        self._sessions[provisional] = session
        try:
            await session.login()
        except BaseException:
            self._sessions.pop(provisional, None)
            session.drop()
            raise
        self._rekey(provisional, session)
        return session

    def _rekey(self, old: int, session: ManagedSession) -> None:
        if session.sid == old:
            return
        self._sessions.pop(old, None)
        clash = self._sessions.get(session.sid)
        if clash is not None and clash is not session:
            # A userspace session numbered before the kernel reached that number.
            clash.sid = self._new_sid()
            self._sessions[clash.sid] = clash
        self._sessions[session.sid] = session

    def adopt(self, session: KernelManagedSession) -> None:
        """List a session :meth:`KernelManagedSession.adopt` took over."""
        session.portal_taken = functools.partial(self._portal_taken, session)
        self._sessions[session.sid] = session

    def _portal_taken(self, session: ManagedSession, portal: Portal) -> bool:
        """Whether another logged-in session of ``session``'s target and initiator is
        at ``portal`` now: a path of its own, so no portal to fail over to."""
        mine = session.settings.config
        for other in self._sessions.values():
            theirs = other.settings.config
            if (
                other is not session
                and other.state is State.LOGGED_IN
                and other.current_portal == portal
                and (theirs.target_name, theirs.initiator_name)
                == (mine.target_name, mine.initiator_name)
            ):
                return True
        return False

    async def login_node(
        self, node: NodeRecord, *, failover: tuple[Portal, ...] = (), driver: str | None = None
    ) -> ManagedSession:
        """Log ``node`` in (with ``driver``, else :func:`driver_for` with no kernel
        transports); ``failover`` is the portal order a recovery tries
        (:func:`~iscsikit.manager.failover.failover_order`)."""
        settings = node_settings(node, transport=driver or driver_for(node))
        if failover:
            settings = dataclasses.replace(settings, failover=failover)
        return await self.login(settings, node=node)

    async def logout(self, sid: int) -> None:
        session = self.get(sid)
        try:
            await session.logout()
        finally:
            self._sessions.pop(sid, None)

    async def logout_all(self) -> list[IscsiError]:
        """Log every session out concurrently; the errors (the sessions end anyway)."""
        results = await asyncio.gather(
            *(self.logout(sid) for sid in list(self._sessions)), return_exceptions=True
        )
        errors = [r for r in results if isinstance(r, IscsiError)]
        others = [r for r in results if isinstance(r, BaseException) and r not in errors]
        if others:
            raise others[0]
        return errors

    def sids(self) -> list[int]:
        return sorted(self._sessions)

    def forget(self, sid: int) -> None:
        """Stop listing session ``sid`` (released to the kernel, or dropped)."""
        self._sessions.pop(sid, None)

    def drop_all(self) -> None:
        for session in list(self._sessions.values()):
            session.drop()
        self._sessions.clear()

    def get(self, sid: int) -> ManagedSession:
        try:
            return self._sessions[sid]
        except KeyError:
            raise SessionNotFoundError(f"Could not find session {sid}.") from None

    def sessions(self) -> list[ManagedSession]:
        return [self._sessions[sid] for sid in sorted(self._sessions)]

    def info(self, session: ManagedSession) -> SessionInfo:
        if isinstance(session, KernelManagedSession):
            found = self.sysfs.session(session.sid) if session.kernel is not None else None
            kernel = session_from_sysfs(found) if found is not None else None
            if kernel is not None:
                # What the kernel has, with the states only the owner knows (iscsiadm
                # asks iscsid for the same two).
                _, conn_state, internal = _STATES[session.state]
                return dataclasses.replace(kernel, conn_state=conn_state, internal_state=internal)
        return self._userspace_info(session)

    def _userspace_info(self, session: ManagedSession) -> SessionInfo:
        node = session.node
        settings = session.settings
        inner = session.transport_session
        portal = inner.portal if inner is not None else settings.portal
        state, conn_state, internal = _STATES[session.state]
        params = {k: session.params[k] for k in _PARAMS if k in session.params}

        def key(name: str, default: str = "") -> str:
            return node.get(name) if node is not None else default

        iface = node.iface if node is not None else "default"
        return SessionInfo(
            sid=session.sid,
            transport=key("iface.transport_name", "tcp") or "tcp",
            target=settings.target,
            address=portal.host.strip("[]"),
            port=portal.port,
            tpgt=_tpgt(session),
            persistent_address=(node.address if node is not None else settings.portal.host),
            persistent_port=(node.port if node is not None else settings.portal.port),
            iface=iface,
            initiator_name=settings.config.initiator_name,
            state=state,
            conn_state=conn_state,
            internal_state=internal,
            host_no=None,
            params=params,
            username=key("node.session.auth.username"),
            password=key("node.session.auth.password"),
            username_in=key("node.session.auth.username_in"),
            password_in=key("node.session.auth.password_in"),
            timeouts={
                "recovery_tmo": f"{settings.replacement_timeout:g}",
                "tgt_reset_tmo": f"{settings.timers.tgt_reset_timeout:g}",
                "lu_reset_tmo": f"{settings.timers.lu_reset_timeout:g}",
                "abort_tmo": f"{settings.timers.abort_timeout:g}",
            },
            iface_ipaddress=key("iface.ipaddress", "default") or "default",
            iface_hwaddress=key("iface.hwaddress", "default") or "default",
            iface_netdev=key("iface.net_ifacename", "default") or "default",
            host_state="running" if session.state is State.LOGGED_IN else state,
            exports=session.exports,
        )
