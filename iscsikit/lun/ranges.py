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
    An empty range conflicts with nothing.  While no exclusive request is present a shared
    one costs O(1) (the common case: whole-block writes in flight), otherwise O(holders).
    """

    def __init__(self) -> None:
        # Insertion-ordered (FIFO), O(1) removal.
        self._holds: dict[_Hold, None] = {}
        self._exclusive = 0  # exclusive requests, holding or waiting
        self._waiting = 0

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

    def hold(self, start: int, end: int, *, exclusive: bool) -> _Held:
        """``async with lock.hold(start, end, exclusive=...)``: hold blocks ``[start, end)``,
        alone (``exclusive``) or shared with other shared holders; entering waits (FIFO) for
        earlier conflicting requests to leave."""
        return _Held(self, _Hold(start, end, exclusive))

    async def _acquire(self, entry: _Hold) -> None:
        self._holds[entry] = None
        self._exclusive += entry.exclusive
        if not (self._exclusive and self._blocked(entry)):
            return
        entry.waiter = asyncio.get_running_loop().create_future()
        self._waiting += 1
        try:
            await entry.waiter
        except BaseException:  # cancelled while waiting: leave no trace
            self._release(entry)
            raise
        finally:
            self._waiting -= 1

    def _release(self, entry: _Hold) -> None:
        del self._holds[entry]
        self._exclusive -= entry.exclusive
        if self._waiting:
            self._wake()

    def __len__(self) -> int:
        """Holders and waiters right now."""
        return len(self._holds)


class _Held:
    """The context manager :meth:`RangeLock.hold` returns (a class, not a generator: this
    is on every write's path)."""

    __slots__ = ("_entry", "_lock")

    def __init__(self, lock: RangeLock, entry: _Hold) -> None:
        self._lock = lock
        self._entry = entry

    async def __aenter__(self) -> None:
        await self._lock._acquire(self._entry)

    async def __aexit__(self, *exc: object) -> None:
        self._lock._release(self._entry)


def block_span(offset: int, length: int, block_size: int) -> tuple[int, int, bool]:
    """The blocks ``[first, end)`` a byte range touches, and whether it covers them whole."""
    first = offset // block_size
    end = -(-(offset + length) // block_size)
    whole = offset % block_size == 0 and length % block_size == 0
    return first, end, whole


__all__ = ["RangeLock", "block_span"]
