"""Malformed files in a database: what is valid loads, each problem names file and line,
and no other record is touched."""

from __future__ import annotations

from pathlib import Path

import pytest

from iscsikit.errors import DatabaseError, NoObjectsFoundError
from iscsikit.records import DiscoveryRecord, IfaceRecord, NodeRecord, Records

T = "iqn.2001-04.com.example:t"


@pytest.fixture
def db(tmp_path: Path) -> Records:
    db = Records.at(tmp_path / "iscsi", durable=False)
    db.add_nodes([NodeRecord.new(f"{T}{i}", "10.0.0.1", 3260, 1) for i in range(3)])
    return db


def node_file(db: Records, i: int) -> Path:
    return db.db_root / "nodes" / f"{T}{i}" / "10.0.0.1,3260,1" / "default"


def damage(db: Records, i: int, edit: str) -> tuple[Path, dict[int, bytes]]:
    """Apply ``edit`` to record i; return its path and the bytes of the others."""
    path = node_file(db, i)
    text = path.read_text()
    if edit == "garbage":
        text = text.replace("node.startup = manual\n", "node.startup = manual\n%%% garbage\n")
    elif edit == "no-end":
        text = text.replace("# END RECORD\n", "")
    elif edit == "truncated":
        text = text[: text.index("node.session.cmds_max") + 25]  # mid-line, no newline
    elif edit == "truncated-after-identity":
        # the identity lines (name, tpgt, iface, address, port) kept, the rest cut mid-line
        text = text[: text.index("node.conn[0].startup") + 10]
    elif edit == "unknown":
        text = text.replace("# END RECORD", "node.brand_new_key = 1\n# END RECORD")
    elif edit == "duplicate":
        text = text.replace("# END RECORD", "node.startup = onboot\n# END RECORD")
    elif edit == "bad-values":
        text = text.replace("node.startup = manual", "node.startup = sometimes").replace(
            "node.session.cmds_max = 128", "node.session.cmds_max = 12abc"
        )
    elif edit == "empty":
        text = ""
    path.write_text(text)
    others = {j: node_file(db, j).read_bytes() for j in range(3) if j != i}
    return path, others


@pytest.mark.parametrize(
    ("edit", "words", "startup", "cmds_max"),
    [
        ("garbage", "does not have '=' separator", "manual", "128"),
        ("no-end", "END RECORD", "manual", "128"),
        ("truncated-after-identity", "no newline", "manual", "128"),
        ("unknown", "unknown key 'node.brand_new_key'", "manual", "128"),
        ("duplicate", "set again", "onboot", "128"),
        ("bad-values", "unknown value format 'sometimes'", "manual", "12"),
    ],
)
def test_damaged_record_loads_what_is_valid(
    db: Records, edit: str, words: str, startup: str, cmds_max: str
) -> None:
    path, others = damage(db, 1, edit)
    records = db.nodes()
    assert [r.target for r in records] == [f"{T}0", f"{T}1", f"{T}2"]
    bad = records[1]
    assert (bad.get("node.startup"), bad.get("node.session.cmds_max")) == (startup, cmds_max)
    assert bad.target == f"{T}1" and bad.tpgt == 1
    assert bad.problems and all(p.path == path for p in bad.problems)
    assert any(words in p.message for p in bad.problems)
    assert all(p.line > 0 for p in bad.problems)
    assert db.problems == bad.problems
    assert records[0].problems == [] and records[2].problems == []
    # Reading, and writing the others, never touches the damaged file or the others.
    before = path.read_bytes()
    db.update_node_values({"node.session.queue_depth": "16"}, target=f"{T}0")
    assert path.read_bytes() == before
    assert node_file(db, 2).read_bytes() == others[2]


def test_update_normalizes_a_damaged_record(db: Records) -> None:
    path, _ = damage(db, 1, "garbage")
    node = db.node(target=f"{T}1")
    node.set("node.startup", "automatic")
    db.update_node(node)
    text = path.read_text()
    assert "garbage" not in text and "node.startup = automatic" in text
    assert db.node(target=f"{T}1").problems == []


def test_line_numbers_point_at_the_line(db: Records) -> None:
    path, _ = damage(db, 0, "garbage")
    (problem,) = db.node(target=f"{T}0").problems
    lines = path.read_text().splitlines()
    assert lines[problem.line - 1] == "%%% garbage"
    assert str(problem).startswith(f"{path}:{problem.line}: ")


@pytest.mark.parametrize("edit", ["empty", "truncated", "other-name", "no-address", "other-tpgt"])
def test_file_without_its_identity_is_not_a_record(db: Records, edit: str) -> None:
    """iscsiadm 2.1.8 matches a node by the values in its file: one whose node.name,
    address, port, tpgt or iface is missing or names another node is never found by
    -T/-p; iscsikit neither loads nor touches it (oracle: test_records_corrupt_oracle)."""
    path = node_file(db, 2)
    if edit == "other-name":
        path.write_text(path.read_text().replace(f"node.name = {T}2", f"node.name = {T}9"))
    elif edit == "no-address":
        path.write_text(path.read_text().replace("node.conn[0].address = 10.0.0.1\n", ""))
    elif edit == "other-tpgt":
        path.write_text(path.read_text().replace("node.tpgt = 1\n", "node.tpgt = 7\n"))
    else:
        damage(db, 2, edit)
    before = path.read_bytes()
    assert [r.target for r in db.nodes()] == [f"{T}0", f"{T}1"]
    (problem,) = [p for p in db.problems if "not the record its path names" in p.message]
    assert problem.path == path
    with pytest.raises(NoObjectsFoundError):
        db.node(target=f"{T}2")
    assert db.found_node_ids(target=f"{T}2") == []
    with pytest.raises(NoObjectsFoundError):
        db.update_node_values({"node.startup": "automatic"}, target=f"{T}2")
    assert db.update_node_values({"node.startup": "automatic"}) == 2  # the two good ones
    with pytest.raises(DatabaseError, match="to delete node"):
        db.add_node(NodeRecord.new(f"{T}2", "10.0.0.1", 3260, 1))
    assert path.read_bytes() == before
    # listing goes by names: the file is still listed (docs/compatibility.md)
    assert len(db.node_ids()) == 3


def test_stray_entries_are_reported_not_fatal(db: Records) -> None:
    (db.db_root / "nodes" / f"{T}0" / "not-a-portal").write_text("x")
    (db.db_root / "nodes" / f"{T}0" / ".default.iscsikit-tmp.1.2").write_text("x")
    ids = db.node_ids()
    assert len(ids) == 3
    assert [p.message for p in db.problems] == ["not a node record: expected address,port,tpgt"]


def test_truncated_iface_and_discovery_files(db: Records) -> None:
    db.add_iface(IfaceRecord.new("ifx"))
    db.add_discovery(DiscoveryRecord.new("sendtargets", "10.0.0.9"))
    iface_file = db.db_root / "ifaces" / "ifx"
    iface_file.write_text(iface_file.read_text()[:40])
    conf = db.db_root / "send_targets" / "10.0.0.9,3260" / "st_config"
    conf.write_text(conf.read_text().replace("# END RECORD\n", "discovery.startup = automatic\n"))
    ifx = db.iface("ifx")
    assert ifx.transport == "tcp" and ifx.problems
    disc = db.discovery("sendtargets", "10.0.0.9")
    assert disc.get("discovery.startup") == "automatic"
    assert any("END RECORD" in p.message for p in disc.problems)


def test_dangling_link_reported(db: Records) -> None:
    disc = DiscoveryRecord.new("sendtargets", "10.0.0.9")
    db.add_discovery(disc)
    db.add_node(NodeRecord.new(f"{T}7", "10.0.0.1", 3260, 1), discovery=disc)
    node_file(db, 7).unlink()
    assert db.discovery_nodes(disc) == []
    assert any("missing node record" in p.message for p in db.problems)
