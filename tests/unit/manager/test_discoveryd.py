"""discoveryd's policy on a fake clock: poll intervals as iscsid reads them, the
record state machine (every state x input), and iscsid's update_sessions rule."""

from __future__ import annotations

import itertools

import pytest

from iscsikit.manager.discoveryd import (
    RETRY_INTERVAL,
    TRANSITIONS,
    Input,
    RecordPoller,
    Schedule,
    State,
    plan_sessions,
)


@pytest.mark.parametrize(
    ("kind", "inval", "expected"),
    [
        ("sendtargets", -1, Schedule(30.0)),
        ("sendtargets", -7, Schedule(30.0)),
        ("sendtargets", 0, Schedule(None, once=True)),
        ("sendtargets", 5, Schedule(5.0)),
        ("isns", -1, Schedule(None, scn=True)),
        ("isns", 0, Schedule(None, once=True)),
        ("isns", 12, Schedule(12.0, scn=True)),
    ],
)
def test_poll_interval_as_iscsid_reads_it(kind: str, inval: int, expected: Schedule) -> None:
    assert Schedule.for_record(kind, inval) == expected


def test_registration_period_refreshed_by_polling_at_half_of_it() -> None:
    assert Schedule(None, scn=True).refreshing(60) == Schedule(30.0, scn=True)
    assert Schedule(10.0, scn=True).refreshing(60) == Schedule(10.0, scn=True)
    assert Schedule(None, scn=True).refreshing(1) == Schedule(1.0, scn=True)
    assert Schedule(None, scn=True).refreshing(None) == Schedule(None, scn=True)
    assert Schedule(None, once=True).refreshing(60) == Schedule(None, once=True)


def test_polls_every_interval_after_each_run_ends() -> None:
    poller = RecordPoller(Schedule(30.0))
    assert poller.get_timer() == 0.0 and poller.handle_timer(100.0)  # first run at once
    assert poller.get_timer() is None and not poller.handle_timer(500.0)  # in flight
    assert not poller.finished(107.0)  # the run took 7 s: next one 30 s after its end
    assert poller.get_timer() == 137.0
    assert not poller.handle_timer(136.9)
    assert poller.handle_timer(137.0) and poller.runs == 2


def test_never_two_runs_of_one_record_and_scn_during_a_run_runs_once_more() -> None:
    poller = RecordPoller(Schedule(None, scn=True))
    assert poller.handle_timer(0.0)
    assert not poller.scn(1.0) and not poller.scn(2.0)  # folded into one more run
    assert poller.state is State.RUNNING_AGAIN
    assert poller.finished(3.0)  # ... started right away
    assert not poller.finished(4.0)
    assert poller.get_timer() is None  # SCN-only: no poll timer
    assert poller.scn(50.0) and poller.runs == 3


def test_failed_run_is_retried_at_the_next_interval() -> None:
    poller = RecordPoller(Schedule(5.0))
    assert poller.handle_timer(0.0)
    assert not poller.finished(1.0, failed=True)
    assert poller.get_timer() == 6.0 and poller.handle_timer(6.0)


def test_scn_only_record_retries_a_failure_after_the_retry_interval() -> None:
    poller = RecordPoller(Schedule(None, scn=True))
    assert poller.handle_timer(0.0)
    poller.finished(1.0)
    assert poller.get_timer() is None  # success: wait for the next SCN
    assert poller.scn(10.0)
    poller.finished(11.0, failed=True)
    assert poller.get_timer() == 11.0 + RETRY_INTERVAL
    assert poller.handle_timer(11.0 + RETRY_INTERVAL)


def test_failed_run_once_is_not_retried() -> None:
    poller = RecordPoller(Schedule(None, once=True))
    assert poller.handle_timer(0.0)
    poller.finished(1.0, failed=True)
    assert poller.state is State.DONE and poller.get_timer() is None


def test_run_once_record_stops_after_its_run() -> None:
    poller = RecordPoller(Schedule(None, once=True))
    assert poller.handle_timer(0.0)
    poller.finished(1.0)
    assert poller.state is State.DONE and poller.get_timer() is None
    assert not poller.scn(2.0) and not poller.handle_timer(1e9)


def test_stop_ends_everything() -> None:
    poller = RecordPoller(Schedule(1.0))
    assert poller.handle_timer(0.0)
    poller.stop()
    assert not poller.finished(1.0) and not poller.scn(2.0) and poller.get_timer() is None


def test_table_covers_every_pair_that_can_happen() -> None:
    # FINISHED/FAILED only arrive while a run is in flight (or after a stop during one).
    impossible = {
        (state, event)
        for state in (State.WAITING, State.DONE)
        for event in (Input.FINISHED, Input.FAILED)
    }
    for pair in itertools.product(State, Input):
        assert (pair in TRANSITIONS) != (pair in impossible), pair
    poller = RecordPoller(Schedule(1.0))
    with pytest.raises(LookupError):
        poller.finished(0.0)


A = ("iqn.t:a", "127.0.0.1", 3260, "default")
B = ("iqn.t:b", "127.0.0.1", 3260, "default")
C = ("iqn.t:c", "127.0.0.1", 3261, "default")


def test_update_sessions_logs_in_new_and_out_of_vanished() -> None:
    first = plan_sessions((), [A, B], with_session=[A])
    assert first.login == (B,) and first.logout == () and first.tracked == {A, B}
    second = plan_sessions(first.tracked, [B, C, C], with_session=[A, B])
    assert second.login == (C,) and second.logout == (A,) and second.tracked == {B, C}


def test_update_sessions_leaves_sessions_it_never_saw() -> None:
    # A session of a portal this record never returned is somebody else's.
    plan = plan_sessions([B], [], with_session=[A, B])
    assert plan.logout == (B,) and plan.login == ()


def test_vanished_portal_without_session_needs_no_logout() -> None:
    assert plan_sessions([A], [], with_session=[]).logout == ()
