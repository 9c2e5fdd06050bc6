"""``iscsikit-migrate``: move a host's linux-iscsi configuration to open-iscsi / iscsikit.

``iscsikit-migrate [--root DIR] [--dry-run] [--discover] [--conf F] [--bindings F]
[--fstab F]``
reads ``/etc/iscsi.conf``, ``/var/iscsi/bindings`` (or ``/etc/iscsi.bindings``) and
``/etc/fstab.iscsi`` and writes what :func:`iscsikit.migrate.migrate` writes, printing
each action on stdout and each setting it could not migrate on stderr.

``--root`` is the filesystem root for every path, read and written (default
``ISCSIKIT_ROOT``, else ``/``), as iscsikit-adm uses it.  Exit codes: 0 everything
migrated; 1 written, but something was reported (a rejected or unknown line, a
setting without an equivalent, a section no node matches yet); 7 bad input (a bad
command line, a file named with an option missing or not text, nothing to migrate) --
nothing is written then.  Other failures exit through
:func:`iscsikit.cli.console.console_main` (a records error is 6...).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

from iscsikit.cli.console import ArgumentParser, console_main
from iscsikit.config.paths import resolve_root
from iscsikit.migrate import migrate

__all__ = ["PROG", "main"]

PROG = "iscsikit-migrate"


def _parser() -> ArgumentParser:
    parser = ArgumentParser(
        prog=PROG,
        description="Migrate linux-iscsi's iscsi.conf, bindings and fstab.iscsi to"
        " open-iscsi records and iscsikit settings.",
    )
    parser.add_argument("--root", type=Path, help="filesystem root (default: ISCSIKIT_ROOT or /)")
    parser.add_argument(
        "--dry-run", action="store_true", help="print what would be written; write nothing"
    )
    parser.add_argument(
        "--discover",
        action="store_true",
        help="run SendTargets with the migrated records first (a dry run stores nothing)",
    )
    parser.add_argument("--conf", help="linux-iscsi's iscsi.conf (default /etc/iscsi.conf)")
    parser.add_argument("--bindings", help="its bindings file (default /var/iscsi/bindings)")
    parser.add_argument("--fstab", help="its fstab.iscsi (default /etc/fstab.iscsi)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``iscsikit-migrate`` console script."""
    args = list(sys.argv[1:] if argv is None else argv)
    return console_main(PROG, lambda: _main(args))


def _main(args: list[str]) -> int:
    opts = _parser().parse_args(args)
    root = opts.root if opts.root is not None else resolve_root()
    result = migrate(
        root,
        dry_run=opts.dry_run,
        discover=opts.discover,
        conf=opts.conf,
        bindings=opts.bindings,
        fstab=opts.fstab,
    )
    for line in result.actions:
        print(line)
    for line in result.reports:
        print(f"{PROG}: {line}", file=sys.stderr)
    if opts.dry_run:
        print("(dry run: nothing written)")
    return result.exit_code


if __name__ == "__main__":
    sys.exit(main())
