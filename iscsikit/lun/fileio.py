"""A LUN as a Python file object (``io.RawIOBase``): a :class:`Lun`, or any
:class:`BlockFile` (:func:`iscsikit.open_session_lun`'s NBD-backed LUN).

``LunIO(lun)`` reads, writes and seeks by byte position, so a LUN can be handed to
anything that takes a binary file: ``shutil.copyfileobj``, ``tarfile``, ``hashlib``,
``io.BufferedReader`` (wrap it for small reads: each raw call is at least one SCSI
command).  Unaligned positions work (partial blocks are read, merged and written
back).  ``flush()`` is SYNCHRONIZE CACHE; closing the file does not close the Lun.
"""

from __future__ import annotations

import io
import os
from typing import Any, Protocol


class BlockFile(Protocol):
    """What :class:`LunIO` needs of a LUN: byte-addressed reads and writes."""

    @property
    def size(self) -> int: ...

    @property
    def read_only(self) -> bool: ...

    def readinto(self, offset: int, buffer: bytearray | memoryview) -> int: ...

    def write(self, offset: int, data: bytes | bytearray | memoryview) -> int | None: ...

    def flush(self) -> None: ...


class LunIO(io.RawIOBase):
    """Binary, seekable file over a LUN; end of file is the LUN's capacity."""

    def __init__(self, lun: BlockFile, *, writable: bool | None = None) -> None:
        super().__init__()
        self.lun = lun
        self._pos = 0
        self._writable = (not lun.read_only) if writable is None else writable

    def readable(self) -> bool:
        return True

    def writable(self) -> bool:
        return self._writable

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        if whence == os.SEEK_SET:
            pos = offset
        elif whence == os.SEEK_CUR:
            pos = self._pos + offset
        elif whence == os.SEEK_END:
            pos = self.lun.size + offset
        else:
            raise ValueError(f"invalid whence {whence}")
        if pos < 0:
            raise OSError(22, "negative seek position")
        self._pos = pos
        return pos

    def readinto(self, buffer: Any) -> int:
        self._checkClosed()
        view = memoryview(buffer).cast("B")
        n = max(0, min(len(view), self.lun.size - self._pos))
        if n:
            self.lun.readinto(self._pos, view[:n])
            self._pos += n
        return n

    def write(self, data: Any) -> int:
        self._checkClosed()
        if not self._writable:
            raise io.UnsupportedOperation("the LUN is opened read-only")
        view = memoryview(data).cast("B")
        if self._pos + len(view) > self.lun.size:
            raise OSError(28, "write beyond the end of the LUN")  # ENOSPC
        self.lun.write(self._pos, view)
        self._pos += len(view)
        return len(view)

    def flush(self) -> None:
        if not self.closed and self._writable:
            self.lun.flush()

    def truncate(self, size: int | None = None) -> int:
        raise io.UnsupportedOperation("a LUN has a fixed size")

    def fileno(self) -> int:
        raise io.UnsupportedOperation("a LUN is not an OS file")


__all__ = ["LunIO"]
