"""A session the manager owns in the caller's thread: login, keep, recover, logout.

:class:`BlockingManagedSession` is the blocking twin of
:class:`~iscsikit.manager.managed.ManagedSession`: it carries out the same
:class:`~iscsikit.manager.policy.SessionPolicy` table, on a monotonic clock, with no
thread and no event loop of its own.  The machine moves only while a caller is inside
it - :meth:`~BlockingManagedSession.login`, :meth:`~BlockingManagedSession.logout`, or a
command's ``submit`` / ``wait`` on :attr:`~BlockingManagedSession.io` - and then it runs
what is due: a login attempt, a logout, the policy's timers, the connection's I/O, or a
sleep until the next deadline.  So a session nobody uses is not reconnected in the
background; the next command does it (bounded by the login timeout).

:attr:`~BlockingManagedSession.io` is a :class:`RecoveringCommandChannel`, the
:class:`~iscsikit.plugin.transport.CommandChannel` a blocking
:class:`~iscsikit.lun.lun.Lun` holds for the session's whole life: a command a failed
connection interrupted is held and re-issued, whole, on the next connection (a fresh
inner task each time, :mod:`iscsikit.manager.recovery`); commands submitted during
recovery wait with it; when ``replacement_timeout`` passes first, all of them fail with
:class:`~iscsikit.errors.ConnectionFailedError`.  A command re-issued more than
``reissue_limit`` times fails with its last error.  One thread at a time, as for any
CommandChannel.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections import deque
from collections.abc import Callable, Mapping
from types import TracebackType

from iscsikit.errors import (
    ConnectionFailedError,
    IscsiError,
    LocalProtocolError,
    LoginError,
    LogoutError,
)
from iscsikit.manager.connect import connect, emit
from iscsikit.manager.policy import Action, Input, State
from iscsikit.manager.recovery import (
    REISSUE_LIMIT,
    CommandRouter,
    complete_with_error,
)
from iscsikit.manager.shell import SessionShell
from iscsikit.manager.spec import SessionSettings
from iscsikit.plugin import SessionEventKind
from iscsikit.plugin.transport import CommandChannel, TransportSession
from iscsikit.proto.address import Portal
from iscsikit.proto.task import ScsiTask, TmfTask

__all__ = ["BlockingManagedSession", "RecoveringCommandChannel"]

log = logging.getLogger(__name__)

#: A connector: one login attempt at a portal (redirects followed, no retries).
Connector = Callable[[SessionSettings, Portal], TransportSession]

#: States in which the session has a connection that may fail under it.
_CONNECTED = frozenset({State.LOGGED_IN, State.DRAINING, State.TARGET_LOGOUT})
#: Actions that run as steps of their own (they do I/O that may take a while).
_JOBS = frozenset({Action.LOGIN, Action.LOGOUT, Action.DRAIN})


def _connect_once(settings: SessionSettings, portal: Portal) -> TransportSession:
    return connect(settings, retries=0, portal=portal)  # one attempt; the policy retries


class RecoveringCommandChannel(CommandRouter[CommandChannel], CommandChannel):
    """The session's commands, across its connections (see the module docstring and
    :class:`~iscsikit.manager.recovery.CommandRouter`)."""

    def __init__(self, session: BlockingManagedSession, reissue_limit: int | None) -> None:
        super().__init__(session, reissue_limit)
        self._blocking_session = session

    # -- CommandChannel ----------------------------------------------------------------

    def submit(self, task: ScsiTask) -> None:
        self._blocking_session.poll()
        self._send(task)

    def wait(self, task: ScsiTask | None = None) -> None:
        """Run the session until ``task`` is done (None: one step of it)."""
        if task is None:
            self._blocking_session.step(None)
            return
        while not task.done:
            self._blocking_session.step(task)

    def task_management(self, task: TmfTask) -> TmfTask:
        channel = self._channel
        if channel is None or channel.closed:
            raise ConnectionFailedError("the session is reconnecting")
        return channel.task_management(task)

    def statistics(self) -> Mapping[str, int]:
        return self._blocking_session.statistics()

    @property
    def closed(self) -> bool:
        return self._blocking_session.policy.finished


class BlockingManagedSession(SessionShell[CommandChannel]):
    """One session driven by its callers' threads: settings, policy, connection."""

    io: RecoveringCommandChannel

    def __init__(
        self,
        settings: SessionSettings,
        *,
        sid: int = 0,
        reissue_limit: int | None = REISSUE_LIMIT,
        connector: Connector = _connect_once,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        super().__init__(settings, sid)
        self.io = RecoveringCommandChannel(self, reissue_limit)
        self._connector = connector
        self._clock = clock
        self._sleep = sleep
        self._jobs: deque[Action] = deque()
        self._events: deque[object] = deque()
        self._polling = False

    # -- what users call ---------------------------------------------------------------

    @property
    def target(self) -> str:
        return self.settings.target

    @property
    def closed(self) -> bool:
        """True once the session was logged out, dropped, or its first login failed."""
        return self.policy.finished

    @property
    def recoveries(self) -> int:
        """How many times the session came back after its connection failed."""
        return self.policy.recoveries

    def login(self) -> None:
        """Log in (retrying as the settings say); raises the last error on failure."""
        if self.policy.state is not State.IDLE:
            raise LocalProtocolError(f"session {self.sid} was logged in before")
        self._feed(Input.START)
        while self.state in (State.LOGGING_IN, State.LOGIN_WAIT):
            self.step(None)
        if self.state is not State.LOGGED_IN:
            raise self.last_error or LoginError("the login was cancelled")

    def logout(self) -> None:
        """Log out and end the session; idempotent.  Held commands fail.  A failed
        logout exchange is raised (the connection is closed all the same)."""
        self.poll()
        if not self.policy.finished:
            self._feed(Input.LOGOUT)
        while not self.policy.finished:
            self.step(None)
        if self._logout_error is not None:
            error, self._logout_error = self._logout_error, None
            raise error

    def close(self) -> None:
        """End the session without a logout (the connection is closed); idempotent."""
        if not self.policy.finished:
            self.policy.state = State.CLOSED
            self._apply([Action.DROP, Action.FAIL_IO, Action.CLOSE])

    def refusal(self) -> IscsiError | None:
        """Why a new command fails at once, or None when it may be sent or held."""
        if self.policy.state is State.IDLE:
            return ConnectionFailedError(f"session {self.sid} is not logged in")
        return super().refusal()

    def __enter__(self) -> BlockingManagedSession:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc is None:
            self.logout()
        else:
            try:  # don't mask the caller's exception with a logout failure
                self.logout()
            except IscsiError:
                self.close()

    def __repr__(self) -> str:
        return f"<BlockingManagedSession {self.sid} {self.target} ({self.policy.state.value})>"

    # -- running the machine -------------------------------------------------------------

    def poll(self) -> None:
        """Do what is due now without waiting: act on the connection's events, run the
        policy's due timers and pending jobs (a due login attempt blocks for its
        duration).  Re-entrant calls (from a job's own I/O) return at once."""
        if self._polling:
            return
        self._polling = True
        try:
            while True:
                self._take_events()
                if self._jobs:
                    self._run_job(self._jobs.popleft())
                    continue
                now = self._clock()
                when = self.policy.deadline()
                if when is not None and when <= now:
                    self._apply(self.policy.handle_timer(now))
                    continue
                return
        finally:
            self._polling = False

    def step(self, waiting: ScsiTask | None) -> None:
        """One turn: what is due, then the connection's I/O (until ``waiting``'s attempt
        is done) or a sleep until the policy's next deadline."""
        self.poll()
        if waiting is not None and waiting.done:
            return
        channel = self.channel
        if channel is not None and not channel.closed and self.policy.state in _CONNECTED:
            inner = self.io.attempt(waiting) if waiting is not None else None
            with contextlib.suppress(ConnectionFailedError):
                # Bounded by the connection's timers (command timeout, keepalive).
                channel.wait(inner)
            return
        when = self.policy.deadline()
        if when is None:
            if waiting is not None and not waiting.done:
                # Nothing will move it again: the session is over or never started.
                error = self.refusal() or ConnectionFailedError(f"session {self.sid} is down")
                complete_with_error(waiting, error)
            return
        self._sleep(max(when - self._clock(), 0.0))

    # -- the policy's actions --------------------------------------------------------------

    def _feed(self, event: Input, *, time2wait: float | None = None) -> None:
        before = self.policy.state
        actions = self.policy.handle(event, self._clock(), time2wait=time2wait)
        if self.policy.state is not before or actions:
            log.debug("session %d: %s: %s -> %s", self.sid, event.value, before.value,
                      self.policy.state.value)  # fmt: skip
        self._apply(actions)

    def _apply(self, actions: list[Action]) -> None:
        for action in actions:
            if action in _JOBS:
                self._jobs.append(action)
            elif self._apply_io(action):
                pass
            elif action is Action.DROP:
                self._drop_connection()
            elif action is Action.CLOSE:
                self._close()
            # REPORT_LOGGED_IN / REPORT_FAILED: login() reads the state.

    def _run_job(self, action: Action) -> None:
        if action is Action.LOGIN:
            self._login_attempt()
        elif action is Action.LOGOUT:
            self._logout_exchange()
        elif action is Action.DRAIN:
            self._drain()

    def _take_events(self) -> None:
        while self._events:
            self._target_event(self._events.popleft())
        channel = self.channel
        if channel is not None and channel.closed and self.policy.state in _CONNECTED:
            # A channel that reports no events: its closing is the failure.
            self._feed(Input.CONN_FAILED)

    def _on_event(self, channel: CommandChannel, event: object) -> None:
        # Called from inside the channel's I/O: note it, act once that I/O returned.
        if channel is self.channel:
            self._events.append(event)

    def _login_attempt(self) -> None:
        portal = self._next_portal()
        try:
            inner = self._connector(self.settings, portal)
        except IscsiError as exc:
            self._login_failed(exc, portal)
            return
        try:
            channel = inner.command_channel()
        except IscsiError as exc:
            with contextlib.suppress(Exception):
                inner.close()
            self._login_failed(exc)
            return
        self._logged_in(inner, channel, portal)

    def _drain(self) -> None:
        within = self._drain_within or self.settings.timeouts.logout
        until = self._clock() + within
        channel = self.channel
        while self.io.inflight and channel is not None and not channel.closed:
            if self._clock() >= until:
                break
            with contextlib.suppress(ConnectionFailedError):
                channel.wait(None)
        self._feed(Input.DRAINED)

    def _logout_exchange(self) -> None:
        inner = self.transport_session
        if inner is None:
            self._feed(Input.LOGOUT_DONE)
            return
        user = self.policy.state is State.LOGGING_OUT
        try:
            inner.logout(self.settings.timeouts.logout)
        except IscsiError as exc:
            if user:
                self._logout_error = exc if isinstance(exc, LogoutError) else LogoutError(str(exc))
            self._feed(Input.CONN_FAILED)
            return
        if user:
            emit(SessionEventKind.LOGGED_OUT, self.settings.transport, self.target, inner.portal)
        self._feed(Input.LOGOUT_DONE)

    def _drop_connection(self) -> None:
        _, inner = self._retire_connection()
        if inner is not None:
            with contextlib.suppress(Exception):
                inner.close()
        # Whatever was still in flight there will not be answered.
        self.io.abandon(ConnectionFailedError(f"session {self.sid}: connection dropped"))

    def _close(self) -> None:
        self._drop_connection()
        self._jobs.clear()
        self._events.clear()
        self.io.fail_held(ConnectionFailedError(f"session {self.sid} is closed"))
