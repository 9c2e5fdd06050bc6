"""``iscsikit-iname``: open-iscsi's ``iscsi-iname``, and creating initiatorname.iscsi.

``iscsi-iname [-p prefix] [-g]`` prints ``[InitiatorName=]<prefix>:<random hex>``.
Options, messages and exit codes follow open-iscsi's utils/iscsi-iname.c (prefix at
most 210 characters so the name stays within 223; usage on stderr; ``-h`` exits 0,
errors exit 1).  Differences: the default prefix is iscsikit's
(:data:`~iscsikit.config.initiatorname.IQN_PREFIX`, open-iscsi's is
``iqn.2016-04.com.open-iscsi``), the suffix is always 12 hex digits (iscsi-iname prints
6 random bytes with ``%x``, dropping leading zeros), and ``--ensure`` does what
open-iscsi's ``iscsi-init.service`` does with a shell one-liner: create
``initiatorname.iscsi`` if it does not exist (:func:`ensure_initiator_name`).
"""

from __future__ import annotations

import contextlib
import getopt
import os
import sys
import tempfile
from collections.abc import Sequence
from typing import TextIO

from iscsikit.config.initiatorname import (
    IQN_PREFIX,
    generate_initiator_name,
    read_initiator_name,
)
from iscsikit.config.paths import Paths, resolve_paths
from iscsikit.errors import InvalidParameterError, IscsiError

__all__ = ["PREFIX_MAX_LEN", "ensure_initiator_name", "main"]

#: 223 (RFC 3720 name limit) - 13 (":" and 12 hex digits).
PREFIX_MAX_LEN = 210


def _usage(err: TextIO) -> None:
    err.write(
        "Usage: iscsikit-iname [OPTIONS]\n"
        "Where OPTIONS are from:\n"
        f"    -p/--prefix <prefix>          -- set IQN prefix [{IQN_PREFIX}]\n"
        "    -g/--generate-iname-prefix    -- generate the InitiatorName= prefix\n"
        "    -e/--ensure                   -- write initiatorname.iscsi if it is missing\n"
        f"where <prefix> has max length of {PREFIX_MAX_LEN}\n"
    )


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


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``iscsikit-iname`` console script."""
    args = list(sys.argv[1:] if argv is None else argv)
    out, err = sys.stdout, sys.stderr
    try:
        opts, rest = getopt.gnu_getopt(
            args, "p:ghe", ["prefix=", "generate-iname-prefix", "help", "ensure"]
        )
    except getopt.GetoptError as exc:
        err.write(f"iscsikit-iname: {exc.msg}\n")
        _usage(err)
        return 1
    prefix = IQN_PREFIX
    with_key = ensure = False
    for opt, value in opts:
        if opt in ("-h", "--help"):
            _usage(err)
            return 0
        if opt in ("-p", "--prefix"):
            if len(value.encode("utf-8", "surrogateescape")) > PREFIX_MAX_LEN:
                err.write("error: prefix too long\n")
                _usage(err)
                return 1
            prefix = value
        elif opt in ("-g", "--generate-iname-prefix"):
            with_key = True
        else:
            ensure = True
    if rest:
        err.write("unknown argument(s)\n")
        _usage(err)
        return 1
    if ensure:
        try:
            name = ensure_initiator_name(resolve_paths(), prefix=prefix)
        except (IscsiError, OSError) as exc:
            err.write(f"iscsikit-iname: {exc}\n")
            return int(exc.code) if isinstance(exc, IscsiError) else 1
    else:
        name = generate_initiator_name(prefix)
    out.write(f"{'InitiatorName=' if with_key else ''}{name}\n")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
