"""The data-safety fence over in-memory paths: which calls move at once after a path
failure, which wait for the failed path's fence, and what clears a fence.

The paths are test_multipath_policy's :class:`DiskChannel` paths on a fake clock; their
sessions are not managed ones, so only ``fence_timeout`` clears their fences here (the
reinstatement is proven against tgtd in tests/integration/test_multipath_fence.py).
"""

from __future__ import annotations

import pytest
from test_multipath_policy import BS, _setup

from iscsikit.lun.fence import Fence, SessionMark, reissue_at_once
from iscsikit.scsi import cdb as C

ISID = bytes.fromhex("800000000001")


def test_classification() -> None:
    assert reissue_at_once(C.read16(0, 1))
    assert reissue_at_once(C.inquiry(evpd=True, page=0x83, allocation_length=64))
    assert reissue_at_once(bytes([0x35]) + bytes(9))  # SYNCHRONIZE CACHE(10)
    assert reissue_at_once(bytes([0xA3, 0x0A]) + bytes(10))  # REPORT TARGET PORT GROUPS
    assert not reissue_at_once(C.write16(0, 1))
    assert not reissue_at_once(bytes([0x42]) + bytes(9))  # UNMAP
    assert not reissue_at_once(bytes([0x93]) + bytes(15))  # WRITE SAME(16)
    assert not reissue_at_once(bytes([0x89]) + bytes(15))  # COMPARE AND WRITE
    assert not reissue_at_once(bytes([0xC0]) + bytes(15))  # vendor specific: unknown
    assert not reissue_at_once(b"")
    read32 = bytearray(32)
    read32[0], read32[7], read32[9] = 0x7F, 0x18, 0x09
    assert reissue_at_once(read32)
    read32[9] = 0x0B  # WRITE(32)
    assert not reissue_at_once(read32)


def test_fence_clears_on_reinstatement_or_timeout() -> None:
    before = SessionMark(2, ISID, 0, logged_in=False)
    fence = Fence(0, since=100.0, mark=before, timeout=10.0)
    assert not fence.cleared(105.0, before)
    assert not fence.cleared(105.0, SessionMark(2, ISID, 0, True))  # no new login
    assert not fence.cleared(105.0, SessionMark(3, ISID, 0, False))  # not logged in
    assert not fence.cleared(105.0, SessionMark(3, b"\x80" + bytes(5), 0, True))  # new ISID
    assert not fence.cleared(105.0, SessionMark(3, ISID, 7, True))  # TSIH offered
    assert fence.cleared(105.0, SessionMark(3, ISID, 0, True))
    assert fence.cleared(110.0, None)
    assert not Fence(0, 100.0, None, 10.0).cleared(109.9, SessionMark(9, ISID, 0, True))


def test_write_waits_for_the_fence_read_moves_at_once() -> None:
    mp, channels, now = _setup(2, "failover", fence_timeout=10.0)
    channels[0].down = True
    assert mp.read(0, BS) == bytes(BS)
    assert now[0] == 0.0 and mp.fenced == 0 and mp.reissues == 1  # moved at once
    mp, channels, now = _setup(2, "failover", fence_timeout=10.0)
    channels[0].down = True
    mp.write(0, b"w" * BS)
    assert now[0] >= 10.0, "the write moved before the fence"
    assert (mp.fenced, mp.fence_timed_out, mp.fence_reinstated) == (1, 1, 0)
    assert channels[1].ran == 1 and mp.read(0, BS) == b"w" * BS


@pytest.mark.parametrize(
    ("call", "fenced"),
    [
        (lambda mp: mp.unmap(0, BS), 1),
        (lambda mp: mp.write_zeroes(0, BS), 1),
        (lambda mp: mp.execute(bytes([0xC0]) + bytes(15)), 1),
        (lambda mp: mp.execute(C.read16(0, 1), read_length=BS), 0),
        (lambda mp: mp.flush(), 0),
    ],
)
def test_what_waits(call: object, fenced: int) -> None:
    mp, channels, now = _setup(2, "failover", fence_timeout=5.0)
    channels[0].down = True
    call(mp)  # type: ignore[operator]
    assert mp.fenced == fenced
    assert now[0] >= 5.0 if fenced else now[0] == 0.0


def test_no_fence_with_fence_timeout_zero() -> None:
    mp, channels, now = _setup(2, "failover", fence_timeout=0.0)
    channels[0].down = True
    mp.write(0, b"z" * BS)
    assert now[0] == 0.0 and mp.fenced == 0 and mp.reissues == 1
