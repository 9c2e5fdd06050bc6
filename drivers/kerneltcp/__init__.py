"""``kerneltcp``: the kernel's iscsi_tcp driven over NETLINK_ISCSI, as iscsid drives it.

The kernel owns the data path (a session becomes a SCSI host, its LUNs ``/dev/sdX``);
userspace connects TCP and logs in (:func:`iscsikit.net.run_login`), then hands the
socket to the kernel and sets the negotiated parameters:

- :mod:`.netlink`: the NETLINK_ISCSI socket (request/reply, async events);
- :mod:`.params`: the SET_PARAM list built from a login's outcome (pure);
- :mod:`.events`: one reader thread for the kernel's async events (CONN_ERROR...);
- :mod:`.kernel`: one kernel session's life (create, bind, log in through the kernel,
  start, recover, stats, logout, adopt);
- :mod:`.transport`: the ``tcp`` transport the session manager drives.

Registered in the ``iscsikit`` entry-point group as ``tcp`` (pyproject.toml), exactly as
a vendor's driver would be.  docs/kernel-driver.md describes it.
"""

from __future__ import annotations

from iscsikit.plugin import TransportRegistry, hookimpl

from .events import KernelEvents, shared_events
from .kernel import KernelSession, KernelSettings, transport_handle
from .netlink import NetlinkChannel
from .params import negotiated_params, session_params
from .transport import KernelTcpSession, KernelTcpTransport, kernel_settings


@hookimpl
def iscsikit_register_transports(registry: TransportRegistry) -> None:
    registry.register(KernelTcpTransport)


__all__ = [
    "KernelEvents",
    "KernelSession",
    "KernelTcpSession",
    "KernelTcpTransport",
    "KernelSettings",
    "NetlinkChannel",
    "iscsikit_register_transports",
    "kernel_settings",
    "negotiated_params",
    "session_params",
    "shared_events",
    "transport_handle",
]
