"""Enumerate the logical units behind a session: what ``iscsi-ls -s`` shows, and more.

REPORT LUNS (sent to LUN 0, as SAM-5 §6.33 allows for every target) lists the LUNs;
each one then answers INQUIRY, its capacity when it is a block device, and the Unit
Serial Number / Device Identification VPD pages when it supports them.  A LUN that
fails one of these is still listed, with what could be learned and the error.
"""

from __future__ import annotations

from collections.abc import Generator
from dataclasses import dataclass, field

from iscsikit.errors import IscsiError
from iscsikit.lun import ops
from iscsikit.proto.task import ScsiTask
from iscsikit.scsi import cdb as C
from iscsikit.scsi.capacity import parse_read_capacity10, parse_read_capacity16
from iscsikit.scsi.errors import ScsiCommandError
from iscsikit.scsi.inquiry import DeviceType, parse_inquiry
from iscsikit.scsi.luns import parse_report_luns
from iscsikit.scsi.vpd import (
    parse_vpd_device_identification,
    parse_vpd_supported_pages,
    parse_vpd_unit_serial,
)

#: libiscsi's names for peripheral device types (what iscsi-ls prints after ``Type:``).
TYPE_NAMES: dict[int, str] = {
    0x00: "DIRECT_ACCESS",
    0x01: "SEQUENTIAL_ACCESS",
    0x02: "PRINTER",
    0x03: "PROCESSOR",
    0x04: "WRITE_ONCE",
    0x05: "MMC",
    0x06: "SCANNER",
    0x07: "OPTICAL_MEMORY",
    0x08: "MEDIA_CHANGER",
    0x09: "COMMUNICATIONS",
    0x0C: "STORAGE_ARRAY_CONTROLLER",
    0x0D: "ENCLOSURE_SERVICES",
    0x0E: "SIMPLIFIED_DIRECT_ACCESS",
    0x0F: "OPTICAL_CARD_READER",
    0x10: "BRIDGE_CONTROLLER",
    0x11: "OSD",
    0x12: "AUTOMATION",
    0x13: "SECURITY_MANAGER",
    0x1E: "WELL_KNOWN_LUN",
    0x1F: "UNKNOWN",
}

_BLOCK_TYPES = (DeviceType.DISK, DeviceType.RBC, DeviceType.ZBC)


@dataclass(slots=True)
class LunInfo:
    """One logical unit as the scan found it."""

    lun: int
    device_type: int = 0x1F
    vendor: str = ""
    product: str = ""
    revision: str = ""
    size: int | None = None
    block_size: int | None = None
    serial: str | None = None
    identifiers: list[str] = field(default_factory=list)
    error: str | None = None

    @property
    def type_name(self) -> str:
        return TYPE_NAMES.get(self.device_type, f"TYPE_0x{self.device_type:02X}")

    def to_dict(self) -> dict[str, object]:
        return {
            "lun": self.lun,
            "type": self.type_name,
            "device_type": self.device_type,
            "vendor": self.vendor,
            "product": self.product,
            "revision": self.revision,
            "size": self.size,
            "block_size": self.block_size,
            "serial": self.serial,
            "identifiers": list(self.identifiers),
            "error": self.error,
        }


def _data(task: ScsiTask) -> bytes:
    return ops.data_of(task)


def report_luns() -> Generator[list[ScsiTask], None, list[int]]:
    """The LUN numbers the target reports, growing the buffer when the list is long."""
    length = 4096
    while True:
        task = yield from ops.command(
            C.report_luns(allocation_length=length), lun=0, read_length=length
        )
        listing = parse_report_luns(_data(task))
        if not listing.truncated or length >= 1 << 20:
            return sorted({entry.number for entry in listing})
        length = min(listing.required_allocation_length, 1 << 20)


def describe(lun: int) -> Generator[list[ScsiTask], None, LunInfo]:
    """INQUIRY, capacity and identifiers of one LUN; failures land in ``error``."""
    info = LunInfo(lun)
    try:
        task = yield from ops.command(C.inquiry(), lun=lun, read_length=255)
        inquiry = parse_inquiry(_data(task))
        info.device_type = int(inquiry.device_type)
        info.vendor, info.product, info.revision = (
            inquiry.vendor,
            inquiry.product,
            inquiry.revision,
        )
        if inquiry.peripheral_qualifier != 0:
            info.error = "LUN not connected (peripheral qualifier)"
            return info
        if info.device_type in _BLOCK_TYPES:
            try:
                task = yield from ops.command(C.read_capacity16(), lun=lun, read_length=32)
                capacity = parse_read_capacity16(_data(task))
            except ScsiCommandError:
                task = yield from ops.command(C.read_capacity10(), lun=lun, read_length=8)
                capacity = parse_read_capacity10(_data(task))
            info.size, info.block_size = capacity.size_bytes, capacity.block_size
        task = yield from ops.command(C.inquiry(evpd=True, page=0), lun=lun, read_length=255)
        pages = parse_vpd_supported_pages(_data(task))
        if 0x80 in pages:
            task = yield from ops.command(C.inquiry(evpd=True, page=0x80), lun=lun, read_length=255)
            info.serial = parse_vpd_unit_serial(_data(task))
        if 0x83 in pages:
            task = yield from ops.command(
                C.inquiry(evpd=True, page=0x83, allocation_length=1024), lun=lun, read_length=1024
            )
            info.identifiers = [d.value for d in parse_vpd_device_identification(_data(task))]
    except (IscsiError, ValueError) as exc:
        if isinstance(exc, IscsiError) and not isinstance(exc, ScsiCommandError):
            raise  # the session itself failed: not a property of this LUN
        info.error = str(exc)
    return info


def scan() -> Generator[list[ScsiTask], None, list[LunInfo]]:
    """Every LUN of the session's target, described."""
    numbers = yield from report_luns()
    found = []
    for number in numbers:
        found.append((yield from describe(number)))
    return found


__all__ = ["TYPE_NAMES", "LunInfo", "describe", "report_luns", "scan"]
