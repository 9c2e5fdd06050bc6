"""``qedi``: QLogic FastLinQ qedi (data path offload; network set-up through iscsiuio).

Registered as ``qedi`` (entry point); **simulated** (docs/offload.md).
"""

from __future__ import annotations

from iscsikit.netlink.constants import Capability as Cap

from .transport import OffloadTransport, offload_capabilities, plugin_hooks

__all__ = ["QediTransport", "iscsikit_offload_ports", "iscsikit_register_transports"]

_CAPS = int(
    Cap.RECOVERY_L0
    | Cap.HDRDGST
    | Cap.MULTI_R2T
    | Cap.DATADGST
    | Cap.DATA_PATH_OFFLOAD
    | Cap.TEXT_NEGO
)


class QediTransport(OffloadTransport):
    name = "qedi"
    description = (
        "QLogic FastLinQ qedi (data path offload; network set-up through iscsiuio); "
        "simulated: tested only against a simulated host"
    )
    kernel_name = "qedi"
    module = "qedi"
    proc_name = "qedi"
    kernel_caps = _CAPS
    capabilities = offload_capabilities(_CAPS)
    uses_iscsiuio = True


iscsikit_register_transports, iscsikit_offload_ports = plugin_hooks(QediTransport)
