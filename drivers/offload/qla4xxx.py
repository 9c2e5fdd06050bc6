"""``qla4xxx``: QLogic qla4xxx iSCSI HBA (full offload: login in firmware, flash
nodes, CHAP table, host statistics).

A thin plugin over :class:`~.transport.OffloadTransport`; the ``caps`` are those the
kernel driver's ``struct iscsi_transport`` sets.  Registered in the ``iscsikit``
entry-point group as ``qla4xxx`` (pyproject.toml).  **Simulated**: iscsikit tests it only
against :mod:`iscsikit.testing.simhba` (docs/offload.md).
"""

from __future__ import annotations

from iscsikit.netlink.constants import Capability as Cap
from iscsikit.plugin import TransportRegistry, hookimpl
from iscsikit.plugin.transport import OffloadPort

from .transport import OffloadTransport, offload_capabilities

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


@hookimpl
def iscsikit_register_transports(registry: TransportRegistry) -> None:
    registry.register(Qla4xxxTransport)


@hookimpl
def iscsikit_offload_ports() -> list[OffloadPort]:
    return Qla4xxxTransport().ports()
