"""``-m iface`` on scratch databases (iscsiadm's own output for the same commands is
compared in tests/integration/test_cli_discovery_oracle.py)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from iscsikit.cli.env import CliEnv
from iscsikit.cli.main import main
from iscsikit.config.paths import resolve_paths
from iscsikit.records import Records

SCHEMA = Path(__file__).resolve().parents[3] / "docs" / "iscsikit-adm.schema.json"
T1, T2 = "iqn.2001-04.com.example:t1", "iqn.2001-04.com.example:t2"
EMPTY_LINE = "tcp,<empty>,<empty>,<empty>,<empty>"


def run(root: Path, *argv: str) -> tuple[int, str, str]:
    env = CliEnv.for_test(root)
    code = main(list(argv), env=env)
    return code, env.stdout.getvalue(), env.stderr.getvalue()  # type: ignore[attr-defined]


def ok(root: Path, *argv: str) -> str:
    code, out, err = run(root, *argv)
    assert code == 0, (argv, out, err)
    return out


def store(root: Path) -> Records:
    return Records(resolve_paths(root=root))


@pytest.fixture
def root(tmp_path: Path) -> Path:
    (tmp_path / "etc/iscsi").mkdir(parents=True)
    return tmp_path


@pytest.fixture
def bound(root: Path) -> Path:
    """ifb (bound by MAC) and ifa, with nodes on both and on default."""
    ok(
        root,
        "-m",
        "iface",
        "-I",
        "ifb",
        "-o",
        "new",
        "-n",
        "iface.hwaddress",
        "-v",
        "00:11:22:33:44:55",
    )
    ok(root, "-m", "iface", "-I", "ifa", "-o", "new")
    ok(root, "-m", "node", "-o", "new", "-T", T2, "-p", "10.0.0.2:3260,1", "-I", "ifa")
    ok(root, "-m", "node", "-o", "new", "-T", T1, "-p", "10.0.0.1:3260,1", "-I", "ifa")
    ok(root, "-m", "node", "-o", "new", "-T", T1, "-p", "10.0.0.1:3260,1", "-I", "ifb")
    ok(root, "-m", "node", "-o", "new", "-T", T1, "-p", "[fe80::1]:3260,2", "-I", "ifa")
    ok(root, "-m", "node", "-o", "new", "-T", T2, "-p", "10.0.0.3")
    return root


def test_list_files_sorted_then_builtins(root: Path) -> None:
    assert (
        ok(root, "-m", "iface")
        == f"default {EMPTY_LINE}\niser iser,<empty>,<empty>,<empty>,<empty>\n"
    )
    assert (root / "etc/iscsi/ifaces").is_dir()  # iscsiadm creates it in iface mode
    ok(root, "-m", "iface", "-I", "zz", "-o", "new", "-n", "iface.ipaddress", "-v", "10.1.1.1")
    ok(root, "-m", "iface", "-I", "aa", "-o", "new")
    assert ok(root, "-m", "iface", "-P", "0").splitlines() == [
        f"aa {EMPTY_LINE}",
        "zz tcp,<empty>,10.1.1.1,<empty>,<empty>",
        f"default {EMPTY_LINE}",
        "iser iser,<empty>,<empty>,<empty>,<empty>",
    ]


def test_tree(bound: Path) -> None:
    assert ok(bound, "-m", "iface", "-P", "1") == (
        f"Iface: ifa\n\tTarget: {T1}\n\t\tPortal: 10.0.0.1:3260,1\n\t\tPortal: [fe80::1]:3260,2\n"
        f"\tTarget: {T2}\n\t\tPortal: 10.0.0.2:3260,1\n"
        f"Iface: ifb\n\tTarget: {T1}\n\t\tPortal: 10.0.0.1:3260,1\n"
        f"Iface: default\n\tTarget: {T2}\n\t\tPortal: 10.0.0.3:3260,-1\n"
        "Iface: iser\n"
    )
    assert ok(bound, "-m", "iface", "-I", "ifb", "-P", "1") == (
        f"Iface: ifb\n\tTarget: {T1}\n\t\tPortal: 10.0.0.1:3260,1\n"
    )
    assert run(bound, "-m", "iface", "-I", "nope", "-P", "1")[0] == 6


def test_tree_without_nodes_prints_nothing(root: Path) -> None:
    ok(root, "-m", "iface", "-I", "ifa", "-o", "new")
    assert run(root, "-m", "iface", "-P", "1") == (0, "", "")
    assert run(root, "-m", "iface", "-I", "nope", "-P", "1") == (0, "", "")


@pytest.mark.parametrize("level", ["2", "-2"])
def test_bad_print_level(root: Path, level: str) -> None:
    assert run(root, "-m", "iface", "-I", "nope", "-P", level) == (
        7,
        "",
        f"iscsikit-adm: Invalid info level {level}. Try 0 - 1.\n",
    )


def test_show(bound: Path) -> None:
    shown = ok(bound, "-m", "iface", "-I", "ifb", "-o", "show")
    assert shown.startswith("# BEGIN RECORD 2.1.8\niface.iscsi_ifacename = ifb\n")
    assert "iface.hwaddress = 00:11:22:33:44:55\n" in shown and shown.endswith("# END RECORD\n")
    assert "iface.transport_name = iser\n" in ok(bound, "-m", "iface", "-I", "iser")
    code, out, err = run(bound, "-m", "iface", "-I", "nope")
    assert (code, out) == (6, "") and "ifaces/nope using read mode" in err


def test_a_name_that_hides_its_family_is_refused_like_libopeniscsiusr(root: Path) -> None:
    ok(root, "-m", "iface", "-I", "ifx", "-o", "new")
    ok(root, "-m", "iface", "-I", "if6", "-o", "new", "-n", "iface.ipaddress", "-v", "::1")
    code, out, err = run(root, "-m", "iface")
    assert (code, out) == (7, "")
    assert "Unknown parameter name iface." in err and "ifaces/if6 invalid." in err
    assert "IPv4 keys only" in err
    assert run(root, "-m", "iface", "-I", "if6")[0] == 6
    assert ok(root, "-m", "iface", "-I", "ifx").startswith("# BEGIN RECORD")
    ok(root, "-m", "iface", "-I", "if6", "-o", "update", "-n", "iface.ipaddress", "-v", "10.0.0.6")
    assert run(root, "-m", "iface")[0] == 0  # rewritten with IPv4 keys: fine again


def test_new(root: Path) -> None:
    assert ok(root, "-m", "iface", "-I", "ifn", "-o", "new") == (
        "ifn updated.\nNew interface ifn added\n"
    )
    ok(root, "-m", "iface", "-I", "ifn", "-o", "update", "-n", "iface.mtu", "-v", "9000")
    ok(root, "-m", "iface", "-I", "ifn", "-o", "new")  # written afresh
    assert store(root).iface("ifn").get("iface.mtu") == "0"
    out = ok(
        root, "-m", "iface", "-I", "ifv", "-o", "new", "-n", "iface.ipaddress", "-v", "10.0.0.9"
    )
    assert out == "ifv updated.\nNew interface ifv added\n"
    assert store(root).iface("ifv").get("iface.ipaddress") == "10.0.0.9"
    code, out, err = run(
        root, "-m", "iface", "-I", "ifw", "-o", "new", "-n", "iface.bogus", "-v", "1"
    )
    assert (code, out) == (0, "New interface ifw added\n")
    assert err == (
        "iscsikit-adm: Cannot modify iface.bogus. Invalid param name.\n"
        "iscsikit-adm: Could not update iface ifw: invalid parameter\n"
    )


@pytest.mark.parametrize(
    ("argv", "code", "err"),
    [
        (("-o", "new"), 22, "Could not add interface. No interface passed in."),
        (("-I", "default", "-o", "new"), 7, "Could not create new interface default."),
        (("-I", "a/b", "-o", "new"), 6, "Could not create new interface a/b."),
        (("-o", "delete"), 7, "Could not delete interface. No interface passed in."),
        (
            ("-I", "iser", "-o", "delete"),
            7,
            "iface iser is a special interface and cannot be deleted.",
        ),
        (("-I", "nope", "-o", "delete"), 7, "Could not delete iface nope: invalid parameter"),
        (("-I", "ifa", "-o", "update"), 7, "Update requires name, value, and iface."),
        (
            ("-I", "nope", "-o", "update", "-n", "iface.mtu", "-v", "1"),
            7,
            "Could not read iface info for nope.",
        ),
        (("-o", "apply"), 7, "Apply requires iface."),
        (("-I", "nope", "-o", "apply"), 6, "Could not read iface nope (6)."),
        (("-o", "applyall", "-H", "00:00:00:00:00:01"), 7, "Could not match MAC to host."),
        (("-I", "ifa", "-o", "new", "-o", "delete"), 7, ""),
        (("-I", "ifa", "-o", "nonpersistent"), 7, ""),
        (("-C", "ping", "-a", "127.0.0.1"), 7, "Ping requires iface."),
        (("-C", "ping", "-I", "ifa"), 7, "Ping requires destination ipaddress."),
        (
            ("-C", "ping", "-I", "ifa", "-a", "127.0.0.1", "-c", "0"),
            7,
            "Invalid number of packets to transmit: 0.",
        ),
        (("-C", "ping", "-I", "ifa", "-a", "127.0.0.1", "-b", "0"), 7, "Invalid packet size: 0."),
        (
            ("-C", "ping", "-I", "ifa", "-a", "127.0.0.1", "-i", "-1"),
            7,
            "Invalid timing interval: -1.",
        ),
        (("-C", "ping", "-I", "nope", "-a", "127.0.0.1"), 6, "Could not read iface nope (6)."),
    ],
)
def test_refusals(bound: Path, argv: tuple[str, ...], code: int, err: str) -> None:
    got, out, stderr = run(bound, "-m", "iface", *argv)
    assert (got, out) == (code, "")
    assert (err in stderr) if err else stderr == ""


def test_update_rewrites_bound_nodes(bound: Path) -> None:
    assert (
        ok(
            bound,
            "-m",
            "iface",
            "-I",
            "ifa",
            "-o",
            "update",
            "-n",
            "iface.ipaddress",
            "-v",
            "10.7.7.7",
        )
        == "ifa updated.\n"
    )
    mine = store(bound).nodes(iface="ifa")
    assert mine and all(n.get("iface.ipaddress") == "10.7.7.7" for n in mine)
    assert store(bound).nodes(iface="ifb")[0].get("iface.ipaddress") == ""
    ok(bound, "-m", "iface", "-I", "ifa", "-o", "update", "-n", "iface.mtu", "-v", "abc")
    assert store(bound).iface("ifa").get("iface.mtu") == "0"  # read as iscsiadm reads it


@pytest.mark.parametrize(
    ("iface", "name", "message"),
    [
        ("ifa", "iface.bogus", "Cannot modify iface.bogus. Invalid param name."),
        ("ifa", "iface.ipv6_linklocal", "Cannot modify iface.ipv6_linklocal. Invalid param name."),
        ("ifa", "iface.iscsi_ifacename", "Delete it, and then create a new one."),
        ("ifb", "iface.net_ifacename", "from hwaddress to net_ifacename."),
        ("default", "iface.mtu", "iface default is a special interface and cannot be modified."),
    ],
)
def test_update_refusals_exit_0_like_iscsiadm(
    bound: Path, iface: str, name: str, message: str
) -> None:
    before = (bound / "etc/iscsi/ifaces/ifa").read_text()
    code, out, err = run(
        bound,
        "-m",
        "iface",
        "-I",
        iface,
        "-o",
        "update",
        "-n",
        "iface.mtu",
        "-v",
        "1500",
        "-n",
        name,
        "-v",
        "x",
    )
    assert (code, out) == (0, "")
    assert message in err and f"Could not update iface {iface}: invalid parameter" in err
    assert (bound / "etc/iscsi/ifaces/ifa").read_text() == before  # nothing written


def test_binding_switch_the_other_way(root: Path) -> None:
    ok(root, "-m", "iface", "-I", "ifn", "-o", "new", "-n", "iface.net_ifacename", "-v", "eth0")
    code, _, err = run(
        root,
        "-m",
        "iface",
        "-I",
        "ifn",
        "-o",
        "update",
        "-n",
        "iface.hwaddress",
        "-v",
        "00:11:22:33:44:55",
    )
    assert code == 0 and "from net_ifacename to hwaddress." in err
    ok(
        root,
        "-m",
        "iface",
        "-I",
        "ifn",
        "-o",
        "update",
        "-n",
        "iface.net_ifacename",
        "-v",
        "default",
    )
    ok(
        root,
        "-m",
        "iface",
        "-I",
        "ifn",
        "-o",
        "update",
        "-n",
        "iface.hwaddress",
        "-v",
        "00:11:22:33:44:55",
    )


def test_delete(bound: Path) -> None:
    assert ok(bound, "-m", "iface", "-I", "ifa", "-I", "ifb", "-o", "delete") == (
        "ifa unbound and deleted.\n"
    )
    assert {n.iface for n in store(bound).nodes()} == {"ifb", "default"}
    assert not (bound / "etc/iscsi/ifaces/ifa").exists()
    code, _, err = run(bound, "-m", "iface", "-I", "ifb", "-I", "x", "-o", "show")
    assert code == 0 and "Using the first one ifb." in err


def test_delete_refused_while_a_session_uses_it(
    bound: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    class Session:
        sid, iface = 4, "ifa"

    class Service:
        def sessions(self) -> list[Any]:
            return [Session()]

    monkeypatch.setattr("iscsikit.manager.sessions.session_service", lambda env: Service())
    code, out, err = run(bound, "-m", "iface", "-I", "ifa", "-o", "delete")
    assert (code, out) == (15, "") and "session(s) 4" in err
    assert (bound / "etc/iscsi/ifaces/ifa").exists()


def test_apply_without_an_offload_hba(bound: Path) -> None:
    assert run(bound, "-m", "iface", "-I", "ifa", "-o", "apply") == (
        0,
        "ifa applied.\n",
        "iscsikit-adm: Nothing to configure.\n",
    )
    code, out, err = run(bound, "-m", "iface", "-o", "applyall", "-H", "3")
    assert (code, out) == (0, "Applied settings to ifaces attached to host3.\n")
    assert "Could not read proc_name for host3." in err
    ok(bound, "-m", "iface", "-I", "ifa", "-o", "update", "-n", "iface.ipaddress", "-v", "10.0.0.9")
    code, out, err = run(bound, "-m", "iface", "-I", "ifa", "-o", "apply")
    assert (code, out) == (1, "") and "Could not apply net configuration" in err
    assert run(bound, "-m", "iface", "-o", "applyall")[:2] == (1, "")


def test_ping_without_an_offload_hba(bound: Path) -> None:
    code, out, err = run(bound, "-m", "iface", "-C", "ping", "-I", "ifa", "-a", "::1", "-c", "3")
    assert (code, out) == (1, "".join(f"Ping {i} failed: unknown error\n" for i in (1, 2, 3)))
    assert err.count("no offload HBA") == 3


def test_other_submodes_are_ignored(bound: Path) -> None:
    assert ok(bound, "-m", "iface", "-C", "chap") == ok(bound, "-m", "iface")


def test_offload_ifaces_appear_when_listing(root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from iscsikit.plugin.transport import OffloadPort

    port = OffloadPort("bnx2i", "00:0A:0B:0C:0D:0E", net_ifacename="eth3")
    monkeypatch.setattr("iscsikit.manager.ifaces.offload_ports", lambda root, pm=None: [port])
    out = ok(root, "-m", "iface")
    # The record holds name, MAC and transport only, as iscsiadm writes it (2.1.8 iface.c
    # iface_setup_binding_from_kern_iface): the host's netdev is not copied into it.
    assert (
        out.splitlines()[0]
        == "bnx2i.00:0a:0b:0c:0d:0e bnx2i,00:0a:0b:0c:0d:0e,<empty>,<empty>,<empty>"
    )


def test_json(bound: Path) -> None:
    jsonschema = pytest.importorskip("jsonschema")
    schema = json.loads(SCHEMA.read_text())
    validator = jsonschema.validators.validator_for(schema)(schema)
    docs: dict[tuple[str, ...], dict[str, Any]] = {}
    for argv in (
        (),
        ("-P", "1"),
        ("-I", "ifa"),
        ("-I", "ifn", "-o", "new"),
        ("-I", "ifn", "-o", "update", "-n", "iface.bogus", "-v", "1"),
        ("-I", "ifn", "-o", "delete"),
        ("-I", "nope"),
        ("-I", "ifa", "-o", "apply"),
        ("-C", "ping", "-I", "ifa", "-a", "127.0.0.1"),
        ("-I", "ifa", "-o", "new", "-o", "delete"),
    ):
        code, out, _ = run(bound, "-m", "iface", *argv, "--output", "json")
        doc = json.loads(out)
        validator.validate(doc)
        assert doc["mode"] == "iface" and ("error" in doc) == (code != 0), argv
        docs[argv] = doc
    assert [i["name"] for i in docs[()]["ifaces"]] == ["ifa", "ifb", "default", "iser"]
    assert [n["target"] for n in docs[("-P", "1")]["ifaces"][0]["nodes"]] == [T1, T1, T2]
    assert docs[("-I", "ifa")]["ifaces"][0]["record"]["iface.mtu"] == 0
    assert docs[("-I", "ifn", "-o", "new")]["messages"] == [
        "ifn updated.",
        "New interface ifn added",
    ]
    quirk = docs[("-I", "ifn", "-o", "update", "-n", "iface.bogus", "-v", "1")]
    assert "error" not in quirk and len(quirk["errors"]) == 2
    assert docs[("-I", "nope")]["error"]["code"] == 6
