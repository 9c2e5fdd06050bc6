"""The session policy table on a fake clock: no sockets, no sleeping."""

from __future__ import annotations

import pytest

from iscsikit.manager.policy import TRANSITIONS, Action, Input, SessionPolicy, State

A, In, S = Action, Input, State


def logged_in(**kw: float) -> SessionPolicy:
    p = SessionPolicy(**kw)  # type: ignore[arg-type]
    p.handle(In.START, 0.0)
    p.handle(In.LOGIN_OK, 0.1)
    assert p.state is S.LOGGED_IN
    return p


def test_first_login_succeeds() -> None:
    p = SessionPolicy()
    assert p.handle(In.START, 0.0) == [A.LOGIN]
    assert p.handle(In.LOGIN_OK, 1.0) == [A.REPORT_LOGGED_IN, A.RESUME_IO]
    assert p.state is S.LOGGED_IN and p.deadline() is None


def test_first_login_retries_then_gives_up() -> None:
    p = SessionPolicy(login_retries=2, retry_delay=3.0)
    p.handle(In.START, 0.0)
    now = 0.0
    for _ in range(2):
        assert p.handle(In.LOGIN_FAILED, now) == []
        assert p.state is S.LOGIN_WAIT and p.deadline() == now + 3.0
        assert p.handle_timer(now + 2.9) == []  # not yet
        now += 3.0
        assert p.handle_timer(now) == [A.LOGIN]
    actions = p.handle(In.LOGIN_FAILED, now)
    assert p.state is S.FAILED and A.REPORT_FAILED in actions and A.CLOSE in actions
    assert p.finished


def test_fatal_login_failure_is_not_retried() -> None:
    p = SessionPolicy(login_retries=8)
    p.handle(In.START, 0.0)
    assert A.REPORT_FAILED in p.handle(In.LOGIN_FATAL, 0.0)
    assert p.state is S.FAILED


def test_connection_failure_waits_time2wait_then_reconnects() -> None:
    p = logged_in(replacement_timeout=20.0)
    p.time2wait = 2.0
    actions = p.handle(In.CONN_FAILED, 10.0)
    assert actions == [A.HOLD_IO, A.DROP]
    assert p.state is S.RECOVERY_WAIT
    assert p.deadline() == 12.0 and p.replacement_at == 30.0
    assert p.handle_timer(12.0) == [A.LOGIN]
    assert p.state is S.RECONNECTING
    assert p.handle(In.LOGIN_OK, 12.5) == [A.RESUME_IO]
    assert p.recoveries == 1 and p.replacement_at is None and not p.failing_fast


def test_target_time2wait_hint_wins() -> None:
    p = logged_in()
    p.handle(In.CONN_FAILED, 0.0, time2wait=7)
    assert p.wait_until == 7.0


def test_replacement_timeout_fails_io_and_keeps_trying() -> None:
    p = logged_in(replacement_timeout=5.0, retry_delay=1.0)
    p.time2wait = 2.0
    p.handle(In.CONN_FAILED, 0.0)
    assert p.handle_timer(2.0) == [A.LOGIN]
    p.handle(In.LOGIN_FAILED, 2.0)
    assert p.handle_timer(3.0) == [A.LOGIN]
    p.handle(In.LOGIN_FAILED, 3.0)
    assert p.handle_timer(4.0) == [A.LOGIN]
    p.handle(In.LOGIN_FAILED, 4.5)
    assert not p.failing_fast
    assert p.deadline() == 5.0
    assert p.handle_timer(5.0) == [A.FAIL_IO]
    assert p.failing_fast and not p.finished  # iscsid goes on trying
    assert p.handle_timer(5.5) == [A.LOGIN]
    assert p.failing_fast
    assert p.handle(In.LOGIN_OK, 6.0) == [A.RESUME_IO]
    assert not p.failing_fast and p.recoveries == 1


def test_zero_replacement_timeout_fails_at_once() -> None:
    p = logged_in(replacement_timeout=0.0)
    p.handle(In.CONN_FAILED, 1.0)
    assert p.deadline() == 1.0
    assert A.FAIL_IO in p.handle_timer(1.0)
    assert p.failing_fast


def test_target_logout_request_drains_then_logs_out_and_back_in() -> None:
    p = logged_in()
    assert p.handle(In.TARGET_LOGOUT, 1.0) == [A.HOLD_IO, A.DRAIN]
    assert p.state is S.DRAINING and not p.failing_fast
    assert p.handle(In.DRAINED, 1.5) == [A.LOGOUT]
    assert p.handle(In.LOGOUT_DONE, 1.6) == [A.DROP]
    assert p.state is S.RECOVERY_WAIT
    assert p.handle_timer(p.deadline() or 0) == [A.LOGIN]
    assert p.handle(In.LOGIN_OK, 5.0) == [A.RESUME_IO]


def test_user_logout() -> None:
    p = logged_in()
    assert p.handle(In.LOGOUT, 1.0) == [A.LOGOUT]
    actions = p.handle(In.LOGOUT_DONE, 1.1)
    assert p.state is S.CLOSED and A.CLOSE in actions and A.FAIL_IO in actions


def test_logout_during_recovery_ends_the_session() -> None:
    p = logged_in()
    p.handle(In.CONN_FAILED, 1.0)
    assert A.CLOSE in p.handle(In.LOGOUT, 1.5)
    assert p.finished and p.deadline() is None


def test_logout_during_a_reconnect_logs_that_login_out() -> None:
    p = logged_in()
    p.handle(In.CONN_FAILED, 1.0)
    p.handle_timer(p.deadline() or 0)
    assert p.handle(In.LOGOUT, 3.1) == []
    assert p.state is S.LOGOUT_PENDING
    assert p.handle(In.LOGIN_OK, 3.2) == [A.LOGOUT]
    assert A.CLOSE in p.handle(In.LOGOUT_DONE, 3.3)


def test_late_events_are_ignored_and_counted() -> None:
    p = logged_in()
    p.handle(In.LOGOUT, 0.0)
    p.handle(In.LOGOUT_DONE, 0.0)
    assert p.handle(In.CONN_FAILED, 1.0) == []
    assert p.handle(In.LOGIN_OK, 1.0) == []
    assert p.ignored == 2


@pytest.mark.parametrize("state", list(State))
def test_every_state_has_a_way_out_or_is_final(state: State) -> None:
    """No live state is a trap: each one has a row for LOGOUT (or ends by itself)."""
    if state in (S.CLOSED, S.FAILED):
        assert not any(key[0] is state for key in TRANSITIONS)
        return
    if state is S.IDLE:
        assert (state, In.START) in TRANSITIONS
        return
    if state in (S.LOGGING_OUT, S.LOGOUT_PENDING):  # a logout is under way already
        assert (state, In.LOGOUT) not in TRANSITIONS
        return
    assert (state, In.LOGOUT) in TRANSITIONS


def test_every_row_is_reachable() -> None:
    """Each (state, input) row's state can be entered from IDLE."""
    reachable = {S.IDLE}
    changed = True
    while changed:
        changed = False
        for (state, _), row in TRANSITIONS.items():
            if state in reachable and row.state not in reachable:
                reachable.add(row.state)
                changed = True
    assert {state for state, _ in TRANSITIONS} <= reachable
    assert reachable == set(State) - {S.IDLE} | {S.IDLE}
