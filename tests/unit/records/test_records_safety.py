"""Atomic, durable writes: a failed or crashed write loses nothing already stored, leaves
no half record, and its temporary files are cleaned up; I/O failures are code 6."""

from __future__ import annotations

import multiprocessing
import os
from pathlib import Path

import pytest

from iscsikit.errors import DatabaseError, IscsiErr
from iscsikit.records import NodeRecord, Records, fsio
from iscsikit.records.layout import TEMP_MARKER

T = "iqn.2001-04.com.example:disk"


def temp_files(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if TEMP_MARKER in p.name]


@pytest.fixture
def db(tmp_path: Path) -> Records:
    db = Records.at(tmp_path / "iscsi")
    db.add_nodes([NodeRecord.new(f"{T}{i}", "10.0.0.1", 3260, 1) for i in range(3)])
    return db


def test_failed_rename_keeps_old_record(db: Records, monkeypatch: pytest.MonkeyPatch) -> None:
    before = {n.path: Path(str(n.path)).read_bytes() for n in db.nodes()}

    def broken_replace(src: str, dst: str, **dir_fds: int) -> None:
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(
        DatabaseError, match=r"Could not replace .*default: Input/output error"
    ) as err:
        db.update_node_values({"node.startup": "automatic"})
    assert err.value.code == IscsiErr.IDBM
    monkeypatch.undo()
    assert {n.path: Path(str(n.path)).read_bytes() for n in db.nodes()} == before
    assert temp_files(db.db_root) == []
    assert not (db.db_root / ".iscsikit-writing").exists()
    assert not (db.lock.lock_dir / "lock.write").exists()


def test_failure_midway_leaves_each_record_whole(
    db: Records, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = os.replace
    calls = []

    def flaky_replace(src: str, dst: str, **dir_fds: int) -> None:
        # record files are renamed within their directory's descriptor (records/fsio.py)
        if "/nodes/" in dst or dir_fds:
            calls.append(dst)
        if len(calls) == 2:
            raise OSError(28, "No space left on device")
        real(src, dst, **dir_fds)

    monkeypatch.setattr(os, "replace", flaky_replace)
    with pytest.raises(DatabaseError, match="No space left"):
        db.update_node_values({"node.startup": "onboot"})
    monkeypatch.undo()
    startups = [n.get("node.startup") for n in db.nodes()]
    assert startups == ["onboot", "manual", "manual"]
    assert all(n.problems == [] for n in db.nodes())
    assert temp_files(db.db_root) == []


def _crash_mid_write(db_root: str) -> None:
    db = Records.at(db_root)
    original = fsio.WriteBatch.commit

    def crash(self: fsio.WriteBatch) -> None:
        os._exit(3)  # temporary files written, nothing renamed, lock held

    fsio.WriteBatch.commit = crash  # type: ignore[method-assign]
    try:
        db.update_node_values({"node.startup": "automatic"})
    finally:
        fsio.WriteBatch.commit = original  # type: ignore[method-assign]


def test_crash_mid_write_is_cleaned_up_by_next_writer(db: Records) -> None:
    before = [n.values for n in db.nodes()]
    proc = multiprocessing.get_context("fork").Process(
        target=_crash_mid_write, args=(str(db.db_root),)
    )
    proc.start()
    proc.join(30)
    assert proc.exitcode == 3
    assert len(temp_files(db.db_root)) == 3
    assert (db.db_root / ".iscsikit-writing").exists()
    assert (db.lock.lock_dir / "lock.write").exists()  # the crashed writer's
    # Readers never see the temporary files; the old records are intact.
    assert [n.values for n in db.nodes()] == before and db.problems == []
    # The next writer breaks the dead writer's lock, then removes its temporary files.
    db.update_node_values({"node.startup": "onboot"})
    assert temp_files(db.db_root) == []
    assert not (db.db_root / ".iscsikit-writing").exists()
    assert {n.get("node.startup") for n in db.nodes()} == {"onboot"}


def test_cleanup_reports_what_it_removed(db: Records) -> None:
    stray = db.db_root / "nodes" / f"{T}0" / "10.0.0.1,3260,1" / f".default{TEMP_MARKER}1.1"
    stray.write_text("partial")
    assert db.cleanup() == [stray]
    assert not stray.exists()


def test_durable_batches_sync(db: Records, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []
    monkeypatch.setattr(fsio, "_syncfs", lambda path: calls.append("syncfs"))
    monkeypatch.setattr(fsio, "_fsync_path", lambda path: calls.append("fsync"))
    db.update_node_values({"node.startup": "automatic"})  # 3 files: fsync each + dirs
    assert calls.count("fsync") >= 6 and "syncfs" not in calls
    calls.clear()
    db.add_nodes([NodeRecord.new(f"{T}x{i}", "10.0.0.2", 3260, 1) for i in range(40)])
    assert calls.count("syncfs") >= 2 and calls.count("fsync") <= 1  # static/ only
    calls.clear()
    Records.at(db.db_root, durable=False).update_node_values({"node.startup": "manual"})
    assert calls == []


def test_io_failure_is_database_error(tmp_path: Path) -> None:
    root = tmp_path / "iscsi"
    root.mkdir()
    (root / "nodes").write_text("not a directory")
    db = Records.at(root, durable=False)
    with pytest.raises(DatabaseError, match=r"nodes") as err:
        db.add_node(NodeRecord.new(T, "10.0.0.1", 3260, 1))
    assert err.value.code == IscsiErr.IDBM
    assert db.node_ids() == []  # reading a broken tree is not an error


def test_unreadable_record_is_database_error(db: Records, monkeypatch: pytest.MonkeyPatch) -> None:
    real_read = os.read

    def failing_read(fd: int, n: int) -> bytes:
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(os, "read", failing_read)
    with pytest.raises(DatabaseError, match=r"Could not read .*default"):
        db.nodes()
    monkeypatch.setattr(os, "read", real_read)


def test_secrets_are_0600_even_with_loose_umask(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        db = Records.at(tmp_path / "iscsi")
        node = NodeRecord.new(T, "10.0.0.1", 3260, 1)
        node.set("node.session.auth.password", "secret")
        db.add_node(node)
        db.update_node_values({"node.session.auth.password": "other"})
    finally:
        os.umask(old)
    path = Path(str(db.node().path))
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    assert oct(path.parent.stat().st_mode & 0o777) == "0o700"
