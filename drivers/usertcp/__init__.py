"""``usertcp``: iSCSI over a userspace TCP socket — no kernel initiator needed.

Registered through the ``iscsikit`` entry-point group exactly as a third-party driver
would be (see pyproject.toml).  It connects over IPv4, IPv6 or a host name, runs the
:mod:`iscsikit.proto` login machine with the login/logout timeouts of the request, and
serves SendTargets discovery and Normal sessions whose data path runs in Python.
"""

from __future__ import annotations

from iscsikit.errors import IscsiErr, LocalProtocolError, RemoteProtocolError
from iscsikit.plugin import Capability, ConnectSpec, Transport, TransportRegistry, hookimpl
from iscsikit.proto.constants import RejectReason
from iscsikit.proto.login import TargetRedirected
from iscsikit.proto.pdu import AsyncMessage, TextRequest
from iscsikit.proto.sendtargets import DiscoveredTarget, SendTargetsMachine
from iscsikit.proto.session import SessionState

from .connection import PduConnection, deadline_after
from .session import UserTcpSession, run_login


class UserTcpTransport(Transport):
    name = "usertcp"
    description = "iSCSI over a userspace TCP socket (no kernel initiator)"
    capabilities = frozenset(
        {
            Capability.SENDTARGETS,
            Capability.LOGIN,
            Capability.DATA,
            Capability.HEADER_DIGEST,
            Capability.DATA_DIGEST,
            Capability.IPV6,
        }
    )

    def login(self, spec: ConnectSpec) -> UserTcpSession | TargetRedirected:
        result = run_login(spec)
        if isinstance(result, TargetRedirected):
            return result
        conn, accepted = result
        return UserTcpSession(conn, accepted, spec)

    def discover_sendtargets(
        self, spec: ConnectSpec, query: str = "All"
    ) -> list[DiscoveredTarget] | TargetRedirected:
        if spec.login.target_name is not None:
            raise LocalProtocolError("a SendTargets discovery needs a Discovery session spec")
        result = self.login(spec)
        if isinstance(result, TargetRedirected):
            return result  # discovery sessions may be redirected too; the core follows it
        session = result
        try:
            targets = _sendtargets(session, query)
        except BaseException:
            session.close()
            raise
        # A failed logout after a complete answer loses nothing: report the targets.
        try:
            session.logout()
        except Exception:
            session.close()
        return targets


def _sendtargets(session: UserTcpSession, query: str) -> list[DiscoveredTarget]:
    deadline = deadline_after(session.spec.timeouts.response)
    machine = SendTargetsMachine(session.state, session.portal, query=query)
    step: TextRequest | list[DiscoveredTarget] = machine.start()
    while isinstance(step, TextRequest):
        session.conn.send(step, deadline, timeout_code=IscsiErr.PDU_TIMEOUT)
        pdu = session.recv(deadline, timeout_code=IscsiErr.PDU_TIMEOUT)
        if isinstance(pdu, AsyncMessage):
            raise RemoteProtocolError(
                f"target sent an asynchronous event ({pdu.async_event}) during discovery",
                reject_reason=RejectReason.PROTOCOL_ERROR,
            )
        step = machine.receive(pdu)
    return step


@hookimpl
def iscsikit_register_transports(registry: TransportRegistry) -> None:
    registry.register(UserTcpTransport)


__all__ = ["PduConnection", "SessionState", "UserTcpSession", "UserTcpTransport"]
