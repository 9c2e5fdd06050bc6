"""A cache of the node tree's directory names, validated by directory times.

Listing 10,000 nodes reads ~20,000 directories (``nodes/``, ``nodes/<target>/``,
``nodes/<target>/<portal>/``).  A directory's entries change only together with its
``st_mtime`` and ``st_ctime``, so a listing made earlier is still the listing when every
directory it read has the ``(st_dev, st_ino, st_mtime_ns, st_ctime_ns)`` it had: one
``stat()`` per directory (relative to ``nodes/``, a short path walk) instead of a
``listdir()``, and no name parsed.  Any difference and the tree is walked again, and the
cache rewritten.  Only the whole, unfiltered listing is cached, and only a tree without
old-style records (their iface is read from the file) or malformed names (the walk
reports those).

**Racily clean entries** (git's rule, Documentation/technical/racy-git.txt).  File
timestamps come from a coarse clock: a directory changed in the same clock tick as (but
after) the listing keeps the times recorded with it.  An entry is therefore stored only
when the directory's mtime and ctime are older than the start of the listing by more
than the filesystem's timestamp granularity (:data:`MARGIN_NS`; :data:`COARSE_MARGIN_NS`
where the times carry no nanoseconds); any later change then gives the directory a
newer time.  After a change just before a listing, the next one walks the tree again.
``touch -d`` restoring an mtime still changes the ctime; a directory replaced by
another has another inode.  This needs a local filesystem (one clock, no attribute
caching): the cache is used only where ``statfs(2)`` names one (:data:`LOCAL_FS`:
ext2/3/4, xfs, btrfs, f2fs, tmpfs); on NFS, CIFS, FUSE and the rest every listing walks.

**Where the cache lives.**  Never inside ``nodes/`` or any directory iscsiadm reads:
the file is ``<run_dir>/records-cache/nodes-<key>`` (``/run/iscsikit/...`` for the
system database; the key names the database by path, device and inode).  It is written
atomically (a temporary file renamed over it) and used only if it is a regular file
owned by this user, not readable or writable by others, in a directory that is not a
link, owned by this user and not writable by others, and its checksum holds; anything
else (missing, truncated, corrupt, a link, a foreign owner, a loose mode) is ignored
and the tree is read.  The cache is a hint: losing it costs one full listing.
"""

from __future__ import annotations

import contextlib
import ctypes
import marshal
import os
import stat
import sys
import time
from collections.abc import Callable

__all__ = ["COARSE_MARGIN_NS", "LOCAL_FS", "MARGIN_NS", "NameCache", "Recorder", "fs_type"]


def _blake2b(data: bytes, digest_size: int) -> bytes:
    """BLAKE2b of ``data``; hashlib is imported on first use (it costs the CLI ~4 ms)."""
    import hashlib

    return hashlib.blake2b(data, digest_size=digest_size).digest()


#: Granularity allowance for filesystems with nanosecond times: a coarse-clock tick is
#: at most 10 ms (HZ=100); this leaves ten of them.
MARGIN_NS = 100_000_000
#: For times without nanoseconds (1 s or, FAT, 2 s granularity).
COARSE_MARGIN_NS = 3_000_000_000

#: statfs(2) f_type of the filesystems whose directory times the cache trusts.
LOCAL_FS = frozenset({0xEF53, 0x58465342, 0x9123683E, 0xF2F52010, 0x01021994})

_MAGIC = b"iscsikit-names 1\n"
_DIGEST = 32
_CACHE_DIR = "records-cache"

#: (st_dev, st_ino, st_mtime_ns, st_ctime_ns, names)
#: (st_dev, st_ino, st_mtime_ns, st_ctime_ns) of a directory
_Key = tuple[int, int, int, int]
#: A node id as stored: (target, address, port, tpgt, iface)
_Node = tuple[str, str, int, int, str]


def fs_type(path: str) -> int | None:
    """``statfs(2)``'s f_type of the filesystem holding ``path`` (None if unknown)."""
    if sys.platform != "linux":
        return None
    try:
        statfs = ctypes.CDLL(None, use_errno=True).statfs
    except (OSError, AttributeError):
        return None
    buf = ctypes.create_string_buffer(256)  # struct statfs: 120 bytes on 64-bit Linux
    if statfs(os.fsencode(path), buf) != 0:
        return None
    return int(ctypes.c_long.from_buffer(buf).value)


def _margin(st: os.stat_result) -> int:
    if st.st_mtime_ns % 1_000_000_000 or st.st_ctime_ns % 1_000_000_000:
        return MARGIN_NS
    return COARSE_MARGIN_NS


def _key(st: os.stat_result) -> _Key:
    return (st.st_dev, st.st_ino, st.st_mtime_ns, st.st_ctime_ns)


class NameCache:
    """The node listing of one database, kept in ``run_dir`` (see the module doc).
    ``clock``: the time a walk starts at (nanoseconds, the filesystems' clock)."""

    def __init__(
        self,
        db_root: str,
        run_dir: str,
        *,
        clock: Callable[[], int] = time.time_ns,
    ) -> None:
        self.db_root = db_root
        self.directory = os.path.join(run_dir, _CACHE_DIR)
        self.clock = clock
        #: Directories checked by the last :meth:`load` that returned the listing.
        self.checked = 0

    def path(self) -> str | None:
        """The cache file of this database (None if the database root is missing)."""
        try:
            st = os.stat(self.db_root)
        except OSError:
            return None
        ident = f"{os.path.realpath(self.db_root)}\0{st.st_dev}\0{st.st_ino}".encode(
            "utf-8", "surrogateescape"
        )
        key = _blake2b(ident, 12).hex()
        return os.path.join(self.directory, f"nodes-{key}")

    def load(self, top: str) -> list[_Node] | None:
        """The cached listing of the tree at ``top`` if every directory it was made
        from is unchanged, else None."""
        path = self.path()
        if fs_type(top) not in LOCAL_FS:
            return None
        data = self._read(path) if path is not None else None
        if not isinstance(data, tuple) or len(data) != 4:
            return None
        stored_top, rels, keys, nodes = data
        if (
            stored_top != top
            or not isinstance(rels, list)
            or not isinstance(keys, list)
            or not isinstance(nodes, list)
            or len(rels) != len(keys)
            or not all(type(n) is tuple and len(n) == 5 for n in nodes)
        ):
            return None
        try:
            fd = os.open(top, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        except OSError:
            return None
        try:
            stat_at = os.stat
            for rel, key in zip(rels, keys, strict=True):
                st = stat_at(rel, dir_fd=fd)
                if (st.st_dev, st.st_ino, st.st_mtime_ns, st.st_ctime_ns) != key:
                    return None
        except (OSError, TypeError, ValueError):
            return None
        finally:
            os.close(fd)
        self.checked = len(rels)
        return nodes

    def store(self, top: str, read: list[str], nodes: list[_Node], started: int) -> bool:
        """Keep ``nodes``, the listing of ``top`` made from the directories ``read`` by
        a walk that began at ``started``; returns whether it was kept.

        Each directory is stat()-ed now, after the walk: a directory changed after it
        was read has a time no older than ``started`` minus one clock tick, so it is
        racily clean -- and then nothing is kept (the walk stops at the first such
        directory: right after a write that is the first one written to).
        """
        prefix = top.rstrip("/") + "/"
        rels, keys = [], []
        if fs_type(top) not in LOCAL_FS:
            return False
        try:
            fd = os.open(top, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        except OSError:
            return False
        try:
            for directory in read:
                if directory == top:
                    rel = "."
                elif directory.startswith(prefix):
                    rel = directory[len(prefix) :]
                else:
                    return False
                st = os.stat(rel, dir_fd=fd)
                limit = started - _margin(st)
                if (
                    not stat.S_ISDIR(st.st_mode)
                    or st.st_mtime_ns >= limit
                    or st.st_ctime_ns >= limit
                ):
                    return False
                rels.append(rel)
                keys.append(_key(st))
        except OSError:
            return False
        finally:
            os.close(fd)
        path = self.path()
        if path is None:
            return False
        return self._write(path, (top, rels, keys, nodes))

    # -- file ---------------------------------------------------------------------------

    def _dir_ok(self) -> bool:
        try:
            st = os.lstat(self.directory)
        except OSError:
            return False
        return stat.S_ISDIR(st.st_mode) and st.st_uid == os.geteuid() and not st.st_mode & 0o022

    def _read(self, path: str) -> object:
        """The stored object, or None unless the file is trustworthy (module doc)."""
        if not self._dir_ok():
            return None
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        except OSError:
            return None
        try:
            st = os.fstat(fd)
            if (
                not stat.S_ISREG(st.st_mode)
                or st.st_uid != os.geteuid()
                or st.st_mode & 0o077
                or st.st_size > 1 << 30
            ):
                return None
            with os.fdopen(os.dup(fd), "rb") as f:
                data = f.read()
        except OSError:
            return None
        finally:
            os.close(fd)
        head = len(_MAGIC)
        if not data.startswith(_MAGIC) or len(data) < head + _DIGEST:
            return None
        digest, payload = data[head : head + _DIGEST], data[head + _DIGEST :]
        if _blake2b(payload, _DIGEST) != digest:
            return None  # truncated or corrupt: marshal never sees it
        try:
            return marshal.loads(payload)
        except (EOFError, ValueError, TypeError):
            return None

    def _write(self, path: str, value: tuple[str, list[str], list[_Key], list[_Node]]) -> bool:
        """Replace the cache file atomically (best effort: a cache that cannot be
        written is no error, the next listing walks the tree)."""
        with contextlib.suppress(OSError):
            os.makedirs(self.directory, 0o700, exist_ok=True)
        if not self._dir_ok():
            return False
        payload = marshal.dumps(value)
        data = _MAGIC + _blake2b(payload, _DIGEST) + payload
        temp = f"{path}.tmp.{os.getpid()}"
        try:
            fd = os.open(
                temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600
            )
        except OSError:
            return False
        try:
            try:
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view) :]
            finally:
                os.close(fd)
            os.replace(temp, path)
        except OSError:
            with contextlib.suppress(OSError):
                os.unlink(temp)
            return False
        return True


class Recorder:
    """A lister for a walk that records which directories it read, for
    :meth:`NameCache.store`."""

    def __init__(self, lister: Callable[[str], list[str]]) -> None:
        self._lister = lister
        self.read: list[str] = []

    def listdir(self, directory: str) -> list[str]:
        self.read.append(directory)
        return self._lister(directory)
