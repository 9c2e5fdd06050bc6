"""Data safety of the LUN API under concurrency, against a real tgtd (issue 9, C).

- A blocking :class:`~iscsikit.lun.Lun` shared by 8 threads: each thread owns a byte range
  whose edges share blocks with its neighbours', writes unaligned pieces of it and reads
  them back; every read returns what that thread wrote, and tgtd's backing file ends up
  with every thread's last bytes.
- An :class:`~iscsikit.lun.AsyncLun` with many coroutines writing different bytes of the
  same 512-byte blocks at once (each one a read-modify-write): every write lands.

Sizes and offsets are random (seeded: a failure prints its seed in the assertion).
"""

from __future__ import annotations

import asyncio
import os
import random
import threading
from collections.abc import Iterator

import pytest

import iscsikit
from iscsikit.errors import ConnectionFailedError
from iscsikit.testing.tgtd import Tgtd

pytestmark = pytest.mark.integration

LUN_SIZE = 8 << 20
BS = 512
IQN = "iqn.2024-01.test.concurrency:disk"
SEED = int(os.environ.get("ISCSIKIT_SEED", random.randrange(1 << 32)))


@pytest.fixture(scope="module")
def target(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Tgtd, int]]:
    with Tgtd(tmp_path_factory.mktemp("concurrency")) as tgtd:
        tid = tgtd.add_target(IQN, lun_size=LUN_SIZE)
        yield tgtd, tid


def _url(tgtd: Tgtd) -> str:
    return f"iscsi://{tgtd.portal}/{IQN}/1"


def _backing(tgtd: Tgtd, tid: int) -> bytes:
    return tgtd.backing_path(tid, 1).read_bytes()


def test_threads_sharing_a_blocking_lun_get_their_own_data(target: tuple[Tgtd, int]) -> None:
    tgtd, tid = target
    threads, rounds = 8, 40
    # Thread i owns [bounds[i], bounds[i + 1]): about 3 blocks each, cut at unaligned
    # offsets so that every boundary block is shared by two threads.
    base = 1 << 20
    bounds = [base + i * 1500 + (7 * i) % 13 for i in range(threads + 1)]
    model = bytearray(_backing(tgtd, tid))
    failures: list[str] = []

    with iscsikit.open_lun(_url(tgtd)) as lun:

        def worker(index: int) -> None:
            rng = random.Random(f"{SEED}-{index}")
            lo, hi = bounds[index], bounds[index + 1]
            mine = bytearray(model[lo:hi])
            try:
                for n in range(rounds):
                    a, b = sorted(rng.sample(range(lo, hi + 1), 2))
                    payload = rng.randbytes(b - a)
                    lun.write(a, payload)
                    mine[a - lo : b - lo] = payload
                    if n % 4 == 3:  # the whole region: neighbours' writes must not show
                        got = lun.read(lo, hi - lo)
                        if got != mine:
                            failures.append(f"thread {index} round {n}: region differs")
                    elif lun.read(a, b - a) != payload:
                        failures.append(f"thread {index} round {n}: read {a}+{b - a} differs")
            except Exception as exc:  # reported below, with the seed
                failures.append(f"thread {index}: {exc!r}")
            model[lo:hi] = mine

        pool = [threading.Thread(target=worker, args=(i,)) for i in range(threads)]
        for thread in pool:
            thread.start()
        for thread in pool:
            thread.join(120)
        assert not any(t.is_alive() for t in pool)
        assert not failures, f"seed {SEED}: {failures[:5]}"
        lun.flush()
    assert _backing(tgtd, tid)[base : bounds[-1]] == model[base : bounds[-1]], f"seed {SEED}"


def test_closing_a_shared_lun_waits_and_later_calls_fail_cleanly(
    target: tuple[Tgtd, int],
) -> None:
    tgtd, _ = target
    lun = iscsikit.open_lun(_url(tgtd))
    stop = threading.Event()
    errors: list[BaseException] = []

    def reader() -> None:
        while not stop.is_set():
            try:
                assert len(lun.read(1000, 5000)) == 5000
            except ConnectionFailedError as exc:
                errors.append(exc)
                return

    pool = [threading.Thread(target=reader) for _ in range(4)]
    for thread in pool:
        thread.start()
    lun.close()
    stop.set()
    for thread in pool:
        thread.join(60)
    assert lun.closed
    assert all("closed" in str(e) for e in errors), errors


@pytest.mark.parametrize("blocks", [1, 4])
def test_async_writes_sharing_blocks_all_land(target: tuple[Tgtd, int], blocks: int) -> None:
    """16 coroutines per block, each writing its own 32 bytes of it, all at once; every
    write is a read-modify-write of the same block(s)."""
    tgtd, tid = target
    rng = random.Random(f"{SEED}-async-{blocks}")
    base = (2 << 20) + blocks * 64 * BS
    piece = 32
    rounds = 6

    async def main() -> bytes:
        async with iscsikit.open_lun_async(_url(tgtd)) as lun:
            expected = bytearray(await lun.read(base, blocks * BS))
            for _ in range(rounds):
                writes = []
                for at in range(0, blocks * BS, piece):
                    payload = rng.randbytes(piece)
                    expected[at : at + piece] = payload
                    writes.append(lun.write(base + at, payload))
                rng.shuffle(writes)
                await asyncio.gather(*writes)
                assert len(lun.ranges) == 0
                assert await lun.read(base, blocks * BS) == expected, f"seed {SEED}"
            await lun.flush()
            return bytes(expected)

    expected = asyncio.run(main())
    assert _backing(tgtd, tid)[base : base + blocks * BS] == expected, f"seed {SEED}"


def test_async_aligned_and_unaligned_writes_of_one_block_all_land(
    target: tuple[Tgtd, int],
) -> None:
    """Whole-block writes race read-modify-writes of the same blocks: the later-issued
    wins for the bytes both touch, nothing else is lost."""
    tgtd, tid = target
    rng = random.Random(f"{SEED}-mixed")
    base = 3 << 20
    span = 8 * BS

    async def main() -> bytes:
        async with iscsikit.open_lun_async(_url(tgtd)) as lun:
            expected = bytearray(await lun.read(base, span))
            for _ in range(10):
                jobs = []
                # One whole-block write first, then unaligned writes into the same
                # blocks: the range lock is FIFO, so they apply in the order issued.
                block = rng.randrange(span // BS) * BS
                whole = rng.randbytes(BS)
                expected[block : block + BS] = whole
                jobs.append(lun.write(base + block, whole))
                for at in range(0, span, 64):
                    payload = rng.randbytes(48)
                    expected[at : at + 48] = payload
                    jobs.append(lun.write(base + at, payload))
                await asyncio.gather(*jobs)
            assert await lun.read(base, span) == expected, f"seed {SEED}"
            await lun.flush()
            return bytes(expected)

    expected = asyncio.run(main())
    assert _backing(tgtd, tid)[base : base + span] == expected, f"seed {SEED}"
