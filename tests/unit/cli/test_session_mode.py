"""``-m session`` on a fake kernel: byte-for-byte iscsiadm 2.1.8 output (goldens captured
with the real iscsiadm, see golden/README.md) and the session layer's error paths."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from iscsikit.cli.env import CliEnv
from iscsikit.cli.main import main
from iscsikit.sysfs.fake import FakeSession, FakeSysfs, sample_kernel

GOLDEN = Path(__file__).parent / "golden"
REPO_CONF = Path(__file__).parents[3] / "conf/iscsid.conf"
DISK1 = "iqn.2003-01.org.example:disk1"
DISK0 = "iqn.2003-01.org.example:disk0"


def parse_golden(path: Path) -> tuple[list[str], int, str]:
    args_line, _daemon, exit_line, out = path.read_text().split("\n", 3)
    return args_line.removeprefix("# args: ").split(" "), int(exit_line[len("# exit: ") :]), out


def make_root(root: Path) -> Path:
    """The sample kernel plus the node records the goldens' database held (made by
    ``iscsiadm -m node -o new`` with Debian's iscsid.conf)."""
    from iscsikit.config.iscsid_conf import IscsidConf
    from iscsikit.config.paths import resolve_paths
    from iscsikit.config.registry import RecordType
    from iscsikit.records import NodeRecord, Records

    sample_kernel(root)
    conf = root / "etc/iscsi/iscsid.conf"
    conf.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(REPO_CONF, conf)
    template = IscsidConf.load(conf).template(RecordType.NODE)
    records = Records(resolve_paths(root=root))
    for target, address, tpgt in (
        (DISK1, "192.168.1.10", -1),
        (DISK1, "192.168.1.11", 2),
        (DISK0, "10.0.0.3", -1),
    ):
        records.add_node(NodeRecord.new(target, address, tpgt=tpgt, template=template))
    return root


def run(root: Path, args: list[str]) -> tuple[int, str, str]:
    env = CliEnv.for_test(root)
    code = main(args, env=env)
    return code, env.stdout.getvalue(), env.stderr.getvalue()  # type: ignore[attr-defined]


def goldens(prefix: str) -> list[Path]:
    return sorted(GOLDEN.glob(f"{prefix}*.txt"))


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_root(tmp_path_factory.mktemp("kernel"))


@pytest.mark.parametrize("path", goldens("session"), ids=lambda p: p.stem)
def test_golden(root: Path, path: Path) -> None:
    args, code, out = parse_golden(path)
    got_code, got_out, _ = run(root, args)
    assert (got_code, got_out) == (code, out)


def test_no_sessions(tmp_path: Path) -> None:
    FakeSysfs(tmp_path).add_transport()
    assert run(tmp_path, ["-m", "session"]) == (21, "", "iscsikit-adm: No active sessions.\n")
    assert run(tmp_path, ["-m", "session", "-P", "9"])[0] == 21  # sessions first, as iscsiadm
    assert run(tmp_path, ["-m", "session", "-R"])[2] == "iscsikit-adm: No session found.\n"
    assert run(tmp_path, ["-m", "session", "-u"])[0] == 21
    assert run(tmp_path, ["-m", "session", "-r", "1"])[0] == 22


def test_login_logout_stats_need_the_daemon(root: Path) -> None:
    code, out, err = run(root, ["-m", "session", "-r", "1", "-u"])
    assert code == 21
    assert out == (
        "Logging out of session [sid: 1, target: iqn.2003-01.org.example:disk1, "
        "portal: 192.168.1.10,3260]\n"
    )
    assert "initiator reported error (20 - could not connect to iscsid)" in err
    assert "iscsikitd is not running" in err
    code, out, err = run(root, ["-m", "session", "-s"])
    assert (code, out) == (20, "")
    assert "Could not execute operation on all sessions: could not connect to iscsid" in err


def test_rescan_writes_sysfs(root: Path) -> None:
    code, out, _ = run(root, ["-m", "session", "-r", "1", "-R"])
    assert code == 0
    assert out.startswith("Rescanning session [sid: 1, target: iqn.2003-01.org.example:disk1")
    assert (root / "sys/class/scsi_host/host2/scan").read_text() == "- - -"


def test_sid_as_path_and_bad_sids(root: Path) -> None:
    assert (
        run(root, ["-m", "session", "-r", "/sys/class/iscsi_session/session2", "-P", "1"])[0] == 0
    )
    assert run(root, ["-m", "session", "-r", "bogus"])[0] == 1
    assert run(root, ["-m", "session", "-r", "/sys/class/iscsi_host/host2"])[0] == 7
    assert run(root, ["-m", "session", "-o", "new"])[0] == 7


def test_missing_iface_record(tmp_path: Path) -> None:
    f = FakeSysfs(tmp_path)
    f.add_transport()
    f.add_session(FakeSession(1, DISK1, "10.0.0.1", ifacename="ifx"))
    code, _, err = run(tmp_path, ["-m", "session", "-r", "1"])
    assert (code, err) == (3, "iscsikit-adm: Could not read iface info for ifx.\n")


def test_daemon_socket_selects_the_daemon_client(root: Path, tmp_path: Path) -> None:
    import socket

    sock_dir = root / "run/iscsikit"
    sock_dir.mkdir(parents=True, exist_ok=True)
    path = sock_dir / "iscsikitd.sock"
    s = socket.socket(socket.AF_UNIX)
    try:
        s.bind(str(path))
        code, out, err = run(root, ["-m", "session"])
    finally:
        s.close()
        path.unlink()
    # Bound but nobody listens: iscsiadm's "could not connect to iscsid" (20).
    assert (code, out) == (20, "")
    assert "iscsikitd" in err and str(path) in err


def test_json_output(root: Path, tmp_path: Path) -> None:
    import json

    code, out, _ = run(root, ["-m", "session", "--output", "json"])
    doc = json.loads(out)
    assert (code, doc["version"], doc["mode"]) == (0, 1, "session")
    assert [s["sid"] for s in doc["sessions"]] == [1, 10, 2, 3]
    two = doc["sessions"][2]
    assert (two["username"], two["password"], two["portal"]) == ("joe", None, "192.168.1.11:3260")
    assert doc["messages"][0].startswith("tcp: [1] 192.168.1.10:3260,1")
    shown = json.loads(run(root, ["-m", "session", "-S", "--output", "json"])[1])
    assert shown["sessions"][2]["password"] == "secret"
    FakeSysfs(tmp_path)
    code, out, _ = run(tmp_path, ["-m", "session", "--output", "json"])
    assert code == 21
    assert json.loads(out)["error"] == {
        "code": 21, "name": "NO_OBJS_FOUND", "message": "No active sessions.",
    }  # fmt: skip
    host = json.loads(run(root, ["-m", "host", "--output", "json"])[1])
    assert [(h["host_no"], h["sessions"]) for h in host["hosts"]] == [
        (11, [10]),
        (2, [1]),
        (3, [2]),
        (4, [3]),
    ]
    fw = json.loads(run(root, ["-m", "fw", "--output", "json"])[1])
    assert [t["target_name"] for t in fw["targets"]] == [
        "iqn.2003-01.org.example:boot", "iqn.2003-01.org.example:boot2",
    ]  # fmt: skip
    assert fw["targets"][0]["chap_password"] is None
