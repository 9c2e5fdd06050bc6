"""CDB builders against hand-assembled T10 layouts, plus round trips through field decoders."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from iscsikit.errors import InvalidParameterError
from iscsikit.scsi import cdb
from iscsikit.scsi.cdb import Opcode

U16, U32, U64 = 0xFFFF, 0xFFFF_FFFF, 0xFFFF_FFFF_FFFF_FFFF


def test_fixed_vectors() -> None:
    # SPC-4 §6.47 TEST UNIT READY: opcode 00, 4 reserved, control.
    assert cdb.test_unit_ready() == bytes(6)
    # SPC-4 §6.6: 12 | EVPD | PAGE | ALLOCATION LENGTH(2) | CONTROL.
    assert cdb.inquiry(allocation_length=64) == bytes.fromhex("120000004000")
    assert cdb.inquiry(evpd=True, page=0x83, allocation_length=64) == bytes.fromhex("120183004000")
    # SBC-4 §5.15: 25 + 9 zero bytes.
    assert cdb.read_capacity10() == bytes.fromhex("25000000000000000000")
    # SBC-4 §5.16: 9E | SA 10 | LBA(8) | ALLOCATION LENGTH(4) | PMI | CONTROL.
    assert cdb.read_capacity16() == bytes.fromhex("9e100000000000000000000000200000")
    # SPC-4 §6.33: A0 | rsvd | SELECT REPORT | rsvd(3) | ALLOCATION LENGTH(4) | rsvd | CONTROL.
    assert cdb.report_luns(allocation_length=16) == bytes.fromhex("a00000000000000000100000")
    assert cdb.report_luns(select_report=2, allocation_length=0x1234) == bytes.fromhex(
        "a00002000000000012340000"
    )
    # SBC-4 §5.12 READ(10): 28 | FUA=08 | LBA(4) | GROUP | LENGTH(2) | CONTROL.
    assert cdb.read10(0x01020304, 8, fua=True) == bytes.fromhex("28080102030400000800")
    assert cdb.write10(1, 1) == bytes.fromhex("2a000000000100000100")
    # SBC-4 §5.14 READ(16): 88 | flags | LBA(8) | LENGTH(4) | GROUP | CONTROL.
    assert cdb.read16(0x1_0000_0000, 0x10000) == bytes.fromhex("88000000000100000000000100000000")
    assert cdb.write16(2, 3, fua=True) == bytes.fromhex("8a080000000000000002000000030000")
    # SBC-4 §5.50 WRITE SAME(16): ANCHOR 10, UNMAP 08, NDOB 01.
    assert cdb.write_same16(5, 7, unmap=True, anchor=True, ndob=True) == bytes.fromhex(
        "93190000000000000005000000070000"
    )
    # SBC-4 §5.24 SYNCHRONIZE CACHE(10): IMMED is byte 1 bit 1.
    assert cdb.synchronize_cache10(immed=True) == bytes.fromhex("35020000000000000000")
    assert cdb.synchronize_cache16(1, 2) == bytes.fromhex("91000000000000000001000000020000")
    # SPC-4 §6.11 MODE SENSE(6): 1A | DBD 08 | PC|PAGE | SUBPAGE | ALLOC | CONTROL.
    assert cdb.mode_sense6(0x3F, 0xFF, dbd=False, allocation_length=255) == bytes.fromhex(
        "1a003fffff00"
    )
    assert cdb.mode_sense6(0x08, pc=2) == bytes.fromhex("1a088800ff00")
    # SPC-4 §6.12 MODE SENSE(10): 5A | LLBAA 10|DBD 08 | PC|PAGE | SUBPAGE | rsvd(3) | ALLOC(2).
    assert cdb.mode_sense10(0x0A, llbaa=True, allocation_length=0x200) == bytes.fromhex(
        "5a180a00000000020000"
    )
    # SPC-4 §6.39 REQUEST SENSE: 03 | DESC | rsvd(2) | ALLOC | CONTROL.
    assert cdb.request_sense(descriptor=True) == bytes.fromhex("03010000fc00")


def test_captured_cdbs_match() -> None:
    # CDBs libiscsi 1.19.0 (iscsi-inq, iscsi-readcapacity16, iscsi-test-cu) sent to
    # tgt 1.0.85, captured on loopback: our builders produce the same bytes.
    assert cdb.inquiry(evpd=True, page=0xB0, allocation_length=0x40) == bytes.fromhex(
        "1201b0004000"
    )
    assert cdb.mode_sense6(0x3F, 0, dbd=False, allocation_length=0xFF) == bytes.fromhex(
        "1a003f00ff00"
    )
    assert cdb.read16(0x1FFFF, 2) == bytes.fromhex("8800000000000001ffff000000020000")
    assert cdb.report_luns(allocation_length=0x10) == bytes.fromhex("a00000000000000000100000")


def test_unmap_parameter_list() -> None:
    cdb_bytes, params = cdb.unmap([(0x10, 8), (0x1_0000_0000, 0xFFFF_FFFF)])
    # SBC-4 §5.30: 42 | ANCHOR | rsvd(4) | GROUP | PARAMETER LIST LENGTH(2) | CONTROL.
    assert cdb_bytes == bytes.fromhex("42000000000000002800")
    # Header: UNMAP DATA LENGTH = 40-2, BLOCK DESCRIPTOR DATA LENGTH = 32, rsvd(4);
    # descriptors: LBA(8) | NUMBER OF LOGICAL BLOCKS(4) | rsvd(4).
    assert params == bytes.fromhex(
        "00260020 00000000"
        "0000000000000010 00000008 00000000"
        "0000000100000000 ffffffff 00000000".replace(" ", "")
    )
    empty_cdb, empty = cdb.unmap([], anchor=True)
    assert empty == bytes.fromhex("0006000000000000")
    assert empty_cdb[1] == 1
    with pytest.raises(InvalidParameterError):
        cdb.unmap([(0, 1)] * 4096)
    assert len(cdb.unmap([(0, 1)] * 4095)[1]) == 8 + 4095 * 16


@pytest.mark.parametrize(
    ("call", "args"),
    [
        (cdb.read10, (1 << 32, 1)),
        (cdb.read10, (0, 1 << 16)),
        (cdb.write10, (-1, 1)),
        (cdb.read16, (1 << 64, 1)),
        (cdb.write16, (0, 1 << 32)),
        (cdb.write_same16, (0, 1 << 32)),
        (cdb.synchronize_cache10, (1 << 32, 0)),
        (cdb.synchronize_cache16, (0, -1)),
    ],
)
def test_range_checks(call: object, args: tuple[int, int]) -> None:
    with pytest.raises(InvalidParameterError) as info:
        call(*args)  # type: ignore[operator]
    assert isinstance(info.value, ValueError)


def test_other_validation() -> None:
    with pytest.raises(InvalidParameterError):
        cdb.inquiry(page=0x80)
    with pytest.raises(InvalidParameterError):
        cdb.inquiry(allocation_length=0x10000)
    with pytest.raises(InvalidParameterError):
        cdb.report_luns(allocation_length=15)
    with pytest.raises(InvalidParameterError):
        cdb.write_same16(0, 1, anchor=True)
    with pytest.raises(InvalidParameterError):
        cdb.mode_sense6(0x40)
    with pytest.raises(InvalidParameterError):
        cdb.mode_sense6(0x08, allocation_length=256)
    with pytest.raises(InvalidParameterError):
        cdb.mode_sense10(0x08, pc=4)
    with pytest.raises(InvalidParameterError):
        cdb.unmap([(1 << 64, 1)])


def test_direction_name_and_length() -> None:
    assert cdb.data_direction(cdb.read16(0, 1)) == "read"
    assert cdb.data_direction(cdb.read_capacity16()) == "read"
    assert cdb.data_direction(cdb.report_luns()) == "read"
    assert cdb.data_direction(cdb.write10(0, 1)) == "write"
    assert cdb.data_direction(cdb.unmap([(0, 1)])[0]) == "write"
    assert cdb.data_direction(cdb.write_same16(0, 1)) == "write"
    assert cdb.data_direction(cdb.write_same16(0, 1, ndob=True)) == "none"
    assert cdb.data_direction(cdb.test_unit_ready()) == "none"
    assert cdb.data_direction(cdb.synchronize_cache16()) == "none"
    with pytest.raises(InvalidParameterError):
        cdb.data_direction(b"\xc1" + bytes(5))
    with pytest.raises(InvalidParameterError):
        cdb.data_direction(b"")

    assert cdb.command_name(cdb.read16(0, 1)) == "READ(16)"
    assert cdb.command_name(cdb.read_capacity16()) == "READ CAPACITY(16)"
    assert cdb.command_name(b"\xc1") == "opcode 0xc1"

    assert cdb.expected_transfer_length(cdb.read10(0, 8), block_size=4096) == 8 * 4096
    assert cdb.expected_transfer_length(cdb.read16(0, 3)) == 3 * 512
    assert cdb.expected_transfer_length(cdb.inquiry(allocation_length=96)) == 96
    assert cdb.expected_transfer_length(cdb.report_luns(allocation_length=1024)) == 1024
    assert cdb.expected_transfer_length(cdb.read_capacity10()) == 8
    assert cdb.expected_transfer_length(cdb.read_capacity16()) == 32
    assert cdb.expected_transfer_length(cdb.mode_sense10(8, allocation_length=300)) == 300
    assert cdb.expected_transfer_length(cdb.mode_sense6(8, allocation_length=30)) == 30
    assert cdb.expected_transfer_length(cdb.request_sense()) == 252
    assert cdb.expected_transfer_length(cdb.unmap([(0, 1)])[0]) == 24
    assert cdb.expected_transfer_length(cdb.write_same16(0, 9)) == 512
    assert cdb.expected_transfer_length(cdb.write_same16(0, 9, ndob=True)) == 0
    assert cdb.expected_transfer_length(cdb.test_unit_ready()) == 0


# -- round trips: each builder through a small field decoder written from the tables ------

flag = st.booleans()


@given(st.integers(0, U32), st.integers(0, U16), flag, st.sampled_from([cdb.read10, cdb.write10]))
def test_rw10_round_trip(lba: int, blocks: int, fua: bool, build: object) -> None:
    raw = build(lba, blocks, fua=fua)  # type: ignore[operator]
    op, flags, got_lba, group, got_blocks, control = struct.unpack(">BBIBHB", raw)
    assert op in (Opcode.READ10, Opcode.WRITE10)
    assert (flags, got_lba, got_blocks, group, control) == (8 if fua else 0, lba, blocks, 0, 0)


@given(st.integers(0, U64), st.integers(0, U32), flag, st.sampled_from([cdb.read16, cdb.write16]))
def test_rw16_round_trip(lba: int, blocks: int, fua: bool, build: object) -> None:
    raw = build(lba, blocks, fua=fua)  # type: ignore[operator]
    assert len(raw) == 16
    assert raw[1] == (8 if fua else 0)
    assert int.from_bytes(raw[2:10], "big") == lba
    assert int.from_bytes(raw[10:14], "big") == blocks
    assert raw[14:] == b"\0\0"


@given(st.integers(0, U64), st.integers(0, U32), flag, flag, flag)
def test_write_same_round_trip(
    lba: int, blocks: int, unmap: bool, anchor: bool, ndob: bool
) -> None:
    anchor = anchor and unmap
    raw = cdb.write_same16(lba, blocks, unmap=unmap, anchor=anchor, ndob=ndob)
    assert raw[0] == 0x93
    assert bool(raw[1] & 0x10) == anchor and bool(raw[1] & 0x08) == unmap
    assert bool(raw[1] & 0x01) == ndob
    assert int.from_bytes(raw[2:10], "big") == lba
    assert int.from_bytes(raw[10:14], "big") == blocks


@given(st.lists(st.tuples(st.integers(0, U64), st.integers(0, U32)), max_size=40))
def test_unmap_round_trip(extents: list[tuple[int, int]]) -> None:
    raw, params = cdb.unmap(extents)
    assert int.from_bytes(raw[7:9], "big") == len(params)
    data_length, bd_length = struct.unpack_from(">HH", params)
    assert data_length == len(params) - 2 and bd_length == len(params) - 8
    decoded = [struct.unpack_from(">QI", params, 8 + 16 * i) for i in range(bd_length // 16)]
    assert decoded == extents


@given(st.integers(0, 0x3F), st.integers(0, 0xFF), flag, st.integers(0, 3), st.integers(0, 0xFF))
def test_mode_sense6_round_trip(page: int, subpage: int, dbd: bool, pc: int, alloc: int) -> None:
    raw = cdb.mode_sense6(page, subpage, dbd=dbd, pc=pc, allocation_length=alloc)
    assert raw == bytes([0x1A, 8 if dbd else 0, (pc << 6) | page, subpage, alloc, 0])


@given(st.integers(0, 0x3F), st.integers(0, 0xFF), flag, flag, st.integers(0, U16))
def test_mode_sense10_round_trip(
    page: int, subpage: int, dbd: bool, llbaa: bool, alloc: int
) -> None:
    raw = cdb.mode_sense10(page, subpage, dbd=dbd, llbaa=llbaa, allocation_length=alloc)
    assert raw[0] == 0x5A and raw[2] == page and raw[3] == subpage
    assert raw[1] == (0x10 if llbaa else 0) | (0x08 if dbd else 0)
    assert int.from_bytes(raw[7:9], "big") == alloc and len(raw) == 10


@given(st.integers(0, 0xFF), st.integers(0, U16))
def test_inquiry_round_trip(page: int, alloc: int) -> None:
    raw = cdb.inquiry(evpd=True, page=page, allocation_length=alloc)
    assert (raw[1], raw[2], int.from_bytes(raw[3:5], "big")) == (1, page, alloc)


@given(st.integers(0, 0xFF), st.integers(16, U32))
def test_report_luns_round_trip(select: int, alloc: int) -> None:
    raw = cdb.report_luns(select_report=select, allocation_length=alloc)
    assert (raw[0], raw[2], int.from_bytes(raw[6:10], "big")) == (0xA0, select, alloc)


@given(st.integers(0, U32), st.integers(0, U16), flag)
def test_sync10_round_trip(lba: int, blocks: int, immed: bool) -> None:
    raw = cdb.synchronize_cache10(lba, blocks, immed=immed)
    assert struct.unpack(">BBIBHB", raw) == (0x35, 2 if immed else 0, lba, 0, blocks, 0)
