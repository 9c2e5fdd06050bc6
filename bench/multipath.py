"""Userspace multipath over two portals vs one session, same tgtd, same run.

A private tgtd listens on 127.0.0.1 and 127.0.0.2 (one target, LUN 1 = a file of random
data, page cache warm).  Each cell runs for ``--seconds`` and counts completed reads:

* ``single``: one :class:`~iscsikit.lun.Lun` (one session), ``--threads`` threads
  calling ``read`` (a blocking Lun runs one call at a time: queue depth 1);
* ``multipath``: :func:`iscsikit.open_multipath_lun` over both portals (round-robin and
  queue-depth), the same threads (one call at a time per path: queue depth 2);
* ``async``: one :class:`~iscsikit.lun.AsyncLun` session with ``--threads`` reads in
  flight (what one session does at QD32);
* ``async multipath``: :func:`iscsikit.open_multipath_lun_async` over both portals
  (round-robin and queue-depth), the same ``--threads`` reads in flight.

Shapes: seq read 64 KiB and rand read 4 KiB, "QD32" = 32 callers.  The runs of each
cell are interleaved (the order rotates) and the median is reported, with tgtd's CPU
share and the initiator's (1.0 = one whole CPU; tgtd's single event loop caps whatever
the initiator does, and the initiator's threads share one GIL)::

    python3 bench/multipath.py                  # 3 runs x 5 s per cell
    python3 bench/multipath.py --quick          # 1 run x 2 s

Nothing here is asserted by a test; the table is what bench/README.md records.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import statistics
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import iscsikit
from iscsikit.testing.tgtd import Tgtd

IQN = "iqn.2024-01.test.iscsikit:multipath-bench"
LUN_SIZE = 256 << 20
SHAPES = {"seq read 64 KiB": (64 << 10, False), "rand read 4 KiB": (4 << 10, True)}


def _offsets(size: int, rand: bool, seed: int) -> Callable[[], int]:
    rng = random.Random(seed)
    slots = LUN_SIZE // size
    state = [0]

    def next_offset() -> int:
        if rand:
            return rng.randrange(slots) * size
        state[0] = (state[0] + 1) % slots
        return state[0] * size

    return next_offset


def _cpu(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _threads(lun: Any, size: int, rand: bool, threads: int, seconds: float) -> int:
    """Reads completed by ``threads`` callers of a blocking ``lun`` in ``seconds``."""
    done = [0] * threads
    stop = time.monotonic() + seconds

    def caller(i: int) -> None:
        offset = _offsets(size, rand, i)
        buf = bytearray(size)
        while time.monotonic() < stop:
            lun.readinto(offset(), buf)
            done[i] += 1

    workers = [threading.Thread(target=caller, args=(i,)) for i in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    return sum(done)


async def _async(url: str, size: int, rand: bool, depth: int, seconds: float) -> int:
    async with iscsikit.open_lun_async(url) as lun:
        return await _callers(lun, size, rand, depth, seconds)


async def _async_multi(
    urls: list[str], policy: Any, size: int, rand: bool, depth: int, seconds: float
) -> int:
    async with iscsikit.open_multipath_lun_async(urls, policy) as lun:
        return await _callers(lun, size, rand, depth, seconds)


async def _callers(lun: Any, size: int, rand: bool, depth: int, seconds: float) -> int:
    """Reads completed by ``depth`` coroutines reading ``lun`` for ``seconds``."""
    stop = time.monotonic() + seconds
    done = [0]

    async def caller(i: int) -> None:
        offset = _offsets(size, rand, i)
        buf = bytearray(size)
        while time.monotonic() < stop:
            await lun.readinto(offset(), buf)
            done[0] += 1

    await asyncio.gather(*(caller(i) for i in range(depth)))
    return done[0]


def run(runs: int, seconds: float, threads: int) -> list[tuple[str, str, float, float, float]]:
    with tempfile.TemporaryDirectory() as workdir, Tgtd(Path(workdir)) as tgtd:
        tgtd.add_target(IQN, tid=1, lun_size=LUN_SIZE)
        backing = tgtd.backing_path(1, 1)
        with backing.open("r+b") as f:
            for _ in range(LUN_SIZE // (1 << 20)):
                f.write(os.urandom(1 << 20))
        backing.read_bytes()  # warm the page cache
        second = tgtd.add_portal("127.0.0.2")
        urls = [f"iscsi://{p}/{IQN}/1" for p in (tgtd.portal, second)]
        assert tgtd.pid is not None
        configs: dict[str, Callable[[int, bool], int]] = {
            "single": lambda size, rand: _single(urls[0], size, rand, threads, seconds),
            "multipath round-robin": lambda size, rand: _multi(
                urls, "round-robin", size, rand, threads, seconds
            ),
            "multipath queue-depth": lambda size, rand: _multi(
                urls, "queue-depth", size, rand, threads, seconds
            ),
            "async single": lambda size, rand: asyncio.run(
                _async(urls[0], size, rand, threads, seconds)
            ),
            "async multipath round-robin": lambda size, rand: asyncio.run(
                _async_multi(urls, "round-robin", size, rand, threads, seconds)
            ),
            "async multipath queue-depth": lambda size, rand: asyncio.run(
                _async_multi(urls, "queue-depth", size, rand, threads, seconds)
            ),
        }
        results: list[tuple[str, str, float, float, float]] = []
        for shape, (size, rand) in SHAPES.items():
            iops: dict[str, list[float]] = {name: [] for name in configs}
            cpu: dict[str, list[float]] = {name: [] for name in configs}
            own: dict[str, list[float]] = {name: [] for name in configs}
            names = list(configs)
            for r in range(runs):
                for name in names[r % len(names) :] + names[: r % len(names)]:
                    before, mine, t0 = _cpu(tgtd.pid), time.process_time(), time.monotonic()
                    ios = configs[name](size, rand)
                    elapsed = time.monotonic() - t0
                    iops[name].append(ios / seconds)
                    cpu[name].append((_cpu(tgtd.pid) - before) / elapsed)
                    own[name].append((time.process_time() - mine) / elapsed)
            for name in names:
                med = statistics.median
                results.append((shape, name, med(iops[name]), med(cpu[name]), med(own[name])))
        return results


def _single(url: str, size: int, rand: bool, threads: int, seconds: float) -> int:
    with iscsikit.open_lun(url) as lun:
        return _threads(lun, size, rand, threads, seconds)


def _multi(
    urls: list[str], policy: Any, size: int, rand: bool, threads: int, seconds: float
) -> int:
    with iscsikit.open_multipath_lun(urls, policy) as lun:
        return _threads(lun, size, rand, threads, seconds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--threads", type=int, default=32)
    parser.add_argument("--quick", action="store_true", help="1 run x 2 s")
    args = parser.parse_args()
    runs, seconds = (1, 2.0) if args.quick else (args.runs, args.seconds)
    results = run(runs, seconds, args.threads)
    base = {shape: iops for shape, name, iops, _, _ in results if name == "single"}
    one = {shape: iops for shape, name, iops, _, _ in results if name == "async single"}
    print(
        "| shape | initiator | IOPS (median) | vs single | vs async single | tgtd CPU "
        "| initiator CPU |"
    )
    print("|---|---|---|---|---|---|---|")
    for shape, name, iops, cpu, own in results:
        ratio, vs_async = iops / base[shape], iops / one[shape]
        print(
            f"| {shape} | {name} | {iops:,.0f} | {ratio:.2f}x | {vs_async:.2f}x | {cpu:.2f} "
            f"| {own:.2f} |"
        )


if __name__ == "__main__":
    main()
