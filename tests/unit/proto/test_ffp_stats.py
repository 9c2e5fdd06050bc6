"""Full Feature Phase counters (``struct iscsi_stats``, ``iscsiadm -m session -s``).

The harness target of :mod:`test_ffp` plays the other side.  Every check compares the
*whole* counter set (zeros left out) with what the exchange must have produced, so a
PDU counted twice, in the wrong counter or not at all fails the test; the sent-side
counters are also checked against what the target parsed off the wire.
"""

from __future__ import annotations

from typing import TypeVar

import pytest
from test_ffp import NO_TIMERS, READ10, Target, pattern

from iscsikit.manager.sessions import STATS_KEYS
from iscsikit.proto.constants import AsyncEvent, RejectReason, TmfFunction, TmfResponse
from iscsikit.proto.ffp import STATS_FIELDS, ConnectionParams, ConnectionStats, Timers
from iscsikit.proto.pdu import (
    DataOut,
    LogoutRequest,
    NopOut,
    Pdu,
    ScsiCommand,
    TaskMgmtRequest,
    TextRequest,
)
from iscsikit.proto.task import LogoutTask, PingTask, ScsiTask, TmfTask
from iscsikit.proto.text import encode_text

P = TypeVar("P", bound=Pdu)
DIGESTS = ConnectionParams(header_digest=True, data_digest=True)
#: A command timeout of 30 s and task management escalation, no keepalive.
TIMEOUTS = Timers(
    noop_out_interval=0,
    noop_out_timeout=0,
    command_timeout=30,
    abort_timeout=15,
    lu_reset_timeout=30,
    tgt_reset_timeout=30,
    tick=1,
)


def counts(t: Target) -> dict[str, int]:
    """The connection's non-zero counters."""
    return {k: v for k, v in t.conn.stats.as_dict().items() if v}


def one(t: Target, cls: type[P]) -> P:
    """The only PDU the machine sent since the last look, of class ``cls``."""
    pdu = t.sent_one(cls)
    assert isinstance(pdu, cls)
    return pdu


def sent_kinds(t: Target) -> dict[str, int]:
    """What the target parsed, as the sent-side counters name it."""
    names: dict[type[Pdu], str] = {
        ScsiCommand: "scsicmd_pdus",
        DataOut: "dataout_pdus",
        NopOut: "noptx_pdus",
        TaskMgmtRequest: "tmfcmd_pdus",
        TextRequest: "text_pdus",
        LogoutRequest: "logout_pdus",
    }
    out: dict[str, int] = {}
    for pdu in t.log:
        name = names[type(pdu)]
        out[name] = out.get(name, 0) + 1
    return out


def sent_side(t: Target) -> dict[str, int]:
    keys = ("scsicmd_pdus", "dataout_pdus", "noptx_pdus", "tmfcmd_pdus", "text_pdus",
            "logout_pdus", "login_pdus", "snack_pdus")  # fmt: skip
    return {k: v for k, v in counts(t).items() if k in keys}


# == the counter set ========================================================================


def test_the_counters_are_struct_iscsi_stats_in_iscsiadm_order() -> None:
    stats = ConnectionStats()
    assert tuple(stats.as_dict()) == STATS_FIELDS == STATS_KEYS
    assert set(stats.as_dict().values()) == {0}
    with pytest.raises(AttributeError):
        stats.bogus_pdus = 1  # type: ignore[attr-defined]
    assert Target().conn.stats.as_dict() == stats.as_dict()


def test_as_dict_is_a_snapshot() -> None:
    t = Target()
    before = t.conn.stats.as_dict()
    t.no_data()
    assert before["scsicmd_pdus"] == 0 and t.conn.stats.scsicmd_pdus == 1
    assert "scsicmd_pdus=1" in repr(t.conn.stats)


# == reads ==================================================================================


@pytest.mark.parametrize("chunk", [None, 700], ids=["whole", "chunked"])
def test_reads_count_commands_data_in_payload_bytes_and_every_status(chunk: int | None) -> None:
    t = Target(ConnectionParams(max_recv_data_segment_length=4096))
    collapsed = t.read(4096)  # status in its only Data-In (phase collapse, as tgtd does)
    separate = t.read(10000)  # three Data-In, then a SCSI Response
    t.sent()
    t.feed(t.data_in(collapsed.itt, pattern(4096), status=0), chunk=chunk)
    t.feed(
        t.data_in(separate.itt, pattern(4096), datasn=0),
        t.data_in(separate.itt, pattern(4096, 1), offset=4096, datasn=1),
        t.data_in(separate.itt, pattern(1808, 2), offset=8192, datasn=2, final=True),
        t.response(separate.itt),
        chunk=chunk,
    )
    assert collapsed.good and separate.good
    assert counts(t) == {
        "scsicmd_pdus": 2,
        "datain_pdus": 4,
        "rxdata_octets": 4096 + 10000,
        "scsirsp_pdus": 2,
    }
    assert sent_side(t) == sent_kinds(t)


def test_large_read_received_straight_into_the_buffer_is_counted_once() -> None:
    t = Target(ConnectionParams(max_recv_data_segment_length=1 << 20))
    task = t.read(300_000)  # larger than the scratch buffer: the direct path
    t.sent()
    t.feed(t.data_in(task.itt, pattern(300_000), status=0), chunk=65536)
    assert task.good
    assert counts(t) == {
        "scsicmd_pdus": 1,
        "datain_pdus": 1,
        "rxdata_octets": 300_000,
        "scsirsp_pdus": 1,
    }


def test_reissue_counts_as_submit_does() -> None:
    t = Target()
    task = ScsiTask(READ10, read_buffer=bytearray(512))
    for round_ in range(3):  # the inlined read path of reissue()
        t.conn.reissue(task, READ10, 512)
        t.sent()
        t.feed(t.data_in(task.itt, pattern(512, round_), status=0))
        assert task.good
    write = ScsiTask(READ10, write_data=pattern(1024))
    t.conn.reissue(write, bytes([0x2A]) + bytes(9), 1024)  # a write: the general path
    t.sent()
    t.feed(t.response(write.itt))
    assert write.good
    assert counts(t) == {
        "scsicmd_pdus": 4,
        "datain_pdus": 3,
        "rxdata_octets": 3 * 512,
        "scsirsp_pdus": 4,
        "txdata_octets": 1024,  # immediate data
    }
    assert sent_side(t) == sent_kinds(t)


def test_failed_and_rejected_commands_count_what_crossed() -> None:
    t = Target()
    short = t.read(4096)
    rejected = t.no_data()
    pdus = t.sent()
    t.feed(t.data_in(short.itt, pattern(1000), status=0, underflow=3096))
    t.feed(t.reject(pdus[1], RejectReason.COMMAND_NOT_SUPPORTED))
    assert short.good and short.residual == 3096
    assert rejected.done and rejected.error is not None
    assert counts(t) == {
        "scsicmd_pdus": 2,
        "datain_pdus": 1,
        "rxdata_octets": 1000,
        "scsirsp_pdus": 1,
        "rjt_pdus": 1,
    }


# == writes =================================================================================


@pytest.mark.parametrize("params", [ConnectionParams(), DIGESTS], ids=["plain", "digests"])
def test_write_with_immediate_data_and_an_r2t(params: ConnectionParams) -> None:
    t = Target(params)
    data = pattern(20000)
    task = t.write(data)
    t.sent()  # the command with 8192 bytes of immediate data
    t.feed(t.r2t(task.itt, offset=8192, length=11808))
    assert len(t.sent()) == 2  # 8192 + 3616
    t.feed(t.response(task.itt))
    assert task.good
    assert counts(t) == {
        "scsicmd_pdus": 1,
        "txdata_octets": 20000,
        "r2t_pdus": 1,
        "dataout_pdus": 2,
        "scsirsp_pdus": 1,
    }
    assert sent_side(t) == sent_kinds(t)


@pytest.mark.parametrize("params", [ConnectionParams(), DIGESTS], ids=["plain", "digests"])
def test_write_with_unsolicited_data_then_two_r2ts(params: ConnectionParams) -> None:
    t = Target(ConnectionParams(
        header_digest=params.header_digest, data_digest=params.data_digest,
        initial_r2t=False, immediate_data=False, first_burst_length=16384,
        max_xmit_data_segment_length=4096,
    ))  # fmt: skip
    data = pattern(40000)
    task = t.write(data)
    assert len(t.sent()) == 1 + 4  # the command, 16384 bytes of unsolicited Data-Out
    t.feed(
        t.r2t(task.itt, offset=16384, length=20000, r2tsn=0, ttt=1),
        t.r2t(task.itt, offset=36384, length=3616, r2tsn=1, ttt=2),
    )
    assert len(t.sent()) == 5 + 1
    t.feed(t.response(task.itt))
    assert task.good
    assert counts(t) == {
        "scsicmd_pdus": 1,
        "txdata_octets": 40000,
        "r2t_pdus": 2,
        "dataout_pdus": 10,
        "scsirsp_pdus": 1,
    }
    assert sent_side(t) == sent_kinds(t)


# == control requests =======================================================================


def test_pings_and_target_nops() -> None:
    t = Target()
    ping = PingTask(b"hello")
    t.conn.ping(ping)
    nop = one(t, NopOut)
    t.feed(t.nop_in(itt=nop.itt, data=b"hello"))
    assert ping.done and ping.error is None
    t.feed(t.nop_in(ttt=0x42, data=b"echo me"))  # the target pings: answered
    one(t, NopOut)
    t.feed(t.nop_in())  # unsolicited, nothing to answer
    assert t.sent() == []
    assert counts(t) == {"noptx_pdus": 2, "noprx_pdus": 3}
    assert sent_side(t) == sent_kinds(t)


def test_keepalive_pings_are_counted() -> None:
    t = Target(timers=Timers(noop_out_interval=5, noop_out_timeout=5, command_timeout=0, tick=1))
    for now in range(6):
        t.conn.handle_timer(float(now))
    nop = one(t, NopOut)
    t.feed(t.nop_in(itt=nop.itt))
    assert counts(t) == {"noptx_pdus": 1, "noprx_pdus": 1}


def test_task_management() -> None:
    t = Target()
    task = t.read(512)
    t.sent()
    abort = TmfTask(TmfFunction.ABORT_TASK, referenced=task)
    t.conn.task_management(abort)
    tmf = one(t, TaskMgmtRequest)
    t.feed(t.tmf_response(tmf.itt, TmfResponse.FUNCTION_COMPLETE))
    assert abort.done and abort.error is None and task.done
    assert counts(t) == {"scsicmd_pdus": 1, "tmfcmd_pdus": 1, "tmfrsp_pdus": 1}
    assert sent_side(t) == sent_kinds(t)


def test_logout() -> None:
    t = Target()
    logout = LogoutTask()
    t.conn.logout(logout)
    request = one(t, LogoutRequest)
    t.feed(t.logout_response(request.itt))
    assert logout.done and logout.error is None and t.conn.closed
    assert counts(t) == {"logout_pdus": 1, "logoutrsp_pdus": 1}
    assert sent_side(t) == sent_kinds(t)


def test_async_messages_and_renegotiation() -> None:
    t = Target()
    t.feed(t.async_message(AsyncEvent.LOGOUT_REQUEST, p3=20))
    t.feed(t.async_message(AsyncEvent.NEGOTIATION_REQUEST))
    text = one(t, TextRequest)
    reply = encode_text([("MaxRecvDataSegmentLength", "4096")])
    t.feed(t.text_response(text.itt, reply))
    assert counts(t) == {"async_pdus": 2, "text_pdus": 1, "textrsp_pdus": 1}
    assert sent_side(t) == sent_kinds(t)


# == errors =================================================================================


@pytest.mark.parametrize("index", [3, 60], ids=["header", "data"])
def test_a_digest_failure_is_counted_once(index: int) -> None:
    t = Target(DIGESTS)
    task = t.read(1024)
    t.sent()
    raw = bytearray(t.encode(t.data_in(task.itt, pattern(1024), status=0)))
    raw[index] ^= 1
    t.feed(bytes(raw))
    assert t.conn.closed and task.error is not None
    t.feed(t.nop_in())  # drained after the failure, never parsed
    stats = counts(t)
    assert stats.pop("digest_err") == 1
    assert stats == {"scsicmd_pdus": 1}  # the damaged Data-In was not taken


def test_a_command_timeout_is_counted_once_through_escalation() -> None:
    t = Target(timers=TIMEOUTS)
    t.conn.handle_timer(0)
    task = t.read(512)
    t.sent()
    for now in range(1, 31):
        t.conn.handle_timer(float(now))
    [abort] = t.sent()
    assert isinstance(abort, TaskMgmtRequest) and abort.function == TmfFunction.ABORT_TASK
    assert counts(t) == {"scsicmd_pdus": 1, "tmfcmd_pdus": 1, "timeout_err": 1}
    for now in range(31, 46):  # the abort times out: LUN reset, the same timeout
        t.conn.handle_timer(float(now))
    [reset] = t.sent()
    assert isinstance(reset, TaskMgmtRequest)
    assert reset.function == TmfFunction.LOGICAL_UNIT_RESET
    t.feed(t.tmf_response(reset.itt, TmfResponse.FUNCTION_COMPLETE))
    assert task.done and task.error is not None
    assert counts(t) == {
        "scsicmd_pdus": 1,
        "tmfcmd_pdus": 2,
        "tmfrsp_pdus": 1,
        "timeout_err": 1,
    }


def test_a_command_never_sent_that_times_out_is_a_timeout_too() -> None:
    t = Target(timers=TIMEOUTS, window=0)
    t.conn.handle_timer(0)
    task = t.no_data()
    for now in range(1, 32):
        t.conn.handle_timer(float(now))
    assert task.done and task.error is not None
    assert counts(t) == {"timeout_err": 1}


def test_no_timers_count_nothing() -> None:
    t = Target(timers=NO_TIMERS)
    t.no_data()
    t.sent()
    for now in range(0, 1000, 50):
        t.conn.handle_timer(float(now))
    assert counts(t) == {"scsicmd_pdus": 1}
