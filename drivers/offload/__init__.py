"""Offload HBA drivers: qla4xxx, cxgb3i, cxgb4i, bnx2i, be2iscsi, qedi.

One shared implementation and six thin plugins, each registered through its own entry
point (pyproject.toml), as six vendors' packages would be:

- :mod:`.transport`: :class:`OffloadTransport` (hosts and ports from sysfs, the
  endpoint through the host, login through the kernel) and :func:`offload_capabilities`;
- :mod:`.host`: :class:`OffloadHost`, one host's NETLINK_ISCSI operations (iface
  parameters, ping, CHAP table, host statistics, flash nodes);
- :mod:`.ifacecfg`: SET_IFACE_PARAMS attributes from an iface record (pure);
- :mod:`.channel`: the channel factory and the ``ISCSIKIT_OFFLOAD_NETLINK`` test seam;
- :mod:`.connector`: endpoints through the host, and the PATH_REQ of iscsiuio's drivers;
- :mod:`.flashcfg`: SET_FLASHNODE_PARAMS attributes from ``flashnode.*`` pairs (pure);
- :mod:`.discovery`: SendTargets over a kernel discovery session (CAP_TEXT_NEGO);
- :mod:`.qla4xxx`, :mod:`.cxgb3i`, :mod:`.cxgb4i`, :mod:`.bnx2i`, :mod:`.be2iscsi`,
  :mod:`.qedi`: the plugins.

**Simulated**: no such hardware exists where iscsikit is tested; everything here runs
against :mod:`iscsikit.testing.simhba` (docs/offload.md).  This package registers no
hooks itself: its modules do.
"""

from __future__ import annotations

from .channel import SEAM_VARIABLE, ChannelFactory, default_channel
from .connector import PathAnsweringConnector, ThroughHostConnector
from .host import OffloadHost
from .ifacecfg import net_config_attrs
from .transport import OffloadTransport, offload_capabilities

__all__ = [
    "SEAM_VARIABLE",
    "ChannelFactory",
    "OffloadHost",
    "OffloadTransport",
    "PathAnsweringConnector",
    "ThroughHostConnector",
    "default_channel",
    "net_config_attrs",
    "offload_capabilities",
]
