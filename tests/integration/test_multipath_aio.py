"""AsyncMultipathLun against one tgtd with two portals (127.0.0.1 and 127.0.0.2).

Sixteen coroutines write one verified stream (QD 16: block ``seq % BLOCKS`` gets a
pattern of ``seq`` and the run's seed; one write per block in flight at a time, so the
last write acknowledged is what the block must hold) while tgtd drops path 0's
connection, or while the second portal is deleted and added again.  Nothing may be lost
or corrupted, I/O must go on over the other path, the failed path must carry I/O again
afterwards, and writes interrupted by the failure are re-issued only once their path is
fenced (reinstated, or ``fence_timeout`` passed).  Counts are printed.
"""

from __future__ import annotations

import asyncio
import os
import random
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

import iscsikit
from iscsikit.lun.aio_multipath import AsyncMultipathLun, AsyncPath
from iscsikit.manager.managed import ManagedSession
from iscsikit.proto.ffp import Timers
from iscsikit.testing.tgtd import Tgtd

pytestmark = pytest.mark.integration

IQN = "iqn.2024-01.test.mpaio:t{}"
LUN_SIZE = 32 << 20
BLOCK = 16 << 10
BLOCKS = LUN_SIZE // BLOCK
QD = 16
SEED = int(os.environ.get("ISCSIKIT_SEED", random.randrange(1 << 32)))
OPTIONS: dict[str, Any] = {
    "DefaultTime2Wait": 0,
    "timers": Timers(noop_out_interval=1, noop_out_timeout=1, command_timeout=3, tick=0.1),
    "timeout": 2,
    "retry_delay": 0.5,
}
_SECOND: list[str] = []


@pytest.fixture(scope="module")
def tgtd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Tgtd]:
    with Tgtd(tmp_path_factory.mktemp("mpaio")) as tgtd:
        for tid in (1, 2):
            tgtd.add_target(IQN.format(tid), tid=tid, lun_size=LUN_SIZE)
            tgtd.set_target_param(tid, "DefaultTime2Wait", 0)
        _SECOND.append(tgtd.add_portal("127.0.0.2"))
        yield tgtd


def _urls(tgtd: Tgtd, tid: int) -> list[str]:
    return [f"iscsi://{p}/{IQN.format(tid)}/1" for p in (tgtd.portal, _SECOND[-1])]


def _pattern(seq: int) -> bytes:
    head = f"{SEED:08x}:{seq:08d}:".encode()
    return (head * (BLOCK // len(head) + 1))[:BLOCK]


def _drop(tgtd: Tgtd, tid: int, path: AsyncPath) -> None:
    """tgtadm --op delete --mode conn for ``path``'s session (tgt reports the TSIH in
    host byte order: accept either)."""
    session = path.lun.session
    assert isinstance(session, ManagedSession) and session.transport_session is not None
    tsih = session.transport_session.tsih
    ids = {tsih, int.from_bytes(tsih.to_bytes(2, "big"), "little")}
    conns = [c for c in tgtd.sessions(tid) if c.sid in ids]
    assert len(conns) == 1, (tsih, tgtd.sessions(tid))
    tgtd.tgtadm(
        "--op", "delete", "--mode", "conn", "--tid", str(tid),
        "--sid", str(conns[0].sid), "--cid", str(conns[0].cid),
    )  # fmt: skip


class _Stream:
    """QD coroutines writing a verified stream."""

    def __init__(self, lun: AsyncMultipathLun) -> None:
        self.lun = lun
        self.written = 0
        self.last: dict[int, int] = {}
        self._seq = 0
        self._locks = [asyncio.Lock() for _ in range(BLOCKS)]
        self._stop = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    async def _worker(self) -> None:
        while not self._stop.is_set():
            seq, self._seq = self._seq, self._seq + 1
            block = seq % BLOCKS
            async with self._locks[block]:
                await self.lun.write(block * BLOCK, _pattern(seq))
                self.last[block] = max(self.last.get(block, -1), seq)
            self.written += 1

    async def __aenter__(self) -> _Stream:
        self._tasks = [asyncio.create_task(self._worker()) for _ in range(QD)]
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._stop.set()
        await asyncio.wait_for(asyncio.gather(*self._tasks), 60)

    async def wait(self, what: str, until: Callable[[], bool], timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while not until():
            for task in self._tasks:
                if task.done():
                    task.result()  # raises the writer's error
                    raise AssertionError("a writer stopped")
            assert time.monotonic() < deadline, f"timed out waiting: {what}: {self.lun!r}"
            await asyncio.sleep(0.01)

    async def verify(self) -> tuple[int, int]:
        bad = 0
        for block, seq in self.last.items():
            bad += await self.lun.read(block * BLOCK, BLOCK) != _pattern(seq)
        return len(self.last), bad


def _report(name: str, lun: AsyncMultipathLun, stream: _Stream, blocks: int, bad: int) -> None:
    info = lun.paths
    print(
        f"\n{name}: {stream.written} writes at QD {QD}, {blocks} blocks read back, {bad} bad; "
        f"calls per path {[p.commands for p in info]}, failures {[p.failures for p in info]}, "
        f"re-issued {lun.reissues}, fenced {lun.fenced} (reinstated {lun.fence_reinstated}, "
        f"timed out {lun.fence_timed_out})"
    )


def test_paths_grouped_and_round_robin(tgtd: Tgtd) -> None:
    async def main() -> None:
        async with iscsikit.open_multipath_lun_async(_urls(tgtd, 1), **OPTIONS) as lun:
            assert [p.name for p in lun.paths] == [tgtd.portal, _SECOND[-1]]
            await asyncio.gather(*(lun.write(i * 4096, bytes([i]) * 4096) for i in range(64)))
            got = await asyncio.gather(*(lun.read(i * 4096, 4096) for i in range(64)))
            assert got == [bytes([i]) * 4096 for i in range(64)]
            assert [p.commands for p in lun.paths] == [64, 64]

    asyncio.run(main())


def test_connection_dropped_during_write_stream(tgtd: Tgtd) -> None:
    tid = 2

    async def main() -> None:
        async with iscsikit.open_multipath_lun_async(
            _urls(tgtd, tid), "queue-depth", retry_interval=0.5, max_retry_interval=1.0,
            fence_timeout=5.0, **OPTIONS,
        ) as lun:  # fmt: skip
            async with _Stream(lun) as stream:
                await stream.wait("writes", lambda: stream.written >= 200)
                await asyncio.to_thread(_drop, tgtd, tid, lun._paths[0])
                await stream.wait("path 0 failed", lambda: lun.paths[0].failures >= 1)
                other = lun.paths[1].commands
                await stream.wait("I/O on path 1", lambda: lun.paths[1].commands >= other + 50)
                await stream.wait("path 0 back", lambda: lun.paths[0].state == "active")
                back = lun.paths[0].commands
                await stream.wait("I/O on path 0", lambda: lun.paths[0].commands >= back + 50)
            blocks, bad = await stream.verify()
            _report("async, connection dropped", lun, stream, blocks, bad)
            assert bad == 0 and blocks > 0
            assert lun.fenced >= 1 and lun.fence_reinstated == lun.fenced

    asyncio.run(main())


def test_portal_deleted_and_added_again(tgtd: Tgtd) -> None:
    tid = 2
    second = _SECOND[-1]
    host, port = second.rsplit(":", 1)

    async def main() -> None:
        async with iscsikit.open_multipath_lun_async(
            _urls(tgtd, tid), retry_interval=0.5, max_retry_interval=1.0,
            fence_timeout=2.0, **OPTIONS,
        ) as lun:  # fmt: skip
            async with _Stream(lun) as stream:
                await stream.wait("writes", lambda: stream.written >= 200)
                await asyncio.to_thread(tgtd.delete_portal, second)
                try:
                    await asyncio.to_thread(_drop, tgtd, tid, lun._paths[1])
                    await stream.wait("path 1 failed", lambda: lun.paths[1].state == "failed")
                    survivor = lun.paths[0].commands
                    await stream.wait("I/O on 0", lambda: lun.paths[0].commands >= survivor + 100)
                    await asyncio.sleep(3)
                    assert lun.paths[1].state == "failed"
                finally:
                    await asyncio.to_thread(tgtd.add_portal, host, int(port))
                await stream.wait("path 1 back", lambda: lun.paths[1].state == "active")
                back = lun.paths[1].commands
                await stream.wait("I/O on 1", lambda: lun.paths[1].commands >= back + 50)
            blocks, bad = await stream.verify()
            _report("async, portal deleted and re-added", lun, stream, blocks, bad)
            assert bad == 0 and blocks > 0
            assert lun.fenced >= 1 and lun.fence_timed_out >= 1

    asyncio.run(main())
