"""Files as root: a symlink planted in the records tree or the lock directory is never
followed for writing (records/fsio.py, records/lock.py; issue 14).

Each test plants the link another user could make, runs the operation that would
write through it, and checks that the file outside the database is untouched (and,
where iscsiadm would follow the link for reading, that iscsikit reads it too).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from iscsikit.errors import DatabaseError, NoObjectsFoundError
from iscsikit.records import DiscoveryRecord, IfaceRecord, NodeRecord, Records, fsio
from iscsikit.records.lock import DbLock

T = "iqn.2001-04.com.example:links"
OUTSIDE_TEXT = "root:secret:19000:0:99999:7:::\n"


@pytest.fixture
def db(tmp_path: Path) -> Records:
    return Records.at(tmp_path / "iscsi", durable=False)


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    """A directory standing for /etc: one file that must never change, nothing added."""
    etc = tmp_path / "etc"
    etc.mkdir()
    (etc / "shadow").write_text(OUTSIDE_TEXT)
    return etc


def unchanged(etc: Path) -> None:
    assert sorted(p.name for p in etc.iterdir()) == ["shadow"]
    assert (etc / "shadow").read_text() == OUTSIDE_TEXT


def portal_dir(db: Records) -> Path:
    return db.db_root / "nodes" / T / "10.0.0.1,3260,1"


def test_portal_dir_linked_elsewhere_is_not_written_into(db: Records, outside: Path) -> None:
    db.add_node(NodeRecord.new(f"{T}.other", "10.0.0.1", 3260, 1))  # nodes/ exists
    (db.db_root / "nodes" / T).mkdir()
    portal_dir(db).symlink_to(outside)
    with pytest.raises(DatabaseError, match="symbolic link"):
        db.add_node(NodeRecord.new(T, "10.0.0.1", 3260, 1))
    unchanged(outside)
    # an iface named like the file outside: read through the link, it is no record of
    # this node (iscsiadm's idbm_add_node fails there too); nothing written or removed
    with pytest.raises(DatabaseError):
        db.add_node(NodeRecord.new(T, "10.0.0.1", 3260, 1, iface=IfaceRecord.new("shadow")))
    unchanged(outside)


def test_target_dir_linked_elsewhere(db: Records, outside: Path) -> None:
    (db.db_root / "nodes").mkdir(parents=True)
    (db.db_root / "nodes" / T).symlink_to(outside)
    with pytest.raises(DatabaseError, match="symbolic link"):
        db.add_node(NodeRecord.new(T, "10.0.0.1", 3260, 1))
    unchanged(outside)


def test_record_linked_to_a_system_file_is_neither_read_as_a_record_nor_written(
    db: Records, outside: Path
) -> None:
    """nodes/T/P,t/default -> /etc/shadow: iscsiadm reads through the link, finds no
    node.name there (not the record: 21), and so does iscsikit; -o new, update and
    delete never write or remove the file outside."""
    db.add_node(NodeRecord.new(T, "10.0.0.1", 3260, 1))
    record = portal_dir(db) / "default"
    record.unlink()
    record.symlink_to(outside / "shadow")
    with pytest.raises(NoObjectsFoundError):
        db.node(target=T)
    with pytest.raises(NoObjectsFoundError):
        db.update_node_values({"node.startup": "automatic"}, target=T)
    with pytest.raises(DatabaseError):
        db.add_node(NodeRecord.new(T, "10.0.0.1", 3260, 1))
    assert db.found_node_ids(target=T) == []
    unchanged(outside)
    assert record.is_symlink()


def test_record_linked_to_a_real_record_is_read_and_replaced_not_written_through(
    db: Records, tmp_path: Path
) -> None:
    """Reading follows the link (as iscsiadm's fopen does); an update replaces the link
    by a file (rename), so the file it pointed to keeps its bytes."""
    db.add_node(NodeRecord.new(T, "10.0.0.1", 3260, 1))
    record = portal_dir(db) / "default"
    kept = tmp_path / "kept-record"
    kept.write_bytes(record.read_bytes())
    before = kept.read_bytes()
    record.unlink()
    record.symlink_to(kept)
    node = db.node(target=T)
    assert node.get("node.startup") == "manual"
    db.update_node_values({"node.startup": "automatic"}, target=T)
    assert kept.read_bytes() == before
    assert not record.is_symlink()
    assert db.node(target=T).get("node.startup") == "automatic"


def test_delete_through_a_linked_dir_removes_nothing_outside(
    db: Records, outside: Path, tmp_path: Path
) -> None:
    """A node whose portal dir is a link to a directory holding a valid record of it:
    the record is read (iscsiadm reads through links) but not deleted there."""
    db.add_node(NodeRecord.new(T, "10.0.0.1", 3260, 1))
    elsewhere = tmp_path / "elsewhere"
    portal_dir(db).rename(elsewhere)
    portal_dir(db).symlink_to(elsewhere)
    assert db.node(target=T).target == T
    with pytest.raises(DatabaseError, match="symbolic link"):
        db.delete_nodes(db.found_node_ids(target=T))
    assert (elsewhere / "default").exists()
    assert portal_dir(db).is_symlink()


def test_discovery_and_iface_dirs_linked_elsewhere(db: Records, outside: Path) -> None:
    db.db_root.mkdir(parents=True)
    (db.db_root / "send_targets").mkdir()
    (db.db_root / "send_targets" / "10.0.0.9,3260").symlink_to(outside)
    with pytest.raises(DatabaseError, match="symbolic link"):
        db.add_discovery(DiscoveryRecord.new("sendtargets", "10.0.0.9"))
    (db.db_root / "ifaces").symlink_to(outside)
    with pytest.raises(DatabaseError, match="symbolic link"):
        db.add_iface(IfaceRecord.new("shadow"))
    with pytest.raises(DatabaseError, match="symbolic link"):
        db.delete_iface("shadow")
    unchanged(outside)


def test_dangling_links_in_the_nodes_tree(db: Records, tmp_path: Path) -> None:
    """nodes/T/P,t/default -> missing and nodes/T -> missing: not records (iscsiadm:
    "No records found" for -T/-p), never created through."""
    db.add_node(NodeRecord.new(f"{T}.ok", "10.0.0.1", 3260, 1))
    nodes = db.db_root / "nodes"
    (nodes / T).symlink_to(tmp_path / "missing-target-dir")
    with pytest.raises(NoObjectsFoundError):
        db.node(target=T)
    with pytest.raises(DatabaseError):
        db.add_node(NodeRecord.new(T, "10.0.0.1", 3260, 1))
    assert not (tmp_path / "missing-target-dir").exists()
    (nodes / T).unlink()
    db.add_node(NodeRecord.new(T, "10.0.0.1", 3260, 1))
    record = portal_dir(db) / "default"
    record.unlink()
    record.symlink_to(tmp_path / "missing-file")
    with pytest.raises(NoObjectsFoundError):
        db.node(target=T)
    assert [n.target for n in db.found_node_ids()] == [f"{T}.ok"]
    assert not (tmp_path / "missing-file").exists()


def test_temp_files_under_a_planted_link_are_not_cleaned_outside(
    db: Records, outside: Path
) -> None:
    db.add_node(NodeRecord.new(T, "10.0.0.1", 3260, 1))
    (db.db_root / "ifaces").symlink_to(outside)
    planted = outside / ".x.iscsikit-tmp.1.2"
    planted.write_text("not ours")
    db.cleanup()
    assert planted.exists()


def test_open_dir_refuses_a_link_below_root_but_not_root_itself(tmp_path: Path) -> None:
    real = tmp_path / "real"
    (real / "a").mkdir(parents=True)
    root = tmp_path / "root-link"
    root.symlink_to(real)  # /etc/iscsi may itself be a link
    os.close(fsio.open_dir(f"{root}/a", str(root)))
    (real / "b").symlink_to(real / "a")
    with pytest.raises(DatabaseError, match="symbolic link"):
        fsio.open_dir(f"{root}/b", str(root))
    with pytest.raises(DatabaseError, match="outside"):
        fsio.open_dir(str(tmp_path), str(root))


# -- the lock directory ---------------------------------------------------------------


def test_lock_file_linked_elsewhere_is_refused(tmp_path: Path, outside: Path) -> None:
    lock_dir = tmp_path / "lock"
    lock_dir.mkdir()
    (lock_dir / "lock").symlink_to(outside / "created-by-lock")
    with pytest.raises(DatabaseError, match="lock"):
        DbLock(lock_dir, timeout=0.2).acquire()
    unchanged(outside)


def test_lock_dir_that_is_a_link_is_refused(tmp_path: Path, outside: Path) -> None:
    (tmp_path / "lock").symlink_to(outside)
    with pytest.raises(DatabaseError, match="symbolic link"):
        DbLock(tmp_path / "lock", timeout=0.2).acquire()
    unchanged(outside)


def test_owner_note_link_is_not_written_through(tmp_path: Path, outside: Path) -> None:
    lock_dir = tmp_path / "lock"
    lock_dir.mkdir()
    (lock_dir / f"lock.iscsikit.{os.getpid()}").symlink_to(outside / "shadow")
    (lock_dir / "lock.iscsikit").symlink_to(outside / "shadow")
    lock = DbLock(lock_dir, timeout=2)
    with lock:
        assert (lock_dir / "lock.write").exists()
    unchanged(outside)
    assert not (lock_dir / "lock.write").exists()
