"""SCSI hosts, targets, devices (LUNs) and the block devices bound to them.

The SCSI mid-layer's layout, as Linux 6.1 lays it out for an iscsi_tcp session
(drivers/scsi/scsi_sysfs.c, sd.c, block/genhd.c):

* ``class/scsi_host/hostH`` -- ``proc_name``, ``state`` and the write-only ``scan``
  (``"C T L"``, ``-`` a wildcard); its ``device`` is ``devices/platform/hostH``;
* ``devices/.../hostH/sessionS/targetH:C:T`` -- a SCSI target (``bus/scsi/devices``);
* ``.../targetH:C:T/H:C:T:L`` -- a SCSI device: ``state``, ``type``, ``vendor``,
  ``model``, ``rev``, ``queue_depth`` and the write-only ``rescan`` and ``delete``;
* ``.../H:C:T:L/block/sdX`` -- the disk ``sd`` bound to it: ``dev`` (``major:minor``),
  ``size`` (always in 512-byte sectors, whatever the logical block size), ``ro``,
  ``queue/logical_block_size``; reached too as ``block/sdX``, ``class/block/sdX`` and
  ``dev/block/M:m``.

Only :meth:`ScsiDevice.rescan`, :meth:`ScsiDevice.delete` and :meth:`ScsiHost.scan`
write, to the control files the kernel provides for that.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from iscsikit.sysfs.attrs import Device, sort_names

if TYPE_CHECKING:
    from iscsikit.sysfs.context import SysfsContext

__all__ = ["SECTOR", "BlockDevice", "ScsiDevice", "ScsiHost", "ScsiTarget", "write_attr"]

#: The unit of a block device's ``size`` attribute (include/linux/blk_types.h SECTOR_SHIFT).
SECTOR = 512

HCTL = re.compile(r"^(\d+):(\d+):(\d+):(\d+)$")
TARGET = re.compile(r"^target(\d+):(\d+):(\d+)$")


def write_attr(path: Path, value: str) -> None:
    """Write a sysfs control file; errors are the caller's (iscsiadm ignores them)."""
    with path.open("w") as f:
        f.write(value)


def _children(directory: Path, pattern: re.Pattern[str]) -> list[str]:
    try:
        return sort_names([p.name for p in directory.iterdir() if pattern.match(p.name)])
    except OSError:
        return []


class BlockDevice(Device):
    """A disk, ``class/block/sdX``."""

    __slots__ = ()

    @property
    def devnum(self) -> tuple[int, int] | None:
        """``(major, minor)`` from ``dev``; None if unreadable."""
        text = self.attr("dev")
        major, sep, minor = (text or "").partition(":")
        if not sep or not major.isdigit() or not minor.isdigit():
            return None
        return int(major), int(minor)

    @property
    def size_sectors(self) -> int | None:
        return self.attr_int("size")

    @property
    def size(self) -> int | None:
        """Capacity in bytes (``size`` counts 512-byte sectors for every disk)."""
        sectors = self.size_sectors
        return None if sectors is None else sectors * SECTOR

    @property
    def logical_block_size(self) -> int | None:
        return self.attr_int("queue/logical_block_size")

    @property
    def read_only(self) -> bool:
        return self.attr_int("ro", 0) == 1

    @property
    def devname(self) -> str:
        """The node name under /dev the kernel asks for (``DEVNAME`` in ``uevent``; the
        device's name when the kernel gives none)."""
        for line in (self.attr("uevent") or "").splitlines():
            key, _, value = line.partition("=")
            if key == "DEVNAME" and value:
                return value
        return self.name

    def partitions(self) -> list[BlockDevice]:
        """``sdX1``, ``sdX2``...: sub-directories with a ``partition`` attribute."""
        try:
            found = [p for p in self.path.iterdir() if (p / "partition").is_file()]
        except OSError:
            return []
        return [BlockDevice(p) for p in sorted(found, key=lambda p: p.name)]

    def dump(self) -> dict[str, Any]:
        out = super().dump()
        out["size"] = self.size
        return out


class ScsiDevice(Device):
    """A SCSI device ``H:C:T:L`` (under ``devices/.../targetH:C:T/``)."""

    __slots__ = ()

    @property
    def hctl(self) -> tuple[int, int, int, int]:
        m = HCTL.match(self.name)
        if m is None:  # pragma: no cover - only built from matching names
            raise ValueError(self.name)
        h, c, t, lun = (int(g) for g in m.groups())
        return h, c, t, lun

    @property
    def host_no(self) -> int:
        return self.hctl[0]

    @property
    def channel(self) -> int:
        return self.hctl[1]

    @property
    def target_id(self) -> int:
        return self.hctl[2]

    @property
    def lun(self) -> int:
        return self.hctl[3]

    @property
    def state(self) -> str | None:
        """``running``, ``offline``, ``blocked``, ``transport-offline``..."""
        return self.attr("state")

    @property
    def type(self) -> int | None:
        """The peripheral device type (0 disk, 5 CD-ROM, 0xc the storage controller)."""
        return self.attr_int("type")

    @property
    def vendor(self) -> str | None:
        """The INQUIRY vendor, without the padding the kernel prints."""
        text = self.attr("vendor")
        return None if text is None else text.strip()

    @property
    def model(self) -> str | None:
        text = self.attr("model")
        return None if text is None else text.strip()

    @property
    def rev(self) -> str | None:
        text = self.attr("rev")
        return None if text is None else text.strip()

    @property
    def queue_depth(self) -> int | None:
        return self.attr_int("queue_depth")

    def target(self) -> ScsiTarget:
        """``targetH:C:T``, the parent in ``devices/`` (``bus/scsi/devices`` is flat)."""
        return ScsiTarget(self.real_path.parent)

    def block_devices(self) -> list[str]:
        """Disks bound to this device: ``block/sdX`` (or a pre-2.6.25 ``block:sdX`` link)."""
        block = self.path / "block"
        if block.is_dir():
            return sort_names([p.name for p in block.iterdir()])
        return sort_names(
            [p.name.partition(":")[2] for p in self.path.glob("block:*") if p.is_symlink()]
        )

    @property
    def block_device(self) -> str | None:
        """The first disk, as iscsiadm's ``iscsi_sysfs_get_blockdev_from_lun`` reports it."""
        found = self.block_devices()
        return found[0] if found else None

    def block(self) -> BlockDevice | None:
        """The first disk as an object (None before ``sd`` bound the device)."""
        name = self.block_device
        if name is None:
            return None
        path = self.path / "block" / name
        return BlockDevice(path if path.is_dir() else self.path / f"block:{name}")

    def rescan(self) -> None:
        """Ask the kernel to re-read this device's capacity (online resize): ``1`` to
        ``rescan``."""
        write_attr(self.path / "rescan", "1")

    def delete(self) -> None:
        """Remove the device from the kernel (``1`` to ``delete``); a later host scan
        finds it again."""
        write_attr(self.path / "delete", "1")

    def dump(self) -> dict[str, Any]:
        out = super().dump()
        out["block_devices"] = self.block_devices()
        return out


class ScsiTarget(Device):
    """A SCSI target ``targetH:C:T``."""

    __slots__ = ()

    @property
    def htc(self) -> tuple[int, int, int]:
        m = TARGET.match(self.name)
        if m is None:  # pragma: no cover - only built from matching names
            raise ValueError(self.name)
        h, c, t = (int(g) for g in m.groups())
        return h, c, t

    def devices(self) -> list[ScsiDevice]:
        """Its LUNs, in alphasort order (as iscsiadm walks them)."""
        return [ScsiDevice(self.path / n) for n in _children(self.path, HCTL)]


class ScsiHost(Device):
    """``class/scsi_host/hostH``: the mid-layer's view of a host adapter."""

    __slots__ = ("ctx",)

    def __init__(self, ctx: SysfsContext, path: Path) -> None:
        super().__init__(path)
        self.ctx = ctx

    @property
    def host_no(self) -> int:
        return int(self.name.removeprefix("host"))

    @property
    def proc_name(self) -> str | None:
        """The driver: ``iscsi_tcp``, ``qla4xxx``..."""
        return self.attr("proc_name")

    @property
    def state(self) -> str | None:
        """``running``, ``recovery``, ``cancel``, ``del``..."""
        return self.attr("state")

    def targets(self) -> list[ScsiTarget]:
        """Every SCSI target of the host (for iSCSI, one directory down, under the
        session the target belongs to)."""
        top = self.device_path
        found: dict[str, Path] = {n: top / n for n in _children(top, TARGET)}
        try:
            subdirs = [p for p in top.iterdir() if p.is_dir() and not p.is_symlink()]
        except OSError:
            subdirs = []
        for sub in subdirs:
            found.update({n: sub / n for n in _children(sub, TARGET)})
        return [ScsiTarget(found[n]) for n in sort_names(list(found))]

    def devices(self) -> list[ScsiDevice]:
        return [d for t in self.targets() for d in t.devices()]

    def scan(
        self, channel: int | None = None, target: int | None = None, lun: int | None = None
    ) -> None:
        """Scan for new LUNs: ``"C T L"`` to ``scan``, None a wildcard (``- - -`` is what
        ``iscsiadm -R`` writes)."""
        fields = ("-" if v is None else str(v) for v in (channel, target, lun))
        write_attr(self.path / "scan", " ".join(fields))

    def dump(self) -> dict[str, Any]:
        out = super().dump()
        out["host_no"] = self.host_no
        out["devices"] = [d.dump() for d in self.devices()]
        return out
