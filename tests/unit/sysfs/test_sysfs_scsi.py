"""SCSI hosts, targets, devices and their disks on kernel-shaped trees (FakeSysfs)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from iscsikit.sysfs import BlockDevice, ScsiHost, SysfsContext
from iscsikit.sysfs.fake import FakeSession, FakeSysfs, sd_devnum

T = "iqn.2003-01.org.example:disk1"


@pytest.fixture
def tree(tmp_path: Path) -> FakeSysfs:
    f = FakeSysfs(tmp_path)
    f.add_session(FakeSession(1, T, "192.168.1.10"))
    f.add_session(FakeSession(2, T, "192.168.1.11"))
    f.add_lun(1, 0, block="sdb", size=8 << 30, block_size=4096, partitions=2)
    f.add_lun(1, 1, block="sdc", vendor="LIO-ORG", model="disk1", rev="4.0")
    f.add_lun(1, 2, state="offline")
    f.add_lun(2, 0, block="sdaa")
    return f


def test_sd_devnum_follows_sd_c() -> None:
    assert sd_devnum("sda") == (8, 0)
    assert sd_devnum("sdb") == (8, 16)
    assert sd_devnum("sdq") == (65, 0)  # the 17th disk starts major 65
    assert sd_devnum("sdaa") == (65, 160)
    assert sd_devnum("sdiw") == (8, 256)  # index 256: back to major 8, minors above 255


def test_scsi_device_attributes(tree: FakeSysfs) -> None:
    ctx = SysfsContext(tree.root)
    d = ctx.scsi_device(2, 0, 0, 1)
    assert d is not None
    assert (d.vendor, d.model, d.rev) == ("LIO-ORG", "disk1", "4.0")
    assert d.attr("vendor") == "LIO-ORG "  # the kernel pads to the INQUIRY field width
    assert (d.type, d.queue_depth, d.state, d.channel, d.lun) == (0, 32, "running", 0, 1)
    assert d.target().htc == (2, 0, 0)
    assert [x.name for x in d.target().devices()] == ["2:0:0:0", "2:0:0:1", "2:0:0:2"]


def test_block_device(tree: FakeSysfs) -> None:
    ctx = SysfsContext(tree.root)
    d = ctx.scsi_device(2, 0, 0, 0)
    assert d is not None
    disk = d.block()
    assert disk is not None
    assert (disk.name, disk.devnum, disk.devname) == ("sdb", (8, 16), "sdb")
    # size counts 512-byte sectors even on a 4096-byte-sector disk
    sizes = (disk.size_sectors, disk.size, disk.logical_block_size)
    assert sizes == ((8 << 30) // 512, 8 << 30, 4096)
    assert not disk.read_only
    assert [(p.name, p.devnum) for p in disk.partitions()] == [("sdb1", (8, 17)), ("sdb2", (8, 18))]
    assert ctx.block_device("sdb") == disk  # class/block and the device's block/ dir
    assert ctx.block_device("sdb1") == disk.partitions()[0]
    assert ctx.block_device("sdz") is None
    assert (tree.sys / "block/sdb").resolve() == disk.real_path
    assert (tree.sys / "dev/block/8:16").resolve() == disk.real_path
    offline = ctx.scsi_device(2, 0, 0, 2)
    assert offline is not None and offline.block() is None


def test_session_targets_and_disks(tree: FakeSysfs) -> None:
    ctx = SysfsContext(tree.root)
    s = ctx.session(1)
    assert s is not None
    assert [t.name for t in s.targets()] == ["target2:0:0"]
    assert [b.name for b in s.block_devices()] == ["sdb", "sdc"]
    s2 = ctx.session(2)
    assert s2 is not None and [b.devnum for b in s2.block_devices()] == [(65, 160)]


def test_scsi_hosts(tree: FakeSysfs) -> None:
    ctx = SysfsContext(tree.root)
    assert [h.host_no for h in ctx.scsi_hosts()] == [2, 3]
    host = ctx.scsi_host(2)
    assert isinstance(host, ScsiHost)
    assert (host.proc_name, host.state) == ("iscsi_tcp", "running")
    assert [t.name for t in host.targets()] == ["target2:0:0"]
    assert [d.name for d in host.devices()] == ["2:0:0:0", "2:0:0:1", "2:0:0:2"]
    assert ctx.scsi_host(9) is None
    iscsi_host = ctx.host(2)
    assert iscsi_host is not None and iscsi_host.scsi_host == host
    assert [d.name for d in ctx.scsi_devices()] == ["2:0:0:0", "2:0:0:1", "2:0:0:2", "3:0:0:0"]


def test_control_files(tree: FakeSysfs) -> None:
    ctx = SysfsContext(tree.root)
    host = ctx.scsi_host(3)
    assert host is not None
    host.scan(0, 0, 5)
    assert (host.path / "scan").read_text() == "0 0 5"
    host.scan()
    assert (host.path / "scan").read_text() == "- - -"
    d = ctx.scsi_device(3, 0, 0, 0)
    assert d is not None
    d.delete()
    assert (d.path / "delete").read_text() == "1"
    d.rescan()
    assert (d.path / "rescan").read_text() == "1"


def test_dump(tree: FakeSysfs) -> None:
    ctx = SysfsContext(tree.root)
    host = ctx.scsi_host(2)
    disk = ctx.block_device("sdc")
    assert host is not None and isinstance(disk, BlockDevice)
    doc = host.dump()
    assert [d["block_devices"] for d in doc["devices"]] == [["sdb"], ["sdc"], []]
    assert disk.dump()["size"] == 2097152 * 512
    json.dumps(doc)
