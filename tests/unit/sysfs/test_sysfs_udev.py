"""Session disks to device nodes and /dev/disk/by-path names (iscsikit.sysfs.udev).

The path_id fallback and the rooted database reader run on FakeSysfs trees.  pyudev is
tested for real on this host's /sys: libudev reads udev records we write for a loop
device into a private tmpfs /run (``unshare -m``, so the host's /run is untouched and no
live udevd is needed), and a kernel-source block monitor sees a ``change`` uevent.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from iscsikit.errors import SessionNotFoundError
from iscsikit.sysfs import SysfsContext
from iscsikit.sysfs.fake import FakeSession, FakeSysfs
from iscsikit.sysfs.udev import (
    DeviceWaitTimeoutError,
    RootedUdevDatabase,
    UdevRecord,
    block_monitor,
    by_path_name,
    iscsi_id_path,
    lun_path_component,
    session_disks,
    udev_database,
    udev_is_running,
    wait_for_by_path,
)

T1 = "iqn.2003-01.org.example:disk1"
T0 = "iqn.2003-01.org.example:disk0"
P1 = f"ip-192.168.1.20:3260-iscsi-{T1}"


@pytest.fixture
def tree(tmp_path: Path) -> FakeSysfs:
    f = FakeSysfs(tmp_path)
    # Redirected: the connection is on .10, the persistent (discovery) portal is .20.
    f.add_session(FakeSession(1, T1, "192.168.1.10", persistent_address="192.168.1.20"))
    f.add_session(FakeSession(2, T0, "fd00::5", port=3261))
    f.add_lun(1, 0, block="sdb", partitions=1)
    f.add_lun(1, 1, block="sdc")
    f.add_lun(1, 2)  # no disk bound
    f.add_lun(2, 300, block="sdd")
    return f


def test_lun_component_as_path_id() -> None:
    assert [lun_path_component(n) for n in (0, 1, 255)] == ["lun-0", "lun-1", "lun-255"]
    assert lun_path_component(300) == "lun-0x012c000000000000"
    assert lun_path_component(0x10001) == "lun-0x0001000100000000"


def test_id_path_uses_the_persistent_portal(tree: FakeSysfs) -> None:
    ctx = SysfsContext(tree.root)
    s1, s2 = ctx.session(1), ctx.session(2)
    assert s1 is not None and s2 is not None
    assert iscsi_id_path(s1, 0) == f"{P1}-lun-0"
    assert iscsi_id_path(s2, 300) == f"ip-fd00::5:3261-iscsi-{T0}-lun-0x012c000000000000"


def test_by_path_name_of_disks_and_partitions(tree: FakeSysfs) -> None:
    ctx = SysfsContext(tree.root)
    names = {n: by_path_name(ctx, ctx.block_device(n)) for n in ("sdb", "sdb1", "sdc")}  # type: ignore[arg-type]
    assert names == {"sdb": f"{P1}-lun-0", "sdb1": f"{P1}-lun-0-part1", "sdc": f"{P1}-lun-1"}
    # A disk that is not on an iSCSI session has no such name.
    (tree.sys / "devices/virtual/block/vda").mkdir(parents=True)
    (tree.sys / "devices/virtual/block/vda/dev").write_text("254:0\n")
    (tree.sys / "class/block/vda").symlink_to("../../devices/virtual/block/vda")
    vda = ctx.block_device("vda")
    assert vda is not None and by_path_name(ctx, vda) is None


def test_rooted_database_reads_udev_records(tree: FakeSysfs) -> None:
    ctx = SysfsContext(tree.root)
    links = [f"disk/by-path/{P1}-lun-0", "disk/by-id/wwn-0x6001405abc"]
    tree.add_udev_record("sdb", links)
    db = RootedUdevDatabase(tree.root)
    sdb, sdc = ctx.block_device("sdb"), ctx.block_device("sdc")
    assert sdb is not None and sdc is not None
    record = db.record(sdb)
    assert record == UdevRecord("/dev/sdb", tuple(sorted(f"/dev/{x}" for x in links)))
    assert record.by_path() == f"/dev/disk/by-path/{P1}-lun-0"
    assert db.record(sdc) is None
    assert isinstance(udev_database(ctx), RootedUdevDatabase)  # not the running system
    assert not udev_is_running(ctx)


def test_session_disks_prefer_udev_and_fall_back(tree: FakeSysfs) -> None:
    ctx = SysfsContext(tree.root)
    # udev named sdb with a different link set than path_id would: its word wins.
    tree.add_udev_record("sdb", ["disk/by-path/ip-from-udev-lun-0"])
    s = ctx.session(1)
    assert s is not None
    disks = session_disks(ctx, s)
    assert [(d.disk, d.lun, d.node, d.from_udev) for d in disks] == [
        ("sdb", 0, "/dev/sdb", True),
        ("sdc", 1, "/dev/sdc", False),
    ]
    assert disks[0].by_path == "/dev/disk/by-path/ip-from-udev-lun-0"
    assert disks[1].by_path == f"/dev/disk/by-path/{P1}-lun-1"
    assert disks[1].links == ()


def test_wait_for_by_path_returns_when_the_link_appears(tree: FakeSysfs) -> None:
    ctx = SysfsContext(tree.root)
    timer = threading.Timer(0.2, tree.add_udev_record, ("sdc", [f"disk/by-path/{P1}-lun-1"]))
    start = time.monotonic()
    timer.start()
    try:
        link = wait_for_by_path(ctx, 1, 1, timeout=10, interval=0.02)
    finally:
        timer.join()
    assert link == tree.root / "dev/disk/by-path" / f"{P1}-lun-1"
    assert link.resolve() == tree.root / "dev/sdc"
    assert 0.15 < time.monotonic() - start < 5


def test_wait_for_by_path_is_bounded(tree: FakeSysfs) -> None:
    ctx = SysfsContext(tree.root)
    start = time.monotonic()
    with pytest.raises(DeviceWaitTimeoutError, match="lun-7"):
        wait_for_by_path(ctx, 1, 7, timeout=0.3, interval=0.05)
    assert 0.25 < time.monotonic() - start < 3
    with pytest.raises(SessionNotFoundError):
        wait_for_by_path(ctx, 99, 0, timeout=0.1)


# -- pyudev on this host's /sys ----------------------------------------------------------


def _loop_device() -> str | None:
    base = Path("/sys/class/block")
    names = sorted(p.name for p in base.glob("loop*")) if base.is_dir() else []
    return names[0] if names else None


def _libudev() -> str | None:
    try:
        import pyudev

        pyudev.Context()
    except (ImportError, OSError) as exc:
        return f"libudev not loadable: {exc}"
    return None


needs_libudev = pytest.mark.skipif(_libudev() is not None, reason=str(_libudev()))

# In a private mount namespace: a tmpfs /run holding one udev record for a loop device,
# then the record as pyudev (libudev) and as the rooted reader see it.
_PROBE = r"""
import json, os, subprocess, sys
from pathlib import Path
name, link = sys.argv[1:3]
subprocess.run(["mount", "-t", "tmpfs", "tmpfs", "/run"], check=True)
from iscsikit.sysfs import SysfsContext
from iscsikit.sysfs.udev import PyudevDatabase, RootedUdevDatabase, udev_database
disk = SysfsContext(Path("/")).block_device(name)
before = PyudevDatabase().record(disk)
major, minor = disk.devnum
os.makedirs("/run/udev/data")
Path(f"/run/udev/data/b{major}:{minor}").write_text(
    f"S:{link}\nS:disk/by-id/iscsikit-test\nI:1000\nE:ID_PATH=x\nV:1\n")
out = {
    "before": before,
    "pyudev": PyudevDatabase().record(disk),
    "rooted": RootedUdevDatabase(Path("/")).record(disk),
    "default": type(udev_database(SysfsContext(Path("/")))).__name__,
}
as_json = lambda v: [v.node, list(v.links)] if hasattr(v, "links") else v
print(json.dumps({k: as_json(v) for k, v in out.items()}))
"""


@needs_libudev
@pytest.mark.skipif(_loop_device() is None, reason="no loop block device in /sys")
@pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("unshare") is None, reason="needs root and unshare"
)
def test_pyudev_reads_devlinks_from_the_udev_database() -> None:
    import json

    name = _loop_device()
    assert name is not None
    link = f"disk/by-path/ip-127.0.0.1:3260-iscsi-{T1}-lun-1"
    proc = subprocess.run(
        ["unshare", "-m", sys.executable, "-c", _PROBE, name, link],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["before"] is None  # no record: not initialized, no links
    record = [f"/dev/{name}", ["/dev/disk/by-id/iscsikit-test", f"/dev/{link}"]]
    assert out["pyudev"] == record
    assert out["rooted"] == out["pyudev"]
    assert out["default"] == "PyudevDatabase"


@needs_libudev
@pytest.mark.skipif(_loop_device() is None, reason="no loop block device in /sys")
@pytest.mark.skipif(os.geteuid() != 0, reason="writing a uevent needs root")
def test_block_monitor_wakes_the_wait(tree: FakeSysfs) -> None:
    """A kernel block event (a synthetic ``change`` on a loop device) wakes the wait at
    once, long before its 30 s check interval."""
    name = _loop_device()
    ctx = SysfsContext(tree.root)
    monitor = block_monitor(source="kernel")

    def appear() -> None:
        tree.add_udev_record("sdc", [f"disk/by-path/{P1}-lun-1"])
        Path(f"/sys/class/block/{name}/uevent").write_text("change")

    timer = threading.Timer(0.2, appear)
    start = time.monotonic()
    timer.start()
    try:
        link = wait_for_by_path(ctx, 1, 1, timeout=60, monitor=monitor, interval=30)
    finally:
        timer.join()
        del monitor  # pyudev frees the libudev monitor (never close its fd by hand)
    assert link.exists()
    assert time.monotonic() - start < 10
