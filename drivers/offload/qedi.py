"""``qedi``: QLogic FastLinQ qedi (data path offload; network set-up through iscsiuio).

A thin plugin over :class:`~.transport.OffloadTransport`; the ``caps`` are those the
kernel driver's ``struct iscsi_transport`` sets.  Registered in the ``iscsikit``
entry-point group as ``qedi`` (pyproject.toml).  **Simulated**: iscsikit tests it only
against :mod:`iscsikit.testing.simhba` (docs/offload.md).
"""

from __future__ import annotations

from iscsikit.netlink.constants import Capability as Cap
from iscsikit.plugin import TransportRegistry, hookimpl
from iscsikit.plugin.transport import OffloadPort

from .transport import OffloadTransport, offload_capabilities

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


@hookimpl
def iscsikit_register_transports(registry: TransportRegistry) -> None:
    registry.register(QediTransport)


@hookimpl
def iscsikit_offload_ports() -> list[OffloadPort]:
    return QediTransport().ports()
