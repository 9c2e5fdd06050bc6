"""Device nodes and ``/dev/disk/by-path`` names of a session's disks, through udev.

udev names an iSCSI LUN's disk ``/dev/disk/by-path/ip-<addr>:<port>-iscsi-<target>-lun-<N>``
(``-part<K>`` for a partition): 60-persistent-storage.rules links ``disk/by-path/$ID_PATH``,
and the ``path_id`` builtin (systemd src/udev/udev-builtin-path_id.c, ``handle_scsi_iscsi``)
composes ``ID_PATH`` from the lead connection's ``persistent_address`` and
``persistent_port``, the session's ``targetname`` and the SCSI device's LUN.

Where the names come from, in order:

* **the udev database** (what udevd actually made): :class:`PyudevDatabase` asks libudev
  through pyudev (the device's ``DEVLINKS``) -- the running system only, because libudev
  refuses sysfs paths outside ``/sys``; :class:`RootedUdevDatabase` reads the same records
  (``run/udev/data/b<major>:<minor>``, one ``S:<link>`` line per symlink) under any root,
  which is how tests and ``ISCSIKIT_ROOT`` trees are served;
* **the fallback** when udev has no record (udevd not running, the event not processed
  yet): :func:`iscsi_id_path` computes the name as ``path_id`` would, from sysfs alone.
  The link may then not exist; the name is still the one udev will create.

:func:`wait_for_by_path` waits, bounded, until the link of a session's LUN exists, woken by
a :func:`block_monitor` (pyudev, ``subsystem=block``) when one is given.  pyudev needs
libudev at run time (Debian ``libudev1``); it is imported only when a pyudev object is
made.  Nothing here writes.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from iscsikit.errors import IscsiError, SessionNotFoundError
from iscsikit.sysfs.scsi import HCTL, BlockDevice, ScsiDevice

if TYPE_CHECKING:
    import pyudev

    from iscsikit.sysfs.context import SysfsContext
    from iscsikit.sysfs.session import IscsiSession

__all__ = [
    "iscsi_disk",
    "BY_PATH",
    "DeviceWaitTimeoutError",
    "PyudevDatabase",
    "RootedUdevDatabase",
    "SessionDisk",
    "UdevDatabase",
    "UdevRecord",
    "block_monitor",
    "by_path_name",
    "iscsi_id_path",
    "lun_path_component",
    "session_disks",
    "udev_database",
    "udev_is_running",
    "wait_for_by_path",
]

#: Where 60-persistent-storage.rules puts path links, relative to /dev.
BY_PATH = "disk/by-path"

_SESSION = re.compile(r"^session(\d+)$")


class DeviceWaitTimeoutError(IscsiError, TimeoutError):
    """A device node or link did not appear within the time allowed."""


# -- udev's path_id, from sysfs alone ---------------------------------------------------


def lun_path_component(lun: int) -> str:
    """``lun-N`` as path_id's ``format_lun_number`` writes it: decimal below 256, else the
    two 16-bit halves of the kernel's LUN number swapped back into SAM order."""
    if lun < 256:
        return f"lun-{lun}"
    return f"lun-0x{lun & 0xFFFF:04x}{(lun >> 16) & 0xFFFF:04x}00000000"


def iscsi_id_path(session: IscsiSession, lun: int) -> str | None:
    """udev's ``ID_PATH`` for LUN ``lun`` of ``session``
    (``ip-<persistent_address>:<persistent_port>-iscsi-<targetname>-lun-<N>``), or None if
    the session lacks an attribute path_id needs (then udev makes no by-path link)."""
    target = session.targetname
    conn = session.connection()
    if not target or conn is None:
        return None
    # path_id reads the raw attribute strings: an IPv6 address is not bracketed.
    address, port = conn.attr("persistent_address"), conn.attr("persistent_port")
    if not address or not port:
        return None
    return f"ip-{address}:{port}-iscsi-{target}-{lun_path_component(lun)}"


def _owner(disk: BlockDevice) -> tuple[ScsiDevice, int | None] | None:
    """The SCSI device a disk (or partition) hangs from, and the partition number."""
    path = disk.real_path
    part = disk.attr_int("partition")
    if part is not None:
        path = path.parent  # a partition sits inside its disk's directory
    scsi = path.parent.parent  # .../H:C:T:L/block/sdX
    if not HCTL.match(scsi.name):
        return None
    return ScsiDevice(scsi), part


def iscsi_disk(ctx: SysfsContext, disk: BlockDevice) -> tuple[IscsiSession, int, int | None] | None:
    """Where a disk (or partition) is on iSCSI: its session, its LUN, its partition
    number (None for the whole disk); None if it is not on an iSCSI session.  As udev's
    path_id does, it walks up from the SCSI device to the first ``session<N>``."""
    found = _owner(disk)
    if found is None:
        return None
    scsi, part = found
    sid = next(
        (int(m.group(1)) for p in scsi.real_path.parents if (m := _SESSION.match(p.name))), None
    )
    session = None if sid is None else ctx.session(sid)
    if session is None:
        return None
    return session, scsi.lun, part


def by_path_name(ctx: SysfsContext, disk: BlockDevice) -> str | None:
    """The ``/dev/disk/by-path`` name udev gives a disk or partition of an iSCSI LUN
    (``-part<K>`` appended for partition K), computed from sysfs; None if the disk is not
    on an iSCSI session."""
    found = iscsi_disk(ctx, disk)
    if found is None:
        return None
    session, lun, part = found
    name = iscsi_id_path(session, lun)
    if name is None:
        return None
    return name if part is None else f"{name}-part{part}"


# -- the udev database ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class UdevRecord:
    """What udev knows of a device: its node and its symlinks (absolute, ``/dev/...``)."""

    node: str
    links: tuple[str, ...]

    def by_path(self) -> str | None:
        """The first ``/dev/disk/by-path`` link, if udev made one."""
        prefix = f"/dev/{BY_PATH}/"
        return next((link for link in self.links if link.startswith(prefix)), None)


class UdevDatabase(Protocol):
    """A source of udev records; None means udev has none for the device."""

    def record(self, disk: BlockDevice) -> UdevRecord | None: ...


class RootedUdevDatabase:
    """udev's database files under ``<root>/run/udev/data`` read as libudev reads them:
    ``S:`` lines are symlinks relative to /dev, an ``N:`` line (udev before 176) the
    node's name."""

    def __init__(self, root: Path) -> None:
        self.data = Path(root) / "run/udev/data"

    def record(self, disk: BlockDevice) -> UdevRecord | None:
        devnum = disk.devnum
        if devnum is None:
            return None
        try:
            text = (self.data / f"b{devnum[0]}:{devnum[1]}").read_text(errors="replace")
        except OSError:
            return None
        node, links = disk.devname, []
        for line in text.splitlines():
            key, _, value = line.partition(":")
            if key == "S" and value:
                links.append(f"/dev/{value}")
            elif key == "N" and value:
                node = value
        return UdevRecord(f"/dev/{node}", tuple(sorted(links)))


class PyudevDatabase:
    """libudev's view through pyudev, for the running system's ``/sys`` only."""

    def __init__(self, context: pyudev.Context | None = None) -> None:
        import pyudev

        self._pyudev = pyudev
        self.context = context if context is not None else pyudev.Context()

    def record(self, disk: BlockDevice) -> UdevRecord | None:
        try:
            dev = self._pyudev.Devices.from_sys_path(self.context, str(disk.real_path))
        except self._pyudev.DeviceNotFoundError:
            return None
        if not dev.is_initialized:  # no database record: udevd has not seen it
            return None
        node = dev.device_node or f"/dev/{disk.devname}"
        return UdevRecord(node, tuple(sorted(dev.device_links)))


def udev_is_running(ctx: SysfsContext) -> bool:
    """Whether a udevd serves this root (its control socket exists)."""
    return (ctx.root / "run/udev/control").exists()


def udev_database(ctx: SysfsContext) -> UdevDatabase:
    """The records for ``ctx``: pyudev's for the running system when libudev loads, the
    rooted reader for any other root (or without libudev)."""
    if ctx.root.resolve() == Path("/"):
        try:
            return PyudevDatabase()
        except (ImportError, OSError):  # pyudev raises ImportError when libudev is missing
            pass
    return RootedUdevDatabase(ctx.root)


# -- a session's disks ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SessionDisk:
    """A disk of a session's LUN with its node and names (``/dev/...``, as udev names
    them; under a non-``/`` root they are relative to that root)."""

    sid: int
    hctl: tuple[int, int, int, int]
    disk: str
    node: str
    #: The by-path link: udev's when it has a record, else the name path_id would give.
    by_path: str | None
    links: tuple[str, ...]
    #: True if node and links come from udev's database, False if computed from sysfs.
    from_udev: bool

    @property
    def lun(self) -> int:
        return self.hctl[3]


def session_disks(
    ctx: SysfsContext, session: IscsiSession, db: UdevDatabase | None = None
) -> list[SessionDisk]:
    """The disks of ``session``'s LUNs, LUN order; ``db`` defaults to
    :func:`udev_database`."""
    db = db if db is not None else udev_database(ctx)
    out = []
    for dev in session.scsi_devices():
        disk = dev.block()
        if disk is None:
            continue
        record = db.record(disk)
        if record is not None:
            node, links, by_path, from_udev = record.node, record.links, record.by_path(), True
        else:
            name = by_path_name(ctx, disk)
            by_path = None if name is None else f"/dev/{BY_PATH}/{name}"
            node, links, from_udev = f"/dev/{disk.devname}", (), False
        out.append(SessionDisk(session.sid, dev.hctl, disk.name, node, by_path, links, from_udev))
    return out


# -- waiting for a link -----------------------------------------------------------------


def block_monitor(source: str = "udev") -> pyudev.Monitor:
    """A started pyudev monitor of ``subsystem=block`` events: ``udev`` events (sent after
    udevd made the links) or raw ``kernel`` ones.  Drop the reference to close it:
    pyudev frees the libudev monitor (closing its fd by hand makes libudev abort)."""
    import pyudev

    monitor = pyudev.Monitor.from_netlink(pyudev.Context(), source=source)
    monitor.filter_by("block")
    monitor.start()
    return monitor


def wait_for_by_path(
    ctx: SysfsContext,
    sid: int,
    lun: int,
    *,
    timeout: float,
    monitor: pyudev.Monitor | None = None,
    interval: float = 0.1,
    clock: Callable[[], float] = time.monotonic,
) -> Path:
    """Wait until ``/dev/disk/by-path/<name>`` of LUN ``lun`` of session ``sid`` exists
    (under ``ctx.root``) and return it.  The name comes from sysfs (:func:`iscsi_id_path`),
    so the wait can start before the LUN appears.  The link is checked every ``interval``
    seconds, and at once after each block event of ``monitor``.  Raises
    :class:`SessionNotFoundError` for an unknown session and
    :class:`DeviceWaitTimeoutError` after ``timeout`` seconds."""
    session = ctx.session(sid)
    if session is None:
        raise SessionNotFoundError(f"no session {sid}")
    name = iscsi_id_path(session, lun)
    if name is None:
        raise DeviceWaitTimeoutError(f"session {sid} has no by-path name (no portal)")
    link = ctx.root / "dev" / BY_PATH / name
    deadline = clock() + timeout
    while True:
        if os.path.exists(link):
            return link
        remaining = deadline - clock()
        if remaining <= 0:
            raise DeviceWaitTimeoutError(f"{link} did not appear within {timeout:g} s")
        step = min(remaining, interval)
        if monitor is not None:
            monitor.poll(timeout=step)  # any block event: look again
        else:
            time.sleep(step)
