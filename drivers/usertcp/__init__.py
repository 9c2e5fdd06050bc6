"""``usertcp``: iSCSI over a userspace TCP socket — no kernel initiator needed.

Registered through the ``iscsikit`` entry-point group exactly as a third-party driver
would be (see pyproject.toml).  Connecting (IPv4, IPv6 or a host name), logging in and
SendTargets discovery are :mod:`iscsikit.net`'s, shared with every driver that connects
TCP itself; what is usertcp's own is the Normal session whose data path runs in Python
over that socket (:class:`UserTcpSession`).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from iscsikit.plugin.hookspecs import hookimpl
from iscsikit.plugin.transport import Capability, Transport

# Registering the driver (every plugin is imported to list the transports: ``iscsikit-adm
# -h``) must not load the connection, the protocol machines and asyncio: they are
# imported when a session is made.
if TYPE_CHECKING:
    from iscsikit.net import PduConnection
    from iscsikit.plugin.transport import ConnectSpec, TransportRegistry
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
        from iscsikit import net
        from iscsikit.net import PduConnection
        from iscsikit.net.connection import socket_binding
        from iscsikit.proto.login import TargetRedirected

        from .session import UserTcpSession

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
        from iscsikit import net

        return net.discover_sendtargets(spec, query)


@hookimpl
def iscsikit_register_transports(registry: TransportRegistry) -> None:
    registry.register(UserTcpTransport)


__all__ = ["PduConnection", "SessionState", "UserTcpSession", "UserTcpTransport"]

#: The names re-exported from where they live, imported on first use (PEP 562).
_LAZY = {
    "PduConnection": "iscsikit.net",
    "SessionState": "iscsikit.proto.session",
    "UserTcpSession": "iscsikit_drivers.usertcp.session",
}


def __getattr__(name: str) -> Any:
    home = _LAZY.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(home), name)
    globals()[name] = value
    return value
