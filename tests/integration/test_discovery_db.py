"""Discovery's effect on the database, compared file by file with real iscsiadm 2.1.8.

The same tgtd is discovered by iscsiadm (through the oracle, on its own scratch DB) and
by iscsikit (on another); the resulting trees -- node records, discovery records and
the links between them -- must be identical, byte for byte, and so must what each
``-o new / delete / update / nonpersistent`` re-discovery changes.

iscsiadm runs here without an iscsid (it must reach tgtd on the host's loopback), so
it uses compiled defaults instead of iscsid.conf; iscsikit is given no iscsid.conf
either.  The iscsid.conf overlay itself is tested in tests/unit/config.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

from iscsikit.config.iscsid_conf import IscsidConf
from iscsikit.discovery.db import DiscoveryOp
from iscsikit.discovery.sendtargets import discover
from iscsikit.proto.address import parse_portal
from iscsikit.records.model import IfaceRecord
from iscsikit.records.store import Records
from iscsikit.testing import oracle
from iscsikit.testing.tgtd import Tgtd

pytestmark = pytest.mark.integration

IQN = "iqn.2024-01.test.iscsikit"
INITIATOR = f"{IQN}:discoverydb"


def tree(root: Path) -> dict[str, str]:
    """Relative path -> file bytes, or '-> link target relative to the DB root'."""
    out: dict[str, str] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in sorted(dirnames + filenames):
            path = Path(dirpath) / name
            rel = str(path.relative_to(root))
            if rel.startswith((".lock", "iscsid.conf", "initiatorname")):
                continue
            if path.is_symlink():
                target = os.readlink(path)
                for prefix in (str(root), "/etc/iscsi"):
                    if target.startswith(prefix + "/"):
                        target = target[len(prefix) + 1 :]
                out[rel] = f"-> {target}"
            elif path.is_file():
                out[rel] = path.read_text()
    return out


class Pair:
    """An iscsiadm DB and an iscsikit DB, driven through the same steps."""

    def __init__(self, base: Path, portal: str, ifaces: list[str]) -> None:
        reason = oracle.unavailable()
        if reason:
            pytest.skip(reason)
        self.portal = portal
        self.ifaces = ifaces
        self.ora = oracle.Oracle(base / "oracle")
        self.records = Records.at(base / "ours", lock_dir=base / "ours-lock")
        self.conf = IscsidConf.parse("")
        for name in ifaces:
            self.ora_ok("-m", "iface", "-I", name, "-o", "new")
            self.ora_ok(
                "-m", "iface", "-I", name, "-o", "update",
                "-n", "iface.initiatorname", "-v", INITIATOR,
            )  # fmt: skip
            iface = IfaceRecord.new(name)
            iface.set("iface.initiatorname", INITIATOR)
            self.records.add_iface(iface)

    def ora_ok(self, *args: str, host_network: bool = False) -> str:
        result = self.ora.run(*args, host_network=host_network)
        assert result.returncode == 0, (args, result.stdout, result.stderr)
        return result.stdout

    def discover(self, *ops: str, ifaces: list[str] | None = None) -> None:
        flags = [x for op in ops for x in ("-o", op)]
        chosen = self.ifaces if ifaces is None else ifaces
        self.ora_ok(
            "-m", "discovery", "-t", "st", "-p", self.portal,
            *[x for i in chosen for x in ("-I", i)], *flags, host_network=True,
        )  # fmt: skip
        discover(
            self.records,
            self.conf,
            parse_portal(self.portal),
            iface_names=chosen,
            ops=DiscoveryOp.parse(list(ops)),
        )

    def assert_same(self) -> dict[str, str]:
        theirs = tree(self.ora.db_root)
        ours = tree(self.records.db_root)
        assert sorted(ours) == sorted(theirs)
        for name in theirs:
            assert ours[name] == theirs[name], name
        return ours


@pytest.fixture
def target(tgtd_factory: Callable[..., Tgtd]) -> Tgtd:
    tgtd = tgtd_factory()
    tgtd.add_target(f"{IQN}:alpha")
    tgtd.add_target(f"{IQN}:beta")
    return tgtd


def test_discovery_writes_the_same_tree(target: Tgtd, tmp_path: Path) -> None:
    pair = Pair(tmp_path, target.portal, ["ora"])
    pair.discover()
    files = pair.assert_same()
    host, port = target.host, target.port
    assert f"nodes/{IQN}:alpha/{host},{port},1/ora" in files
    assert f"send_targets/{host},{port}/st_config" in files


def test_rediscovery_ops_match_iscsiadm(target: Tgtd, tmp_path: Path) -> None:
    pair = Pair(tmp_path, target.portal, ["ora"])
    pair.discover()
    # A per-node edit: the default ops rewrite it from the template (open-iscsi #58).
    pair.ora_ok(
        "-m", "node", "-T", f"{IQN}:alpha", "-o", "update", "-n", "node.startup", "-v", "automatic"
    )  # fmt: skip
    node = pair.records.node(target=f"{IQN}:alpha")
    node.set("node.startup", "automatic")
    pair.records.update_node(node)
    pair.assert_same()
    pair.discover("new")  # existing records untouched
    assert pair.records.node(target=f"{IQN}:alpha").get("node.startup") == "automatic"
    pair.assert_same()
    pair.discover()  # default ops: update rewrites it
    assert pair.records.node(target=f"{IQN}:alpha").get("node.startup") == "manual"
    pair.assert_same()
    # The target disappears: "new" keeps its record, "delete" removes it.
    tid = next(t for t, name in enumerate_targets(target) if name == f"{IQN}:beta")
    target.delete_target(tid)
    pair.discover("new")
    assert pair.records.nodes(target=f"{IQN}:beta")
    pair.assert_same()
    pair.discover("nonpersistent")
    assert pair.records.nodes(target=f"{IQN}:beta")
    pair.assert_same()
    pair.discover("delete")
    assert not pair.records.nodes(target=f"{IQN}:beta")
    pair.assert_same()


def test_binding_to_every_tcp_iface(target: Tgtd, tmp_path: Path) -> None:
    pair = Pair(tmp_path, target.portal, ["ifa", "ifb"])
    pair.discover(ifaces=[])  # no -I: every tcp iface in ifaces/
    files = pair.assert_same()
    bound = {name.rsplit("/", 1)[1] for name in files if name.startswith("nodes/")}
    assert bound >= {"ifa", "ifb"}


def enumerate_targets(tgtd: Tgtd) -> list[tuple[int, str]]:
    found = []
    for line in tgtd.show().splitlines():
        if line.startswith("Target "):
            tid, _, name = line[len("Target ") :].partition(": ")
            found.append((int(tid), name.strip()))
    return found
