"""Standard INQUIRY data (SPC-4 §6.6.2) and the peripheral device types (SPC-4 Table 146).

This module owns :func:`parse_inquiry` and the :class:`DeviceType` numbers, which the
VPD page parsers (:mod:`iscsikit.scsi.vpd`) share for byte 0 of every page.  A short
buffer (allocation length below the target's ADDITIONAL LENGTH + 5) parses as far as it
goes; :attr:`StandardInquiry.truncated` says so, and ``additional_length + 5`` is the
allocation length that would have fetched everything.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

from iscsikit.scsi.buffer import byte, require

__all__ = ["DeviceType", "StandardInquiry", "device_type", "parse_inquiry"]


class DeviceType(IntEnum):
    """PERIPHERAL DEVICE TYPE (SPC-4 Table 146); unlisted values are reserved."""

    DISK = 0x00
    TAPE = 0x01
    PRINTER = 0x02
    PROCESSOR = 0x03
    WORM = 0x04
    CDROM = 0x05
    SCANNER = 0x06
    OPTICAL = 0x07
    MEDIUM_CHANGER = 0x08
    COMMUNICATIONS = 0x09
    RAID = 0x0C
    ENCLOSURE = 0x0D
    RBC = 0x0E
    OPTICAL_CARD = 0x0F
    BRIDGE = 0x10
    OSD = 0x11
    ADC = 0x12
    SECURITY_MANAGER = 0x13
    ZBC = 0x14
    WLUN = 0x1E
    UNKNOWN = 0x1F


def device_type(value: int) -> DeviceType | int:
    """``DeviceType(value)``, or the bare number for a reserved type."""
    try:
        return DeviceType(value & 0x1F)
    except ValueError:
        return value & 0x1F


def _ascii(data: bytes) -> str:
    return data.decode("ascii", errors="replace").rstrip(" \0")


@dataclass(frozen=True, slots=True)
class StandardInquiry:
    """Standard INQUIRY data.  Flags not listed (obsolete, vendor-specific) are dropped.

    ``peripheral_qualifier`` 0 = a device is connected, 1 = capable but not connected,
    3 = no logical unit at this LUN (SPC-4 §6.6.2).
    """

    peripheral_qualifier: int
    device_type: DeviceType | int
    removable: bool
    lu_cong: bool
    version: int
    normaca: bool
    hisup: bool
    response_data_format: int
    additional_length: int
    sccs: bool
    acc: bool
    tpgs: int
    threepc: bool
    protect: bool
    encserv: bool
    multip: bool
    cmdque: bool
    vendor: str
    product: str
    revision: str
    version_descriptors: tuple[int, ...]
    raw: bytes

    @property
    def truncated(self) -> bool:
        """True when the target had more bytes than the allocation length allowed."""
        return len(self.raw) < self.additional_length + 5

    @property
    def connected(self) -> bool:
        return self.peripheral_qualifier == 0


def parse_inquiry(data: bytes) -> StandardInquiry:
    """Decode standard INQUIRY data; at least the 5-byte header must be present."""
    require(data, 5, "standard INQUIRY data")
    data = bytes(data)
    # SPC-4 Table 145: 0 PQ|PDT, 1 RMB|LU_CONG, 2 VERSION, 3 NORMACA|HISUP|RDF,
    # 4 ADDITIONAL LENGTH, 5 SCCS|ACC|TPGS|3PC|PROTECT, 6 ENCSERV|MULTIP,
    # 7 CMDQUE, 8-15 VENDOR, 16-31 PRODUCT, 32-35 REVISION, 58-73 VERSION DESCRIPTORS.
    end = min(len(data), data[4] + 5)
    body = data[:end]
    descriptors: list[int] = []
    for offset in range(58, min(end, 74) - 1, 2):
        value = int.from_bytes(body[offset : offset + 2], "big")
        if value:
            descriptors.append(value)
    b5, b6, b7 = byte(body, 5), byte(body, 6), byte(body, 7)
    return StandardInquiry(
        peripheral_qualifier=data[0] >> 5,
        device_type=device_type(data[0]),
        removable=bool(data[1] & 0x80),
        lu_cong=bool(data[1] & 0x40),
        version=data[2],
        normaca=bool(data[3] & 0x20),
        hisup=bool(data[3] & 0x10),
        response_data_format=data[3] & 0x0F,
        additional_length=data[4],
        sccs=bool(b5 & 0x80),
        acc=bool(b5 & 0x40),
        tpgs=(b5 >> 4) & 0x03,
        threepc=bool(b5 & 0x08),
        protect=bool(b5 & 0x01),
        encserv=bool(b6 & 0x40),
        multip=bool(b6 & 0x10),
        cmdque=bool(b7 & 0x02),
        vendor=_ascii(body[8:16]),
        product=_ascii(body[16:32]),
        revision=_ascii(body[32:36]),
        version_descriptors=tuple(descriptors),
        raw=data,
    )
