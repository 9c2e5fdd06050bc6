"""Record-writer checks that mutation testing found untested (docs/mutation.md).

Each test drives :class:`~iscsikit.records.store.Records` on a tmp_path database and
pins a refusal of :mod:`iscsikit.records.writer` that a mutant removed without any other
test noticing: names that would escape the database tree, and a stored record whose
identity was changed in place.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from iscsikit.errors import InvalidParameterError
from iscsikit.records import DiscoveryRecord, NodeRecord, Records

T1 = "iqn.2001-04.com.example:disk1"


@pytest.fixture
def db(tmp_path: Path) -> Records:
    return Records.at(tmp_path / "iscsi", durable=False)


def files(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if not str(p).count(".lock"))


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("node.name", "../../escaped"),
        ("node.name", "a/b"),
        ("node.conn[0].address", ".."),
        ("node.conn[0].address", "10.0.0.1/../.."),
        ("iface.iscsi_ifacename", "../default"),
        ("iface.iscsi_ifacename", "."),
    ],
)
def test_names_that_would_leave_the_tree_are_refused(
    db: Records, tmp_path: Path, key: str, value: str
) -> None:
    """A record's names become path components; one changed after the record was made
    is checked again when it is written, and nothing is written for it."""
    record = NodeRecord.new(T1, "10.0.0.1", 3260, 1)
    record.values[key] = value
    with pytest.raises(InvalidParameterError, match="for a record name"):
        db.add_node(record)
    written = [p for p in tmp_path.rglob("*") if not p.is_dir() and ".lock" not in str(p)]
    assert written == []
    assert not any("escaped" in name for name in os.listdir(tmp_path))


@pytest.mark.parametrize(("tpgt", "new_tpgt"), [(0, 5), (1, 0)])
def test_a_stored_new_record_cannot_change_its_identity(
    db: Records, tpgt: int, new_tpgt: int
) -> None:
    """A record made with ``new()`` carries no change set (it is rewritten whole), so
    the writer's path check is what refuses a tpgt changed after it was stored."""
    record = NodeRecord.new(T1, "10.0.0.1", 3260, tpgt)
    db.add_node(record)
    stored = files(db.db_root)
    record.values["node.tpgt"] = str(new_tpgt)
    with pytest.raises(InvalidParameterError, match="ids cannot be changed"):
        db.update_node(record)
    assert files(db.db_root) == stored
    assert db.node().tpgt == tpgt


def _isns_node(target: str = T1) -> NodeRecord:
    return NodeRecord.new(target, "10.0.0.1", 3260, 1,
                          discovery=DiscoveryRecord.new("isns", "127.0.0.2", 3205))  # fmt: skip


def test_isns_node_without_a_server_directory_links_in_isns_itself(db: Records) -> None:
    """``-m discovery -t isns`` stores no server record: iscsiadm links the node in
    isns/ itself (the pre-2.0-872 layout, setup_disc_to_node_link)."""
    db.add_node(_isns_node())
    link = db.db_root / "isns" / f"{T1},10.0.0.1,3260,1,default"
    assert link.is_symlink()
    assert not (db.db_root / "isns" / "127.0.0.2,3205").exists()


def test_isns_node_with_a_server_directory_links_there(db: Records) -> None:
    db.add_discovery(DiscoveryRecord.new("isns", "127.0.0.2", 3205))
    db.add_node(_isns_node())
    server = db.db_root / "isns" / "127.0.0.2,3205"
    assert (server / f"{T1},10.0.0.1,3260,1,default").is_symlink()
    assert not (db.db_root / "isns" / f"{T1},10.0.0.1,3260,1,default").exists()


def test_an_old_style_isns_link_found_wins(db: Records) -> None:
    """A node linked in isns/ before its server got a directory keeps that link when
    written again, as setup_disc_to_node_link finds it first."""
    db.add_node(_isns_node())
    db.add_discovery(DiscoveryRecord.new("isns", "127.0.0.2", 3205))
    db.add_node(_isns_node())
    old_style = db.db_root / "isns" / f"{T1},10.0.0.1,3260,1,default"
    assert old_style.is_symlink()
    server = db.db_root / "isns" / "127.0.0.2,3205"
    assert not (server / f"{T1},10.0.0.1,3260,1,default").exists()
    db.delete_node(db.node())  # the link the node is known by goes with it
    assert not os.path.lexists(old_style)


def test_an_old_style_record_over_a_directory_is_refused(db: Records) -> None:
    db.add_node(NodeRecord.new(T1, "10.0.0.2", 3260))  # makes the target directory
    path = db.db_root / "nodes" / T1 / "10.0.0.1,3260"
    path.mkdir()
    with pytest.raises(InvalidParameterError, match="is a directory, not a record"):
        db.add_node(NodeRecord.new(T1, "10.0.0.1", 3260))
    assert path.is_dir() and not any(path.iterdir())


def test_an_old_style_record_written_again(db: Records) -> None:
    """An old-style record has no link; writing it again replaces the file and touches
    no link."""
    db.add_node(NodeRecord.new(T1, "10.0.0.1", 3260))
    record = NodeRecord.new(T1, "10.0.0.1", 3260)
    record.values["node.session.timeo.replacement_timeout"] = "17"
    db.add_node(record)
    assert db.node().values["node.session.timeo.replacement_timeout"] == "17"
    assert db.problems == []
    assert [p.name for p in (db.db_root / "nodes" / T1).iterdir()] == ["10.0.0.1,3260"]


def test_a_node_of_an_unknown_sendtargets_server_gets_no_link_and_a_problem(
    db: Records,
) -> None:
    unknown = DiscoveryRecord.new("sendtargets", "10.9.9.9", 3260)
    record = NodeRecord.new(T1, "10.0.0.1", 3260, 1, discovery=unknown)
    db.add_node(record)
    server = db.db_root / "send_targets" / "10.9.9.9,3260"
    assert [str(p) for p in db.problems] == [f"{server}: no such discovery record: no link"]
    assert db.node().tpgt == 1
    assert not (db.db_root / "send_targets").exists() or not any(
        (db.db_root / "send_targets").iterdir()
    )


def test_an_update_is_applied_once(db: Records) -> None:
    """After an update the record's values count as stored: updating it again without
    new changes does not re-apply the old ones over a change another writer made since."""
    db.add_node(NodeRecord.new(T1, "10.0.0.1", 3260, 1))
    key = "node.session.timeo.replacement_timeout"
    record = db.node()
    record.values[key] = "5"
    db.update_node(record)
    db.update_node_values({key: "7"})  # another writer
    db.update_node(record)
    assert db.node().values[key] == "7"


def test_a_discovery_record_cannot_change_its_identity(db: Records) -> None:
    db.add_discovery(DiscoveryRecord.new("sendtargets", "10.9.9.9", 3260))
    (record,) = db.discoveries("sendtargets")
    record.values["discovery.sendtargets.address"] = "10.9.9.8"
    with pytest.raises(InvalidParameterError):
        db.update_discovery(record)
    assert [d.address for d in db.discoveries("sendtargets")] == ["10.9.9.9"]


def test_an_update_without_changes_leaves_the_file_alone(db: Records) -> None:
    """A record file not in open-iscsi's exact layout (a comment added by hand) is not
    normalized by an update that changes nothing."""
    db.add_node(NodeRecord.new(T1, "10.0.0.1", 3260, 1))
    path = db.db_root / "nodes" / T1 / "10.0.0.1,3260,1" / "default"
    text = "# edited by hand\n" + path.read_text()
    path.write_text(text)
    record = db.node()
    db.update_node(record)
    assert path.read_text() == text


def test_deleting_a_tpgt_0_node_removes_its_portal_directory(db: Records) -> None:
    db.add_node(NodeRecord.new(T1, "10.0.0.1", 3260, 0))
    db.delete_node(db.node())
    assert not (db.db_root / "nodes" / T1).exists()


def test_an_update_rewriting_a_malformed_file_reports_its_problems(db: Records) -> None:
    """A file open-iscsi's line splice cannot patch is rewritten whole; what was wrong
    in it is reported, not dropped silently."""
    db.add_node(NodeRecord.new(T1, "10.0.0.1", 3260, 1))
    path = db.db_root / "nodes" / T1 / "10.0.0.1,3260,1" / "default"
    path.write_text(path.read_text() + "this line is no key = value pair\n= nameless\n")
    record = db.node()
    record.values["node.session.timeo.replacement_timeout"] = "9"
    db.update_node(record)
    assert db.problems, "the malformed lines went unreported"
    assert all(p.path == path for p in db.problems)
    assert db.node().values["node.session.timeo.replacement_timeout"] == "9"
