"""``iscsikit-iname``: open-iscsi's ``iscsi-iname``, plus ``--ensure``.

``iscsikit-iname [-p prefix] [-g] [-e]`` prints ``[InitiatorName=]<prefix>:<random hex>``.
Options, messages and exit codes follow open-iscsi's utils/iscsi-iname.c (prefix at
most :data:`~iscsikit.config.iname.PREFIX_MAX_LEN` characters; usage on stderr; ``-h``
exits 0, usage errors exit 1).  Differences: the default prefix is iscsikit's
(:data:`~iscsikit.config.initiatorname.IQN_PREFIX`, open-iscsi's is
``iqn.2016-04.com.open-iscsi``), the suffix is always 12 hex digits (iscsi-iname prints
6 random bytes with ``%x``, dropping leading zeros), and ``--ensure`` prints the name in
initiatorname.iscsi, creating the file first when it is missing
(:func:`~iscsikit.config.iname.ensure_initiator_name`); a failure there exits through
:func:`iscsikit.cli.console.console_main` (an IscsiError's code, 1 for an OSError).
"""

from __future__ import annotations

import getopt
import sys
from collections.abc import Sequence
from typing import TextIO

from iscsikit.cli.console import console_main
from iscsikit.config.iname import PREFIX_MAX_LEN, ensure_initiator_name
from iscsikit.config.initiatorname import IQN_PREFIX, generate_initiator_name
from iscsikit.config.paths import resolve_paths

__all__ = ["PROG", "main"]

PROG = "iscsikit-iname"
#: iscsi-iname's exit code for a bad command line.
EXIT_USAGE = 1


def _usage(err: TextIO) -> None:
    err.write(
        f"Usage: {PROG} [OPTIONS]\n"
        "Where OPTIONS are from:\n"
        f"    -p/--prefix <prefix>          -- set IQN prefix [{IQN_PREFIX}]\n"
        "    -g/--generate-iname-prefix    -- generate the InitiatorName= prefix\n"
        "    -e/--ensure                   -- write initiatorname.iscsi if it is missing\n"
        f"where <prefix> has max length of {PREFIX_MAX_LEN}\n"
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``iscsikit-iname`` console script."""
    args = list(sys.argv[1:] if argv is None else argv)
    return console_main(PROG, lambda: _main(args, sys.stdout, sys.stderr))


def _main(args: list[str], out: TextIO, err: TextIO) -> int:
    # iscsi-iname's own usage messages (not <prog>: error: ...), so printed here.
    try:
        opts, rest = getopt.gnu_getopt(
            args, "p:ghe", ["prefix=", "generate-iname-prefix", "help", "ensure"]
        )
    except getopt.GetoptError as exc:
        err.write(f"{PROG}: {exc.msg}\n")
        _usage(err)
        return EXIT_USAGE
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
                return EXIT_USAGE
            prefix = value
        elif opt in ("-g", "--generate-iname-prefix"):
            with_key = True
        else:
            ensure = True
    if rest:
        err.write("unknown argument(s)\n")
        _usage(err)
        return EXIT_USAGE
    if ensure:
        name = ensure_initiator_name(resolve_paths(), prefix=prefix)
    else:
        name = generate_initiator_name(prefix)
    out.write(f"{'InitiatorName=' if with_key else ''}{name}\n")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
