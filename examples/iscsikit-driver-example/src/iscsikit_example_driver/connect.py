"""Connecting with the iface's binding, and logging in over that connection.

:func:`iscsikit.net.run_login` connects for the caller; this driver connects itself,
bound to the iface's source address or network device (``PduConnection.connect``), then
logs in over that connection with :func:`iscsikit.net.log_in`, which maps failures to
iscsiadm's codes: refused/reset 4, timeout 8, a target breaking the protocol 5, a
refused login the machine's own (19 unknown target, 24 authentication, ...).
"""

from __future__ import annotations

from collections.abc import Mapping

from iscsikit import net
from iscsikit.errors import InvalidParameterError
from iscsikit.net import PduConnection
from iscsikit.plugin import ConnectSpec
from iscsikit.proto.login import LoginAccepted, TargetRedirected

#: The ``ConnectSpec.binding`` keys this driver honours (open-iscsi's ``iface.*`` names):
#: the source address of the connection, and the network device it must leave by.
BINDING_KEYS = frozenset({"ipaddress", "net_ifacename"})


def check_binding(binding: Mapping[str, str]) -> None:
    """Refuse binding keys this driver does not honour (iscsiadm's exit 7)."""
    unknown = sorted(set(binding) - BINDING_KEYS)
    if unknown:
        raise InvalidParameterError(
            f"the example transport cannot bind by {', '.join(unknown)} "
            f"(it knows {', '.join(sorted(BINDING_KEYS))})"
        )


def login(spec: ConnectSpec) -> tuple[PduConnection, LoginAccepted] | TargetRedirected:
    """Connect (bound as ``spec.binding`` asks) and log in within ``spec.timeouts.login``;
    the connection in Full Feature Phase, or the redirect.  The connection is closed on
    every other outcome."""
    deadline = net.deadline_after(spec.timeouts.login)
    conn = PduConnection.connect(
        spec.portal,
        deadline,
        source_address=spec.binding.get("ipaddress", ""),
        device=spec.binding.get("net_ifacename", ""),
    )
    step = net.log_in(conn, spec, deadline)
    return step if isinstance(step, TargetRedirected) else (conn, step)
