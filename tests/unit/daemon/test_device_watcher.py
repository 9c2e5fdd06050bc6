"""DeviceWatcher.handle on a kernel-shaped sysfs tree: a disk of one of the daemon's
sessions is announced (with its LUN and by-path name) when added and when removed; disks
of other sessions, partitions' parents unknown to it and non-iSCSI disks are not."""

from __future__ import annotations

from pathlib import Path

import pytest

from iscsikit.daemon.devices import DeviceWatcher
from iscsikit.plugin import SessionEvent, SessionEventKind
from iscsikit.sysfs import SysfsContext
from iscsikit.sysfs.fake import sample_kernel


@pytest.fixture
def events(monkeypatch: pytest.MonkeyPatch) -> list[SessionEvent]:
    seen: list[SessionEvent] = []

    def emit(kind: SessionEventKind, transport: str, target: str | None, portal: object,
             detail: str = "") -> None:  # fmt: skip
        seen.append(SessionEvent(kind, transport, target, str(portal), detail))

    monkeypatch.setattr("iscsikit.daemon.devices.emit", emit)
    return seen


def test_a_disk_of_an_owned_session_is_announced_once(
    tmp_path: Path, events: list[SessionEvent]
) -> None:
    sample_kernel(tmp_path)
    watcher = DeviceWatcher(SysfsContext(tmp_path), owned=lambda sid: sid == 1)
    watcher.handle("add", "sdb", "")
    watcher.handle("change", "sdb", "")  # seen already: not again
    assert [(e.kind, e.transport, e.portal) for e in events] == [
        (SessionEventKind.DEVICE_ADDED, "tcp", "192.168.1.10:3260")
    ]
    assert events[0].detail.startswith("/dev/sdb /dev/disk/by-path/ip-192.168.1.10:3260-iscsi-")
    assert events[0].detail.endswith("-lun-0")
    watcher.handle("remove", "sdb", "")
    assert events[-1].kind is SessionEventKind.DEVICE_REMOVED
    assert events[-1].detail == "/dev/sdb"
    watcher.handle("remove", "sdb", "")  # unknown now: nothing
    assert len(events) == 2


def test_disks_of_other_sessions_and_unknown_disks_are_ignored(
    tmp_path: Path, events: list[SessionEvent]
) -> None:
    sample_kernel(tmp_path)
    watcher = DeviceWatcher(SysfsContext(tmp_path), owned=lambda sid: sid == 2)
    watcher.handle("add", "sdb", "")  # session 1's
    watcher.handle("remove", "sdz", "")
    assert events == []


def test_without_udev_the_watcher_does_not_start(tmp_path: Path) -> None:
    sample_kernel(tmp_path)
    assert DeviceWatcher(SysfsContext(tmp_path), owned=lambda sid: True).start() is False
