"""``-m session -P 3`` and ``--output json`` show the dm-multipath map over a disk."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from iscsikit.cli.env import CliEnv
from iscsikit.cli.main import main
from iscsikit.sysfs.fake import FakeSession, FakeSysfs

SCHEMA = Path(__file__).parents[3] / "docs" / "iscsikit-adm.schema.json"
IQN = "iqn.2024-01.test:mp"


def run(root: Path, argv: list[str]) -> tuple[int, str]:
    env = CliEnv.for_test(root)
    code = main(argv, env=env)
    assert env.stderr.getvalue() == ""  # type: ignore[attr-defined]
    return code, env.stdout.getvalue()  # type: ignore[attr-defined]


@pytest.fixture
def tree(tmp_path: Path) -> FakeSysfs:
    f = FakeSysfs(tmp_path)
    f.add_transport("tcp")
    f.add_session(FakeSession(1, IQN, "127.0.0.1"))
    f.add_session(FakeSession(2, IQN, "127.0.0.2"))
    f.add_lun(1, 1, block="sdb")
    f.add_lun(2, 1, block="sdc")
    return f


def test_p3_names_the_map_after_the_disk(tmp_path: Path, tree: FakeSysfs) -> None:
    before = run(tmp_path, ["-m", "session", "-P", "3"])[1]
    assert "Multipath" not in before
    tree.add_multipath_map("mpatha", 0, ["sdb", "sdc"], "36000")
    code, out = run(tmp_path, ["-m", "session", "-P", "3"])
    assert code == 0
    lines = out.splitlines()
    at = lines.index("\t\t\tAttached scsi disk sdb\t\tState: running")
    # no device-mapper under this root: the map is known, its path state is not
    assert lines[at + 1] == "\t\t\tMultipath: mpatha (dm-0)\tPath State: unknown\tGroup: unknown"
    assert "\t\t\tMultipath: mpatha (dm-0)" in out.split("Attached scsi disk sdc")[1]
    assert out.replace(lines[at + 1] + "\n", "") == before  # the rest is as iscsiadm's


def test_json_carries_map_and_states(tmp_path: Path, tree: FakeSysfs) -> None:
    tree.add_multipath_map("mpatha", 0, ["sdb", "sdc"], "36000")
    code, out = run(tmp_path, ["-m", "session", "--output", "json"])
    doc = json.loads(out)
    assert code == 0
    lun = doc["sessions"][0]["devices"][0]
    assert {k: lun[k] for k in ("disk", "multipath", "multipath_dm", "path_state")} == {
        "disk": "sdb",
        "multipath": "mpatha",
        "multipath_dm": "dm-0",
        "path_state": "unknown",
    }
    jsonschema = pytest.importorskip("jsonschema")
    schema: Any = json.loads(SCHEMA.read_text())
    validator = jsonschema.validators.validator_for(schema)(schema)
    assert [e.message for e in validator.iter_errors(doc)] == []
    bad = json.loads(out)
    bad["sessions"][0]["devices"][0]["path_state"] = "sideways"
    assert validator.is_valid(bad) is False


def test_json_of_one_session(tmp_path: Path, tree: FakeSysfs) -> None:
    doc = json.loads(run(tmp_path, ["-m", "session", "-r", "2", "-P", "1", "--output", "json"])[1])
    assert [s["sid"] for s in doc["sessions"]] == [2]
    both = json.loads(run(tmp_path, ["-m", "session", "--output", "json"])[1])
    assert [s["sid"] for s in both["sessions"]] == [1, 2]
