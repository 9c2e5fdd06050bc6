"""The sysfs object model on kernel-shaped trees written by FakeSysfs."""

from __future__ import annotations

from pathlib import Path

import pytest

from iscsikit.sysfs import SysfsContext, c_int, read_attr
from iscsikit.sysfs.fake import FakeSession, FakeSysfs

T = "iqn.2003-01.org.example:disk1"


@pytest.fixture
def tree(tmp_path: Path) -> FakeSysfs:
    f = FakeSysfs(tmp_path)
    f.add_transport("tcp")
    f.set_transport_class_version("2.0-870")
    f.add_session(FakeSession(1, T, "192.168.1.10"))
    f.add_session(FakeSession(10, T, "fd00::5", port=3261, state="FAILED", creator=-1))
    f.add_session(FakeSession(2, T, "192.168.1.11", tpgt=2, username="joe"))
    f.add_lun(1, 0, block="sdb")
    f.add_lun(1, 1, state="offline")
    return f


def test_attribute_parsing(tmp_path: Path) -> None:
    (tmp_path / "a").write_text("(null)\n")
    (tmp_path / "b").write_text("value with spaces \n")
    assert read_attr(tmp_path / "a") == ""
    assert read_attr(tmp_path / "b") == "value with spaces "
    assert read_attr(tmp_path / "missing") is None
    assert [c_int(x) for x in ("120", " -1", "off", "", "12abc")] == [120, -1, 0, 0, 12]
    assert c_int(None, -1) == -1


def test_sessions_in_alphasort_order(tree: FakeSysfs) -> None:
    ctx = SysfsContext(tree.root)
    assert [s.sid for s in ctx.sessions()] == [1, 10, 2]
    s10 = ctx.session(10)
    assert s10 is not None
    assert (s10.targetname, s10.tpgt, s10.state, s10.is_flash) == (T, 1, "FAILED", True)
    assert ctx.session(99) is None


def test_session_navigation(tree: FakeSysfs) -> None:
    ctx = SysfsContext(tree.root)
    s = ctx.session(1)
    assert s is not None
    assert s.host_no == 2
    conn = s.connection()
    assert conn is not None
    assert (conn.address, conn.port, conn.persistent_address, conn.sid, conn.cid) == (
        "192.168.1.10", 3260, "192.168.1.10", 1, 0,
    )  # fmt: skip
    host = s.host()
    assert host is not None
    assert (host.host_no, host.proc_name, host.transport_name, host.state) == (
        2, "iscsi_tcp", "tcp", "running",
    )  # fmt: skip
    assert [x.sid for x in host.sessions()] == [1]
    luns = s.scsi_devices()
    assert [d.hctl for d in luns] == [(2, 0, 0, 0), (2, 0, 0, 1)]
    assert [(d.block_device, d.state) for d in luns] == [("sdb", "running"), (None, "offline")]
    assert ctx.scsi_device(2, 0, 0, 0) == luns[0]
    assert s.attr("username") == ""  # "(null)"
    assert ctx.session(2) is not None and ctx.session(2).attr("username") == "joe"  # type: ignore[union-attr]


def test_hosts_transports_and_version(tree: FakeSysfs) -> None:
    ctx = SysfsContext(tree.root)
    assert [h.host_no for h in ctx.hosts()] == [11, 2, 3]
    assert [t.name for t in ctx.iscsi_transports()] == ["tcp"]
    tcp = ctx.transport("tcp")
    assert tcp is not None and tcp.caps == 0x39 and tcp.handle
    assert ctx.transport("iser") is None
    assert ctx.transport_class_version == "2.0-870"
    assert [c.name for c in ctx.connections()] == [
        "connection10:0",
        "connection1:0",
        "connection2:0",
    ]


def test_sid_from_path(tree: FakeSysfs) -> None:
    ctx = SysfsContext(tree.root)
    assert ctx.sid_from_path("/sys/class/iscsi_session/session10") == 10
    lun = ctx.sys_path / "bus/scsi/devices/2:0:0:0"
    assert ctx.sid_from_path(str(lun)) == 1
    assert ctx.sid_from_path("/sys/class/iscsi_host/host2") is None
    assert ctx.sid_from_path("/sys/class/nothing") is None


def test_rescan_writes_control_files(tree: FakeSysfs) -> None:
    ctx = SysfsContext(tree.root)
    s = ctx.session(1)
    assert s is not None
    s.rescan()
    assert (ctx.sys_path / "class/scsi_host/host2/scan").read_text() == "- - -"
    assert (ctx.sys_path / "bus/scsi/devices/2:0:0:0/rescan").read_text() == "1"


def test_dump_is_json_ready(tree: FakeSysfs) -> None:
    import json

    doc = SysfsContext(tree.root).dump()
    assert [s["sid"] for s in doc["sessions"]] == [1, 10, 2]
    assert doc["sessions"][0]["devices"][0]["block_devices"] == ["sdb"]
    json.dumps(doc)


def test_empty_root(tmp_path: Path) -> None:
    ctx = SysfsContext(tmp_path)
    assert ctx.sessions() == [] and ctx.hosts() == [] and ctx.iscsi_transports() == []
    assert ctx.transport_class_version is None
    assert not ctx.ibft().present and not ctx.ibft().readable
    assert repr(ctx) == f"SysfsContext({str(tmp_path)!r})"
