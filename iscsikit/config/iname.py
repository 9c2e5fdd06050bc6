"""Initiator names as open-iscsi's ``iscsi-iname`` makes them, and creating
initiatorname.iscsi (:func:`ensure_initiator_name`).

The ``iscsikit-iname`` command itself is :mod:`iscsikit.tools.iname`.  The prefix is at
most :data:`PREFIX_MAX_LEN` characters so the name stays within 223 (utils/iscsi-iname.c);
:func:`ensure_initiator_name` does what open-iscsi's ``iscsi-init.service`` does with a
shell one-liner: create ``initiatorname.iscsi`` if it does not exist.
"""

from __future__ import annotations

import contextlib
import os
import tempfile

from iscsikit.config.initiatorname import (
    IQN_PREFIX,
    generate_initiator_name,
    read_initiator_name,
)
from iscsikit.config.paths import Paths
from iscsikit.errors import InvalidParameterError

__all__ = ["PREFIX_MAX_LEN", "ensure_initiator_name"]

#: 223 (RFC 3720 name limit) - 13 (":" and 12 hex digits).
PREFIX_MAX_LEN = 210


def ensure_initiator_name(paths: Paths, *, prefix: str = IQN_PREFIX) -> str:
    """The name in ``paths.initiatorname_file``; if the file is missing, a new one.

    A new name is written as ``InitiatorName=<name>\\n`` with mode 0644, atomically: a
    temporary file in the same directory is written and fsynced, then hard-linked into
    place, so a reader never sees a partial file and of two concurrent callers the
    second adopts the first one's name.  An existing file without an ``InitiatorName=``
    line is not overwritten (it may hold an administrator's typo): that raises
    :class:`~iscsikit.errors.InvalidParameterError`.
    """
    target = paths.initiatorname_file
    name = read_initiator_name(target)
    if name is not None:
        return name
    if target.exists():
        # It may have been linked into place since the read above (always complete).
        name = read_initiator_name(target)
        if name is not None:
            return name
        raise InvalidParameterError(
            f"{target} has no InitiatorName= line; fix or remove it to generate a new name"
        )
    target.parent.mkdir(parents=True, exist_ok=True)
    name = generate_initiator_name(prefix)
    fd, tmp = tempfile.mkstemp(prefix=".initiatorname.", dir=target.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(f"InitiatorName={name}\n")
            f.flush()
            os.fchmod(f.fileno(), 0o644)
            os.fsync(f.fileno())
        try:
            os.link(tmp, target)
        except FileExistsError:
            # Someone else created it first: theirs wins.
            theirs = read_initiator_name(target)
            if theirs is None:
                raise InvalidParameterError(
                    f"{target} appeared without an InitiatorName= line"
                ) from None
            return theirs
        dir_fd = os.open(target.parent, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
    return name
