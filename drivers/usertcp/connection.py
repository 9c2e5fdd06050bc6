"""Moved to :mod:`iscsikit.net.connection`; kept so ``from .connection import`` still works."""

from __future__ import annotations

from iscsikit.net import Deadline, PduConnection, deadline_after, resolve

__all__ = ["Deadline", "PduConnection", "deadline_after", "resolve"]
