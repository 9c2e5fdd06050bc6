"""AsyncMultipathLun over in-memory asyncio paths: ALUA (ranking, UNIT ATTENTION 2A/06,
NOT READY, polling), the fence, paths added and removed.

Each path is an :class:`~iscsikit.lun.aio.AsyncLun` over an :class:`AsyncAluaWatch` of an
:class:`AsyncDisk`, an AsyncCommandChannel that runs test_multipath_policy's
:class:`DiskChannel` rules (READ/WRITE(16) on one shared bytearray, RTPG, injected
sense, a dead connection) on the loop.
"""

from __future__ import annotations

import asyncio
import time

import pytest
from test_multipath_policy import BLOCKS, BS, NAA, DiskChannel, _fixed_sense, _geometry

from iscsikit.lun.aio import AsyncLun
from iscsikit.lun.aio_multipath import AsyncAluaWatch, AsyncMultipathLun, AsyncPath
from iscsikit.lun.pathset import ALUA_POLL_INTERVAL
from iscsikit.plugin.transport import AsyncCommandChannel
from iscsikit.proto.task import ScsiTask, TmfTask


class AsyncDisk(AsyncCommandChannel):
    """One path's asyncio connection to the shared in-memory LU."""

    def __init__(self, disk: DiskChannel) -> None:
        self.disk = disk

    def submit(self, task: ScsiTask) -> None:
        self.disk.submit(task)
        self.disk.wait(task)
        if task.callback is not None:
            task.callback(task)

    async def execute(self, task: ScsiTask) -> ScsiTask:
        await asyncio.sleep(0)
        self.disk.submit(task)
        self.disk.wait(task)
        return task

    async def task_management(self, task: TmfTask) -> TmfTask:
        raise NotImplementedError

    async def logout(self) -> None:
        return None

    def close(self) -> None:
        return None

    @property
    def closed(self) -> bool:
        return self.disk.down


def _setup(
    n: int, alua: list[int] | None, *, fence_timeout: float = 0.0, clock: list[float] | None = None
) -> tuple[AsyncMultipathLun, list[DiskChannel]]:
    shared = bytearray(BS * BLOCKS)
    disks = [DiskChannel(shared, port=i + 1) for i in range(n)]
    if alua is not None:
        groups = [(i + 1, state, [i + 1]) for i, state in enumerate(alua)]
        for d in disks:
            d.groups = groups
    paths = [
        AsyncPath(
            lun=AsyncLun(None, AsyncAluaWatch(AsyncDisk(d)), _geometry(), owns=False),
            index=i,
            name=f"portal{i}",
            identity=NAA,
            relative_port=i + 1,
            alua_capable=alua is not None,
        )
        for i, d in enumerate(disks)
    ]
    now = clock if clock is not None else None
    lun = AsyncMultipathLun(
        paths,
        "round-robin",
        no_path_timeout=1.0,
        retry_interval=0.05,
        max_retry_interval=0.1,
        fence_timeout=fence_timeout,
        clock=(lambda: now[0]) if now is not None else time.monotonic,
    )
    return lun, disks


def test_alua_ranking_unit_attention_and_not_ready() -> None:
    async def main() -> None:
        lun, disks = _setup(3, alua=[1, 0, 2])  # non-optimized, optimized, standby
        for _ in range(4):
            await lun.read(0, BS)
        assert [d.ran for d in disks] == [0, 4, 0]
        assert [p.state for p in lun.paths] == ["active", "active", "standby"]
        assert lun.alua_refreshes == 1
        # The target swaps groups 1 and 2 and tells it by UA 2A/06 on path 1.
        for d in disks:
            d.groups = [(1, 0, [1]), (2, 1, [2]), (3, 2, [3])]
        disks[1].unit_attention = _fixed_sense(0x6, 0x2A, 0x06)
        await lun.read(0, BS)  # retried by ops; the watch marks the states stale
        await lun.read(0, BS)
        assert lun.alua_refreshes == 2 and disks[0].ran == 1
        # NOT READY 04/0B (standby now) on path 0 moves the call to another group.
        disks[0].sense = _fixed_sense(0x2, 0x04, 0x0B)
        for d in disks:
            d.groups = [(1, 2, [1]), (2, 0, [2]), (3, 2, [3])]
        await lun.write(0, b"a" * BS)
        assert lun.reissues == 1 and [p.state for p in lun.paths][:2] == ["standby", "active"]
        disks[0].sense = None
        assert await lun.read(0, BS) == b"a" * BS

    asyncio.run(main())


def test_alua_states_are_polled_while_a_path_is_not_optimized() -> None:
    async def main() -> None:
        now = [100.0]
        lun, disks = _setup(2, alua=[0, 1], clock=now)
        await lun.read(0, BS)
        assert lun.alua_refreshes == 1
        now[0] += ALUA_POLL_INTERVAL / 2
        await lun.read(0, BS)
        assert lun.alua_refreshes == 1
        for d in disks:  # changed without telling path 0's nexus
            d.groups = [(1, 1, [1]), (2, 0, [2])]
        now[0] += ALUA_POLL_INTERVAL / 2
        await lun.read(0, BS)
        assert lun.alua_refreshes == 2 and disks[1].ran >= 1

    asyncio.run(main())


def test_write_waits_for_the_fence_read_does_not() -> None:
    async def main() -> None:
        lun, disks = _setup(2, alua=None, fence_timeout=0.3)
        disks[0].down = True
        started = time.monotonic()
        await lun.read(0, BS)
        assert time.monotonic() - started < 0.2 and lun.fenced == 0
        lun, disks = _setup(2, alua=None, fence_timeout=0.3)
        disks[0].down = True
        started = time.monotonic()
        # While the write waits for path 0's fence, reads go on over path 1.
        write = asyncio.create_task(lun.write(0, b"w" * BS))
        await asyncio.sleep(0)  # the write picks path 0 first (round-robin)
        reads = 0
        while not write.done():
            await lun.read(BS, BS)
            reads += 1
            await asyncio.sleep(0.01)
        await write
        assert time.monotonic() - started >= 0.3 and reads > 5
        assert (lun.fenced, lun.fence_timed_out, lun.fence_reinstated) == (1, 1, 0)
        assert await lun.read(0, BS) == b"w" * BS

    asyncio.run(main())


def test_paths_added_and_removed() -> None:
    async def main() -> None:
        lun, _ = _setup(2, alua=None)
        extra, _ = _setup(1, alua=None)
        path = extra._paths[0]
        path.index = 7
        lun.add_path(path)
        for _ in range(6):
            await lun.read(0, BS)
        assert [p.commands for p in lun.paths] == [2, 2, 2]
        assert lun.remove_path(0) is not None and lun.remove_path(0) is None
        for _ in range(4):
            await lun.read(0, BS)
        assert [p.commands for p in lun.paths] == [4, 4]
        with pytest.raises(Exception, match="taken"):
            lun.add_path(lun._paths[0])

    asyncio.run(main())
