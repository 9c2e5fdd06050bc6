"""``cxgb3i``: Chelsio T3 cxgb3i (PDU and digest offload; IPv4 only).

Registered as ``cxgb3i`` (entry point); **simulated** (docs/offload.md).
"""

from __future__ import annotations

from iscsikit.netlink.constants import Capability as Cap

from .transport import OffloadTransport, offload_capabilities, plugin_hooks

__all__ = ["Cxgb3iTransport", "iscsikit_offload_ports", "iscsikit_register_transports"]

_CAPS = int(
    Cap.RECOVERY_L0
    | Cap.MULTI_R2T
    | Cap.HDRDGST
    | Cap.DATADGST
    | Cap.DIGEST_OFFLOAD
    | Cap.PADDING_OFFLOAD
    | Cap.TEXT_NEGO
)


class Cxgb3iTransport(OffloadTransport):
    name = "cxgb3i"
    description = (
        "Chelsio T3 cxgb3i (PDU and digest offload; IPv4 only); "
        "simulated: tested only against a simulated host"
    )
    kernel_name = "cxgb3i"
    module = "cxgb3i"
    proc_name = "cxgb3i"
    kernel_caps = _CAPS
    capabilities = offload_capabilities(_CAPS, ipv6=False)


iscsikit_register_transports, iscsikit_offload_ports = plugin_hooks(Cxgb3iTransport)
