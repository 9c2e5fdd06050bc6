"""Full Feature Phase machine, driven in memory: numbering, window, reads, responses.

The test plays the target.  It builds target PDUs with the general codec
(:func:`~iscsikit.proto.pdu.encode_pdu`) and parses everything the machine sends with
:class:`~iscsikit.proto.framing.PduReader` as a target would (``peer="initiator"``,
limited to the MaxRecvDataSegmentLength the target declared), so a header field, a
digest or a segment length the machine gets wrong fails the test at the parser.

:class:`Target` (the harness) is imported by the other ``test_ffp_*`` modules.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import pytest

from iscsikit.errors import ConnectionFailedError, IscsiError, RemoteProtocolError
from iscsikit.proto.constants import RESERVED_TAG, Opcode, ScsiStatus, TmfFunction
from iscsikit.proto.ffp import (
    ConnectionFailed,
    ConnectionParams,
    Event,
    FullFeatureConnection,
    Timers,
)
from iscsikit.proto.framing import PduReader
from iscsikit.proto.pdu import (
    R2T,
    AsyncMessage,
    DataIn,
    LogoutResponse,
    NopIn,
    NopOut,
    Pdu,
    Reject,
    ScsiCommand,
    ScsiResponse,
    TaskMgmtRequest,
    TaskMgmtResponse,
    TextResponse,
    encode_pdu,
    lun_to_field,
)
from iscsikit.proto.session import SessionState
from iscsikit.proto.task import PingTask, Request, ScsiTask, TmfTask

MASK = 0xFFFFFFFF
#: StatSN of the first status the harness target sends (ExpStatSN after login).
FIRST_STATSN = 0x2000
#: No keepalive, no command timeout: tests that want timers pass their own.
NO_TIMERS = Timers(
    noop_out_interval=0,
    noop_out_timeout=0,
    command_timeout=0,
    abort_timeout=0,
    lu_reset_timeout=0,
    tgt_reset_timeout=0,
    logout_timeout=0,
)
READ10 = bytes([0x28, 0, 0, 0, 0, 0, 0, 0, 8, 0])
WRITE10 = bytes([0x2A, 0, 0, 0, 0, 0, 0, 0, 8, 0])
TUR = bytes(6)


def pattern(n: int, seed: int = 0) -> bytes:
    """``n`` bytes that differ from their neighbours and from other seeds."""
    return bytes((seed * 7 + i) % 251 for i in range(n))


class Counted:
    """A completion callback that records every call."""

    def __init__(self) -> None:
        self.calls: list[Request] = []

    def __call__(self, request: Request) -> None:
        self.calls.append(request)


class Target:
    """Plays the target of one :class:`FullFeatureConnection` (ERL 0, one connection).

    ``sent()`` parses what the machine wrote since the last call; the builders
    (``data_in``, ``response``, ``r2t`` ...) make well-formed target PDUs carrying the
    target's current StatSN / ExpCmdSN / MaxCmdSN, and ``feed`` hands them (or raw
    bytes) to the machine, optionally in small chunks.
    """

    def __init__(
        self,
        params: ConnectionParams | None = None,
        *,
        cmdsn: int = 1,
        window: int = 64,
        queue_depth: int = 128,
        timers: Timers = NO_TIMERS,
    ) -> None:
        self.params = params or ConnectionParams()
        self.statsn = FIRST_STATSN
        self.expcmdsn = cmdsn & MASK
        #: MaxCmdSN = ExpCmdSN + window - 1 (a window of 0 is closed).
        self.maxcmdsn = (cmdsn + window - 1) & MASK
        self.state = SessionState(
            cmdsn=cmdsn, expcmdsn=cmdsn, maxcmdsn=self.maxcmdsn, expstatsn=FIRST_STATSN
        )
        self.conn = FullFeatureConnection(
            self.params, self.state, queue_depth=queue_depth, timers=timers
        )
        self.reader = PduReader(
            peer="initiator",
            header_digest=self.params.header_digest,
            data_digest=self.params.data_digest,
            max_data_segment_length=self.params.max_xmit_data_segment_length,
        )
        self.log: list[Pdu] = []
        self.callback = Counted()

    # -- what the initiator sends ----------------------------------------------------------

    def sent(self) -> list[Pdu]:
        raw = b"".join(bytes(buf) for buf in self.conn.data_to_send())
        self.reader.receive_data(raw)
        pdus: list[Pdu] = []
        while (pdu := self.reader.next_pdu()) is not None:
            pdus.append(pdu)
        assert self.reader.buffered == 0, "the machine sent a partial PDU"
        for pdu in pdus:
            if isinstance(pdu, ScsiCommand) and not pdu.immediate:
                self.expcmdsn = (pdu.cmdsn + 1) & MASK
        self.log += pdus
        return pdus

    def sent_one(self, cls: type[Pdu] = Pdu) -> Pdu:
        pdus = self.sent()
        assert len(pdus) == 1, pdus
        assert isinstance(pdus[0], cls), pdus
        return pdus[0]

    def command(self) -> ScsiCommand:
        pdu = self.sent_one(ScsiCommand)
        assert isinstance(pdu, ScsiCommand)
        return pdu

    # -- requests, with a counting callback ------------------------------------------------

    def read(self, length: int = 4096, *, lun: int = 0, fill: int = 0xEE, **kw: object) -> ScsiTask:
        task = ScsiTask(
            READ10,
            lun=lun,
            read_buffer=bytearray([fill]) * length,
            callback=self.callback,
            **kw,  # type: ignore[arg-type]
        )
        self.conn.submit(task)
        return task

    def write(self, data: bytes, *, lun: int = 0) -> ScsiTask:
        task = ScsiTask(WRITE10, lun=lun, write_data=data, callback=self.callback)
        self.conn.submit(task)
        return task

    def no_data(self, *, lun: int = 0) -> ScsiTask:
        task = ScsiTask(TUR, lun=lun, callback=self.callback)
        self.conn.submit(task)
        return task

    # -- feeding the machine ---------------------------------------------------------------

    def encode(self, pdu: Pdu) -> bytes:
        return encode_pdu(
            pdu, header_digest=self.params.header_digest, data_digest=self.params.data_digest
        )

    def feed(self, *items: Pdu | bytes, chunk: int | None = None) -> None:
        raw = b"".join(item if isinstance(item, bytes) else self.encode(item) for item in items)
        step = chunk or len(raw) or 1
        for i in range(0, len(raw), step):
            self.conn.receive_data(raw[i : i + step])

    def events(self) -> list[Event]:
        out: list[Event] = []
        while (event := self.conn.next_event()) is not None:
            out.append(event)
        return out

    def failure(self) -> ConnectionFailed:
        events = [e for e in self.events() if isinstance(e, ConnectionFailed)]
        assert len(events) == 1, events
        assert self.conn.closed
        return events[0]

    # -- target PDUs -----------------------------------------------------------------------

    def _take_statsn(self) -> int:
        statsn = self.statsn
        self.statsn = (statsn + 1) & MASK
        return statsn

    def open_window(self, window: int) -> None:
        self.maxcmdsn = (self.expcmdsn + window - 1) & MASK

    def response(
        self,
        itt: int,
        *,
        status: int = ScsiStatus.GOOD,
        response: int = 0,
        underflow: int | None = None,
        overflow: int | None = None,
        data: bytes = b"",
    ) -> ScsiResponse:
        return ScsiResponse(
            response=response,
            status=status,
            itt=itt,
            statsn=self._take_statsn(),
            expcmdsn=self.expcmdsn,
            maxcmdsn=self.maxcmdsn,
            underflow=underflow is not None,
            overflow=overflow is not None,
            residual_count=underflow or overflow or 0,
            data=data,
        )

    def data_in(
        self,
        itt: int,
        data: bytes,
        *,
        offset: int = 0,
        datasn: int = 0,
        final: bool = False,
        status: int | None = None,
        underflow: int | None = None,
        overflow: int | None = None,
        lun: int = 0,
    ) -> DataIn:
        with_status = status is not None
        return DataIn(
            final=final or with_status,
            status_present=with_status,
            status=status or 0,
            underflow=underflow is not None,
            overflow=overflow is not None,
            residual_count=underflow or overflow or 0,
            lun=lun_to_field(lun),
            itt=itt,
            ttt=RESERVED_TAG,
            statsn=self._take_statsn() if with_status else self.statsn,
            expcmdsn=self.expcmdsn,
            maxcmdsn=self.maxcmdsn,
            datasn=datasn,
            buffer_offset=offset,
            data=data,
        )

    def r2t(self, itt: int, *, offset: int, length: int, r2tsn: int = 0, ttt: int = 0x7700) -> R2T:
        return R2T(
            itt=itt,
            ttt=ttt,
            statsn=self.statsn,
            expcmdsn=self.expcmdsn,
            maxcmdsn=self.maxcmdsn,
            r2tsn=r2tsn,
            buffer_offset=offset,
            desired_data_transfer_length=length,
        )

    def nop_in(
        self, *, itt: int = RESERVED_TAG, ttt: int = RESERVED_TAG, data: bytes = b""
    ) -> NopIn:
        answer = itt != RESERVED_TAG
        return NopIn(
            lun=0,
            itt=itt,
            ttt=ttt,
            statsn=self._take_statsn() if answer else self.statsn,
            expcmdsn=self.expcmdsn,
            maxcmdsn=self.maxcmdsn,
            data=data,
        )

    def tmf_response(self, itt: int, response: int = 0) -> TaskMgmtResponse:
        return TaskMgmtResponse(
            response=response,
            itt=itt,
            statsn=self._take_statsn(),
            expcmdsn=self.expcmdsn,
            maxcmdsn=self.maxcmdsn,
        )

    def async_message(self, event: int, *, p1: int = 0, p2: int = 0, p3: int = 0, lun: int = 0,
                      data: bytes = b"") -> AsyncMessage:  # fmt: skip
        return AsyncMessage(
            lun=lun_to_field(lun),
            statsn=self._take_statsn(),
            expcmdsn=self.expcmdsn,
            maxcmdsn=self.maxcmdsn,
            async_event=event,
            parameter1=p1,
            parameter2=p2,
            parameter3=p3,
            data=data,
        )

    def reject(self, rejected: Pdu, reason: int) -> Reject:
        header = encode_pdu(rejected)[:48]
        return Reject(
            reason=reason,
            statsn=self._take_statsn(),
            expcmdsn=self.expcmdsn,
            maxcmdsn=self.maxcmdsn,
            data=header,
        )

    def logout_response(
        self, itt: int, response: int = 0, time2wait: int = 0, time2retain: int = 0
    ) -> LogoutResponse:
        return LogoutResponse(
            response=response,
            itt=itt,
            statsn=self._take_statsn(),
            expcmdsn=self.expcmdsn,
            maxcmdsn=self.maxcmdsn,
            time2wait=time2wait,
            time2retain=time2retain,
        )

    def text_response(self, itt: int, data: bytes, *, final: bool = True,
                      ttt: int = RESERVED_TAG) -> TextResponse:  # fmt: skip
        return TextResponse(
            final=final,
            itt=itt,
            ttt=ttt,
            statsn=self._take_statsn(),
            expcmdsn=self.expcmdsn,
            maxcmdsn=self.maxcmdsn,
            data=data,
        )


def sense_segment(sense: bytes, response_data: bytes = b"") -> bytes:
    """A SCSI Response data segment: SenseLength, sense data, response data (§11.4.7)."""
    return len(sense).to_bytes(2, "big") + sense + response_data


FIXED_SENSE = bytes([0x70, 0, 0x05, 0, 0, 0, 0, 10, 0, 0, 0, 0, 0x24, 0x00, 0, 0, 0, 0])


def failed_with(task: Request, cls: type[IscsiError], *words: str) -> IscsiError:
    assert task.done, task
    assert isinstance(task.error, cls), repr(task.error)
    for word in words:
        assert word in str(task.error), (word, str(task.error))
    return task.error


def assert_each_called_once(callback: Counted, tasks: Iterable[Request]) -> None:
    for task in tasks:
        assert callback.calls.count(task) == 1, (task, callback.calls)


# == RFC 7143 §4.2.2: CmdSN and ExpStatSN on every PDU =====================================


def test_commands_carry_consecutive_cmdsn_and_the_current_expstatsn() -> None:
    t = Target(cmdsn=10)
    first, second = t.read(512), t.no_data()
    cmds = t.sent()
    assert [type(p) for p in cmds] == [ScsiCommand, ScsiCommand]
    assert [c.cmdsn for c in cmds] == [10, 11]  # type: ignore[attr-defined]
    assert all(c.expstatsn == FIRST_STATSN for c in cmds)  # type: ignore[attr-defined]
    assert all(not c.immediate for c in cmds)  # type: ignore[attr-defined]
    assert first.cmdsn == 10 and second.cmdsn == 11
    assert first.itt != second.itt and RESERVED_TAG not in (first.itt, second.itt)
    # A status consumes a StatSN: the next PDU acknowledges it (ExpStatSN = StatSN + 1).
    t.feed(t.response(second.itt))
    assert second.good
    t.no_data()
    assert t.command().expstatsn == FIRST_STATSN + 1
    # Data-In without status carries StatSN but does not advance it.
    t.feed(t.data_in(first.itt, pattern(256)))
    third = t.no_data()
    assert t.command().expstatsn == FIRST_STATSN + 1
    t.feed(t.data_in(first.itt, pattern(256)[:256], offset=256, datasn=1, status=0))
    assert first.good
    t.feed(t.response(third.itt))
    ping = PingTask(b"x")
    t.conn.ping(ping)
    nop = t.sent_one(NopOut)
    assert isinstance(nop, NopOut)
    # Immediate PDUs carry the next CmdSN without consuming it (§4.2.2.1).
    assert nop.immediate and nop.cmdsn == 14 and nop.expstatsn == FIRST_STATSN + 3


def test_read_command_header_fields() -> None:
    t = Target()
    task = t.read(4096, lun=3)
    cmd = t.command()
    assert cmd.read and not cmd.write and cmd.final
    assert cmd.expected_data_transfer_length == 4096
    assert cmd.lun == lun_to_field(3)
    assert cmd.cdb[:10] == READ10 and cmd.cdb[10:] == bytes(6)
    assert cmd.attr == 1  # SIMPLE
    assert cmd.itt == task.itt and cmd.data == b""


def test_long_cdb_goes_in_an_extended_cdb_ahs() -> None:
    t = Target()
    cdb = bytes([0x7F]) + bytes(range(1, 32))
    task = ScsiTask(cdb, read_buffer=bytearray(8))
    t.conn.submit(task)
    cmd = t.command()
    assert cmd.cdb == cdb and cmd.read
    t.feed(t.data_in(task.itt, b"12345678", status=0))
    assert task.good and task.read_view is not None and bytes(task.read_view) == b"12345678"


def test_cmdsn_wraps_around_serial_arithmetic() -> None:
    t = Target(cmdsn=MASK - 1, window=4)
    tasks = [t.no_data() for _ in range(5)]
    assert [c.cmdsn for c in t.sent()] == [MASK - 1, MASK, 0, 1]  # type: ignore[attr-defined]
    t.feed(t.response(tasks[0].itt))
    t.open_window(4)
    t.feed(t.response(tasks[1].itt))
    assert [c.cmdsn for c in t.sent()] == [2]  # type: ignore[attr-defined]


# == the command window (MaxCmdSN) and the queue depth ====================================


def test_closed_window_holds_commands_back_and_reopening_sends_them_in_order() -> None:
    t = Target(cmdsn=5, window=0)  # MaxCmdSN = ExpCmdSN - 1: closed (§4.2.2.1)
    tasks = [t.no_data(lun=i) for i in range(3)]
    assert t.sent() == []
    assert t.conn.outstanding == 3
    # Immediate PDUs pass a closed window.
    t.conn.task_management(TmfTask(TmfFunction.ABORT_TASK_SET))
    assert [type(p) for p in t.sent()] == [TaskMgmtRequest]
    # An unsolicited NOP-In opens the window by two.
    t.maxcmdsn = 6
    t.feed(t.nop_in())
    cmds = t.sent()
    assert [(c.cmdsn, c.itt) for c in cmds] == [(5, tasks[0].itt), (6, tasks[1].itt)]  # type: ignore[attr-defined]
    assert [c.lun for c in cmds] == [lun_to_field(0), lun_to_field(1)]  # type: ignore[attr-defined]
    # A response that does not move MaxCmdSN keeps the third one back ...
    t.feed(t.response(tasks[0].itt))
    assert t.sent() == []
    # ... the next one opens it.
    t.maxcmdsn = 7
    t.feed(t.response(tasks[1].itt))
    assert [(c.cmdsn, c.itt) for c in t.sent()] == [(7, tasks[2].itt)]  # type: ignore[attr-defined]


def test_stale_or_invalid_maxcmdsn_is_ignored() -> None:
    t = Target(cmdsn=100, window=2)
    a, b, c = t.no_data(), t.no_data(), t.no_data()
    assert len(t.sent()) == 2
    # MaxCmdSN < ExpCmdSN - 1 (serial arithmetic) is invalid (§4.2.2.1): ignored.
    bogus = t.response(a.itt)
    bogus.maxcmdsn = 90
    t.feed(bogus)
    assert a.good and t.sent() == []
    assert t.state.maxcmdsn == 101
    t.maxcmdsn = 102
    t.feed(t.response(b.itt))
    assert [p.itt for p in t.sent()] == [c.itt]  # type: ignore[attr-defined]


def test_queue_depth_limits_commands_in_flight() -> None:
    t = Target(queue_depth=2)
    tasks = [t.no_data() for _ in range(4)]
    assert [p.itt for p in t.sent()] == [tasks[0].itt, tasks[1].itt]  # type: ignore[attr-defined]
    assert t.conn.outstanding == 4
    t.feed(t.response(tasks[1].itt))
    assert [p.itt for p in t.sent()] == [tasks[2].itt]  # type: ignore[attr-defined]
    t.feed(t.response(tasks[0].itt), t.response(tasks[2].itt))
    assert [p.itt for p in t.sent()] == [tasks[3].itt]  # type: ignore[attr-defined]
    t.feed(t.response(tasks[3].itt))
    assert t.conn.outstanding == 0
    assert all(task.good for task in tasks)
    assert_each_called_once(t.callback, tasks)


def test_queue_depth_must_be_positive() -> None:
    with pytest.raises(IscsiError):
        Target(queue_depth=0)


def test_a_task_is_submitted_once() -> None:
    t = Target()
    task = t.no_data()
    with pytest.raises(IscsiError, match="once"):
        t.conn.submit(task)


# == reads: Data-In (§11.7), status in the last Data-In or a SCSI Response (§11.4) =========


@pytest.mark.parametrize("chunk", [None, 1, 7, 48, 100])
def test_read_with_status_in_the_only_data_in(chunk: int | None) -> None:
    t = Target()
    task = t.read(1000)
    t.command()
    data = pattern(1000)
    t.feed(t.data_in(task.itt, data, status=0), chunk=chunk)
    assert task.good and task.done
    assert task.read_view is not None and bytes(task.read_view) == data
    assert task.received == task.transferred == 1000 and task.residual == 0
    assert t.callback.calls == [task]
    assert t.conn.outstanding == 0 and not t.conn.closed


def test_read_lands_in_the_callers_buffer_without_a_copy() -> None:
    t = Target()
    buf = bytearray(64)
    task = ScsiTask(READ10, read_buffer=buf)
    t.conn.submit(task)
    t.sent()
    t.feed(encode_pdu(t.data_in(task.itt, pattern(64), status=0))[:48])
    target = t.conn.get_buffer()
    assert len(target) == 64
    target[:] = pattern(64, 3)
    t.conn.buffer_updated(64)
    assert task.good and buf == pattern(64, 3)


@pytest.mark.parametrize("chunk", [None, 5, 53])
def test_read_with_many_data_in_and_a_separate_response(chunk: int | None) -> None:
    t = Target(ConnectionParams(max_recv_data_segment_length=1024))
    task = t.read(4000)
    t.command()
    data = pattern(4000)
    pdus = [
        t.data_in(task.itt, data[off : off + 1024], offset=off, datasn=n)
        for n, off in enumerate(range(0, 4000, 1024))
    ]
    pdus[-1].final = True
    t.feed(*pdus, chunk=chunk)
    assert not task.done and task.received == 4000
    t.feed(t.response(task.itt), chunk=chunk)
    assert task.good and task.read_view is not None and bytes(task.read_view) == data
    assert t.callback.calls == [task]


def test_data_in_over_our_max_recv_data_segment_length_fails_the_connection() -> None:
    t = Target(ConnectionParams(max_recv_data_segment_length=1024))
    task = t.read(4096)
    t.feed(t.data_in(task.itt, pattern(2048), status=0))
    failed_with(task, ConnectionFailedError, "MaxRecvDataSegmentLength 1024")
    assert isinstance(t.failure().error, ConnectionFailedError)


def test_underflow_reports_fewer_bytes() -> None:
    t = Target()
    task = t.read(4096)
    t.feed(t.data_in(task.itt, pattern(1024), status=0, underflow=3072))
    assert task.good
    assert task.residual == 3072 and task.transferred == 1024 == task.received


def test_underflow_in_a_scsi_response() -> None:
    t = Target()
    task = t.read(4096)
    t.feed(t.data_in(task.itt, pattern(512), final=True), t.response(task.itt, underflow=3584))
    assert task.good and task.transferred == 512


def test_overflow_reports_a_negative_residual_and_the_full_transfer() -> None:
    t = Target()
    task = t.read(512)
    t.feed(t.data_in(task.itt, pattern(512), status=0, overflow=1536))
    assert task.good
    assert task.residual == -1536 and task.transferred == 512


def test_good_status_without_underflow_but_missing_data_is_an_error() -> None:
    # §11.4.5: no underflow means the whole expected length was transferred.
    t = Target()
    task = t.read(4096)
    t.feed(t.data_in(task.itt, pattern(1024), status=0))
    failed_with(task, RemoteProtocolError, "reported 4096 bytes read but sent 1024")
    assert not task.good
    assert not t.conn.closed  # the task failed, the connection did not


def test_underflow_that_does_not_match_the_data_sent_is_an_error() -> None:
    t = Target()
    task = t.read(4096)
    t.feed(t.data_in(task.itt, pattern(1024), final=True), t.response(task.itt, underflow=1000))
    failed_with(task, RemoteProtocolError, "reported 3096 bytes read but sent 1024")


def test_underflow_larger_than_the_expected_length_is_an_error() -> None:
    t = Target()
    task = t.read(512)
    t.feed(t.response(task.itt, underflow=4096))
    failed_with(task, RemoteProtocolError, "residual underflow 4096 exceeds")


def test_both_overflow_and_underflow_is_an_error() -> None:
    t = Target()
    task = t.read(512)
    raw = bytearray(t.encode(t.data_in(task.itt, pattern(512), status=0, underflow=1)))
    raw[1] |= 0x04  # O as well as U
    t.feed(bytes(raw))
    failed_with(task, RemoteProtocolError, "both residual overflow and underflow")


def test_check_condition_with_sense_data() -> None:
    t = Target()
    task = t.read(512)
    t.feed(
        t.response(
            task.itt,
            status=ScsiStatus.CHECK_CONDITION,
            data=sense_segment(FIXED_SENSE, b"\x01\x02response-data"),
        )
    )
    assert task.done and task.error is None and not task.good
    assert task.status == ScsiStatus.CHECK_CONDITION
    assert task.sense_data == FIXED_SENSE  # without SenseLength and response data
    assert not t.conn.closed


def test_target_failure_service_response() -> None:
    t = Target()
    task = t.no_data()
    t.feed(t.response(task.itt, response=1))
    failed_with(task, RemoteProtocolError, "target failure (iSCSI response 0x01)")


@pytest.mark.parametrize(
    ("segment", "message"),
    [
        (b"\x00", "shorter than its SenseLength field"),
        (b"\x00\x20" + bytes(10), "SenseLength 32 exceeds the 10 bytes"),
    ],
)
def test_malformed_sense_framing_fails_the_connection(segment: bytes, message: str) -> None:
    t = Target()
    task, other = t.read(512), t.no_data()
    t.feed(t.response(task.itt, status=ScsiStatus.CHECK_CONDITION, data=segment))
    failed_with(task, ConnectionFailedError, message)
    failed_with(other, ConnectionFailedError, message)
    assert message in str(t.failure().error)


# == Data-In the machine must refuse =======================================================


def _reads(t: Target, n: int = 2) -> list[ScsiTask]:
    tasks = [t.read(1024) for _ in range(n)]
    t.sent()
    return tasks


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda t, task: t.data_in(task.itt ^ 0x5A5A, pattern(16)), "which is no outstanding read"),
        (lambda t, task: t.data_in(task.itt, pattern(16), datasn=1), "DataSN 1 where 0 was due"),
        (lambda t, task: t.data_in(task.itt, pattern(16), offset=512), "offset 512 where 0"),
        (lambda t, task: t.data_in(task.itt, pattern(2048)), "runs beyond the 1024-byte buffer"),
        (
            lambda t, task: t.data_in(task.itt, pattern(16), offset=1020),
            "offset 1020 where 0 was due",
        ),
    ],
    ids=["wrong-itt", "datasn-gap", "offset-gap", "beyond-buffer", "offset-beyond"],
)
def test_bad_data_in_fails_the_connection_and_every_task(
    make: Callable[[Target, ScsiTask], DataIn], message: str
) -> None:
    t = Target()
    tasks = _reads(t)
    t.feed(make(t, tasks[0]))
    for task in tasks:
        failed_with(task, ConnectionFailedError, message)
        assert not task.good
        assert task.read_view is not None
    failure = t.failure()
    assert isinstance(failure.error.__cause__, RemoteProtocolError)
    assert_each_called_once(t.callback, tasks)
    with pytest.raises(ConnectionFailedError, match="has failed"):
        t.conn.submit(ScsiTask(TUR))


def test_datasn_gap_after_a_good_first_pdu() -> None:
    t = Target()
    (task,) = _reads(t, 1)
    t.feed(t.data_in(task.itt, pattern(512)))
    t.feed(t.data_in(task.itt, pattern(512), offset=512, datasn=2, status=0))
    failed_with(task, ConnectionFailedError, "DataSN 2 where 1 was due")


def test_data_in_for_a_write_is_refused() -> None:
    t = Target()
    task = t.write(pattern(16))
    t.feed(t.data_in(task.itt, pattern(16), status=0))
    failed_with(task, ConnectionFailedError, "no outstanding read")


def test_data_in_beyond_expected_length_inside_a_larger_buffer_is_refused() -> None:
    t = Target()
    buf = bytearray(b"\xee" * 1024)
    task = ScsiTask(READ10, read_buffer=buf, expected_length=512)
    t.conn.submit(task)
    t.feed(t.data_in(task.itt, pattern(1024), status=0))
    failed_with(task, ConnectionFailedError, "beyond the 512-byte buffer")
    assert buf[512:] == b"\xee" * 512  # nothing written past the expected length


def test_status_without_the_final_bit_is_refused() -> None:
    t = Target()
    (task,) = _reads(t, 1)
    raw = bytearray(t.encode(t.data_in(task.itt, pattern(1024), status=0)))
    raw[1] &= ~0x80  # S without F (§11.7.1)
    t.feed(bytes(raw))
    failed_with(task, ConnectionFailedError, "status but without the F bit")


def test_response_for_an_unknown_task_fails_the_connection() -> None:
    t = Target()
    (task,) = _reads(t, 1)
    t.feed(t.response(task.itt + 1000))
    failed_with(task, ConnectionFailedError, "SCSI Response for ITT")


def test_a_second_response_for_a_finished_task_fails_the_connection() -> None:
    t = Target()
    done, pending = _reads(t)
    t.feed(t.data_in(done.itt, pattern(1024), status=0))
    assert done.good
    t.feed(t.response(done.itt))
    assert done.good  # already reported; not changed afterwards
    failed_with(pending, ConnectionFailedError, "no outstanding command")
    assert t.callback.calls.count(done) == 1


@pytest.mark.parametrize(
    "opcode", [Opcode.LOGIN_RESPONSE, Opcode.NOP_OUT, Opcode.SCSI_COMMAND, 0x3A]
)
def test_unexpected_opcode_fails_the_connection(opcode: int) -> None:
    t = Target()
    (task,) = _reads(t, 1)
    raw = bytearray(48)
    raw[0] = opcode
    t.feed(bytes(raw))
    failed_with(task, ConnectionFailedError, f"unexpected opcode 0x{opcode:02x}")


def test_connection_lost_fails_every_request_once() -> None:
    t = Target(window=1)
    sent, queued = t.read(512), t.no_data()
    ping = PingTask(callback=t.callback)
    t.conn.ping(ping)
    t.feed(t.data_in(sent.itt, pattern(100)))
    t.conn.connection_lost(OSError("reset by peer"))
    for request in (sent, queued, ping):
        failed_with(request, ConnectionFailedError, "reset by peer")
    assert_each_called_once(t.callback, [sent, queued, ping])
    assert t.failure()
    t.conn.connection_lost(None)  # a second report changes nothing
    t.feed(t.response(sent.itt))  # nor do late bytes
    assert t.events() == [] and t.callback.calls.count(sent) == 1
