"""The daemon's eye on udev: the disks of its kernel sessions as they come and go.

A kernel session's LUNs appear after the login has answered (the host scan runs on its
own, udev makes the links later still), and a LUN added on the target appears at the
next rescan.  :class:`DeviceWatcher` follows udev's ``block`` events on the daemon's
loop; a disk of one of the daemon's sessions is logged with its ``/dev/disk/by-path``
name and announced to plugins through the ``iscsikit_session_event`` hook
(``device added`` / ``device removed``, the detail names the node and the link), so a
plugin can act on a disk the moment it is usable.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Any

from iscsikit.manager.connect import emit
from iscsikit.plugin import SessionEventKind
from iscsikit.proto.address import parse_portal
from iscsikit.sysfs import SysfsContext
from iscsikit.sysfs.scsi import BlockDevice
from iscsikit.sysfs.udev import block_monitor, iscsi_disk, session_disks, udev_is_running

__all__ = ["DeviceWatcher"]

log = logging.getLogger(__name__)


class DeviceWatcher:
    """udev ``block`` events for the sessions ``owned`` says are the daemon's."""

    def __init__(self, sysfs: SysfsContext, owned: Callable[[int], bool]) -> None:
        self.sysfs = sysfs
        self.owned = owned
        #: Disks seen, by name: (sid, lun, target, portal, transport), for their removal.
        self._disks: dict[str, tuple[int, int, str, str, str]] = {}
        self._monitor: Any = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def start(self) -> bool:
        """Watch from now on (False, doing nothing, where udev does not run)."""
        if not udev_is_running(self.sysfs):
            return False
        try:
            self._monitor = block_monitor("udev")
        except (ImportError, OSError) as exc:
            log.warning("no udev monitor: %s", exc)
            return False
        self._loop = asyncio.get_running_loop()
        self._loop.add_reader(self._monitor.fileno(), self._readable)
        return True

    def stop(self) -> None:
        if self._monitor is not None and self._loop is not None:
            with contextlib.suppress(ValueError, OSError):
                self._loop.remove_reader(self._monitor.fileno())
        self._monitor = None  # pyudev closes it (closing the fd by hand makes it abort)

    def _readable(self) -> None:
        monitor = self._monitor
        while monitor is not None:
            device = monitor.poll(timeout=0)
            if device is None:
                return
            if device.get("DEVTYPE") != "disk":
                continue
            try:
                self.handle(device.action or "", device.sys_name, device.sys_path)
            except OSError as exc:  # the disk went while we looked
                log.debug("udev event for %s: %s", device.sys_name, exc)

    def handle(self, action: str, name: str, sys_path: str) -> None:
        """One udev event about disk ``name`` (``sys_path`` under /sys/devices)."""
        if action == "remove":
            seen = self._disks.pop(name, None)
            if seen is not None:
                sid, lun, target, portal, transport = seen
                log.info("session %d: LUN %d (/dev/%s) removed", sid, lun, name)
                emit(SessionEventKind.DEVICE_REMOVED, transport, target,
                     parse_portal(portal), f"/dev/{name}")  # fmt: skip
            return
        if action not in ("add", "change") or name in self._disks:
            return
        located = iscsi_disk(self.sysfs, BlockDevice(self.sysfs.class_dir("block") / name))
        if located is None:
            return
        session, lun, _part = located
        if not self.owned(session.sid):
            return
        disk = next((d for d in session_disks(self.sysfs, session) if d.disk == name), None)
        link = disk.by_path if disk is not None else None
        conn = session.connection()
        portal = f"{conn.persistent_address}:{conn.persistent_port}" if conn else ""
        host = session.host()
        transport = (host.transport_name if host else None) or "tcp"
        target = session.targetname or ""
        self._disks[name] = (session.sid, lun, target, portal, transport)
        log.info("session %d: LUN %d is /dev/%s (%s)", session.sid, lun, name, link or "no link")
        if portal:
            emit(SessionEventKind.DEVICE_ADDED, transport, target, parse_portal(portal),
                 f"/dev/{name} {link or ''}".strip())  # fmt: skip
