"""A session's life as a table: log in, keep, recover, log out (RFC 7143 ERL 0).

:class:`SessionPolicy` is the decision half of a managed session, with no sockets and no
clock of its own: the owner feeds it :class:`Input` events with the current time
(``handle(Input.CONN_FAILED, now)``) and timer ticks (``handle_timer(now)``), and
carries out the :class:`Action` list each call returns.  Every transition is a row of
:data:`TRANSITIONS`, keyed by (state, input), in the style of h11's ``_state.py``.

What the table encodes (open-iscsi's iscsid and the kernel's libiscsi):

* the first login is tried ``1 + login_retries`` times (``node.session.
  initial_login_retry_max``) on retryable failures, ``retry_delay`` apart; a fatal
  failure (authentication, unknown target) ends it at once;
* a failed connection holds new I/O, waits DefaultTime2Wait (or the target's Time2Wait
  hint), then logs in again as the same session (same ISID: reinstatement); queued and
  interrupted commands are re-issued on the new connection;
* a session not back within ``replacement_timeout`` fails the held I/O, and fails new
  I/O at once, while it goes on trying to log in again (the kernel's recovery_tmo);
* a target's Async logout request drains the outstanding commands, logs out, and logs
  in again after Time2Wait, as after a failure but without losing a command;
* a user's logout waits for nothing more than the logout exchange and ends the session.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass

__all__ = ["TRANSITIONS", "Action", "Input", "SessionPolicy", "State", "Transition"]


class State(enum.Enum):
    IDLE = "idle"
    LOGGING_IN = "logging in"
    LOGIN_WAIT = "waiting to retry the login"
    LOGGED_IN = "logged in"
    DRAINING = "draining for a target logout request"
    TARGET_LOGOUT = "logging out at the target's request"
    RECOVERY_WAIT = "waiting to reconnect"
    RECONNECTING = "reconnecting"
    LOGOUT_PENDING = "logout waiting for a login in progress"
    LOGGING_OUT = "logging out"
    FAILED = "login failed"
    CLOSED = "closed"


class Input(enum.Enum):
    START = "start"
    LOGIN_OK = "login succeeded"
    LOGIN_FAILED = "login failed (retryable)"
    LOGIN_FATAL = "login failed (fatal)"
    CONN_FAILED = "connection failed"
    TARGET_LOGOUT = "target asked for a logout"
    DRAINED = "outstanding commands finished"
    LOGOUT = "logout requested"
    LOGOUT_DONE = "logout finished"
    TIMER = "wait over"
    REPLACEMENT_TIMEOUT = "replacement_timeout expired"


class Action(enum.Enum):
    #: Start one login attempt; report LOGIN_OK / LOGIN_FAILED / LOGIN_FATAL.
    LOGIN = "login"
    #: Tell the waiting user: the session is up / the first login failed.
    REPORT_LOGGED_IN = "report logged in"
    REPORT_FAILED = "report failed"
    #: New commands wait; commands the failed connection interrupted wait too.
    HOLD_IO = "hold I/O"
    #: Send the held commands (again) on the current connection.
    RESUME_IO = "resume I/O"
    #: Fail the held commands, and new ones until the session is back.
    FAIL_IO = "fail I/O"
    #: Report DRAINED once no command is outstanding (bounded by the request's time).
    DRAIN = "drain"
    #: Send a Logout on the current connection; report LOGOUT_DONE (or CONN_FAILED).
    LOGOUT = "logout"
    #: Drop the current connection without a logout.
    DROP = "drop connection"
    #: The session is over: release everything, fail what still waits.
    CLOSE = "close"


@dataclass(frozen=True, slots=True)
class Transition:
    """A row: the next state, what to do, and the wait to arm: ``"time2wait"``,
    ``"retry"``, ``"keep"`` (the armed wait stays) or None (any armed wait is cancelled)."""

    state: State
    actions: tuple[Action, ...] = ()
    wait: str | None = None


S, On, A = State, Input, Action
_RECOVER = Transition(S.RECOVERY_WAIT, (A.HOLD_IO, A.DROP), wait="time2wait")
_GONE = Transition(S.CLOSED, (A.FAIL_IO, A.DROP, A.CLOSE))

#: (state, input) -> transition.  A pair that is not here is ignored (a late event of a
#: connection already given up, a second logout); :attr:`SessionPolicy.ignored` counts them.
TRANSITIONS: Mapping[tuple[State, Input], Transition] = {
    # The first login.
    (S.IDLE, On.START): Transition(S.LOGGING_IN, (A.LOGIN,)),
    (S.LOGGING_IN, On.LOGIN_OK): Transition(S.LOGGED_IN, (A.REPORT_LOGGED_IN, A.RESUME_IO)),
    (S.LOGGING_IN, On.LOGIN_FAILED): Transition(S.LOGIN_WAIT, (), wait="retry"),
    (S.LOGGING_IN, On.LOGIN_FATAL): Transition(S.FAILED, (A.REPORT_FAILED, A.FAIL_IO, A.CLOSE)),
    (S.LOGGING_IN, On.LOGOUT): Transition(S.LOGOUT_PENDING),
    (S.LOGIN_WAIT, On.TIMER): Transition(S.LOGGING_IN, (A.LOGIN,)),
    (S.LOGIN_WAIT, On.LOGOUT): Transition(S.FAILED, (A.REPORT_FAILED, A.FAIL_IO, A.CLOSE)),
    # Logged in.
    (S.LOGGED_IN, On.CONN_FAILED): _RECOVER,
    (S.LOGGED_IN, On.TARGET_LOGOUT): Transition(S.DRAINING, (A.HOLD_IO, A.DRAIN)),
    (S.LOGGED_IN, On.LOGOUT): Transition(S.LOGGING_OUT, (A.LOGOUT,)),
    # The target asked us to log out: finish what is in flight, log out, come back.
    (S.DRAINING, On.DRAINED): Transition(S.TARGET_LOGOUT, (A.LOGOUT,)),
    (S.DRAINING, On.CONN_FAILED): _RECOVER,
    (S.DRAINING, On.LOGOUT): Transition(S.LOGGING_OUT, (A.LOGOUT,)),
    (S.TARGET_LOGOUT, On.LOGOUT_DONE): Transition(S.RECOVERY_WAIT, (A.DROP,), wait="time2wait"),
    (S.TARGET_LOGOUT, On.CONN_FAILED): _RECOVER,
    (S.TARGET_LOGOUT, On.LOGOUT): Transition(S.LOGGING_OUT),
    # Recovery: wait, log in again as the same session, re-issue.
    (S.RECOVERY_WAIT, On.TIMER): Transition(S.RECONNECTING, (A.LOGIN,)),
    (S.RECOVERY_WAIT, On.REPLACEMENT_TIMEOUT): Transition(
        S.RECOVERY_WAIT, (A.FAIL_IO,), wait="keep"
    ),
    (S.RECOVERY_WAIT, On.LOGOUT): _GONE,
    (S.RECONNECTING, On.LOGIN_OK): Transition(S.LOGGED_IN, (A.RESUME_IO,)),
    (S.RECONNECTING, On.LOGIN_FAILED): Transition(S.RECOVERY_WAIT, (), wait="retry"),
    (S.RECONNECTING, On.LOGIN_FATAL): Transition(S.RECOVERY_WAIT, (), wait="retry"),
    (S.RECONNECTING, On.REPLACEMENT_TIMEOUT): Transition(S.RECONNECTING, (A.FAIL_IO,), wait="keep"),
    (S.RECONNECTING, On.LOGOUT): Transition(S.LOGOUT_PENDING),
    # A logout asked for while a login runs: log that login out, or give up.
    (S.LOGOUT_PENDING, On.LOGIN_OK): Transition(S.LOGGING_OUT, (A.LOGOUT,)),
    (S.LOGOUT_PENDING, On.LOGIN_FAILED): _GONE,
    (S.LOGOUT_PENDING, On.LOGIN_FATAL): _GONE,
    (S.LOGOUT_PENDING, On.REPLACEMENT_TIMEOUT): Transition(
        S.LOGOUT_PENDING, (A.FAIL_IO,), wait="keep"
    ),
    (S.LOGGING_OUT, On.LOGOUT_DONE): _GONE,
    (S.LOGGING_OUT, On.CONN_FAILED): _GONE,
}


@dataclass(slots=True)
class SessionPolicy:
    """The table applied to one session, with its retry count and its two timers."""

    #: Retries of the first login after a retryable failure.
    login_retries: int = 8
    retry_delay: float = 1.0
    #: DefaultTime2Wait negotiated (updated by the owner after each login).
    time2wait: float = 2.0
    replacement_timeout: float = 120.0
    state: State = State.IDLE
    attempts: int = 0
    #: When the armed wait ends, and when held I/O fails (None: not armed).
    wait_until: float | None = None
    replacement_at: float | None = None
    #: Inputs that had no row (for tests and the daemon's debug log).
    ignored: int = 0
    #: How many times the session came back after a failure.
    recoveries: int = 0

    def handle(self, event: Input, now: float, *, time2wait: float | None = None) -> list[Action]:
        """Apply ``event``; return what to do.  ``time2wait`` is a target's hint for a
        connection it is about to drop (Async event 2/3, a Logout Response)."""
        if event is Input.LOGIN_FAILED and self.state is State.LOGGING_IN:
            self.attempts += 1
            if self.attempts > self.login_retries:
                event = Input.LOGIN_FATAL  # out of retries: as final as a fatal error
        row = TRANSITIONS.get((self.state, event))
        if row is None:
            self.ignored += 1
            return []
        previous, self.state = self.state, row.state
        if row.wait == "time2wait":
            hint = self.time2wait if time2wait is None else time2wait
            self.wait_until = now + max(hint, 0.0)
        elif row.wait == "retry":
            self.wait_until = now + self.retry_delay
        elif row.wait != "keep":
            self.wait_until = None
        actions = list(row.actions)
        if Action.HOLD_IO in actions and self.replacement_at is None:
            self.replacement_at = now + max(self.replacement_timeout, 0.0)
        if Action.RESUME_IO in actions:
            if previous is State.RECONNECTING:
                self.recoveries += 1
            self.replacement_at = None
        if Action.FAIL_IO in actions or row.state in (State.CLOSED, State.FAILED):
            self.replacement_at = None
        return actions

    def deadline(self) -> float | None:
        """The earliest time :meth:`handle_timer` has something to do."""
        times = [t for t in (self.wait_until, self.replacement_at) if t is not None]
        return min(times) if times else None

    def handle_timer(self, now: float) -> list[Action]:
        actions: list[Action] = []
        if self.replacement_at is not None and now >= self.replacement_at:
            self.replacement_at = None
            actions += self.handle(Input.REPLACEMENT_TIMEOUT, now)
        if self.wait_until is not None and now >= self.wait_until:
            self.wait_until = None
            actions += self.handle(Input.TIMER, now)
        return actions

    @property
    def failing_fast(self) -> bool:
        """True while new I/O fails at once (replacement_timeout passed, not back yet)."""
        return self.state in _DOWN and self.replacement_at is None

    @property
    def finished(self) -> bool:
        return self.state in (State.CLOSED, State.FAILED)


_DOWN = frozenset({State.RECOVERY_WAIT, State.RECONNECTING, State.LOGOUT_PENDING})
