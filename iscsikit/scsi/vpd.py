"""Vital product data pages (SPC-4 §7.8, SBC-4 §6.6) an initiator reads to size its I/O.

This module owns the parsers of the VPD pages iscsikit uses: Supported VPD Pages (0x00),
Unit Serial Number (0x80), Device Identification (0x83), Block Limits (0xB0), Block
Device Characteristics (0xB1) and Logical Block Provisioning (0xB2).  Every page starts
with PQ|PDT, PAGE CODE and a 16-bit PAGE LENGTH (SPC-4 §7.8.1); a page whose code is not
the one asked for raises :class:`~iscsikit.scsi.buffer.ScsiParseError`, and a short
page parses as far as it goes, absent numeric fields reading 0 (which SBC-4 defines as
"no limit reported" for the Block Limits fields).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum
from typing import Final

from iscsikit.scsi.buffer import ScsiParseError, be, byte, require

__all__ = [
    "Association",
    "BlockDeviceCharacteristics",
    "BlockLimits",
    "CodeSet",
    "Designator",
    "DesignatorType",
    "LogicalBlockProvisioning",
    "ProvisioningType",
    "VpdPage",
    "parse_vpd_block_device_characteristics",
    "parse_vpd_block_limits",
    "parse_vpd_device_identification",
    "parse_vpd_logical_block_provisioning",
    "parse_vpd_supported_pages",
    "parse_vpd_unit_serial",
    "relative_target_port",
    "target_port_group",
    "lu_identity",
    "vpd_page_length",
]


class VpdPage(IntEnum):
    SUPPORTED_PAGES = 0x00
    UNIT_SERIAL_NUMBER = 0x80
    DEVICE_IDENTIFICATION = 0x83
    BLOCK_LIMITS = 0xB0
    BLOCK_DEVICE_CHARACTERISTICS = 0xB1
    LOGICAL_BLOCK_PROVISIONING = 0xB2


def vpd_page_length(data: bytes) -> int:
    """The allocation length that fetches the whole page: PAGE LENGTH + 4."""
    require(data, 4, "VPD page header")
    return int.from_bytes(data[2:4], "big") + 4


def _payload(data: bytes, page: VpdPage) -> bytes:
    """The page's bytes from offset 0 up to PAGE LENGTH + 4 or the buffer's end."""
    require(data, 4, f"VPD page 0x{page:02x}")
    if data[1] != page:
        raise ScsiParseError(f"expected VPD page 0x{page:02x}, got page 0x{data[1]:02x}")
    return bytes(data[: vpd_page_length(data)])


def parse_vpd_supported_pages(data: bytes) -> list[int]:
    """Supported VPD Pages (SPC-4 §7.8.16): the page codes from byte 4 on."""
    return list(_payload(data, VpdPage.SUPPORTED_PAGES)[4:])


def parse_vpd_unit_serial(data: bytes) -> str:
    """Unit Serial Number (SPC-4 §7.8.17), without the space / NUL padding.

    Targets right-align the serial with leading spaces (tgt does), so both ends are
    stripped.
    """
    return _payload(data, VpdPage.UNIT_SERIAL_NUMBER)[4:].decode("ascii", "replace").strip(" \0")


# -- Device Identification (0x83) --------------------------------------------------------


class CodeSet(IntEnum):
    """CODE SET (SPC-4 Table 478)."""

    BINARY = 1
    ASCII = 2
    UTF8 = 3


class Association(IntEnum):
    """ASSOCIATION (SPC-4 Table 479)."""

    LOGICAL_UNIT = 0
    TARGET_PORT = 1
    TARGET_DEVICE = 2


class DesignatorType(IntEnum):
    """DESIGNATOR TYPE (SPC-4 Table 480)."""

    VENDOR_SPECIFIC = 0x0
    T10_VENDOR_ID = 0x1
    EUI64 = 0x2
    NAA = 0x3
    RELATIVE_TARGET_PORT = 0x4
    TARGET_PORT_GROUP = 0x5
    LOGICAL_UNIT_GROUP = 0x6
    MD5_LOGICAL_UNIT = 0x7
    SCSI_NAME_STRING = 0x8
    PROTOCOL_SPECIFIC_PORT = 0x9
    UUID = 0xA


_TEXT_CODE_SETS: Final = (CodeSet.ASCII, CodeSet.UTF8)
_TWO_BYTE_NUMBERS: Final = (
    DesignatorType.RELATIVE_TARGET_PORT,
    DesignatorType.TARGET_PORT_GROUP,
    DesignatorType.LOGICAL_UNIT_GROUP,
)


@dataclass(frozen=True, slots=True)
class Designator:
    """One designation descriptor (SPC-4 §7.8.6.1).

    ``protocol_identifier`` is meaningful only when ``piv`` is set and the association
    is a target port or device (SPC-4 §7.8.6.1); it is reported as sent.
    """

    protocol_identifier: int
    code_set: int
    piv: bool
    association: int
    designator_type: int
    designator: bytes

    @property
    def value(self) -> str:
        """The designator as ``sg_inq`` / ``iscsi-inq`` print it.

        NAA, EUI-64, MD5 and vendor-specific binary as ``0x`` + hex; relative target
        port, target port group and LU group as ``0x`` + their 16-bit number; text code
        sets (T10 vendor ID, SCSI name string) as text without trailing NUL / space; a
        well-formed UUID designator as the canonical UUID string.
        """
        d = self.designator
        kind = self.designator_type
        if self.code_set in _TEXT_CODE_SETS:
            return d.decode(
                "utf-8" if self.code_set == CodeSet.UTF8 else "ascii", "replace"
            ).rstrip(" \0")
        if kind in _TWO_BYTE_NUMBERS and len(d) >= 4:
            # SPC-4 §7.8.6.5-7: two reserved bytes, then the 16-bit number.
            return f"0x{int.from_bytes(d[2:4], 'big'):x}"
        if kind == DesignatorType.UUID and len(d) == 18 and d[0] >> 4 == 1:
            # SPC-4 §7.8.6.11: UUID TYPE 1 in byte 0 bits 7-4, a reserved byte, 16 bytes.
            h = d[2:].hex()
            return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"
        return "0x" + d.hex()


def parse_vpd_device_identification(data: bytes) -> list[Designator]:
    """Device Identification (SPC-4 §7.8.6): every designation descriptor, in order.

    A descriptor cut short by the end of the page keeps the bytes that are there.
    """
    page = _payload(data, VpdPage.DEVICE_IDENTIFICATION)
    designators: list[Designator] = []
    offset = 4
    while offset + 4 <= len(page):
        # 0 PROTOCOL IDENTIFIER|CODE SET, 1 PIV|ASSOCIATION|DESIGNATOR TYPE, 3 LENGTH.
        b0, b1, length = page[offset], page[offset + 1], page[offset + 3]
        designators.append(
            Designator(
                protocol_identifier=b0 >> 4,
                code_set=b0 & 0x0F,
                piv=bool(b1 & 0x80),
                association=(b1 >> 4) & 0x03,
                designator_type=b1 & 0x0F,
                designator=page[offset + 4 : offset + 4 + length],
            )
        )
        offset += 4 + length
    return designators


def _lu_rank(d: Designator) -> int | None:
    """Where a logical-unit designator stands in the order Linux's scsi_vpd_lu_id (the
    WWID dm-multipath groups by) prefers: SCSI name string, NAA IEEE Registered Extended,
    16-byte EUI-64, NAA IEEE Registered, 12-byte EUI-64, 8-byte EUI-64, other NAA, T10
    vendor ID (SPC-4 §7.8.6: the stronger the naming authority, the better).  None for
    designators that do not name the LU."""
    if d.association != Association.LOGICAL_UNIT or not d.designator:
        return None
    kind, size = d.designator_type, len(d.designator)
    if kind == DesignatorType.SCSI_NAME_STRING and d.code_set in _TEXT_CODE_SETS:
        return 0
    if kind == DesignatorType.NAA:
        naa = d.designator[0] >> 4
        return 1 if naa == 6 else 3 if naa == 5 else 6
    if kind == DesignatorType.EUI64:
        return {16: 2, 12: 4, 8: 5}.get(size)
    if kind == DesignatorType.T10_VENDOR_ID:
        return 7
    return None


def lu_identity(designators: list[Designator]) -> Designator | None:
    """The designator that names the logical unit itself, the best one by
    :func:`_lu_rank`'s order (the first of equal rank), or None when the page has none.

    Two paths reach the same LU when their identities are equal (type, code set and
    bytes); a multipath initiator groups by it and refuses to group anything else.
    """
    ranked = [(rank, i, d) for i, d in enumerate(designators) if (rank := _lu_rank(d)) is not None]
    return min(ranked)[2] if ranked else None


def _port_number(designators: list[Designator], kind: DesignatorType) -> int | None:
    for d in designators:
        if (
            d.association == Association.TARGET_PORT
            and d.designator_type == kind
            and len(d.designator) >= 4
        ):
            return int.from_bytes(d.designator[2:4], "big")
    return None


def relative_target_port(designators: list[Designator]) -> int | None:
    """RELATIVE TARGET PORT IDENTIFIER of the port the page was read through
    (SPC-4 §7.8.6.5), or None."""
    return _port_number(designators, DesignatorType.RELATIVE_TARGET_PORT)


def target_port_group(designators: list[Designator]) -> int | None:
    """TARGET PORT GROUP of the port the page was read through (SPC-4 §7.8.6.6): the
    group whose state REPORT TARGET PORT GROUPS gives; None without ALUA."""
    return _port_number(designators, DesignatorType.TARGET_PORT_GROUP)


# -- Block Limits (0xB0) -----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class BlockLimits:
    """Block Limits (SBC-4 §6.6.4).  Lengths are in logical blocks; 0 = not reported."""

    page_length: int
    wsnz: bool
    max_compare_and_write_length: int
    optimal_transfer_length_granularity: int
    max_transfer_length: int
    optimal_transfer_length: int
    max_prefetch_length: int
    max_unmap_lba_count: int
    max_unmap_block_descriptor_count: int
    optimal_unmap_granularity: int
    unmap_granularity_alignment_valid: bool
    unmap_granularity_alignment: int
    max_write_same_length: int
    max_atomic_transfer_length: int
    atomic_alignment: int
    atomic_transfer_length_granularity: int


def parse_vpd_block_limits(data: bytes) -> BlockLimits:
    """Block Limits VPD page; SBC-2 era short pages (length 0x0C) leave the rest 0."""
    p = _payload(data, VpdPage.BLOCK_LIMITS)
    return BlockLimits(
        page_length=be(p, 2, 2),
        wsnz=bool(byte(p, 4) & 0x01),
        max_compare_and_write_length=byte(p, 5),
        optimal_transfer_length_granularity=be(p, 6, 2),
        max_transfer_length=be(p, 8, 4),
        optimal_transfer_length=be(p, 12, 4),
        max_prefetch_length=be(p, 16, 4),
        max_unmap_lba_count=be(p, 20, 4),
        max_unmap_block_descriptor_count=be(p, 24, 4),
        optimal_unmap_granularity=be(p, 28, 4),
        # Byte 32 bit 7 is UGAVALID; the alignment is the remaining 31 bits.
        unmap_granularity_alignment_valid=bool(byte(p, 32) & 0x80),
        unmap_granularity_alignment=be(p, 32, 4) & 0x7FFF_FFFF,
        max_write_same_length=be(p, 36, 8),
        max_atomic_transfer_length=be(p, 44, 4),
        atomic_alignment=be(p, 48, 4),
        atomic_transfer_length_granularity=be(p, 52, 4),
    )


# -- Block Device Characteristics (0xB1) -------------------------------------------------


@dataclass(frozen=True, slots=True)
class BlockDeviceCharacteristics:
    """Block Device Characteristics (SBC-4 §6.6.2).

    ``medium_rotation_rate``: 0 not reported, 1 non-rotating (solid state), else rpm.
    ``nominal_form_factor``: 0 not reported, 1 5.25", 2 3.5", 3 2.5", 4 1.8", 5 < 1.8".
    """

    medium_rotation_rate: int
    product_type: int
    wabereq: int
    wacereq: int
    nominal_form_factor: int
    zoned: int
    fuab: bool
    vbuls: bool

    @property
    def non_rotating(self) -> bool:
        return self.medium_rotation_rate == 1


def parse_vpd_block_device_characteristics(data: bytes) -> BlockDeviceCharacteristics:
    """Block Device Characteristics VPD page."""
    p = _payload(data, VpdPage.BLOCK_DEVICE_CHARACTERISTICS)
    b7, b8 = byte(p, 7), byte(p, 8)
    return BlockDeviceCharacteristics(
        medium_rotation_rate=be(p, 4, 2),
        product_type=byte(p, 6),
        wabereq=b7 >> 6,
        wacereq=(b7 >> 4) & 0x03,
        nominal_form_factor=b7 & 0x0F,
        zoned=(b8 >> 4) & 0x03,
        fuab=bool(b8 & 0x02),
        vbuls=bool(b8 & 0x01),
    )


# -- Logical Block Provisioning (0xB2) ---------------------------------------------------


class ProvisioningType(IntEnum):
    """PROVISIONING TYPE (SBC-4 Table 238)."""

    FULL = 0
    RESOURCE = 1
    THIN = 2


@dataclass(frozen=True, slots=True)
class LogicalBlockProvisioning:
    """Logical Block Provisioning (SBC-4 §6.6.6).

    ``lbprz`` is SBC-4's 3-bit field (bits 4-2 of byte 5); SBC-3 defined only bit 2,
    so an SBC-3 device reads as 0 or 1 here too.
    """

    threshold_exponent: int
    lbpu: bool
    lbpws: bool
    lbpws10: bool
    lbprz: int
    anc_sup: bool
    dp: bool
    minimum_percentage: int
    provisioning_type: int
    threshold_percentage: int
    provisioning_group_descriptor: bytes


def parse_vpd_logical_block_provisioning(data: bytes) -> LogicalBlockProvisioning:
    """Logical Block Provisioning VPD page."""
    p = _payload(data, VpdPage.LOGICAL_BLOCK_PROVISIONING)
    b5, b6 = byte(p, 5), byte(p, 6)
    return LogicalBlockProvisioning(
        threshold_exponent=byte(p, 4),
        lbpu=bool(b5 & 0x80),
        lbpws=bool(b5 & 0x40),
        lbpws10=bool(b5 & 0x20),
        lbprz=(b5 >> 2) & 0x07,
        anc_sup=bool(b5 & 0x02),
        dp=bool(b5 & 0x01),
        minimum_percentage=b6 >> 3,
        provisioning_type=b6 & 0x07,
        threshold_percentage=byte(p, 7),
        provisioning_group_descriptor=p[8:] if b5 & 0x01 else b"",
    )
