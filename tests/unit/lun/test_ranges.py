"""RangeLock (iscsikit.lun.ranges): FIFO order, exclusion, and block_span."""

from __future__ import annotations

import asyncio
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from iscsikit.lun.ranges import RangeLock, block_span


def test_range_lock_is_fifo_for_conflicting_holders() -> None:
    lock = RangeLock()
    order: list[str] = []

    async def holder(name: str, start: int, end: int, exclusive: bool) -> None:
        async with lock.hold(start, end, exclusive=exclusive):
            order.append(f"+{name}")
            await asyncio.sleep(0)
            await asyncio.sleep(0)
            order.append(f"-{name}")

    async def run() -> None:
        await asyncio.gather(
            holder("a", 0, 2, False),
            holder("b", 1, 3, False),  # shares with a
            holder("x", 0, 1, True),  # waits for a
            holder("c", 0, 1, False),  # waits for x (FIFO), although it shares with a
            holder("d", 5, 6, True),  # unrelated
        )

    asyncio.run(run())
    assert order.index("+x") > order.index("-a")
    assert order.index("+c") > order.index("-x")
    assert order.index("+b") < order.index("-a")
    assert order.index("+d") < order.index("-a")


def test_range_lock_cancelled_waiter_leaves_no_trace() -> None:
    lock = RangeLock()

    async def run() -> None:
        async with lock.hold(0, 1, exclusive=True):
            waiter = asyncio.create_task(lock.hold(0, 1, exclusive=True).__aenter__())
            await asyncio.sleep(0)
            waiter.cancel()
            with pytest.raises(asyncio.CancelledError):
                await waiter
        assert len(lock) == 0

    asyncio.run(run())


@settings(max_examples=100, deadline=None)
@given(
    st.lists(st.tuples(st.integers(0, 16), st.integers(0, 16), st.booleans()), max_size=20),
    st.integers(0, 2**32),
)
def test_conflicting_holders_never_overlap(
    requests: list[tuple[int, int, bool]], seed: int
) -> None:
    lock = RangeLock()
    rng = random.Random(seed)
    inside: list[tuple[int, int, bool]] = []

    async def holder(start: int, end: int, exclusive: bool) -> None:
        async with lock.hold(start, end, exclusive=exclusive):
            for other_start, other_end, other_exclusive in inside:
                overlap = other_start < end and start < other_end
                assert not (overlap and (exclusive or other_exclusive))
            me = (start, end, exclusive)
            inside.append(me)
            for _ in range(rng.randrange(4)):
                await asyncio.sleep(0)
            inside.remove(me)

    async def run() -> None:
        await asyncio.gather(*(holder(min(a, b), max(a, b), x) for a, b, x in requests))
        assert len(lock) == 0

    asyncio.run(run())


@pytest.mark.parametrize(
    ("offset", "length", "expected"),
    [
        (0, 512, (0, 1, True)),
        (512, 1024, (1, 3, True)),
        (100, 10, (0, 1, False)),
        (500, 24, (0, 2, False)),
        (512, 0, (1, 1, True)),
        (1000, 1048, (1, 4, False)),
    ],
)
def test_block_span(offset: int, length: int, expected: tuple[int, int, bool]) -> None:
    assert block_span(offset, length, 512) == expected
