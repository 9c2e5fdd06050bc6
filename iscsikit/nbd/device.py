"""What the NBD server serves: the :class:`BlockDevice` shape, and :class:`MemoryDevice`.

``BlockDevice`` is structural (a ``typing.Protocol``): an iSCSI LUN from
``iscsikit.open_lun_async`` has it, and so does :class:`MemoryDevice`, a bytearray that
behaves like a SCSI disk (whole logical blocks only, errors for anything else) and serves
tests and examples.  Byte-granular access on top of such a device is
:class:`~iscsikit.nbd.align.AlignedDevice`'s job.

:func:`errno_for` is the one mapping from a device exception to an NBD error value.
"""

from __future__ import annotations

import errno
from typing import Protocol

from iscsikit.errors import InvalidParameterError
from iscsikit.nbd.constants import Errno


class BlockDevice(Protocol):
    size: int  # bytes
    block_size: int  # logical block size in bytes (512, 4096...)
    read_only: bool
    #: Whether :meth:`unmap` deallocates (an iSCSI LUN: UNMAP supported, LBPU); the NBD
    #: export advertises trim only then.
    can_unmap: bool

    async def read(self, offset: int, length: int) -> bytes: ...
    async def write(self, offset: int, data: bytes | memoryview, *, fua: bool = False) -> None: ...
    async def flush(self) -> None: ...
    async def unmap(self, offset: int, length: int) -> None: ...
    async def write_zeroes(self, offset: int, length: int, *, may_unmap: bool = False) -> None: ...


class MemoryDevice:
    """A RAM disk of ``size`` bytes made of ``block_size`` logical blocks.

    Like a SCSI LUN it accepts only whole, in-range blocks, and raises
    :class:`~iscsikit.errors.InvalidParameterError` otherwise (an ILLEGAL REQUEST).  Unmap
    zeroes; ``can_unmap=False`` makes it a disk without UNMAP.
    """

    def __init__(
        self,
        size: int,
        block_size: int = 512,
        *,
        read_only: bool = False,
        can_unmap: bool = True,
    ) -> None:
        if block_size <= 0 or block_size & (block_size - 1):
            raise InvalidParameterError(f"block size {block_size} is not a power of two")
        if size < 0 or size % block_size:
            raise InvalidParameterError(f"size {size} is not a multiple of {block_size}")
        self.size = size
        self.block_size = block_size
        self.read_only = read_only
        self.can_unmap = can_unmap
        self.data = bytearray(size)
        self.flushes = 0

    def _check(self, offset: int, length: int, *, writing: bool = False) -> None:
        if writing and self.read_only:
            raise PermissionError(errno.EPERM, "device is read-only")
        if offset % self.block_size or length % self.block_size:
            raise InvalidParameterError(f"unaligned request {offset}+{length}")
        if offset < 0 or length < 0 or offset + length > self.size:
            raise InvalidParameterError(f"request {offset}+{length} beyond {self.size}")

    async def read(self, offset: int, length: int) -> bytes:
        self._check(offset, length)
        return bytes(self.data[offset : offset + length])

    async def write(self, offset: int, data: bytes | memoryview, *, fua: bool = False) -> None:
        self._check(offset, len(data), writing=True)
        self.data[offset : offset + len(data)] = data

    async def flush(self) -> None:
        self.flushes += 1

    async def unmap(self, offset: int, length: int) -> None:
        if not self.can_unmap:
            raise InvalidParameterError("the device does not support unmap")
        await self.write_zeroes(offset, length)

    async def write_zeroes(self, offset: int, length: int, *, may_unmap: bool = False) -> None:
        self._check(offset, length, writing=True)
        self.data[offset : offset + length] = bytes(length)


#: OS errors that map to an NBD error value other than EIO (proto.md, "Error values":
#: EDQUOT and EFBIG SHOULD become ENOSPC).
_OS_ERRNO = {
    errno.EPERM: Errno.EPERM,
    errno.EACCES: Errno.EPERM,
    errno.EROFS: Errno.EPERM,
    errno.EINVAL: Errno.EINVAL,
    errno.ENOSPC: Errno.ENOSPC,
    errno.EDQUOT: Errno.ENOSPC,
    errno.EFBIG: Errno.ENOSPC,
    errno.EOVERFLOW: Errno.EOVERFLOW,
}


def errno_for(exc: BaseException) -> Errno:
    """The NBD error value reporting ``exc``: EINVAL for a bad parameter, EPERM / ENOSPC when
    an ``OSError`` says so, EIO for everything else."""
    if isinstance(exc, InvalidParameterError):
        return Errno.EINVAL
    if isinstance(exc, OSError) and exc.errno is not None:
        return _OS_ERRNO.get(exc.errno, Errno.EIO)
    return Errno.EIO


__all__ = ["BlockDevice", "MemoryDevice", "errno_for"]
