"""READ CAPACITY and REPORT LUNS data, and LUN numbering as Linux / libiscsi count."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from iscsikit.errors import InvalidParameterError
from iscsikit.scsi.buffer import ScsiParseError
from iscsikit.scsi.capacity import parse_read_capacity10, parse_read_capacity16
from iscsikit.scsi.luns import (
    AddressMethod,
    WellKnownLun,
    decode_lun,
    encode_lun,
    lun_bytes,
    lun_number,
    parse_report_luns,
)

# tgt 1.0.85 answering libiscsi-bin 1.19.0 on loopback (see test_inquiry.py), 64 MiB LUNs.
# iscsi-readcapacity16 .../1: RETURNED LOGICAL BLOCK ADDRESS:131071, LOGICAL BLOCK LENGTH
# IN BYTES:512, P_TYPE:0 PROT_EN:0, P_I_EXPONENT:0, LBPPBE:3, LBPME:0 LBPRZ:0,
# LOWEST ALIGNED LOGICAL BLOCK ADDRESS:0, Total size:67108864.
RC16_LUN1_TGT = bytes.fromhex("000000000001ffff000002000003000000000000000000000000000000000000")
# .../2 (thin_provisioning=1): same, but LBPME:1 LBPRZ:1.
RC16_LUN2_TGT = bytes.fromhex("000000000001ffff000002000003c00000000000000000000000000000000000")
# READ CAPACITY(10) from iscsi-ls -s / iscsi-test-cu ReadCapacity10.
RC10_TGT = bytes.fromhex("0001ffff00000200")
# REPORT LUNS from iscsi-ls -s: first with allocation length 16 (LUN LIST LENGTH 0x18
# but room for one LUN), then the retry with 32 bytes: LUNs 0, 1, 2.
REPORT_LUNS_16_TGT = bytes.fromhex("00000018000000000000000000000000")
REPORT_LUNS_32_TGT = bytes.fromhex(
    "0000001800000000000000000000000000010000000000000002000000000000"
)


def test_read_capacity16_captured() -> None:
    cap = parse_read_capacity16(RC16_LUN1_TGT)
    assert (cap.last_lba, cap.block_size, cap.blocks) == (131071, 512, 131072)
    assert cap.size_bytes == 67108864
    assert cap.protection_type == 0 and not cap.prot_en and cap.p_i_exponent == 0
    assert cap.lbppbe == 3 and cap.physical_block_size == 4096
    assert not cap.lbpme and not cap.lbprz and cap.lowest_aligned_lba == 0
    assert not cap.needs_16
    thin = parse_read_capacity16(RC16_LUN2_TGT)
    assert thin.lbpme and thin.lbprz


def test_read_capacity16_hand_built() -> None:
    # LBA 2^40, 4096-byte blocks, byte 12: RC BASIS 1 | P_TYPE 1 | PROT_EN = 0x13,
    # byte 13: P_I_EXPONENT 2 | LBPPBE 0, bytes 14-15: LBPME | lowest aligned 7.
    cap = parse_read_capacity16(bytes.fromhex("0000010000000000 00001000 13 20 8007"))
    assert cap.last_lba == 1 << 40 and cap.block_size == 4096
    assert cap.prot_en and cap.p_type == 1 and cap.protection_type == 2 and cap.rc_basis == 1
    assert cap.p_i_exponent == 2 and cap.lbpme and not cap.lbprz
    assert cap.lowest_aligned_lba == 7
    # Only the mandatory 12 bytes: the rest reads 0.
    assert parse_read_capacity16(bytes(12)).lbppbe == 0
    with pytest.raises(ScsiParseError):
        parse_read_capacity16(bytes(11))


def test_read_capacity10() -> None:
    cap = parse_read_capacity10(RC10_TGT)
    assert (cap.last_lba, cap.block_size, cap.size_bytes) == (131071, 512, 67108864)
    assert not cap.needs_16
    assert parse_read_capacity10(bytes.fromhex("ffffffff00000200")).needs_16
    with pytest.raises(ScsiParseError):
        parse_read_capacity10(bytes(7))


def test_report_luns_captured() -> None:
    first = parse_report_luns(REPORT_LUNS_16_TGT)
    assert [lun.number for lun in first] == [0]
    assert first.truncated and first.required_allocation_length == 32
    full = parse_report_luns(REPORT_LUNS_32_TGT)
    assert [lun.number for lun in full] == [0, 1, 2]  # iscsi-ls -s: Lun:0, Lun:1, Lun:2
    assert not full.truncated
    assert all(lun.address_method == AddressMethod.PERIPHERAL and lun.bus == 0 for lun in full)


def test_report_luns_edges() -> None:
    with pytest.raises(ScsiParseError):
        parse_report_luns(b"\0\0\0")
    # Header only, list length promising two LUNs: truncated, nothing decoded.
    header = parse_report_luns(bytes.fromhex("0000001000000000"))
    assert list(header) == [] and header.truncated
    # A partial trailing entry is ignored; bytes past LUN LIST LENGTH are ignored.
    assert len(parse_report_luns(bytes.fromhex("00000008 00000000 0005000000000000 0006"))) == 1
    assert len(parse_report_luns(bytes.fromhex("00000008 00000000") + bytes(16))) == 1


@pytest.mark.parametrize(
    ("raw", "method", "lun", "number", "extra"),
    [
        # Peripheral, bus 0, LUN 5 (SAM-5 §4.7.7.2).
        ("0005000000000000", AddressMethod.PERIPHERAL, 5, 5, {"bus": 0}),
        # Peripheral, bus 3, target/LUN 0x10.
        ("0310000000000000", AddressMethod.PERIPHERAL, 0x10, 0x0310, {"bus": 3}),
        # Flat space LUN 300 (0x12C): Linux numbers it 0x412C.
        ("412c000000000000", AddressMethod.FLAT, 300, 0x412C, {}),
        # Logical unit addressing: target 2, bus 1, LUN 3 (SAM-5 §4.7.7.4).
        ("8223000000000000", AddressMethod.LOGICAL_UNIT, 3, 0x8223, {"bus": 1, "target": 2}),
        # REPORT LUNS well-known LUN (SPC-4 Table 712).
        ("c101000000000000", AddressMethod.EXTENDED, 1, 0xC101, {}),
        # Extended flat space (length 1, method 2), LUN 0x123456.
        ("d212345600000000", AddressMethod.EXTENDED, 0x123456, 0x3456D212, {}),
    ],
)
def test_decode_lun(
    raw: str, method: AddressMethod, lun: int, number: int, extra: dict[str, int]
) -> None:
    decoded = decode_lun(bytes.fromhex(raw))
    assert decoded.address_method == method and decoded.lun == lun
    assert decoded.number == number == lun_number(bytes.fromhex(raw))
    for name, value in extra.items():
        assert getattr(decoded, name) == value
    assert lun_bytes(number) == bytes.fromhex(raw)


def test_well_known_and_hierarchy() -> None:
    wlun = decode_lun(bytes.fromhex("c101000000000000"))
    assert wlun.well_known is WellKnownLun.REPORT_LUNS
    assert decode_lun(bytes.fromhex("c1ff000000000000")).well_known == 0xFF
    assert decode_lun(bytes.fromhex("0001000200000000")).hierarchical
    # Linux scsilun_to_int: second level lands in bits 16-31.
    assert lun_number(bytes.fromhex("0001000200000000")) == 0x0002_0001


def test_encode_lun() -> None:
    assert encode_lun(0) == bytes(8)
    assert encode_lun(255) == bytes.fromhex("00ff000000000000")
    assert encode_lun(256) == bytes.fromhex("4100000000000000")
    assert encode_lun(16383) == bytes.fromhex("7fff000000000000")
    # Above 0x3FFF the number is a Linux / libiscsi LUN number: 0x412C is flat 300.
    assert encode_lun(0x412C) == bytes.fromhex("412c000000000000")
    assert encode_lun(0xC101) == bytes.fromhex("c101000000000000")
    with pytest.raises(InvalidParameterError):
        encode_lun(-1)
    with pytest.raises(InvalidParameterError):
        lun_bytes(1 << 64)


@given(st.integers(0, (1 << 64) - 1))
def test_lun_bytes_inverts_lun_number(n: int) -> None:
    assert lun_number(lun_bytes(n)) == n


@given(st.integers(0, 0x3FFF))
def test_encode_lun_decodes_to_same_lun(n: int) -> None:
    decoded = decode_lun(encode_lun(n))
    assert decoded.lun == n
    assert decoded.address_method == (AddressMethod.PERIPHERAL if n < 256 else AddressMethod.FLAT)
