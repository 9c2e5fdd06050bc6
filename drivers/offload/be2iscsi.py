"""``be2iscsi``: Emulex OneConnect be2iscsi (data path offload, kernel ifaces).

A thin plugin over :class:`~.transport.OffloadTransport`; the ``caps`` are those the
kernel driver's ``struct iscsi_transport`` sets.  Registered in the ``iscsikit``
entry-point group as ``be2iscsi`` (pyproject.toml).  **Simulated**: iscsikit tests it only
against :mod:`iscsikit.testing.simhba` (docs/offload.md).
"""

from __future__ import annotations

from iscsikit.netlink.constants import Capability as Cap
from iscsikit.plugin import TransportRegistry, hookimpl
from iscsikit.plugin.transport import OffloadPort

from .transport import OffloadTransport, offload_capabilities

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


@hookimpl
def iscsikit_register_transports(registry: TransportRegistry) -> None:
    registry.register(Be2iscsiTransport)


@hookimpl
def iscsikit_offload_ports() -> list[OffloadPort]:
    return Be2iscsiTransport().ports()
