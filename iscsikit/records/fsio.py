"""Crash-safe file operations for the records store: atomic replacement, in batches.

Every record file is replaced, never rewritten in place: the new text goes to a
temporary file in the same directory (``.<name>.iscsikit-tmp.<pid>.<n>``, mode 0600),
which is made durable and then ``rename()``-d over the old name, and the directory is
made durable.  A reader sees the old file or the new one, never a mix; a crash leaves
the old or the new record, never a truncated one, plus at worst a temporary file that
the next writer removes (:func:`remove_temp_files`).

Durability is paid per *batch*, not per file: a :class:`WriteBatch` of a few files
``fsync()``-s each file and each directory it touched; a large one issues one
``syncfs()`` before the renames (the new data is on disk before any name points at it)
and one after (the renames are).  ``durable=False`` skips both (tests, scratch data).

**Symlinks are not followed for writing** (issue 14, "files as root").  Given the
database ``root``, every write -- a file replaced, a link made, a directory made or
removed, a file unlinked -- reaches its directory from ``root`` one component at a time
(``openat(..., O_DIRECTORY | O_NOFOLLOW)``) and then acts relative to that directory
(``openat``/``renameat``/``unlinkat``/``mkdirat``).  A symlink planted anywhere below
``root`` (``nodes/T/P,t -> /etc``) therefore stops the write with a DatabaseError
instead of letting it land outside the database, with no window between a check and
the use; the record file itself is replaced by ``rename()``, which replaces a link
rather than writing through it.  ``root`` itself may be a link (a packaged
``/etc/iscsi`` pointing elsewhere).  Reading follows links, as iscsiadm does.

Errors become :class:`~iscsikit.errors.DatabaseError` (code 6) naming the file.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import itertools
import os
import sys
from collections.abc import Callable, Iterable, Iterator

from iscsikit.errors import DatabaseError
from iscsikit.records.layout import TEMP_MARKER

__all__ = [
    "DIR_MODE",
    "FILE_MODE",
    "Remover",
    "WriteBatch",
    "db_error",
    "make_dirs",
    "open_dir",
    "read_text",
    "remove_empty_dir",
    "remove_temp_files",
    "sync_dirs",
    "unlink",
]

#: open-iscsi runs with umask 0077: record files 0600 (they hold CHAP secrets), dirs 0700.
FILE_MODE = 0o600
DIR_MODE = 0o700
#: From this many files on, one syncfs() beats an fsync() per file and directory.
SYNCFS_THRESHOLD = 16

_counter = itertools.count()
_syncfs_fn: Callable[[int], int] | None = None
_syncfs_missing = False


def db_error(action: str, path: str | os.PathLike[str], exc: OSError) -> DatabaseError:
    """A DatabaseError (6) that says what failed on which file."""
    return DatabaseError(f"Could not {action} {os.fspath(path)}: {exc.strerror or exc}")


_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC


def _refused_link(path: str) -> DatabaseError:
    return DatabaseError(f"Could not use {path}: a symbolic link, not followed for writing")


def _below(path: str, root: str) -> list[str]:
    """The components of ``path`` under ``root`` ([] for root itself); DatabaseError if
    ``path`` is not under it.  Paths here are built from the root by string (Layout):
    the common case is a plain prefix, without normalising."""
    root = root.rstrip("/") or "/"
    prefix = root if root == "/" else root + "/"
    if path.startswith(prefix) and "/." not in path[len(prefix) - 1 :] and "//" not in path:
        return path[len(prefix) :].split("/")
    rel = os.path.relpath(path, root)
    if rel == ".":
        return []
    if rel == ".." or rel.startswith("../"):
        raise DatabaseError(f"Could not use {path}: outside the database {root}")
    return rel.split(os.sep)


# openat2(2) (Linux 5.6+): a whole path below a directory in one call, failing with
# ELOOP at any symlink met (RESOLVE_NO_SYMLINKS) and EXDEV on a way out (RESOLVE_BENEATH)
# -- the same refusal as the walk in open_dir, one syscall instead of one per component.
# The syscall number is 437 on every architecture but alpha.
_SYS_OPENAT2 = 437 if sys.platform == "linux" and not os.uname().machine.startswith("alpha") else 0
_RESOLVE_NO_SYMLINKS = 0x04
_RESOLVE_BENEATH = 0x08


class _OpenHow(ctypes.Structure):
    _fields_ = [("flags", ctypes.c_uint64), ("mode", ctypes.c_uint64), ("resolve", ctypes.c_uint64)]


_openat2_fn: Callable[..., int] | None = None
_openat2_missing = _SYS_OPENAT2 == 0
_HOW = _OpenHow(_DIR_FLAGS, 0, _RESOLVE_NO_SYMLINKS | _RESOLVE_BENEATH)


def _openat2_dir(dir_fd: int, relative: str) -> int:
    """The directory ``relative`` below ``dir_fd`` reached through no symlink, or -1
    for anything but success (no kernel support, a link, a missing or odd component):
    the caller then walks component by component and reports what it meets."""
    global _openat2_fn, _openat2_missing  # noqa: PLW0603 - resolved once
    if _openat2_missing:
        return -1
    if _openat2_fn is None:
        try:
            fn = ctypes.CDLL(None, use_errno=True).syscall
        except (OSError, AttributeError):
            _openat2_missing = True
            return -1
        fn.restype = ctypes.c_long
        fn.argtypes = [
            ctypes.c_long,
            ctypes.c_int,
            ctypes.c_char_p,
            ctypes.POINTER(_OpenHow),
            ctypes.c_size_t,
        ]
        _openat2_fn = fn
    fd = _openat2_fn(
        _SYS_OPENAT2,
        dir_fd,
        os.fsencode(relative),
        ctypes.byref(_HOW),
        ctypes.sizeof(_HOW),
    )
    if fd < 0 and ctypes.get_errno() in (errno.ENOSYS, errno.EPERM):
        _openat2_missing = True  # an old kernel, or a seccomp filter refusing it
    return int(fd)


def open_root(root: str) -> int:
    """A descriptor of the database root (links followed: ``root`` itself may be one),
    to pass as ``root_fd`` to several calls below; FileNotFoundError or DatabaseError."""
    try:
        return os.open(root, _DIR_FLAGS)
    except FileNotFoundError:
        raise
    except OSError as exc:
        raise db_error("open directory", root, exc) from exc


def open_dir(
    directory: str, root: str | None, *, create: bool = False, root_fd: int | None = None
) -> int:
    """A descriptor of ``directory``, reached from ``root`` without following a symlink
    below it (see the module doc; ``root`` None: opened as a plain path).  ``create``
    makes missing directories (0700) on the way.  FileNotFoundError if one is missing;
    DatabaseError for a symlink, a non-directory or an I/O error.  ``root_fd``: an
    open descriptor of ``root`` (:func:`open_root`) to start from, saving its open."""
    if root is None:
        try:
            return os.open(directory, _DIR_FLAGS)
        except FileNotFoundError:
            raise
        except OSError as exc:
            raise db_error("open directory", directory, exc) from exc
    parts = _below(directory, root)
    if parts and not create:
        start = open_root(root) if root_fd is None else root_fd
        try:
            fd = _openat2_dir(start, "/".join(parts))
        finally:
            if root_fd is None:
                os.close(start)
        if fd >= 0:
            return fd
    fd = open_root(root)
    walked = root
    try:
        for part in parts:
            walked = f"{walked}/{part}"
            if create:
                with contextlib.suppress(FileExistsError):
                    os.mkdir(part, DIR_MODE, dir_fd=fd)
            try:
                child = os.open(part, _DIR_FLAGS | os.O_NOFOLLOW, dir_fd=fd)
            except OSError as exc:
                if exc.errno in (errno.ELOOP, errno.ENOTDIR) and os.path.islink(walked):
                    raise _refused_link(walked) from exc
                if isinstance(exc, FileNotFoundError):
                    raise
                if exc.errno == errno.ENOTDIR:
                    notdir = OSError(errno.ENOTDIR, os.strerror(errno.ENOTDIR))
                    raise db_error("use as a directory", walked, notdir) from exc
                raise db_error("open directory", walked, exc) from exc
            os.close(fd)
            fd = child
    except BaseException:
        os.close(fd)
        raise
    return fd


def read_text(path: str) -> str | None:
    """The file's text (UTF-8, undecodable bytes kept as surrogates), None if missing."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise db_error("open", path, exc) from exc
    try:
        chunks = []
        while True:
            data = os.read(fd, 65536)
            if not data:
                break
            chunks.append(data)
    except OSError as exc:
        raise db_error("read", path, exc) from exc
    finally:
        os.close(fd)
    return b"".join(chunks).decode("utf-8", "surrogateescape")


def _syncfs(path: str) -> None:
    """syncfs(2) on the filesystem holding ``path`` (Linux); os.sync() elsewhere."""
    global _syncfs_fn, _syncfs_missing  # noqa: PLW0603 - resolved once
    if _syncfs_fn is None and not _syncfs_missing:
        try:
            _syncfs_fn = ctypes.CDLL(None, use_errno=True).syncfs
        except (OSError, AttributeError):
            _syncfs_missing = True
    if _syncfs_fn is None:
        os.sync()
        return
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        if _syncfs_fn(fd) != 0:
            err = ctypes.get_errno()
            raise db_error("sync the filesystem of", path, OSError(err, os.strerror(err)))
    finally:
        os.close(fd)


def _fsync_path(path: str) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def sync_dirs(dirs: Iterable[str], *, many: bool = False) -> None:
    """Make entries created in or removed from ``dirs`` durable."""
    dirs = list(dict.fromkeys(dirs))
    if not dirs:
        return
    if many or len(dirs) >= SYNCFS_THRESHOLD:
        _syncfs(dirs[0])
        return
    for directory in dirs:
        try:
            _fsync_path(directory)
        except FileNotFoundError:
            continue  # removed since (an empty directory we rmdir-ed)
        except OSError as exc:
            raise db_error("sync", directory, exc) from exc


def make_dirs(path: str, created: list[str] | None = None, *, root: str | None = None) -> None:
    """``mkdir -p`` with mode 0700; appends each directory's parent it created in to
    ``created`` (for durability).  With ``root``: below it, through no symlink."""
    if root is not None:
        _make_dirs_below(path, created, root)
        return
    try:
        os.mkdir(path, DIR_MODE)
    except FileExistsError as exc:
        if not os.path.isdir(path):
            notdir = OSError(errno.ENOTDIR, os.strerror(errno.ENOTDIR))
            raise db_error("use as a directory", path, notdir) from exc
        return
    except FileNotFoundError:
        make_dirs(os.path.dirname(path), created)
        try:
            os.mkdir(path, DIR_MODE)
        except FileExistsError:
            return
        except OSError as exc:
            raise db_error("make directory", path, exc) from exc
    except OSError as exc:
        raise db_error("make directory", path, exc) from exc
    if created is not None:
        created.append(os.path.dirname(path))


def _make_dirs_below(path: str, created: list[str] | None, root: str) -> None:
    parts = _below(path, root)
    walked = root
    for part in parts:
        parent, walked = walked, f"{walked}/{part}"
        if os.path.isdir(walked) and not os.path.islink(walked):
            continue
        fd = open_dir(parent, root)
        try:
            os.mkdir(part, DIR_MODE, dir_fd=fd)
        except FileExistsError:
            pass  # a link or a file: open_dir below says which
        except OSError as exc:
            raise db_error("make directory", walked, exc) from exc
        else:
            if created is not None:
                created.append(parent)
        finally:
            os.close(fd)
    if parts:
        os.close(open_dir(path, root))  # refuses a link or a file met above


def unlink(path: str, *, root: str | None = None, root_fd: int | None = None) -> bool:
    """Remove a file or link; False if it was not there.  With ``root``: its directory
    reached through no symlink below ``root`` (``root_fd``: see :func:`open_dir`)."""
    head, tail = os.path.split(path)
    try:
        fd = open_dir(head, root, root_fd=root_fd) if root is not None else None
    except FileNotFoundError:
        return False
    try:
        os.unlink(tail if fd is not None else path, dir_fd=fd)
    except FileNotFoundError:
        return False
    except OSError as exc:
        raise db_error("remove", path, exc) from exc
    finally:
        if fd is not None:
            os.close(fd)
    return True


def remove_empty_dir(path: str, *, root: str | None = None, root_fd: int | None = None) -> bool:
    """rmdir if empty (usr/idbm.c removes a node's portal and target dirs this way);
    with ``root``, through no symlink below it (a link is never removed as a dir)."""
    head, tail = os.path.split(path)
    try:
        fd = open_dir(head, root, root_fd=root_fd) if root is not None else None
    except FileNotFoundError:
        return False
    try:
        os.rmdir(tail if fd is not None else path, dir_fd=fd)
    except OSError as exc:
        if exc.errno in (errno.ENOENT, errno.ENOTEMPTY, errno.EEXIST, errno.ENOTDIR):
            return False
        raise db_error("remove directory", path, exc) from exc
    finally:
        if fd is not None:
            os.close(fd)
    return True


class Remover:
    """:func:`unlink` and :func:`remove_empty_dir` for many paths below ``root``, with
    the last few directories kept open (a node's portal and target directory, the
    directory above them): a directory is opened from its open parent
    (``O_NOFOLLOW``, one component), else from the root as :func:`open_dir` does, which
    also reports whatever refuses the fast way.  Use as a context manager."""

    #: Directories kept open at most.
    KEEP = 8

    def __init__(self, root: str) -> None:
        self.root = root
        self._fds: dict[str, int] = {}  # path -> fd, least recently used first
        self._root_fd: int | None = None

    def __enter__(self) -> Remover:
        return self

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        for fd in self._fds.values():
            os.close(fd)
        self._fds.clear()
        if self._root_fd is not None:
            os.close(self._root_fd)
            self._root_fd = None

    def _dir(self, directory: str) -> int:
        fd = self._fds.pop(directory, None)
        if fd is None:
            fd = self._open(directory)
        self._fds[directory] = fd
        if len(self._fds) > self.KEEP:
            oldest = next(iter(self._fds))
            os.close(self._fds.pop(oldest))
        return fd

    def _open(self, directory: str) -> int:
        parent, _, name = directory.rpartition("/")
        parent_fd = self._fds.get(parent)
        if parent_fd is not None and name not in ("", ".", ".."):
            try:
                return os.open(name, _DIR_FLAGS | os.O_NOFOLLOW, dir_fd=parent_fd)
            except OSError:
                pass  # a link, a file, missing: the walk from the root says which
        if self._root_fd is None:
            self._root_fd = open_root(self.root)
        return open_dir(directory, self.root, root_fd=self._root_fd)

    def _parent(self, path: str) -> tuple[int, str] | None:
        """The open directory of ``path`` and its last component; None if missing."""
        head, _, tail = path.rpartition("/")
        try:
            return self._dir(head), tail
        except FileNotFoundError:
            return None

    def unlink(self, path: str) -> bool:
        """:func:`unlink` ``path`` (below the root): False if it was not there."""
        if (found := self._parent(path)) is None:
            return False
        fd, tail = found
        try:
            os.unlink(tail, dir_fd=fd)
        except FileNotFoundError:
            return False
        except OSError as exc:
            raise db_error("remove", path, exc) from exc
        return True

    def remove_empty_dir(self, path: str) -> bool:
        """:func:`remove_empty_dir` ``path`` (below the root)."""
        if (found := self._parent(path)) is None:
            return False
        fd, tail = found
        try:
            os.rmdir(tail, dir_fd=fd)
        except OSError as exc:
            if exc.errno in (errno.ENOENT, errno.ENOTEMPTY, errno.EEXIST, errno.ENOTDIR):
                return False
            raise db_error("remove directory", path, exc) from exc
        gone = self._fds.pop(path, None)
        if gone is not None:
            os.close(gone)
        return True


def _walk_dirs(root: str, depth: int) -> Iterator[str]:
    yield root
    if depth == 0:
        return
    try:
        entries = list(os.scandir(root))
    except (FileNotFoundError, NotADirectoryError):
        return
    for entry in entries:
        if entry.is_dir(follow_symlinks=False):
            yield from _walk_dirs(entry.path, depth - 1)


def remove_temp_files(roots: Iterable[tuple[str, int]], *, root: str | None = None) -> list[str]:
    """Delete temporary files a crashed writer left, under ``(directory, depth)`` roots
    (with ``root``: none reached through a symlink below it; those are left alone).

    Only call this with the database lock held: then no live iscsikit writer has
    temporary files.
    """
    removed = []
    for top, depth in roots:
        for directory in _walk_dirs(top, depth):
            try:
                names = os.listdir(directory)
            except (FileNotFoundError, NotADirectoryError):
                continue
            for name in names:
                if TEMP_MARKER in name:
                    path = os.path.join(directory, name)
                    try:
                        gone = unlink(path, root=root)
                    except DatabaseError:
                        continue  # under a planted link: not ours
                    if gone:
                        removed.append(path)
    return removed


class WriteBatch:
    """Whole-file replacements and symlinks, staged then committed (see module doc).

    Directories the files go to must exist (:func:`make_dirs`).  Use as a context
    manager: leaving the block without :meth:`commit` (an exception) removes the
    temporary files and leaves every old file untouched.
    """

    def __init__(self, *, durable: bool = True, root: str | os.PathLike[str] | None = None) -> None:
        self.durable = durable
        #: The database root: every directory written in is reached from it through no
        #: symlink (see the module doc); None: plain paths.
        self.root = os.fspath(root) if root is not None else None
        self._staged: list[tuple[str, str]] = []  # (temp, final)
        self.dirs: list[str] = []  # directories whose entries changed
        self._dir: tuple[str, int] | None = None  # the last directory opened
        self._root_fd: int | None = None  # the root, open while the batch works

    def __enter__(self) -> WriteBatch:
        return self

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        self.abort()
        self._close_all()

    def _dir_fd(self, directory: str) -> int | None:
        """``directory`` opened from the root (kept for the next call), or None."""
        if self.root is None:
            return None
        if self._dir is not None and self._dir[0] == directory:
            return self._dir[1]
        self._close_dir()
        try:
            if self._root_fd is None:
                self._root_fd = open_root(self.root)
            fd = open_dir(directory, self.root, root_fd=self._root_fd)
        except FileNotFoundError as exc:
            raise db_error("open directory", directory, exc) from exc
        self._dir = (directory, fd)
        return fd

    def _close_dir(self) -> None:
        if self._dir is not None:
            os.close(self._dir[1])
            self._dir = None

    def _close_all(self) -> None:
        self._close_dir()
        if self._root_fd is not None:
            os.close(self._root_fd)
            self._root_fd = None

    def __len__(self) -> int:
        return len(self._staged)

    def _temp_name(self, path: str) -> str:
        head, tail = os.path.split(path)
        return f"{head}/.{tail}{TEMP_MARKER}{os.getpid()}.{next(_counter)}"

    def write(self, path: str, text: str) -> None:
        """Stage ``path`` := ``text`` (mode 0600)."""
        temp = self._temp_name(path)
        data = text.encode("utf-8", "surrogateescape")
        dir_fd = self._dir_fd(os.path.dirname(path))
        try:
            fd = os.open(
                temp if dir_fd is None else os.path.basename(temp),
                os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC | os.O_NOFOLLOW,
                FILE_MODE,
                dir_fd=dir_fd,
            )
        except OSError as exc:
            raise db_error("create", temp, exc) from exc
        self._staged.append((temp, path))
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
        except OSError as exc:
            raise db_error("write", temp, exc) from exc
        finally:
            os.close(fd)

    def symlink(self, path: str, target: str) -> None:
        """Stage a symlink ``path`` -> ``target`` (replacing whatever ``path`` is).

        A new link is made in place at once (``symlink()`` is atomic: the link appears
        whole); only replacing one needs a temporary name and a rename.
        """
        dir_fd = self._dir_fd(os.path.dirname(path))
        name = path if dir_fd is None else os.path.basename(path)
        try:
            if os.readlink(name, dir_fd=dir_fd) == target:
                return
        except FileNotFoundError:
            try:
                os.symlink(target, name, dir_fd=dir_fd)
            except OSError as exc:
                raise db_error("create link", path, exc) from exc
            self.dirs.append(os.path.dirname(path))
            return
        except OSError:
            pass
        temp = self._temp_name(path)
        try:
            os.symlink(target, temp if dir_fd is None else os.path.basename(temp), dir_fd=dir_fd)
        except OSError as exc:
            raise db_error("create link", temp, exc) from exc
        self._staged.append((temp, path))

    def commit(self) -> None:
        """Make every staged file durable, then rename each into place."""
        staged, self._staged = self._staged, []
        if not staged:
            if self.durable:
                sync_dirs(self.dirs)
            self.dirs = []
            return
        many = len(staged) >= SYNCFS_THRESHOLD
        try:
            if self.durable:
                if many:
                    _syncfs(staged[0][0])
                else:
                    for temp, _ in staged:
                        if not os.path.islink(temp):
                            _fsync_path(temp)
        except OSError as exc:
            self._staged = staged
            raise db_error("sync", staged[0][0], exc) from exc
        done = 0
        try:
            for temp, final in staged:
                dir_fd = self._dir_fd(os.path.dirname(final))
                if dir_fd is None:
                    os.replace(temp, final)
                else:
                    old, new = os.path.basename(temp), os.path.basename(final)
                    os.replace(old, new, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
                done += 1
        except (OSError, DatabaseError) as exc:
            self._staged = staged[done:]
            if isinstance(exc, DatabaseError):
                raise
            raise db_error("replace", staged[done][1], exc) from exc
        finally:
            self._close_all()
            self.dirs.extend(os.path.dirname(final) for _, final in staged[:done])
        if self.durable:
            sync_dirs(self.dirs, many=many)
        self.dirs = []

    def abort(self) -> None:
        """Remove the temporary files of everything not committed."""
        staged, self._staged = self._staged, []
        for temp, _ in staged:
            with contextlib.suppress(OSError, DatabaseError):
                unlink(temp, root=self.root)
