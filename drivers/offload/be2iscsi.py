"""``be2iscsi``: Emulex OneConnect be2iscsi (data path offload, kernel ifaces).

Registered as ``be2iscsi`` (entry point); **simulated** (docs/offload.md).
"""

from __future__ import annotations

from iscsikit.netlink.constants import Capability as Cap

from .transport import OffloadTransport, offload_capabilities, plugin_hooks

__all__ = ["Be2iscsiTransport", "iscsikit_offload_ports", "iscsikit_register_transports"]

_CAPS = int(
    Cap.RECOVERY_L0
    | Cap.HDRDGST
    | Cap.DATADGST
    | Cap.MULTI_R2T
    | Cap.DATA_PATH_OFFLOAD
    | Cap.TEXT_NEGO
)


class Be2iscsiTransport(OffloadTransport):
    name = "be2iscsi"
    description = (
        "Emulex OneConnect be2iscsi (data path offload, kernel ifaces); "
        "simulated: tested only against a simulated host"
    )
    kernel_name = "be2iscsi"
    module = "be2iscsi"
    proc_name = "be2iscsi"
    kernel_caps = _CAPS
    capabilities = offload_capabilities(_CAPS)


iscsikit_register_transports, iscsikit_offload_ports = plugin_hooks(Be2iscsiTransport)
