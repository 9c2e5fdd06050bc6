"""LUN access over a logged-in session: blocking (:class:`Lun`), asyncio
(:class:`AsyncLun`), file-like (:class:`LunIO`), by libiscsi-style URL; one LU over
several sessions (:class:`MultipathLun`, :class:`AsyncMultipathLun`)."""

from __future__ import annotations

from iscsikit.lun.aio import AsyncLun, open_lun_async
from iscsikit.lun.aio_multipath import AsyncMultipathLun, open_multipath_lun_async
from iscsikit.lun.fileio import LunIO
from iscsikit.lun.lun import Lun, open_lun
from iscsikit.lun.multipath import MultipathLun, open_multipath_lun
from iscsikit.lun.url import IscsiUrl, parse_iscsi_url

__all__ = [
    "AsyncLun",
    "AsyncMultipathLun",
    "IscsiUrl",
    "Lun",
    "LunIO",
    "MultipathLun",
    "open_lun",
    "open_lun_async",
    "open_multipath_lun",
    "open_multipath_lun_async",
    "parse_iscsi_url",
]
