"""Full Feature Phase timers: NOP keepalive, command timeouts, task management escalation.

The machine reads no clock: the test passes ``now`` to ``handle_timer`` and steps it
like an I/O layer would, one tick at a time.  Keepalive is RFC 7143 §11.18 (NOP-Out
ping with a valid ITT, TTT 0xffffffff, I bit); task management is §11.5 / §11.6
(ABORT TASK carries the Referenced Task Tag and RefCmdSN of the task it aborts).
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from test_ffp import (
    NO_TIMERS,
    Target,
    assert_each_called_once,
    failed_with,
    pattern,
)

from iscsikit.errors import (
    CommandTimeoutError,
    ConnectionFailedError,
    PduTimeoutError,
    TaskManagementError,
)
from iscsikit.proto.constants import RESERVED_TAG, TmfFunction, TmfResponse
from iscsikit.proto.ffp import ConnectionFailed, Timers
from iscsikit.proto.pdu import NopOut, Pdu, TaskMgmtRequest, lun_to_field
from iscsikit.proto.task import PingTask, TmfTask

KEEPALIVE = Timers(
    noop_out_interval=5,
    noop_out_timeout=5,
    command_timeout=0,
    abort_timeout=0,
    lu_reset_timeout=0,
    tgt_reset_timeout=0,
    tick=1,
)
ESCALATION = Timers(
    noop_out_interval=0,
    noop_out_timeout=0,
    command_timeout=30,
    abort_timeout=15,
    lu_reset_timeout=30,
    tgt_reset_timeout=30,
    tick=1,
)


def run_clock(
    t: Target,
    start: float,
    stop: float,
    *,
    step: float = 1.0,
    on_sent: Callable[[float, list[Pdu]], None] | None = None,
) -> list[tuple[float, Pdu]]:
    """Call handle_timer at start, start + step, ... up to stop; collect what is sent."""
    sent: list[tuple[float, Pdu]] = []
    now = start
    while now <= stop + 1e-9:
        t.conn.handle_timer(now)
        pdus = t.sent()
        sent += [(now, p) for p in pdus]
        if on_sent is not None and pdus:
            on_sent(now, pdus)
        now += step
    return sent


# == keepalive =============================================================================


def test_idle_connection_sends_a_ping_after_noop_out_interval() -> None:
    t = Target(timers=KEEPALIVE)
    sent = run_clock(t, 0, 4.5, step=0.5)
    assert sent == []
    t.conn.handle_timer(5.0)
    nop = t.sent_one(NopOut)
    assert isinstance(nop, NopOut)
    assert nop.immediate and nop.ttt == RESERVED_TAG and nop.itt != RESERVED_TAG
    assert nop.cmdsn == t.state.cmdsn and nop.expstatsn == t.statsn
    # Answered: the connection lives on, and the next ping comes an interval later.
    t.feed(t.nop_in(itt=nop.itt, data=nop.data))
    sent = run_clock(t, 6, 9.9, step=0.1)
    assert sent == [] and not t.conn.closed
    later = run_clock(t, 10, 11)
    assert [type(p) for _, p in later] == [NopOut]
    assert t.events() == []


def test_unanswered_ping_fails_the_connection_after_noop_out_timeout() -> None:
    t = Target(timers=KEEPALIVE)
    task = t.read(512)
    t.sent()
    run_clock(t, 0, 5)
    pings = [p for p in t.log if isinstance(p, NopOut)]
    assert len(pings) == 1
    run_clock(t, 6, 9.9, step=0.1)
    assert not t.conn.closed
    t.conn.handle_timer(10.0)
    failure = t.failure()
    assert isinstance(failure.error.__cause__, PduTimeoutError)
    assert "ping timeout of 5 s expired" in str(failure.error)
    failed_with(task, ConnectionFailedError, "ping timeout")
    assert t.conn.get_timer() is None


def test_traffic_postpones_the_keepalive() -> None:
    t = Target(timers=KEEPALIVE)
    t.conn.handle_timer(0)
    t.conn.handle_timer(3)
    t.feed(t.nop_in())  # unsolicited NOP-In: receive activity, noticed at the next tick (4)
    run_clock(t, 4, 8.9, step=0.1)
    assert t.log == []
    t.conn.handle_timer(9.0)
    assert [type(p) for p in t.sent()] == [NopOut]


def test_bytes_trickling_in_keep_a_ping_alive() -> None:
    t = Target(timers=KEEPALIVE)
    task = t.read(512)
    t.sent()
    run_clock(t, 0, 5)
    raw = t.encode(t.data_in(task.itt, pattern(512), status=0))
    for n, now in enumerate(range(6, 14)):
        t.feed(raw[n * 4 : n * 4 + 4])
        t.conn.handle_timer(now)
    assert not t.conn.closed  # the target is slow, not dead


def test_get_timer_follows_the_tick() -> None:
    t = Target(timers=KEEPALIVE)
    assert t.conn.get_timer() == 0.0
    t.conn.handle_timer(42.0)
    assert t.conn.get_timer() == 43.0


def test_ping_task_times_out_without_killing_the_connection() -> None:
    timers = Timers(noop_out_interval=0, noop_out_timeout=5, command_timeout=0, tick=1)
    t = Target(timers=timers)
    t.conn.handle_timer(0)
    ping = PingTask(b"hello", callback=t.callback)
    t.conn.ping(ping)
    nop = t.sent_one(NopOut)
    assert isinstance(nop, NopOut) and nop.data == b"hello"
    run_clock(t, 1, 5)
    failed_with(ping, PduTimeoutError, "no NOP-In answered the ping")
    assert not t.conn.closed
    assert t.callback.calls == [ping]


# == command timeout and task management ===================================================


def tmfs(sent: list[tuple[float, Pdu]]) -> list[tuple[float, TmfFunction, TaskMgmtRequest]]:
    return [(now, TmfFunction(p.function), p) for now, p in sent if isinstance(p, TaskMgmtRequest)]


def test_command_timeout_sends_abort_task_with_refcmdsn() -> None:
    t = Target(timers=ESCALATION, cmdsn=77)
    t.conn.handle_timer(0)
    other = t.read(512, lun=2)
    task = t.read(512, lun=2)
    t.sent()
    t.feed(t.data_in(other.itt, pattern(512), status=0))
    sent = run_clock(t, 1, 30)
    [(when, function, abort)] = tmfs(sent)
    assert when == 30 and function == TmfFunction.ABORT_TASK
    assert abort.immediate
    assert abort.referenced_task_tag == task.itt
    assert abort.refcmdsn == 78 == task.cmdsn
    assert abort.lun == lun_to_field(2)
    assert abort.cmdsn == 79 and abort.expstatsn == t.statsn
    assert not task.done and other.good


@pytest.mark.parametrize("answer", [TmfResponse.FUNCTION_COMPLETE, TmfResponse.TASK_DOES_NOT_EXIST])
def test_successful_abort_ends_the_timed_out_command(answer: TmfResponse) -> None:
    t = Target(timers=ESCALATION)
    t.conn.handle_timer(0)
    task = t.read(512, lun=2)
    t.sent()
    [(_, _, abort)] = tmfs(run_clock(t, 1, 30))
    # FUNCTION COMPLETE (or, for ABORT TASK, TASK DOES NOT EXIST: §11.6.1) ends the
    # command: the target will not answer it any more.
    t.feed(t.tmf_response(abort.itt, answer))
    assert run_clock(t, 31, 120) == []  # no second abort, no escalation
    failed_with(task, CommandTimeoutError, "ended by ABORT TASK")
    assert not task.good and not t.conn.closed
    assert t.conn.outstanding == 0
    assert_each_called_once(t.callback, [task])


def test_tmf_timeouts_escalate_to_lun_reset_then_target_reset_then_failure() -> None:
    t = Target(timers=ESCALATION)
    t.conn.handle_timer(0)
    task = t.read(512, lun=0)
    t.sent()
    sent = run_clock(t, 1, 200)
    assert [(when, fn) for when, fn, _ in tmfs(sent)] == [
        (30, TmfFunction.ABORT_TASK),
        (45, TmfFunction.LOGICAL_UNIT_RESET),
        (75, TmfFunction.TARGET_WARM_RESET),
    ]
    lu_reset = tmfs(sent)[1][2]
    assert lu_reset.lun == lun_to_field(0) and lu_reset.referenced_task_tag == RESERVED_TAG
    failed_with(task, ConnectionFailedError, "TARGET WARM RESET timed out")
    failure = t.failure()
    assert isinstance(failure.error.__cause__, PduTimeoutError)
    assert t.callback.calls.count(task) == 1


def test_escalation_on_a_nonzero_lun_sends_no_second_abort() -> None:
    # The same escalation as above for a command on LUN 5: ABORT TASK, LOGICAL UNIT
    # RESET of LUN 5, TARGET WARM RESET - and nothing else.
    t = Target(timers=ESCALATION)
    t.conn.handle_timer(0)
    task = t.read(512, lun=5)
    t.sent()
    sent = run_clock(t, 1, 200)
    assert [fn for _, fn, _ in tmfs(sent)][:3] == [
        TmfFunction.ABORT_TASK,
        TmfFunction.LOGICAL_UNIT_RESET,
        TmfFunction.TARGET_WARM_RESET,
    ]
    assert tmfs(sent)[1][2].lun == lun_to_field(5)
    failed_with(task, ConnectionFailedError)


def test_no_abort_task_while_a_target_reset_is_outstanding() -> None:
    t = Target(timers=ESCALATION)
    t.conn.handle_timer(0)
    t.read(512, lun=5)
    t.sent()
    sent = run_clock(t, 1, 200)
    assert [fn for _, fn, _ in tmfs(sent)] == [
        TmfFunction.ABORT_TASK,
        TmfFunction.LOGICAL_UNIT_RESET,
        TmfFunction.TARGET_WARM_RESET,
    ]


def test_timed_out_command_escalates_to_a_reset_of_its_own_lun() -> None:
    t = Target(timers=ESCALATION)
    t.conn.handle_timer(0)
    stuck = t.read(512, lun=1)
    t.conn.handle_timer(20)
    t.no_data(lun=1), t.no_data(lun=2)
    t.sent()
    sent = run_clock(t, 21, 45)
    assert [(when, fn) for when, fn, _ in tmfs(sent)] == [
        (30, TmfFunction.ABORT_TASK),
        (45, TmfFunction.LOGICAL_UNIT_RESET),
    ]
    reset = tmfs(sent)[1][2]
    assert reset.lun == lun_to_field(1)
    assert not stuck.done


@pytest.mark.parametrize(
    ("function", "ended"),
    [
        (TmfFunction.ABORT_TASK_SET, {1}),
        (TmfFunction.LOGICAL_UNIT_RESET, {1}),
        (TmfFunction.TARGET_WARM_RESET, {1, 2, 3}),
        (TmfFunction.TARGET_COLD_RESET, {1, 2, 3}),
    ],
)
def test_successful_tmf_ends_the_affected_tasks(function: TmfFunction, ended: set[int]) -> None:
    t = Target()
    tasks = {1: t.read(512, lun=1), 2: t.no_data(lun=2), 3: t.write(pattern(10), lun=3)}
    also = t.no_data(lun=1)
    t.sent()
    tmf = TmfTask(function, lun=1, callback=t.callback)
    t.conn.task_management(tmf)
    request = t.sent_one(TaskMgmtRequest)
    assert isinstance(request, TaskMgmtRequest)
    assert request.function == function and request.immediate
    t.feed(t.tmf_response(request.itt))
    assert tmf.succeeded
    name = function.name.replace("_", " ")
    for lun, task in tasks.items():
        if lun in ended:
            failed_with(task, CommandTimeoutError, f"ended by {name}")
        else:
            assert not task.done
    failed_with(also, CommandTimeoutError, f"ended by {name}")
    assert_each_called_once(t.callback, [*(tasks[lun] for lun in ended), also, tmf])
    assert not t.conn.closed


def test_failed_tmf_leaves_the_tasks_alone() -> None:
    t = Target()
    task = t.no_data(lun=1)
    t.sent()
    tmf = TmfTask(TmfFunction.LOGICAL_UNIT_RESET, lun=1)
    t.conn.task_management(tmf)
    request = t.sent_one(TaskMgmtRequest)
    t.feed(t.tmf_response(request.itt, TmfResponse.FUNCTION_REJECTED))
    assert tmf.done and not tmf.succeeded and tmf.response == 255
    assert not task.done


def test_tmf_response_for_no_request_fails_the_connection() -> None:
    t = Target()
    task = t.no_data()
    t.feed(t.tmf_response(task.itt))
    failed_with(task, ConnectionFailedError, "Task Management Response for ITT")


def test_abort_timeout_reports_on_the_tmf() -> None:
    t = Target(timers=ESCALATION)
    t.conn.handle_timer(0)
    t.no_data()
    t.sent()
    run_clock(t, 1, 30)
    tmf = TmfTask(TmfFunction.ABORT_TASK_SET, lun=0, callback=t.callback)
    t.conn.task_management(tmf)
    t.sent()
    run_clock(t, 31, 46)
    failed_with(tmf, TaskManagementError, "ABORT TASK SET timed out")


def test_rejected_abort_escalates_and_the_command_ends_in_bounded_time() -> None:
    t = Target(timers=ESCALATION)
    t.conn.handle_timer(0)
    task = t.no_data()
    t.sent()

    def reject_everything(now: float, pdus: list[Pdu]) -> None:
        for p in pdus:
            if isinstance(p, TaskMgmtRequest):
                t.feed(t.tmf_response(p.itt, TmfResponse.FUNCTION_REJECTED))

    sent = run_clock(t, 1, 30 + 15 + 30 + 30 + 5, on_sent=reject_everything)
    functions = [fn for _, fn, _ in tmfs(sent)]
    assert functions.count(TmfFunction.ABORT_TASK) == 1, functions
    assert TmfFunction.LOGICAL_UNIT_RESET in functions
    assert task.done


def test_command_held_back_by_a_closed_window_times_out() -> None:
    t = Target(timers=ESCALATION, window=0)
    t.conn.handle_timer(0)
    task = t.no_data()
    assert t.sent() == []
    run_clock(t, 1, 200)
    assert task.done and task.error is not None


def test_no_timers_means_nothing_happens() -> None:
    t = Target(timers=NO_TIMERS)
    task = t.no_data()
    t.sent()
    assert run_clock(t, 0, 1000, step=50) == []
    assert not task.done and not t.conn.closed
    assert not any(isinstance(e, ConnectionFailed) for e in t.events())
