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
from iscsikit.proto.task import ScsiTask
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

DATA_IN_MODES = ["whole", "pieces", "scatter", "tail"]


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
                overflow: int | None = None, flags: int | None = None) -> bytes:  # fmt: skip
        wire = rawpdu.DataIn(
            final=final or status is not None,
            status_present=status is not None,
            status=status or 0,
            underflow=underflow is not None,
            overflow=overflow is not None,
            residual_count=underflow or overflow or 0,
            itt=itt,
            statsn=self._take_statsn() if status is not None else self.statsn,
            expcmdsn=1,
            maxcmdsn=64,
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
        conn = self.conn
        if mode == "whole":
            conn.receive_data(wire)
            return
        conn.receive_data(wire[:split]) if mode != "scatter" else self._scatter(wire[:split])
        rest = wire[split:]
        if mode == "scatter":
            self._scatter(rest)
        else:
            for i in range(0, len(rest), PIECE):
                conn.receive_data(rest[i : i + PIECE])

    def _scatter(self, data: bytes) -> None:
        """``recvmsg_into`` over ``get_buffers()``, as much as fits per receive."""
        while data:
            n = 0
            for view in self.conn.get_buffers():
                k = min(len(view), len(data) - n)
                view[:k] = data[n : n + k]
                n += k
                if n == len(data):
                    break
            self.conn.buffer_updated(n)
            data = data[n:]

    def split_for(self, mode: str, start: int, dlen: int) -> int:
        """The first receive's end for the PDU at ``start`` with a ``dlen`` payload."""
        if mode in ("pieces", "scatter"):
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


def feed_read(w: Wire, mode: str, task: ScsiTask, *pdus: bytes) -> None:
    """Deliver ``pdus``; the last one is the one ``mode`` is about, and its first receive
    is checked to take that path (its payload length is read from its BHS)."""
    prefix = b"".join(pdus[:-1])
    last = pdus[-1]
    dlen = int.from_bytes(last[5:8], "big")
    wire = prefix + last
    if mode == "whole":
        w.deliver(wire, mode)
        return
    split = w.split_for(mode, len(prefix), dlen)
    first, rest = wire[:split], wire[split:]
    w.deliver(first, "whole") if mode != "scatter" else w._scatter(first)
    if not w.conn.closed:
        _assert_direct(w, task, mode, dlen)
    w.deliver(rest, "pieces" if mode != "scatter" else "scatter", 0)


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
    if mode == "tail" and not dd and BIG % 4 == 0:
        pytest.skip("no tail")  # pragma: no cover - BIG is odd
    w = Wire(hd=hd, dd=dd)
    task, other = w.read(2 * BIG), w.read(512)
    data = pattern(2 * BIG)
    first = w.data_in(task.itt, data[:BIG], datasn=0)
    last = w.data_in(task.itt, data[BIG:], offset=BIG, datasn=1, status=0)
    behind = w.response(other.itt, status=2, data=b"\x00\x02\x70\x00")
    feed_read(w, mode, task, first, last)
    w.deliver(behind, "whole")
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
