"""iscsikit: an iSCSI initiator framework."""

from __future__ import annotations

from iscsikit.errors import IscsiErr, IscsiError

__version__ = "0.1.0"

__all__ = ["IscsiErr", "IscsiError", "__version__"]
