"""``iser``: the kernel's iSCSI Extensions for RDMA (ib_iser) over NETLINK_ISCSI.

The kernel connects the RDMA endpoint and carries the data path; userspace logs in
through it and sets the negotiated parameters, as iscsid does for the ``iser`` iface:

- :mod:`.transport`: the ``iser`` transport (capability ``BLOCK_DEVICE``) and its connect
  step, on the machinery of :mod:`iscsikit_drivers.kerneltcp` (the same
  :class:`~iscsikit_drivers.kerneltcp.KernelSession`, with a kernel endpoint instead of
  a socket) and the iSER login keys of :mod:`iscsikit.proto.iser`.

Registered in the ``iscsikit`` entry-point group as ``iser`` (pyproject.toml), so a node
record bound to the built-in ``iser`` iface (``iscsikit-adm ... -I iser -l``) logs in
here.  docs/kernel-driver.md ("iser") describes it.
"""

from __future__ import annotations

from iscsikit.plugin import TransportRegistry, hookimpl

from .transport import IserConnector, IserTransport


@hookimpl
def iscsikit_register_transports(registry: TransportRegistry) -> None:
    registry.register(IserTransport)


__all__ = ["IserConnector", "IserTransport", "iscsikit_register_transports"]
