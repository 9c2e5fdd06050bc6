"""Full Feature Phase: NOP, Async Messages, Reject, Logout, renegotiation and digests.

RFC 7143 §11.18 / §11.19 (NOP-Out / NOP-In), §11.9 (Asynchronous Message), §11.17
(Reject), §11.14 / §11.15 (Logout), §11.10 / §11.11 (Text, as the answer to AsyncEvent
4), §13.1 (digests: CRC32C over the header, and over the data segment with its padding).
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from test_ffp import (
    FIRST_STATSN,
    FIXED_SENSE,
    Target,
    assert_each_called_once,
    failed_with,
    pattern,
    sense_segment,
)

from iscsikit.errors import (
    ConnectionFailedError,
    DigestError,
    LogoutError,
    RemoteProtocolError,
    TransportError,
)
from iscsikit.proto.constants import RESERVED_TAG, AsyncEvent, LogoutResult, RejectReason
from iscsikit.proto.ffp import (
    AsyncEventReceived,
    ConnectionParams,
    LogoutRequested,
    ParametersRenegotiated,
)
from iscsikit.proto.pdu import (
    DataOut,
    LogoutRequest,
    NopOut,
    ScsiCommand,
    TextRequest,
    lun_to_field,
)
from iscsikit.proto.task import LogoutTask, PingTask, ScsiTask
from iscsikit.proto.text import decode_text, encode_text

# == NOP (§11.18, §11.19) ==================================================================


def test_target_ping_is_answered_with_an_echo() -> None:
    t = Target(cmdsn=40)
    t.no_data()
    t.sent()
    nop_in = t.nop_in(ttt=0xBEEF, data=b"are you there?")
    nop_in.lun = lun_to_field(4)
    t.feed(nop_in)
    answer = t.sent_one(NopOut)
    assert isinstance(answer, NopOut)
    assert answer.immediate
    assert answer.itt == RESERVED_TAG and answer.ttt == 0xBEEF
    assert answer.lun == lun_to_field(4)
    assert answer.data == b"are you there?"
    assert answer.cmdsn == 41  # the next CmdSN, not consumed
    # An unsolicited NOP-In carries the next StatSN without advancing it (§11.19).
    assert answer.expstatsn == FIRST_STATSN == t.state.expstatsn


def test_unsolicited_nop_in_without_ttt_is_not_answered() -> None:
    t = Target()
    t.feed(t.nop_in())
    assert t.sent() == [] and t.events() == []


def test_ping_completes_with_the_echo_and_consumes_a_statsn() -> None:
    t = Target()
    ping = PingTask(b"data", callback=t.callback)
    t.conn.ping(ping)
    nop = t.sent_one(NopOut)
    assert isinstance(nop, NopOut)
    assert nop.itt == ping.itt and nop.ttt == RESERVED_TAG and nop.immediate
    t.feed(t.nop_in(itt=nop.itt, data=b"data"))
    assert ping.done and ping.error is None
    assert t.state.expstatsn == FIRST_STATSN + 1
    assert t.callback.calls == [ping]


def test_ping_answered_with_other_data_fails_the_ping() -> None:
    t = Target()
    ping = PingTask(b"data")
    t.conn.ping(ping)
    nop = t.sent_one(NopOut)
    t.feed(t.nop_in(itt=nop.itt, data=b"DATA"))
    failed_with(ping, RemoteProtocolError, "did not echo")
    assert not t.conn.closed


def test_nop_in_for_no_ping_fails_the_connection() -> None:
    t = Target()
    task = t.no_data()
    t.feed(t.nop_in(itt=task.itt))
    failed_with(task, ConnectionFailedError, "no outstanding ping")


# == Asynchronous Messages (§11.9) =========================================================


def test_scsi_async_event_with_sense() -> None:
    t = Target()
    t.feed(
        t.async_message(
            AsyncEvent.SCSI_EVENT, lun=3, p1=1, p2=2, p3=3, data=sense_segment(FIXED_SENSE)
        )
    )
    assert t.events() == [AsyncEventReceived(0, lun_to_field(3), (1, 2, 3), FIXED_SENSE)]
    assert t.state.expstatsn == FIRST_STATSN + 1
    assert not t.conn.closed


def test_vendor_async_event_is_reported_too() -> None:
    t = Target()
    t.feed(t.async_message(AsyncEvent.VENDOR_SPECIFIC, data=b""))
    [event] = t.events()
    assert isinstance(event, AsyncEventReceived) and event.event == 255
    assert event.sense_data == b""


def test_logout_request_event() -> None:
    t = Target()
    task = t.no_data()
    t.feed(t.async_message(AsyncEvent.LOGOUT_REQUEST, p3=20))
    assert t.events() == [LogoutRequested(20)]
    assert not task.done and not t.conn.closed


@pytest.mark.parametrize(
    ("event", "what"),
    [(AsyncEvent.CONNECTION_DROP, "connection"), (AsyncEvent.SESSION_DROP, "session")],
)
def test_target_dropping_the_connection_fails_everything_with_time2wait(
    event: AsyncEvent, what: str
) -> None:
    t = Target(window=1)
    sent, queued = t.read(512), t.no_data()
    t.sent()
    t.feed(t.async_message(event, p1=0, p2=7, p3=30))
    failure = t.failure()
    assert (failure.time2wait, failure.time2retain) == (7, 30)
    assert isinstance(failure.error.__cause__, TransportError)
    for task in (sent, queued):
        failed_with(task, ConnectionFailedError, f"the target is dropping the {what}")
    assert_each_called_once(t.callback, [sent, queued])


def test_negotiation_request_is_answered_with_a_text_request() -> None:
    t = Target(ConnectionParams(max_recv_data_segment_length=65536, immediate_data=False), cmdsn=9)
    t.feed(t.async_message(AsyncEvent.NEGOTIATION_REQUEST, p3=10))
    text = t.sent_one(TextRequest)
    assert isinstance(text, TextRequest)
    assert text.immediate and text.final and not text.cont
    assert text.ttt == RESERVED_TAG and text.cmdsn == 9
    assert text.expstatsn == t.statsn
    assert decode_text(text.data) == [("MaxRecvDataSegmentLength", "65536")]
    # The target lowers what we may send: later Data-Out obeys it.
    t.feed(t.text_response(text.itt, encode_text([("MaxRecvDataSegmentLength", "1024")])))
    assert t.events() == [ParametersRenegotiated(1024)]
    task = t.write(pattern(3000))
    t.sent()
    t.feed(t.r2t(task.itt, offset=0, length=3000))
    outs = t.sent()
    assert [len(p.data) for p in outs] == [1024, 1024, 952]  # type: ignore[attr-defined]
    assert all(isinstance(p, DataOut) for p in outs)


def test_multi_pdu_text_response_is_continued_with_its_ttt() -> None:
    t = Target()
    t.feed(t.async_message(AsyncEvent.NEGOTIATION_REQUEST))
    text = t.sent_one(TextRequest)
    t.feed(t.text_response(text.itt, b"", final=False, ttt=0x42))
    more = t.sent_one(TextRequest)
    assert isinstance(more, TextRequest)
    assert more.itt == text.itt and more.ttt == 0x42 and more.data == b""
    t.feed(t.text_response(text.itt, encode_text([("MaxRecvDataSegmentLength", "4096")])))
    assert t.events() == [ParametersRenegotiated(4096)]


def test_text_response_nobody_asked_for_fails_the_connection() -> None:
    t = Target()
    task = t.no_data()
    t.feed(t.text_response(77, b""))
    failed_with(task, ConnectionFailedError, "Text Response for ITT")


def test_non_ascii_digits_in_a_renegotiated_value_are_a_protocol_error() -> None:
    t = Target()
    task = t.no_data()
    t.sent()
    t.feed(t.async_message(AsyncEvent.NEGOTIATION_REQUEST))
    text = t.sent_one(TextRequest)
    t.feed(t.text_response(text.itt, "MaxRecvDataSegmentLength=²\0".encode()))
    # Either refused (connection failed) or ignored; never an exception out of receive_data.
    assert task.done or not t.conn.closed


# == Reject (§11.17) =======================================================================


def test_reject_of_a_command_fails_just_that_task() -> None:
    t = Target()
    victim, bystander = t.read(512), t.no_data()
    cmds = t.sent()
    assert isinstance(cmds[0], ScsiCommand)
    t.feed(t.reject(cmds[0], RejectReason.COMMAND_NOT_SUPPORTED))
    error = failed_with(victim, RemoteProtocolError, "opcode 0x01", "command not supported")
    assert error.reject_reason == RejectReason.COMMAND_NOT_SUPPORTED  # type: ignore[attr-defined]
    assert not bystander.done and not t.conn.closed
    t.feed(t.response(bystander.itt))
    assert bystander.good
    assert t.state.expstatsn == FIRST_STATSN + 2  # the Reject consumed a StatSN


def test_reject_of_a_ping_fails_the_ping() -> None:
    t = Target()
    ping = PingTask()
    t.conn.ping(ping)
    nop = t.sent_one(NopOut)
    t.feed(t.reject(nop, RejectReason.IMMEDIATE_COMMAND_REJECT))
    failed_with(ping, RemoteProtocolError, "immediate command reject")
    assert not t.conn.closed


def test_reject_with_an_unknown_reason_names_the_code() -> None:
    t = Target()
    task = t.no_data()
    cmd = t.sent()[0]
    t.feed(t.reject(cmd, 0x77))
    failed_with(task, RemoteProtocolError, "reason 0x77")


def test_protocol_error_reject_of_nothing_we_know_fails_the_connection() -> None:
    t = Target()
    task = t.no_data()
    other = ScsiCommand(itt=0x999, cdb=bytes(16))
    t.feed(t.reject(other, RejectReason.PROTOCOL_ERROR))
    failed_with(task, ConnectionFailedError, "protocol error")


def test_other_reject_of_nothing_we_know_is_ignored() -> None:
    t = Target()
    task = t.no_data()
    t.feed(t.reject(ScsiCommand(itt=0x999, cdb=bytes(16)), RejectReason.DATA_DIGEST_ERROR))
    assert not task.done and not t.conn.closed


def test_reject_without_the_rejected_header_fails_the_connection() -> None:
    t = Target()
    task = t.no_data()
    reject = t.reject(ScsiCommand(itt=task.itt, cdb=bytes(16)), RejectReason.PROTOCOL_ERROR)
    reject.data = reject.data[:20]
    t.feed(reject)
    failed_with(task, ConnectionFailedError, "without the rejected header")


# == Logout (§11.14, §11.15) ===============================================================


def test_logout_sends_an_immediate_close_session_request() -> None:
    t = Target(cmdsn=5, window=1)
    in_flight, queued = t.read(512), t.no_data()
    t.sent()
    logout = LogoutTask(callback=t.callback)
    t.conn.logout(logout)
    request = t.sent_one(LogoutRequest)
    assert isinstance(request, LogoutRequest)
    assert request.immediate and request.reason == 0 and request.itt == logout.itt
    assert request.cmdsn == 6 and request.expstatsn == t.statsn
    # Commands never sent fail at once; the one in flight may still finish.
    failed_with(queued, ConnectionFailedError, "logging out")
    with pytest.raises(ConnectionFailedError, match="logging out"):
        t.conn.submit(ScsiTask(bytes(6)))
    t.feed(t.data_in(in_flight.itt, pattern(512), status=0))
    assert in_flight.good
    t.feed(t.logout_response(logout.itt, time2wait=2, time2retain=20))
    assert logout.done and logout.error is None
    assert (logout.time2wait, logout.time2retain) == (2, 20)
    assert t.conn.closed and t.conn.get_timer() is None
    assert_each_called_once(t.callback, [in_flight, queued, logout])


def test_logout_response_fails_what_is_still_outstanding() -> None:
    t = Target()
    task = t.no_data()
    logout = LogoutTask()
    t.conn.logout(logout)
    request = t.sent()[-1]
    t.feed(t.logout_response(request.itt))  # type: ignore[attr-defined]
    failed_with(task, ConnectionFailedError, "logged out")
    assert logout.error is None


def test_refused_logout() -> None:
    t = Target()
    logout = LogoutTask()
    t.conn.logout(logout)
    t.sent()
    t.feed(t.logout_response(logout.itt, LogoutResult.CLEANUP_FAILED))
    failed_with(logout, LogoutError, "cleanup failed")


def test_rejected_logout_leaves_the_connection_usable() -> None:
    t = Target()
    logout = LogoutTask()
    t.conn.logout(logout)
    request = t.sent_one(LogoutRequest)
    t.feed(t.reject(request, RejectReason.WAITING_FOR_LOGOUT))
    failed_with(logout, RemoteProtocolError, "waiting for logout")
    task = t.no_data()
    t.feed(t.response(task.itt))
    assert task.good


def test_connection_closed_after_logout_with_nothing_outstanding_is_a_clean_close() -> None:
    t = Target()
    logout = LogoutTask()
    t.conn.logout(logout)
    t.sent()
    t.feed(t.logout_response(logout.itt))
    t.conn.connection_lost(None)
    assert t.conn.closed and t.events() == []


def test_connection_lost_before_the_logout_response_finishes_the_logout() -> None:
    t = Target()
    logout = LogoutTask(callback=t.callback)
    t.conn.logout(logout)
    t.sent()
    t.conn.connection_lost(None)
    assert t.conn.closed
    assert logout.done
    assert t.callback.calls == [logout]


# == digests (§13.1) =======================================================================

DIGESTS = ConnectionParams(header_digest=True, data_digest=True)


def test_reads_with_digests_in_both_directions() -> None:
    t = Target(DIGESTS)
    task = t.read(1001)
    t.command()  # the harness reader checks the header digest
    data = pattern(1001)
    t.feed(t.data_in(task.itt, data[:501], final=False), chunk=3)
    t.feed(t.data_in(task.itt, data[501:], offset=501, datasn=1, status=0), chunk=5)
    assert task.good and task.read_view is not None and bytes(task.read_view) == data


def test_sense_and_ping_data_with_digests() -> None:
    t = Target(DIGESTS)
    task = t.no_data()
    ping = PingTask(b"abcde")
    t.conn.ping(ping)
    pdus = t.sent()
    t.feed(
        t.response(task.itt, status=2, data=sense_segment(FIXED_SENSE[:13])),
        t.nop_in(itt=pdus[1].itt, data=b"abcde"),  # type: ignore[attr-defined]
    )
    assert task.sense_data == FIXED_SENSE[:13] and ping.error is None


def _corrupt(raw: bytes, index: int) -> bytes:
    damaged = bytearray(raw)
    damaged[index] ^= 0x01
    return bytes(damaged)


@pytest.mark.parametrize(
    ("where", "message"),
    [
        (lambda raw: 3, "header digest"),  # a header byte: the header digest no longer fits
        (lambda raw: 49, "header digest"),  # the header digest itself
        (lambda raw: 60, "data digest"),  # a payload byte
        (lambda raw: len(raw) - 1, "data digest"),  # the data digest itself
    ],
    ids=["header", "header-digest", "payload", "data-digest"],
)
def test_corrupted_digest_fails_the_connection_and_every_task(
    where: Callable[[bytes], int], message: str
) -> None:
    t = Target(DIGESTS, window=2)
    reading, other, queued = t.read(1024), t.no_data(), t.no_data()
    t.sent()
    raw = t.encode(t.data_in(reading.itt, pattern(1024), status=0))
    t.feed(_corrupt(raw, where(raw)))
    for task in (reading, other, queued):
        failed_with(task, ConnectionFailedError, message)
        assert not task.good
    failure = t.failure()
    assert isinstance(failure.error.__cause__, DigestError)
    assert_each_called_once(t.callback, [reading, other, queued])


def test_corrupted_data_digest_on_a_response_segment() -> None:
    t = Target(DIGESTS)
    task = t.no_data()
    raw = t.encode(t.response(task.itt, status=2, data=sense_segment(FIXED_SENSE)))
    t.feed(_corrupt(raw, len(raw) - 1))
    failed_with(task, ConnectionFailedError, "data digest")


def test_callbacks_that_submit_more_work_run_once_each() -> None:
    t = Target(window=1)
    seen: list[ScsiTask] = []
    follow_ups: list[ScsiTask] = []

    def chain(task: ScsiTask) -> None:
        seen.append(task)
        if len(follow_ups) < 3:
            nxt = ScsiTask(bytes(6), callback=chain)
            follow_ups.append(nxt)
            t.conn.submit(nxt)

    first = ScsiTask(bytes(6), callback=chain)
    t.conn.submit(first)
    for _ in range(4):
        [cmd] = t.sent()
        t.open_window(1)
        t.feed(t.response(cmd.itt))  # type: ignore[attr-defined]
    assert seen == [first, *follow_ups]
    assert all(task.good for task in seen)
