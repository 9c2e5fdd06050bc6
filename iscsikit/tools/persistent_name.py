"""``iscsikit-persistent-name``: the persistent ``/dev/iscsi/...`` name of a disk, for udev.

    iscsikit-persistent-name sdb        # prints iscsi/bus0/target1/lun1/disk
    iscsikit-persistent-name sdb2       # prints iscsi/bus0/target1/lun1/part2

linux-iscsi created ``/dev/iscsi/bus<B>/target<T>/lun<L>/{disk,partN}`` links whose bus
and target ids stay bound to the target's name across reboots (the bindings file,
:mod:`iscsikit.records.bindings`).  This helper gives the same names to disks of any
iSCSI session (kernel sessions, whoever made them); the opt-in udev rule
``conf/61-iscsikit-persistent.rules`` runs it for every ``sd*`` device and adds the link it
prints.  A device that is not on an iSCSI session prints nothing and exits 1 (udev then
adds no link).  Paths honour ``ISCSIKIT_ROOT``.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from iscsikit.cli.console import ArgumentParser, console_main

__all__ = ["main", "persistent_name"]

#: Exit code when the device is not an iSCSI disk (udev: no link).
NOT_ISCSI = 1


def persistent_name(device: str) -> str | None:
    """``iscsi/bus<B>/target<T>/lun<L>/disk`` (or ``.../part<K>``) for kernel device
    ``device`` (``sdb``, ``sdb1``, ``/dev/sdb``), binding its target when needed; None if
    it is not on an iSCSI session."""
    from iscsikit.config.paths import resolve_paths
    from iscsikit.records.bindings import Bindings
    from iscsikit.sysfs import SysfsContext
    from iscsikit.sysfs.udev import iscsi_disk

    paths = resolve_paths()
    ctx = SysfsContext.from_paths(paths)
    disk = ctx.block_device(device.removeprefix("/dev/"))
    if disk is None:
        return None
    found = iscsi_disk(ctx, disk)
    if found is None:
        return None
    session, lun, part = found
    target = session.targetname
    if not target:
        return None
    binding = Bindings.under(paths.root).bind(target)
    leaf = "disk" if part is None else f"part{part}"
    return f"iscsi/bus{binding.bus}/target{binding.target}/lun{lun}/{leaf}"


def main(argv: Sequence[str] | None = None) -> int:
    parser = ArgumentParser(
        prog="iscsikit-persistent-name",
        description="Print the persistent /dev/iscsi/... name of a disk (for udev).",
    )
    parser.add_argument("device", help="kernel name of the disk or partition (sdb, sdb1)")

    def body() -> int:
        args = parser.parse_args(argv)
        name = persistent_name(args.device)
        if name is None:
            return NOT_ISCSI
        print(name)
        return 0

    return console_main("iscsikit-persistent-name", body)


if __name__ == "__main__":
    sys.exit(main())
