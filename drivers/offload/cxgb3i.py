"""``cxgb3i``: Chelsio T3 cxgb3i (PDU and digest offload; IPv4 only).

A thin plugin over :class:`~.transport.OffloadTransport`; the ``caps`` are those the
kernel driver's ``struct iscsi_transport`` sets.  Registered in the ``iscsikit``
entry-point group as ``cxgb3i`` (pyproject.toml).  **Simulated**: iscsikit tests it only
against :mod:`iscsikit.testing.simhba` (docs/offload.md).
"""

from __future__ import annotations

from iscsikit.netlink.constants import Capability as Cap
from iscsikit.plugin import TransportRegistry, hookimpl
from iscsikit.plugin.transport import OffloadPort

from .transport import OffloadTransport, offload_capabilities

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


@hookimpl
def iscsikit_register_transports(registry: TransportRegistry) -> None:
    registry.register(Cxgb3iTransport)


@hookimpl
def iscsikit_offload_ports() -> list[OffloadPort]:
    return Cxgb3iTransport().ports()
