"""The database write lock, shared with a concurrently running open-iscsi iscsiadm.

open-iscsi's protocol (usr/idbm.c ``idbm_lock``; lock dir ``/run/lock/iscsi``): create
``<lock_dir>/lock`` if missing, then ``link(lock, lock.write)``; whoever creates
``lock.write`` holds the lock, and ``unlink(lock.write)`` releases it.  A writer that
finds ``lock.write`` retries every 10 ms, 3000 times (30 s).  iscsikit speaks exactly
this protocol, so an iscsiadm and iscsikit never write the database at the same time.

On top of it:

* **Threads and re-entrancy.**  The link lock belongs to a process, so within one
  process a re-entrant mutex (one per lock directory, shared by every :class:`DbLock`
  on it) serialises threads, and nested acquisitions by the holding thread only count
  (as open-iscsi's ``db->refs`` does).  Every wait -- for the mutex and for
  ``lock.write`` -- is bounded by the timeout.  A forked child starts without the lock.
* **Timeout.**  After ``timeout`` seconds (default 30, as open-iscsi) acquisition fails
  with :class:`~iscsikit.errors.DatabaseError` (code 6) "Timeout on acquiring lock on
  DB", naming the file, how long it has been held and by whom if known.  iscsiadm
  2.1.8 itself does something else (checked with the oracle): after its 30 s it carries
  on *without* the lock and unlinks ``lock.write`` when done.  iscsikit never does
  that; and so that such an iscsiadm cannot make iscsikit remove a lock it no longer
  owns, release only unlinks ``lock.write`` if it is still the holder's.
* **Stale locks.**  ``lock.write`` carries no owner, so a holder that died leaves it
  behind and open-iscsi waits it out.  iscsikit recognises its *own* dead holders: a
  holder keeps an ``flock`` on the ``lock.write`` inode while it holds it, and writes
  ``<lock_dir>/lock.iscsikit`` with its pid and the inode's ctime right after its
  ``link()`` (``link`` and ``unlink`` change the ctime of the shared inode, so the note
  matches only the acquisition that wrote it).  A waiter that finds a note matching the
  current ``lock.write``, no flock on it and the noted pid gone, removes ``lock.write``
  at once.  Any other ``lock.write`` (an iscsiadm, or an unknown writer) is waited for,
  never broken.
* **Planted links.**  The lock directory (``/run/lock`` is world-writable) and the files
  in it are never followed through a symlink: a lock directory that is a link, or a
  ``lock`` / ``lock.write`` / owner note that is one, fails with DatabaseError (6) or is
  ignored (the note), instead of creating, opening or truncating the file it points to.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import threading
import time
from pathlib import Path
from types import TracebackType

from iscsikit.errors import DatabaseError

__all__ = ["DEFAULT_TIMEOUT", "LOCK_NAME", "LOCK_WRITE_NAME", "OWNER_NAME", "DbLock"]

LOCK_NAME = "lock"
LOCK_WRITE_NAME = "lock.write"
#: iscsikit's note on who holds lock.write (iscsiadm ignores it).
OWNER_NAME = "lock.iscsikit"
#: usr/idbm.c: 3000 tries, 10 ms apart.
DEFAULT_TIMEOUT = 30.0
RETRY_INTERVAL = 0.01


def _warn(message: str, *args: object) -> None:
    """Log a warning; ``logging`` is imported only then (it costs the CLI ~4 ms)."""
    import logging

    logging.getLogger(__name__).warning(message, *args)


class _State:
    """Per lock directory, per process: who holds the link lock and how deeply."""

    mutex: threading.RLock
    owner: int | None
    depth: int
    fd: int | None
    ident: tuple[int, int, int] | None  # st_dev, st_ino, st_ctime_ns of lock.write

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.mutex = threading.RLock()
        self.owner = None
        self.depth = 0
        self.fd = None
        self.ident = None


_STATES: dict[str, _State] = {}
_STATES_GUARD = threading.Lock()


def _reset_after_fork() -> None:
    for state in _STATES.values():
        if state.fd is not None:
            with contextlib.suppress(OSError):
                os.close(state.fd)
        state.reset()


os.register_at_fork(after_in_child=_reset_after_fork)


def _state_for(lock_dir: Path) -> _State:
    key = os.path.realpath(lock_dir)
    with _STATES_GUARD:
        state = _STATES.get(key)
        if state is None:
            state = _STATES[key] = _State()
        return state


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class DbLock:
    """open-iscsi's ``lock``/``lock.write`` lock in ``lock_dir`` (see the module docstring).

    Use as a context manager, or :meth:`acquire` / :meth:`release`.
    """

    def __init__(
        self, lock_dir: Path, *, timeout: float = DEFAULT_TIMEOUT, interval: float = RETRY_INTERVAL
    ) -> None:
        self.lock_dir = Path(lock_dir)
        self.timeout = timeout
        self.interval = interval
        self.lock_file = str(self.lock_dir / LOCK_NAME)
        self.write_file = str(self.lock_dir / LOCK_WRITE_NAME)
        self.owner_file = str(self.lock_dir / OWNER_NAME)
        self._state = _state_for(self.lock_dir)

    @property
    def depth(self) -> int:
        """How many nested acquisitions the holder has made (0: not held)."""
        return self._state.depth

    @property
    def held(self) -> bool:
        """Whether the calling thread holds the lock."""
        state = self._state
        return state.depth > 0 and state.owner == threading.get_ident()

    def __enter__(self) -> DbLock:
        self.acquire()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()

    def acquire(self, timeout: float | None = None) -> None:
        """Take the lock, waiting at most ``timeout`` seconds (default: the lock's)."""
        wait = self.timeout if timeout is None else timeout
        deadline = time.monotonic() + wait
        state = self._state
        if not state.mutex.acquire(timeout=max(wait, 0.0)):
            raise DatabaseError(
                f"Timeout on acquiring lock on DB: {self.write_file} "
                "(held by another thread of this process)"
            )
        if state.depth:
            state.depth += 1
            return
        try:
            self._link(deadline)
        except BaseException:
            state.mutex.release()
            raise
        state.owner = threading.get_ident()
        state.depth = 1

    def release(self) -> None:
        state = self._state
        if not self.held:
            raise RuntimeError(f"{self.write_file} is not held by this thread")
        if state.depth > 1:
            state.depth -= 1
            state.mutex.release()
            return
        try:
            self._unlink()
        finally:
            state.depth = 0
            state.owner = None
            state.mutex.release()

    # -- the link protocol --------------------------------------------------------------

    def _link(self, deadline: float) -> None:
        try:
            os.makedirs(self.lock_dir, mode=0o700, exist_ok=True)
            if os.path.islink(self.lock_dir):
                raise OSError(errno.ELOOP, "a symbolic link, not followed")
            # O_NOFOLLOW: a "lock" planted as a link to another file is refused, not
            # created or opened there (link() below never follows one either).
            flags = os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW
            os.close(os.open(self.lock_file, flags, 0o600))
        except OSError as exc:
            where = self.lock_dir if os.path.islink(self.lock_dir) else self.lock_file
            raise DatabaseError(f"Could not open {where}: {exc.strerror}") from exc
        while True:
            try:
                os.link(self.lock_file, self.write_file)
                break
            except FileExistsError:
                pass
            except OSError as exc:
                raise DatabaseError(
                    f"Could not lock discovery DB: {self.write_file}: {exc.strerror}"
                ) from exc
            if self._break_if_stale():
                continue
            if time.monotonic() >= deadline:
                raise DatabaseError(self._timeout_message())
            time.sleep(self.interval)
        self._mark_held()

    def _mark_held(self) -> None:
        """flock the inode we now hold and leave the owner note (both best effort)."""
        state = self._state
        fd = os.open(self.write_file, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW)
        info = os.fstat(fd)
        state.fd = fd
        state.ident = (info.st_dev, info.st_ino, info.st_ctime_ns)
        for _ in range(100):  # a breaker holds the flock for microseconds only
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                time.sleep(0.001)
        else:
            return  # no note: nobody will take this lock for a dead one
        tmp = f"{self.owner_file}.{os.getpid()}"
        try:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)  # a left-over note, or a link planted to be written through
            flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
            note = os.open(tmp, flags, 0o600)
            try:
                os.write(note, f"{os.getpid()} {info.st_ctime_ns}\n".encode())
            finally:
                os.close(note)
            os.replace(tmp, self.owner_file)
        except OSError:
            with contextlib.suppress(OSError):
                os.unlink(tmp)

    def _unlink(self) -> None:
        state = self._state
        try:
            try:
                info = os.stat(self.write_file)
            except FileNotFoundError:
                info = None
            if info is not None and state.ident == (info.st_dev, info.st_ino, info.st_ctime_ns):
                os.unlink(self.write_file)
            else:
                _warn(
                    "%s was removed or replaced while iscsikit held it (an iscsiadm that "
                    "timed out waiting?); leaving it alone",
                    self.write_file,
                )
        except OSError as exc:
            raise DatabaseError(f"Could not unlock {self.write_file}: {exc.strerror}") from exc
        finally:
            if state.fd is not None:
                os.close(state.fd)  # after the unlink: drops the flock
                state.fd = None
            state.ident = None

    def _owner_note(self) -> tuple[int, int] | None:
        try:
            fd = os.open(self.owner_file, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW)
            with open(fd, encoding="ascii") as note:
                pid, ctime = note.read(64).split()
            return int(pid), int(ctime)
        except (OSError, ValueError):
            return None

    def _break_if_stale(self) -> bool:
        """Remove a lock.write left by a dead iscsikit holder; True if it is gone."""
        note = self._owner_note()
        if note is None:
            return False
        pid, ctime = note
        try:
            fd = os.open(self.write_file, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW)
        except FileNotFoundError:
            return True
        except OSError:
            return False
        try:
            info = os.fstat(fd)
            if info.st_ctime_ns != ctime or _pid_alive(pid):
                return False
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return False  # a live holder (in another PID namespace?)
            current = os.stat(self.write_file)
            if (current.st_ino, current.st_ctime_ns) != (info.st_ino, ctime):
                return False
            os.unlink(self.write_file)
            _warn("removed stale %s left by iscsikit process %d", self.write_file, pid)
            return True
        except FileNotFoundError:
            return True
        except OSError:
            return False
        finally:
            os.close(fd)

    def _timeout_message(self) -> str:
        held = ""
        try:
            info = os.stat(self.write_file)
            age = time.time() - info.st_ctime_ns / 1e9
            note = self._owner_note()
            who = (
                f"iscsikit process {note[0]}"
                if note is not None and note[1] == info.st_ctime_ns
                else "another program (iscsiadm?)"
            )
            held = f"; held for {age:.1f} s by {who}"
        except OSError:
            pass
        return (
            f"Timeout on acquiring lock on DB: {self.write_file}{held}. If no iscsiadm or "
            f"iscsikit is running, remove {self.write_file}"
        )
