"""Sense decoding, iSCSI sense framing, ScsiCommandError and the retry policy."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from iscsikit.errors import IscsiErr, IscsiError
from iscsikit.scsi import cdb
from iscsikit.scsi.asc import asc_text
from iscsikit.scsi.buffer import ScsiParseError
from iscsikit.scsi.errors import ScsiCommandError, is_unit_attention, retryable
from iscsikit.scsi.sense import Sense, SenseKey, decode_iscsi_sense, decode_sense
from iscsikit.scsi.status import ScsiStatus, status_name

# SCSI Response data segments captured from tgt 1.0.85 answering libiscsi 1.19.0 on
# loopback (SenseLength 0x0012, then fixed-format sense).
TGT_POWER_ON_UA = bytes.fromhex("0012700006000000000a00000000290000000000")
TGT_LBA_OUT_OF_RANGE = bytes.fromhex("0012700005000000000a00000000210000000000")
TGT_INVALID_FIELD_IN_CDB = bytes.fromhex("0012700005000000000a00000000240000000000")


def test_captured_unit_attention() -> None:
    sense = decode_iscsi_sense(TGT_POWER_ON_UA)
    assert sense is not None
    assert (sense.response_code, sense.key, sense.asc, sense.ascq) == (0x70, 6, 0x29, 0)
    assert sense.information is None  # VALID bit clear
    assert sense.command_specific == 0
    assert sense.sense_key_specific is None
    assert not sense.deferred and not sense.descriptor_format
    assert sense.description == "UNIT ATTENTION: power on, reset, or bus device reset occurred"
    assert is_unit_attention(sense)
    assert retryable(ScsiStatus.CHECK_CONDITION, sense)


def test_captured_illegal_requests() -> None:
    lba = decode_iscsi_sense(TGT_LBA_OUT_OF_RANGE)
    assert lba is not None and lba.key == SenseKey.ILLEGAL_REQUEST
    assert lba.description == "ILLEGAL REQUEST: logical block address out of range"
    field = decode_iscsi_sense(TGT_INVALID_FIELD_IN_CDB)
    assert field is not None and field.asc_text == "invalid field in CDB"
    assert not retryable(ScsiStatus.CHECK_CONDITION, field)


def test_fixed_format_all_fields() -> None:
    # SPC-4 Table 45: VALID|70, obsolete, FILEMARK|EOM|ILI|KEY=3, INFORMATION 0x01020304,
    # ADDITIONAL SENSE LENGTH 10, COMMAND-SPECIFIC 0xAABBCCDD, ASC 11, ASCQ 00, FRU 7,
    # SKSV|... = 80 00 05.
    raw = bytes.fromhex("f000e3 01020304 0a aabbccdd 11 00 07 800005")
    sense = decode_sense(raw)
    assert sense.key == SenseKey.MEDIUM_ERROR
    assert (sense.information, sense.command_specific) == (0x01020304, 0xAABBCCDD)
    assert sense.filemark and sense.eom and sense.ili
    assert sense.fru_code == 7
    assert sense.sense_key_specific == bytes.fromhex("800005")
    assert sense.description == "MEDIUM ERROR: unrecovered read error"
    assert sense.raw == raw


def test_deferred_and_field_pointer() -> None:
    # 0x71 deferred; ILLEGAL REQUEST 24/00 with SKSV, C/D=1, BPV=1 bit 3, field byte 1.
    raw = bytes.fromhex("71 00 05 00000000 0a 00000000 24 00 00 cb0001")
    sense = decode_sense(raw)
    assert sense.deferred
    assert sense.field_pointer == (True, 1, 3)
    assert sense.description == (
        "deferred error, ILLEGAL REQUEST: invalid field in CDB (CDB byte 1 bit 3)"
    )


def test_descriptor_format() -> None:
    # SPC-4 Table 26: 72, KEY 3, ASC 11, ASCQ 00, rsvd(3), ADDITIONAL SENSE LENGTH 0x28;
    # information descriptor (00 0a, VALID 80, rsvd, 8-byte INFORMATION);
    # command-specific (01 0a, rsvd(2), 8 bytes); sense key specific (02 06, rsvd(2),
    # SKSV 80 00 10, rsvd); block commands (05 02, rsvd, ILI 20).
    raw = bytes.fromhex(
        "72031100 000000 24"
        "000a 8000 0000000123456789"
        "010a 0000 00000000deadbeef"
        "0206 0000 801000 00"
        "0502 00 20"
    )
    assert len(raw) == 8 + 0x24
    sense = decode_sense(raw)
    assert sense.descriptor_format and not sense.deferred
    assert sense.key == SenseKey.MEDIUM_ERROR
    assert sense.information == 0x123456789
    assert sense.command_specific == 0xDEADBEEF
    assert sense.sense_key_specific == bytes.fromhex("801000")
    assert sense.ili
    assert [d.type for d in sense.descriptors] == [0, 1, 2, 5]


def test_descriptor_truncated_and_deferred() -> None:
    # 0x73 deferred; ADDITIONAL SENSE LENGTH promises 12 but only 5 bytes of one
    # information descriptor arrived: decode the header, keep the partial descriptor.
    sense = decode_sense(bytes.fromhex("73062a09000000 0c 000a800000"))
    assert sense.deferred and sense.key == SenseKey.UNIT_ATTENTION
    assert sense.description == "deferred error, UNIT ATTENTION: capacity data has changed"
    assert sense.information is None
    assert sense.descriptors[0].data == bytes.fromhex("800000")


def test_short_fixed_sense() -> None:
    assert decode_sense(b"\x70").key == SenseKey.NO_SENSE
    short = decode_sense(bytes.fromhex("700002"))
    assert (short.key, short.asc, short.ascq) == (SenseKey.NOT_READY, 0, 0)
    assert short.command_specific is None
    # ADDITIONAL SENSE LENGTH 0 hides the ASC even if bytes follow (as Linux does).
    assert decode_sense(bytes.fromhex("70000600000000 00 00000000 2900")).asc == 0


def test_not_sense() -> None:
    with pytest.raises(ScsiParseError):
        decode_sense(b"")
    with pytest.raises(ScsiParseError) as info:
        decode_sense(b"\x7f\x00")
    assert isinstance(info.value, ValueError)
    assert "0x7f" in str(info.value)


def test_iscsi_framing() -> None:
    assert decode_iscsi_sense(b"") is None
    assert decode_iscsi_sense(b"\x00\x00") is None
    assert decode_iscsi_sense(b"\x00\x00" + b"\x70\x00\x06") is None
    with pytest.raises(ScsiParseError):
        decode_iscsi_sense(b"\x00")
    with pytest.raises(ScsiParseError):
        decode_iscsi_sense(b"\x00\x12")
    # Trailing iSCSI Response Data after the sense is ignored.
    sense = decode_iscsi_sense(TGT_POWER_ON_UA + b"extra")
    assert sense is not None and sense.asc == 0x29 and len(sense.raw) == 18


@pytest.mark.parametrize(
    ("asc", "ascq", "text"),
    [
        (0x04, 0x01, "logical unit is in process of becoming ready"),
        (0x20, 0x00, "invalid command operation code"),
        (0x25, 0x00, "logical unit not supported"),
        (0x26, 0x00, "invalid field in parameter list"),
        (0x27, 0x00, "write protected"),
        (0x28, 0x00, "not ready to ready change, medium may have changed"),
        (0x2A, 0x01, "mode parameters changed"),
        (0x3F, 0x0E, "reported luns data has changed"),
        (0x0C, 0x00, "write error"),
        (0x3A, 0x00, "medium not present"),
        (0x44, 0x00, "internal target failure"),
        (0x47, 0x05, "protocol service CRC error"),
        (0x4B, 0x00, "data phase error"),
        (0x55, 0x00, "system resource failure"),
        (0x0E, 0x00, "invalid information unit"),
        (0x40, 0x81, "diagnostic failure on component 0x81"),
        (0x29, 0x1F, "ASC 0x29 ASCQ 0x1f"),
        (0x80, 0x00, "ASC 0x80 ASCQ 0x00"),
    ],
)
def test_asc_table(asc: int, ascq: int, text: str) -> None:
    assert asc_text(asc, ascq) == text


def _sense(key: SenseKey, asc: int = 0, ascq: int = 0) -> Sense:
    return Sense(response_code=0x70, key=key, asc=asc, ascq=ascq)


def test_retry_policy() -> None:
    assert retryable(ScsiStatus.BUSY, None)
    assert retryable(ScsiStatus.TASK_SET_FULL, None)
    assert retryable(ScsiStatus.CHECK_CONDITION, _sense(SenseKey.NOT_READY, 0x04, 0x01))
    assert retryable(ScsiStatus.CHECK_CONDITION, _sense(SenseKey.NOT_READY, 0x04, 0x0A))
    assert not retryable(ScsiStatus.CHECK_CONDITION, _sense(SenseKey.NOT_READY, 0x04, 0x02))
    assert not retryable(ScsiStatus.CHECK_CONDITION, _sense(SenseKey.MEDIUM_ERROR, 0x11))
    assert not retryable(ScsiStatus.CHECK_CONDITION, None)
    assert not retryable(ScsiStatus.RESERVATION_CONFLICT, None)
    assert not retryable(ScsiStatus.GOOD, None)
    assert not is_unit_attention(None)


def test_command_error_message() -> None:
    error = ScsiCommandError.from_cdb(
        cdb.read16(0, 1), ScsiStatus.CHECK_CONDITION, _sense(SenseKey.MEDIUM_ERROR, 0x11)
    )
    assert str(error) == "READ(16) failed: CHECK CONDITION, MEDIUM ERROR: unrecovered read error"
    assert isinstance(error, IscsiError) and error.code == IscsiErr.ERR
    assert error.command == "READ(16)" and error.status is ScsiStatus.CHECK_CONDITION
    assert not error.retryable
    busy = ScsiCommandError("INQUIRY", 0x08)
    assert busy.status is ScsiStatus.BUSY and busy.retryable
    assert str(busy) == "INQUIRY failed: BUSY"
    odd = ScsiCommandError("INQUIRY", 0x22)
    assert odd.status == 0x22 and str(odd) == "INQUIRY failed: status 0x22"
    assert status_name(ScsiStatus.TASK_ABORTED) == "TASK ABORTED"


@given(st.binary(max_size=300))
def test_decode_sense_only_raises_parse_error(data: bytes) -> None:
    try:
        sense = decode_sense(data)
    except ScsiParseError:
        return
    assert isinstance(sense.description, str)


@given(st.integers(0x70, 0x73), st.binary(max_size=260))
def test_decode_sense_any_body(code: int, body: bytes) -> None:
    sense = decode_sense(bytes([code]) + body)
    assert sense.deferred == (code in (0x71, 0x73))
    assert sense.description


@given(st.binary(max_size=300))
def test_decode_iscsi_sense_only_raises_parse_error(data: bytes) -> None:
    with contextlib.suppress(ScsiParseError):
        decode_iscsi_sense(data)
