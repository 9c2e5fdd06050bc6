"""``-t isns`` in ``-m discovery`` / ``-m discoverydb`` on scratch databases, the iSNS
runner (``iscsikit.discovery.isns.isns_targets``) faked: ports, records and links,
per-iface initiator names, ops, the pre-872 ``-P 1`` listing, and exit codes.  Against
the real isnsd and iscsiadm: tests/integration/test_isns_*.py."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from iscsikit.cli.env import CliEnv
from iscsikit.cli.main import main
from iscsikit.config.paths import resolve_paths
from iscsikit.discovery import isns as isns_runner
from iscsikit.discovery.isns import IsnsQueryError
from iscsikit.errors import IscsiErr
from iscsikit.proto.sendtargets import DiscoveredTarget
from iscsikit.records import DiscoveryRecord, Records

ALPHA, BETA = "iqn.2024-01.test.iscsikit:alpha", "iqn.2024-01.test.iscsikit:beta"
HOST_NAME = "iqn.2004-10.com.example:host"


def run(root: Path, *argv: str) -> tuple[int, str, str]:
    env = CliEnv.for_test(root)
    code = main(list(argv), env=env)
    return code, env.stdout.getvalue(), env.stderr.getvalue()  # type: ignore[attr-defined]


@pytest.fixture
def root(tmp_path: Path) -> Path:
    etc = tmp_path / "etc" / "iscsi"
    etc.mkdir(parents=True)
    (etc / "initiatorname.iscsi").write_text(f"InitiatorName={HOST_NAME}\n")
    return tmp_path


class FakeIsns:
    def __init__(self, found: list[DiscoveredTarget] | Exception) -> None:
        self.found = found
        self.calls: list[tuple[str, int, str]] = []

    def __call__(self, record: DiscoveryRecord, name: str, **_: object) -> list[DiscoveredTarget]:
        self.calls.append((record.address, record.port, name))
        if isinstance(self.found, Exception):
            raise self.found
        return list(self.found)


def fake(monkeypatch: pytest.MonkeyPatch, found: list[DiscoveredTarget] | Exception) -> FakeIsns:
    runner = FakeIsns(found)
    monkeypatch.setattr(isns_runner, "isns_targets", runner)
    return runner


FOUND = [DiscoveredTarget(ALPHA, "10.1.0.1", 3260, 1), DiscoveredTarget(BETA, "10.1.0.2", 3261, 7)]


def test_discovery_mode_default_port_no_record(root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    runner = fake(monkeypatch, FOUND)
    code, out, _ = run(root, "-m", "discovery", "-t", "isns", "-p", "10.0.0.5")
    assert code == 0
    assert out == f"10.1.0.1:3260,1 {ALPHA}\n10.1.0.2:3261,7 {BETA}\n"
    assert runner.calls == [("10.0.0.5", 3205, HOST_NAME)]
    db = root / "etc" / "iscsi"
    # iscsiadm stores no server record in discovery mode, so it links the nodes old-style
    # from isns/ itself (checked against iscsiadm 2.1.8: test_isns_cli_oracle.py).
    assert sorted(p.name for p in (db / "isns").iterdir()) == [
        f"{ALPHA},10.1.0.1,3260,1,default", f"{BETA},10.1.0.2,3261,7,default",
    ]  # fmt: skip
    nodes = Records(resolve_paths(root=root)).nodes()
    assert sorted((n.target, n.discovery_type, n.discovery_address, n.discovery_port)
                  for n in nodes) == [(ALPHA, "isns", "10.0.0.5", 3205),
                                      (BETA, "isns", "10.0.0.5", 3205)]  # fmt: skip
    code, out, _ = run(root, "-m", "discovery", "-P", "1")
    assert code == 0
    assert out.split("STATIC:")[0] == (
        "SENDTARGETS:\nNo targets found.\niSNS:\n"
        f"Target: {ALPHA}\n\tPortal: 10.1.0.1:3260,1\n\t\tIface Name: default\n"
        f"Target: {BETA}\n\tPortal: 10.1.0.2:3261,7\n\t\tIface Name: default\n"
    ) or out.split("STATIC:")[0] == (
        "SENDTARGETS:\nNo targets found.\niSNS:\n"
        f"Target: {BETA}\n\tPortal: 10.1.0.2:3261,7\n\t\tIface Name: default\n"
        f"Target: {ALPHA}\n\tPortal: 10.1.0.1:3260,1\n\t\tIface Name: default\n"
    )  # readdir order
    assert run(root, "-m", "discovery")[0] == 21  # no iSNS server directory to list


def test_discoverydb_discover_links_into_the_record(
    root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake(monkeypatch, FOUND)
    code, _, _ = run(root, "-m", "discoverydb", "-t", "isns", "-p", "10.0.0.5:3206", "-D")
    assert code == 0
    server = root / "etc" / "iscsi" / "isns" / "10.0.0.5,3206"
    assert sorted(os.listdir(server)) == [
        f"{ALPHA},10.1.0.1,3260,1,default",
        f"{BETA},10.1.0.2,3261,7,default",
        "isns_config",
    ]
    assert run(root, "-m", "discovery")[1] == "10.0.0.5:3206 via isns\n"
    # A rediscovery that no longer sees BETA deletes it (default ops new|update|delete).
    fake(monkeypatch, FOUND[:1])
    assert run(root, "-m", "discoverydb", "-t", "isns", "-p", "10.0.0.5:3206", "-D")[0] == 0
    assert sorted(os.listdir(server)) == [f"{ALPHA},10.1.0.1,3260,1,default", "isns_config"]
    assert [n.target for n in Records(resolve_paths(root=root)).nodes()] == [ALPHA]


def test_nonpersistent_writes_nothing(root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake(monkeypatch, FOUND)
    argv = ("-m", "discoverydb", "-t", "isns", "-p", "10.0.0.5", "-D", "-o", "nonpersistent")
    assert run(root, *argv)[0] == 0
    assert not (root / "etc" / "iscsi" / "isns").exists()
    assert not (root / "etc" / "iscsi" / "nodes").exists() or not os.listdir(
        root / "etc" / "iscsi" / "nodes"
    )


def test_each_iface_queries_with_its_initiator_name(
    root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    runner = fake(monkeypatch, FOUND[:1])
    for name, iqn in (("ia", "iqn.2004-10.com.example:a"), ("ib", "iqn.2004-10.com.example:b")):
        assert run(root, "-m", "iface", "-I", name, "-o", "new")[0] == 0
        argv = ("-m", "iface", "-I", name, "-o", "update", "-n", "iface.initiatorname", "-v", iqn)
        assert run(root, *argv)[0] == 0
    code, out, _ = run(
        root, "-m", "discovery", "-t", "isns", "-p", "10.0.0.5", "-I", "ia", "-I", "ib"
    )
    assert code == 0
    assert sorted(c[2] for c in runner.calls) == [
        "iqn.2004-10.com.example:a",
        "iqn.2004-10.com.example:b",
    ]
    assert out == f"10.1.0.1:3260,1 {ALPHA}\n" * 2


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (IsnsQueryError("iSNS discovery failed: Internal error"), 25),
        (IsnsQueryError("Could not register x", code=IscsiErr.ISNS_REG_FAILED), 26),
    ],
)
def test_failures_exit_as_iscsiadm(
    root: Path, monkeypatch: pytest.MonkeyPatch, error: IsnsQueryError, code: int
) -> None:
    fake(monkeypatch, error)
    rc, out, err = run(root, "-m", "discovery", "-t", "isns", "-p", "10.0.0.5")
    assert (rc, out) == (code, "")
    assert str(error) in err
    assert "Could not perform iSNS discovery: iSNS " in err


def test_nothing_found_is_21(root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake(monkeypatch, [])
    rc, out, err = run(root, "-m", "discoverydb", "-t", "isns", "-p", "10.0.0.5", "-D")
    assert (rc, out) == (21, "")
    assert "No portals found" in err


def test_portal_required(root: Path) -> None:
    rc, _, err = run(root, "-m", "discoverydb", "-t", "isns", "-D")
    assert rc == 7 and "Please specify portal" in err


def test_discovery_mode_deletes_what_the_server_no_longer_names(
    root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Old-style links (no server directory) still tie the nodes to their server: a node
    the next query no longer returns is deleted with its link (iscsiadm's
    delete_stale_rec matches node.discovery_* of every record); another server's stay."""
    runner = fake(monkeypatch, FOUND)
    assert run(root, "-m", "discovery", "-t", "isns", "-p", "10.0.0.5")[0] == 0
    other = DiscoveredTarget("iqn.2024-01.test:other", "10.1.0.9", 3260, 1)
    runner.found = [other]
    assert run(root, "-m", "discovery", "-t", "isns", "-p", "10.0.0.6")[0] == 0
    runner.found = FOUND[:1]
    assert run(root, "-m", "discovery", "-t", "isns", "-p", "10.0.0.5")[0] == 0
    nodes = Records(resolve_paths(root=root)).nodes()
    assert sorted(n.target for n in nodes) == sorted([ALPHA, other.name])
    links = sorted(p.name for p in (root / "etc/iscsi/isns").iterdir())
    assert links == sorted(
        [f"{ALPHA},10.1.0.1,3260,1,default", f"{other.name},10.1.0.9,3260,1,default"]
    )
