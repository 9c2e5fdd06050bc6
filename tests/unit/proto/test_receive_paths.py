"""Every receive path of the Full Feature Phase machine, one fixed test per check.

:mod:`iscsikit.proto.ffp_receive` takes a target PDU in one of these ways:

* ``whole``   - the PDU is in the scratch buffer at once (one receive);
* ``pieces``  - a Data-In's header arrives with a little of its payload, and the rest
  lands straight in the caller's read buffer over several receives (``get_buffer``):
  the path every large read takes, where the data digest is accumulated piece by piece;
* ``scatter`` - as ``pieces``, but received with ``get_buffers`` (``recvmsg_into``): one
  receive finishes the payload, fills the padding/digest tail and brings the PDUs
  behind it into the scratch buffer;
* ``tail``    - a Data-In's payload arrives whole but its padding / data digest does not;
* ``segment`` - a PDU other than Data-In whose data segment is larger than the 256 KiB
  scratch buffer gets a buffer of its own.

Each check the receive side makes - header digest, data digest, Buffer Offset, DataSN
order, residual over/underflow, unknown and stale ITTs, data beyond the expected
length, padding and MaxRecvDataSegmentLength - has a deterministic test on each path
where it applies.  A guard asserts that the bytes really took the path named, so a
changed threshold cannot quietly turn a ``pieces`` test into a ``whole`` one.  The
target's PDUs are built by :mod:`iscsikit.testing.rawpdu`, not by the codec under test.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from iscsikit.errors import ConnectionFailedError, DigestError, RemoteProtocolError
from iscsikit.proto.ffp import ConnectionFailed, ConnectionParams, FullFeatureConnection, Timers
from iscsikit.proto.framing import PduReader
from iscsikit.proto.session import SessionState
from iscsikit.proto.task import LogoutTask, ScsiTask
from iscsikit.testing import rawpdu

MASK = 0xFFFFFFFF
FIRST_STATSN = 0x100
NO_TIMERS = Timers(noop_out_interval=0, noop_out_timeout=0, command_timeout=0, abort_timeout=0,
                   lu_reset_timeout=0, tgt_reset_timeout=0, logout_timeout=0)  # fmt: skip
READ10 = bytes([0x28, 0, 0, 0, 0, 0, 0, 0, 8, 0])
#: The scratch buffer's size (ffp_core._RX_SIZE): larger segments take the segment path.
SCRATCH = 256 * 1024
#: A Data-In payload large enough to go direct and to count as large (ffp_receive._LARGE).
BIG = 20_001  # odd: 3 bytes of padding
#: How much of the payload comes with the header in the first receive (direct paths).
HEAD = 100
#: The size of each later receive on the ``pieces`` path.
PIECE = 1_000
FILL = 0xEE

DATA_IN_MODES = ["whole", "pieces", "scatter", "scatter-chunked", "tail"]


def pattern(n: int, seed: int = 0) -> bytes:
    return bytes((seed * 13 + i) % 251 for i in range(n))


class Wire:
    """One connection and the target end of it: rawpdu builds what the target sends."""

    def __init__(
        self, *, hd: bool = False, dd: bool = False, mrdsl: int = 65536, window: int = 64
    ) -> None:
        self.hd, self.dd = hd, dd
        params = ConnectionParams(
            header_digest=hd, data_digest=dd, max_recv_data_segment_length=mrdsl
        )
        self.statsn = FIRST_STATSN
        self.state = SessionState(cmdsn=1, expcmdsn=1, maxcmdsn=window, expstatsn=FIRST_STATSN)
        self.conn = FullFeatureConnection(params, self.state, timers=NO_TIMERS)
        self.hlen = 48 + (4 if hd else 0)

    def read(self, length: int, *, buffer: int | None = None) -> ScsiTask:
        task = ScsiTask(
            READ10, read_buffer=bytearray([FILL]) * (buffer or length), expected_length=length
        )
        self.conn.submit(task)
        self.conn.data_to_send()
        return task

    def _take_statsn(self) -> int:
        self.statsn = (self.statsn + 1) & MASK
        return (self.statsn - 1) & MASK

    def data_in(self, itt: int, data: bytes, *, offset: int = 0, datasn: int = 0,
                status: int | None = None, final: bool = False, underflow: int | None = None,
                overflow: int | None = None, flags: int | None = None,
                ttt: int = rawpdu.RESERVED_TAG, sns: tuple[int, int, int] | None = None,
                lun: int = 0) -> bytes:  # fmt: skip
        statsn = self._take_statsn() if status is not None else self.statsn
        statsn, expcmdsn, maxcmdsn = sns or (statsn, 1, 64)
        wire = rawpdu.DataIn(
            lun=lun,
            ttt=ttt,
            final=final or status is not None,
            status_present=status is not None,
            status=status or 0,
            underflow=underflow is not None,
            overflow=overflow is not None,
            residual_count=underflow or overflow or 0,
            itt=itt,
            statsn=statsn,
            expcmdsn=expcmdsn,
            maxcmdsn=maxcmdsn,
            datasn=datasn,
            buffer_offset=offset,
            data=data,
        ).encode(self.hd, self.dd)
        return self._flags(wire, flags)

    def response(self, itt: int, *, status: int = 0, data: bytes = b"",
                 underflow: int | None = None, overflow: int | None = None,
                 flags: int | None = None) -> bytes:  # fmt: skip
        wire = rawpdu.ScsiResponse(
            status=status,
            underflow=underflow is not None,
            overflow=overflow is not None,
            residual_count=underflow or overflow or 0,
            itt=itt,
            statsn=self._take_statsn(),
            expcmdsn=1,
            maxcmdsn=64,
            data=data,
        ).encode(self.hd, self.dd)
        return self._flags(wire, flags)

    def _flags(self, wire: bytes, flags: int | None) -> bytes:
        """Replace byte 1 (the flags), re-digesting the header: for flag combinations
        the builder will not make on purpose."""
        if flags is None:
            return wire
        raw = bytearray(wire)
        raw[1] = flags
        if self.hd:
            raw[48:52] = rawpdu.digest(bytes(raw[:48]))
        return bytes(raw)

    # -- delivery --------------------------------------------------------------------------

    def deliver(self, wire: bytes, mode: str, split: int = 0) -> None:
        """Hand ``wire`` to the machine the way ``mode`` names; ``split`` is where the
        first receive ends for the paths that need one."""
        if mode == "whole":
            self.conn.receive_data(wire)
            return
        self.receive(wire[:split], mode)
        self.receive(wire[split:], mode)

    def receive(self, data: bytes, mode: str) -> None:
        """``data`` in receives of the kind ``mode`` uses: ``receive_data`` pieces of
        PIECE bytes, or ``get_buffers`` scatter receives (as much as fits, or at most
        PIECE bytes each for ``scatter-chunked``)."""
        if mode.startswith("scatter"):
            self._scatter(data, PIECE if mode == "scatter-chunked" else None)
            return
        for i in range(0, len(data), PIECE):
            self.conn.receive_data(data[i : i + PIECE])

    def _scatter(self, data: bytes, limit: int | None = None) -> None:
        """``recvmsg_into`` over ``get_buffers()``, at most ``limit`` bytes a receive."""
        while data:
            want = min(len(data), limit or len(data))
            n = 0
            for view in self.conn.get_buffers():
                k = min(len(view), want - n)
                view[:k] = data[n : n + k]
                n += k
                if n == want:
                    break
            assert n, "get_buffers() offered no room"
            self.conn.buffer_updated(n)
            data = data[n:]

    def split_for(self, mode: str, start: int, dlen: int) -> int:
        """The first receive's end for the PDU at ``start`` with a ``dlen`` payload."""
        if mode in ("pieces", "scatter", "scatter-chunked"):
            return start + self.hlen + HEAD
        if mode == "tail":
            return start + self.hlen + dlen + 1  # the payload and 1 byte of its tail
        return 0

    def failure(self) -> BaseException:
        events = []
        while (event := self.conn.next_event()) is not None:
            events.append(event)
        failed = [e for e in events if isinstance(e, ConnectionFailed)]
        assert len(failed) == 1, events
        assert self.conn.closed
        return failed[0].error


def feed_read(w: Wire, mode: str, task: ScsiTask, *pdus: bytes, behind: bytes = b"") -> None:
    """Deliver ``pdus``, then ``behind`` in the same receives; the last of ``pdus`` is the
    one ``mode`` is about, and its first receive is checked to take that path (its
    payload length is read from its BHS)."""
    prefix = b"".join(pdus[:-1])
    last = pdus[-1]
    dlen = int.from_bytes(last[5:8], "big")
    wire = prefix + last + behind
    if mode == "whole":
        w.deliver(wire, mode)
        return
    split = w.split_for(mode, len(prefix), dlen)
    first, rest = wire[:split], wire[split:]
    if mode == "tail":
        w.conn.receive_data(first)  # one receive: the payload whole, its tail not
    else:
        w.receive(first, mode)
    if not w.conn.closed:
        _assert_direct(w, task, mode, dlen)
    w.receive(rest, "pieces" if mode == "tail" else mode)


def _assert_direct(w: Wire, task: ScsiTask, mode: str, dlen: int) -> None:
    """The guard: the first receive left the machine receiving into the right buffer."""
    target = w.conn.get_buffer()
    if mode == "tail":
        tail = (-dlen & 3) + (4 if w.dd else 0)
        assert len(target) == tail - 1, "not on the padding/digest tail path"
    else:
        assert target.obj is task.read_view.obj, "not receiving into the caller's buffer"  # type: ignore[union-attr]
        assert len(target) == dlen - HEAD


def assert_failed(task: ScsiTask, *words: str) -> None:
    assert task.done and not task.good
    assert isinstance(task.error, ConnectionFailedError), repr(task.error)
    for word in words:
        assert word in str(task.error), (word, str(task.error))


# == Data-In: the good read on each path ===================================================


@pytest.mark.parametrize("digests", [(False, False), (True, True), (False, True)])
@pytest.mark.parametrize("mode", DATA_IN_MODES)
def test_good_read_lands_exactly(mode: str, digests: tuple[bool, bool]) -> None:
    hd, dd = digests
    assert BIG % 4, "the tail path needs padding when there is no data digest"
    w = Wire(hd=hd, dd=dd)
    task, other = w.read(2 * BIG), w.read(512)
    data = pattern(2 * BIG)
    first = w.data_in(task.itt, data[:BIG], datasn=0)
    last = w.data_in(task.itt, data[BIG:], offset=BIG, datasn=1, status=0)
    behind = w.response(other.itt, status=2, data=b"\x00\x02\x70\x00")
    feed_read(w, mode, task, first, last, behind=behind)
    assert task.good, task.error
    assert bytes(task.read_view or b"") == data
    assert task.received == 2 * BIG and task.residual == 0
    assert other.done and other.status == 2 and other.sense_data == b"\x70\x00"
    assert not w.conn.closed


# == header digest =========================================================================


@pytest.mark.parametrize("mode", DATA_IN_MODES)
def test_header_digest_error_on_data_in(mode: str) -> None:
    w = Wire(hd=True, dd=True)
    task = w.read(BIG)
    bad = bytearray(w.data_in(task.itt, pattern(BIG), status=0))
    bad[50] ^= 0x20  # a bit of the header digest
    wire = bytes(bad)
    w.deliver(wire, mode if mode == "whole" else "pieces", w.split_for(mode, 0, BIG) or 0)
    assert_failed(task, "header digest error")
    assert isinstance(w.failure().__cause__, DigestError)
    assert w.conn.stats.digest_err == 1
    assert bytes(task.read_view or b"") == bytes([FILL]) * BIG  # nothing was placed


@pytest.mark.parametrize("byte", [0, 20, 47])
def test_header_digest_covers_every_header_byte(byte: int) -> None:
    w = Wire(hd=True)
    task = w.read(512)
    bad = bytearray(w.data_in(task.itt, pattern(512), status=0))
    bad[byte] ^= 0x01
    w.deliver(bytes(bad), "whole")
    assert_failed(task, "header digest error")


# == data digest, on every path and at every place the CRC covers ==========================

#: Where a corrupted byte sits in the final Data-In: offsets from the start of its payload.
CORRUPT_AT: dict[str, Callable[[int], int]] = {
    "payload-first-byte": lambda dlen: 0,
    "payload-in-first-receive": lambda dlen: HEAD - 1,
    "payload-in-a-later-piece": lambda dlen: HEAD + PIECE + 7,
    "payload-last-byte": lambda dlen: dlen - 1,
    "padding": lambda dlen: dlen,
    "digest": lambda dlen: dlen + (-dlen & 3) + 2,
}


@pytest.mark.parametrize("where", list(CORRUPT_AT))
@pytest.mark.parametrize("mode", DATA_IN_MODES)
def test_data_digest_error_on_data_in(mode: str, where: str) -> None:
    w = Wire(hd=True, dd=True)
    task = w.read(BIG)
    wire = bytearray(w.data_in(task.itt, pattern(BIG), status=0))
    wire[w.hlen + CORRUPT_AT[where](BIG)] ^= 0x10
    feed_read(w, mode, task, bytes(wire))
    assert_failed(task, "data digest error in Data-In")
    assert isinstance(w.failure().__cause__, DigestError)
    assert w.conn.stats.digest_err == 1


@pytest.mark.parametrize("mode", ["pieces", "scatter"])
def test_data_digest_error_in_a_non_final_data_in_landing_in_pieces(mode: str) -> None:
    """The case a random fuzz test caught only half the time: the corrupted byte lands
    in the caller's buffer in a later receive, and more Data-In follows."""
    w = Wire(dd=True)
    task = w.read(2 * BIG)
    data = pattern(2 * BIG)
    first = bytearray(w.data_in(task.itt, data[:BIG]))
    first[w.hlen + BIG // 2] ^= 0x01
    last = w.data_in(task.itt, data[BIG:], offset=BIG, datasn=1, status=0)
    feed_read(w, mode, task, bytes(first))
    assert_failed(task, "data digest error in Data-In")
    w.deliver(last, "whole")  # drained, not placed
    assert task.received == 0


def test_data_digest_of_a_short_data_in_in_many_receives() -> None:
    """A payload under the direct threshold, received a byte at a time, still has its
    digest checked."""
    w = Wire(dd=True)
    task = w.read(64)
    wire = bytearray(w.data_in(task.itt, pattern(61), status=0, underflow=3))
    wire[48 + 30] ^= 0x01
    for i in range(len(wire)):
        w.conn.receive_data(wire[i : i + 1])
    assert_failed(task, "data digest error")


# == Buffer Offset, DataSN, ITT, expected length, S without F, MaxRecvDataSegmentLength =====

BAD_SECOND: dict[str, tuple[Callable[[Wire, ScsiTask, bytes], bytes], str]] = {
    "offset-gap": (
        lambda w, t, d: w.data_in(t.itt, d[BIG + 4 :], offset=BIG + 4, datasn=1, status=0),
        f"offset {BIG + 4} where {BIG} was due",
    ),
    "offset-back": (
        lambda w, t, d: w.data_in(t.itt, d[BIG - 4 : 2 * BIG - 4], offset=BIG - 4, datasn=1),
        f"offset {BIG - 4} where {BIG} was due",
    ),
    "datasn-gap": (
        lambda w, t, d: w.data_in(t.itt, d[BIG:], offset=BIG, datasn=2, status=0),
        "DataSN 2 where 1 was due",
    ),
    "datasn-repeat": (
        lambda w, t, d: w.data_in(t.itt, d[BIG:], offset=BIG, datasn=0, status=0),
        "DataSN 0 where 1 was due",
    ),
    "unknown-itt": (
        lambda w, t, d: w.data_in(t.itt ^ 0x4000, d[BIG:], offset=BIG, datasn=1, status=0),
        "which is no outstanding read",
    ),
    "beyond-expected-length": (
        lambda w, t, d: w.data_in(t.itt, d[BIG:] + bytes(4), offset=BIG, datasn=1, status=0),
        f"runs beyond the {2 * BIG}-byte buffer",
    ),
    "status-without-final": (
        lambda w, t, d: w.data_in(t.itt, d[BIG:], offset=BIG, datasn=1, status=0, flags=0x01),
        "status but without the F bit",
    ),
    "over-max-recv": (
        lambda w, t, d: w.data_in(t.itt, d[BIG:] + bytes(50_000), offset=BIG, datasn=1),
        "exceeds MaxRecvDataSegmentLength 65536",
    ),
}


@pytest.mark.parametrize("case", list(BAD_SECOND))
@pytest.mark.parametrize("mode", DATA_IN_MODES)
def test_bad_second_data_in_fails_the_connection(mode: str, case: str) -> None:
    w = Wire(dd=True)
    task = w.read(2 * BIG, buffer=2 * BIG + 8)
    data = pattern(2 * BIG)
    first = w.data_in(task.itt, data[:BIG])
    make, message = BAD_SECOND[case]
    second = make(w, task, data)
    # The header checks run before any byte of the payload is placed: no path gets a
    # direct receive for a refused header.
    w.deliver(first + second, "whole" if mode == "whole" else "pieces",
              w.split_for(mode, len(first), BIG) if mode != "whole" else 0)  # fmt: skip
    assert_failed(task, message)
    assert isinstance(w.failure().__cause__, RemoteProtocolError)
    view = task.read_view
    assert view is not None and bytes(view[BIG:]) == bytes([FILL]) * (len(view) - BIG)


@pytest.mark.parametrize("mode", ["whole", "pieces"])
def test_data_in_exactly_max_recv_is_accepted(mode: str) -> None:
    w = Wire(mrdsl=BIG + 3)
    task = w.read(BIG + 3)
    feed_read(w, mode, task, w.data_in(task.itt, pattern(BIG + 3), status=0))
    assert task.good and bytes(task.read_view or b"") == pattern(BIG + 3)


@pytest.mark.parametrize("mode", ["whole", "pieces"])
def test_stale_itt_of_a_finished_read_is_refused(mode: str) -> None:
    w = Wire()
    done, pending = w.read(BIG), w.read(BIG)
    w.deliver(w.data_in(done.itt, pattern(BIG), status=0), "whole")
    assert done.good
    again = w.data_in(done.itt, pattern(BIG), status=0)
    w.deliver(again, mode, w.split_for(mode, 0, BIG))
    assert done.good  # reported once, not changed
    assert_failed(pending, "which is no outstanding read")


# == residuals: status in the last Data-In, on every path, and in a SCSI Response ==========


@pytest.mark.parametrize("mode", DATA_IN_MODES)
def test_underflow_in_data_in(mode: str) -> None:
    w = Wire(dd=True)
    task = w.read(BIG + 999)
    feed_read(w, mode, task, w.data_in(task.itt, pattern(BIG), status=0, underflow=999))
    assert task.good and task.residual == 999 and task.transferred == BIG == task.received


@pytest.mark.parametrize("mode", DATA_IN_MODES)
def test_underflow_that_does_not_add_up_fails_the_task(mode: str) -> None:
    w = Wire(dd=True)
    task = w.read(BIG + 999)
    feed_read(w, mode, task, w.data_in(task.itt, pattern(BIG), status=0, underflow=998))
    assert task.done and not task.good
    assert isinstance(task.error, RemoteProtocolError)
    assert f"reported {BIG + 1} bytes read but sent {BIG}" in str(task.error)
    assert not w.conn.closed


@pytest.mark.parametrize("mode", DATA_IN_MODES)
def test_missing_data_without_underflow_fails_the_task(mode: str) -> None:
    w = Wire(dd=True)
    task = w.read(BIG + 1)
    feed_read(w, mode, task, w.data_in(task.itt, pattern(BIG), status=0))
    assert task.done and not task.good
    assert f"reported {BIG + 1} bytes read but sent {BIG}" in str(task.error)


@pytest.mark.parametrize("mode", DATA_IN_MODES)
def test_overflow_in_data_in(mode: str) -> None:
    w = Wire(dd=True)
    task = w.read(BIG)
    feed_read(w, mode, task, w.data_in(task.itt, pattern(BIG), status=0, overflow=4096))
    assert task.good and task.residual == -4096 and task.transferred == BIG


@pytest.mark.parametrize("mode", DATA_IN_MODES)
def test_both_residual_flags_fail_the_task(mode: str) -> None:
    w = Wire(dd=True)
    task = w.read(BIG)
    pdu = w.data_in(task.itt, pattern(BIG), status=0, underflow=1, flags=0x87)
    feed_read(w, mode, task, pdu)
    assert task.done and not task.good
    assert "both residual overflow and underflow" in str(task.error)


@pytest.mark.parametrize("mode", ["whole", "pieces"])
def test_underflow_beyond_the_expected_length_fails_the_task(mode: str) -> None:
    w = Wire()
    task = w.read(BIG)
    first = w.data_in(task.itt, pattern(BIG)[:BIG], final=True)
    feed_read(w, mode, task, first)
    w.deliver(w.response(task.itt, underflow=BIG + 1), "whole")
    assert task.done and not task.good
    assert f"residual underflow {BIG + 1} exceeds the expected length {BIG}" in str(task.error)


@pytest.mark.parametrize(
    ("sent", "kw", "residual", "good"),
    [
        (BIG, {"underflow": 1000}, 1000, True),
        (BIG, {"underflow": 999}, 999, False),
        (BIG + 1000, {"overflow": 7}, -7, True),
        (BIG + 1000, {"underflow": 1, "flags": 0x86}, 0, False),
        (BIG, {}, 0, False),
    ],
    ids=["underflow", "underflow-wrong", "overflow", "both", "short-without-underflow"],
)
def test_residuals_in_a_scsi_response(
    sent: int, kw: dict[str, Any], residual: int, good: bool
) -> None:
    w = Wire(dd=True)
    task = w.read(BIG + 1000)
    w.deliver(w.data_in(task.itt, pattern(sent), final=True), "whole")
    w.deliver(w.response(task.itt, **kw), "whole")
    assert task.done and task.good is good
    if good:
        assert task.residual == residual and task.received == sent
        assert task.transferred == BIG + 1000 - max(residual, 0)


# == padding ===============================================================================


@pytest.mark.parametrize("pad", [1, 2, 3])
@pytest.mark.parametrize("mode", DATA_IN_MODES)
def test_padding_is_skipped_and_the_next_pdu_found(mode: str, pad: int) -> None:
    w = Wire(dd=True)
    n = BIG + 3 - pad  # leaves `pad` bytes of padding
    assert -n & 3 == pad
    task, other = w.read(n), w.read(16)
    pdu = w.data_in(task.itt, pattern(n), status=0)
    feed_read(w, mode, task, pdu)
    w.deliver(w.data_in(other.itt, pattern(16, 5), status=0), "whole")
    assert task.good and bytes(task.read_view or b"") == pattern(n)
    assert other.good and bytes(other.read_view or b"") == pattern(16, 5)


@pytest.mark.parametrize("mode", DATA_IN_MODES)
def test_padding_is_covered_by_the_data_digest(mode: str) -> None:
    w = Wire(dd=True)
    task = w.read(BIG)
    wire = bytearray(w.data_in(task.itt, pattern(BIG), status=0))
    wire[w.hlen + BIG + 1] = 0x55  # a padding byte
    feed_read(w, mode, task, bytes(wire))
    assert_failed(task, "data digest error")


# == PDUs other than Data-In: whole, and a segment over the scratch size ===================

SEGMENT = SCRATCH + 40_001  # odd: 3 bytes of padding


def sense_segment(size: int) -> bytes:
    """A SCSI Response data segment of ``size`` bytes: SenseLength 18, fixed-format sense
    (ILLEGAL REQUEST), then response data filling the rest."""
    sense = bytes([0x70, 0, 0x05, 0, 0, 0, 0, 10, 0, 0, 0, 0, 0x24, 0, 0, 0, 0, 0])
    return len(sense).to_bytes(2, "big") + sense + pattern(size - 20, 9)


def feed_segment(w: Wire, wire: bytes, size: int) -> None:
    """Deliver a big non-Data-In PDU: header and 1000 bytes, then the rest in pieces; the
    guard checks the rest goes to a buffer of its own."""
    split = w.hlen + 1000
    w.conn.receive_data(wire[:split])
    if not w.conn.closed:
        tail = (-size & 3) + (4 if w.dd else 0)
        assert len(w.conn.get_buffer()) == size + tail - 1000, "not on the segment path"
    for i in range(split, len(wire), 65536):
        w.conn.receive_data(wire[i : i + 65536])


@pytest.mark.parametrize("digests", [(False, False), (True, True)])
@pytest.mark.parametrize("mode", ["whole", "segment"])
def test_check_condition_with_a_large_segment(mode: str, digests: tuple[bool, bool]) -> None:
    hd, dd = digests
    size = SEGMENT if mode == "segment" else 4001
    w = Wire(hd=hd, dd=dd, mrdsl=1 << 20)
    task, other = w.read(512), w.read(512)
    wire = w.response(task.itt, status=2, data=sense_segment(size))
    if mode == "segment":
        feed_segment(w, wire, size)
    else:
        w.deliver(wire, "whole")
    w.deliver(w.data_in(other.itt, pattern(512), status=0), "whole")
    assert task.done and task.error is None and task.status == 2
    assert task.sense_data[:3] == bytes([0x70, 0, 0x05]) and len(task.sense_data) == 18
    assert other.good and bytes(other.read_view or b"") == pattern(512)


@pytest.mark.parametrize("where", ["first-receive", "later-piece", "last-byte", "pad", "digest"])
@pytest.mark.parametrize("mode", ["whole", "segment"])
def test_data_digest_error_in_a_scsi_response(mode: str, where: str) -> None:
    size = SEGMENT if mode == "segment" else 4001
    w = Wire(dd=True, mrdsl=1 << 20)
    task = w.read(512)
    wire = bytearray(w.response(task.itt, status=2, data=sense_segment(size)))
    at = {"first-receive": 500, "later-piece": 3000, "last-byte": size - 1, "pad": size,
          "digest": size + 3 + 1}[where]  # fmt: skip
    wire[w.hlen + at] ^= 0x08
    if mode == "segment":
        feed_segment(w, bytes(wire), size)
    else:
        w.deliver(bytes(wire), "whole")
    assert_failed(task, "data digest error")
    assert isinstance(w.failure().__cause__, DigestError)


@pytest.mark.parametrize("mode", ["whole", "segment"])
def test_header_digest_error_in_a_scsi_response(mode: str) -> None:
    size = SEGMENT if mode == "segment" else 4001
    w = Wire(hd=True, mrdsl=1 << 20)
    task = w.read(512)
    wire = bytearray(w.response(task.itt, status=2, data=sense_segment(size)))
    wire[49] ^= 0x01
    w.conn.receive_data(bytes(wire[: w.hlen + 1000]))
    assert_failed(task, "header digest error")


@pytest.mark.parametrize("mode", ["whole", "segment"])
def test_scsi_response_over_max_recv_is_refused_before_its_data(mode: str) -> None:
    size = SEGMENT if mode == "segment" else 4001
    w = Wire(mrdsl=size - 1)
    task = w.read(512)
    wire = w.response(task.itt, status=2, data=sense_segment(size))
    w.conn.receive_data(wire[: w.hlen])  # the header alone is enough to refuse it
    assert_failed(task, f"data segment of {size} bytes exceeds MaxRecvDataSegmentLength")


@pytest.mark.parametrize("mode", ["whole", "segment"])
def test_scsi_response_exactly_max_recv_is_accepted(mode: str) -> None:
    size = SEGMENT if mode == "segment" else 4001
    w = Wire(mrdsl=size)
    task = w.read(512)
    wire = w.response(task.itt, status=2, data=sense_segment(size))
    if mode == "segment":
        feed_segment(w, wire, size)
    else:
        w.deliver(wire, "whole")
    assert task.done and task.error is None and task.status == 2


@pytest.mark.parametrize("mode", ["whole", "segment"])
def test_scsi_response_for_an_unknown_itt(mode: str) -> None:
    size = SEGMENT if mode == "segment" else 4001
    w = Wire(mrdsl=1 << 20)
    task = w.read(512)
    wire = w.response(task.itt + 1, status=2, data=sense_segment(size))
    if mode == "segment":
        feed_segment(w, wire, size)
    else:
        w.deliver(wire, "whole")
    assert_failed(task, "which is no outstanding command")


# == the login-phase reader (framing.PduReader): whole PDUs from a byte stream ==============


def _login_reader(**kw: object) -> PduReader:
    return PduReader(peer="target", **kw)  # type: ignore[arg-type]


def _nop_in(data: bytes, *, hd: bool, dd: bool) -> bytes:
    return rawpdu.NopIn(itt=7, statsn=1, expcmdsn=1, maxcmdsn=1, data=data).encode(hd, dd)


@pytest.mark.parametrize("chunk", [1, 5, 4096])
def test_reader_good_pdu_any_chunking(chunk: int) -> None:
    reader = _login_reader(header_digest=True, data_digest=True)
    wire = _nop_in(pattern(1001), hd=True, dd=True) * 2
    got = []
    for i in range(0, len(wire), chunk):
        reader.receive_data(wire[i : i + chunk])
        while (pdu := reader.next_pdu()) is not None:
            got.append(pdu)
    assert [bytes(p.data) for p in got] == [pattern(1001)] * 2


@pytest.mark.parametrize("where", [3, 49, 52 + 10, 52 + 1001, 52 + 1004 + 1])
def test_reader_digest_errors(where: int) -> None:
    reader = _login_reader(header_digest=True, data_digest=True)
    wire = bytearray(_nop_in(pattern(1001), hd=True, dd=True))
    wire[where] ^= 0x04
    reader.receive_data(bytes(wire))
    with pytest.raises(DigestError, match="header" if where < 52 else "data"):
        reader.next_pdu()


def test_reader_refuses_an_oversized_segment_from_its_header() -> None:
    reader = _login_reader(max_data_segment_length=1000)
    reader.receive_data(_nop_in(pattern(1001), hd=False, dd=False)[:48])
    with pytest.raises(RemoteProtocolError, match="1001-byte data segment exceeds"):
        reader.next_pdu()
    ok = _login_reader(max_data_segment_length=1001)
    ok.receive_data(_nop_in(pattern(1001), hd=False, dd=False))
    assert ok.next_pdu() is not None


# == what mutation testing found untested (docs/mutation.md) ================================


def nop_in_ping(ttt: int = 0x1234, data: bytes = b"") -> bytes:
    """A target's NOP-In that wants a NOP-Out back (§11.19): a visible side effect."""
    return rawpdu.NopIn(ttt=ttt, statsn=FIRST_STATSN, expcmdsn=1, maxcmdsn=64, data=data).encode()


@pytest.mark.parametrize("mode", ["scatter", "scatter-chunked", "pieces"])
def test_aligned_payload_without_digest_then_more_pdus_in_the_same_receive(mode: str) -> None:
    """No padding and no data digest: nothing follows the payload but the next PDU, which
    the same scatter receive brings into the scratch buffer."""
    w = Wire()
    task, other = w.read(BIG + 3), w.read(16)
    assert (BIG + 3) % 4 == 0
    pdu = w.data_in(task.itt, pattern(BIG + 3), status=0)
    behind = w.data_in(other.itt, pattern(16, 2), status=0) + nop_in_ping()
    feed_read(w, mode, task, pdu, behind=behind)
    assert task.good and bytes(task.read_view or b"") == pattern(BIG + 3)
    assert other.good and bytes(other.read_view or b"") == pattern(16, 2)
    assert w.conn.stats.noprx_pdus == 1 and w.conn.data_to_send()


@pytest.mark.parametrize("dd", [False, True])
@pytest.mark.parametrize("mode", ["scatter", "scatter-chunked", "pieces"])
def test_segment_path_then_more_pdus_in_the_same_receive(mode: str, dd: bool) -> None:
    w = Wire(dd=dd, mrdsl=1 << 20)
    task, other = w.read(512), w.read(16)
    wire = w.response(task.itt, status=2, data=sense_segment(SEGMENT))
    behind = w.data_in(other.itt, pattern(16, 4), status=0)
    split = w.hlen + 1000
    w.receive(wire[:split], mode)
    tail = (-SEGMENT & 3) + (4 if dd else 0)
    assert len(w.conn.get_buffer()) == SEGMENT + tail - 1000, "not on the segment path"
    w.receive(wire[split:] + behind, mode)
    assert task.done and task.error is None and task.status == 2 and len(task.sense_data) == 18
    assert other.good and bytes(other.read_view or b"") == pattern(16, 4)


def _closing_callback(w: Wire) -> Callable[[ScsiTask], None]:
    def close(task: ScsiTask) -> None:
        w.conn.connection_lost(OSError("closed by the application"))

    return close


@pytest.mark.parametrize("mode", DATA_IN_MODES)
def test_nothing_behind_a_pdu_whose_completion_closed_the_connection_is_parsed(
    mode: str,
) -> None:
    """A completion callback may close the connection; the rest of that receive is then
    dropped, not parsed (no NOP-Out answered, no counter moved)."""
    w = Wire(dd=True)
    task = ScsiTask(READ10, read_buffer=bytearray(BIG), callback=_closing_callback(w))
    w.conn.submit(task)
    w.conn.data_to_send()
    other = w.read(16)
    behind = nop_in_ping() + w.data_in(other.itt, pattern(16), status=0)
    feed_read(w, mode, task, w.data_in(task.itt, pattern(BIG), status=0), behind=behind)
    assert task.good and w.conn.closed
    assert other.done and not other.good
    assert w.conn.data_to_send() == [] and w.conn.stats.noprx_pdus == 0
    assert w.conn.stats.datain_pdus == 1


def test_nothing_behind_a_response_whose_completion_closed_the_connection_is_parsed() -> None:
    w = Wire()
    task = ScsiTask(READ10, read_buffer=bytearray(16), callback=_closing_callback(w))
    w.conn.submit(task)
    w.conn.data_to_send()
    w.deliver(w.data_in(task.itt, pattern(16), final=True) + w.response(task.itt)
              + nop_in_ping(), "whole")  # fmt: skip
    assert task.good and w.conn.closed
    assert w.conn.data_to_send() == [] and w.conn.stats.noprx_pdus == 0


@pytest.mark.parametrize("mode", ["whole", "pieces", "scatter", "tail"])
def test_bytes_after_a_failure_are_drained_not_parsed(mode: str) -> None:
    """After a digest error the connection is failed for good: what still arrives, in
    the same receive or later ones, on any path, is never parsed."""
    w = Wire(dd=True)
    task, other = w.read(BIG), w.read(16)
    bad = bytearray(w.data_in(task.itt, pattern(BIG), status=0))
    bad[-1] ^= 0x01  # the data digest
    behind = nop_in_ping() + w.data_in(other.itt, pattern(16), status=0)
    feed_read(w, mode, task, bytes(bad), behind=behind)
    assert_failed(task, "data digest error")
    w.receive(nop_in_ping() * 3 + w.response(other.itt), "pieces")
    w.receive(nop_in_ping() * 3, "scatter")
    assert w.conn.data_to_send() == []
    assert w.conn.stats.noprx_pdus == 0 and w.conn.stats.scsirsp_pdus == 0
    assert_failed(other, "data digest error")


@pytest.mark.parametrize("mode", ["whole", "pieces", "scatter"])
def test_completing_a_read_sends_the_command_queued_behind_it(mode: str) -> None:
    """queue_depth 1: the second read waits; the Data-In that completes the first (on
    any path) lets it go, in the same buffer_updated call."""
    w = Wire()
    params = ConnectionParams(max_recv_data_segment_length=65536)
    w.conn = FullFeatureConnection(params, w.state, queue_depth=1, timers=NO_TIMERS)
    first, second = w.read(BIG), w.read(512)
    assert second.itt == -1  # queued, not sent
    feed_read(w, mode, first, w.data_in(first.itt, pattern(BIG), status=0))
    assert first.good
    sent = b"".join(bytes(b) for b in w.conn.data_to_send())
    assert len(sent) == 48 and sent[0] & 0x3F == 0x01  # the queued SCSI Command
    assert int.from_bytes(sent[16:20], "big") == second.itt != -1


def with_ahs(wire: bytes, ahs: bytes, *, hd: bool) -> bytes:
    """``wire`` (a PDU without AHS) with ``ahs`` inserted after its BHS, TotalAHSLength set
    and the header digest (which covers the AHS, §11.2.1) recomputed."""
    assert len(ahs) % 4 == 0
    bhs = bytearray(wire[:48])
    bhs[4] = len(ahs) // 4
    header = bytes(bhs) + ahs
    rest = wire[48 + (4 if hd else 0) :]
    return header + (rawpdu.digest(header) if hd else b"") + rest


#: A one-word AHS of a type iscsikit ignores (reserved type 0x3F, 1 specific byte).
AHS = bytes([0, 1, 0x3F, 0])


@pytest.mark.parametrize("hd", [False, True])
@pytest.mark.parametrize("cut", [None, 49, 51])
def test_a_target_ahs_is_skipped(hd: bool, cut: int | None) -> None:
    """Targets send no AHS in practice; one that does has it skipped, digest included,
    on a Data-In and on a SCSI Response, also when it arrives in two receives (``cut``:
    inside the AHS)."""
    w = Wire(hd=hd, dd=True)
    task, other = w.read(64), w.read(16)
    wire = with_ahs(w.data_in(task.itt, pattern(64), status=0), AHS, hd=hd)
    wire += with_ahs(w.response(other.itt, status=2, data=b"\x00\x00"), AHS, hd=hd)
    if cut is None:
        w.deliver(wire, "whole")
    else:
        w.conn.receive_data(wire[:cut])
        w.conn.receive_data(wire[cut:])
    assert task.good and bytes(task.read_view or b"") == pattern(64)
    assert other.done and other.status == 2 and other.error is None


def test_header_digest_covers_the_ahs() -> None:
    w = Wire(hd=True)
    task = w.read(64)
    wire = bytearray(with_ahs(w.data_in(task.itt, pattern(64), status=0), AHS, hd=True))
    wire[50] ^= 0x01  # inside the AHS
    w.deliver(bytes(wire), "whole")
    assert_failed(task, "header digest error")


def test_a_long_stream_of_small_pdus_in_odd_receives() -> None:
    """More than the scratch buffer holds, in receives that end inside PDUs: the
    unparsed rest is moved to the front when room runs short, so receives never stall."""
    w = Wire()
    count = 3000
    stream = nop_in_ping(RESERVED_TTT, pattern(97)) * count
    assert len(stream) > 1.5 * SCRATCH
    for i in range(0, len(stream), 4093):
        assert len(w.conn.get_buffer()) > 0
        w.conn.receive_data(stream[i : i + 4093])
    assert not w.conn.closed and w.conn.stats.noprx_pdus == count


RESERVED_TTT = rawpdu.RESERVED_TAG


@pytest.mark.parametrize("mode", ["whole", "pieces"])
def test_data_in_is_placed_by_its_itt_not_by_its_ttt_or_lun(mode: str) -> None:
    """A Data-In's Target Transfer Tag and LUN fields may hold anything (§11.7.4); values
    equal to another read's ITT must not steer the data there."""
    w = Wire()
    task, other = w.read(BIG), w.read(BIG)
    pdu = w.data_in(task.itt, pattern(BIG), status=0, ttt=other.itt, lun=other.itt)
    feed_read(w, mode, task, pdu)
    assert task.good and bytes(task.read_view or b"") == pattern(BIG)
    assert not other.done and bytes(other.read_view or b"") == bytes([FILL]) * BIG


@pytest.mark.parametrize(
    ("datasn", "offset", "residual", "message"),
    [
        (2, BIG, 0, "DataSN 2 where 1 was due"),
        (1, BIG + 4, BIG, f"offset {BIG + 4} where {BIG} was due"),
    ],
    ids=["datasn", "offset"],
)
@pytest.mark.parametrize("mode", ["whole", "pieces"])
def test_each_check_reads_its_own_field(
    mode: str, datasn: int, offset: int, residual: int, message: str
) -> None:
    """The second Data-In is wrong in one field while every other sequence field holds
    the value the wrong one should have had (StatSN = ExpCmdSN = MaxCmdSN = the DataSN
    due, Residual Count = the offset due): a check reading the wrong field passes it."""
    w = Wire()
    task = w.read(2 * BIG + 4)
    first = w.data_in(task.itt, pattern(BIG))
    second = w.data_in(task.itt, pattern(BIG), offset=offset, datasn=datasn, final=True,
                       sns=(1, 1, 1), underflow=residual or None)  # fmt: skip
    w.deliver(first + second, mode, len(first) + w.hlen + HEAD)
    assert_failed(task, message)


def test_a_data_in_of_exactly_max_recv_with_another_fault_names_that_fault() -> None:
    w = Wire(mrdsl=BIG)
    task = w.read(2 * BIG)
    w.deliver(w.data_in(task.itt, pattern(BIG)) + w.data_in(task.itt, pattern(BIG),
              offset=BIG, datasn=5, status=0), "whole")  # fmt: skip
    assert_failed(task, "DataSN 5 where 1 was due")


@pytest.mark.parametrize("dd", [False, True])
@pytest.mark.parametrize("mode", ["pieces", "scatter"])
def test_first_receive_ending_exactly_at_the_header(mode: str, dd: bool) -> None:
    """Nothing of the payload came with the header: the digest starts from nothing."""
    w = Wire(hd=True, dd=dd)
    task = w.read(BIG)
    wire = w.data_in(task.itt, pattern(BIG), status=0)
    w.receive(wire[: w.hlen], mode)
    assert w.conn.get_buffer().obj is (task.read_view or memoryview(b"")).obj
    w.receive(wire[w.hlen :], mode)
    assert task.good and bytes(task.read_view or b"") == pattern(BIG)


@pytest.mark.parametrize("dd", [False, True])
@pytest.mark.parametrize("mode", ["pieces", "scatter"])
def test_segment_path_hands_over_exactly_the_data(mode: str, dd: bool) -> None:
    """A target NOP-In with more data than the scratch buffer holds is echoed byte for
    byte: the segment's data is its DataSegmentLength, without padding or digest."""
    w = Wire(dd=dd, mrdsl=1 << 20)
    data = pattern(SEGMENT, 3)
    wire = nop_in_ping(0x77, data)
    if dd:
        wire = rawpdu.NopIn(ttt=0x77, statsn=FIRST_STATSN, expcmdsn=1, maxcmdsn=64,
                            data=data).encode(False, True)  # fmt: skip
    w.receive(wire[:1048], mode)
    assert len(w.conn.get_buffer()) == len(wire) - 1048, "not on the segment path"
    w.receive(wire[1048:], mode)
    sent = b"".join(bytes(b) for b in w.conn.data_to_send())
    assert int.from_bytes(sent[5:8], "big") == SEGMENT
    assert sent[48 : 48 + SEGMENT] == data


# == sequence numbers carried by Data-In (RFC 7143 §4.2.2.1, §11.7) ========================

BASE = 0xFFFFFFF0  # near the wrap, so serial arithmetic matters


def _window_wire(window: int = 1) -> Wire:
    w = Wire()
    w.state = SessionState(cmdsn=BASE, expcmdsn=BASE, maxcmdsn=BASE + window - 1,
                           expstatsn=FIRST_STATSN)  # fmt: skip
    params = ConnectionParams(max_recv_data_segment_length=65536)
    w.conn = FullFeatureConnection(params, w.state, timers=NO_TIMERS)
    return w


@pytest.mark.parametrize("mode", ["whole", "pieces"])
def test_data_in_opens_the_window_for_a_queued_command(mode: str) -> None:
    """A Data-In (no status) carrying a larger MaxCmdSN sends the command that waited
    for the window, across the 2**32 wrap."""
    w = _window_wire()
    first, second = w.read(BIG), w.read(512)
    assert second.itt == -1
    exp, new_max = (BASE + 1) & MASK, (BASE + 20) & MASK
    pdu = w.data_in(first.itt, pattern(BIG), sns=(FIRST_STATSN, exp, new_max))
    feed_read(w, mode, first, pdu)
    assert (w.state.expcmdsn, w.state.maxcmdsn) == (exp, new_max)
    sent = b"".join(bytes(b) for b in w.conn.data_to_send())
    assert len(sent) == 48 and int.from_bytes(sent[16:20], "big") == second.itt
    assert int.from_bytes(sent[24:28], "big") == exp  # its CmdSN
    assert w.state.expstatsn == FIRST_STATSN  # no status: StatSN not taken


@pytest.mark.parametrize(
    ("exp", "max_", "expected"),
    [
        (BASE - 1, BASE + 5, (BASE, BASE + 5)),  # stale ExpCmdSN ignored, MaxCmdSN taken
        (BASE, BASE - 1, (BASE, BASE)),  # stale (smaller) MaxCmdSN ignored
        (BASE + 3, BASE + 1, (BASE, BASE)),  # MaxCmdSN < ExpCmdSN - 1: both ignored
        (BASE + 3, BASE + 2, (BASE + 3, BASE + 2)),  # MaxCmdSN = ExpCmdSN - 1: closed, valid
        (BASE, BASE, (BASE, BASE)),  # unchanged
    ],
    ids=["stale-exp", "stale-max", "invalid", "closed-window", "same"],
)
def test_data_in_sequence_numbers_follow_serial_arithmetic(
    exp: int, max_: int, expected: tuple[int, int]
) -> None:
    w = _window_wire()
    task = w.read(64)
    w.deliver(w.data_in(task.itt, pattern(64), sns=(0, exp & MASK, max_ & MASK)), "whole")
    assert (w.state.expcmdsn, w.state.maxcmdsn) == tuple(v & MASK for v in expected)


@pytest.mark.parametrize("mode", ["whole", "pieces"])
def test_status_in_data_in_takes_statsn_status_and_no_residual(mode: str) -> None:
    """StatSN + 1 becomes ExpStatSN (wrapping), the status byte is the task's status
    (CONDITION MET here, not GOOD), the response is 0."""
    w = Wire()
    task = w.read(BIG)
    pdu = w.data_in(task.itt, pattern(BIG), status=0x04, sns=(MASK, 1, 64))
    feed_read(w, mode, task, pdu)
    assert task.done and task.error is None and task.status == 0x04 and task.response == 0
    assert task.residual == 0 and task.sense_data == b""
    assert w.state.expstatsn == 0
    assert w.conn.stats.scsirsp_pdus == 1 and w.conn.stats.datain_pdus == 1
    assert w.conn.stats.rxdata_octets == BIG


@pytest.mark.parametrize("mode", ["whole", "pieces"])
def test_status_with_underflow_in_data_in_keeps_the_status(mode: str) -> None:
    w = Wire()
    task = w.read(BIG + 8)
    pdu = w.data_in(task.itt, pattern(BIG), status=0x04, underflow=8)
    feed_read(w, mode, task, pdu)
    assert task.done and task.error is None and task.status == 0x04
    assert task.residual == 8 and task.response == 0


# == SCSI Response and R2T boundaries ======================================================


@pytest.mark.parametrize(("extra", "ok"), [(0, True), (-1, False)])
def test_sense_length_boundary(extra: int, ok: bool) -> None:
    """SenseLength may use every byte after it, never one more (§11.4.7)."""
    w = Wire()
    task = w.read(512)
    sense = bytes([0x70, 0, 0x05]) + bytes(15)
    data = len(sense).to_bytes(2, "big") + sense[: len(sense) + extra]
    w.deliver(w.response(task.itt, status=2, data=data), "whole")
    if ok:
        assert task.done and task.error is None and task.sense_data == sense
    else:
        assert_failed(task, f"SenseLength 18 exceeds the {17} bytes that follow")


def test_underflow_of_the_whole_length_is_a_good_empty_read() -> None:
    w = Wire()
    task = w.read(512)
    w.deliver(w.response(task.itt, underflow=512), "whole")
    assert task.good and task.residual == 512 and task.transferred == 0 == task.received


def test_residual_count_without_o_or_u_is_not_a_residual() -> None:
    """Residual Count is valid only with the O or U bit (§11.4.5)."""
    w = Wire()
    task = w.read(512)
    w.deliver(w.data_in(task.itt, pattern(512), final=True), "whole")
    w.deliver(w.response(task.itt, underflow=100, flags=0x80), "whole")
    assert task.good and task.residual == 0 and task.transferred == 512


def _r2t(w: Wire, itt: int, *, offset: int, length: int, sns: tuple[int, int] = (1, 64),
         r2tsn: int = 0) -> bytes:  # fmt: skip
    return rawpdu.R2T(itt=itt, ttt=0x55, statsn=w.statsn, expcmdsn=sns[0], maxcmdsn=sns[1],
                      r2tsn=r2tsn, buffer_offset=offset,
                      desired_data_transfer_length=length).encode(w.hd, w.dd)  # fmt: skip


def _write(w: Wire, data: bytes) -> ScsiTask:
    task = ScsiTask(bytes([0x2A]) + bytes(9), write_data=data)
    w.conn.submit(task)
    w.conn.data_to_send()
    return task


def test_r2t_for_a_single_byte_is_answered() -> None:
    w = Wire()
    params = ConnectionParams(immediate_data=False)
    w.conn = FullFeatureConnection(params, w.state, timers=NO_TIMERS)
    task = _write(w, pattern(512))
    w.deliver(_r2t(w, task.itt, offset=511, length=1), "whole")
    sent = b"".join(bytes(b) for b in w.conn.data_to_send())
    assert sent[0] & 0x3F == 0x05 and int.from_bytes(sent[5:8], "big") == 1
    assert int.from_bytes(sent[40:44], "big") == 511 and sent[48] == pattern(512)[511]
    assert w.conn.stats.r2t_pdus == 1


def test_r2t_opens_the_window_for_a_queued_command() -> None:
    w = _window_wire()
    params = ConnectionParams(immediate_data=False)
    w.conn = FullFeatureConnection(params, w.state, timers=NO_TIMERS)
    task = _write(w, pattern(512))
    queued = w.read(512)
    assert queued.itt == -1
    exp, new_max = (BASE + 1) & MASK, (BASE + 5) & MASK
    w.deliver(_r2t(w, task.itt, offset=0, length=512, sns=(exp, new_max)), "whole")
    assert (w.state.expcmdsn, w.state.maxcmdsn) == (exp, new_max)
    assert queued.itt != -1


def test_nothing_behind_the_logout_response_is_parsed() -> None:
    """The Logout Response closes the connection: a NOP-In ping behind it in the same
    receive, or in a later one, is not answered."""

    w = Wire()
    logout = LogoutTask()
    w.conn.logout(logout)
    w.conn.data_to_send()
    answer = rawpdu.LogoutResponse(itt=logout.itt, statsn=FIRST_STATSN, expcmdsn=1,
                                   maxcmdsn=64).encode()  # fmt: skip
    w.deliver(answer + nop_in_ping(), "whole")
    assert logout.done and logout.error is None and w.conn.closed
    w.deliver(nop_in_ping(), "whole")
    assert w.conn.data_to_send() == [] and w.conn.stats.noprx_pdus == 0


@pytest.mark.parametrize(
    ("hd", "cut"),
    [(hd, cut) for hd in (False, True) for cut in (None, 2, 3, 5, 6) if hd or not cut or cut < 4],
)
def test_an_ahs_pdu_without_data_behind_another_pdu(hd: bool, cut: int | None) -> None:
    """A SCSI Response with an AHS and no data segment, not first in the buffer: it is
    complete when its header is, also when its header arrived in two receives (``cut``
    bytes after the BHS in the first: inside the AHS, or inside the header digest that
    follows it)."""
    w = Wire(hd=hd)
    task, other = w.read(16), w.read(16)
    first = w.data_in(task.itt, pattern(16), status=0)
    second = with_ahs(w.response(other.itt, underflow=16), AHS, hd=hd)
    wire = first + second
    if cut is None:
        w.deliver(wire, "whole")
    else:
        w.conn.receive_data(wire[: len(first) + 48 + cut])
        assert task.good and not other.done
        w.conn.receive_data(wire[len(first) + 48 + cut :])
    assert task.good and other.good


def test_reader_accepts_the_smallest_max_recv() -> None:
    """MaxRecvDataSegmentLength 1 is a legal setting (1..2**24-1, RFC 7143 §13.12)."""
    reader = _login_reader(max_data_segment_length=1)
    reader.receive_data(_nop_in(b"x", hd=False, dd=False))
    assert reader.next_pdu() is not None
    reader.receive_data(_nop_in(b"xy", hd=False, dd=False)[:48])
    with pytest.raises(RemoteProtocolError, match="2-byte data segment exceeds"):
        reader.next_pdu()
