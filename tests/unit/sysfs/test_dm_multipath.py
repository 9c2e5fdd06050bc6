"""dm-multipath maps over a session's disks: the holder found in sysfs, the status
line of dm-mpath parsed, and ``-m session -P 3`` / JSON showing both."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from iscsikit.manager.sessions import SysfsSessionService, session_from_json, session_to_json
from iscsikit.sysfs import SysfsContext
from iscsikit.sysfs.dm import holder_map, map_status, multipath_of, parse_multipath_status
from iscsikit.sysfs.fake import FakeSession, FakeSysfs

# Status lines in dm-mpath.c's format (``dmsetup status`` after "0 <len> multipath").
# REAL is what Linux 6.1 printed for tests/vm/test_multipath.py's map (one group, two
# paths, service-time's two per-path values); that test also checks that iscsikit's
# ioctl reads the same line dmsetup prints.
REAL = "2 0 0 0 1 1 A 0 2 2 8:0 A 0 0 1 8:16 A 0 0 1 "
TWO_GROUPS = "2 0 0 0 2 1 A 0 1 2 8:16 A 0 0 1 E 0 1 2 8:32 A 0 0 1 "
ONE_GROUP_FAILED = "2 0 0 0 1 1 A 0 2 2 8:16 F 1 0 1 8:32 A 0 0 1 "
ROUND_ROBIN = "2 1 0 0 1 1 E 0 2 0 8:16 A 0 8:32 A 3 "


def test_status_real() -> None:
    assert parse_multipath_status(REAL) == {
        "8:0": ("active", "active", 0),
        "8:16": ("active", "active", 0),
    }


def test_status_two_groups() -> None:
    assert parse_multipath_status(TWO_GROUPS) == {
        "8:16": ("active", "active", 0),
        "8:32": ("active", "enabled", 0),
    }


def test_status_failed_path_and_fail_count() -> None:
    assert parse_multipath_status(ONE_GROUP_FAILED) == {
        "8:16": ("failed", "active", 1),
        "8:32": ("active", "active", 0),
    }


def test_status_selector_without_per_path_values() -> None:
    assert parse_multipath_status(ROUND_ROBIN) == {
        "8:16": ("active", "enabled", 0),
        "8:32": ("active", "enabled", 3),
    }


def test_status_with_handler_and_disabled_group() -> None:
    text = "2 0 1 1 alua 2 2 D 0 1 2 8:16 A 0 0 1 A 0 1 2 8:32 A 0 0 1"
    assert parse_multipath_status(text) == {
        "8:16": ("active", "disabled", 0),
        "8:32": ("active", "active", 0),
    }


@pytest.mark.parametrize("text", ["", "2 0", "2 0 0 0 1 1 A 0 2 2 8:16 A", "x y z"])
def test_status_malformed_gives_what_was_read(text: str) -> None:
    assert parse_multipath_status(text) == {}


def test_status_cut_after_first_path() -> None:
    assert parse_multipath_status("2 0 0 0 1 1 A 0 2 2 8:16 A 0 0 1 8:32") == {
        "8:16": ("active", "active", 0)
    }


def test_map_status_without_device_mapper(tmp_path: Path) -> None:
    assert map_status("mpatha", control=tmp_path / "control") is None


def _two_path_tree(root: Path) -> FakeSysfs:
    f = FakeSysfs(root)
    f.add_transport("tcp")
    f.add_session(FakeSession(1, "iqn.2024-01.test:mp", "127.0.0.1"))
    f.add_session(FakeSession(2, "iqn.2024-01.test:mp", "127.0.0.2"))
    f.add_lun(1, 1, block="sdb")
    f.add_lun(2, 1, block="sdc")
    return f


def test_holder_found_only_for_multipath_maps(tmp_path: Path) -> None:
    f = _two_path_tree(tmp_path)
    sys = tmp_path / "sys"
    assert holder_map(sys / "block/sdb") is None
    f.add_multipath_map("mpatha", 0, ["sdb", "sdc"], "360000000000000000e00000000010001")
    assert holder_map((sys / "block/sdb").resolve()) == ("mpatha", "dm-0")
    # a disk held by a dm device that is no multipath map (LVM's uuid) is no path
    f2 = FakeSysfs(tmp_path / "other")
    f2.add_transport("tcp")
    f2.add_session(FakeSession(1, "iqn.2024-01.test:mp", "127.0.0.1"))
    f2.add_lun(1, 1, block="sdb")
    dm = f2.add_multipath_map("vg-lv", 3, ["sdb"], "x")
    (dm / "dm/uuid").write_text("LVM-x\n")
    assert holder_map((tmp_path / "other/sys/block/sdb").resolve()) is None


def test_multipath_of_caches_one_status_per_map(tmp_path: Path) -> None:
    f = _two_path_tree(tmp_path)
    f.add_multipath_map("mpatha", 0, ["sdb", "sdc"], "36000")
    statuses: dict[str, str | None] = {"mpatha": ONE_GROUP_FAILED}
    sdb = (tmp_path / "sys/block/sdb").resolve()
    sdc = (tmp_path / "sys/block/sdc").resolve()
    one = multipath_of(sdb, (8, 16), statuses)
    two = multipath_of(sdc, (8, 32), statuses)
    assert one is not None and (one.state, one.group_state) == ("failed", "active")
    assert two is not None and (two.state, two.group_state) == ("active", "active")
    unknown = multipath_of(sdc, (8, 48), statuses)  # not in the status line
    assert unknown is not None and unknown.state == "unknown"


def test_session_info_carries_the_map(tmp_path: Path) -> None:
    f = _two_path_tree(tmp_path)
    f.add_multipath_map("mpatha", 0, ["sdb", "sdc"], "36000")
    sessions = {s.sid: s for s in SysfsSessionService(SysfsContext(tmp_path)).sessions()}
    lun = sessions[1].devices[0]
    # no /dev/mapper/control of this tree's: the map is known, the state is not
    assert (lun.disk, lun.multipath, lun.multipath_dm) == ("sdb", "mpatha", "dm-0")
    assert lun.path_state in ("unknown", "active", "failed")
    back = session_from_json(json.loads(json.dumps(session_to_json(sessions[1]))))
    assert back.devices == sessions[1].devices


def test_session_without_map(tmp_path: Path) -> None:
    _two_path_tree(tmp_path)
    sessions = SysfsSessionService(SysfsContext(tmp_path)).sessions()
    assert all(d.multipath is None for s in sessions for d in s.devices)
