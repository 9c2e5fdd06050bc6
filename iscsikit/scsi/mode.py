"""MODE SENSE(6)/(10) parameter data (SPC-4 §7.5) and the pages an initiator reads.

This module owns splitting mode parameter data into its header, block descriptors and
pages (:func:`parse_mode_sense6`, :func:`parse_mode_sense10`), and decoding the Caching
page (SBC-4 §7.5.5, write cache enable) and the Control page (SPC-4 §7.5.8, D_SENSE,
queue algorithm).  Pages are kept as raw bytes *including* their page header, so a
page's byte numbers in the standard index :attr:`ModePage.data` directly.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

from iscsikit.scsi.buffer import ScsiParseError, be, byte, require

__all__ = [
    "BlockDescriptor",
    "CachingPage",
    "ControlPage",
    "ModePage",
    "ModePageCode",
    "ModeParameters",
    "parse_caching_page",
    "parse_control_page",
    "parse_mode_sense6",
    "parse_mode_sense10",
]


class ModePageCode(IntEnum):
    READ_WRITE_ERROR_RECOVERY = 0x01
    DISCONNECT_RECONNECT = 0x02
    CACHING = 0x08
    CONTROL = 0x0A
    POWER_CONDITION = 0x1A
    INFORMATIONAL_EXCEPTIONS = 0x1C
    ALL = 0x3F


@dataclass(frozen=True, slots=True)
class BlockDescriptor:
    """A mode parameter block descriptor (SBC-4 §6.5.2).

    Short (8-byte) descriptors carry a 32-bit block count in SBC-4's direct-access
    layout; ``density_code`` is byte 0, which is what it means in the general layout
    (SPC-4 §7.5.5) other device types use, where the count is only bytes 1-3.
    """

    blocks: int
    block_size: int
    density_code: int = 0
    long_lba: bool = False


@dataclass(frozen=True, slots=True)
class ModePage:
    """One mode page: byte 0 PS|SPF|PAGE CODE, then a 1-byte (SPF=0) or 2-byte (SPF=1,
    after the SUBPAGE CODE byte) PAGE LENGTH.  ``data`` is the whole page, header included."""

    page_code: int
    subpage: int
    ps: bool
    spf: bool
    data: bytes

    @property
    def parameters(self) -> bytes:
        """The bytes after the page header."""
        return self.data[4:] if self.spf else self.data[2:]


@dataclass(frozen=True, slots=True)
class ModeParameters:
    """Decoded MODE SENSE data.  ``device_specific`` is the raw header byte; for a disk
    (SBC-4 §6.5.1) bit 7 is WP and bit 4 DPOFUA."""

    mode_data_length: int
    medium_type: int
    device_specific: int
    long_lba: bool
    block_descriptors: tuple[BlockDescriptor, ...]
    pages: tuple[ModePage, ...]
    header_length: int
    received: int

    @property
    def write_protected(self) -> bool:
        return bool(self.device_specific & 0x80)

    @property
    def dpofua(self) -> bool:
        return bool(self.device_specific & 0x10)

    @property
    def required_allocation_length(self) -> int:
        """The allocation length that fetches everything: MODE DATA LENGTH + its field."""
        # MODE DATA LENGTH excludes itself: 1 byte in MODE SENSE(6), 2 in MODE SENSE(10).
        return self.mode_data_length + (1 if self.header_length == 4 else 2)

    @property
    def truncated(self) -> bool:
        return self.received < self.required_allocation_length

    def page(self, code: int, subpage: int = 0) -> ModePage | None:
        """The first page with this code and subpage, or None."""
        for page in self.pages:
            if page.page_code == code and page.subpage == subpage:
                return page
        return None


def _block_descriptors(data: bytes, long_lba: bool) -> tuple[BlockDescriptor, ...]:
    size = 16 if long_lba else 8
    out: list[BlockDescriptor] = []
    for offset in range(0, len(data) - size + 1, size):
        d = data[offset : offset + size]
        if long_lba:
            # SBC-4 Table 250: NUMBER OF LOGICAL BLOCKS(8), reserved(4), LENGTH(4).
            out.append(BlockDescriptor(be(d, 0, 8), be(d, 12, 4), long_lba=True))
        else:
            # SBC-4 Table 249: NUMBER OF LOGICAL BLOCKS(4), reserved, LENGTH(3).
            out.append(BlockDescriptor(be(d, 0, 4), be(d, 5, 3), density_code=d[0]))
    return tuple(out)


def _pages(data: bytes) -> tuple[ModePage, ...]:
    pages: list[ModePage] = []
    offset = 0
    while offset + 2 <= len(data):
        b0 = data[offset]
        spf = bool(b0 & 0x40)
        if spf:
            if offset + 4 > len(data):
                break
            subpage, header, length = data[offset + 1], 4, be(data, offset + 2, 2)
        else:
            subpage, header, length = 0, 2, data[offset + 1]
        raw = data[offset : offset + header + length]
        pages.append(ModePage(b0 & 0x3F, subpage, bool(b0 & 0x80), spf, bytes(raw)))
        offset += header + length
    return tuple(pages)


def _parse(data: bytes, *, ten: bool) -> ModeParameters:
    header_length = 8 if ten else 4
    require(data, header_length, f"MODE SENSE({10 if ten else 6}) header")
    data = bytes(data)
    if ten:
        # SPC-4 Table 454: MODE DATA LENGTH(2), MEDIUM TYPE, DEVICE-SPECIFIC PARAMETER,
        # LONGLBA (byte 4 bit 0), reserved, BLOCK DESCRIPTOR LENGTH(2).
        mode_data_length, medium, specific = be(data, 0, 2), data[2], data[3]
        long_lba, bd_length = bool(data[4] & 0x01), be(data, 6, 2)
        end = min(len(data), mode_data_length + 2)
    else:
        # SPC-4 Table 453: MODE DATA LENGTH, MEDIUM TYPE, DEVICE-SPECIFIC PARAMETER,
        # BLOCK DESCRIPTOR LENGTH.
        mode_data_length, medium, specific, bd_length = data[0], data[1], data[2], data[3]
        long_lba = False
        end = min(len(data), mode_data_length + 1)
    if end < header_length:
        raise ScsiParseError(f"MODE DATA LENGTH {mode_data_length} is shorter than the header")
    body = data[:end]
    bd_end = header_length + bd_length
    return ModeParameters(
        mode_data_length=mode_data_length,
        medium_type=medium,
        device_specific=specific,
        long_lba=long_lba,
        block_descriptors=_block_descriptors(body[header_length:bd_end], long_lba),
        pages=_pages(body[bd_end:]),
        header_length=header_length,
        received=len(data),
    )


def parse_mode_sense6(data: bytes) -> ModeParameters:
    """MODE SENSE(6) parameter data."""
    return _parse(data, ten=False)


def parse_mode_sense10(data: bytes) -> ModeParameters:
    """MODE SENSE(10) parameter data."""
    return _parse(data, ten=True)


def _check_page(page: ModePage, code: ModePageCode) -> bytes:
    if page.page_code != code or page.spf:
        raise ScsiParseError(f"expected mode page 0x{code:02x}, got 0x{page.page_code:02x}")
    return page.data


@dataclass(frozen=True, slots=True)
class CachingPage:
    """Caching mode page (SBC-4 §7.5.5).  ``wce``: write cache enabled; ``rcd``: read
    cache disabled.  Truncated fields read 0."""

    ic: bool
    abpf: bool
    cap: bool
    disc: bool
    size: bool
    wce: bool
    mf: bool
    rcd: bool
    demand_read_retention_priority: int
    write_retention_priority: int
    disable_prefetch_transfer_length: int
    minimum_prefetch: int
    maximum_prefetch: int
    maximum_prefetch_ceiling: int
    fsw: bool
    lbcss: bool
    dra: bool
    nv_dis: bool
    number_of_cache_segments: int
    cache_segment_size: int


def parse_caching_page(page: ModePage) -> CachingPage:
    """Decode a Caching page (page code 0x08)."""
    d = _check_page(page, ModePageCode.CACHING)
    b2, b3, b12 = byte(d, 2), byte(d, 3), byte(d, 12)
    return CachingPage(
        ic=bool(b2 & 0x80),
        abpf=bool(b2 & 0x40),
        cap=bool(b2 & 0x20),
        disc=bool(b2 & 0x10),
        size=bool(b2 & 0x08),
        wce=bool(b2 & 0x04),
        mf=bool(b2 & 0x02),
        rcd=bool(b2 & 0x01),
        demand_read_retention_priority=b3 >> 4,
        write_retention_priority=b3 & 0x0F,
        disable_prefetch_transfer_length=be(d, 4, 2),
        minimum_prefetch=be(d, 6, 2),
        maximum_prefetch=be(d, 8, 2),
        maximum_prefetch_ceiling=be(d, 10, 2),
        fsw=bool(b12 & 0x80),
        lbcss=bool(b12 & 0x40),
        dra=bool(b12 & 0x20),
        nv_dis=bool(b12 & 0x01),
        number_of_cache_segments=byte(d, 13),
        cache_segment_size=be(d, 14, 2),
    )


@dataclass(frozen=True, slots=True)
class ControlPage:
    """Control mode page (SPC-4 §7.5.8).  ``d_sense``: the device returns descriptor-
    format sense; ``queue_algorithm_modifier`` 1 = unrestricted reordering allowed."""

    tst: int
    tmf_only: bool
    dpicz: bool
    d_sense: bool
    gltsd: bool
    rlec: bool
    queue_algorithm_modifier: int
    nuar: bool
    qerr: int
    rac: bool
    ua_intlck_ctrl: int
    swp: bool
    ato: bool
    tas: bool
    atmpe: bool
    rwwp: bool
    autoload_mode: int
    busy_timeout_period: int
    extended_self_test_completion_time: int


def parse_control_page(page: ModePage) -> ControlPage:
    """Decode a Control page (page code 0x0A, subpage 0)."""
    d = _check_page(page, ModePageCode.CONTROL)
    b2, b3, b4, b5 = byte(d, 2), byte(d, 3), byte(d, 4), byte(d, 5)
    return ControlPage(
        tst=b2 >> 5,
        tmf_only=bool(b2 & 0x10),
        dpicz=bool(b2 & 0x08),
        d_sense=bool(b2 & 0x04),
        gltsd=bool(b2 & 0x02),
        rlec=bool(b2 & 0x01),
        queue_algorithm_modifier=b3 >> 4,
        nuar=bool(b3 & 0x08),
        qerr=(b3 >> 1) & 0x03,
        rac=bool(b4 & 0x40),
        ua_intlck_ctrl=(b4 >> 4) & 0x03,
        swp=bool(b4 & 0x08),
        ato=bool(b5 & 0x80),
        tas=bool(b5 & 0x40),
        atmpe=bool(b5 & 0x20),
        rwwp=bool(b5 & 0x10),
        autoload_mode=b5 & 0x07,
        busy_timeout_period=be(d, 8, 2),
        extended_self_test_completion_time=be(d, 10, 2),
    )
