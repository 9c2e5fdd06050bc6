"""AlignedDevice against a reference bytearray, with concurrent unaligned writes."""

from __future__ import annotations

import asyncio
import itertools
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from iscsikit.errors import InvalidParameterError
from iscsikit.nbd.align import AlignedDevice
from iscsikit.nbd.constants import Errno
from iscsikit.nbd.device import MemoryDevice, errno_for

BS = 512
SIZE = 16 * BS


class SlowDevice(MemoryDevice):
    """A block-only device whose calls yield to the loop a random number of times, so that
    concurrent read-modify-writes interleave in every way."""

    def __init__(self, size: int, seed: int) -> None:
        super().__init__(size, BS)
        self.rng = random.Random(seed)
        self.calls: list[tuple[str, int, int]] = []

    async def pause(self) -> None:
        for _ in range(self.rng.randrange(4)):
            await asyncio.sleep(0)

    async def read(self, offset: int, length: int) -> bytes:
        self.calls.append(("read", offset, length))
        await self.pause()
        return await super().read(offset, length)

    async def write(self, offset: int, data: bytes | memoryview, *, fua: bool = False) -> None:
        self.calls.append(("write", offset, len(data)))
        await self.pause()
        await super().write(offset, data, fua=fua)

    async def write_zeroes(self, offset: int, length: int, *, may_unmap: bool = False) -> None:
        self.calls.append(("zero", offset, length))
        await self.pause()
        await super().write_zeroes(offset, length)


def disjoint_ranges(draw: st.DrawFn) -> list[tuple[int, int]]:
    cuts = sorted(set(draw(st.lists(st.integers(0, SIZE), min_size=2, max_size=24))))
    pairs = list(itertools.pairwise(cuts))
    return [p for p in pairs if draw(st.booleans())]


@settings(max_examples=200, deadline=None)
@given(st.data(), st.integers(0, 2**32))
def test_concurrent_disjoint_unaligned_writes_lose_nothing(data: st.DataObject, seed: int) -> None:
    ranges = disjoint_ranges(data.draw)
    zero = data.draw(st.lists(st.booleans(), min_size=len(ranges), max_size=len(ranges)))
    inner = SlowDevice(SIZE, seed)
    inner.data[:] = random.Random(seed).randbytes(SIZE)
    reference = bytearray(inner.data)
    device = AlignedDevice(inner)
    jobs = []
    for (start, end), z in zip(ranges, zero, strict=True):
        if z:
            reference[start:end] = bytes(end - start)
            jobs.append(device.write_zeroes(start, end - start, may_unmap=True))
        else:
            payload = random.Random(start).randbytes(end - start)
            reference[start:end] = payload
            jobs.append(device.write(start, payload))

    async def run() -> None:
        await asyncio.gather(*jobs)
        assert len(device.lock) == 0

    asyncio.run(run())
    assert inner.data == reference


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.integers(0, SIZE), st.integers(0, SIZE), st.sampled_from("rwzu"))))
def test_sequential_operations_match_the_reference(ops: list[tuple[int, int, str]]) -> None:
    inner = MemoryDevice(SIZE, BS)
    device = AlignedDevice(inner)
    reference = bytearray(SIZE)

    async def run() -> None:
        for i, (a, b, op) in enumerate(ops):
            offset, length = min(a, b), abs(a - b)
            if op == "r":
                assert await device.read(offset, length) == reference[offset : offset + length]
            elif op == "w":
                payload = bytes([i % 251 + 1]) * length
                await device.write(offset, payload)
                reference[offset : offset + length] = payload
            elif op == "z":
                await device.write_zeroes(offset, length)
                reference[offset : offset + length] = bytes(length)
            else:  # unmap: only whole blocks inside, and MemoryDevice zeroes them
                await device.unmap(offset, length)
                first, last = -(-offset // BS) * BS, (offset + length) // BS * BS
                if first < last:
                    reference[first:last] = bytes(last - first)
        assert inner.data == reference

    asyncio.run(run())


def test_aligned_requests_pass_straight_through() -> None:
    inner = SlowDevice(SIZE, 1)
    device = AlignedDevice(inner)

    async def run() -> None:
        await device.write(BS, bytes(2 * BS))
        await device.read(0, BS)
        await device.write_zeroes(0, BS)

    asyncio.run(run())
    assert inner.calls == [("write", BS, 2 * BS), ("read", 0, BS), ("zero", 0, BS)]


def test_unaligned_write_reads_only_the_edge_blocks() -> None:
    inner = SlowDevice(SIZE, 1)
    asyncio.run(AlignedDevice(inner).write(100, bytes(3 * BS)))
    assert inner.calls == [("read", 0, BS), ("read", 3 * BS, BS), ("write", 0, 4 * BS)]


def test_bounds_are_checked() -> None:
    device = AlignedDevice(MemoryDevice(SIZE, BS))
    with pytest.raises(InvalidParameterError):
        asyncio.run(device.read(SIZE - 1, 2))
    with pytest.raises(InvalidParameterError):
        asyncio.run(device.write(-1, b"x"))


def test_memory_device_is_block_only_and_errors_map_to_nbd_values() -> None:
    device = MemoryDevice(SIZE, BS, read_only=True)
    with pytest.raises(InvalidParameterError) as bad:
        asyncio.run(device.read(1, BS))
    assert errno_for(bad.value) == Errno.EINVAL
    with pytest.raises(PermissionError) as denied:
        asyncio.run(device.write(0, bytes(BS)))
    assert errno_for(denied.value) == Errno.EPERM
    assert errno_for(OSError(122, "quota")) == Errno.ENOSPC
    assert errno_for(RuntimeError("x")) == Errno.EIO
    assert errno_for(TimeoutError()) == Errno.EIO


def test_aligned_device_shares_the_lun_range_lock_and_says_whether_it_unmaps() -> None:
    from iscsikit.lun.ranges import RangeLock

    thin, thick = MemoryDevice(SIZE, BS), MemoryDevice(SIZE, BS, can_unmap=False)
    assert isinstance(AlignedDevice(thin).lock, RangeLock)
    assert AlignedDevice(thin).can_unmap and not AlignedDevice(thick).can_unmap
    with pytest.raises(InvalidParameterError):
        asyncio.run(thick.unmap(0, BS))
