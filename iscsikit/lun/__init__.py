"""LUN access over a logged-in session: blocking (:class:`Lun`), asyncio
(:class:`AsyncLun`), file-like (:class:`LunIO`), by libiscsi-style URL."""

from __future__ import annotations

from iscsikit.lun.aio import AsyncLun, open_lun_async
from iscsikit.lun.fileio import LunIO
from iscsikit.lun.lun import Lun, open_lun
from iscsikit.lun.url import IscsiUrl, parse_iscsi_url

__all__ = ["AsyncLun", "IscsiUrl", "Lun", "LunIO", "open_lun", "open_lun_async", "parse_iscsi_url"]
