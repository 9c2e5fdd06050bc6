"""records/fsio.py checks that mutation testing found untested (docs/mutation.md).

The record writer's side of fsio (open_dir, make_dirs, unlink, sync_dirs, WriteBatch)
on a tmp_path tree: what each refuses, what it returns, which descriptors it leaves
open (none), and which sync call a batch uses.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from iscsikit.errors import DatabaseError
from iscsikit.records import fsio


def _open_fds() -> set[str]:
    return set(os.listdir("/proc/self/fd"))


@pytest.fixture
def no_leak() -> Iterator[None]:
    """Fails the test if it leaves a descriptor open."""
    before = _open_fds()
    yield
    assert _open_fds() - before == set()


@pytest.fixture
def root(tmp_path: Path) -> Path:
    top = tmp_path / "db"
    top.mkdir()
    return top


def _fsync_spy(monkeypatch: pytest.MonkeyPatch) -> tuple[list[str], list[str]]:
    """Paths fsync()-ed and syncfs()-ed from now on (the calls still happen)."""
    fsynced: list[str] = []
    syncfs: list[str] = []
    real = os.fsync

    def fsync(fd: int) -> None:
        fsynced.append(os.readlink(f"/proc/self/fd/{fd}"))
        real(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(fsio, "_syncfs", syncfs.append)
    return fsynced, syncfs


# -- open_dir --------------------------------------------------------------------------


@pytest.mark.usefixtures("no_leak")
def test_open_dir_reaches_a_directory_below_the_root(root: Path) -> None:
    (root / "a" / "b").mkdir(parents=True)
    for base in (str(root), None):
        fd = fsio.open_dir(str(root / "a" / "b"), base)
        try:
            assert os.readlink(f"/proc/self/fd/{fd}") == str(root / "a" / "b")
        finally:
            os.close(fd)
    fd = fsio.open_dir(str(root), str(root))  # the root itself
    os.close(fd)


@pytest.mark.usefixtures("no_leak")
def test_open_dir_refuses_a_link_and_a_file_and_reports_a_missing_one(
    root: Path, tmp_path: Path
) -> None:
    (root / "a").mkdir()
    (root / "a" / "link").symlink_to(tmp_path)
    (root / "a" / "file").write_text("")
    with pytest.raises(DatabaseError, match="a symbolic link, not followed"):
        fsio.open_dir(str(root / "a" / "link" / "x"), str(root))
    with pytest.raises(DatabaseError, match=r"Could not use as a directory .*/a/file: "):
        fsio.open_dir(str(root / "a" / "file" / "x"), str(root))
    with pytest.raises(FileNotFoundError):
        fsio.open_dir(str(root / "a" / "missing" / "x"), str(root))
    with pytest.raises(FileNotFoundError):
        fsio.open_dir(str(root / "a" / "missing"), None)
    with pytest.raises(FileNotFoundError):
        fsio.open_dir(str(root / "gone" / "x"), str(root / "gone"))
    with pytest.raises(DatabaseError, match="Could not open directory"):
        fsio.open_dir(str(root / "a" / "file"), None)
    with pytest.raises(DatabaseError, match="Could not open directory"):
        fsio.open_dir(str(root / "a" / "file" / "x"), str(root / "a" / "file"))
    with pytest.raises(DatabaseError, match="outside the database"):
        fsio.open_dir(str(tmp_path), str(root))


@pytest.mark.usefixtures("no_leak")
def test_open_dir_creates_only_when_asked(root: Path) -> None:
    with pytest.raises(FileNotFoundError):
        fsio.open_dir(str(root / "x" / "y"), str(root))
    assert not (root / "x").exists()
    os.close(fsio.open_dir(str(root / "x" / "y"), str(root), create=True))
    assert (root / "x" / "y").is_dir()
    assert (root / "x").stat().st_mode & 0o777 == fsio.DIR_MODE


# -- make_dirs -------------------------------------------------------------------------


@pytest.mark.usefixtures("no_leak")
@pytest.mark.parametrize("below", [True, False])
def test_make_dirs_reports_the_parent_of_each_directory_it_made(root: Path, *, below: bool) -> None:
    (root / "a").mkdir()
    created: list[str] = []
    base = str(root) if below else None
    fsio.make_dirs(str(root / "a" / "b" / "c"), created, root=base)
    assert created == [str(root / "a"), str(root / "a" / "b")] or (
        not below and sorted(created) == [str(root / "a"), str(root / "a" / "b")]
    )
    assert (root / "a" / "b" / "c").is_dir()
    again: list[str] = []
    fsio.make_dirs(str(root / "a" / "b" / "c"), again, root=base)
    assert again == []
    fsio.make_dirs(str(root / "a" / "d"), None, root=base)  # no list: still made
    assert (root / "a" / "d").is_dir()


@pytest.mark.usefixtures("no_leak")
@pytest.mark.parametrize("below", [True, False])
def test_make_dirs_refuses_a_file_in_the_way(root: Path, *, below: bool) -> None:
    (root / "f").write_text("")
    base = str(root) if below else None
    with pytest.raises(DatabaseError, match="as a directory"):
        fsio.make_dirs(str(root / "f"), [], root=base)
    with pytest.raises(DatabaseError):
        fsio.make_dirs(str(root / "f" / "x"), [], root=base)


@pytest.mark.usefixtures("no_leak")
def test_make_dirs_below_the_root_refuses_a_link_at_the_end_or_on_the_way(
    root: Path, tmp_path: Path
) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (root / "link").symlink_to(outside)
    with pytest.raises(DatabaseError, match="a symbolic link"):
        fsio.make_dirs(str(root / "link"), [], root=str(root))
    with pytest.raises(DatabaseError, match="a symbolic link"):
        fsio.make_dirs(str(root / "link" / "x"), [], root=str(root))
    assert list(outside.iterdir()) == []


# -- unlink ----------------------------------------------------------------------------


@pytest.mark.usefixtures("no_leak")
@pytest.mark.parametrize("below", [True, False])
def test_unlink_says_whether_something_was_removed(root: Path, *, below: bool) -> None:
    base = str(root) if below else None
    (root / "a").mkdir()
    (root / "a" / "f").write_text("")
    (root / "a" / "l").symlink_to(root / "a" / "f")
    assert fsio.unlink(str(root / "a" / "l"), root=base) is True
    assert (root / "a" / "f").exists()
    assert fsio.unlink(str(root / "a" / "f"), root=base) is True
    assert fsio.unlink(str(root / "a" / "f"), root=base) is False
    assert fsio.unlink(str(root / "missing" / "f"), root=base) is False
    with pytest.raises(DatabaseError, match="Could not remove"):
        fsio.unlink(str(root / "a"), root=base)  # a directory
    assert (root / "a").is_dir()


# -- sync_dirs -------------------------------------------------------------------------


def test_sync_dirs_fsyncs_a_few_and_syncfs_many(
    root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    dirs = [str(root / f"d{i}") for i in range(fsio.SYNCFS_THRESHOLD)]
    for d in dirs:
        os.mkdir(d)
    fsynced, syncfs = _fsync_spy(monkeypatch)
    # One fewer than the threshold once the duplicate is dropped; one that is gone.
    fsio.sync_dirs([*dirs[:-2], dirs[0], str(root / "gone")])
    assert (sorted(fsynced), syncfs) == (sorted(dirs[:-2]), [])
    fsynced.clear()
    fsio.sync_dirs(dirs)
    assert (fsynced, syncfs) == ([], [dirs[0]])
    fsio.sync_dirs(dirs[:1], many=True)
    assert (fsynced, syncfs) == ([], [dirs[0], dirs[0]])
    fsio.sync_dirs([], many=True)
    assert (fsynced, len(syncfs)) == ([], 2)


def test_sync_dirs_reports_an_io_error(root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def fail(fd: int) -> None:
        raise OSError(errno.EIO, os.strerror(errno.EIO))

    monkeypatch.setattr(os, "fsync", fail)
    with pytest.raises(DatabaseError, match=f"Could not sync {root}: "):
        fsio.sync_dirs([str(root)])


# -- WriteBatch ------------------------------------------------------------------------


@pytest.mark.usefixtures("no_leak")
@pytest.mark.parametrize("below", [True, False])
def test_a_batch_writes_replaces_and_links(
    root: Path, monkeypatch: pytest.MonkeyPatch, *, below: bool
) -> None:
    (root / "a").mkdir()
    (root / "b").mkdir()
    (root / "a" / "old").write_text("old")
    (root / "b" / "l").symlink_to("elsewhere")
    fsynced, syncfs = _fsync_spy(monkeypatch)
    with fsio.WriteBatch(durable=True, root=str(root) if below else None) as batch:
        batch.write(str(root / "a" / "old"), "new")
        batch.write(str(root / "b" / "f"), "f")
        batch.write(str(root / "a" / "g"), "g")  # back to a directory opened before
        batch.symlink(str(root / "b" / "l"), "target")  # replaced: staged
        batch.symlink(str(root / "a" / "n"), "target")  # new: made at once
        batch.symlink(str(root / "a" / "same"), "t")
        batch.symlink(str(root / "a" / "same"), "t")  # already so: nothing
        assert len(batch) == 4
        batch.commit()
    assert (root / "a" / "old").read_text() == "new"
    assert (root / "b" / "f").read_text() == "f"
    assert (root / "a" / "g").read_text() == "g"
    assert os.readlink(root / "b" / "l") == "target"
    assert os.readlink(root / "a" / "n") == "target"
    assert sorted(os.listdir(root / "a")) == ["g", "n", "old", "same"]
    assert sorted(os.listdir(root / "b")) == ["f", "l"]
    assert (root / "b" / "f").stat().st_mode & 0o777 == fsio.FILE_MODE
    assert syncfs == []
    synced_dirs = {p for p in fsynced if os.path.isdir(p)}
    assert synced_dirs == {str(root / "a"), str(root / "b")}
    assert len(fsynced) - len(synced_dirs) == 3  # each file, not the link


@pytest.mark.usefixtures("no_leak")
def test_a_batch_of_only_new_links_syncs_their_directory(
    root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (root / "a").mkdir()
    fsynced, syncfs = _fsync_spy(monkeypatch)
    with fsio.WriteBatch(durable=True, root=str(root)) as batch:
        batch.symlink(str(root / "a" / "n"), "target")
        batch.commit()
    assert (fsynced, syncfs) == ([str(root / "a")], [])
    fsynced.clear()
    with fsio.WriteBatch(durable=False, root=str(root)) as batch:
        batch.symlink(str(root / "a" / "m"), "target")
        batch.write(str(root / "a" / "f"), "f")
        batch.commit()
    assert (fsynced, syncfs) == ([], [])


@pytest.mark.usefixtures("no_leak")
def test_a_batch_of_threshold_files_uses_syncfs_before_and_after(
    root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fsynced, syncfs = _fsync_spy(monkeypatch)
    with fsio.WriteBatch(durable=True, root=str(root)) as batch:
        for i in range(fsio.SYNCFS_THRESHOLD):
            batch.write(str(root / f"f{i}"), str(i))
        first = batch._staged[0][0]
        batch.commit()
    assert fsynced == []
    assert syncfs == [first, str(root)]  # the first temporary file, then the directory


@pytest.mark.usefixtures("no_leak")
def test_a_batch_left_without_commit_removes_its_temporary_files(root: Path) -> None:
    (root / "a").mkdir()
    (root / "a" / "f").write_text("old")
    with pytest.raises(RuntimeError), fsio.WriteBatch(durable=False, root=str(root)) as batch:
        batch.write(str(root / "a" / "f"), "new")
        batch.symlink(str(root / "a" / "f2"), "x")
        raise RuntimeError
    assert sorted(os.listdir(root / "a")) == ["f", "f2"]
    assert (root / "a" / "f").read_text() == "old"


@pytest.mark.usefixtures("no_leak")
def test_a_batch_refuses_a_missing_directory_and_a_link_on_the_way(
    root: Path, tmp_path: Path
) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (root / "link").symlink_to(outside)
    with fsio.WriteBatch(durable=False, root=str(root)) as batch:
        with pytest.raises(DatabaseError, match=r"Could not open directory .*/missing"):
            batch.write(str(root / "missing" / "f"), "x")
        with pytest.raises(DatabaseError, match="a symbolic link"):
            batch.write(str(root / "link" / "f"), "x")
        with pytest.raises(DatabaseError, match="a symbolic link"):
            batch.symlink(str(root / "link" / "l"), "x")
    assert list(outside.iterdir()) == []
    with fsio.WriteBatch(durable=False) as batch, pytest.raises(DatabaseError, match="create"):
        batch.write(str(root / "missing" / "f"), "x")
