"""open-iscsi's link() lock: exclusion across processes and threads, re-entrancy, bounded
waits, and iscsikit's own stale locks (a foreign lock.write is waited for, never broken)."""

from __future__ import annotations

import multiprocessing
import os
import threading
import time
from pathlib import Path

import pytest

from iscsikit.errors import DatabaseError, IscsiErr
from iscsikit.records.lock import DbLock


def test_acquire_release_files(tmp_path: Path) -> None:
    lock = DbLock(tmp_path / "lockdir")
    with lock:
        assert lock.held
        write = tmp_path / "lockdir" / "lock.write"
        assert write.exists()
        assert os.stat(write).st_ino == os.stat(tmp_path / "lockdir" / "lock").st_ino
        assert (tmp_path / "lockdir" / "lock.iscsikit").read_text().split()[0] == str(os.getpid())
    assert not lock.held
    assert not (tmp_path / "lockdir" / "lock.write").exists()
    assert (tmp_path / "lockdir" / "lock").exists()  # open-iscsi keeps it
    assert oct(os.stat(tmp_path / "lockdir").st_mode & 0o777) == "0o700"


def test_reentrant_and_shared_by_instances(tmp_path: Path) -> None:
    a, b = DbLock(tmp_path), DbLock(tmp_path)
    with a, b, a:
        assert a.depth == 3 and b.held
    assert a.depth == 0 and not (tmp_path / "lock.write").exists()


def test_foreign_lock_write_is_waited_for_then_times_out(tmp_path: Path) -> None:
    """An iscsiadm holding the lock: lock.write with no iscsikit note."""
    (tmp_path / "lock").touch()
    os.link(tmp_path / "lock", tmp_path / "lock.write")
    lock = DbLock(tmp_path, timeout=0.3)
    start = time.monotonic()
    with pytest.raises(DatabaseError, match="Timeout on acquiring lock on DB") as info:
        lock.acquire()
    assert time.monotonic() - start >= 0.3
    assert info.value.code == IscsiErr.IDBM
    assert "another program (iscsiadm?)" in str(info.value)
    assert (tmp_path / "lock.write").exists()  # never broken
    os.unlink(tmp_path / "lock.write")
    with lock:
        pass


def test_foreign_lock_released_while_waiting(tmp_path: Path) -> None:
    (tmp_path / "lock").touch()
    os.link(tmp_path / "lock", tmp_path / "lock.write")
    timer = threading.Timer(0.2, os.unlink, [tmp_path / "lock.write"])
    timer.start()
    with DbLock(tmp_path, timeout=5):
        pass
    timer.join()


def _hold(lock_dir: str, ready: multiprocessing.synchronize.Event, seconds: float) -> None:
    with DbLock(Path(lock_dir)):
        ready.set()
        time.sleep(seconds)


def _die_holding(lock_dir: str) -> None:
    DbLock(Path(lock_dir)).acquire()
    os._exit(0)  # no release: a crash


def test_excludes_other_process(tmp_path: Path) -> None:
    ctx = multiprocessing.get_context("fork")
    ready = ctx.Event()
    proc = ctx.Process(target=_hold, args=(str(tmp_path), ready, 0.5))
    proc.start()
    assert ready.wait(10)
    with pytest.raises(DatabaseError, match="iscsikit process"):
        DbLock(tmp_path, timeout=0.1).acquire()
    start = time.monotonic()
    with DbLock(tmp_path, timeout=10):
        assert time.monotonic() - start > 0.1
    proc.join(10)


def test_stale_lock_of_dead_iscsikit_holder_is_broken(tmp_path: Path) -> None:
    ctx = multiprocessing.get_context("fork")
    proc = ctx.Process(target=_die_holding, args=(str(tmp_path),))
    proc.start()
    proc.join(10)
    assert (tmp_path / "lock.write").exists()
    start = time.monotonic()
    with DbLock(tmp_path, timeout=5):
        pass
    assert time.monotonic() - start < 1


def test_stale_note_does_not_break_a_newer_foreign_lock(tmp_path: Path) -> None:
    ctx = multiprocessing.get_context("fork")
    proc = ctx.Process(target=_die_holding, args=(str(tmp_path),))
    proc.start()
    proc.join(10)
    os.unlink(tmp_path / "lock.write")  # someone cleared it ...
    time.sleep(0.01)
    os.link(tmp_path / "lock", tmp_path / "lock.write")  # ... and an iscsiadm took it
    with pytest.raises(DatabaseError):
        DbLock(tmp_path, timeout=0.2).acquire()


def test_threads_are_serialised(tmp_path: Path) -> None:
    lock = DbLock(tmp_path, timeout=10)
    inside = []
    overlap = []

    def work() -> None:
        for _ in range(20):
            with lock:
                inside.append(1)
                if len(inside) > 1:
                    overlap.append(1)
                time.sleep(0.001)
                inside.pop()

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert overlap == []


def test_other_thread_waits_bounded(tmp_path: Path) -> None:
    lock = DbLock(tmp_path, timeout=0.2)
    errors = []
    with lock:

        def try_it() -> None:
            try:
                DbLock(tmp_path, timeout=0.2).acquire()
            except DatabaseError as exc:
                errors.append(exc)

        thread = threading.Thread(target=try_it)
        thread.start()
        thread.join()
    assert errors and "another thread" in str(errors[0])


def test_release_leaves_a_replaced_lock_alone(tmp_path: Path) -> None:
    """iscsiadm 2.1.8 carries on without the lock after 30 s and unlinks lock.write;
    whatever lock.write exists at our release is then not ours to remove."""
    lock = DbLock(tmp_path)
    lock.acquire()
    os.unlink(tmp_path / "lock.write")
    time.sleep(0.01)
    os.link(tmp_path / "lock", tmp_path / "lock.write")  # someone else's now
    lock.release()
    assert (tmp_path / "lock.write").exists()


def test_release_without_acquire(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError):
        DbLock(tmp_path).release()


def test_lock_dir_unusable(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    with pytest.raises(DatabaseError, match="Could not open"):
        DbLock(tmp_path / "file" / "sub").acquire()


def test_fork_child_does_not_inherit_the_lock(tmp_path: Path) -> None:
    lock = DbLock(tmp_path, timeout=0.2)
    with lock:
        pid = os.fork()
        if pid == 0:  # child: must not think it holds the lock
            code = 0 if not DbLock(tmp_path).held else 1
            os._exit(code)
        _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
