"""One blocking path of a :class:`~iscsikit.lun.multipath.MultipathLun`.

:class:`Path` is a session's :class:`~iscsikit.lun.lun.Lun` with the path bookkeeping of
:class:`~iscsikit.lun.pathset.PathState` and a mutex (a blocking session runs one call
at a time); :class:`AluaWatch` is the path's command channel that reports a UNIT
ATTENTION "asymmetric access state changed" before the LUN layer retries it away;
:class:`Gate` keeps a read-modify-write from interleaving with writes on other paths.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from iscsikit.errors import IscsiError
from iscsikit.lun import ops
from iscsikit.lun.lun import Lun
from iscsikit.lun.pathset import PathState, reports_alua_change
from iscsikit.manager.blocking import BlockingManagedSession
from iscsikit.manager.policy import State
from iscsikit.plugin.transport import CommandChannel
from iscsikit.proto.task import ScsiTask, TmfTask

__all__ = ["AluaWatch", "Gate", "Path"]


class AluaWatch(CommandChannel):
    """A path's command channel that reports a UNIT ATTENTION "asymmetric access state
    changed" (2A/06-07) before :mod:`~iscsikit.lun.ops` retries it away."""

    def __init__(self, inner: CommandChannel) -> None:
        self.inner = inner
        self.on_state_change: Callable[[], None] | None = None
        self._watched: list[ScsiTask] = []

    def submit(self, task: ScsiTask) -> None:
        self._watched.append(task)
        self.inner.submit(task)

    def wait(self, task: ScsiTask | None = None) -> None:
        try:
            self.inner.wait(task)
        finally:
            self._look()

    def _look(self) -> None:
        pending: list[ScsiTask] = []
        for task in self._watched:
            if not task.done:
                pending.append(task)
            elif self.on_state_change is not None and reports_alua_change(task):
                self.on_state_change()
        self._watched = pending

    def task_management(self, task: TmfTask) -> TmfTask:
        return self.inner.task_management(task)

    def statistics(self) -> Mapping[str, int]:
        return self.inner.statistics()

    @property
    def closed(self) -> bool:
        return self.inner.closed


class Path(PathState):
    """One session to the LU: its :class:`Lun` and its bookkeeping (:class:`PathState`).

    The multipath LUN changes the fields under its own lock; :meth:`busy` gives one
    caller at a time the path's Lun (a session runs one call at a time).
    """

    def __init__(self, *, lun: Lun, **fields: Any) -> None:
        super().__init__(**fields)
        self.lun = lun
        self._mutex = threading.Lock()

    @property
    def geometry(self) -> ops.Geometry:
        return self.lun.geometry

    @contextlib.contextmanager
    def busy(self, *, counted: bool = False) -> Iterator[None]:
        """Hold the path's Lun for one call (``counted``: a call of the data path)."""
        with self._mutex:
            yield
            if counted:
                self.commands += 1

    def try_reconnect(self, now: float, first: float, cap: float) -> bool:
        """Let the path's session do what is due (a login attempt, once its wait is
        over); True when it is logged in again and the path is back in use."""
        if not self._mutex.acquire(blocking=False):
            return False
        try:
            session = self.lun.session
            if isinstance(session, BlockingManagedSession):
                with contextlib.suppress(IscsiError):
                    session.poll()
                back = session.state is State.LOGGED_IN
            else:
                back = not self.lun.channel.closed
            return self.revived(back, now, first, cap)
        finally:
            self._mutex.release()


class Gate:
    """Shared holds for whole-block calls, an exclusive one for a read-modify-write:
    a partial-block write on one path must not interleave with a write of the same
    blocks on another."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._shared = 0
        self._exclusive = False

    @contextlib.contextmanager
    def hold(self, exclusive: bool) -> Iterator[None]:
        with self._cond:
            while self._exclusive or (exclusive and self._shared):
                self._cond.wait()
            if exclusive:
                self._exclusive = True
            else:
                self._shared += 1
        try:
            yield
        finally:
            with self._cond:
                if exclusive:
                    self._exclusive = False
                else:
                    self._shared -= 1
                self._cond.notify_all()
