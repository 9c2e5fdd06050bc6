"""``cxgb4i``: Chelsio T4/T5/T6 cxgb4i (PDU and digest offload).

A thin plugin over :class:`~.transport.OffloadTransport`; the ``caps`` are those the
kernel driver's ``struct iscsi_transport`` sets.  Registered in the ``iscsikit``
entry-point group as ``cxgb4i`` (pyproject.toml).  **Simulated**: iscsikit tests it only
against :mod:`iscsikit.testing.simhba` (docs/offload.md).
"""

from __future__ import annotations

from iscsikit.netlink.constants import Capability as Cap
from iscsikit.plugin import TransportRegistry, hookimpl
from iscsikit.plugin.transport import OffloadPort

from .transport import OffloadTransport, offload_capabilities

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


@hookimpl
def iscsikit_register_transports(registry: TransportRegistry) -> None:
    registry.register(Cxgb4iTransport)


@hookimpl
def iscsikit_offload_ports() -> list[OffloadPort]:
    return Cxgb4iTransport().ports()
