"""CDB builders for the commands an iSCSI initiator issues (SPC-4 §6, SBC-3/SBC-4 §5).

This module owns the byte layout of each command descriptor block iscsikit sends, the
``Opcode`` numbers, and what each of those commands transfers (:func:`data_direction`,
:func:`expected_transfer_length`), which the iSCSI layer needs for the SCSI Command PDU's
R/W bits and Expected Data Transfer Length (RFC 7143 §11.3).  It builds bytes only:
sending a command and interpreting the answer belong elsewhere.

Every builder checks that its numbers fit their CDB fields and raises
:class:`~iscsikit.errors.InvalidParameterError` (a ``ValueError``) when they do not, so a
too-large LBA never silently wraps.  The CONTROL byte is always 0 (no NACA, no linking).
"""

from __future__ import annotations

import struct
from collections.abc import Iterable
from enum import IntEnum
from typing import Final, Literal

from iscsikit.errors import InvalidParameterError

__all__ = [
    "SA_READ_CAPACITY16",
    "DataDirection",
    "Opcode",
    "command_name",
    "data_direction",
    "expected_transfer_length",
    "inquiry",
    "mode_sense6",
    "mode_sense10",
    "read10",
    "read16",
    "read_capacity10",
    "read_capacity16",
    "report_luns",
    "request_sense",
    "synchronize_cache10",
    "synchronize_cache16",
    "test_unit_ready",
    "unmap",
    "write10",
    "write16",
    "write_same16",
]

DataDirection = Literal["read", "write", "none"]


class Opcode(IntEnum):
    """Operation codes of the commands built here (SPC-4 Annex D.3.1, SBC-4 Table 17)."""

    TEST_UNIT_READY = 0x00
    REQUEST_SENSE = 0x03
    INQUIRY = 0x12
    MODE_SENSE6 = 0x1A
    READ_CAPACITY10 = 0x25
    READ10 = 0x28
    WRITE10 = 0x2A
    SYNCHRONIZE_CACHE10 = 0x35
    UNMAP = 0x42
    MODE_SENSE10 = 0x5A
    READ16 = 0x88
    WRITE16 = 0x8A
    SYNCHRONIZE_CACHE16 = 0x91
    WRITE_SAME16 = 0x93
    SERVICE_ACTION_IN16 = 0x9E
    REPORT_LUNS = 0xA0


#: SERVICE ACTION IN(16) service action of READ CAPACITY(16) (SBC-4 §5.16).
SA_READ_CAPACITY16: Final = 0x10

_NAMES: Final[dict[int, str]] = {
    Opcode.TEST_UNIT_READY: "TEST UNIT READY",
    Opcode.REQUEST_SENSE: "REQUEST SENSE",
    Opcode.INQUIRY: "INQUIRY",
    Opcode.MODE_SENSE6: "MODE SENSE(6)",
    Opcode.READ_CAPACITY10: "READ CAPACITY(10)",
    Opcode.READ10: "READ(10)",
    Opcode.WRITE10: "WRITE(10)",
    Opcode.SYNCHRONIZE_CACHE10: "SYNCHRONIZE CACHE(10)",
    Opcode.UNMAP: "UNMAP",
    Opcode.MODE_SENSE10: "MODE SENSE(10)",
    Opcode.READ16: "READ(16)",
    Opcode.WRITE16: "WRITE(16)",
    Opcode.SYNCHRONIZE_CACHE16: "SYNCHRONIZE CACHE(16)",
    Opcode.WRITE_SAME16: "WRITE SAME(16)",
    Opcode.SERVICE_ACTION_IN16: "SERVICE ACTION IN(16)",
    Opcode.REPORT_LUNS: "REPORT LUNS",
}

_U8: Final = 0xFF
_U16: Final = 0xFFFF
_U32: Final = 0xFFFF_FFFF
_U64: Final = 0xFFFF_FFFF_FFFF_FFFF

# Byte 1 bits of the READ/WRITE family (SBC-4 §5.12, §5.40): FUA is bit 3.
_FUA: Final = 0x08

# 10-byte READ/WRITE/SYNCHRONIZE CACHE: opcode, flags, LBA(4), group, length(2), control.
_CDB10: Final = struct.Struct(">BBIBHB")
# 16-byte READ/WRITE/WRITE SAME/SYNCHRONIZE CACHE: opcode, flags, LBA(8), length(4),
# group, control.
_CDB16: Final = struct.Struct(">BBQIBB")
# SBC-4 §5.30 UNMAP: opcode, ANCHOR, reserved(4), group, parameter list length, control.
_UNMAP_CDB: Final = struct.Struct(">BB4xBHB")
# SBC-4 §5.30.2 parameter list header: UNMAP data length, block descriptor data length,
# reserved(4); each block descriptor: LBA(8), number of blocks(4), reserved(4).
_UNMAP_HEADER: Final = struct.Struct(">HH4x")
_UNMAP_DESCRIPTOR: Final = struct.Struct(">QI4x")
_MAX_UNMAP_DESCRIPTORS: Final = (_U16 - _UNMAP_HEADER.size) // _UNMAP_DESCRIPTOR.size


def _check(name: str, value: int, limit: int) -> int:
    if not 0 <= value <= limit:
        raise InvalidParameterError(f"{name} {value} does not fit its CDB field (0..{limit})")
    return value


def _check_extent(lba: int, blocks: int, lba_limit: int, blocks_limit: int) -> None:
    _check("lba", lba, lba_limit)
    _check("blocks", blocks, blocks_limit)


def test_unit_ready() -> bytes:
    """TEST UNIT READY (SPC-4 §6.47): six zero bytes."""
    return bytes(6)


# The name starts with "test_": keep pytest from collecting it where tests import it.
test_unit_ready.__test__ = False  # type: ignore[attr-defined]


def inquiry(*, evpd: bool = False, page: int = 0, allocation_length: int = 255) -> bytes:
    """INQUIRY (SPC-4 §6.6): the standard data, or VPD page ``page`` when ``evpd``.

    The 255-byte default fits every standard INQUIRY answer and the VPD pages iscsikit
    reads; legacy devices are known to reject allocation lengths above 255.
    """
    _check("page", page, _U8)
    _check("allocation_length", allocation_length, _U16)
    if page and not evpd:
        # SPC-4 §6.6.1: PAGE CODE with EVPD=0 is an ILLEGAL REQUEST.
        raise InvalidParameterError("an INQUIRY page code needs evpd=True")
    return struct.pack(">BBBHB", Opcode.INQUIRY, int(evpd), page, allocation_length, 0)


def report_luns(*, select_report: int = 0, allocation_length: int = 4096) -> bytes:
    """REPORT LUNS (SPC-4 §6.33); the allocation length must be at least 16 bytes."""
    _check("select_report", select_report, _U8)
    _check("allocation_length", allocation_length, _U32)
    if allocation_length < 16:
        raise InvalidParameterError("REPORT LUNS allocation_length must be at least 16")
    return struct.pack(">BxB3xIxB", Opcode.REPORT_LUNS, select_report, allocation_length, 0)


def read_capacity10() -> bytes:
    """READ CAPACITY(10) (SBC-4 §5.15); LBA and PMI are obsolete and zero."""
    return bytes([Opcode.READ_CAPACITY10]) + bytes(9)


def read_capacity16(*, allocation_length: int = 32) -> bytes:
    """READ CAPACITY(16) (SBC-4 §5.16): SERVICE ACTION IN(16) with service action 0x10."""
    _check("allocation_length", allocation_length, _U32)
    return struct.pack(
        ">BBQIBB", Opcode.SERVICE_ACTION_IN16, SA_READ_CAPACITY16, 0, allocation_length, 0, 0
    )


def _rw10(opcode: Opcode, lba: int, blocks: int, fua: bool) -> bytes:
    _check_extent(lba, blocks, _U32, _U16)
    return _CDB10.pack(opcode, _FUA if fua else 0, lba, 0, blocks, 0)


def _rw16(opcode: Opcode, lba: int, blocks: int, flags: int) -> bytes:
    _check_extent(lba, blocks, _U64, _U32)
    return _CDB16.pack(opcode, flags, lba, blocks, 0, 0)


def read10(lba: int, blocks: int, *, fua: bool = False) -> bytes:
    """READ(10) (SBC-4 §5.12): 32-bit LBA, 16-bit transfer length (0 = no data)."""
    return _rw10(Opcode.READ10, lba, blocks, fua)


def read16(lba: int, blocks: int, *, fua: bool = False) -> bytes:
    """READ(16) (SBC-4 §5.14): 64-bit LBA, 32-bit transfer length."""
    return _rw16(Opcode.READ16, lba, blocks, _FUA if fua else 0)


def write10(lba: int, blocks: int, *, fua: bool = False) -> bytes:
    """WRITE(10) (SBC-4 §5.40)."""
    return _rw10(Opcode.WRITE10, lba, blocks, fua)


def write16(lba: int, blocks: int, *, fua: bool = False) -> bytes:
    """WRITE(16) (SBC-4 §5.42)."""
    return _rw16(Opcode.WRITE16, lba, blocks, _FUA if fua else 0)


def write_same16(
    lba: int, blocks: int, *, unmap: bool = False, anchor: bool = False, ndob: bool = False
) -> bytes:
    """WRITE SAME(16) (SBC-4 §5.50).

    Byte 1: ANCHOR bit 4, UNMAP bit 3, NDOB bit 0.  With ``ndob`` no data-out buffer
    is sent (the device writes zeros).  ``blocks`` 0 means "to the end of the medium"
    when the Block Limits VPD page says WSNZ=0.
    """
    if anchor and not unmap:
        # SBC-4 §5.50: ANCHOR=1 with UNMAP=0 is an ILLEGAL REQUEST.
        raise InvalidParameterError("WRITE SAME anchor=True needs unmap=True")
    flags = (0x10 if anchor else 0) | (0x08 if unmap else 0) | (0x01 if ndob else 0)
    return _rw16(Opcode.WRITE_SAME16, lba, blocks, flags)


def unmap(extents: Iterable[tuple[int, int]], *, anchor: bool = False) -> tuple[bytes, bytes]:
    """UNMAP (SBC-4 §5.30): the CDB and its parameter list for ``(lba, blocks)`` extents.

    The parameter list is an 8-byte header then one 16-byte block descriptor per extent;
    its length must fit the CDB's 16-bit PARAMETER LIST LENGTH, so at most 4095 extents.
    An empty sequence is legal and unmaps nothing.
    """
    descriptors: list[bytes] = []
    for lba, blocks in extents:
        _check_extent(lba, blocks, _U64, _U32)
        descriptors.append(_UNMAP_DESCRIPTOR.pack(lba, blocks))
    if len(descriptors) > _MAX_UNMAP_DESCRIPTORS:
        raise InvalidParameterError(
            f"UNMAP takes at most {_MAX_UNMAP_DESCRIPTORS} extents, got {len(descriptors)}"
        )
    body = b"".join(descriptors)
    # UNMAP DATA LENGTH excludes its own two bytes; BLOCK DESCRIPTOR DATA LENGTH counts
    # the descriptors only (SBC-4 Table 110).
    params = _UNMAP_HEADER.pack(len(body) + 6, len(body)) + body
    cdb = _UNMAP_CDB.pack(Opcode.UNMAP, int(anchor), 0, len(params), 0)
    return cdb, params


def synchronize_cache10(lba: int = 0, blocks: int = 0, *, immed: bool = False) -> bytes:
    """SYNCHRONIZE CACHE(10) (SBC-4 §5.24); ``blocks`` 0 means "through the last LBA"."""
    _check_extent(lba, blocks, _U32, _U16)
    return _CDB10.pack(Opcode.SYNCHRONIZE_CACHE10, 0x02 if immed else 0, lba, 0, blocks, 0)


def synchronize_cache16(lba: int = 0, blocks: int = 0, *, immed: bool = False) -> bytes:
    """SYNCHRONIZE CACHE(16) (SBC-4 §5.25); IMMED is byte 1 bit 1."""
    return _rw16(Opcode.SYNCHRONIZE_CACHE16, lba, blocks, 0x02 if immed else 0)


def _page_byte(page: int, subpage: int, pc: int) -> int:
    _check("page", page, 0x3F)
    _check("subpage", subpage, _U8)
    _check("pc", pc, 3)
    # SPC-4 §6.11: byte 2 = PC (bits 7-6: current, changeable, default, saved) | PAGE CODE.
    return (pc << 6) | page


def mode_sense6(
    page: int, subpage: int = 0, *, dbd: bool = True, pc: int = 0, allocation_length: int = 255
) -> bytes:
    """MODE SENSE(6) (SPC-4 §6.11): ``page`` 0x3F with ``subpage`` 0xFF asks for everything."""
    page_byte = _page_byte(page, subpage, pc)
    _check("allocation_length", allocation_length, _U8)
    return bytes([Opcode.MODE_SENSE6, 0x08 if dbd else 0, page_byte, subpage, allocation_length, 0])


def mode_sense10(
    page: int,
    subpage: int = 0,
    *,
    dbd: bool = True,
    llbaa: bool = False,
    pc: int = 0,
    allocation_length: int = 4096,
) -> bytes:
    """MODE SENSE(10) (SPC-4 §6.12); ``llbaa`` allows 16-byte block descriptors."""
    page_byte = _page_byte(page, subpage, pc)
    _check("allocation_length", allocation_length, _U16)
    flags = (0x10 if llbaa else 0) | (0x08 if dbd else 0)
    return struct.pack(
        ">BBBB3xHB", Opcode.MODE_SENSE10, flags, page_byte, subpage, allocation_length, 0
    )


def request_sense(*, descriptor: bool = False, allocation_length: int = 252) -> bytes:
    """REQUEST SENSE (SPC-4 §6.39); ``descriptor`` sets DESC (byte 1 bit 0).

    252 is SPC-4's maximum sense data length, so the default never truncates.
    """
    _check("allocation_length", allocation_length, _U8)
    return bytes([Opcode.REQUEST_SENSE, int(descriptor), 0, 0, allocation_length, 0])


# -- what a CDB does ---------------------------------------------------------------------

_READS: Final = frozenset(
    {
        Opcode.REQUEST_SENSE,
        Opcode.INQUIRY,
        Opcode.MODE_SENSE6,
        Opcode.READ_CAPACITY10,
        Opcode.READ10,
        Opcode.MODE_SENSE10,
        Opcode.READ16,
        Opcode.SERVICE_ACTION_IN16,
        Opcode.REPORT_LUNS,
    }
)
_WRITES: Final = frozenset({Opcode.WRITE10, Opcode.WRITE16, Opcode.WRITE_SAME16, Opcode.UNMAP})
_NONE: Final = frozenset(
    {Opcode.TEST_UNIT_READY, Opcode.SYNCHRONIZE_CACHE10, Opcode.SYNCHRONIZE_CACHE16}
)


def command_name(cdb: bytes) -> str:
    """The T10 name of a CDB's command: ``READ(16)``, ``READ CAPACITY(16)``, ``opcode 0xc1``."""
    if not cdb:
        return "empty CDB"
    opcode = cdb[0]
    if opcode == Opcode.SERVICE_ACTION_IN16 and len(cdb) > 1:
        if cdb[1] & 0x1F == SA_READ_CAPACITY16:
            return "READ CAPACITY(16)"
        return f"SERVICE ACTION IN(16) 0x{cdb[1] & 0x1F:02x}"
    return _NAMES.get(opcode, f"opcode 0x{opcode:02x}")


def _opcode(cdb: bytes) -> Opcode:
    if not cdb:
        raise InvalidParameterError("empty CDB")
    try:
        return Opcode(cdb[0])
    except ValueError:
        raise InvalidParameterError(f"unknown CDB opcode 0x{cdb[0]:02x}") from None


def data_direction(cdb: bytes) -> DataDirection:
    """``"read"``, ``"write"`` or ``"none"``: which way a CDB built here moves data.

    WRITE SAME(16) with NDOB moves nothing; an unknown opcode raises
    :class:`~iscsikit.errors.InvalidParameterError` rather than guess.
    """
    opcode = _opcode(cdb)
    if opcode in _READS:
        return "read"
    if opcode == Opcode.WRITE_SAME16 and len(cdb) > 1 and cdb[1] & 0x01:
        return "none"
    if opcode in _WRITES:
        return "write"
    return "none"


def _field(cdb: bytes, offset: int, size: int) -> int:
    if len(cdb) < offset + size:
        raise InvalidParameterError(f"{command_name(cdb)} CDB too short ({len(cdb)} bytes)")
    return int.from_bytes(cdb[offset : offset + size], "big")


def expected_transfer_length(cdb: bytes, *, block_size: int = 512) -> int:
    """Bytes the command moves, for the Expected Data Transfer Length (RFC 7143 §11.3.5).

    Allocation-length commands report their allocation length; block commands their
    block count times ``block_size``; WRITE SAME one block (zero with NDOB); UNMAP its
    parameter list length.
    """
    opcode = _opcode(cdb)
    if opcode in (Opcode.REQUEST_SENSE, Opcode.MODE_SENSE6):
        return _field(cdb, 4, 1)
    if opcode == Opcode.INQUIRY:
        return _field(cdb, 3, 2)
    if opcode == Opcode.MODE_SENSE10:
        return _field(cdb, 7, 2)
    if opcode == Opcode.UNMAP:
        return _field(cdb, 7, 2)
    if opcode == Opcode.READ_CAPACITY10:
        return 8
    if opcode in (Opcode.SERVICE_ACTION_IN16, Opcode.READ16, Opcode.WRITE16):
        count = _field(cdb, 10, 4)
        return count if opcode == Opcode.SERVICE_ACTION_IN16 else count * block_size
    if opcode == Opcode.REPORT_LUNS:
        return _field(cdb, 6, 4)
    if opcode in (Opcode.READ10, Opcode.WRITE10):
        return _field(cdb, 7, 2) * block_size
    if opcode == Opcode.WRITE_SAME16:
        return 0 if data_direction(cdb) == "none" else block_size
    return 0
