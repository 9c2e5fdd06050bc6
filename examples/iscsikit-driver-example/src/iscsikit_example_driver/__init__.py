"""``example``: an out-of-tree iscsikit transport driver, shipped as its own pip package.

iSCSI over a TCP socket opened in userspace and bound, when the iface says so, to a
source address (``ipaddress``) or a network device (``net_ifacename``).  It is built on
iscsikit's public API only: :mod:`iscsikit.plugin` (the :class:`~iscsikit.plugin.Transport`
interface and the ``iscsikit_register_transports`` hook), :mod:`iscsikit.net` (PDUs over
a socket, control exchanges, SendTargets) and :mod:`iscsikit.proto` (the login machine).

iscsikit loads this module through the entry point in pyproject.toml::

    [project.entry-points.iscsikit]
    example = "iscsikit_example_driver"
"""

from __future__ import annotations

import contextlib

from iscsikit import net
from iscsikit.errors import IscsiError, LocalProtocolError
from iscsikit.plugin import Capability, ConnectSpec, Transport, TransportRegistry, hookimpl
from iscsikit.proto.login import TargetRedirected
from iscsikit.proto.sendtargets import DiscoveredTarget

from .connect import BINDING_KEYS, check_binding, login
from .session import ExampleSession

__all__ = ["BINDING_KEYS", "ExampleSession", "ExampleTransport"]


class ExampleTransport(Transport):
    """Logs sessions in and discovers targets; the session carries no SCSI data path."""

    name = "example"
    description = "example out-of-tree driver: iSCSI over userspace TCP with source binding"
    capabilities = frozenset(
        {
            Capability.SENDTARGETS,
            Capability.LOGIN,
            Capability.HEADER_DIGEST,
            Capability.DATA_DIGEST,
            Capability.IPV6,
        }
    )

    def login(self, spec: ConnectSpec) -> ExampleSession | TargetRedirected:
        check_binding(spec.binding)
        result = login(spec)
        if isinstance(result, TargetRedirected):
            return result  # following a redirect is the core's decision
        conn, accepted = result
        return ExampleSession(conn, accepted, spec)

    def discover_sendtargets(
        self, spec: ConnectSpec, query: str = "All"
    ) -> list[DiscoveredTarget] | TargetRedirected:
        check_binding(spec.binding)
        if spec.login.target_name is not None:
            raise LocalProtocolError("a SendTargets discovery needs a Discovery session spec")
        result = login(spec)
        if isinstance(result, TargetRedirected):
            return result
        conn, accepted = result
        state = net.session_state(spec, accepted)
        try:
            targets = net.sendtargets(
                conn, state, net.deadline_after(spec.timeouts.response), query
            )
        except BaseException:
            conn.close()
            raise
        # logout() closes the connection whatever happens; the answer is complete already.
        with contextlib.suppress(IscsiError):
            net.logout(conn, state, net.deadline_after(spec.timeouts.logout))
        return targets


@hookimpl
def iscsikit_register_transports(registry: TransportRegistry) -> None:
    """Called once by iscsikit's plugin manager: add this package's transport."""
    registry.register(ExampleTransport)
