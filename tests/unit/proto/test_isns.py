"""iSNS codec (iscsikit.proto.isns): header, TLVs, requests byte by byte, response
reassembly, Portal Groups -> targets, and hostile input -> IsnsProtocolError only."""

from __future__ import annotations

import ast
import struct
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import iscsikit.proto.isns as isns_pkg
from iscsikit.errors import IscsiErr, LocalProtocolError, RemoteProtocolError
from iscsikit.proto.isns import (
    Attribute,
    Flags,
    FunctionId,
    Header,
    IsnsClient,
    IsnsProtocolError,
    ResponseAssembler,
    Status,
    decode_attributes,
    discovered_targets,
    encode_request,
    portal_groups,
)
from iscsikit.proto.sendtargets import DiscoveredTarget

INI = "iqn.2004-10.com.example:ini"
TGT = "iqn.2024-01.test.iscsikit:t1"
MAPPED = bytes(10) + b"\xff\xff" + bytes([127, 0, 0, 1])  # tgtd's ::ffff:127.0.0.1
COMPAT = bytes(12) + bytes([127, 0, 0, 1])  # isnsadm's ::7f00:1


def tlv(tag: int, value: bytes) -> bytes:
    return struct.pack(">II", tag, len(value)) + value


def u32(n: int) -> bytes:
    return n.to_bytes(4, "big")


def pdu(
    function: int, xid: int, payload: bytes, *, seq: int = 0, flags: int | None = None
) -> bytes:
    if flags is None:
        flags = Flags.SERVER | Flags.FIRST_PDU | Flags.LAST_PDU
    return struct.pack(">HHHHHH", 1, function, len(payload), flags, xid, seq) + payload


def query_payload(*pgs: tuple[str, bytes, int, bytes], status: int = 0) -> bytes:
    body = u32(status) + tlv(33, u32(1)) + tlv(0, b"")
    for name, ip, port, tag in pgs:
        raw = name.encode() + b"\0"
        raw += b"\0" * (-len(raw) % 4)
        body += tlv(32, raw) + tlv(33, u32(1)) + tlv(16, ip) + tlv(17, u32(port))
        body += tlv(48, raw) + tlv(49, ip) + tlv(50, u32(port)) + tlv(51, tag)
    return body


def test_the_package_is_sans_io() -> None:
    forbidden = {"socket", "select", "selectors", "asyncio", "threading", "time", "os", "io"}
    for path in Path(isns_pkg.__file__).parent.glob("*.py"):
        tree = ast.parse(path.read_text())
        names = {
            a.name.split(".")[0]
            for n in ast.walk(tree)
            if isinstance(n, ast.Import)
            for a in n.names
        } | {
            n.module.split(".")[0]
            for n in ast.walk(tree)
            if isinstance(n, ast.ImportFrom) and n.module
        }
        assert not names & forbidden, path


def test_header_round_trip_and_bytes() -> None:
    h = Header(FunctionId.DEV_ATTR_QRY, 8, Flags.CLIENT | Flags.LAST_PDU, 0x1234, 2)
    assert h.encode() == bytes.fromhex("0001 0002 0008 8800 1234 0002")
    assert Header.decode(h.encode()) == h
    with pytest.raises(IsnsProtocolError, match="truncated"):
        Header.decode(b"\0" * 11)


def test_attributes_encode_padded() -> None:
    assert Attribute.string(32, "abc").encode() == tlv(32, b"abc\0")
    assert Attribute.string(32, "abcd").encode() == tlv(32, b"abcd\0\0\0\0")
    assert Attribute.uint32(33, 2).encode() == tlv(33, u32(2))
    assert Attribute(0).encode() == bytes(8)
    assert Attribute.ip(16, "127.0.0.1").value == MAPPED
    assert Attribute.ip(16, "fe80::1").value == bytes.fromhex("fe80" + "0" * 26 + "01")
    with pytest.raises(LocalProtocolError):
        Attribute.uint32(33, -1)


@pytest.mark.parametrize(
    ("raw", "text"),
    [
        (MAPPED, "127.0.0.1"),
        (COMPAT, "127.0.0.1"),
        (bytes(15) + b"\1", "::1"),
        (bytes(16), "::"),
        (bytes.fromhex("fe800000000000000000000000000001"), "fe80::1"),
    ],
)
def test_ip_values(raw: bytes, text: str) -> None:
    assert Attribute(16, raw).as_ip() == text


def test_attribute_value_checks() -> None:
    with pytest.raises(IsnsProtocolError, match="expected 16"):
        Attribute(16, b"\x7f\0\0\1").as_ip()
    with pytest.raises(IsnsProtocolError, match="expected 4"):
        Attribute(17, b"").as_uint32()
    with pytest.raises(IsnsProtocolError, match="UDP"):
        Attribute(17, u32(0x10000 | 3260)).as_port()
    assert Attribute(17, u32(3260)).as_port() == 3260
    with pytest.raises(IsnsProtocolError, match="UTF-8"):
        Attribute(32, b"\xff\xfe\0\0").as_string()


def test_decode_attributes_rejects_bad_lengths() -> None:
    assert decode_attributes(tlv(1, b"ab\0\0") + tlv(0, b"")) == [
        Attribute(1, b"ab\0\0"),
        Attribute(0, b""),
    ]
    with pytest.raises(IsnsProtocolError, match="truncated"):
        decode_attributes(b"\0\0\0\1\0\0")
    with pytest.raises(IsnsProtocolError, match="multiple of 4"):
        decode_attributes(struct.pack(">II", 1, 3) + b"abc")
    with pytest.raises(IsnsProtocolError, match="past the end"):
        decode_attributes(struct.pack(">II", 1, 8) + b"abcd")


def test_query_request_bytes() -> None:
    client = IsnsClient(INI, first_xid=7)
    data = client.query_request()
    src = tlv(32, INI.encode() + b"\0" * (4 - len(INI) % 4))
    ops = b"".join(tlv(t, b"") for t in (32, 33, 16, 17, 48, 49, 50, 51))
    payload = src + tlv(33, u32(1)) + tlv(0, b"") + ops
    assert data == struct.pack(">HHHHHH", 1, 2, len(payload), 0x8C00, 7, 0) + payload
    assert client.awaiting is FunctionId.DEV_ATTR_QRY


def test_register_and_deregister_bytes() -> None:
    client = IsnsClient(INI, first_xid=1)
    name = INI.encode() + b"\0" * (4 - len(INI) % 4)
    reg = client.register_request()
    payload = tlv(32, name) + tlv(0, b"") + tlv(32, name) + tlv(33, u32(2))
    assert reg == struct.pack(">HHHHHH", 1, 1, len(payload), 0x8C00, 1, 0) + payload
    with pytest.raises(LocalProtocolError, match="outstanding"):
        client.deregister_request()
    assert client.receive_data(pdu(0x8001, 1, u32(0))) is not None
    dereg = client.deregister_request()
    payload = tlv(32, name) + tlv(0, b"") + tlv(32, name)
    assert dereg == struct.pack(">HHHHHH", 1, 4, len(payload), 0x8C00, 2, 0) + payload


def test_scn_requests() -> None:
    client = IsnsClient(INI)
    data = client.scn_register_request(0x1F)
    assert Header.decode(data).function == FunctionId.SCN_REG
    assert data.endswith(tlv(35, u32(0x1F)))
    client.receive_data(pdu(0x8005, Header.decode(data).xid, u32(0)))
    data = client.scn_deregister_request()
    assert Header.decode(data).function == FunctionId.SCN_DEREG
    name = INI.encode() + b"\0" * (4 - len(INI) % 4)
    assert data[12:] == tlv(32, name) + tlv(32, name)  # no delimiter (open-isns)
    with pytest.raises(LocalProtocolError):
        encode_request(FunctionId.DEV_ATTR_QRY, 1, INI, [Attribute(1, bytes(70000))])


def test_query_response_to_targets_mapped_and_compat() -> None:
    client = IsnsClient(INI)
    xid = Header.decode(client.query_request()).xid
    payload = query_payload(
        (TGT, MAPPED, 3260, u32(1)),
        ("iqn.x:compat", COMPAT, 3261, u32(7)),
        ("iqn.x:nopg", MAPPED, 3262, b""),  # NULL PGT: no access through that portal
    )
    response = client.receive_data(pdu(0x8002, xid, payload))
    assert response is not None and response.status is Status.SUCCESSFUL
    assert [pg.tag for pg in portal_groups(response)] == [1, 7, None]
    assert discovered_targets(response) == [
        DiscoveredTarget(TGT, "127.0.0.1", 3260, 1),
        DiscoveredTarget("iqn.x:compat", "127.0.0.1", 3261, 7),
    ]
    assert client.awaiting is None


def test_status_responses() -> None:
    client = IsnsClient(INI)
    xid = Header.decode(client.query_request()).xid
    response = client.receive_data(pdu(0x8002, xid, u32(6)))
    assert response is not None and response.status is Status.SOURCE_UNKNOWN
    assert Status.SOURCE_UNKNOWN.text == "Source unknown"
    assert discovered_targets(response) == []


def test_multi_pdu_reassembly_byte_by_byte() -> None:
    payload = query_payload((TGT, MAPPED, 3260, u32(1)))
    first, second = payload[:20], payload[20:]
    data = pdu(0x8002, 9, first, seq=0, flags=Flags.SERVER | Flags.FIRST_PDU)
    data += pdu(0x8002, 9, second, seq=1, flags=Flags.SERVER | Flags.LAST_PDU)
    asm = ResponseAssembler(FunctionId.DEV_ATTR_QRY, 9)
    results = [asm.receive_data(data[i : i + 1]) for i in range(len(data))]
    assert results[:-1] == [None] * (len(data) - 1)
    assert results[-1] is not None
    assert discovered_targets(results[-1]) == [DiscoveredTarget(TGT, "127.0.0.1", 3260, 1)]


@pytest.mark.parametrize(
    ("data", "match"),
    [
        (pdu(0x8001, 5, u32(0)), "function id"),
        (pdu(0x0002, 5, u32(0)), "function id"),
        (pdu(0x8002, 6, u32(0)), "transaction id"),
        (pdu(0x8002, 5, u32(0), seq=1), "sequence id"),
        (pdu(0x8002, 5, u32(0), flags=Flags.SERVER | Flags.LAST_PDU), "first-PDU"),
        (struct.pack(">HHHHHH", 2, 0x8002, 4, 0x4C00, 5, 0) + u32(0), "version"),
        (struct.pack(">HHHHHH", 1, 0x8002, 3, 0x4C00, 5, 0) + b"abc", "multiple of 4"),
        (pdu(0x8002, 5, b""), "without a status"),
        (pdu(0x8002, 5, u32(99)), "status 99"),
        (pdu(0x8002, 5, u32(0) + b"\0\0\0\x30\0\0\0\x40"), "past the end"),
        (pdu(0x8002, 5, u32(0)) + b"\0", "after the last PDU"),
        (pdu(0x8002, 5, u32(0), flags=0x4C00 | Flags.AUTH), "authentication"),
    ],
)
def test_hostile_responses(data: bytes, match: str) -> None:
    asm = ResponseAssembler(FunctionId.DEV_ATTR_QRY, 5)
    with pytest.raises(IsnsProtocolError, match=match) as info:
        asm.receive_data(data)
    assert isinstance(info.value, RemoteProtocolError)
    assert info.value.code == IscsiErr.ISNS_QUERY


def test_oversized_message_is_refused() -> None:
    asm = ResponseAssembler(FunctionId.DEV_ATTR_QRY, 1, max_message=64)
    chunk = pdu(0x8002, 1, u32(0) + bytes(60), flags=Flags.SERVER | Flags.FIRST_PDU)
    more = pdu(0x8002, 1, bytes(8), seq=1, flags=Flags.SERVER)
    with pytest.raises(IsnsProtocolError, match="over 64 bytes"):
        asm.receive_data(chunk + more)


def test_closed_connection_and_unsolicited_data() -> None:
    client = IsnsClient(INI)
    with pytest.raises(IsnsProtocolError, match="no request"):
        client.receive_data(b"x")
    client.query_request()
    with pytest.raises(IsnsProtocolError, match="closed"):
        client.receive_data(b"")
    with pytest.raises(LocalProtocolError):
        IsnsClient("")


def test_bad_pg_values() -> None:
    client = IsnsClient(INI)
    xid = Header.decode(client.query_request()).xid
    r = client.receive_data(pdu(0x8002, xid, query_payload((TGT, MAPPED, 3260, u32(70000)))))
    assert r is not None
    with pytest.raises(IsnsProtocolError, match="over 65535"):
        discovered_targets(r)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200), st.integers(0, 0xFFFF))
def test_any_bytes_raise_only_typed_errors(data: bytes, xid: int) -> None:
    framed = pdu(0x8002, xid, data[: len(data) - len(data) % 4])
    for blob in (data, framed):
        try:
            response = ResponseAssembler(FunctionId.DEV_ATTR_QRY, xid).receive_data(blob)
            if response is not None:
                discovered_targets(response)
        except IsnsProtocolError:
            pass
