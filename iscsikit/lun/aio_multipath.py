"""Userspace multipath for asyncio code: one LU over several AsyncLun paths.

:class:`AsyncMultipathLun` is the asyncio twin of
:class:`~iscsikit.lun.multipath.MultipathLun`: the same grouping check (VPD 0x83,
:func:`~iscsikit.lun.pathset.check_same_lu`), the same policies and path states
(:mod:`iscsikit.lun.pathset`), the same re-issue rule and fence (:mod:`iscsikit.lun.fence`),
ALUA by REPORT TARGET PORT GROUPS at open, after a UNIT ATTENTION 2A/06 on any path
(:class:`AsyncAluaWatch`), after an ALUA NOT READY, after a path comes back, and polled
while a path is not active/optimized (:func:`~iscsikit.lun.pathset.alua_poll_due`).
Many calls are in flight at once, over every path: each path is an
:class:`~iscsikit.lun.aio.AsyncLun` over a :class:`~iscsikit.manager.managed.ManagedSession`
(``replacement_timeout`` 0 unless given), which logs in again by itself on the loop
after a failure; a failed path rests for its back-off, then is used again once its
session is logged in.  Writes hold their blocks in a multipath-wide
:class:`~iscsikit.lun.ranges.RangeLock` (exclusive for a read-modify-write), since two
paths do not order each other's commands.  The object has the shape of
:class:`iscsikit.nbd.device.BlockDevice`.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import time
from collections.abc import AsyncIterator, Callable, Generator, Mapping, Sequence
from typing import Any, TypeVar

from iscsikit.errors import ConnectionFailedError, InvalidParameterError, IscsiError
from iscsikit.lun import ops
from iscsikit.lun.aio import AsyncLun, run_async
from iscsikit.lun.fence import FENCE_TIMEOUT, Fence, failure_mark, mark_of, reissue_at_once
from iscsikit.lun.lun import settings_for_url
from iscsikit.lun.pathset import (
    PathInfo,
    PathState,
    Policy,
    Selector,
    alua_poll_due,
    apply_alua,
    candidates,
    check_same_lu,
    due,
    is_path_failure,
    no_path_error,
    reports_alua_change,
    wait_step,
)
from iscsikit.lun.ranges import RangeLock, block_span
from iscsikit.lun.url import IscsiUrl, parse_iscsi_url
from iscsikit.manager.managed import ManagedSession
from iscsikit.manager.policy import State
from iscsikit.manager.recovery import REISSUE_LIMIT
from iscsikit.plugin.transport import AsyncCommandChannel
from iscsikit.proto.task import PingTask, ScsiTask, TmfTask
from iscsikit.scsi import cdb as C
from iscsikit.scsi.alua import (
    is_alua_transition,
    parse_report_target_port_groups,
    report_target_port_groups,
)
from iscsikit.scsi.errors import ScsiCommandError
from iscsikit.scsi.vpd import (
    lu_identity,
    parse_vpd_device_identification,
    relative_target_port,
    target_port_group,
)

__all__ = [
    "AsyncAluaWatch",
    "AsyncMultipathLun",
    "AsyncPath",
    "open_async_path",
    "open_multipath_lun_async",
]

_R = TypeVar("_R")


class AsyncAluaWatch(AsyncCommandChannel):
    """A path's asyncio channel that reports a UNIT ATTENTION "asymmetric access state
    changed" (2A/06-07) before :mod:`~iscsikit.lun.ops` retries it away (the asyncio
    :class:`~iscsikit.lun.blocking_path.AluaWatch`)."""

    def __init__(self, inner: AsyncCommandChannel) -> None:
        self.inner = inner
        self.on_state_change: Callable[[], None] | None = None

    def submit(self, task: ScsiTask) -> None:
        chained = task.callback

        def done(finished: ScsiTask) -> None:
            self._look(finished)
            if chained is not None:
                chained(finished)

        task.callback = done
        self.inner.submit(task)

    async def execute(self, task: ScsiTask) -> ScsiTask:
        done = await self.inner.execute(task)
        self._look(done)
        return done

    def _look(self, task: ScsiTask) -> None:
        if self.on_state_change is not None and reports_alua_change(task):
            self.on_state_change()

    async def task_management(self, task: TmfTask) -> TmfTask:
        return await self.inner.task_management(task)

    async def ping(self, task: PingTask) -> PingTask:
        return await self.inner.ping(task)

    def statistics(self) -> Mapping[str, int]:
        return self.inner.statistics()

    async def logout(self) -> None:
        await self.inner.logout()

    def close(self) -> None:
        self.inner.close()

    @property
    def closed(self) -> bool:
        return self.inner.closed


class AsyncPath(PathState):
    """One path: its AsyncLun and its bookkeeping (:class:`PathState`)."""

    def __init__(self, *, lun: AsyncLun, **fields: Any) -> None:
        super().__init__(**fields)
        self.lun = lun

    @property
    def geometry(self) -> ops.Geometry:
        return self.lun.geometry

    @property
    def logged_in(self) -> bool:
        session = self.lun.session
        if isinstance(session, ManagedSession):
            return session.state is State.LOGGED_IN
        return not self.lun.channel.closed


class AsyncMultipathLun(ops.GeometryView):
    """One logical unit over several :class:`AsyncPath` objects (see the module doc)."""

    def __init__(
        self,
        paths: Sequence[AsyncPath],
        policy: Policy = "round-robin",
        *,
        no_path_timeout: float = 120.0,
        retry_interval: float = 1.0,
        max_retry_interval: float = 4.0,
        fence_timeout: float = FENCE_TIMEOUT,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not paths:
            raise InvalidParameterError("a multipath LUN needs at least one path")
        self._paths = list(paths)
        self._gone: list[AsyncPath] = []
        self._selector = Selector(policy)
        self.policy: Policy = policy
        self.geometry = self._paths[0].lun.geometry
        self.no_path_timeout = no_path_timeout
        self.retry_interval = retry_interval
        self.max_retry_interval = max_retry_interval
        self.fence_timeout = fence_timeout
        self._clock = clock
        self._alua_stale = any(p.alua_capable for p in self._paths)
        self._alua_read_at = 0.0
        for path in self._paths:
            self._watch(path)
        self._closed = False
        #: The blocks writes in flight hold, over every path.
        self.ranges = RangeLock()
        #: As :class:`~iscsikit.lun.multipath.MultipathLun`'s counters.
        self.reissues = 0
        self.alua_refreshes = 0
        self.fenced = 0
        self.fence_reinstated = 0
        self.fence_timed_out = 0

    @property
    def paths(self) -> tuple[PathInfo, ...]:
        return tuple(p.info() for p in self._paths)

    def add_path(self, path: AsyncPath) -> None:
        """Use one more path (its LU identity and geometry must be this LU's; its
        ``index`` must be new)."""
        if any(p.index == path.index for p in self._paths):
            raise InvalidParameterError(f"path index {path.index} is taken")
        check_same_lu([*self._paths, path])
        self._paths.append(path)
        self._watch(path)
        if path.alua_capable:
            self._alua_stale = True

    def remove_path(self, index: int) -> AsyncPath | None:
        """Stop using path ``index`` (calls in flight on it finish or fail over); the
        path, or None if there was none."""
        for path in self._paths:
            if path.index == index:
                self._paths.remove(path)
                self._gone.append(path)  # a fence may still wait on it
                del self._gone[:-8]
                self._selector.forget(index)
                return path
        return None

    # -- paths -------------------------------------------------------------------------

    def _watch(self, path: AsyncPath) -> None:
        if isinstance(path.lun.channel, AsyncAluaWatch):
            path.lun.channel.on_state_change = self._alua_changed

    def _alua_changed(self) -> None:
        self._alua_stale = True

    async def refresh_alua(self) -> None:
        """Read the port groups' states through the first path that answers."""
        self._alua_stale = False
        for path in candidates(self._paths, alua=False) or self._paths:
            try:
                task = await path.lun.execute(report_target_port_groups(), read_length=1024)
            except IscsiError:
                continue
            groups = parse_report_target_port_groups(ops.data_of(task))
            self.alua_refreshes += 1
            self._alua_read_at = self._clock()
            apply_alua(self._paths, groups)
            return

    def _revive_due(self) -> None:
        """Failed paths whose back-off is over come back once their session is logged in
        again (the session reconnects by itself on the loop)."""
        now = self._clock()
        for path in due(self._paths, now):
            back = path.logged_in
            if path.revived(back, now, self.retry_interval, self.max_retry_interval) and (
                path.alua_capable
            ):
                self._alua_stale = True

    # -- running a call ----------------------------------------------------------------

    async def _call(
        self, make: Callable[[], Generator[list[ScsiTask], None, _R]], safe: bool
    ) -> _R:
        """Run an operation on a path; after a path failure again on another one - at
        once when ``safe``, else once the failed path is fenced."""
        if self._closed:
            raise ConnectionFailedError("the multipath LUN is closed")
        tried: set[int] = set()
        waiting_since: float | None = None
        while True:
            self._revive_due()
            if self._alua_stale or alua_poll_due(self._paths, self._clock(), self._alua_read_at):
                await self.refresh_alua()
            path = self._selector.pick(self._paths, tried)
            if path is None:
                now = self._clock()
                waiting_since = now if waiting_since is None else waiting_since
                if now - waiting_since >= self.no_path_timeout:
                    raise no_path_error(self._paths, self.no_path_timeout)
                tried.clear()
                await asyncio.sleep(wait_step(self._paths, self._clock()))
                continue
            before = mark_of(path.lun.session)
            try:
                result = await run_async(path.lun.channel, make())
                path.commands += 1
                return result
            except ScsiCommandError as exc:
                if not is_alua_transition(exc.sense):
                    raise
                self._alua_stale = True
                tried.add(path.index)
                self.reissues += 1
            except IscsiError as exc:
                if not is_path_failure(exc):
                    raise
                if path.healthy:
                    path.fail(exc, self._clock(), self.retry_interval, self.max_retry_interval)
                    self._selector.forget(path.index)
                tried.add(path.index)
                self.reissues += 1
                if not safe and self.fence_timeout > 0:
                    mark = failure_mark(before, mark_of(path.lun.session))
                    await self._await_fence(
                        Fence(path.index, self._clock(), mark, self.fence_timeout)
                    )
                    tried.clear()
            finally:
                path.outstanding -= 1

    async def _await_fence(self, fence: Fence) -> None:
        """Wait until ``fence`` clears; other calls go on meanwhile."""
        path = next(p for p in self._fenced_paths() if p.index == fence.path)
        self.fenced += 1
        while True:
            if fence.reinstated(mark_of(path.lun.session)):
                self.fence_reinstated += 1
                return
            if self._clock() >= fence.deadline:
                self.fence_timed_out += 1
                return
            if self._closed:
                raise ConnectionFailedError("the multipath LUN is closed")
            await asyncio.sleep(0.02)

    def _fenced_paths(self) -> list[AsyncPath]:
        return self._paths + self._gone

    # -- the BlockDevice / AsyncLun surface ----------------------------------------------

    async def read(self, offset: int, length: int) -> bytes:
        return await self._call(lambda: ops.read(self.geometry, offset, length), True)

    async def readinto(self, offset: int, buffer: bytearray | memoryview) -> int:
        view = memoryview(buffer).cast("B")
        bs = self.block_size
        if offset % bs == 0 and len(view) % bs == 0:
            await self._call(lambda: ops.read_blocks(self.geometry, offset, view), True)
        else:
            view[:] = await self.read(offset, len(view))
        return len(view)

    async def write(
        self, offset: int, data: bytes | bytearray | memoryview, *, fua: bool = False
    ) -> None:
        """Write any byte range; partial blocks are merged under an exclusive hold."""
        first, end, whole = block_span(offset, memoryview(data).nbytes, self.block_size)
        async with self.ranges.hold(first, end, exclusive=not whole):
            await self._call(lambda: ops.write(self.geometry, offset, data, fua=fua), False)

    async def flush(self) -> None:
        await self._call(lambda: ops.flush(self.geometry), True)

    async def unmap(self, offset: int, length: int) -> None:
        first, end, _ = block_span(offset, length, self.block_size)
        async with self.ranges.hold(first, end, exclusive=False):
            await self._call(lambda: ops.unmap(self.geometry, offset, length), False)

    async def write_zeroes(self, offset: int, length: int, *, may_unmap: bool = False) -> None:
        first, end, _ = block_span(offset, length, self.block_size)
        async with self.ranges.hold(first, end, exclusive=False):
            await self._call(lambda: ops.write_zeroes(self.geometry, offset, length), False)

    async def execute(
        self,
        cdb: bytes,
        *,
        read_length: int = 0,
        write_data: bytes | bytearray | memoryview | None = None,
    ) -> ScsiTask:
        return await self._call(
            lambda: ops.command(cdb, lun=self.lun, read_length=read_length, write_data=write_data),
            reissue_at_once(cdb),
        )

    # -- lifetime ----------------------------------------------------------------------

    @property
    def closed(self) -> bool:
        return self._closed

    async def aclose(self) -> None:
        """Log every path out (a path that cannot log out is dropped); idempotent."""
        if self._closed:
            return
        self._closed = True
        for path in self._paths:
            with contextlib.suppress(Exception):
                await path.lun.aclose()

    async def __aenter__(self) -> AsyncMultipathLun:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    def __repr__(self) -> str:
        states = ", ".join(f"{p.name} {p.state}" for p in self._paths)
        return f"<AsyncMultipathLun {self.lun} {self.policy} [{states}]>"


async def open_async_path(
    url: IscsiUrl,
    index: int,
    *,
    reissue_limit: int | None,
    known: ops.Geometry | None = None,
    **options: Any,
) -> AsyncPath:
    """Log in the session ``url`` names (through the security stage, as every Normal
    session: :func:`~iscsikit.manager.spec.session_settings`) and open its LUN as path
    ``index``.
    ``known``: the LU's geometry as another path read it, for a port whose ALUA state
    (standby, unavailable) refuses the probe; INQUIRY still answers, so VPD 0x83 proves
    the LU the same."""
    session = ManagedSession(settings_for_url(url, **options), reissue_limit=reissue_limit)
    await session.login()
    try:
        channel = AsyncAluaWatch(session.io)
        try:
            geometry = await run_async(channel, ops.probe(url.lun))
        except ScsiCommandError as exc:
            if known is None or not is_alua_transition(exc.sense):
                raise
            geometry = dataclasses.replace(known, lun=url.lun)
        lun = AsyncLun(session, channel, geometry, owns=True)
        task = await lun.execute(
            C.inquiry(evpd=True, page=0x83, allocation_length=1024), read_length=1024
        )
    except BaseException:
        session.drop()
        raise
    designators = parse_vpd_device_identification(ops.data_of(task))
    return AsyncPath(
        lun=lun,
        index=index,
        name=f"{url.portal}",
        identity=lu_identity(designators),
        relative_port=relative_target_port(designators),
        group_id=target_port_group(designators),
        alua_capable=lun.geometry.inquiry.tpgs != 0,
    )


@contextlib.asynccontextmanager
async def open_multipath_lun_async(
    urls: Sequence[str | IscsiUrl],
    policy: Policy = "round-robin",
    *,
    no_path_timeout: float = 120.0,
    retry_interval: float = 1.0,
    max_retry_interval: float = 4.0,
    fence_timeout: float = FENCE_TIMEOUT,
    reissue_limit: int | None = REISSUE_LIMIT,
    **options: Any,
) -> AsyncIterator[AsyncMultipathLun]:
    """``async with open_multipath_lun_async(urls) as lun:`` - see
    :func:`~iscsikit.lun.multipath.open_multipath_lun` (same arguments)."""
    parsed = [parse_iscsi_url(u) if isinstance(u, str) else u for u in urls]
    if not parsed:
        raise InvalidParameterError("open_multipath_lun_async needs at least one URL")
    options.setdefault("replacement_timeout", 0.0)
    paths: list[AsyncPath] = []
    try:
        refused: list[int] = []  # ports whose ALUA state refused the probe
        for index, url in enumerate(parsed):
            try:
                paths.append(
                    await open_async_path(url, index, reissue_limit=reissue_limit, **options)
                )
            except ScsiCommandError as exc:
                if not is_alua_transition(exc.sense) or (index == len(parsed) - 1 and not paths):
                    raise
                refused.append(index)
        for i in refused:  # with the geometry another path read, in their places
            known = paths[0].lun.geometry
            path = await open_async_path(
                parsed[i], i, reissue_limit=reissue_limit, known=known, **options
            )
            paths.insert(i, path)
        check_same_lu(paths)
        lun = AsyncMultipathLun(
            paths,
            policy,
            no_path_timeout=no_path_timeout,
            retry_interval=retry_interval,
            max_retry_interval=max_retry_interval,
            fence_timeout=fence_timeout,
        )
    except BaseException:
        for path in paths:
            with contextlib.suppress(Exception):
                await path.lun.aclose()
        raise
    async with lun:
        yield lun
