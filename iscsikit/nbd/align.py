"""Byte-granular I/O over a device that only does whole logical blocks.

A SCSI LUN reads and writes whole blocks; NBD clients may send any offset and length (the
server advertises a minimum block size of 1).  :class:`AlignedDevice` closes the gap:

- a read is widened to whole blocks and sliced;
- an unaligned write becomes a read-modify-write of its first and last blocks, written back
  together with the aligned middle in one inner write;
- an unaligned write-zeroes zeroes the partial edge blocks by read-modify-write and passes the
  aligned middle down; an unmap (a hint) drops its partial edges.

Concurrency: between reading and rewriting an edge block no other write may land in that
block, or it would be overwritten with stale data.  Writes therefore hold the blocks they
touch in :class:`~iscsikit.lun.ranges.RangeLock` (the one the LUN API uses too): aligned writes
share them, a read-modify-write holds them exclusively.  Reads take no lock (a block is written
in one piece, and the NBD spec leaves the result of overlapping requests in flight
unspecified).
"""

from __future__ import annotations

from iscsikit.errors import InternalError, InvalidParameterError
from iscsikit.lun.ranges import RangeLock
from iscsikit.nbd.device import BlockDevice


class AlignedDevice:
    """Byte-granular read / write / unmap / write_zeroes over ``inner``, whose methods need
    offsets and lengths that are multiples of ``inner.block_size``."""

    def __init__(self, inner: BlockDevice) -> None:
        self.inner = inner
        self.size = inner.size
        self.block_size = inner.block_size
        self.read_only = inner.read_only
        self.can_unmap = inner.can_unmap
        self.lock = RangeLock()

    def _check(self, offset: int, length: int) -> None:
        if offset < 0 or length < 0 or offset + length > self.size:
            raise InvalidParameterError(f"request {offset}+{length} beyond {self.size}")

    def _down(self, n: int) -> int:
        return n - n % self.block_size

    def _up(self, n: int) -> int:
        return -(-n // self.block_size) * self.block_size

    async def read(self, offset: int, length: int) -> bytes:
        self._check(offset, length)
        if not length:
            return b""
        start, end = self._down(offset), self._up(offset + length)
        if start == offset and end == offset + length:
            return await self.inner.read(offset, length)
        data = await self.inner.read(start, end - start)
        return data[offset - start : offset - start + length]

    async def readinto(self, offset: int, view: memoryview) -> None:
        """Read ``len(view)`` bytes at ``offset`` into ``view``: straight into it when the
        range is whole blocks and the device has ``readinto`` (an AsyncLun: the SCSI data
        lands in the caller's buffer), else through :meth:`read`."""
        length = len(view)
        self._check(offset, length)
        inner = getattr(self.inner, "readinto", None)
        if inner is not None and not offset % self.block_size and not length % self.block_size:
            got = await inner(offset, view)
            if got is not None and got != length:
                raise InternalError(f"device read {got} of {length} bytes")
        else:
            view[:] = await self.read(offset, length)

    async def write(self, offset: int, data: bytes | memoryview, *, fua: bool = False) -> None:
        length = len(data)
        self._check(offset, length)
        if not length:
            return
        start, end = self._down(offset), self._up(offset + length)
        aligned = start == offset and end == offset + length
        bs = self.block_size
        async with self.lock.hold(start // bs, end // bs, exclusive=not aligned):
            if aligned:
                await self.inner.write(offset, data, fua=fua)
            else:
                await self.inner.write(start, await self._merge(offset, data), fua=fua)

    async def _merge(self, offset: int, data: bytes | memoryview) -> memoryview:
        """The whole blocks covering ``offset`` + ``data``: old edge blocks, new bytes."""
        bs, length = self.block_size, len(data)
        start, end = self._down(offset), self._up(offset + length)
        buf = bytearray(end - start)
        if offset != start:
            buf[:bs] = await self.inner.read(start, bs)
        if offset + length != end and (end - bs > start or offset == start):
            buf[-bs:] = await self.inner.read(end - bs, bs)
        buf[offset - start : offset - start + length] = data
        return memoryview(buf)

    async def write_zeroes(self, offset: int, length: int, *, may_unmap: bool = False) -> None:
        self._check(offset, length)
        if not length:
            return
        end = offset + length
        start, stop = self._down(offset), self._up(end)
        middle_start, middle_end = self._up(offset), self._down(end)
        bs = self.block_size
        aligned = start == offset and stop == end
        async with self.lock.hold(start // bs, stop // bs, exclusive=not aligned):
            if middle_start >= middle_end:  # no whole block inside: one or two partial blocks
                await self.inner.write(start, await self._merge(offset, bytes(length)))
                return
            if offset < middle_start:
                head = await self._merge(offset, bytes(middle_start - offset))
                await self.inner.write(start, head)
            await self.inner.write_zeroes(
                middle_start, middle_end - middle_start, may_unmap=may_unmap
            )
            if middle_end < end:
                await self.inner.write(
                    middle_end, await self._merge(middle_end, bytes(end - middle_end))
                )

    async def unmap(self, offset: int, length: int) -> None:
        self._check(offset, length)
        # Unmapping is a hint (proto.md, NBD_CMD_TRIM: the server MAY discard): only the
        # whole blocks inside the range are passed down.
        start, end = self._up(offset), self._down(offset + length)
        if start >= end:
            return
        bs = self.block_size
        async with self.lock.hold(start // bs, end // bs, exclusive=False):
            await self.inner.unmap(start, end - start)

    async def flush(self) -> None:
        await self.inner.flush()


__all__ = ["AlignedDevice"]
