"""iscsikit's records store against the real iscsiadm 2.1.8, both ways.

Two databases are built from the same logical operations: *A* by iscsiadm (ifaces incl.
an IPv6 one, SendTargets discovery against tgtd on 127.0.0.1 and on ::1, ``-m node -o
new`` with and without tpgt and with an IPv6 portal, ``-o update`` of many keys with
spaces and ``#``, iSNS and SendTargets ``discoverydb -o new``, an iface update after
nodes are bound), *B* by iscsikit's API.  Then:

* iscsikit reads A with every value equal to what ``iscsiadm ... -o show -S`` prints,
  no problem reported, and re-formats every file of A byte for byte;
* A and B hold the same files, byte for byte, and the same links (B written with
  ``link_root=/etc/iscsi``, as the oracle's iscsiadm sees its database);
* iscsiadm prints B exactly as it prints A (``-m node``, ``-o show``, ``-m iface -I``,
  ``-m discoverydb -o show``);
* iscsiadm's deletes on iscsikit's records and iscsikit's deletes on iscsiadm's
  records leave the same trees;
* iscsikit's lock makes a concurrently started iscsiadm wait.

The oracle's iscsid.conf is empty, so iscsiadm fills new records from compiled
defaults, as iscsikit's ``new()`` constructors do.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from iscsikit.config.registry import RecordType
from iscsikit.records import DiscoveryRecord, IfaceRecord, NodeRecord, Records
from iscsikit.records.fileformat import format_record, parse_record
from iscsikit.records.lock import DbLock
from iscsikit.testing import oracle as oracle_mod
from iscsikit.testing import peers
from iscsikit.testing.oracle import Oracle
from iscsikit.testing.plugin import TgtdFactory, keep_tgtd
from iscsikit.testing.tgtd import Tgtd

pytestmark = pytest.mark.integration

INITIATOR = "iqn.2004-10.com.example:oracle"
T_V4 = ("iqn.2026-11.test:disk1", "iqn.2026-11.test:disk2")
T_V6 = "iqn.2026-11.test:v6disk"
STATIC = "iqn.2026-11.test:static"
OLD = "iqn.2026-11.test:old"
V6STATIC = "iqn.2026-11.test:v6static"
NODE_UPDATES = {
    "node.startup": "automatic",
    "node.session.auth.authmethod": "CHAP",
    "node.session.auth.username": "user name",
    "node.session.auth.password": "pa ss#word = x",
    "node.session.auth.username_in": "in #user",
    "node.session.auth.password_in": "in pw",
    "node.session.auth.chap_algs": "SHA256,MD5",
    "node.session.cmds_max": "64",
    "node.session.timeo.replacement_timeout": "-1",
    "node.conn[0].iscsi.HeaderDigest": "CRC32C,None",
    "node.conn[0].timeo.noop_out_interval": "0",
}
DISC_UPDATES = {
    "discovery.sendtargets.auth.authmethod": "CHAP",
    "discovery.sendtargets.auth.username": "disc user",
    "discovery.sendtargets.auth.password": "s3#cr et",
    "discovery.sendtargets.use_discoveryd": "Yes",
}


@pytest.fixture(scope="module", autouse=True)
def _need_oracle() -> None:
    if peers.iscsiadm_oracle() is None:
        pytest.skip("shared/tools/iscsiadm-oracle not found (set ISCSIKIT_SHARED)")
    reason = peers.iscsiadm_unavailable() or oracle_mod.unavailable()
    if reason:
        pytest.skip(reason)


def new_oracle(base: Path) -> Oracle:
    (base / "etc-iscsi").mkdir(parents=True, exist_ok=True)
    # No node or discovery keys: iscsiadm uses compiled defaults, as new() does.
    (base / "etc-iscsi" / "iscsid.conf").write_text("iscsid.startup = /bin/true\n")
    return Oracle(base, initiator_name=INITIATOR)


def run(o: Oracle, *args: str, host_network: bool = False) -> str:
    result = o.run(*args, host_network=host_network)
    assert result.returncode == 0, (args, result.stdout, result.stderr)
    return result.stdout


def show_values(text: str) -> dict[str, str]:
    """``key = value`` lines of -o show output; ``<empty>`` is the empty string."""
    values = {}
    for line in text.splitlines():
        key, sep, value = line.partition(" = ")
        if sep:
            values[key] = "" if value == "<empty>" else value
    return values


def tree(root: Path) -> dict[str, str]:
    """Relative path -> file bytes / 'dir' / '-> link target' for the records dirs."""
    out: dict[str, str] = {}
    for sub in ("nodes", "send_targets", "isns", "static", "fw", "ifaces"):
        for path in sorted((root / sub).rglob("*")) if (root / sub).exists() else []:
            rel = str(path.relative_to(root))
            if path.is_symlink():
                out[rel] = "-> " + os.readlink(path)
            elif path.is_dir():
                out[rel] = "dir"
            else:
                out[rel] = path.read_text(errors="surrogateescape")
    return out


def record_type_of(rel: str) -> RecordType:
    if rel.startswith("ifaces/"):
        return RecordType.IFACE
    if rel.endswith("st_config"):
        return RecordType.SENDTARGETS
    if rel.endswith("isns_config"):
        return RecordType.ISNS
    return RecordType.NODE


class World:
    """The targets, and the two databases built from the same operations."""

    def __init__(self, tmp_path: Path, v4: Tgtd, v6: Tgtd) -> None:
        self.tmp = tmp_path
        self.v4, self.v6 = v4, v6
        self.a = new_oracle(tmp_path / "A")
        self.b_oracle = new_oracle(tmp_path / "B")
        self.b = Records.at(
            self.b_oracle.db_root,
            lock_dir=self.b_oracle.lock,
            link_root="/etc/iscsi",
            durable=False,
        )
        self.found: dict[str, set[tuple[str, int, str]]] = {}

    # -- database A: iscsiadm ---------------------------------------------------------

    def build_a(self) -> None:
        o = self.a
        for name, extra in (
            ("ifa", {"iface.mtu": "9000", "iface.prefix_len": "24"}),
            ("ifb_ipv6", {"iface.hop_limit": "64"}),
        ):
            run(o, "-m", "iface", "-I", name, "-o", "new")
            for key, value in {"iface.initiatorname": INITIATOR, **extra}.items():
                run(o, "-m", "iface", "-I", name, "-o", "update", "-n", key, "-v", value)
        out4 = run(
            o,
            "-m",
            "discovery",
            "-t",
            "st",
            "-p",
            self.v4.portal,
            "-I",
            "ifa",
            "-I",
            "ifb_ipv6",
            host_network=True,
        )
        out6 = run(
            o, "-m", "discovery", "-t", "st", "-p", self.v6.portal, "-I", "ifa", host_network=True
        )
        self.found = {"v4": peers.parse_sendtargets(out4), "v6": peers.parse_sendtargets(out6)}
        run(o, "-m", "node", "-o", "new", "-T", STATIC, "-p", "10.0.0.5:3260,7")
        run(o, "-m", "node", "-o", "new", "-T", OLD, "-p", "10.0.0.6:3260")
        run(
            o, "-m", "node", "-o", "new", "-T", V6STATIC, "-p", "[fd00::5]:3260,1", "-I", "ifb_ipv6"
        )
        for key, value in NODE_UPDATES.items():
            run(
                o,
                "-m",
                "node",
                "-T",
                STATIC,
                "-p",
                "10.0.0.5:3260,7",
                "-o",
                "update",
                "-n",
                key,
                "-v",
                value,
            )
        # -I ifa: iscsiadm 2.1.8 would reset the IPv6 iface values of the ifb_ipv6 record
        # (see test_iscsiadm_update_drops_ipv6_iface_values).
        run(
            o,
            "-m",
            "node",
            "-T",
            T_V4[0],
            "-I",
            "ifa",
            "-o",
            "update",
            "-n",
            "node.startup",
            "-v",
            "automatic",
        )
        run(o, "-m", "discoverydb", "-t", "isns", "-p", "127.0.0.9", "-o", "new")
        run(o, "-m", "discoverydb", "-t", "st", "-p", "10.9.9.9:3260", "-o", "new")
        for key, value in DISC_UPDATES.items():
            run(
                o,
                "-m",
                "discoverydb",
                "-t",
                "st",
                "-p",
                "10.9.9.9:3260",
                "-o",
                "update",
                "-n",
                key,
                "-v",
                value,
            )
        run(o, "-m", "iface", "-I", "ifa", "-o", "update", "-n", "iface.mtu", "-v", "1500")

    # -- database B: iscsikit ---------------------------------------------------------

    def build_b(self) -> None:
        db = self.b
        for name, extra in (
            ("ifa", {"iface.mtu": "9000", "iface.prefix_len": "24"}),
            ("ifb_ipv6", {"iface.hop_limit": "64"}),
        ):
            iface = IfaceRecord.new(name)
            iface.set("iface.initiatorname", INITIATOR)
            for key, value in extra.items():
                iface.set(key, value)
            db.add_iface(iface)
        ifa, ifb = db.iface("ifa"), db.iface("ifb_ipv6")
        for tgtd, key, ifaces in ((self.v4, "v4", (ifa, ifb)), (self.v6, "v6", (ifa,))):
            disc = DiscoveryRecord.new("sendtargets", tgtd.host, tgtd.port)
            db.add_discovery(disc)
            db.add_nodes(
                [
                    NodeRecord.new(iqn, tgtd.host, tgtd.port, tpgt, iface=iface)
                    for _, tpgt, iqn in sorted(self.found[key])
                    for iface in ifaces
                ],
                discovery=disc,
            )
        db.add_node(NodeRecord.new(STATIC, "10.0.0.5", 3260, 7))
        db.add_node(NodeRecord.new(OLD, "10.0.0.6", 3260))
        db.add_node(NodeRecord.new(V6STATIC, "[fd00::5]", 3260, 1, iface=ifb))
        static = db.node(target=STATIC)
        for key, value in NODE_UPDATES.items():
            static.set(key, value)
        db.update_node(static)
        db.update_node_values({"node.startup": "automatic"}, target=T_V4[0], iface="ifa")
        db.add_discovery(DiscoveryRecord.new("isns", "127.0.0.9"))
        disc = DiscoveryRecord.new("sendtargets", "10.9.9.9", 3260)
        db.add_discovery(disc)
        for key, value in DISC_UPDATES.items():
            disc.set(key, value)
        db.update_discovery(disc)
        ifa = db.iface("ifa")
        ifa.set("iface.mtu", "1500")
        db.update_iface(ifa)

    # -- the show commands, for a database --------------------------------------------

    def shows(self, o: Oracle, db: Records) -> dict[str, str]:
        out = {"-m node": run(o, "-m", "node")}
        for node in db.nodes():
            portal = f"{node.portal},{node.tpgt}" if node.tpgt != -1 else node.portal
            args = ["-m", "node", "-T", node.target, "-p", portal, "-I", node.iface, "-S"]
            out[" ".join(args)] = run(o, *args)
        for iface in db.ifaces():
            out[f"-m iface -I {iface.name}"] = run(o, "-m", "iface", "-I", iface.name)
        for disc in db.discoveries():
            t = "st" if disc.type == "sendtargets" else "isns"
            args = ["-m", "discoverydb", "-t", t, "-p", disc.portal, "-o", "show", "-S"]
            out[" ".join(args)] = run(o, *args)
        return out


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    """Built once (the plugin's tgtd factory, module-scoped): tests that change a
    database work on a copy (:func:`copy_of`)."""
    base = tmp_path_factory.mktemp("records-oracle")
    factory = TgtdFactory(base, keep=keep_tgtd())
    try:
        v4 = factory()
        for iqn in T_V4:
            v4.add_target(iqn, null=True)
        v6 = factory(host="::1")
        v6.add_target(T_V6, null=True)
        w = World(base, v4, v6)
        w.build_a()
        w.build_b()
        yield w
    finally:
        factory.stop_all()


def copy_of(o: Oracle, dest: Path) -> Oracle:
    shutil.copytree(o.base, dest, symlinks=True)
    return Oracle(dest, initiator_name=INITIATOR)


def store_of(o: Oracle, **kwargs: object) -> Records:
    return Records.at(o.db_root, lock_dir=o.lock, durable=False, **kwargs)  # type: ignore[arg-type]


def test_iscsikit_reads_iscsiadm_db_as_iscsiadm_shows_it(world: World) -> None:
    db = store_of(world.a)
    nodes = db.nodes()
    assert db.problems == []
    assert {n.target for n in nodes} == {*T_V4, T_V6, STATIC, OLD, V6STATIC}
    assert len(nodes) == 2 * 2 + 1 + 3
    for node in nodes:
        portal = f"{node.portal},{node.tpgt}" if node.tpgt != -1 else node.portal
        shown = show_values(
            run(world.a, "-m", "node", "-T", node.target, "-p", portal, "-I", node.iface, "-S")
        )
        assert shown, node
        assert {k: node.get(k) for k in shown} == shown, node
    static = db.node(target=STATIC)
    assert static.get("node.session.auth.password") == "pa ss#word = x"
    assert db.node(target=V6STATIC).portal == "[fd00::5]:3260"
    for iface in db.ifaces():
        shown = show_values(run(world.a, "-m", "iface", "-I", iface.name))
        assert {k: iface.get(k) for k in shown} == shown, iface
    discoveries = db.discoveries()
    assert {(d.type, d.portal) for d in discoveries} == {
        ("sendtargets", world.v4.portal),
        ("sendtargets", world.v6.portal),
        ("sendtargets", "10.9.9.9:3260"),
        ("isns", "127.0.0.9:3205"),
    }
    for disc in discoveries:
        t = "st" if disc.type == "sendtargets" else "isns"
        shown = show_values(
            run(world.a, "-m", "discoverydb", "-t", t, "-p", disc.portal, "-o", "show", "-S")
        )
        assert {k: disc.get(k) for k in shown} == shown, disc
    v4 = db.discovery("sendtargets", world.v4.host, world.v4.port)
    assert sorted((n.target, n.iface) for n in db.discovery_nodes(v4)) == sorted(
        (t, i) for t in T_V4 for i in ("ifa", "ifb_ipv6")
    )
    # Every file iscsiadm wrote re-formats to the same bytes.
    for rel, content in tree(world.a.db_root).items():
        if content == "dir" or content.startswith("-> "):
            continue
        parsed = parse_record(content, record_type_of(rel))
        assert parsed.problems == [], rel
        assert format_record(parsed.values, record_type_of(rel)) == content, rel


def test_iscsikit_db_is_byte_identical_and_shown_identically(world: World) -> None:
    a, b = tree(world.a.db_root), tree(world.b_oracle.db_root)
    assert sorted(a) == sorted(b)
    assert b == a
    assert world.shows(world.b_oracle, world.b) == world.shows(world.a, world.b)


def test_deletes_interoperate(world: World, tmp_path: Path) -> None:
    ops_iscsiadm = [
        ("-m", "node", "-T", STATIC, "-p", "10.0.0.5:3260,7", "-o", "delete"),
        ("-m", "node", "-T", OLD, "-p", "10.0.0.6:3260", "-o", "delete"),
        ("-m", "node", "-T", T_V4[1], "-p", world.v4.portal + ",1", "-I", "ifa", "-o", "delete"),
        ("-m", "discoverydb", "-t", "st", "-p", world.v6.portal, "-o", "delete"),
        ("-m", "iface", "-I", "ifb_ipv6", "-o", "delete"),
        ("-m", "discoverydb", "-t", "isns", "-p", "127.0.0.9", "-o", "delete"),
    ]

    def ours(db: Records) -> None:
        db.delete_node(db.node(target=STATIC))
        db.delete_node(db.node(target=OLD))
        db.delete_node(db.node(target=T_V4[1], iface="ifa"))
        db.delete_discovery(db.discovery("sendtargets", world.v6.host, world.v6.port))
        db.delete_iface("ifb_ipv6")
        db.delete_discovery(db.discovery("isns", "127.0.0.9"))

    # iscsiadm deleting iscsikit's records == iscsiadm deleting its own.
    a1, b1 = copy_of(world.a, tmp_path / "A1"), copy_of(world.b_oracle, tmp_path / "B1")
    for args in ops_iscsiadm:
        run(a1, *args)
        run(b1, *args)
    expected = tree(a1.db_root)
    assert tree(b1.db_root) == expected
    # iscsikit deleting iscsiadm's records == iscsiadm deleting them.
    a2 = copy_of(world.a, tmp_path / "A2")
    ours(store_of(a2))
    assert tree(a2.db_root) == expected
    assert T_V6 not in {p.split("/")[1] for p in expected if p.startswith("nodes/")}


def test_iscsikit_lock_makes_iscsiadm_wait(world: World, tmp_path: Path) -> None:
    o = copy_of(world.b_oracle, tmp_path / "B")
    node = store_of(o).node(target=STATIC)
    path = Path(str(node.path))
    before = path.read_text()
    done: list[float] = []

    def update() -> None:
        run(
            o,
            "-m",
            "node",
            "-T",
            STATIC,
            "-p",
            "10.0.0.5:3260,7",
            "-o",
            "update",
            "-n",
            "node.startup",
            "-v",
            "onboot",
        )
        done.append(time.monotonic())

    lock = DbLock(o.lock)
    with lock:
        thread = threading.Thread(target=update)
        thread.start()
        time.sleep(3.0)  # iscsiadm is running and polling lock.write meanwhile
        assert done == [] and path.read_text() == before
        released = time.monotonic()
    thread.join(60)
    assert done and done[0] >= released
    assert "node.startup = onboot" in path.read_text()
    assert not (o.lock / "lock.write").exists()


def test_iscsiadm_holding_the_lock_blocks_iscsikit(world: World, tmp_path: Path) -> None:
    """What an iscsiadm in the middle of a write looks like: lock.write, no iscsikit note."""
    o = copy_of(world.b_oracle, tmp_path / "B")
    lock_dir = o.lock
    os.link(lock_dir / "lock", lock_dir / "lock.write")
    try:
        db = store_of(o, lock_timeout=0.5)
        with pytest.raises(Exception, match="Timeout on acquiring lock on DB") as err:
            db.update_node_values({"node.startup": "manual"})
        assert getattr(err.value, "code", None) == 6
    finally:
        os.unlink(lock_dir / "lock.write")


def test_iscsiadm_o_new_without_iscsid_matches_new(tmp_path: Path) -> None:
    """Compiled defaults: iscsiadm without any iscsid (the shared oracle) == new()."""
    tool = peers.iscsiadm_oracle()
    assert tool is not None
    db_dir = tmp_path / "shared"
    subprocess.run(
        ["bash", str(tool), "--db", str(db_dir), "--", "-m", "node", "-o", "new",
         "-T", STATIC, "-p", "10.0.0.5:3260,7"],
        check=True, capture_output=True, timeout=120,
    )  # fmt: skip
    written = (db_dir / "etc-iscsi" / "nodes" / STATIC / "10.0.0.5,3260,7" / "default").read_text()
    assert NodeRecord.new(STATIC, "10.0.0.5", 3260, 7).to_text() == written


def test_iscsiadm_update_drops_ipv6_iface_values(world: World, tmp_path: Path) -> None:
    """A known iscsiadm 2.1.8 quirk iscsikit does not copy: its reader parses a node
    record with the IPv4 iface keys only, so any ``-o update`` of a node bound to an
    IPv6 iface writes that iface's IPv6 values back as defaults.  iscsikit keeps them."""
    a, b = copy_of(world.a, tmp_path / "A"), copy_of(world.b_oracle, tmp_path / "B")
    args = ("-m", "node", "-T", T_V4[1], "-I", "ifb_ipv6")
    assert show_values(run(a, *args))["iface.hop_limit"] == "64"
    run(a, *args, "-o", "update", "-n", "node.startup", "-v", "onboot")
    assert show_values(run(a, *args))["iface.hop_limit"] == "0"
    store_of(b).update_node_values({"node.startup": "onboot"}, target=T_V4[1], iface="ifb_ipv6")
    assert show_values(run(b, *args))["iface.hop_limit"] == "64"
