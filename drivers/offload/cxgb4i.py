"""``cxgb4i``: Chelsio T4/T5/T6 cxgb4i (PDU and digest offload).

Registered as ``cxgb4i`` (entry point); **simulated** (docs/offload.md).
"""

from __future__ import annotations

from iscsikit.netlink.constants import Capability as Cap

from .transport import OffloadTransport, offload_capabilities, plugin_hooks

__all__ = ["Cxgb4iTransport", "iscsikit_offload_ports", "iscsikit_register_transports"]

_CAPS = int(
    Cap.RECOVERY_L0
    | Cap.MULTI_R2T
    | Cap.HDRDGST
    | Cap.DATADGST
    | Cap.DIGEST_OFFLOAD
    | Cap.PADDING_OFFLOAD
    | Cap.TEXT_NEGO
)


class Cxgb4iTransport(OffloadTransport):
    name = "cxgb4i"
    description = (
        "Chelsio T4/T5/T6 cxgb4i (PDU and digest offload); "
        "simulated: tested only against a simulated host"
    )
    kernel_name = "cxgb4i"
    module = "cxgb4i"
    proc_name = "cxgb4i"
    kernel_caps = _CAPS
    capabilities = offload_capabilities(_CAPS)


iscsikit_register_transports, iscsikit_offload_ports = plugin_hooks(Cxgb4iTransport)
