"""SCN / ESI messages from an iSNS server, byte by byte (RFC 4171 §5.6.5.8, §5.6.5.13,
§5.7.5.8, §5.7.5.13), and the entity registration discoveryd sends."""

from __future__ import annotations

import struct

import pytest

from iscsikit.proto.isns import (
    FunctionId,
    IsnsClient,
    IsnsProtocolError,
    ScnBits,
    ServerMessageReader,
    Status,
    Tag,
    decode_attributes,
    encode_esi_response,
    encode_scn_response,
    parse_esi,
    parse_scn,
)

INI = "iqn.2026-12.org.example:ini"
TGT = "iqn.2026-12.org.example:tgt1"


def tlv(tag: int, value: bytes) -> bytes:
    value += b"\0" * (-len(value) % 4)
    return struct.pack(">II", tag, len(value)) + value


def name(text: str) -> bytes:
    return tlv(32, text.encode() + b"\0")


def pdu(function: int, payload: bytes, *, xid: int = 7, flags: int = 0x4C00, seq: int = 0) -> bytes:
    # flags 0x4C00: sender is the server, first and last PDU
    return struct.pack(">HHHHHH", 1, function, len(payload), flags, xid, seq) + payload


SCN_PAYLOAD = (
    name(INI)
    + tlv(4, (1_765_000_000).to_bytes(8, "big"))
    + tlv(35, (0x08).to_bytes(4, "big"))
    + name(TGT)
)


def test_scn_parsed_from_bytes() -> None:
    [request] = ServerMessageReader().receive_data(pdu(0x0008, SCN_PAYLOAD))
    scn = parse_scn(request)
    assert (scn.xid, scn.destination, scn.timestamp) == (7, INI, 1_765_000_000)
    assert [(c.bits, c.name) for c in scn.changes] == [(ScnBits.OBJECT_ADDED, TGT)]


def test_scn_two_changes_and_management_dd_ids_skipped() -> None:
    payload = (
        SCN_PAYLOAD
        + tlv(35, (0x30).to_bytes(4, "big"))
        + name(TGT + "b")
        + tlv(2065, (3).to_bytes(4, "big"))  # DD_ID after a management SCN's name
    )
    scn = parse_scn(ServerMessageReader().receive_data(pdu(8, payload))[0])
    assert [c.name for c in scn.changes] == [TGT, TGT + "b"]
    assert scn.changes[1].bits == ScnBits.OBJECT_REMOVED | ScnBits.MANAGEMENT_REGISTRATION


def test_reader_reassembles_pdus_split_anywhere() -> None:
    half = len(SCN_PAYLOAD) // 2 // 4 * 4
    data = pdu(8, SCN_PAYLOAD[:half], flags=0x4400) + pdu(
        8, SCN_PAYLOAD[half:], flags=0x4800, seq=1
    )
    reader = ServerMessageReader()
    got = []
    for i in range(len(data)):  # one byte at a time
        got += reader.receive_data(data[i : i + 1])
    assert len(got) == 1 and parse_scn(got[0]).changes[0].name == TGT


@pytest.mark.parametrize(
    ("data", "words"),
    [
        (pdu(0x0002, b""), "function id 0x0002"),  # a query, from the server
        (pdu(0x8008, b""), "function id 0x8008"),  # a response nobody asked for
        (pdu(8, SCN_PAYLOAD, flags=0x4800), "first-PDU flag"),
        (pdu(8, SCN_PAYLOAD, seq=3), "sequence id 3"),
        (struct.pack(">HHHHHH", 1, 8, 6, 0x4C00, 1, 0) + bytes(6), "length 6"),
        (struct.pack(">HHHHHH", 2, 8, 0, 0x4C00, 1, 0), "version 2"),
        (struct.pack(">HHHHHH", 1, 8, 0x10000 - 4, 0x4C00, 1, 0), "over"),
    ],
)
def test_reader_refuses_bad_messages(data: bytes, words: str) -> None:
    with pytest.raises(IsnsProtocolError, match=words):
        ServerMessageReader(max_message=4096).receive_data(data)


@pytest.mark.parametrize(
    ("payload", "words"),
    [
        (tlv(4, bytes(8)), "destination"),
        (name(INI), "destination"),
        (name(INI) + tlv(4, bytes(4)), "timestamp"),
        (name(INI) + tlv(4, bytes(8)) + name(TGT), "where a bitmap"),
        (name(INI) + tlv(4, bytes(8)) + tlv(35, bytes(4)), "without the node"),
    ],
)
def test_malformed_scn_is_a_protocol_error(payload: bytes, words: str) -> None:
    [request] = ServerMessageReader().receive_data(pdu(8, payload))
    with pytest.raises(IsnsProtocolError, match=words):
        parse_scn(request)


def test_scn_response_bytes() -> None:
    data = encode_scn_response(0x1234, INI)
    assert data[:12] == struct.pack(">HHHHHH", 1, 0x8008, len(data) - 12, 0x8C00, 0x1234, 0)
    assert data[12:16] == bytes(4)
    assert data[16:] == name(INI)


def test_esi_answered_with_its_attributes() -> None:
    payload = (
        tlv(1, b"ini-entity\0")
        + tlv(16, bytes(10) + b"\xff\xff\x7f\0\0\1")
        + tlv(17, (3260).to_bytes(4, "big"))
    )
    inquiry = parse_esi(ServerMessageReader().receive_data(pdu(0x000D, payload, xid=9))[0])
    data = encode_esi_response(inquiry)
    assert data[:12] == struct.pack(">HHHHHH", 1, 0x800D, 4 + len(payload), 0x8C00, 9, 0)
    assert data[12:16] == bytes(4) and data[16:] == payload


def test_entity_registration_carries_portal_with_scn_port() -> None:
    client = IsnsClient(INI, first_xid=5)
    data = client.register_entity_request("ini-entity", "127.0.0.1", 3260, 41000)
    _v, function, _len, flags, xid, _seq = struct.unpack_from(">HHHHHH", data)
    assert (function, flags & 0x1000, xid) == (FunctionId.DEV_ATTR_REG, 0x1000, 5)  # replace
    attrs = decode_attributes(data[12:])
    tags = [a.tag for a in attrs]
    assert tags == [
        Tag.ISCSI_NAME, Tag.ENTITY_IDENTIFIER, Tag.DELIMITER, Tag.ENTITY_IDENTIFIER,
        Tag.ENTITY_PROTOCOL, Tag.PORTAL_IP_ADDRESS, Tag.PORTAL_TCP_UDP_PORT, Tag.SCN_PORT,
        Tag.ISCSI_NAME, Tag.ISCSI_NODE_TYPE,
    ]  # fmt: skip
    assert attrs[5].value == bytes(10) + b"\xff\xff\x7f\0\0\1"
    assert attrs[6].as_uint32() == 3260
    assert attrs[7].as_uint32() == 41000  # SCN port, TCP (no UDP bit)
    assert attrs[8].as_string() == INI and attrs[9].as_uint32() == 2
    assert client.awaiting is FunctionId.DEV_ATTR_REG


def test_entity_deregistration() -> None:
    data = IsnsClient(INI).deregister_entity_request("ini-entity")
    assert struct.unpack_from(">H", data, 2)[0] == FunctionId.DEV_DEREG
    attrs = decode_attributes(data[12:])
    assert [a.tag for a in attrs] == [Tag.ISCSI_NAME, Tag.DELIMITER, Tag.ENTITY_IDENTIFIER]
    assert attrs[2].as_string() == "ini-entity"


def test_scn_response_with_failure_has_no_name() -> None:
    assert encode_scn_response(1, INI, Status.SCN_EVENT_REJECTED)[12:] == (16).to_bytes(4, "big")


def test_default_scn_bitmap_is_open_iscsis() -> None:
    assert int(ScnBits.initiator_default()) == 0x5C
