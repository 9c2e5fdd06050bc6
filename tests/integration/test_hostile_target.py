"""A hostile target on loopback: every misbehaviour ends in a typed error, in time.

Each case runs a :class:`~iscsikit.testing.hostile.ScriptedTarget` that answers the
initiator's first PDU (or later ones) with crafted bytes: truncated PDUs, wrong
opcodes, oversized segments, bad digests, garbage text keys, endless rounds, or
nothing at all.  The assertion is always the same shape: an ``IscsiError`` with the
expected code, raised before the configured timeout (plus scheduling slack) — never a
hang and never another exception type.  Codes: a target that breaks the protocol
during login fails the login (5); after login the connection is unusable (4); a hang
is a timeout (8 while logging in, 11 waiting for a response).

The target's PDUs are built and the initiator's parsed by :mod:`iscsikit.testing.rawpdu`
(RFC 7143, struct and crc32c), never by the codec under test: a codec bug cannot hide
on both ends of the wire.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable

import pytest

import iscsikit
from iscsikit import IscsiErr, IscsiError
from iscsikit.testing.hostile import ScriptedTarget, read_pdu
from iscsikit.testing.rawpdu import (
    RESERVED_TAG,
    LoginRequest,
    LoginResponse,
    NopIn,
    TextRequest,
    TextResponse,
    crc32c,
    decode_text,
    encode_text,
    parse,
)

pytestmark = pytest.mark.integration

TIMEOUT = 2.0
SLACK = 1.5
INITIATOR = "iqn.2024-01.test.iscsikit:hostile"

Behaviour = Callable[[socket.socket], None]


def login_response(
    req: LoginRequest, keys: list[tuple[str, str]], **fields: object
) -> LoginResponse:
    """A well-formed final Login Response to ``req`` (overridable field by field)."""
    values: dict[str, object] = {
        "transit": True,
        "csg": req.csg,
        "nsg": 3 if req.csg == 1 else 1,
        "isid": req.isid,
        "tsih": 7,
        "itt": req.itt,
        "statsn": 1,
        "expcmdsn": req.cmdsn,
        "maxcmdsn": req.cmdsn + 8,
        "data": encode_text(keys),
    }
    values.update(fields)
    return LoginResponse(**values)  # type: ignore[arg-type]


OPERATIONAL_ANSWERS = [
    ("HeaderDigest", "None"),
    ("DataDigest", "None"),
    ("TargetPortalGroupTag", "1"),
]


def read_login_wire(conn: socket.socket) -> tuple[LoginRequest, bytes]:
    """The initiator's operational-stage Login Request, parsed and as sent.  A Normal
    session's login starts at the security stage offering AuthMethod=None (as
    open-iscsi's does): that round is answered properly here, so each test misbehaves
    where it means to."""
    wire = read_pdu(conn)
    pdu = parse(wire)
    assert isinstance(pdu, LoginRequest)
    if pdu.csg == 0:
        assert ("AuthMethod", "None") in decode_text(pdu.data)
        conn.sendall(login_response(pdu, [("AuthMethod", "None")], tsih=0, statsn=0).encode())
        wire = read_pdu(conn)
        pdu = parse(wire)
        assert isinstance(pdu, LoginRequest) and pdu.csg == 1
    return pdu, wire


def read_login(conn: socket.socket) -> LoginRequest:
    """The initiator's operational-stage Login Request (see :func:`read_login_wire`)."""
    return read_login_wire(conn)[0]


def answer_login_then(after: Behaviour, answers: list[tuple[str, str]] | None = None) -> Behaviour:
    """Complete a discovery login properly, then misbehave with ``after``."""

    def behaviour(conn: socket.socket) -> None:
        req = read_login(conn)
        conn.sendall(login_response(req, answers or OPERATIONAL_ANSWERS).encode())
        after(conn)

    return behaviour


def reply_to_login(make: Callable[[LoginRequest], bytes], *, then_close: bool = False) -> Behaviour:
    def behaviour(conn: socket.socket) -> None:
        req = read_login(conn)
        conn.sendall(make(req))
        if then_close:
            conn.close()
        else:
            time.sleep(TIMEOUT + SLACK + 1)

    return behaviour


def expect_error(behaviour: Behaviour, code: IscsiErr, *, discovery: bool = True) -> IscsiError:
    with ScriptedTarget(behaviour) as target:
        started = time.monotonic()
        with pytest.raises(IscsiError) as info:
            if discovery:
                iscsikit.discover(target.portal, initiator_name=INITIATOR, timeout=TIMEOUT)
            else:
                iscsikit.login(
                    target.portal,
                    "iqn.2024-01.test.iscsikit:victim",
                    initiator_name=INITIATOR,
                    timeout=TIMEOUT,
                    retries=0,
                )
        elapsed = time.monotonic() - started
    assert elapsed < TIMEOUT + SLACK, f"took {elapsed:.1f} s"
    assert info.value.code is code, f"{info.value!r}: {info.value.code!r}"
    return info.value


def silent(conn: socket.socket) -> None:
    read_pdu(conn)
    time.sleep(TIMEOUT + SLACK + 1)


def test_target_that_never_answers_times_out() -> None:
    expect_error(silent, IscsiErr.TRANS_TIMEOUT)
    expect_error(silent, IscsiErr.TRANS_TIMEOUT, discovery=False)


def test_target_that_closes_at_once() -> None:
    expect_error(lambda conn: conn.close(), IscsiErr.TRANS)


def test_truncated_pdu_then_close() -> None:
    expect_error(
        reply_to_login(lambda req: login_response(req, []).encode()[:30], then_close=True),
        IscsiErr.TRANS,
    )


def test_truncated_pdu_then_silence() -> None:
    expect_error(
        reply_to_login(lambda req: login_response(req, OPERATIONAL_ANSWERS).encode()[:60]),
        IscsiErr.TRANS_TIMEOUT,
    )


def test_slow_drip_is_still_bounded() -> None:
    def drip(conn: socket.socket) -> None:
        req = read_login(conn)
        for byte in login_response(req, OPERATIONAL_ANSWERS).encode():
            conn.sendall(bytes([byte]))
            time.sleep(0.2)

    expect_error(drip, IscsiErr.TRANS_TIMEOUT)


def test_wrong_opcode_for_login() -> None:
    def nop_in(req: LoginRequest) -> bytes:
        return NopIn(itt=req.itt, ttt=RESERVED_TAG, statsn=1, expcmdsn=1, maxcmdsn=1).encode()

    err = expect_error(reply_to_login(nop_in), IscsiErr.LOGIN)
    assert "Login Response" in str(err)


def test_initiator_opcode_from_target() -> None:
    # The initiator's own Login *Request* (opcode 0x03) coming back from the target.
    def echo(conn: socket.socket) -> None:
        conn.sendall(read_login_wire(conn)[1])
        time.sleep(TIMEOUT + SLACK + 1)

    expect_error(echo, IscsiErr.LOGIN)


def test_unknown_opcode() -> None:
    def weird(req: LoginRequest) -> bytes:
        raw = bytearray(login_response(req, OPERATIONAL_ANSWERS).encode())
        raw[0] = 0x3A  # not an iSCSI opcode
        return bytes(raw)

    expect_error(reply_to_login(weird), IscsiErr.LOGIN)


def test_oversized_data_segment_is_refused_without_waiting_for_it() -> None:
    def huge(req: LoginRequest) -> bytes:
        raw = bytearray(login_response(req, []).encode())
        raw[5:8] = (16 * 1024 * 1024 - 1).to_bytes(3, "big")  # DataSegmentLength
        return bytes(raw)  # ...and never send the 16 MiB

    err = expect_error(reply_to_login(huge), IscsiErr.LOGIN)
    assert "segment" in str(err).lower()


def test_garbage_text_keys() -> None:
    for data in (b"\xff\xfe=\x00", b"no-equals-sign\x00", b"=empty-key\x00", b"A" * 70 + b"=1\x00"):
        expect_error(
            reply_to_login(lambda req, d=data: login_response(req, [], data=d).encode()),  # type: ignore[misc]
            IscsiErr.LOGIN,
        )


def test_illegal_negotiation_answer() -> None:
    # We offered HeaderDigest=None only; CRC32C is not a legal answer.
    answers = [("HeaderDigest", "CRC32C"), ("DataDigest", "None")]
    expect_error(reply_to_login(lambda req: login_response(req, answers).encode()), IscsiErr.LOGIN)


def test_endless_login_rounds_are_bounded() -> None:
    def stall(conn: socket.socket) -> None:
        while True:
            req = read_login(conn)
            conn.sendall(login_response(req, [], transit=False, nsg=0).encode())

    expect_error(stall, IscsiErr.LOGIN)


def test_leading_login_with_tsih_zero() -> None:
    expect_error(
        reply_to_login(lambda req: login_response(req, OPERATIONAL_ANSWERS, tsih=0).encode()),
        IscsiErr.LOGIN,
    )


def test_bad_header_digest_after_login() -> None:
    answers = [("HeaderDigest", "CRC32C"), ("DataDigest", "None"), ("TargetPortalGroupTag", "1")]

    def bad_digest(conn: socket.socket) -> None:
        read_pdu(conn, header_digest=True)
        rsp = TextResponse(
            final=True,
            itt=1,
            ttt=RESERVED_TAG,
            statsn=2,
            expcmdsn=2,
            maxcmdsn=9,
            data=encode_text([("TargetName", "iqn.2024-01.x:y")]),
        )
        raw = bytearray(rsp.encode(header_digest=True))
        raw[48] ^= 0xFF  # corrupt the header digest
        conn.sendall(bytes(raw))
        time.sleep(TIMEOUT + SLACK + 1)

    def discovery(conn: socket.socket) -> None:
        req = read_login(conn)
        conn.sendall(login_response(req, answers).encode())
        bad_digest(conn)

    with ScriptedTarget(discovery) as target, pytest.raises(IscsiError) as info:
        iscsikit.discover(
            target.portal, initiator_name=INITIATOR, timeout=TIMEOUT, header_digest="CRC32C"
        )
    assert info.value.code is IscsiErr.TRANS
    assert "digest" in str(info.value).lower()


def test_bad_data_digest_in_full_feature_phase() -> None:
    answers = [("HeaderDigest", "None"), ("DataDigest", "CRC32C"), ("TargetPortalGroupTag", "1")]

    def session(conn: socket.socket) -> None:
        req = read_login(conn)
        conn.sendall(login_response(req, answers, nsg=3).encode())
        nop = NopIn(
            itt=RESERVED_TAG, ttt=RESERVED_TAG, statsn=2, expcmdsn=2, maxcmdsn=9, data=b"payload!"
        )
        raw = bytearray(nop.encode(data_digest=True))
        assert int.from_bytes(raw[-4:], "little") == crc32c(b"payload!")
        raw[-1] ^= 0x01  # corrupt the data digest
        conn.sendall(bytes(raw))
        time.sleep(TIMEOUT + SLACK + 1)

    with ScriptedTarget(session) as target:
        s = iscsikit.login(
            target.portal,
            "iqn.2024-01.test.iscsikit:victim",
            initiator_name=INITIATOR,
            timeout=TIMEOUT,
            data_digest="CRC32C",
        )
        assert s.params["DataDigest"] == "CRC32C"
        with pytest.raises(IscsiError) as info:
            s.ping(timeout=TIMEOUT)
        s.transport_session.close()
    assert info.value.code is IscsiErr.TRANS
    assert "digest" in str(info.value).lower()


def test_sendtargets_endless_continuation_is_bounded() -> None:
    def endless(conn: socket.socket) -> None:
        n = 0
        while True:
            text = parse(read_pdu(conn))
            assert isinstance(text, TextRequest)
            n += 1
            rsp = TextResponse(
                final=False,
                itt=text.itt,
                ttt=n,
                statsn=1 + n,
                expcmdsn=2,
                maxcmdsn=9,
                data=encode_text([("TargetName", f"iqn.2024-01.x:{n}")]),
            )
            conn.sendall(rsp.encode())

    err = expect_error(answer_login_then(endless), IscsiErr.PDU_TIMEOUT)
    assert "timed out" in str(err)


def test_sendtargets_garbage_answer() -> None:
    def garbage(conn: socket.socket) -> None:
        text = parse(read_pdu(conn))
        assert isinstance(text, TextRequest)
        rsp = TextResponse(
            final=True,
            itt=text.itt,
            ttt=RESERVED_TAG,
            statsn=2,
            expcmdsn=2,
            maxcmdsn=9,
            data=encode_text([("TargetAddress", "1.2.3.4:3260,1")]),
        )
        conn.sendall(rsp.encode())
        time.sleep(TIMEOUT + SLACK + 1)

    expect_error(answer_login_then(garbage), IscsiErr.TRANS)
