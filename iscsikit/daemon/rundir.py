"""The daemon's own directories and files, safe from what another user planted.

The run directory (``/run/iscsikit``: the IPC socket, its lock, the pid file) and the
NBD export directory below it are the daemon's.  :func:`private_dir` creates one, or
takes an existing one only when it is a real directory (not a symbolic link) owned by
the daemon's user, and narrows its mode to what its users need: a planted link or a
directory somebody else made is refused, never followed.  :func:`write_private_file`
writes a file (the pid file) with ``O_NOFOLLOW``, so a link planted at its name is
refused as well.

Modes: owner-only (0700) unless other users must reach a socket inside, then
traverse-only for them (0711, or 0710 with the allowed group): nobody else can list
the directory or create anything in it, so no socket inside is ever reachable through
a wider window than its own mode.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
from pathlib import Path

from iscsikit.errors import InvalidParameterError

__all__ = ["dir_mode_for_socket", "private_dir", "write_private_file"]


def dir_mode_for_socket(socket_mode: int) -> int:
    """The directory mode that lets exactly a socket's users reach it: group or other
    execute where the socket grants them access, nothing more."""
    mode = 0o700
    if socket_mode & 0o060:
        mode |= 0o010
    if socket_mode & 0o006:
        mode |= 0o011
    return mode


def private_dir(
    path: Path, mode: int = 0o700, *, uid: int | None = None, gid: int | None = None
) -> Path:
    """Create or check directory ``path``: a real directory owned by the effective user
    (or by ``uid`` when root hands it to the user it drops to), with mode ``mode`` and
    group ``gid`` when given.  Missing parents are created 0755 (``/run``-like).

    Raises :class:`~iscsikit.errors.InvalidParameterError` when ``path`` is a symbolic
    link, not a directory, or owned by another user."""
    path.parent.mkdir(mode=0o755, parents=True, exist_ok=True)
    with contextlib.suppress(FileExistsError):
        os.mkdir(path, 0o700)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.ENOTDIR):
            kind = "a symbolic link" if os.path.islink(path) else "not a directory"
            raise InvalidParameterError(f"{path} is {kind}: refusing to use it") from None
        raise InvalidParameterError(f"cannot open {path}: {exc.strerror}") from None
    try:
        st = os.fstat(fd)
        euid = os.geteuid()
        if st.st_uid not in (euid, uid):
            raise InvalidParameterError(
                f"{path} is owned by uid {st.st_uid}, not by uid {euid}: refusing to use it"
            )
        if uid is not None and euid == 0 and st.st_uid != uid:
            os.fchown(fd, uid, -1)
        if gid is not None and st.st_gid != gid:
            os.fchown(fd, -1, gid)
        if stat.S_IMODE(st.st_mode) != mode:
            os.fchmod(fd, mode)
    finally:
        os.close(fd)
    return path


def write_private_file(path: Path, text: str, mode: int = 0o644) -> None:
    """Write ``text`` to ``path`` (created with ``mode``, truncated if it exists),
    refusing a symbolic link or anything but a regular file at that name."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK
    try:
        fd = os.open(path, flags, mode)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            message = f"{path} is a symbolic link: refusing to write it"
            raise InvalidParameterError(message) from None
        raise InvalidParameterError(f"cannot write {path}: {exc.strerror}") from None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise InvalidParameterError(f"{path} is not a regular file: refusing to write it")
        os.ftruncate(fd, 0)
        os.write(fd, text.encode())
    finally:
        os.close(fd)
