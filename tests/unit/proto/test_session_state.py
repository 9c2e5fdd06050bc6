"""Sequence-number bookkeeping (RFC 7143 §4.2.2.1, RFC 1982 serial arithmetic)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from iscsikit.errors import LogoutError, RemoteProtocolError
from iscsikit.proto.constants import RESERVED_TAG
from iscsikit.proto.pdu import LogoutResponse, NopIn, Reject
from iscsikit.proto.session import (
    LogoutExchange,
    SessionState,
    answer_nop_in,
    nop_out_ping,
    sn_le,
    sn_lt,
)

u32 = st.integers(0, 0xFFFFFFFF)


def test_serial_arithmetic_wraps() -> None:
    assert sn_lt(0xFFFFFFFF, 0)
    assert sn_lt(1, 2) and not sn_lt(2, 1) and not sn_lt(5, 5)
    assert sn_le(5, 5)
    assert not sn_lt(0, 0x80000000) and not sn_lt(0x80000000, 0)  # undefined: neither


@given(u32, st.integers(1, 0x7FFFFFFF))
def test_serial_lt_for_any_distance_below_half(a: int, d: int) -> None:
    assert sn_lt(a, (a + d) & 0xFFFFFFFF)
    assert not sn_lt((a + d) & 0xFFFFFFFF, a)


def test_itt_never_reserved_and_cmdsn_advances_for_non_immediate() -> None:
    s = SessionState(cmdsn=10, expcmdsn=10, maxcmdsn=10, expstatsn=5)
    s._itt = RESERVED_TAG - 1
    assert s.next_itt() == 0
    assert s.take_cmdsn(immediate=True) == 10 and s.cmdsn == 10
    assert s.take_cmdsn() == 10 and s.cmdsn == 11
    assert not s.window_open()  # CmdSN 11 > MaxCmdSN 10


def test_window_updates_ignore_stale_and_invalid_values() -> None:
    s = SessionState(cmdsn=1, expcmdsn=1, maxcmdsn=8, expstatsn=0)
    s.update_from_response(7, 3, 20)
    assert (s.expstatsn, s.expcmdsn, s.maxcmdsn) == (8, 3, 20)
    s.update_from_response(None, 2, 10)  # stale: ignored
    assert (s.expstatsn, s.expcmdsn, s.maxcmdsn) == (8, 3, 20)
    s.update_from_response(None, 100, 50)  # MaxCmdSN < ExpCmdSN - 1: invalid, ignored
    assert (s.expcmdsn, s.maxcmdsn) == (3, 20)


def test_logout_exchange() -> None:
    s = SessionState(cmdsn=4, expcmdsn=4, maxcmdsn=12, expstatsn=9)
    ex = LogoutExchange(s)
    req = ex.request()
    assert req.immediate and req.reason == 0 and req.cmdsn == 4 and req.expstatsn == 9
    assert s.cmdsn == 4  # immediate
    assert (
        ex.receive(NopIn(itt=RESERVED_TAG, ttt=RESERVED_TAG, statsn=9, expcmdsn=4, maxcmdsn=12))
        is None
    )
    done = ex.receive(
        LogoutResponse(
            response=0, itt=req.itt, statsn=9, expcmdsn=4, maxcmdsn=12, time2wait=2, time2retain=20
        )
    )
    assert done is not None and (done.time2wait, done.time2retain) == (2, 20)
    assert s.expstatsn == 10


def test_logout_refusals() -> None:
    s = SessionState(cmdsn=1, expcmdsn=1, maxcmdsn=1, expstatsn=1)
    ex = LogoutExchange(s)
    req = ex.request()
    with pytest.raises(LogoutError, match="cid not found"):
        ex.receive(LogoutResponse(response=1, itt=req.itt, expcmdsn=1, maxcmdsn=1))
    with pytest.raises(RemoteProtocolError):
        ex.receive(LogoutResponse(response=0, itt=req.itt + 1, expcmdsn=1, maxcmdsn=1))
    with pytest.raises(LogoutError, match="rejected"):
        ex.receive(Reject(reason=4, expcmdsn=1, maxcmdsn=1))


def test_nop_ping_and_target_ping_answer() -> None:
    s = SessionState(cmdsn=3, expcmdsn=3, maxcmdsn=10, expstatsn=7)
    ping = nop_out_ping(s, b"abc")
    assert ping.immediate and ping.ttt == RESERVED_TAG and ping.itt != RESERVED_TAG
    assert ping.data == b"abc" and s.cmdsn == 3
    # Unsolicited NOP-In asking for an answer: echo TTT and data, ITT reserved,
    # and do not advance ExpStatSN.
    nop_in = NopIn(lun=0, itt=RESERVED_TAG, ttt=0x55, statsn=7, expcmdsn=3, maxcmdsn=11, data=b"xy")
    reply = answer_nop_in(s, nop_in)
    assert reply is not None
    assert (reply.itt, reply.ttt, reply.data, reply.expstatsn) == (RESERVED_TAG, 0x55, b"xy", 7)
    assert s.maxcmdsn == 11
    # A NOP-In answering our ping consumes a StatSN and needs no reply.
    assert (
        answer_nop_in(s, NopIn(itt=ping.itt, ttt=RESERVED_TAG, statsn=7, expcmdsn=3, maxcmdsn=11))
        is None
    )
    assert s.expstatsn == 8
