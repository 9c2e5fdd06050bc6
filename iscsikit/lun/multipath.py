"""Userspace multipath: one logical unit over several sessions (one per portal).

:func:`open_multipath_lun` logs a session in per URL, opens the LUN on each and checks,
before any I/O, that every path reaches the *same* logical unit: the identity of VPD
page 0x83 (:func:`~iscsikit.scsi.vpd.lu_identity`, the designator dm-multipath's WWID is
made of) must be present and equal on all of them, else nothing is grouped (writing one
LU's data through another's path is the one mistake a multipath layer must never make).

:class:`MultipathLun` has the blocking :class:`~iscsikit.lun.lun.Lun`'s surface and sends
each call down one path picked by a policy: ``failover`` (one path until it fails),
``round-robin`` or ``queue-depth`` (least outstanding calls; calls from several threads
run on several paths at once).  A call that fails on a path for a transport or session
reason (:class:`~iscsikit.errors.TransportError`, a protocol error) is issued again,
whole, on another path; the failed path rests for a back-off, then the next call polls
its session, which logs in again by itself, and the path is used again once it is
logged in.  A SCSI error the LU itself reported is the caller's, never re-issued
elsewhere, except NOT READY because of the port's ALUA state (04/0A-0C), which moves the
call to another port group.  With no usable path, calls wait for one up to
``no_path_timeout`` (dm-multipath's ``queue_if_no_path`` with a bound).

ALUA (SPC-4 §5.16): when the LU reports TPGS, each path learns its port group from VPD
0x83 and REPORT TARGET PORT GROUPS gives the groups' states, at open and again after a
UNIT ATTENTION 2A/06 (seen on any path) or an ALUA NOT READY, and polled (see
:data:`ALUA_POLL_INTERVAL`).  Active/optimized paths are used first, active/non-optimized
only when no optimized one is up, standby, unavailable, offline and transitioning never.

Each path's session is a :class:`~iscsikit.manager.blocking.BlockingManagedSession`
with ``replacement_timeout`` 0 by default: a failed connection fails its call at once,
so the call moves to another path instead of waiting for the same one (open-iscsi's
advice for dm-multipath too).  After a path failure only calls that change nothing move
at once; the others wait for the failed path's fence (:mod:`iscsikit.lun.fence`).

The path bookkeeping, the policies and the same-LU check are :mod:`iscsikit.lun.pathset`'s
(shared with the asyncio twin, :mod:`iscsikit.lun.aio_multipath`); a blocking path is
:mod:`iscsikit.lun.blocking_path`'s.
"""

from __future__ import annotations

import contextlib
import dataclasses
import threading
import time
from collections.abc import Callable, Generator, Sequence
from types import TracebackType
from typing import Any, TypeVar

from iscsikit.errors import (
    ConnectionFailedError,
    InvalidParameterError,
    IscsiError,
)
from iscsikit.lun import ops
from iscsikit.lun.blocking_path import AluaWatch, Gate, Path
from iscsikit.lun.fence import FENCE_TIMEOUT, Fence, failure_mark, mark_of, reissue_at_once
from iscsikit.lun.lun import Lun, run_blocking, settings_for_url
from iscsikit.lun.pathset import (
    ALUA_POLL_INTERVAL,
    POLICIES,
    PathInfo,
    Policy,
    Selector,
    alua_poll_due,
    apply_alua,
    candidates,
    check_same_lu,
    due,
    is_path_failure,
    no_path_error,
    wait_step,
)
from iscsikit.lun.url import IscsiUrl, parse_iscsi_url
from iscsikit.manager.blocking import BlockingManagedSession
from iscsikit.manager.recovery import REISSUE_LIMIT
from iscsikit.proto.task import ScsiTask
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

_R = TypeVar("_R")


#: The name this module had for :func:`~iscsikit.lun.pathset.is_path_failure`.
path_failure = is_path_failure


class _NeedsFence(Exception):
    """A call that may change the LU failed with its path: it waits for ``fence``."""

    def __init__(self, fence: Fence) -> None:
        super().__init__(f"waiting for the fence of path {fence.path}")
        self.fence = fence


class MultipathLun(ops.GeometryView):
    """One logical unit over several :class:`Path` objects (see the module docstring).

    Thread-safe; each path runs one call at a time, so up to ``len(paths)`` calls run
    at once.
    """

    def __init__(
        self,
        paths: Sequence[Path],
        policy: Policy = "round-robin",
        *,
        no_path_timeout: float = 120.0,
        retry_interval: float = 1.0,
        max_retry_interval: float = 4.0,
        fence_timeout: float = FENCE_TIMEOUT,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if not paths:
            raise InvalidParameterError("a multipath LUN needs at least one path")
        self._selector = Selector(policy)
        self._paths = list(paths)
        self.policy: Policy = policy
        self.geometry = self._paths[0].lun.geometry
        self.no_path_timeout = no_path_timeout
        self.retry_interval = retry_interval
        self.max_retry_interval = max_retry_interval
        #: Seconds a call that may change the LU waits for its failed path's fence when
        #: the path's session does not log in again (:mod:`iscsikit.lun.fence`).
        self.fence_timeout = fence_timeout
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()  # path states and the policy's cursor
        self._gate = Gate()
        self._alua_stale = False
        self._alua_read_at = 0.0
        self._closed = False
        #: Calls issued again on another path after a path failed under them.
        self.reissues = 0
        #: Times ALUA states were read (REPORT TARGET PORT GROUPS).
        self.alua_refreshes = 0
        #: Calls that waited for a failed path's fence before being issued again, and
        #: how their fences cleared: by the session's reinstatement, or by the timeout.
        self.fenced = 0
        self.fence_reinstated = 0
        self.fence_timed_out = 0
        for path in self._paths:
            if isinstance(path.lun.channel, AluaWatch):
                path.lun.channel.on_state_change = self._alua_changed
        if any(p.alua_capable for p in self._paths):
            self.refresh_alua()

    # -- paths and their states -----------------------------------------------------------

    @property
    def paths(self) -> tuple[PathInfo, ...]:
        """Every path's state, in the order given (for ``-m session -P 3`` and JSON)."""
        with self._lock:
            return tuple(p.info() for p in self._paths)

    def _alua_changed(self) -> None:
        self._alua_stale = True

    def refresh_alua(self) -> None:
        """Read the port groups' states (RTPG through the first path that answers, a
        path in use first) and set each path's state from its group."""
        self._alua_stale = False
        for path in dict.fromkeys(self._candidates() + self._candidates(alua=False) or self._paths):
            try:
                with path.busy():
                    task = path.lun.execute(report_target_port_groups(), read_length=1024)
            except IscsiError:
                continue
            groups = parse_report_target_port_groups(ops.data_of(task))
            with self._lock:
                self.alua_refreshes += 1
                self._alua_read_at = self._clock()
                apply_alua(self._paths, groups)
            return

    def _alua_poll_due(self) -> bool:
        """Whether to read ALUA states unasked: at every wait while no path is usable, else
        every :data:`ALUA_POLL_INTERVAL` while one is not optimized (LIO tells a group's
        change only to that group's I_T nexuses: a path without I/O never hears it)."""
        with self._lock:
            return alua_poll_due(self._paths, self._clock(), self._alua_read_at)

    def _candidates(self, *, alua: bool = True) -> list[Path]:
        """The healthy paths of the best ALUA rank present (all healthy ones without
        ALUA), in the order given."""
        return candidates(self._paths, alua=alua)

    def _pick(self, exclude: set[int]) -> Path | None:
        """The policy's choice among the candidates not in ``exclude`` (by index)."""
        with self._lock:
            return self._selector.pick(self._paths, exclude)

    def _fail(self, path: Path, exc: BaseException) -> None:
        with self._lock:
            path.fail(exc, self._clock(), self.retry_interval, self.max_retry_interval)
            self._selector.forget(path.index)

    def _revive_due(self) -> None:
        """Poll the sessions of failed paths whose back-off is over; a session that
        logged in again brings its path back (ALUA states are read again)."""
        now = self._clock()
        revived = False
        for path in due(self._paths, now):
            if path.try_reconnect(now, self.retry_interval, self.max_retry_interval):
                revived = True
        if revived and any(p.alua_capable for p in self._paths):
            self._alua_stale = True

    # -- running a call ----------------------------------------------------------------

    def _call(self, work: Callable[[Lun], _R], *, safe: bool) -> _R:
        """Run ``work`` on a path; on a path failure, again on another one - at once
        when ``safe`` (it changes nothing), else raise :class:`_NeedsFence` first."""
        if self._closed:
            raise ConnectionFailedError("the multipath LUN is closed")
        tried: set[int] = set()
        waiting_since: float | None = None
        while True:
            self._revive_due()
            if self._alua_stale or self._alua_poll_due():
                self.refresh_alua()
            path = self._pick(tried)
            if path is None:
                now = self._clock()
                if waiting_since is None:
                    waiting_since = now
                if now - waiting_since >= self.no_path_timeout:
                    raise no_path_error(self._paths, self.no_path_timeout)
                tried.clear()  # every path gets another chance once it is back
                self._sleep(wait_step(self._paths, self._clock()))
                continue
            before = None
            try:
                with path.busy(counted=True):
                    before = mark_of(path.lun.session)
                    result = work(path.lun)
            except ScsiCommandError as exc:
                if not is_alua_transition(exc.sense):
                    raise
                # The port's group is standby / unavailable / transitioning now.
                self._alua_stale = True
                tried.add(path.index)
                self.reissues += 1
                continue
            except IscsiError as exc:
                if not path_failure(exc):
                    raise
                self._fail(path, exc)
                tried.add(path.index)
                self.reissues += 1
                if not safe and self.fence_timeout > 0:
                    mark = failure_mark(before, mark_of(path.lun.session))
                    fence = Fence(path.index, self._clock(), mark, self.fence_timeout)
                    raise _NeedsFence(fence) from exc
                continue
            finally:
                with self._lock:
                    path.outstanding -= 1
            return result

    def _await_fence(self, fence: Fence) -> None:
        """Wait until ``fence`` clears, driving the failed path's session meanwhile (it
        logs in again by itself once its Time2Wait is over).  Other calls go on."""
        path = self._paths[fence.path]
        self.fenced += 1
        while True:
            now = self._clock()
            if not path.healthy:
                path.try_reconnect(now, self.retry_interval, self.max_retry_interval)
            if fence.reinstated(mark_of(path.lun.session)):
                self.fence_reinstated += 1
                return
            if now >= fence.deadline:
                self.fence_timed_out += 1
                return
            if self._closed:
                raise ConnectionFailedError("the multipath LUN is closed")
            self._sleep(min(max(fence.deadline - now, 0.0), 0.05))

    def _run(
        self,
        make: Callable[[], Generator[list[ScsiTask], None, _R]],
        *,
        exclusive: bool = False,
        safe: bool = False,
    ) -> _R:
        """Run an operation (``safe``: one that changes nothing, re-issued at once after
        a path failure; otherwise only once the failed path is fenced, outside the gate
        so that other calls go on meanwhile)."""
        while True:
            try:
                with self._gate.hold(exclusive):
                    return self._call(lambda lun: run_blocking(lun.channel, make()), safe=safe)
            except _NeedsFence as waiting:
                self._await_fence(waiting.fence)

    # -- the Lun surface ---------------------------------------------------------------

    def read(self, offset: int, length: int) -> bytes:
        return self._run(lambda: ops.read(self.geometry, offset, length), safe=True)

    def readinto(self, offset: int, buffer: bytearray | memoryview) -> int:
        """Read ``len(buffer)`` bytes at ``offset`` into ``buffer``."""
        view = memoryview(buffer).cast("B")
        bs = self.block_size
        if offset % bs == 0 and len(view) % bs == 0:
            self._run(lambda: ops.read_blocks(self.geometry, offset, view), safe=True)
        else:
            view[:] = self.read(offset, len(view))
        return len(view)

    def write(self, offset: int, data: bytes | bytearray | memoryview, *, fua: bool = False) -> int:
        """Write any byte range; a partial-block write holds out every other call."""
        length = memoryview(data).cast("B").nbytes
        bs = self.block_size
        whole = offset % bs == 0 and length % bs == 0
        self._run(lambda: ops.write(self.geometry, offset, data, fua=fua), exclusive=not whole)
        return length

    def flush(self) -> None:
        """SYNCHRONIZE CACHE (through one path: the cache is the LU's)."""
        self._run(lambda: ops.flush(self.geometry), safe=True)

    def unmap(self, offset: int, length: int) -> None:
        self._run(lambda: ops.unmap(self.geometry, offset, length))

    def write_zeroes(self, offset: int, length: int) -> None:
        self._run(lambda: ops.write_zeroes(self.geometry, offset, length))

    def execute(
        self,
        cdb: bytes,
        *,
        read_length: int = 0,
        write_data: bytes | bytearray | memoryview | None = None,
    ) -> ScsiTask:
        """Any SCSI command, on a path the policy picks (after a path failure issued
        again at once only when :func:`~iscsikit.lun.fence.reissue_at_once` says so)."""
        return self._run(
            lambda: ops.command(cdb, lun=self.lun, read_length=read_length, write_data=write_data),
            safe=reissue_at_once(cdb),
        )

    # -- lifetime ----------------------------------------------------------------------

    @property
    def closed(self) -> bool:
        return self._closed

    def close(self) -> None:
        """Log every path out (a path that cannot log out is dropped); idempotent."""
        if self._closed:
            return
        self._closed = True
        errors: list[BaseException] = []
        for path in self._paths:
            with path.busy():
                try:
                    path.lun.close()
                except IscsiError as exc:
                    errors.append(exc)
        if errors and all(p.healthy for p in self._paths):
            raise errors[0]

    def __enter__(self) -> MultipathLun:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        states = ", ".join(f"{p.name} {p.state}" for p in self._paths)
        return f"<MultipathLun {self.lun} {self.policy} [{states}]>"


# -- opening -------------------------------------------------------------------------------


def open_path(url: IscsiUrl, index: int, *, reissue_limit: int | None, **options: Any) -> Path:
    """Log in the session ``url`` names and open its LUN as path ``index``: probe,
    VPD 0x83 identity, port and port group.  ``known`` (an option): the LU's geometry
    as another path read it, for a port whose ALUA state refuses the probe."""
    known: ops.Geometry | None = options.pop("known", None)
    session = BlockingManagedSession(settings_for_url(url, **options), reissue_limit=reissue_limit)
    session.login()
    try:
        channel = AluaWatch(session.io)
        try:
            geometry = run_blocking(channel, ops.probe(url.lun))
        except ScsiCommandError as exc:
            if known is None or not is_alua_transition(exc.sense):
                raise
            geometry = dataclasses.replace(known, lun=url.lun)
        lun = Lun(session, channel, geometry, owns=True)
        page = ops.data_of(
            run_blocking(
                channel,
                ops.command(
                    C.inquiry(evpd=True, page=0x83, allocation_length=1024),
                    lun=url.lun,
                    read_length=1024,
                ),
            )
        )
    except BaseException:
        with contextlib.suppress(Exception):
            session.logout()
        session.close()
        raise
    designators = parse_vpd_device_identification(page)
    return Path(
        index=index,
        name=f"{url.portal}",
        lun=lun,
        identity=lu_identity(designators),
        relative_port=relative_target_port(designators),
        group_id=target_port_group(designators),
        alua_capable=geometry.inquiry.tpgs != 0,
    )


def open_multipath_lun(
    urls: Sequence[str | IscsiUrl],
    policy: Policy = "round-robin",
    *,
    no_path_timeout: float = 120.0,
    retry_interval: float = 1.0,
    max_retry_interval: float = 4.0,
    fence_timeout: float = FENCE_TIMEOUT,
    reissue_limit: int | None = REISSUE_LIMIT,
    **options: Any,
) -> MultipathLun:
    """Log in to every URL (one session each) and open their LUN as one multipath LUN.

    Every URL must name the same LU (checked by VPD 0x83, see :func:`check_same_lu`);
    every path must log in (a portal down at open fails the open).  ``options`` are
    :func:`~iscsikit.lun.lun.open_lun`'s, for every path; ``replacement_timeout`` (per
    path) is 0 unless given.  ``no_path_timeout``: how long a call waits for a usable
    path; ``retry_interval``: the first back-off of a failed path (doubling up to
    ``max_retry_interval``); ``fence_timeout``: how long a call that may change the LU
    and whose path failed waits, at most, before it is issued again elsewhere when the
    path's session does not log in again (:mod:`iscsikit.lun.fence`; 0: no fence).
    """
    parsed: list[IscsiUrl] = []
    for url in urls:
        one = parse_iscsi_url(url) if isinstance(url, str) else url
        if not isinstance(one, IscsiUrl):
            raise InvalidParameterError(f"not an iSCSI URL: {url!r}")
        parsed.append(one)
    if not parsed:
        raise InvalidParameterError("open_multipath_lun needs at least one URL")
    if policy not in POLICIES:
        raise InvalidParameterError(f"unknown multipath policy {policy!r} ({POLICIES})")
    options.setdefault("replacement_timeout", 0.0)
    paths: list[Path] = []
    try:
        refused: list[int] = []  # ports whose ALUA state refused the probe
        for index, url in enumerate(parsed):
            try:
                paths.append(open_path(url, index, reissue_limit=reissue_limit, **options))
            except ScsiCommandError as exc:
                if not is_alua_transition(exc.sense) or (index == len(parsed) - 1 and not paths):
                    raise
                refused.append(index)
        for i in refused:  # with the geometry another path read, in their places
            options["known"] = paths[0].lun.geometry
            paths.insert(i, open_path(parsed[i], i, reissue_limit=reissue_limit, **options))
        check_same_lu(paths)
        return MultipathLun(
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
                path.lun.close()
        raise


__all__ = [
    "ALUA_POLL_INTERVAL",
    "POLICIES",
    "AluaWatch",
    "MultipathLun",
    "Path",
    "PathInfo",
    "Policy",
    "check_same_lu",
    "open_multipath_lun",
    "open_path",
    "path_failure",
]
