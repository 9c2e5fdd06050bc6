"""The PDU codec (iscsikit.proto.pdu): golden vectors, round trips, and refusals."""

from __future__ import annotations

import dataclasses
import struct
from typing import TYPE_CHECKING

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from iscsikit.errors import (
    DigestError,
    InvalidParameterError,
    LocalProtocolError,
    RemoteProtocolError,
)
from iscsikit.proto.constants import (
    BHS_LEN,
    INITIATOR_OPCODES,
    MAX_DATA_SEGMENT_LENGTH,
    RESERVED_TAG,
    TARGET_OPCODES,
    AhsType,
    Opcode,
    RejectReason,
    ScsiStatus,
    Stage,
    TmfFunction,
)
from iscsikit.proto.digest import digest_bytes
from iscsikit.proto.pdu import (
    PDU_TYPES,
    R2T,
    AsyncMessage,
    DataIn,
    DataOut,
    LoginRequest,
    LoginResponse,
    LogoutRequest,
    LogoutResponse,
    NopIn,
    NopOut,
    Pdu,
    Reject,
    ScsiCommand,
    ScsiResponse,
    SnackRequest,
    TaskMgmtRequest,
    TaskMgmtResponse,
    TextRequest,
    TextResponse,
    decode_pdu,
    encode_pdu,
    field_to_lun,
    lun_to_field,
    parse_bhs_lengths,
    pdu_length,
)

if TYPE_CHECKING:
    from conftest import PduStrategies, Vector

ALL_CLASSES = sorted(PDU_TYPES.values(), key=lambda cls: cls.opcode)


# --- golden vectors ---------------------------------------------------------------


def test_vector_decodes_to_its_fields(vector: Vector) -> None:
    pdu = decode_pdu(vector.raw, header_digest=vector.header_digest, data_digest=vector.data_digest)
    assert type(pdu) is vector.cls
    assert pdu == vector.expected()
    # The file lists every field, so nothing is checked by accident of a default.
    assert set(vector.fields) == {f.name for f in dataclasses.fields(pdu)}


def test_vector_fields_encode_to_its_bytes(vector: Vector) -> None:
    raw = encode_pdu(
        vector.expected(), header_digest=vector.header_digest, data_digest=vector.data_digest
    )
    assert raw.hex() == vector.raw.hex()


def test_every_pdu_type_has_a_golden_vector(all_vectors: list[Vector]) -> None:
    assert {v.cls for v in all_vectors} == set(PDU_TYPES.values())


def test_real_captures_cover_the_exchanges_we_can_provoke(all_vectors: list[Vector]) -> None:
    captured = {v.cls for v in all_vectors if v.captured}
    assert captured >= {
        LoginRequest,
        LoginResponse,
        TextRequest,
        TextResponse,
        LogoutRequest,
        LogoutResponse,
        ScsiCommand,
        ScsiResponse,
        DataIn,
        DataOut,
        R2T,
        NopOut,
        NopIn,
        TaskMgmtRequest,
        TaskMgmtResponse,
    }
    assert any(v.captured and v.header_digest for v in all_vectors)


def test_rfc_7143_appendix_b4_read10_pdu_decodes() -> None:
    # The iSCSI SCSI Read (10) command PDU of RFC 7143 App. B.4, whose CRC is
    # 56 3a 96 d9: here with that CRC appended as its header digest.
    bhs = bytes.fromhex(
        "01c00000 00000000 00000000 00000000 14000000 00000400 00000014 00000018"
        "28000000 00000000 02000000 00000000"
    )
    pdu = decode_pdu(bhs + bytes.fromhex("563a96d9"), header_digest=True)
    assert pdu == ScsiCommand(
        final=True,
        read=True,
        attr=0,
        itt=0x14000000,
        expected_data_transfer_length=1024,
        cmdsn=0x14,
        expstatsn=0x18,
        cdb=bytes.fromhex("28000000000000000200000000000000"),
    )


# --- the registry -----------------------------------------------------------------


def test_registry_holds_all_eighteen_opcodes() -> None:
    assert set(PDU_TYPES) == set(Opcode)
    assert set(Opcode) == INITIATOR_OPCODES | TARGET_OPCODES
    assert not INITIATOR_OPCODES & TARGET_OPCODES
    for opcode, cls in PDU_TYPES.items():
        assert cls.opcode == opcode
        assert encode_pdu(cls())[0] & 0x3F == opcode


@pytest.mark.parametrize("cls", ALL_CLASSES, ids=lambda cls: cls.__name__)
def test_classes_are_slotted_keyword_dataclasses_with_defaults(cls: type[Pdu]) -> None:
    assert dataclasses.is_dataclass(cls)
    assert not hasattr(cls(), "__dict__")
    for field in dataclasses.fields(cls):
        assert field.kw_only
        assert field.default is not dataclasses.MISSING
    assert cls().data == b""


def test_keyword_construction_matches_the_brief() -> None:
    req = LoginRequest(isid=b"\x40\0\0\x01\0\0", data=b"InitiatorName=iqn.x\0")
    assert (req.isid, req.tsih, req.transit) == (b"\x40\0\0\x01\0\0", 0, False)
    assert TextRequest().ttt == RESERVED_TAG
    assert NopOut().ttt == RESERVED_TAG
    assert LogoutRequest().immediate
    with pytest.raises(TypeError):
        LoginRequest(True)  # type: ignore[call-arg]


# --- round trips ------------------------------------------------------------------


@pytest.mark.parametrize("cls", ALL_CLASSES, ids=lambda cls: cls.__name__)
@given(data=st.data(), header_digest=st.booleans(), data_digest=st.booleans())
@settings(max_examples=40, deadline=None)
def test_round_trip(
    pdu_strategies: type[PduStrategies],
    cls: type[Pdu],
    data: st.DataObject,
    header_digest: bool,
    data_digest: bool,
) -> None:
    pdu = data.draw(pdu_strategies.of(cls))
    raw = encode_pdu(pdu, header_digest=header_digest, data_digest=data_digest)
    opcode, total_ahs, dsl = parse_bhs_lengths(raw)
    assert (opcode, dsl) == (cls.opcode, len(pdu.data))
    assert len(raw) == pdu_length(
        total_ahs, dsl, header_digest=header_digest, data_digest=data_digest
    )
    assert decode_pdu(raw, header_digest=header_digest, data_digest=data_digest) == pdu


def test_login_request_always_has_the_immediate_bit() -> None:
    assert encode_pdu(LoginRequest())[0] == 0x43


@pytest.mark.parametrize(
    ("pdu", "byte1"),
    [
        (NopOut(), 0x80),
        (TaskMgmtRequest(function=TmfFunction.TARGET_COLD_RESET), 0x87),
        (LogoutRequest(reason=2), 0x82),
        (SnackRequest(type=3), 0x83),
        (NopIn(), 0x80),
        (TaskMgmtResponse(), 0x80),
        (LogoutResponse(), 0x80),
        (R2T(), 0x80),
        (AsyncMessage(), 0x80),
        (Reject(), 0x80),
        (ScsiResponse(), 0x80),
    ],
)
def test_bits_the_rfc_fixes_at_one_are_sent(pdu: Pdu, byte1: int) -> None:
    assert encode_pdu(pdu)[1] == byte1


def test_login_flags_layout() -> None:
    raw = encode_pdu(LoginRequest(transit=True, csg=Stage.OPERATIONAL, nsg=Stage.FULL_FEATURE))
    assert raw[1] == 0x87  # T | CSG=1 << 2 | NSG=3 (RFC 7143 §11.12)
    assert encode_pdu(LoginResponse(cont=True, csg=0, nsg=1))[1] == 0x41


def test_short_cdb_is_zero_padded_in_the_bhs() -> None:
    raw = encode_pdu(ScsiCommand(cdb=bytes.fromhex("00000000 0000")))
    assert raw[32:48] == bytes(16)
    assert decode_pdu(raw).cdb == bytes(16)  # type: ignore[attr-defined]


def test_extended_cdb_ahs_layout() -> None:
    cdb = bytes(range(1, 19))  # 18 bytes: 2 spill into the AHS
    raw = encode_pdu(ScsiCommand(cdb=cdb))
    assert raw[4] == 2  # TotalAHSLength: two 4-byte words
    # AHSLength = CDB length - 15, AHSType 1, reserved, the spill, 2 bytes of padding.
    assert raw[48:] == bytes([0, 3, AhsType.EXTENDED_CDB, 0, 17, 18, 0, 0])
    assert raw[32:48] == cdb[:16]


def test_sense_data_property() -> None:
    sense = bytes.fromhex("700006000000000a0000000029000000")
    rsp = ScsiResponse(status=ScsiStatus.CHECK_CONDITION, data=b"\x00\x10" + sense + b"resp")
    assert rsp.sense_data == sense
    assert ScsiResponse().sense_data == b""


# --- encode refusals --------------------------------------------------------------


@pytest.mark.parametrize(
    "pdu",
    [
        NopOut(itt=2**32),
        NopOut(cmdsn=-1),
        NopOut(lun=2**64),
        LoginRequest(isid=b"12345"),
        LoginRequest(isid=b"1234567"),
        LoginRequest(csg=4),
        LoginRequest(nsg=-1),
        LoginRequest(transit=True, cont=True),
        LoginResponse(transit=True, cont=True),
        LoginResponse(status_class=256),
        LoginRequest(tsih=0x10000),
        TextRequest(final=True, cont=True),
        TextResponse(final=True, cont=True),
        ScsiCommand(attr=8),
        ScsiCommand(cdb=bytes(16 + 1021)),
        ScsiCommand(bidi_read_length=2**32),
        ScsiCommand(bidi_read_length=-1),
        TaskMgmtRequest(function=0x80),
        LogoutRequest(reason=0x80),
        SnackRequest(type=16),
        ScsiResponse(overflow=True, underflow=True),
        ScsiResponse(bidi_overflow=True, bidi_underflow=True),
        DataIn(final=False, status_present=True),
        AsyncMessage(parameter1=0x10000),
        LogoutResponse(time2wait=-1),
        R2T(data=b"x"),
        TaskMgmtRequest(data=b"x"),
        TaskMgmtResponse(data=b"x"),
        LogoutRequest(data=b"x"),
        LogoutResponse(data=b"x"),
        SnackRequest(data=b"x"),
        NopOut(itt="1"),  # type: ignore[arg-type]
    ],
    ids=repr,
)
def test_unencodable_pdus_raise_local_protocol_error(pdu: Pdu) -> None:
    with pytest.raises(LocalProtocolError):
        encode_pdu(pdu)


def test_data_segment_over_2_24_is_refused() -> None:
    with pytest.raises(LocalProtocolError, match="2\\*\\*24"):
        encode_pdu(DataOut(data=bytes(MAX_DATA_SEGMENT_LENGTH + 1)))


def test_largest_cdb_that_fits_is_accepted() -> None:
    # 1020 bytes of AHS: 4 header bytes + 1016 bytes of spill.
    pdu = ScsiCommand(cdb=bytes(range(256)) * 4 + bytes(16 + 1016 - 1024))
    assert decode_pdu(encode_pdu(pdu)) == pdu


# --- decode refusals --------------------------------------------------------------


def _reason(exc: pytest.ExceptionInfo[RemoteProtocolError]) -> int | None:
    return exc.value.reject_reason


@pytest.mark.parametrize("opcode", [0x07, 0x1C, 0x1F, 0x27, 0x30, 0x3C, 0x3E])
def test_unknown_opcode_is_command_not_supported(opcode: int) -> None:
    raw = bytearray(encode_pdu(NopOut()))
    raw[0] = opcode
    with pytest.raises(RemoteProtocolError) as exc:
        decode_pdu(bytes(raw))
    assert _reason(exc) == RejectReason.COMMAND_NOT_SUPPORTED


def _with_lengths(raw: bytes, ahs_words: int, dsl: int, tail: bytes) -> bytes:
    return raw[:4] + struct.pack(">I", ahs_words << 24 | dsl) + raw[8:48] + tail


@pytest.mark.parametrize("cls", [c for c in ALL_CLASSES if c is not ScsiCommand])
def test_ahs_on_a_pdu_that_cannot_carry_one(cls: type[Pdu]) -> None:
    raw = _with_lengths(encode_pdu(cls()), 2, 0, bytes.fromhex("00050200 00001000"))
    with pytest.raises(RemoteProtocolError) as exc:
        decode_pdu(raw)
    assert _reason(exc) == RejectReason.INVALID_PDU_FIELD


@pytest.mark.parametrize("cls", [c for c in ALL_CLASSES if not c.DATA_ALLOWED])
def test_data_segment_on_a_pdu_that_has_none(cls: type[Pdu]) -> None:
    raw = _with_lengths(encode_pdu(cls()), 0, 4, b"abcd")
    with pytest.raises(RemoteProtocolError) as exc:
        decode_pdu(raw)
    assert _reason(exc) == RejectReason.INVALID_PDU_FIELD


@pytest.mark.parametrize(
    "ahs",
    [
        bytes.fromhex("00090100 01020304"),  # AHSLength 9 overruns 8 bytes
        bytes.fromhex("00010300 00000000"),  # unknown AHS type 3
        bytes.fromhex("00040200 00000000"),  # bidi AHS with the wrong length
        bytes.fromhex("00050200 00001000 00050200 00001000"),  # bidi AHS twice
        bytes.fromhex("00020100 aa000000 00020100 bb000000"),  # extended CDB twice
        bytes.fromhex("00010100"),  # extended CDB AHS carrying no CDB byte
        bytes.fromhex("00000000"),  # AHS type 0
    ],
)
def test_malformed_scsi_command_ahs(ahs: bytes) -> None:
    raw = _with_lengths(encode_pdu(ScsiCommand()), len(ahs) // 4, 0, ahs)
    with pytest.raises(RemoteProtocolError) as exc:
        decode_pdu(raw)
    assert _reason(exc) == RejectReason.INVALID_PDU_FIELD


def test_scsi_command_ahs_in_either_order() -> None:
    cdb = bytes(range(20))
    ahs = bytes.fromhex("00050200 00000200") + bytes.fromhex("00050100") + cdb[16:]
    raw = _with_lengths(encode_pdu(ScsiCommand(cdb=cdb[:16])), len(ahs) // 4, 0, ahs)
    pdu = decode_pdu(raw)
    assert isinstance(pdu, ScsiCommand)
    assert (pdu.cdb, pdu.bidi_read_length) == (cdb, 0x200)


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (encode_pdu(LoginRequest())[:47], RejectReason.PROTOCOL_ERROR),
        (encode_pdu(TextRequest(data=b"a=b\0"))[:-1], RejectReason.PROTOCOL_ERROR),
        (encode_pdu(NopIn()) + b"\0\0\0\0", RejectReason.PROTOCOL_ERROR),
        (b"", RejectReason.PROTOCOL_ERROR),
    ],
)
def test_wrong_length_buffers(raw: bytes, reason: int) -> None:
    with pytest.raises(RemoteProtocolError) as exc:
        decode_pdu(raw)
    assert _reason(exc) == reason


@pytest.mark.parametrize(
    ("pdu", "byte1"),
    [
        (LoginRequest(), 0xC0),
        (LoginResponse(), 0xC1),
        (TextRequest(), 0xC0),
        (TextResponse(), 0xC0),
        (ScsiResponse(), 0x86),
        (ScsiResponse(), 0x98),
        (DataIn(), 0x01),
    ],
)
def test_illegal_flag_combinations_are_protocol_errors(pdu: Pdu, byte1: int) -> None:
    raw = bytearray(encode_pdu(pdu))
    raw[1] = byte1
    with pytest.raises(RemoteProtocolError) as exc:
        decode_pdu(bytes(raw))
    assert _reason(exc) == RejectReason.PROTOCOL_ERROR


def test_reserved_bits_are_ignored() -> None:
    raw = bytearray(encode_pdu(NopIn(itt=7, data=b"xyz")))
    raw[0] |= 0xC0  # the reserved bit and the I bit, meaningless on a NOP-In
    raw[2:4] = b"\xff\xff"
    raw[36:48] = b"\xee" * 12
    assert decode_pdu(bytes(raw)) == NopIn(itt=7, data=b"xyz")


def test_header_digest_mismatch() -> None:
    raw = bytearray(encode_pdu(NopIn(), header_digest=True))
    raw[-1] ^= 1
    with pytest.raises(DigestError) as exc:
        decode_pdu(bytes(raw), header_digest=True)
    assert exc.value.reject_reason is None


def test_data_digest_mismatch() -> None:
    raw = bytearray(encode_pdu(NopIn(data=b"abcde"), header_digest=True, data_digest=True))
    raw[-6] ^= 0x80  # a padding byte: padding is covered by the digest (RFC 7143 §13.1)
    with pytest.raises(DigestError) as exc:
        decode_pdu(bytes(raw), header_digest=True, data_digest=True)
    assert exc.value.reject_reason == RejectReason.DATA_DIGEST_ERROR


def test_no_data_digest_without_data() -> None:
    assert len(encode_pdu(NopIn(), data_digest=True)) == BHS_LEN
    raw = encode_pdu(NopIn(data=b"abcd"), header_digest=True, data_digest=True)
    assert raw[-4:] == digest_bytes(b"abcd")
    assert raw[48:52] == digest_bytes(raw[:48])


# --- helpers ----------------------------------------------------------------------


def test_parse_bhs_lengths() -> None:
    raw = encode_pdu(ScsiCommand(cdb=bytes(20), data=b"12345"))
    assert parse_bhs_lengths(raw) == (Opcode.SCSI_COMMAND, 8, 5)
    assert parse_bhs_lengths(b"\0" * 4 + raw, 4) == (Opcode.SCSI_COMMAND, 8, 5)
    assert parse_bhs_lengths(b"\xff\0\0\0\xff\xff\xff\xff") == (0x3F, 1020, 2**24 - 1)
    with pytest.raises(LocalProtocolError):
        parse_bhs_lengths(b"\0" * 7)


@pytest.mark.parametrize(
    ("lun", "field"),
    [
        (0, 0),
        (1, 0x0001_0000_0000_0000),
        (255, 0x00FF_0000_0000_0000),
        (256, 0x4100_0000_0000_0000),
        (300, 0x412C_0000_0000_0000),
        (16383, 0x7FFF_0000_0000_0000),
    ],
)
def test_lun_helpers(lun: int, field: int) -> None:
    assert lun_to_field(lun) == field
    assert field_to_lun(field) == lun


def test_field_to_lun_accepts_flat_addressing_of_small_luns() -> None:
    assert field_to_lun(0x4005_0000_0000_0000) == 5


@pytest.mark.parametrize("lun", [-1, 16384, 2**40])
def test_lun_to_field_range(lun: int) -> None:
    with pytest.raises(InvalidParameterError):
        lun_to_field(lun)


@pytest.mark.parametrize(
    "field",
    [0x0101_0000_0000_0000, 0x8001_0000_0000_0000, 0x0001_0000_0000_0001, -1, 2**64],
)
def test_field_to_lun_refuses_other_structures(field: int) -> None:
    with pytest.raises(InvalidParameterError):
        field_to_lun(field)


@given(st.integers(0, 16383))
def test_lun_helpers_round_trip(lun: int) -> None:
    assert field_to_lun(lun_to_field(lun)) == lun
