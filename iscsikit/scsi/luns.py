"""REPORT LUNS parameter data and SAM-5 logical unit numbers (SPC-4 §6.33, SAM-5 §4.7).

This module owns the 8-byte LUN structure: decoding its first-level addressing method
(:class:`Lun`), the integer iscsikit uses to name a LUN (:func:`lun_number`, identical to
Linux's ``scsilun_to_int()`` and to libiscsi's LUN argument, so numbers agree with the
kernel's and libiscsi's), and the reverse (:func:`encode_lun`, :func:`lun_bytes`).

Numbering, concretely: a LUN sent as ``00 05 00..`` (peripheral, bus 0) is 5; a LUN
sent as ``41 2C 00..`` (flat space LUN 300) is 0x412C = 16684, as in Linux sysfs; the
REPORT LUNS well-known LUN ``C1 01 00..`` is 0xC101.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum
from typing import Final

from iscsikit.errors import InvalidParameterError
from iscsikit.scsi.buffer import be, require

__all__ = [
    "AddressMethod",
    "Lun",
    "LunList",
    "WellKnownLun",
    "decode_lun",
    "encode_lun",
    "lun_bytes",
    "lun_number",
    "parse_report_luns",
]

_LUN_SIZE: Final = 8
_HEADER: Final = 8


class AddressMethod(IntEnum):
    """ADDRESS METHOD, bits 7-6 of byte 0 (SAM-5 Table 10)."""

    PERIPHERAL = 0b00
    FLAT = 0b01
    LOGICAL_UNIT = 0b10
    EXTENDED = 0b11


class WellKnownLun(IntEnum):
    """Well-known logical units (SPC-4 Table 712)."""

    REPORT_LUNS = 0x01
    ACCESS_CONTROLS = 0x02
    TARGET_LOG_PAGES = 0x03
    SECURITY_PROTOCOL = 0x04


def lun_number(raw: bytes) -> int:
    """Linux ``scsilun_to_int()``: the 8 bytes as four big-endian 16-bit levels, first
    level in the low bits.  Shorter input is zero-padded."""
    raw = bytes(raw[:_LUN_SIZE]).ljust(_LUN_SIZE, b"\0")
    return sum(int.from_bytes(raw[i : i + 2], "big") << (i * 8) for i in range(0, _LUN_SIZE, 2))


def lun_bytes(number: int) -> bytes:
    """Linux ``int_to_scsilun()``: the exact inverse of :func:`lun_number`."""
    if not 0 <= number < 1 << 64:
        raise InvalidParameterError(f"LUN number {number} out of range")
    return b"".join(((number >> (i * 8)) & 0xFFFF).to_bytes(2, "big") for i in range(0, 8, 2))


def encode_lun(n: int) -> bytes:
    """The 8 bytes to address LUN ``n``: peripheral below 256, flat space below 16384.

    Larger numbers are taken as :func:`lun_number` values (which carry their addressing
    method in the top bits of each level, e.g. 0x412C) and encoded with
    :func:`lun_bytes`.  So ``encode_lun(300)`` is flat ``41 2C`` while
    ``lun_number(encode_lun(300))`` is 16684, exactly as under Linux.
    """
    if not 0 <= n < 1 << 64:
        raise InvalidParameterError(f"LUN {n} out of range")
    if n < 0x100:
        return bytes([0x00, n]) + bytes(6)
    if n < 0x4000:
        return bytes([0x40 | (n >> 8), n & 0xFF]) + bytes(6)
    return lun_bytes(n)


@dataclass(frozen=True, slots=True)
class Lun:
    """One 8-byte LUN, with its first addressing level decoded (SAM-5 §4.7.7).

    ``lun`` is the logical unit number within the addressing method (peripheral:
    byte 1; flat: 14 bits; logical unit: 5 bits; extended flat space: 24 bits; well
    known: the W-LUN number).  ``bus`` / ``target`` are set only where the method has
    them.  ``number`` is the Linux / libiscsi integer (:func:`lun_number`).
    """

    raw: bytes
    address_method: AddressMethod
    lun: int
    bus: int | None = None
    target: int | None = None
    well_known: WellKnownLun | int | None = None

    @property
    def number(self) -> int:
        return lun_number(self.raw)

    @property
    def hierarchical(self) -> bool:
        """True when a second addressing level is present (bytes 2-7 not all zero)."""
        return any(self.raw[2:])


def decode_lun(raw: bytes) -> Lun:
    """Decode the first level of an 8-byte LUN (shorter input is zero-padded)."""
    raw = bytes(raw[:_LUN_SIZE]).ljust(_LUN_SIZE, b"\0")
    b0, b1 = raw[0], raw[1]
    method = AddressMethod(b0 >> 6)
    if method == AddressMethod.PERIPHERAL:
        # SAM-5 §4.7.7.2: BUS IDENTIFIER (bits 5-0); 0 = this target's own LUN in byte 1.
        bus = b0 & 0x3F
        return Lun(raw, method, b1, bus=bus)
    if method == AddressMethod.FLAT:
        return Lun(raw, method, ((b0 & 0x3F) << 8) | b1)
    if method == AddressMethod.LOGICAL_UNIT:
        # SAM-5 §4.7.7.4: TARGET(5-0 of byte 0), BUS NUMBER(7-5), LUN(4-0 of byte 1).
        return Lun(raw, method, b1 & 0x1F, bus=b1 >> 5, target=b0 & 0x3F)
    # Extended (SAM-5 §4.7.7.5): LENGTH bits 5-4, EXTENDED ADDRESS METHOD bits 3-0.
    length, ext = (b0 >> 4) & 0x03, b0 & 0x0F
    if length == 0 and ext == 0x1:
        try:
            wlun: WellKnownLun | int = WellKnownLun(b1)
        except ValueError:
            wlun = b1
        return Lun(raw, method, b1, well_known=wlun)
    if length == 1 and ext == 0x2:
        return Lun(raw, method, be(raw, 1, 3))  # extended flat space, 24 bits
    if length == 2 and ext == 0x2:
        return Lun(raw, method, be(raw, 1, 5))  # long extended flat space, 40 bits
    return Lun(raw, method, be(raw, 1, 1 + 2 * length))


class LunList(list[Lun]):
    """The LUNs of a REPORT LUNS answer, plus what the header said about its length.

    ``list_length`` is the LUN LIST LENGTH field (bytes of LUN entries the target has);
    when ``truncated``, retry with ``required_allocation_length``.
    """

    list_length: int

    def __init__(self, luns: list[Lun], list_length: int) -> None:
        super().__init__(luns)
        self.list_length = list_length

    @property
    def required_allocation_length(self) -> int:
        return self.list_length + _HEADER

    @property
    def truncated(self) -> bool:
        return len(self) < self.list_length // _LUN_SIZE


def parse_report_luns(data: bytes) -> LunList:
    """REPORT LUNS parameter data (SPC-4 Table 286): LUN LIST LENGTH(4), reserved(4),
    then 8 bytes per LUN.  Only LUNs fully inside both the buffer and the list length
    are returned; see :attr:`LunList.truncated`."""
    require(data, 4, "REPORT LUNS data")
    list_length = be(data, 0, 4)
    end = min(len(data), _HEADER + list_length)
    luns = [
        decode_lun(data[offset : offset + _LUN_SIZE])
        for offset in range(_HEADER, end - _LUN_SIZE + 1, _LUN_SIZE)
    ]
    return LunList(luns, list_length)
