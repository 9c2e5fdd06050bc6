"""What the two session shells share: the asyncio one (:mod:`iscsikit.manager.managed`)
and the blocking one (:mod:`iscsikit.manager.blocking`) carry out the same
:class:`~iscsikit.manager.policy.SessionPolicy`, so they classify login failures, refuse
I/O and run a command across connections the same way.

A user's command (the *outer* task) never goes on the wire itself: each attempt is a
fresh *inner* :class:`~iscsikit.proto.task.ScsiTask` sharing the outer's buffers
(:func:`attempt_of`).  Only an inner that the target answered completes the outer
(:func:`complete`); one a failed connection interrupted (:func:`interrupted`) says
nothing about the command, whatever reached the read buffer, so the outer is sent again
on the next connection.  No I/O here.
"""

from __future__ import annotations

from collections import deque
from typing import Generic, Protocol, TypeVar

from iscsikit.errors import (
    ConnectionFailedError,
    FatalLoginError,
    InvalidParameterError,
    IscsiError,
    LoginError,
    TransportNotFoundError,
)
from iscsikit.manager.policy import SessionPolicy, State
from iscsikit.proto.constants import TaskAttribute
from iscsikit.proto.task import ScsiTask

__all__ = [
    "REISSUE_LIMIT",
    "CommandRouter",
    "Reissues",
    "attempt_of",
    "complete",
    "complete_with_error",
    "interrupted",
    "is_fatal",
    "refusal_of",
]

#: Login failures that no retry can mend.
_FATAL = (FatalLoginError, InvalidParameterError, TransportNotFoundError)

#: How often one command is sent again after connections failed under it, before its
#: last error is reported: the kernel's sd retries a command the transport disrupted
#: ``SD_MAX_RETRIES`` (5) times.  A command that breaks every connection (a target bug
#: it triggers) must end although each new login succeeds.
REISSUE_LIMIT = 5


def is_fatal(exc: IscsiError) -> bool:
    """Whether a failed login attempt is final (authentication, unknown target, bad
    settings: status class 2) rather than worth another attempt."""
    if isinstance(exc, _FATAL):
        return True
    return isinstance(exc, LoginError) and exc.status_class == 2


def refusal_of(policy: SessionPolicy, sid: int, replacement_timeout: float) -> IscsiError | None:
    """Why a new command fails at once, or None when it may be sent or held."""
    if policy.finished:
        return ConnectionFailedError(f"session {sid} is closed")
    if policy.failing_fast:
        return ConnectionFailedError(
            f"session {sid} is down: not back within replacement_timeout "
            f"({replacement_timeout:g} s)"
        )
    if policy.state is State.LOGGING_OUT:
        return ConnectionFailedError(f"session {sid} is logging out")
    return None


def attempt_of(outer: ScsiTask) -> ScsiTask:
    """A fresh task for one attempt of ``outer`` on one connection (same CDB, LUN,
    buffers and attribute; nothing of an earlier attempt's state)."""
    return ScsiTask(
        outer.cdb,
        lun=outer.lun,
        read_buffer=outer.read_view,
        write_data=outer.write_view,
        expected_length=outer.expected_length,
        attr=TaskAttribute(outer.attr),
    )


def interrupted(inner: ScsiTask) -> bool:
    """True when ``inner`` ended because its connection failed, not by an answer."""
    return isinstance(inner.error, ConnectionFailedError)


def complete(outer: ScsiTask, inner: ScsiTask) -> None:
    """Finish ``outer`` with the outcome of its last attempt ``inner``."""
    outer.status = inner.status
    outer.response = inner.response
    outer.residual = inner.residual
    outer.sense_data = inner.sense_data
    outer.received = inner.received
    outer.error = inner.error
    outer.done = True
    if outer.callback is not None:
        outer.callback(outer)


def complete_with_error(task: ScsiTask, error: IscsiError) -> None:
    task.error = error
    task.done = True
    if task.callback is not None:
        task.callback(task)


class Reissues:
    """How often each outstanding command was sent again (None: no limit)."""

    def __init__(self, limit: int | None = REISSUE_LIMIT) -> None:
        if limit is not None and limit < 0:
            raise InvalidParameterError(f"reissue limit {limit} is negative")
        self.limit = limit
        self._counts: dict[ScsiTask, int] = {}
        #: Re-issues granted over the channel's life.
        self.total = 0

    def again(self, outer: ScsiTask) -> bool:
        """Count one more re-issue of ``outer``; False once that exceeds the limit."""
        count = self._counts.get(outer, 0) + 1
        if self.limit is not None and count > self.limit:
            self._counts.pop(outer, None)
            return False
        self._counts[outer] = count
        self.total += 1
        return True

    def forget(self, outer: ScsiTask) -> None:
        self._counts.pop(outer, None)


class _Connection(Protocol):
    """What the router needs of a connection's command channel (either kind)."""

    def submit(self, task: ScsiTask) -> None: ...

    @property
    def closed(self) -> bool: ...


_C = TypeVar("_C", bound=_Connection)


class _Session(Protocol):
    def refusal(self) -> IscsiError | None: ...

    def recovers(self) -> bool: ...


class CommandRouter(Generic[_C]):
    """A session's commands across its connections, for both session shells.

    A command goes to the current connection as a fresh attempt (:func:`attempt_of`),
    or waits in order while there is none.  An attempt a failed connection interrupted
    is sent again whole (at most ``reissue_limit`` times per command); one the target
    answered completes the command.  The shells subclass it together with their
    channel interface and call :meth:`attach`, :meth:`resume`, :meth:`fail_held` as
    their session's policy says.
    """

    def __init__(self, session: _Session, reissue_limit: int | None) -> None:
        self._session = session
        self._channel: _C | None = None
        self._held: deque[ScsiTask] = deque()
        #: Outer task -> its attempt on the current connection.
        self._inner: dict[ScsiTask, ScsiTask] = {}
        self._reissues = Reissues(reissue_limit)

    def attach(self, channel: _C | None) -> None:
        """Send on ``channel`` from now on (None: hold new commands)."""
        self._channel = channel

    def resume(self) -> None:
        """Send every held command, in the order they were submitted."""
        held, self._held = self._held, deque()
        for task in held:
            self._send(task)

    def fail_held(self, error: IscsiError) -> None:
        held, self._held = self._held, deque()
        for task in held:
            self._reissues.forget(task)
            complete_with_error(task, error)

    def abandon(self, error: IscsiError) -> None:
        """The current connection is gone without failing its commands (dropped while
        they were in flight): treat each as interrupted by ``error``."""
        for outer, inner in list(self._inner.items()):
            if not inner.done:
                inner.callback = None
                inner.error = error
                inner.done = True
                self._inner_done(outer, inner)

    def attempt(self, outer: ScsiTask) -> ScsiTask | None:
        """The attempt of ``outer`` on the current connection, if it has one."""
        return self._inner.get(outer)

    @property
    def inflight(self) -> int:
        return len(self._inner)

    @property
    def held(self) -> int:
        return len(self._held)

    @property
    def reissued(self) -> int:
        """Commands sent again after a connection failed under them."""
        return self._reissues.total

    def _inflight_changed(self) -> None:
        """Called after a command left or joined the current connection."""

    def _send(self, task: ScsiTask) -> None:
        refused = self._session.refusal()
        if refused is not None:
            self._reissues.forget(task)
            complete_with_error(task, refused)
            return
        channel = self._channel
        if channel is None or channel.closed:
            self._held.append(task)
            return
        inner = attempt_of(task)
        inner.callback = lambda done: self._inner_done(task, done)
        self._inner[task] = inner
        self._inflight_changed()
        try:
            channel.submit(inner)
        except ConnectionFailedError:
            # The connection died and the session has not heard yet: hold the command.
            if self._inner.pop(task, None) is not None:
                self._held.append(task)
                self._inflight_changed()

    def _inner_done(self, outer: ScsiTask, inner: ScsiTask) -> None:
        if self._inner.get(outer) is not inner:
            return  # an attempt given up already
        del self._inner[outer]
        self._inflight_changed()
        if interrupted(inner) and self._session.recovers() and self._reissues.again(outer):
            # Interrupted, not answered: whatever reached the buffer is not the answer.
            channel = self._channel
            if channel is not None and not channel.closed:
                self._send(outer)  # already on a new connection
            else:
                self._held.append(outer)
            return
        self._reissues.forget(outer)
        complete(outer, inner)
