"""``usertcp``: iSCSI over a userspace TCP socket — no kernel initiator needed.

Registered through the ``iscsikit`` entry-point group exactly as a third-party driver
would be (see pyproject.toml).  Connecting (IPv4, IPv6 or a host name), logging in and
SendTargets discovery are :mod:`iscsikit.net`'s, shared with every driver that connects
TCP itself; what is usertcp's own is the Normal session whose data path runs in Python
over that socket (:class:`UserTcpSession`).
"""

from __future__ import annotations

from iscsikit import net
from iscsikit.net import PduConnection
from iscsikit.net.connection import socket_binding
from iscsikit.plugin import Capability, ConnectSpec, Transport, TransportRegistry, hookimpl
from iscsikit.proto.login import TargetRedirected
from iscsikit.proto.sendtargets import DiscoveredTarget
from iscsikit.proto.session import SessionState

from .session import UserTcpSession


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
        # net.run_login's steps, with the socket bound as the node's iface asks (a
        # netdev by name or MAC, as iscsid binds; a source address, iscsikit's own).
        deadline = net.deadline_after(spec.timeouts.login)
        binding = socket_binding(spec.binding)
        conn = PduConnection.connect(spec.portal, deadline, binding=binding)
        result = net.log_in(conn, spec, deadline)
        if isinstance(result, TargetRedirected):
            return result
        return UserTcpSession(conn, result, spec)

    def discover_sendtargets(
        self, spec: ConnectSpec, query: str = "All"
    ) -> list[DiscoveredTarget] | TargetRedirected:
        return net.discover_sendtargets(spec, query)


@hookimpl
def iscsikit_register_transports(registry: TransportRegistry) -> None:
    registry.register(UserTcpTransport)


__all__ = ["PduConnection", "SessionState", "UserTcpSession", "UserTcpTransport"]
