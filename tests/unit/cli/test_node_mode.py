"""``-m node`` in-process: the oracle's scenarios replayed (golden/node/README.md), and
the session commands against a fake session layer."""

from __future__ import annotations

import json
import shlex
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from iscsikit.cli.env import CliEnv
from iscsikit.cli.main import main
from iscsikit.config.paths import resolve_paths
from iscsikit.errors import IscsiErr, IscsiError
from iscsikit.manager.sessions import IscsidNotConnectedError, SessionInfo
from iscsikit.records import IfaceRecord, NodeRecord, Records

GOLDEN = Path(__file__).parent / "golden" / "node"
DISK1 = "iqn.2026-11.test:disk1"


def run(root: Path, argv: list[str], service: Any = None) -> tuple[int, str, str]:
    env = CliEnv.for_test(root, session_layer=service)
    code = main(argv, env=env)
    return code, env.stdout.getvalue(), env.stderr.getvalue()  # type: ignore[attr-defined]


def build(root: Path) -> Path:
    """golden/node/setup.txt's database, made by iscsikit (ifaces through the store)."""
    conf = root / "etc/iscsi/iscsid.conf"
    conf.parent.mkdir(parents=True)
    shutil.copy(GOLDEN / "iscsid.conf", conf)
    records = Records(resolve_paths(root=root))
    for line in (GOLDEN / "setup.txt").read_text().splitlines():
        if not line or line.startswith("#"):
            continue
        args = shlex.split(line)
        if args[:2] == ["-m", "iface"]:
            records.add_iface(IfaceRecord.new(args[3]))
            continue
        code, _, err = run(root, args)
        assert code == 0, (args, err)
    return root


@pytest.fixture(scope="module")
def setup_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build(tmp_path_factory.mktemp("node-setup") / "root")


@pytest.fixture
def db(setup_db: Path, tmp_path: Path) -> Path:
    root = tmp_path / "root"
    shutil.copytree(setup_db, root, symlinks=True)
    return root


def scenario(name: str) -> list[tuple[list[str], int, str]]:
    """(args, exit code, stdout) of each command of a golden scenario."""
    cases = []
    for chunk in (GOLDEN / name).read_text().split("### iscsiadm")[1:]:
        head, exit_line, out = chunk.split("\n", 2)
        cases.append((shlex.split(head), int(exit_line.removeprefix("### exit ")), out))
    return cases


@pytest.mark.parametrize(
    "name", sorted(p.name for p in GOLDEN.glob("*.txt") if p.name != "setup.txt")
)
def test_golden_scenario(db: Path, name: str) -> None:
    for args, code, stdout in scenario(name):
        got_code, got_out, err = run(db, args)
        assert (got_code, got_out) == (code, stdout), (args, err)


def test_listing_reads_no_record_file(db: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """-P 0/1 come from directory names alone (fast for 10,000 records)."""

    def refuse(*_: object, **__: object) -> None:
        raise AssertionError("listing must not load records")

    monkeypatch.setattr(Records, "nodes", refuse)
    assert run(db, ["-m", "node"])[0] == 0
    assert run(db, ["-m", "node", "-P", "1"])[0] == 0


def test_stderr_in_iscsiadm_spirit(db: Path) -> None:
    code, _, err = run(db, ["-m", "node", "-o", "update", "-T", DISK1, "-n", "node.foo", "-v", "1"])
    assert code == 7
    assert err == (
        "iscsikit-adm: Cannot modify node.foo. Invalid param name.\n" * 3
        + "iscsikit-adm: Could not execute operation on all records: invalid parameter\n"
    )
    assert run(db, ["-m", "node", "-T", "nomatch"])[2] == "iscsikit-adm: No records found\n"


def test_update_is_all_or_nothing(db: Path) -> None:
    args = ["-m", "node", "-o", "update", "-T", DISK1]
    assert run(db, [*args, "-n", "node.startup", "-v", "automatic", "-n", "x.y", "-v", "1"])[0] == 7
    assert all(
        n.get("node.startup") == "manual" for n in Records(resolve_paths(root=db)).nodes(DISK1)
    )


# -- JSON -------------------------------------------------------------------------------


def doc(root: Path, argv: list[str]) -> tuple[int, dict[str, Any]]:
    code, out, _ = run(root, ["--output", "json", *argv])
    return code, json.loads(out)


def test_json(db: Path) -> None:
    code, d = doc(db, ["-m", "node"])
    assert code == 0 and d["version"] == 1 and d["mode"] == "node" and d["op"] == "list"
    assert len(d["nodes"]) == 8
    old = next(n for n in d["nodes"] if n["address"] == "127.0.0.2")
    assert old["tpgt"] == -1 and old["portal"] == "127.0.0.2:3260"
    code, d = doc(db, ["-m", "node", "-T", "iqn.2026-11.test:disk3"])
    assert d["op"] == "show"
    assert d["nodes"][0]["record"]["node.session.auth.password"] is None  # masked
    code, d = doc(db, ["-m", "node", "-T", "iqn.2026-11.test:disk3", "-S"])
    assert d["nodes"][0]["record"]["node.session.auth.password"] == "secret"
    code, d = doc(db, ["-m", "node", "-o", "new", "-T", "iqn.x:n", "-p", "9.9.9.9:3260,1"])
    assert code == 0 and d["op"] == "new" and d["nodes"][0]["target"] == "iqn.x:n"
    code, d = doc(
        db, ["-m", "node", "-o", "update", "-T", "iqn.x:n", "-n", "node.startup", "-v", "automatic"]
    )
    assert d["changes"] == {"node.startup": "automatic"} and len(d["nodes"]) == 1
    code, d = doc(db, ["-m", "node", "-o", "delete", "-T", "iqn.x:n"])
    assert code == 0 and d["op"] == "delete"
    code, d = doc(db, ["-m", "node", "-T", "iqn.x:n"])
    assert code == 21 and d["error"]["name"] == "NO_OBJS_FOUND"


# -- sessions ---------------------------------------------------------------------------


def session(
    sid: int, target: str, address: str, port: int = 3260, tpgt: int = 1, iface: str = "default"
) -> SessionInfo:
    return SessionInfo(
        sid=sid,
        transport="tcp",
        target=target,
        address=address,
        port=port,
        tpgt=tpgt,
        persistent_address=address,
        persistent_port=port,
        iface=iface,
        initiator_name="iqn.x:i",
        state="LOGGED_IN",
        conn_state="Unknown",
        internal_state="Unknown",
        host_no=sid + 1,
        params={},
        username="",
        password="",
        username_in="",
        password_in="",
        timeouts={},
    )


class FakeService:
    def __init__(self, sessions: list[SessionInfo], fail: Mapping[str, IscsiError] = {}) -> None:
        self.existing = sessions
        self.fail = fail
        self.calls: list[tuple[str, Any]] = []

    def sessions(self) -> list[SessionInfo]:
        return list(self.existing)

    def login(self, node: NodeRecord, *, wait: bool = True) -> SessionInfo:
        self.calls.append(("login", (node.target, node.address, node.iface, wait)))
        if node.address in self.fail:
            raise self.fail[node.address]
        return session(99, node.target, node.address, node.port, node.tpgt, node.iface)

    def logout(self, info: SessionInfo) -> None:
        self.calls.append(("logout", info.sid))
        if info.persistent_address in self.fail:
            raise self.fail[info.persistent_address]

    def rescan(self, info: SessionInfo) -> None:
        self.calls.append(("rescan", info.sid))

    def stats(self, info: SessionInfo) -> Mapping[str, int]:
        return {"txdata_octets": 10 * info.sid}


def test_login(db: Path) -> None:
    """A node with its sessions already is refused (15) and the others go on; a session
    on any tcp iface counts for a node bound to the built-in default iface."""
    fake = FakeService([session(1, DISK1, "127.0.0.1", iface="ifx")])
    code, out, err = run(db, ["-m", "node", "-l", "-T", DISK1], fake)
    assert code == 15
    assert err == (
        "iscsikit-adm: default: 1 session requested, but 1 already present.\n"
        "iscsikit-adm: ifx: 1 session requested, but 1 already present.\n"
        "iscsikit-adm: Could not log into all portals\n"
    )
    assert out == (
        "Logging in to [iface: default, target: iqn.2026-11.test:disk1, portal: 127.0.0.2,3260]\n"
        "Login to [iface: default, target: iqn.2026-11.test:disk1, portal: 127.0.0.2,3260] "
        "successful.\n"
    )
    assert fake.calls == [("login", (DISK1, "127.0.0.2", "default", True))]


def test_login_multiple_sessions(db: Path) -> None:
    run(
        db,
        [
            "-m",
            "node",
            "-o",
            "update",
            "-p",
            "127.0.0.2",
            "-n",
            "node.session.nr_sessions",
            "-v",
            "3",
        ],
    )
    fake = FakeService([session(1, DISK1, "127.0.0.2")])
    code, out, _ = run(db, ["-m", "node", "-l", "-p", "127.0.0.2"], fake)
    assert code == 0 and out.count(" (multiple)\n") == 2 and len(fake.calls) == 2


def test_login_failures_first_error_wins(db: Path) -> None:
    fake = FakeService(
        [],
        {
            "127.0.0.1": IscsiError("x", code=IscsiErr.TRANS),
            "127.0.0.2": IscsiError("y", code=IscsiErr.LOGIN),
        },
    )
    code, out, err = run(db, ["-m", "node", "-l", "-p", "127.0.0.1"], fake)
    assert code == 4 and out.count("Logging in to") == 2 and "successful" not in out
    assert "initiator reported error (4 - encountered connection failure)" in err
    assert err.endswith("iscsikit-adm: Could not log into all portals\n")
    code, out, _ = run(db, ["-m", "node", "-l", "-W", "-T", "iqn.2026-11.test:disk2"], fake)
    assert code == 0 and "successful" not in out  # -W: requests only
    assert fake.calls[-1] == ("login", ("iqn.2026-11.test:disk2", "fe80::2", "default", False))


def test_loginall_by_startup(db: Path) -> None:
    fake = FakeService([])
    code, out, _ = run(db, ["-m", "node", "-L", "automatic"], fake)
    assert code == 0 and out.count("Logging in to") == 2  # disk2's two portals
    code, out, _ = run(db, ["-m", "node", "-L", "all"], fake)
    assert out.count("Logging in to") == 8
    assert run(db, ["-m", "node", "-L", "onboot"], fake)[0] == 21


def test_logout(db: Path) -> None:
    sessions = [
        session(1, DISK1, "127.0.0.1"),
        session(10, "iqn.other:t", "10.9.9.9"),
        session(2, DISK1, "127.0.0.2", tpgt=1),
    ]
    fake = FakeService(sessions)
    code, out, _ = run(db, ["-m", "node", "-u", "-T", DISK1], fake)
    assert code == 0 and fake.calls == [("logout", 1), ("logout", 2)]
    assert out.splitlines()[0] == (
        "Logging out of session [sid: 1, target: iqn.2026-11.test:disk1, portal: 127.0.0.1,3260]"
    )
    assert out.splitlines()[-1].startswith("Logout of [sid: 2,")
    assert run(db, ["-m", "node", "-u", "-T", "nomatch"], fake)[2] == (
        "iscsikit-adm: No matching sessions found\n"
    )
    # No daemon: every request fails to be sent -> 21, as iscsiadm without iscsid.
    nodaemon = FakeService(sessions, {"127.0.0.1": IscsidNotConnectedError("no daemon")})
    assert run(db, ["-m", "node", "-u", "-p", "127.0.0.1"], nodaemon)[0] == 21


def test_logoutall(db: Path) -> None:
    """-U reads each session's node record: old-style records match any tpgt; sessions
    without a record are left alone."""
    sessions = [
        session(1, DISK1, "127.0.0.2", tpgt=3),
        session(2, "iqn.other:t", "10.9.9.9"),
        session(3, "iqn.2026-11.test:disk2", "fe80::2", tpgt=7),
    ]
    fake = FakeService(sessions)
    assert run(db, ["-m", "node", "-U", "automatic"], fake)[0] == 0
    assert fake.calls == [("logout", 3)]  # disk2 is node.startup automatic
    # ... and node.conn[0].startup manual, which -U manual matches too
    assert run(db, ["-m", "node", "-U", "manual"], fake)[0] == 0
    assert fake.calls[1:] == [("logout", 1), ("logout", 3)]


def test_rescan_and_stats(db: Path) -> None:
    fake = FakeService([session(4, DISK1, "127.0.0.1")])
    code, out, _ = run(db, ["-m", "node", "-R", "-T", DISK1], fake)
    assert (code, out) == (
        0,
        "Rescanning session [sid: 4, target: iqn.2026-11.test:disk1, portal: 127.0.0.1,3260]\n",
    )
    code, out, _ = run(db, ["-m", "node", "-s"], fake)
    assert code == 0 and "\ttxdata_octets: 40\n" in out
    assert run(db, ["-m", "node", "-R", "-T", "nomatch"], fake)[:2] == (21, "")
    code, out, _ = run(db, ["--output", "json", "-m", "node", "-s"], fake)
    assert json.loads(out)["sessions"][0]["stats"] == {"txdata_octets": 40}
