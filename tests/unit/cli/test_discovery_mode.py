"""``-m discovery`` / ``-m discoverydb`` on scratch databases, SendTargets faked.

What iscsiadm 2.1.8 prints for the same commands is checked in
tests/integration/test_cli_discovery_oracle.py; here each branch runs without sockets:
``iscsikit.manager.connect.discover`` (under the one SendTargets runner,
``iscsikit.discovery.sendtargets.send_targets``) and the session service are replaced.
"""

from __future__ import annotations

import io
import json
import os
from pathlib import Path
from typing import Any

import pytest

from iscsikit.cli.env import CliEnv
from iscsikit.cli.main import main
from iscsikit.cli.modes.discovery import idbm_tree, split_portal
from iscsikit.config.paths import resolve_paths
from iscsikit.errors import (
    AuthenticationError,
    IscsiErr,
    IscsiError,
    PduTimeoutError,
    TransportError,
)
from iscsikit.proto.address import Portal
from iscsikit.proto.sendtargets import DiscoveredTarget
from iscsikit.records import NodeId, NodeRecord, Records

SCHEMA = Path(__file__).resolve().parents[3] / "docs" / "iscsikit-adm.schema.json"
ALPHA, BETA = "iqn.2024-01.test.iscsikit:alpha", "iqn.2024-01.test.iscsikit:beta"
PORTAL = "127.0.0.1:3260"


def run(root: Path, *argv: str, tty: bool = False) -> tuple[int, str, str]:
    env = CliEnv.for_test(root, isatty=tty)
    code = main(list(argv), env=env)
    return code, env.stdout.getvalue(), env.stderr.getvalue()  # type: ignore[attr-defined]


def ok(root: Path, *argv: str) -> str:
    code, out, err = run(root, *argv)
    assert code == 0, (argv, out, err)
    return out


def store(root: Path) -> Records:
    return Records(resolve_paths(root=root))


class FakeDiscovery:
    """Stands in for iscsikit.manager.connect.discover: records each call, answers or raises."""

    def __init__(self, found: list[DiscoveredTarget] | Exception) -> None:
        self.found = found
        self.calls: list[dict[str, Any]] = []

    def __call__(self, portal: Portal, **kwargs: Any) -> list[DiscoveredTarget]:
        self.calls.append({"portal": portal, **kwargs})
        if isinstance(self.found, Exception):
            raise self.found
        return list(self.found)


def targets(host: str = "127.0.0.1", port: int = 3260) -> list[DiscoveredTarget]:
    return [DiscoveredTarget(ALPHA, host, port, 1), DiscoveredTarget(BETA, host, port, 1)]


@pytest.fixture
def sendtargets(monkeypatch: pytest.MonkeyPatch) -> FakeDiscovery:
    fake = FakeDiscovery(targets())
    monkeypatch.setattr("iscsikit.manager.connect.discover", fake)
    return fake


@pytest.fixture
def root(tmp_path: Path) -> Path:
    (tmp_path / "etc/iscsi").mkdir(parents=True)
    (tmp_path / "etc/iscsi/initiatorname.iscsi").write_text("InitiatorName=iqn.2024-01.t:me\n")
    return tmp_path


def make_ifaces(root: Path, *names: str) -> None:
    for name in names:
        ok(root, "-m", "iface", "-I", name, "-o", "new")
        ok(
            root,
            "-m",
            "iface",
            "-I",
            name,
            "-o",
            "update",
            "-n",
            "iface.initiatorname",
            "-v",
            f"iqn.2024-01.t:{name}",
        )


def validate(doc: dict[str, Any]) -> None:
    jsonschema = pytest.importorskip("jsonschema")
    schema = json.loads(SCHEMA.read_text())
    jsonschema.validators.validator_for(schema)(schema).validate(doc)


# -- helpers ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("10.0.0.1", ("10.0.0.1", 3260)),
        ("10.0.0.1:3261", ("10.0.0.1", 3261)),
        ("10.0.0.1:3261,5", ("10.0.0.1", 3261)),
        ("10.0.0.1,5", ("10.0.0.1", 3260)),
        ("10.0.0.1:abc", ("10.0.0.1", 0)),  # strtoul
        ("[fe80::1]:3262,2", ("fe80::1", 3262)),
        ("[fe80::1]", ("fe80::1", 3260)),
        ("fe80::1", ("fe80::1", 3260)),  # bare IPv6: no port
        ("fe80::1,4", ("fe80::1", 3260)),
        ("localhost:3263", ("localhost", 3263)),
        ("host", ("host", 3260)),
        ("[fe80::1", None),
    ],
)
def test_split_portal(text: str, expected: tuple[str, int] | None) -> None:
    assert split_portal(text, 3260) == expected


def test_idbm_tree_folds_targets_and_portals() -> None:
    nodes = [
        NodeId(ALPHA, "10.0.0.1", 3260, 1, "ifb"),
        NodeId(ALPHA, "10.0.0.1", 3260, 1, "ifa"),
        NodeId(ALPHA, "fe80::1", 3260, 2, "ifa"),
        NodeId(BETA, "10.0.0.1", 3260, -1, "default"),
    ]
    assert idbm_tree(nodes) == (
        f"Target: {ALPHA}\n\tPortal: 10.0.0.1:3260,1\n\t\tIface Name: ifb\n\t\tIface Name: ifa\n"
        "\tPortal: [fe80::1]:3260,2\n\t\tIface Name: ifa\n"
        f"Target: {BETA}\n\tPortal: 10.0.0.1:3260,-1\n\t\tIface Name: default\n"
    )


# -- listing and records ------------------------------------------------------------------


def test_listing_nothing(root: Path) -> None:
    assert run(root, "-m", "discovery") == (21, "", "")
    code, out, _ = run(root, "-m", "discoverydb", "-P", "1")
    assert code == 21
    assert out == (
        "SENDTARGETS:\nNo targets found.\niSNS:\nNo targets found.\n"
        "STATIC:\nNo targets found.\nFIRMWARE:\nNo targets found.\n"
    )


def test_listing_in_directory_order(root: Path) -> None:
    for portal in ("10.0.0.1", "10.0.0.2:3261", "[fe80::1]:3262"):
        ok(root, "-m", "discoverydb", "-t", "st", "-p", portal, "-o", "new")
    ok(root, "-m", "discoverydb", "-t", "isns", "-p", "10.0.0.3", "-o", "new")
    st = os.listdir(root / "etc/iscsi/send_targets")
    expected = [f"{n.replace(',', ':')} via sendtargets\n" for n in st]
    assert ok(root, "-m", "discovery") == "".join(expected) + "10.0.0.3:3205 via isns\n"
    tree = ok(root, "-m", "discovery", "-P", "1")
    assert "DiscoveryAddress: fe80::1,3262\n" in tree
    assert tree.endswith(
        "iSNS:\nDiscoveryAddress: 10.0.0.3,3205\nSTATIC:\nNo targets found.\n"
        "FIRMWARE:\nNo targets found.\n"
    )


def test_listing_static_nodes_only(root: Path) -> None:
    ok(root, "-m", "node", "-o", "new", "-T", ALPHA, "-p", "10.0.0.9")
    assert run(root, "-m", "discovery")[0] == 21  # -P 0 counts discovery records only
    code, out, _ = run(root, "-m", "discovery", "-P", "1")
    assert code == 0
    assert f"STATIC:\nTarget: {ALPHA}\n\tPortal: 10.0.0.9:3260,-1\n\t\tIface Name: default\n" in out


def test_show_and_secrets(root: Path) -> None:
    ok(root, "-m", "discoverydb", "-t", "st", "-p", "10.0.0.1", "-o", "new")
    ok(
        root,
        "-m",
        "discoverydb",
        "-t",
        "st",
        "-p",
        "10.0.0.1",
        "-o",
        "update",
        "-n",
        "discovery.sendtargets.auth.password",
        "-v",
        "pw",
    )
    shown = ok(root, "-m", "discovery", "-p", "10.0.0.1")
    assert shown.startswith("# BEGIN RECORD 2.1.8\ndiscovery.startup = manual\n")
    assert "discovery.sendtargets.auth.password = ********\n" in shown
    assert "password = pw\n" in ok(root, "-m", "discoverydb", "-t", "st", "-p", "10.0.0.1", "-S")
    assert run(root, "-m", "discovery", "-p", "10.0.0.9") == (
        7,
        "",
        "iscsikit-adm: Discovery record [10.0.0.9,3260] not found!\n",
    )
    assert run(root, "-m", "discoverydb", "-t", "st", "-p", "10.0.0.9")[0] == 6


@pytest.mark.parametrize(
    ("argv", "code", "message"),
    [
        (("-m", "discovery", "-p", "10.0.0.1", "-o", "new"), 7, "Use discoverydb mode."),
        (("-m", "discovery", "-p", "10.0.0.1", "-o", "update"), 7, "Use discoverydb mode."),
        (("-m", "discovery", "-p", "10.0.0.1", "-o", "nonpersistent"), 7, "Invalid operation."),
        (("-m", "discovery", "-o", "delete"), 7, "Invalid operation."),
        (("-m", "discovery", "-t", "st"), 7, "Please specify portal as <ipaddr>[:<ipport>]"),
        (("-m", "discovery", "-t", "isns"), 7, "Please specify portal as <ipaddr>:[<ipport>]"),
        (("-m", "discovery", "-t", "slp", "-p", "1.1.1.1"), 7, "not fully implemented"),
        # iSNS to a loopback port where nothing listens: the query fails, 25 as iscsiadm.
        (("-m", "discovery", "-t", "isns", "-p", "127.0.0.1:9"), 25, "iSNS"),
        (("-m", "discoverydb", "-t", "isns", "-p", "127.0.0.1:9", "-D"), 25, "iSNS"),
        (("-m", "discoverydb", "-p", "10.0.0.1"), 7, "missing discovery --type"),
        (("-m", "discoverydb", "-t", "bogus", "-p", "1.1.1.1"), 7, "missing discovery --type"),
        (("-m", "discoverydb", "-o", "new"), 7, "Operation not supported."),
        (("-m", "discoverydb", "-t", "fw"), 7, "missing --discover argument"),
        (("-m", "discoverydb", "-t", "st", "-o", "new"), 7, "Please specify portal"),
        (
            ("-m", "discoverydb", "-t", "st", "-p", "10.0.0.1", "-o", "show", "-o", "delete"),
            7,
            "Operation is not supported.",
        ),
        (
            ("-m", "discoverydb", "-t", "st", "-p", "10.0.0.1", "-o", "update"),
            7,
            "Update requires name and value.",
        ),
        (
            ("-m", "discoverydb", "-t", "st", "-p", "10.0.0.9", "-o", "delete"),
            6,
            "Discovery record [10.0.0.9,3260] not found.",
        ),
    ],
)
def test_refusals(root: Path, argv: tuple[str, ...], code: int, message: str) -> None:
    ok(root, "-m", "discoverydb", "-t", "st", "-p", "10.0.0.1", "-o", "new")
    got, out, err = run(root, *argv)
    assert (got, out) == (code, "")
    assert message in err


def test_new_update_delete(root: Path) -> None:
    assert ok(root, "-m", "discoverydb", "-t", "st", "-p", "10.0.0.1:abc", "-o", "new") == (
        "New discovery record for [10.0.0.1,0] added.\n"
    )
    assert (
        ok(root, "-m", "discoverydb", "-t", "isns", "-p", "10.0.0.2", "-o", "new", "-o", "delete")
        == "New discovery record for [10.0.0.2,3205] added.\n"
    )
    base = ("-m", "discoverydb", "-t", "st", "-p", "10.0.0.1:0", "-o", "update")
    ok(
        root,
        *base,
        "-n",
        "discovery.sendtargets.timeo.login_timeout",
        "-v",
        "12abc",
        "-n",
        "node.session.auth.chap_algs",
        "-v",
        "SHA256,MD5",
    )
    drec = store(root).discovery("sendtargets", "10.0.0.1", 0)
    assert drec.get("discovery.sendtargets.timeo.login_timeout") == "12"  # strtoul
    assert drec.get("node.session.auth.chap_algs") == "SHA256,MD5"
    code, _, err = run(
        root,
        *base,
        "-n",
        "discovery.startup",
        "-v",
        "automatic",
        "-n",
        "discovery.sendtargets.address",
        "-v",
        "1.2.3.4",
    )
    assert code == 7 and "It is used to look up the record" in err
    assert store(root).discovery("sendtargets", "10.0.0.1", 0).get("discovery.startup") == "manual"
    code, _, err = run(
        root,
        "-m",
        "discoverydb",
        "-t",
        "isns",
        "-p",
        "10.0.0.2",
        "-o",
        "update",
        "-n",
        "discovery.sendtargets.auth.username",
        "-v",
        "x",
    )
    assert code == 7 and "Invalid param name." in err
    assert ok(root, "-m", "discoverydb", "-t", "st", "-p", "10.0.0.1:0", "-o", "delete") == ""
    assert ok(root, "-m", "discovery") == "10.0.0.2:3205 via isns\n"


def test_delete_removes_the_nodes_it_found(root: Path, sendtargets: FakeDiscovery) -> None:
    ok(root, "-m", "discovery", "-t", "st", "-p", PORTAL)
    ok(root, "-m", "node", "-o", "new", "-T", ALPHA, "-p", "10.0.0.9,1")
    assert len(store(root).nodes()) == 3
    assert ok(root, "-m", "discovery", "-p", PORTAL, "-o", "delete") == ""
    assert [n.address for n in store(root).nodes()] == ["10.0.0.9"]


# -- SendTargets ---------------------------------------------------------------------------


def test_sendtargets_iface_major_output_and_records(root: Path, sendtargets: FakeDiscovery) -> None:
    make_ifaces(root, "ifb", "ifa")
    out = ok(root, "-m", "discovery", "-t", "st", "-p", PORTAL)
    lines = [f"127.0.0.1:3260,1 {t}\n" for t in (ALPHA, BETA)]
    assert out == "".join(lines * 2)
    order = os.listdir(root / "etc/iscsi/ifaces")
    # one SendTargets per initiator name, ifaces in directory order
    assert [c["initiator_name"] for c in sendtargets.calls] == [f"iqn.2024-01.t:{n}" for n in order]
    assert {n.iface for n in store(root).nodes()} == {"ifa", "ifb"}
    tree = ok(root, "-m", "discovery", "-t", "st", "-p", PORTAL, "-I", "ifa", "-P", "1")
    assert tree == "".join(
        f"Target: {t}\n\tPortal: 127.0.0.1:3260,1\n\t\tIface Name: ifa\n" for t in (ALPHA, BETA)
    )
    assert ok(root, "-m", "discovery", "-t", "st", "-p", PORTAL, "-P", "2") == ""


def test_sendtargets_without_ifaces_uses_default_and_the_initiator_file(
    root: Path, sendtargets: FakeDiscovery
) -> None:
    ok(root, "-m", "discovery", "-t", "st", "-p", PORTAL)
    assert sendtargets.calls[0]["initiator_name"] == "iqn.2024-01.t:me"
    assert sendtargets.calls[0]["portal"] == Portal("127.0.0.1", 3260)
    assert [n.iface for n in store(root).nodes()] == ["default", "default"]


def test_nonpersistent_and_show_ops(root: Path, sendtargets: FakeDiscovery) -> None:
    ok(root, "-m", "discovery", "-t", "st", "-p", PORTAL, "-o", "nonpersistent")
    assert not (root / "etc/iscsi/send_targets").exists()
    ok(root, "-m", "discoverydb", "-t", "st", "-p", PORTAL, "-D", "-o", "show")
    assert store(root).discovery("sendtargets", "127.0.0.1", 3260)  # record written
    assert store(root).nodes() == []  # but no node


def test_discovery_mode_resets_the_record_discoverydb_uses_it(
    root: Path, sendtargets: FakeDiscovery
) -> None:
    key = "discovery.sendtargets.iscsi.MaxRecvDataSegmentLength"
    ok(root, "-m", "discoverydb", "-t", "st", "-p", PORTAL, "-o", "new")
    ok(
        root,
        "-m",
        "discoverydb",
        "-t",
        "st",
        "-p",
        PORTAL,
        "-o",
        "update",
        "-n",
        key,
        "-v",
        "65536",
        "-n",
        "discovery.sendtargets.auth.username",
        "-v",
        "u",
        "-n",
        "discovery.sendtargets.auth.password",
        "-v",
        "p",
    )
    ok(
        root, "-m", "discoverydb", "-t", "st", "-p", PORTAL, "--discover", "-n", key, "-v", "1024"
    )  # -n/-v are ignored with -D
    call = sendtargets.calls[-1]
    assert call["max_recv_data_segment_length"] == 65536
    assert call["chap"] is not None and call["chap"].username == "u"
    ok(root, "-m", "discovery", "-t", "st", "-p", PORTAL)
    assert sendtargets.calls[-1]["max_recv_data_segment_length"] == 32768
    assert sendtargets.calls[-1]["chap"] is None
    assert store(root).discovery("sendtargets", "127.0.0.1", 3260).get(key) == "32768"


def test_no_portals_found_changes_nothing(root: Path, sendtargets: FakeDiscovery) -> None:
    ok(root, "-m", "discovery", "-t", "st", "-p", PORTAL)
    sendtargets.found = []
    assert run(root, "-m", "discovery", "-t", "st", "-p", PORTAL) == (
        21,
        "",
        "iscsikit-adm: No portals found\n",
    )
    assert len(store(root).nodes()) == 2


@pytest.mark.parametrize(
    ("exc", "code", "message"),
    [
        (
            TransportError("cannot make connection to 127.0.0.1:3260: Connection refused"),
            11,
            "iSCSI PDU timed out",
        ),
        (
            TransportError("connection closed by 127.0.0.1:3260"),
            243,
            "Connection to Discovery Address 127.0.0.1 failed",
        ),
        (AuthenticationError("discovery login rejected"), 24, "authorization failure"),
        (PduTimeoutError("no answer"), 11, "iSCSI PDU timed out"),
    ],
)
def test_sendtargets_failures(
    root: Path, monkeypatch: pytest.MonkeyPatch, exc: IscsiError, code: int, message: str
) -> None:
    monkeypatch.setattr("iscsikit.manager.connect.discover", FakeDiscovery(exc))
    got, out, err = run(root, "-m", "discovery", "-t", "st", "-p", PORTAL)
    assert (got, out) == (code, "")
    assert message in err and str(exc) in err


def test_unknown_ifaces(root: Path, sendtargets: FakeDiscovery) -> None:
    make_ifaces(root, "ifa")
    code, out, err = run(root, "-m", "discovery", "-t", "st", "-p", PORTAL, "-I", "nope")
    assert (code, out) == (21, "")
    assert "Could not read iface info for nope. Make sure an iface config" in err
    code, out, err = run(
        root, "-m", "discovery", "-t", "st", "-p", PORTAL, "-I", "nope", "-I", "ifa"
    )
    assert code == 0 and out.count("\n") == 2 and "nope" in err


class FakeService:
    def __init__(self, fail: IscsiError | None = None) -> None:
        self.fail = fail
        self.logins: list[NodeRecord] = []

    def sessions(self) -> list[Any]:
        return []

    def login(self, node: NodeRecord, *, wait: bool = True) -> None:
        self.logins.append(node)
        if self.fail is not None:
            raise self.fail


def test_login_after_discovery(
    root: Path, sendtargets: FakeDiscovery, monkeypatch: pytest.MonkeyPatch
) -> None:
    service = FakeService()
    monkeypatch.setattr("iscsikit.manager.sessions.session_service", lambda env: service)
    out = ok(root, "-m", "discovery", "-t", "st", "-p", PORTAL, "-l")
    desc = [f"[iface: default, target: {t}, portal: 127.0.0.1,3260]" for t in (ALPHA, BETA)]
    assert out.splitlines()[2:] == [f"Logging in to {d}" for d in desc] + [
        f"Login to {d} successful." for d in desc
    ]
    assert [n.target for n in service.logins] == [ALPHA, BETA]
    service.fail = IscsiError("no daemon", code=IscsiErr.ISCSID_NOTCONN)
    code, out, err = run(root, "-m", "discovery", "-p", PORTAL, "-l")  # the stored record
    assert code == 20 and "successful" not in out
    assert f"iscsikit-adm: Could not login to {desc[0]}.\n" in err
    assert "initiator reported error (20 - could not connect to iscsid)" in err


def test_login_progress_bar_on_a_terminal(root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    many = [DiscoveredTarget(f"{ALPHA}{i}", "127.0.0.1", 3260, 1) for i in range(25)]
    monkeypatch.setattr("iscsikit.manager.connect.discover", FakeDiscovery(many))
    monkeypatch.setattr("iscsikit.manager.sessions.session_service", lambda env: FakeService())

    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    env = CliEnv.for_test(root, isatty=True)
    env.stderr = Tty()
    assert main(["-m", "discovery", "-t", "st", "-p", PORTAL, "-l"], env=env) == 0
    assert "\r" not in env.stdout.getvalue()  # type: ignore[attr-defined]
    assert "Logging in [" in env.stderr.getvalue() and "25/25" in env.stderr.getvalue()
    env = CliEnv.for_test(root, isatty=True)
    env.stderr = Tty()
    main(["-m", "discovery", "-t", "st", "-p", PORTAL, "-l", "--no-progress"], env=env)
    assert env.stderr.getvalue() == ""


# -- firmware ------------------------------------------------------------------------------


def test_firmware_discovery(root: Path) -> None:
    from iscsikit.sysfs.fake import sample_kernel

    assert run(root, "-m", "discovery", "-t", "fw")[0] == 22  # no <root>/sys/firmware
    (root / "sys/firmware").mkdir(parents=True)
    assert run(root, "-m", "discoverydb", "-t", "fw", "-D") == (
        21,
        "",
        "iscsikit-adm: Could not get list of targets from firmware. (err 21)\n",
    )
    sample_kernel(root)
    out = ok(root, "-m", "discovery", "-t", "fw", "-o", "nonpersistent")
    # tpgt 1: iscsiadm hard-codes it for firmware targets (checked against iscsiadm 2.1.8
    # on a real iBFT in the VM tier: tests/vm/test_ibft_boot.py).
    assert out.startswith("192.168.0.5:3260,1 iqn.2003-01.org.example:boot\n")
    assert store(root).nodes() == []
    ok(root, "-m", "discoverydb", "-t", "fw", "-D")
    nodes = store(root).nodes()
    assert nodes and all(n.discovery_type == "fw" and n.tpgt == 1 for n in nodes)
    assert "FIRMWARE:\nTarget: iqn.2003-01.org.example:boot\n" in ok(
        root, "-m", "discovery", "-P", "1"
    )


# -- JSON ----------------------------------------------------------------------------------


def test_json_documents(root: Path, sendtargets: FakeDiscovery) -> None:
    code, out, _ = run(root, "-m", "discovery", "-t", "st", "-p", PORTAL, "--output", "json")
    doc = json.loads(out)
    validate(doc)
    assert code == 0 and doc["op"] == "discover"
    assert [t["target"] for t in doc["targets"]] == [ALPHA, BETA]
    assert len(doc["changes"]["added"]) == 2 and doc["changes"]["deleted"] == []
    for argv in (
        ("-m", "discovery"),
        ("-m", "discovery", "-P", "1"),
        ("-m", "discoverydb", "-t", "st", "-p", PORTAL, "-o", "show"),
        ("-m", "discoverydb", "-t", "st", "-p", "10.0.0.5", "-o", "new"),
        ("-m", "discoverydb", "-t", "st", "-p", "10.0.0.5", "-o", "delete"),
    ):
        code, out, _ = run(root, *argv, "--output", "json")
        assert code == 0, argv
        validate(json.loads(out))
    code, out, err = run(root, "-m", "discovery", "-p", "10.0.0.9", "--output", "json")
    doc = json.loads(out)
    validate(doc)
    assert code == 7 and doc["error"]["code"] == 7 and "not found!" in err
    sendtargets.found = []
    code, out, _ = run(root, "-m", "discovery", "-t", "st", "-p", PORTAL, "--output", "json")
    assert code == 21 and json.loads(out)["error"]["name"] == "NO_OBJS_FOUND"
