"""``-m session -P 3`` and ``--output json`` show a userspace session's NBD exports."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from iscsikit.cli.env import CliEnv
from iscsikit.cli.main import main
from iscsikit.manager.sessions import LunExport, ScsiLun, SessionInfo

SCHEMA = Path(__file__).parents[3] / "docs" / "iscsikit-adm.schema.json"
SOCK = "/run/iscsikit/nbd/iqn.2024-01.test:disk-1.sock"


def userspace_session(*exports: LunExport) -> SessionInfo:
    return SessionInfo(
        sid=1,
        transport="tcp",
        target="iqn.2024-01.test:disk",
        address="127.0.0.1",
        port=3260,
        tpgt=1,
        persistent_address="127.0.0.1",
        persistent_port=3260,
        iface="default",
        initiator_name="iqn.x:i",
        state="LOGGED_IN",
        conn_state="LOGGED IN",
        internal_state="NO CHANGE",
        host_no=None,  # no SCSI host: the daemon serves the LUNs itself
        params={"HeaderDigest": "None"},
        username="",
        password="",
        username_in="",
        password_in="",
        timeouts={"recovery_tmo": "120"},
        exports=exports,
    )


class Service:
    def __init__(self, sessions: list[SessionInfo]) -> None:
        self.found = sessions

    def sessions(self) -> list[SessionInfo]:
        return self.found


def run(tmp_path: Path, sessions: list[SessionInfo], argv: list[str]) -> tuple[int, str]:
    env = CliEnv.for_test(tmp_path, session_layer=Service(sessions))
    code = main(argv, env=env)
    assert env.stderr.getvalue() == ""  # type: ignore[attr-defined]
    return code, env.stdout.getvalue()  # type: ignore[attr-defined]


EXPORTS = (LunExport(0, SOCK.replace("-1", "-0"), 4 << 20), LunExport(1, SOCK, 64 << 20, 4096))


def test_p3_lists_the_exports_after_the_scsi_devices(tmp_path: Path) -> None:
    code, out = run(tmp_path, [userspace_session(*EXPORTS)], ["-m", "session", "-P", "3"])
    assert code == 0
    tail = out[out.index("\t\tAttached SCSI devices:") :].splitlines()
    assert tail == [
        "\t\tAttached SCSI devices:",
        "\t\t************************",
        "\t\tUnavailable",
        "\t\t************************",
        "\t\tAttached NBD exports:",
        "\t\t************************",
        f"\t\tLun: 0\tnbd+unix:///?socket={SOCK.replace('-1', '-0')}\tSize: 4194304",
        f"\t\tLun: 1\tnbd+unix:///?socket={SOCK}\tSize: 67108864",
    ]


def test_no_exports_no_block_and_lower_levels_unchanged(tmp_path: Path) -> None:
    kernel = replace(
        userspace_session(), host_no=3, host_state="running", devices=(ScsiLun(3, 0, 0, 1, "sdb"),)
    )
    out = run(tmp_path, [kernel], ["-m", "session", "-P", "3"])[1]
    assert "NBD" not in out and "Attached scsi disk sdb" in out
    for level in ("1", "2"):
        assert (
            "NBD"
            not in run(tmp_path, [userspace_session(*EXPORTS)], ["-m", "session", "-P", level])[1]
        )


def test_exports_in_json(tmp_path: Path) -> None:
    code, out = run(tmp_path, [userspace_session(*EXPORTS)], ["-m", "session", "--output", "json"])
    doc = json.loads(out)
    assert code == 0
    no_path = {"multipath": None, "path_state": None, "path_alua": None}
    assert doc["sessions"][0]["exports"] == [
        {"lun": 0, "socket": SOCK.replace("-1", "-0"), "size": 4 << 20, "block_size": 512,
         **no_path, "uri": f"nbd+unix:///?socket={SOCK.replace('-1', '-0')}"},
        {"lun": 1, "socket": SOCK, "size": 64 << 20, "block_size": 4096,
         **no_path, "uri": f"nbd+unix:///?socket={SOCK}"},
    ]  # fmt: skip
    jsonschema = pytest.importorskip("jsonschema")
    schema: Any = json.loads(SCHEMA.read_text())
    validator = jsonschema.validators.validator_for(schema)(schema)
    assert [e.message for e in validator.iter_errors(doc)] == []
    bad = json.loads(out)
    del bad["sessions"][0]["exports"][0]["uri"]
    assert [e.message for e in validator.iter_errors(bad)] == ["'uri' is a required property"]


def test_p3_and_json_show_a_multipath_path_state(tmp_path: Path) -> None:
    mpath = "/run/iscsikit/nbd/mpath-600140512345"
    one = replace(EXPORTS[1], multipath=mpath, path_state="active", path_alua="active/optimized")
    code, out = run(tmp_path, [userspace_session(EXPORTS[0], one)], ["-m", "session", "-P", "3"])
    assert code == 0
    tail = out[out.index("\t\tAttached NBD exports:") :].splitlines()
    assert tail[2:] == [
        f"\t\tLun: 0\tnbd+unix:///?socket={SOCK.replace('-1', '-0')}\tSize: 4194304",
        f"\t\tLun: 1\tnbd+unix:///?socket={SOCK}\tSize: 67108864",
        f"\t\t\tMultipath: nbd+unix:///?socket={mpath}\tPath State: active\tALUA: active/optimized",
    ]
    failed = replace(one, path_state="failed", path_alua=None)
    out = run(tmp_path, [userspace_session(failed)], ["-m", "session", "-P", "3"])[1]
    assert out.endswith(f"\t\t\tMultipath: nbd+unix:///?socket={mpath}\tPath State: failed\n")
    as_json = ["-m", "session", "--output", "json"]
    doc = json.loads(run(tmp_path, [userspace_session(EXPORTS[0], one)], as_json)[1])
    shown = doc["sessions"][0]["exports"]
    assert [(e["multipath"], e["path_state"], e["path_alua"]) for e in shown] == [
        (None, None, None),
        (mpath, "active", "active/optimized"),
    ]
    jsonschema = pytest.importorskip("jsonschema")
    schema: Any = json.loads(SCHEMA.read_text())
    validator = jsonschema.validators.validator_for(schema)(schema)
    assert [e.message for e in validator.iter_errors(doc)] == []
