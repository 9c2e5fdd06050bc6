"""Full Feature Phase writes: immediate data, unsolicited Data-Out, R2T sequences.

RFC 7143 §11.3 (SCSI Command F bit, immediate data), §11.7 (Data-Out: DataSN per
sequence, Buffer Offset, F bit, TTT), §11.8 (R2T), §13.10-§13.14 (ImmediateData,
InitialR2T, FirstBurstLength, MaxBurstLength, MaxRecvDataSegmentLength).  The target
harness parses Data-Out with the MaxRecvDataSegmentLength it declared, so a segment
the machine makes too long fails there.
"""

from __future__ import annotations

import pytest
from test_ffp import Target, assert_each_called_once, failed_with, pattern

from iscsikit.errors import ConnectionFailedError
from iscsikit.proto.constants import RESERVED_TAG
from iscsikit.proto.ffp import ConnectionParams
from iscsikit.proto.pdu import DataOut, Pdu, ScsiCommand


def params(**kw: object) -> ConnectionParams:
    return ConnectionParams(**kw)  # type: ignore[arg-type]


def data_outs(pdus: list[Pdu]) -> list[DataOut]:
    assert all(isinstance(p, DataOut) for p in pdus), pdus
    return [p for p in pdus if isinstance(p, DataOut)]


def reassemble(outs: list[DataOut]) -> dict[int, bytes]:
    return {p.buffer_offset: p.data for p in outs}


def check_sequence(
    outs: list[DataOut], *, itt: int, ttt: int, start: int, length: int, segment: int, data: bytes
) -> None:
    """One Data-Out sequence: DataSN 0.., contiguous offsets, F on the last only."""
    assert [p.datasn for p in outs] == list(range(len(outs)))
    assert all(p.itt == itt and p.ttt == ttt for p in outs)
    assert [p.final for p in outs] == [False] * (len(outs) - 1) + [True]
    offset = start
    for p in outs:
        assert p.buffer_offset == offset
        assert 0 < len(p.data) <= segment
        assert p.data == data[offset : offset + len(p.data)]
        offset += len(p.data)
    assert offset == start + length


def test_immediate_data_only() -> None:
    t = Target(params(immediate_data=True, initial_r2t=True, max_xmit_data_segment_length=8192))
    data = pattern(4096)
    task = t.write(data)
    cmd = t.command()
    assert cmd.write and not cmd.read and cmd.final  # no unsolicited Data-Out follows
    assert cmd.expected_data_transfer_length == 4096 and cmd.data == data
    t.feed(t.response(task.itt))
    assert task.good and t.callback.calls == [task]


def test_immediate_data_is_capped_by_the_targets_segment_length_then_r2t() -> None:
    t = Target(params(max_xmit_data_segment_length=8192))
    data = pattern(20000)
    task = t.write(data)
    cmd = t.command()
    assert cmd.final and cmd.data == data[:8192]
    t.feed(t.r2t(task.itt, offset=8192, length=11808, ttt=0x1234))
    outs = data_outs(t.sent())
    check_sequence(
        outs, itt=task.itt, ttt=0x1234, start=8192, length=11808, segment=8192, data=data
    )
    assert [len(p.data) for p in outs] == [8192, 3616]
    assert all(p.lun == cmd.lun for p in outs)
    t.feed(t.response(task.itt))
    assert task.good


def test_immediate_data_no_sends_nothing_before_r2t() -> None:
    t = Target(params(immediate_data=False, initial_r2t=True, max_xmit_data_segment_length=4096))
    data = pattern(10000)
    task = t.write(data)
    cmd = t.command()
    assert cmd.final and cmd.data == b"" and cmd.expected_data_transfer_length == 10000
    # Two R2Ts in one go: R2TSN 0 and 1, each its own sequence (DataSN from 0, §11.7.5).
    t.feed(
        t.r2t(task.itt, offset=0, length=6000, r2tsn=0, ttt=0xA),
        t.r2t(task.itt, offset=6000, length=4000, r2tsn=1, ttt=0xB),
    )
    outs = data_outs(t.sent())
    first = [p for p in outs if p.ttt == 0xA]
    second = [p for p in outs if p.ttt == 0xB]
    assert outs == first + second
    check_sequence(first, itt=task.itt, ttt=0xA, start=0, length=6000, segment=4096, data=data)
    check_sequence(second, itt=task.itt, ttt=0xB, start=6000, length=4000, segment=4096, data=data)
    assert all(p.expstatsn == t.statsn for p in outs)
    t.feed(t.response(task.itt))
    assert task.good


def test_initial_r2t_no_sends_unsolicited_data_up_to_first_burst_length() -> None:
    t = Target(
        params(
            immediate_data=True,
            initial_r2t=False,
            first_burst_length=65536,
            max_xmit_data_segment_length=8192,
        )
    )
    data = pattern(100000)
    task = t.write(data)
    pdus = t.sent()
    cmd = pdus[0]
    assert isinstance(cmd, ScsiCommand)
    assert not cmd.final  # unsolicited Data-Out follows (§11.3.4)
    assert cmd.data == data[:8192]
    outs = data_outs(pdus[1:])
    # Unsolicited Data-Out: TTT 0xffffffff, up to FirstBurstLength including the
    # immediate data (§13.14).
    check_sequence(
        outs, itt=task.itt, ttt=RESERVED_TAG, start=8192, length=65536 - 8192, segment=8192,
        data=data,
    )  # fmt: skip
    t.feed(t.r2t(task.itt, offset=65536, length=100000 - 65536, ttt=0x55))
    rest = data_outs(t.sent())
    check_sequence(rest, itt=task.itt, ttt=0x55, start=65536, length=34464, segment=8192, data=data)
    t.feed(t.response(task.itt))
    assert task.good


def test_initial_r2t_no_without_immediate_data() -> None:
    t = Target(
        params(
            immediate_data=False,
            initial_r2t=False,
            first_burst_length=16384,
            max_xmit_data_segment_length=4096,
        )
    )
    data = pattern(10000)
    task = t.write(data)
    pdus = t.sent()
    cmd = pdus[0]
    assert isinstance(cmd, ScsiCommand) and not cmd.final and cmd.data == b""
    outs = data_outs(pdus[1:])
    # The whole write fits in the first burst: all of it unsolicited.
    check_sequence(
        outs, itt=task.itt, ttt=RESERVED_TAG, start=0, length=10000, segment=4096, data=data
    )
    t.feed(t.response(task.itt))
    assert task.good


def test_initial_r2t_no_with_everything_immediate_sets_the_final_bit() -> None:
    t = Target(params(immediate_data=True, initial_r2t=False))
    task = t.write(pattern(100))
    cmd = t.command()
    assert cmd.final and cmd.data == pattern(100)
    t.feed(t.response(task.itt))
    assert task.good


def test_r2t_longer_than_max_burst_length_fails_the_connection() -> None:
    t = Target(params(immediate_data=False, max_burst_length=16384))
    task = t.write(pattern(65536))
    t.command()
    t.feed(t.r2t(task.itt, offset=0, length=32768))
    failed_with(task, ConnectionFailedError, "MaxBurstLength 16384")
    assert t.sent() == []  # not a byte of Data-Out
    assert t.failure()


def test_r2t_at_max_burst_length_is_answered() -> None:
    t = Target(params(immediate_data=False, max_burst_length=16384))
    data = pattern(32768)
    task = t.write(data)
    t.command()
    t.feed(t.r2t(task.itt, offset=16384, length=16384, r2tsn=0, ttt=1))
    t.feed(t.r2t(task.itt, offset=0, length=16384, r2tsn=1, ttt=2))
    assert reassemble(data_outs(t.sent())) == {
        16384: data[16384:24576],
        24576: data[24576:],
        0: data[:8192],
        8192: data[8192:16384],
    }
    t.feed(t.response(task.itt))
    assert task.good


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        ({"offset": 0, "length": 0}, "R2T for 0 bytes"),
        ({"offset": 60000, "length": 8192}, "does not fit the 65536-byte transfer"),
        ({"offset": 0, "length": 100, "r2tsn": 1}, "R2TSN 1 where 0 was due"),
        ({"offset": 0, "length": 100, "ttt": RESERVED_TAG}, "reserved Target Transfer Tag"),
    ],
    ids=["empty", "beyond", "r2tsn-gap", "reserved-ttt"],
)
def test_bad_r2t_fails_the_connection(kw: dict[str, int], message: str) -> None:
    t = Target(params(immediate_data=False))
    task, other = t.write(pattern(65536)), t.read(512)
    t.sent()
    t.feed(t.r2t(task.itt, **kw))
    failed_with(task, ConnectionFailedError, message)
    failed_with(other, ConnectionFailedError, message)
    assert t.sent() == []
    assert_each_called_once(t.callback, [task, other])


def test_r2t_for_a_read_is_refused() -> None:
    t = Target()
    task = t.read(512)
    t.feed(t.r2t(task.itt, offset=0, length=512))
    failed_with(task, ConnectionFailedError, "no outstanding write")


def test_write_data_is_sent_from_the_callers_buffer() -> None:
    # Data-Out payloads are views of the caller's data (a gather list), not copies.
    t = Target(params(immediate_data=False))
    data = bytearray(pattern(1000))
    task = t.write(bytes(data))
    t.sent()
    t.feed(t.r2t(task.itt, offset=0, length=1000))
    bufs = t.conn.data_to_send()
    assert any(isinstance(b, memoryview) and b.obj is task.write_view.obj for b in bufs)  # type: ignore[union-attr]


def test_writes_with_digests_in_both_directions() -> None:
    t = Target(
        params(
            header_digest=True,
            data_digest=True,
            immediate_data=True,
            max_xmit_data_segment_length=1000,
        )
    )
    data = pattern(2501)  # odd length: padding is covered by the data digest
    task = t.write(data)
    cmd = t.command()  # the harness reader verifies both digests
    assert cmd.data == data[:1000]
    t.feed(t.r2t(task.itt, offset=1000, length=1501, ttt=9))
    outs = data_outs(t.sent())
    check_sequence(outs, itt=task.itt, ttt=9, start=1000, length=1501, segment=1000, data=data)
    t.feed(t.response(task.itt))
    assert task.good
