"""``IscsiSession.rescan`` as iscsiadm's ``rescan_portal``: each LUN of the session, then
its host, and a failed write stops nothing (FakeSysfs trees; the kernel's own answer is
tests/vm/test_rescan.py)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from iscsikit.sysfs import SysfsContext
from iscsikit.sysfs.fake import FakeSession, FakeSysfs

T = "iqn.2003-01.org.example:disk1"


@pytest.fixture
def tree(tmp_path: Path) -> FakeSysfs:
    f = FakeSysfs(tmp_path)
    f.add_session(FakeSession(1, T, "192.168.1.10"))
    f.add_session(FakeSession(2, T, "192.168.1.11"))
    for lun in range(3):
        f.add_lun(1, lun, block=f"sd{'bcd'[lun]}")
    f.add_lun(2, 0, block="sde")
    return f


def _written(ctx: SysfsContext, hctl: str) -> str:
    return (ctx.sys_path / "bus/scsi/devices" / hctl / "rescan").read_text()


def test_every_lun_of_the_session_then_its_host(tree: FakeSysfs) -> None:
    ctx = SysfsContext(tree.root)
    session = ctx.session(1)
    assert session is not None
    assert session.rescan() == []
    assert [_written(ctx, f"2:0:0:{lun}") for lun in range(3)] == ["1", "1", "1"]
    assert (ctx.sys_path / "class/scsi_host/host2/scan").read_text() == "- - -"
    # Another session's host and LUNs: untouched (the fake writes an empty line).
    assert _written(ctx, "3:0:0:0").strip() == ""
    assert (ctx.sys_path / "class/scsi_host/host3/scan").read_text().strip() == ""


def test_a_failed_write_is_returned_and_stops_nothing(tree: FakeSysfs) -> None:
    ctx = SysfsContext(tree.root)
    control = ctx.sys_path / "bus/scsi/devices/2:0:0:1/rescan"
    control.unlink()
    control.mkdir()  # open(..., "w") fails with EISDIR, whoever runs the test
    session = ctx.session(1)
    assert session is not None
    failed = session.rescan()
    assert [(p.resolve(), type(exc)) for p, exc in failed] == [
        (control.resolve(), IsADirectoryError)
    ]
    assert [_written(ctx, h) for h in ("2:0:0:0", "2:0:0:2")] == ["1", "1"]
    assert (ctx.sys_path / "class/scsi_host/host2/scan").read_text() == "- - -"


def test_a_lun_gone_meanwhile_is_no_failure(tree: FakeSysfs, tmp_path: Path) -> None:
    ctx = SysfsContext(tree.root)
    control = ctx.sys_path / "bus/scsi/devices/2:0:0:0/rescan"
    control.unlink()
    # What a removed device's file looks like to a writer: nowhere to open.
    control.symlink_to(tmp_path / "removed/rescan")
    session = ctx.session(1)
    assert session is not None
    assert session.rescan() == []
    assert _written(ctx, "2:0:0:1") == "1"
    assert (ctx.sys_path / "class/scsi_host/host2/scan").read_text() == "- - -"


def test_a_session_without_luns_still_scans_its_host(tree: FakeSysfs) -> None:
    ctx = SysfsContext(tree.root)
    session = ctx.session(2)
    assert session is not None
    shutil.rmtree(session.device_path / "target3:0:0")
    assert session.rescan() == []
    assert (ctx.sys_path / "class/scsi_host/host3/scan").read_text() == "- - -"
