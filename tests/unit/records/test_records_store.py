"""The store on a tmp_path database: layout, links, queries, create / update / delete.

Every layout fact asserted here was observed with iscsiadm 2.1.8 (the oracle tests in
tests/integration/test_records_oracle.py check the same against the real tool).
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from iscsikit.config.paths import resolve_paths
from iscsikit.errors import InvalidParameterError, IscsiErr, NoObjectsFoundError
from iscsikit.records import DiscoveryRecord, IfaceRecord, NodeId, NodeRecord, Records

T1 = "iqn.2001-04.com.example:disk1"
T2 = "iqn.2001-04.com.example:disk2"


@pytest.fixture
def db(tmp_path: Path) -> Records:
    return Records.at(tmp_path / "iscsi", durable=False)


def tree(root: Path) -> dict[str, str]:
    """path -> 'f'ile / 'd'ir / '-> target' (relative), lock dir and markers left out."""
    out: dict[str, str] = {}
    for path in sorted(root.rglob("*")):
        rel = str(path.relative_to(root))
        if rel.startswith(".lock"):
            continue
        if path.is_symlink():
            out[rel] = "-> " + os.readlink(path)
        else:
            out[rel] = "d" if path.is_dir() else "f"
    return out


def discovered(db: Records, portal: str = "127.0.0.1", *targets: str) -> DiscoveryRecord:
    disc = DiscoveryRecord.new("sendtargets", portal, 3260)
    db.add_discovery(disc)
    ifx = IfaceRecord.new("ifx")
    db.add_iface(ifx)
    db.add_nodes([NodeRecord.new(t, portal, 3260, 1, iface=ifx) for t in targets], discovery=disc)
    return disc


# -- construction ------------------------------------------------------------------------


def test_records_from_paths(tmp_path: Path) -> None:
    paths = resolve_paths(root=tmp_path)
    db = Records(paths, durable=False)
    db.add_node(NodeRecord.new(T1, "10.0.0.1", 3260, 1))
    assert (paths.db_root / "nodes" / T1 / "10.0.0.1,3260,1" / "default").is_file()
    assert not (paths.lock_dir / "lock.write").exists()
    assert (paths.lock_dir / "lock").exists()


def test_at_defaults_lock_dir(tmp_path: Path) -> None:
    assert Records.at(tmp_path).lock.lock_dir == tmp_path / ".lock"
    assert Records.at("/etc/iscsi").lock.lock_dir == Path("/run/lock/iscsi")


# -- layout ------------------------------------------------------------------------------


def test_static_node_layout_and_modes(db: Records) -> None:
    db.add_node(NodeRecord.new(T1, "10.0.0.1", 3260, 5))
    db.add_node(NodeRecord.new(T2, "10.0.0.1", 3260))  # no tpgt: old style, no link
    root = db.db_root
    assert tree(root) == {
        "nodes": "d",
        f"nodes/{T1}": "d",
        f"nodes/{T1}/10.0.0.1,3260,5": "d",
        f"nodes/{T1}/10.0.0.1,3260,5/default": "f",
        f"nodes/{T2}": "d",
        f"nodes/{T2}/10.0.0.1,3260": "f",
        "static": "d",
        f"static/{T1},10.0.0.1,3260,5,default": f"-> {root}/nodes/{T1}/10.0.0.1,3260,5",
    }
    for path in root.rglob("*"):
        if path.is_symlink():
            continue
        mode = stat.S_IMODE(path.stat().st_mode)
        assert mode == (0o700 if path.is_dir() else 0o600), path


def test_discovery_layout_with_links(db: Records) -> None:
    discovered(db, "127.0.0.1", T1, T2)
    root = db.db_root
    st = "send_targets/127.0.0.1,3260"
    assert tree(root) == {
        "ifaces": "d",
        "ifaces/ifx": "f",
        "nodes": "d",
        f"nodes/{T1}": "d",
        f"nodes/{T1}/127.0.0.1,3260,1": "d",
        f"nodes/{T1}/127.0.0.1,3260,1/ifx": "f",
        f"nodes/{T2}": "d",
        f"nodes/{T2}/127.0.0.1,3260,1": "d",
        f"nodes/{T2}/127.0.0.1,3260,1/ifx": "f",
        "send_targets": "d",
        st: "d",
        f"{st}/st_config": "f",
        f"{st}/{T1},127.0.0.1,3260,1,ifx": f"-> {root}/nodes/{T1}/127.0.0.1,3260,1",
        f"{st}/{T2},127.0.0.1,3260,1,ifx": f"-> {root}/nodes/{T2}/127.0.0.1,3260,1",
    }
    text = (root / "nodes" / T1 / "127.0.0.1,3260,1" / "ifx").read_text()
    assert "node.discovery_address = 127.0.0.1\nnode.discovery_port = 3260\n" in text
    assert "node.discovery_type = send_targets\n" in text


def test_ipv6_names_without_brackets(db: Records) -> None:
    disc = DiscoveryRecord.new("sendtargets", "[::1]", 3260)
    db.add_discovery(disc)
    db.add_node(NodeRecord.new(T1, "[::1]", 3260, 1), discovery=disc)
    assert (db.db_root / "send_targets" / "::1,3260" / "st_config").is_file()
    assert (db.db_root / "send_targets" / "::1,3260" / f"{T1},::1,3260,1,default").is_symlink()
    assert db.node(address="[::1]").portal == "[::1]:3260"


def test_link_root_writes_links_as_iscsiadm_would(tmp_path: Path) -> None:
    db = Records.at(tmp_path, durable=False, link_root="/etc/iscsi")
    db.add_node(NodeRecord.new(T1, "10.0.0.1", 3260, 1))
    link = tmp_path / "static" / f"{T1},10.0.0.1,3260,1,default"
    assert os.readlink(link) == f"/etc/iscsi/nodes/{T1}/10.0.0.1,3260,1"
    assert [n.target for n in db.discovery_nodes(db.discovery("static"))] == [T1]


# -- queries -----------------------------------------------------------------------------


def test_queries_filter_and_sort(db: Records) -> None:
    db.add_nodes(
        [
            NodeRecord.new(T2, "10.0.0.2", 3260, 1),
            NodeRecord.new(T1, "10.0.0.1", 3260, 10),
            NodeRecord.new(T1, "10.0.0.1", 3260, 2),
            NodeRecord.new(T1, "10.0.0.1", 3261),
        ]
    )
    ids = db.node_ids()
    # Byte order per level, as libopeniscsiusr's scandir(alphasort): "…,10" < "…,2".
    assert ids == [
        NodeId(T1, "10.0.0.1", 3260, 10, "default"),
        NodeId(T1, "10.0.0.1", 3260, 2, "default"),
        NodeId(T1, "10.0.0.1", 3261, -1, "default"),
        NodeId(T2, "10.0.0.2", 3260, 1, "default"),
    ]
    assert [n.id for n in db.nodes()] == ids
    assert [n.tpgt for n in db.nodes(target=T1, port=3260)] == [10, 2]
    assert db.node_ids(tpgt=-1) == [ids[2]]
    assert db.node_ids(address="10.0.0.2") == [ids[3]]
    assert db.node_ids(iface="nope") == []
    assert db.node(target=T2).address == "10.0.0.2"
    with pytest.raises(NoObjectsFoundError) as none:
        db.node(target="iqn.x:none")
    assert none.value.code == IscsiErr.NO_OBJS_FOUND
    with pytest.raises(NoObjectsFoundError, match="3 node records match; expected exactly one"):
        db.node(target=T1)


def test_empty_database(db: Records) -> None:
    assert db.node_ids() == [] and db.nodes() == [] and db.discoveries() == []
    assert [i.name for i in db.ifaces()] == ["default", "iser"]
    with pytest.raises(NoObjectsFoundError):
        db.discovery("sendtargets", "1.2.3.4")
    with pytest.raises(NoObjectsFoundError):
        db.iface("ifx")


def test_discovery_queries(db: Records) -> None:
    disc = discovered(db, "127.0.0.1", T1, T2)
    db.add_discovery(DiscoveryRecord.new("isns", "127.0.0.2"))
    assert [(d.type, d.portal) for d in db.discoveries()] == [
        ("sendtargets", "127.0.0.1:3260"),
        ("isns", "127.0.0.2:3205"),
    ]
    assert [d.type for d in db.discoveries("isns")] == ["isns"]
    assert db.discovery("sendtargets", "127.0.0.1") == disc
    assert [n.target for n in db.discovery_nodes(disc)] == [T1, T2]


# -- create / update / delete ------------------------------------------------------------


def test_add_overwrites_like_o_new(db: Records) -> None:
    node = NodeRecord.new(T1, "10.0.0.1", 3260, 1)
    node.set("node.startup", "automatic")
    db.add_node(node)
    db.add_node(NodeRecord.new(T1, "10.0.0.1", 3260, 1))
    assert db.node().get("node.startup") == "manual"


def test_add_with_tpgt_converts_old_style_file(db: Records) -> None:
    db.add_node(NodeRecord.new(T1, "10.0.0.1", 3260))
    assert (db.db_root / "nodes" / T1 / "10.0.0.1,3260").is_file()
    db.add_node(NodeRecord.new(T1, "10.0.0.1", 3260, 3))
    assert not (db.db_root / "nodes" / T1 / "10.0.0.1,3260").exists()
    assert db.node_ids() == [NodeId(T1, "10.0.0.1", 3260, 3, "default")]


def test_add_rediscovered_node_moves_its_link(db: Records) -> None:
    first = discovered(db, "127.0.0.1", T1)
    second = DiscoveryRecord.new("sendtargets", "127.0.0.2")
    db.add_discovery(second)
    db.add_node(NodeRecord.new(T1, "127.0.0.1", 3260, 1, iface=db.iface("ifx")), discovery=second)
    assert db.discovery_nodes(first) == []
    assert [n.target for n in db.discovery_nodes(second)] == [T1]


def test_add_needs_the_discovery_record(db: Records) -> None:
    with pytest.raises(NoObjectsFoundError):
        db.add_node(
            NodeRecord.new(T1, "10.0.0.1", 3260, 1),
            discovery=DiscoveryRecord.new("sendtargets", "10.9.9.9"),
        )
    assert db.node_ids() == []


def test_update_writes_only_changes(db: Records) -> None:
    db.add_node(NodeRecord.new(T1, "10.0.0.1", 3260, 1))
    mine = db.node()
    theirs = db.node()
    mine.set("node.startup", "automatic")
    theirs.set("node.session.cmds_max", "64")
    db.update_node(mine)
    db.update_node(theirs)  # does not put startup back to manual
    stored = db.node()
    assert stored.get("node.startup") == "automatic"
    assert stored.get("node.session.cmds_max") == "64"


def test_update_of_new_record_replaces_wholesale(db: Records) -> None:
    node = NodeRecord.new(T1, "10.0.0.1", 3260, 1)
    node.set("node.startup", "onboot")
    db.add_node(node)
    fresh = NodeRecord.new(T1, "10.0.0.1", 3260, 1)
    db.update_node(fresh)
    assert db.node().get("node.startup") == "manual"


def test_update_missing_record(db: Records) -> None:
    with pytest.raises(NoObjectsFoundError):
        db.update_node(NodeRecord.new(T1, "10.0.0.1", 3260, 1))


def test_update_refuses_identity_changes(db: Records) -> None:
    db.add_node(NodeRecord.new(T1, "10.0.0.1", 3260, 1))
    node = db.node()
    node.values["node.tpgt"] = "2"
    with pytest.raises(InvalidParameterError):
        db.update_node(node)
    assert db.node().tpgt == 1


def test_update_node_values_like_o_update(db: Records) -> None:
    db.add_nodes([NodeRecord.new(t, "10.0.0.1", 3260, 1) for t in (T1, T2)])
    assert db.update_node_values({"node.startup": "automatic"}) == 2
    assert {n.get("node.startup") for n in db.nodes()} == {"automatic"}
    assert db.update_node_values({"node.session.auth.username": "u s#r"}, target=T2) == 1
    assert db.node(target=T2).get("node.session.auth.username") == "u s#r"
    with pytest.raises(InvalidParameterError, match="Use iface mode"):
        db.update_node_values({"iface.mtu": "1"})
    with pytest.raises(NoObjectsFoundError):
        db.update_node_values({"node.startup": "manual"}, target="iqn.x:none")


def test_delete_removes_file_links_and_empty_dirs(db: Records) -> None:
    disc = discovered(db, "127.0.0.1", T1)
    db.add_node(NodeRecord.new(T1, "127.0.0.1", 3260, 1), discovery=disc)  # 2nd iface
    node = db.node(iface="ifx")
    db.delete_node(node)
    root = db.db_root
    assert not (root / "send_targets/127.0.0.1,3260" / f"{T1},127.0.0.1,3260,1,ifx").exists()
    assert (root / "nodes" / T1 / "127.0.0.1,3260,1" / "default").exists()
    db.delete_node(db.node())
    assert not (root / "nodes" / T1).exists()
    assert (root / "nodes").is_dir()
    assert os.listdir(root / "send_targets/127.0.0.1,3260") == ["st_config"]
    with pytest.raises(NoObjectsFoundError):
        db.delete_node(node)


def test_delete_by_id_finds_links_by_name(db: Records) -> None:
    discovered(db, "127.0.0.1", T1, T2)
    db.add_node(NodeRecord.new(T2, "10.0.0.1", 3260, 7))  # static link
    db.add_node(NodeRecord.new(T2, "10.0.0.1", 3261))  # old style
    db.delete_nodes(db.node_ids())
    assert tree(db.db_root) == {
        "ifaces": "d",
        "ifaces/ifx": "f",
        "nodes": "d",
        "send_targets": "d",
        "send_targets/127.0.0.1,3260": "d",
        "send_targets/127.0.0.1,3260/st_config": "f",
        "static": "d",
    }


def test_delete_discovery_deletes_its_nodes(db: Records) -> None:
    disc = discovered(db, "127.0.0.1", T1, T2)
    db.add_node(NodeRecord.new("iqn.x:other", "10.0.0.1", 3260, 1))
    db.delete_discovery(disc)
    assert [n.target for n in db.nodes()] == ["iqn.x:other"]
    assert not (db.db_root / "send_targets" / "127.0.0.1,3260").exists()
    with pytest.raises(NoObjectsFoundError):
        db.delete_discovery(disc)


def test_delete_discovery_keeping_nodes(db: Records) -> None:
    disc = discovered(db, "127.0.0.1", T1)
    db.delete_discovery(disc, delete_nodes=False)
    assert [n.target for n in db.nodes()] == [T1]
    assert not (db.db_root / "send_targets" / "127.0.0.1,3260").exists()


def test_delete_static_source(db: Records) -> None:
    db.add_node(NodeRecord.new(T1, "10.0.0.1", 3260, 1))
    db.delete_discovery(db.discovery("static"))
    assert db.nodes() == []


def test_discovery_update(db: Records) -> None:
    db.add_discovery(DiscoveryRecord.new("sendtargets", "10.0.0.9"))
    disc = db.discovery("sendtargets", "10.0.0.9", 3260)
    disc.set("discovery.sendtargets.auth.password", "s3 cr#t")
    db.update_discovery(disc)
    again = db.discovery("sendtargets", "10.0.0.9")
    assert again.get("discovery.sendtargets.auth.password") == "s3 cr#t"
    with pytest.raises(InvalidParameterError):
        db.add_discovery(DiscoveryRecord.new("static"))


def test_iface_update_rewrites_bound_nodes(db: Records) -> None:
    discovered(db, "127.0.0.1", T1)
    db.add_node(NodeRecord.new(T2, "10.0.0.1", 3260, 1))  # bound to default
    ifx = db.iface("ifx")
    ifx.set("iface.mtu", "9000")
    ifx.set("iface.prefix_len", "24")
    db.update_iface(ifx)
    assert db.iface("ifx").get("iface.mtu") == "9000"
    bound = db.node(iface="ifx")
    assert (bound.get("iface.mtu"), bound.get("iface.prefix_len")) == ("9000", "24")
    assert db.node(target=T2).get("iface.mtu") == "0"
    ifx = db.iface("ifx")
    ifx.set("iface.ipaddress", "fd00::3")  # the nodes switch to the IPv6 block
    db.update_iface(ifx)
    text = Path(db.node(iface="ifx").path or "").read_text()
    assert "iface.hop_limit = 0" in text and "iface.tos" not in text


def test_iface_delete_unbinds_nodes(db: Records) -> None:
    discovered(db, "127.0.0.1", T1)
    db.add_node(NodeRecord.new(T2, "10.0.0.1", 3260, 1))
    db.delete_iface("ifx")
    assert [n.target for n in db.nodes()] == [T2]
    assert [i.name for i in db.ifaces()] == ["default", "iser"]
    assert os.listdir(db.db_root / "send_targets/127.0.0.1,3260") == ["st_config"]
    with pytest.raises(NoObjectsFoundError):
        db.delete_iface("ifx")


def test_builtin_ifaces_are_refused(db: Records) -> None:
    with pytest.raises(InvalidParameterError, match="not stored"):
        db.add_iface(IfaceRecord.new("default"))
    with pytest.raises(InvalidParameterError, match="cannot be modified"):
        db.update_iface(IfaceRecord.builtin("iser"))
    with pytest.raises(InvalidParameterError, match="cannot be deleted"):
        db.delete_iface("iser")
    assert db.iface("iser").transport == "iser"


def test_batches_take_the_lock_once(db: Records, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []
    real = os.link

    def counting_link(src: str, dst: str, **kw: object) -> None:
        calls.append(dst)
        real(src, dst)

    monkeypatch.setattr(os, "link", counting_link)
    db.add_nodes([NodeRecord.new(f"iqn.x:t{i}", "10.0.0.1", 3260, 1) for i in range(50)])
    db.update_node_values({"node.startup": "automatic"})
    db.delete_nodes(db.node_ids())
    assert len(calls) == 3


def test_copied_database_with_foreign_link_targets(tmp_path: Path) -> None:
    """A database iscsiadm wrote (links into /etc/iscsi) read from another place."""
    db = Records.at(tmp_path / "copy", durable=False, link_root="/etc/iscsi")
    disc = discovered(db, "127.0.0.1", T1)
    reader = Records.at(tmp_path / "copy", durable=False)
    assert [n.target for n in reader.discovery_nodes(disc)] == [T1]
    assert reader.problems == []
    link = tmp_path / "copy" / "send_targets/127.0.0.1,3260" / f"{T1},127.0.0.1,3260,1,ifx"
    link.unlink()
    link.symlink_to(f"/etc/iscsi/nodes/{T2}/127.0.0.1,3260,1")
    assert [n.target for n in reader.discovery_nodes(disc)] == [T1]  # the name decides
    assert any("not to its node" in p.message for p in reader.problems)
    reader.delete_discovery(disc)
    assert reader.nodes() == []
