"""A FIFO reader-writer lock over ranges of block numbers, for asyncio writers.

A write that does not cover whole blocks is a read-modify-write: the edge blocks are read,
merged with the new bytes and written back.  Between that read and that write no other write
may land in those blocks, or it is overwritten with the stale copy and lost.  Writers
therefore hold the blocks they touch: whole-block writes (and unmaps) share a range, a
read-modify-write holds it exclusively.  Reads need no hold: a block is written in one piece.

:class:`~iscsikit.lun.aio.AsyncLun` and :class:`~iscsikit.nbd.align.AlignedDevice` both use
this one lock.  It belongs to one event loop at a time and is not thread-safe (the blocking
:class:`~iscsikit.lun.lun.Lun` serializes its calls with a thread lock instead).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field


@dataclass(eq=False, slots=True)
class _Hold:
    start: int
    end: int
    exclusive: bool
    waiter: asyncio.Future[None] | None = field(default=None)


class RangeLock:
    """A FIFO reader-writer lock over half-open ranges ``[start, end)`` of block numbers.

    A request may proceed when no *earlier* request (holding or waiting) overlaps it with
    either of the two exclusive, so a stream of shared holders cannot starve an exclusive one.
    An empty range conflicts with nothing.
    """

    def __init__(self) -> None:
        self._holds: list[_Hold] = []

    def _blocked(self, hold: _Hold) -> bool:
        for other in self._holds:
            if other is hold:
                return False
            if (
                other.start < hold.end
                and hold.start < other.end
                and (other.exclusive or hold.exclusive)
            ):
                return True
        return False

    def _wake(self) -> None:
        for hold in self._holds:
            waiter = hold.waiter
            if waiter is not None and not waiter.done() and not self._blocked(hold):
                waiter.set_result(None)

    @asynccontextmanager
    async def hold(self, start: int, end: int, *, exclusive: bool) -> AsyncIterator[None]:
        """Hold blocks ``[start, end)``, alone (``exclusive``) or shared with other shared
        holders; waits (FIFO) for earlier conflicting holders to leave."""
        entry = _Hold(start, end, exclusive)
        self._holds.append(entry)
        try:
            if self._blocked(entry):
                entry.waiter = asyncio.get_running_loop().create_future()
                await entry.waiter
            yield
        finally:
            self._holds.remove(entry)
            self._wake()

    def __len__(self) -> int:
        """Holders and waiters right now."""
        return len(self._holds)


def block_span(offset: int, length: int, block_size: int) -> tuple[int, int, bool]:
    """The blocks ``[first, end)`` a byte range touches, and whether it covers them whole."""
    first = offset // block_size
    end = -(-(offset + length) // block_size)
    whole = offset % block_size == 0 and length % block_size == 0
    return first, end, whole


__all__ = ["RangeLock", "block_span"]
