"""READ CAPACITY(10) and READ CAPACITY(16) parameter data (SBC-4 §5.15.2, §5.16.2).

This module owns :class:`Capacity`, the size and block geometry of a logical unit.
READ CAPACITY(10) answers 0xFFFFFFFF as the last LBA when the capacity does not fit 32
bits; :attr:`Capacity.needs_16` tells the caller to ask READ CAPACITY(16) instead.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from iscsikit.scsi.buffer import be, byte, require

__all__ = ["Capacity", "parse_read_capacity10", "parse_read_capacity16"]

_RC10_OVERFLOW: Final = 0xFFFF_FFFF


@dataclass(frozen=True, slots=True)
class Capacity:
    """A logical unit's capacity.  Fields after ``block_size`` come from READ CAPACITY(16).

    ``protection_type`` is 0 when protection is off (PROT_EN=0), else P_TYPE + 1
    (Type 1-3, SBC-4 Table 127).  ``lbppbe``: logical blocks per physical block
    exponent.  ``lowest_aligned_lba``: the first LBA that starts a physical block.
    """

    last_lba: int
    block_size: int
    from_16: bool = False
    prot_en: bool = False
    p_type: int = 0
    rc_basis: int = 0
    p_i_exponent: int = 0
    lbppbe: int = 0
    lbpme: bool = False
    lbprz: bool = False
    lowest_aligned_lba: int = 0

    @property
    def blocks(self) -> int:
        return self.last_lba + 1

    @property
    def size_bytes(self) -> int:
        return self.blocks * self.block_size

    @property
    def needs_16(self) -> bool:
        """READ CAPACITY(10) overflowed: the real capacity needs READ CAPACITY(16)."""
        return not self.from_16 and self.last_lba == _RC10_OVERFLOW

    @property
    def protection_type(self) -> int:
        return self.p_type + 1 if self.prot_en else 0

    @property
    def physical_block_size(self) -> int:
        return self.block_size << self.lbppbe


def parse_read_capacity10(data: bytes) -> Capacity:
    """READ CAPACITY(10) data: RETURNED LOGICAL BLOCK ADDRESS(4), BLOCK LENGTH(4)."""
    require(data, 8, "READ CAPACITY(10) data")
    return Capacity(last_lba=be(data, 0, 4), block_size=be(data, 4, 4))


def parse_read_capacity16(data: bytes) -> Capacity:
    """READ CAPACITY(16) data (SBC-4 Table 126); bytes past the first 12 may be missing.

    0-7 RETURNED LOGICAL BLOCK ADDRESS, 8-11 LOGICAL BLOCK LENGTH, 12 RC BASIS(5-4)
    P_TYPE(3-1) PROT_EN(0), 13 P_I_EXPONENT(7-4) LBPPBE(3-0), 14-15 LBPME(15) LBPRZ(14)
    LOWEST ALIGNED LOGICAL BLOCK ADDRESS(13-0).
    """
    require(data, 12, "READ CAPACITY(16) data")
    b12, b13 = byte(data, 12), byte(data, 13)
    b14_15 = be(data, 14, 2)
    return Capacity(
        last_lba=be(data, 0, 8),
        block_size=be(data, 8, 4),
        from_16=True,
        prot_en=bool(b12 & 0x01),
        p_type=(b12 >> 1) & 0x07,
        rc_basis=(b12 >> 4) & 0x03,
        p_i_exponent=b13 >> 4,
        lbppbe=b13 & 0x0F,
        lbpme=bool(b14_15 & 0x8000),
        lbprz=bool(b14_15 & 0x4000),
        lowest_aligned_lba=b14_15 & 0x3FFF,
    )
