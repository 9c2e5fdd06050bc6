"""``bnx2i``: Broadcom NetXtreme II bnx2i (data path offload; network set-up through iscsiuio).

Registered as ``bnx2i`` (entry point); **simulated** (docs/offload.md).
"""

from __future__ import annotations

from iscsikit.netlink.constants import Capability as Cap

from .transport import OffloadTransport, offload_capabilities, plugin_hooks

__all__ = ["Bnx2iTransport", "iscsikit_offload_ports", "iscsikit_register_transports"]

_CAPS = int(
    Cap.RECOVERY_L0
    | Cap.HDRDGST
    | Cap.MULTI_R2T
    | Cap.DATADGST
    | Cap.DATA_PATH_OFFLOAD
    | Cap.TEXT_NEGO
)


class Bnx2iTransport(OffloadTransport):
    name = "bnx2i"
    description = (
        "Broadcom NetXtreme II bnx2i (data path offload; network set-up through iscsiuio); "
        "simulated: tested only against a simulated host"
    )
    kernel_name = "bnx2i"
    module = "bnx2i"
    proc_name = "bnx2i"
    kernel_caps = _CAPS
    capabilities = offload_capabilities(_CAPS)
    uses_iscsiuio = True


iscsikit_register_transports, iscsikit_offload_ports = plugin_hooks(Bnx2iTransport)
