"""Serve a block device (an iSCSI LUN, or anything with the :class:`BlockDevice` shape) over
the NBD protocol (NetworkBlockDevice/nbd ``doc/proto.md``).

- :mod:`iscsikit.nbd.protocol` — the sans-I/O server protocol object (no sockets, no asyncio);
- :mod:`iscsikit.nbd.device` — the :class:`BlockDevice` protocol and :class:`MemoryDevice`;
- :mod:`iscsikit.nbd.align` — :class:`AlignedDevice`, byte-granular I/O over whole blocks;
- :mod:`iscsikit.nbd.server` — the asyncio server shell, :func:`serve`;
- the ``iscsikit-nbd`` command is :mod:`iscsikit.tools.nbd` (``python -m iscsikit.nbd``).

Only the pure names are imported eagerly; the asyncio ones load on first use (PEP 562) so
that ``import iscsikit.nbd.protocol`` stays free of I/O modules.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from iscsikit.nbd.events import Export
from iscsikit.nbd.protocol import NbdServerProtocol

if TYPE_CHECKING:
    from iscsikit.nbd.align import AlignedDevice
    from iscsikit.nbd.device import BlockDevice, MemoryDevice
    from iscsikit.nbd.server import serve

_LAZY = {
    "AlignedDevice": "iscsikit.nbd.align",
    "BlockDevice": "iscsikit.nbd.device",
    "MemoryDevice": "iscsikit.nbd.device",
    "serve": "iscsikit.nbd.server",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'iscsikit.nbd' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


__all__ = [
    "AlignedDevice",
    "BlockDevice",
    "Export",
    "MemoryDevice",
    "NbdServerProtocol",
    "serve",
]
