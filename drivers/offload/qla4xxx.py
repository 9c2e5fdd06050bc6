"""``qla4xxx``: QLogic qla4xxx iSCSI HBA (full offload: login in firmware, flash
nodes, CHAP table, host statistics).

Registered as ``qla4xxx`` (entry point); **simulated** (docs/offload.md).
"""

from __future__ import annotations

from iscsikit.netlink.constants import Capability as Cap

from .transport import OffloadTransport, offload_capabilities, plugin_hooks

__all__ = ["Qla4xxxTransport", "iscsikit_offload_ports", "iscsikit_register_transports"]

_CAPS = int(
    Cap.TEXT_NEGO
    | Cap.DATA_PATH_OFFLOAD
    | Cap.HDRDGST
    | Cap.DATADGST
    | Cap.LOGIN_OFFLOAD
    | Cap.MULTI_R2T
)


class Qla4xxxTransport(OffloadTransport):
    name = "qla4xxx"
    description = (
        "QLogic qla4xxx iSCSI HBA (full offload: login in firmware, flash nodes, "
        "CHAP table, host statistics); "
        "simulated: tested only against a simulated host"
    )
    kernel_name = "qla4xxx"
    module = "qla4xxx"
    proc_name = "qla4xxx"
    kernel_caps = _CAPS
    capabilities = offload_capabilities(_CAPS)


iscsikit_register_transports, iscsikit_offload_ports = plugin_hooks(Qla4xxxTransport)
