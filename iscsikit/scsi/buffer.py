"""Bounds-checked reading of target-supplied SCSI data, and the error for malformed data.

This module owns :class:`ScsiParseError`, the one error every parser in
:mod:`iscsikit.scsi` raises when a buffer cannot be decoded at all (empty, a wrong page
code, an unknown sense format).  Short buffers are *not* errors in general: SCSI lets a
target return fewer bytes than a structure's length field announces when the allocation
length was too small (SPC-4 §4.2.5.6), so parsers read what is there and report the
rest as zero / absent.  The helpers here make "what is there" cheap and IndexError-free.
"""

from __future__ import annotations

from iscsikit.errors import IscsiErr, IscsiError

__all__ = ["ScsiParseError", "be", "byte", "require"]


class ScsiParseError(IscsiError, ValueError):
    """Target-supplied SCSI data (sense, INQUIRY, VPD, ...) could not be decoded."""

    code = IscsiErr.ERR


def byte(data: bytes, offset: int) -> int:
    """``data[offset]``, or 0 when the buffer is shorter (a truncated field reads as zero)."""
    return data[offset] if offset < len(data) else 0


def be(data: bytes, offset: int, size: int) -> int:
    """The big-endian unsigned field ``data[offset:offset+size]``; missing bytes read as 0.

    A partially present field is zero-extended on the right, as if the missing bytes
    had been transferred as zeros, which is what a residual underflow means.
    """
    chunk = data[offset : offset + size]
    return int.from_bytes(chunk.ljust(size, b"\0"), "big") if size else 0


def require(data: bytes, size: int, what: str) -> None:
    """Raise :class:`ScsiParseError` unless ``data`` holds at least ``size`` bytes."""
    if len(data) < size:
        raise ScsiParseError(f"{what}: need at least {size} bytes, got {len(data)}")
