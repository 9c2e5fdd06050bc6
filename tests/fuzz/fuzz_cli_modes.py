"""Fuzz harness: iscsikit-adm's record modes run end to end on a private records tree.

Input: argv, NUL-separated (as ``fuzz_cli.py``).  A command line that
:func:`~iscsikit.cli.options.parse` accepts for the node, iface or discoverydb mode is run
by :func:`~iscsikit.cli.main.main` (show, list, ``-o new/delete/update/nonpersistent``,
print levels, ``--output json``) against a fresh copy of a small records tree under
``ISCSIKIT_ROOT`` (iface, node and discovery records made by the store, iscsid.conf from
the golden tests).  Nothing reaches the network or a daemon: login / logout / discovery /
rescan / stats / ``-k`` command lines are not run, the session layer answers "iscsid is
not running", and host names do not resolve while a command runs.  ``main`` maps every
error to an exit code and never raises; an exception it reports as "internal error"
(exit 9: an exception no layer documents) is a finding, and so is one that escapes it.
"""

from __future__ import annotations

import ipaddress
import os
import shutil
import socket
from pathlib import Path
from typing import Any, NoReturn

import fuzzlib

_ROOT = fuzzlib.scratch_root()
if fuzzlib.as_program():
    os.environ["ISCSIKIT_ROOT"] = str(_ROOT / "unused")

with fuzzlib.instrument():
    from iscsikit.cli.env import CliEnv
    from iscsikit.cli.main import main
    from iscsikit.cli.options import UsageError, parse
    from iscsikit.manager.sessions import IscsidNotConnectedError

_GOLDEN = Path(__file__).resolve().parents[1] / "unit" / "cli" / "golden" / "node"
_SETUP = [
    ["-m", "iface", "-I", "ifx", "-o", "new"],
    ["-m", "node", "-o", "new", "-T", "iqn.2026-11.test:disk1", "-p", "127.0.0.1:3260,1"],
    ["-m", "node", "-o", "new", "-T", "iqn.2026-11.test:disk1", "-p", "127.0.0.2", "-I", "ifx"],
    ["-m", "node", "-o", "new", "-T", "iqn.2026-11.test:disk2", "-p", "[fe80::1]:3261,5"],
    ["-m", "node", "-T", "iqn.2026-11.test:disk2", "-o", "update",
     "-n", "node.session.auth.password", "-v", "secret"],
    ["-m", "discoverydb", "-t", "st", "-p", "127.0.0.1", "-o", "new"],
    ["-m", "discoverydb", "-t", "isns", "-p", "127.0.0.3:3205", "-o", "new"],
]  # fmt: skip
_MODES = frozenset({"node", "iface", "discoverydb"})
_OPS = frozenset({"new", "delete", "update", "show", "nonpersistent"})
_real_getaddrinfo = socket.getaddrinfo


def _no_dns(host: Any, *args: Any, **kwargs: Any) -> Any:
    """getaddrinfo for address literals only: a harness must not reach a DNS server."""
    text = host.decode() if isinstance(host, bytes) else str(host)
    try:
        ipaddress.ip_address(text.partition("%")[0])
    except ValueError:
        raise socket.gaierror(socket.EAI_NONAME, "fuzz harness: no name resolution") from None
    return _real_getaddrinfo(host, *args, **kwargs)


class _NoDaemon:
    """A session layer whose every call fails as with no iscsid running."""

    def __getattr__(self, name: str) -> Any:
        def refuse(*_args: Any, **_kwargs: Any) -> NoReturn:
            raise IscsidNotConnectedError("fuzz harness: no daemon")

        return refuse


def _template() -> Path:
    template = _ROOT / "template"
    if not template.exists():
        conf = template / "etc/iscsi/iscsid.conf"
        conf.parent.mkdir(parents=True)
        shutil.copy(_GOLDEN / "iscsid.conf", conf)
        for argv in _SETUP:
            env = CliEnv.for_test(template, session_layer=_NoDaemon())
            code = main(argv, env=env)
            assert code == 0, (argv, env.stderr.getvalue())  # type: ignore[attr-defined]
    return template


_TEMPLATE = _template()


def runnable(argv: list[str]) -> bool:
    """Whether the command line stays on the records tree (see the module docstring)."""
    try:
        args = parse(argv)
    except UsageError:
        return False
    if args.mode not in _MODES or args.version or args.help or args.killiscsid is not None:
        return False
    if args.login or args.logout or args.loginall or args.logoutall:
        return False
    if args.discover or args.rescan or args.stats:
        return False
    return set(args.ops) <= _OPS


def TestOneInput(data: bytes) -> None:
    argv = [os.fsdecode(word) for word in data.split(b"\0")] if data else []
    if not runnable(argv):
        return
    root = _ROOT / "run"
    shutil.rmtree(root, ignore_errors=True)
    shutil.copytree(_TEMPLATE, root, symlinks=True)
    env = CliEnv.for_test(root, session_layer=_NoDaemon())
    socket.getaddrinfo = _no_dns  # only while the command runs (pytest shares the process)
    try:
        code = main(argv, env=env)
    finally:
        socket.getaddrinfo = _real_getaddrinfo
    err = env.stderr.getvalue()  # type: ignore[attr-defined]
    if "internal error" in err:
        raise AssertionError(f"exit {code}: {err[-2000:]}")


if __name__ == "__main__":
    fuzzlib.main(TestOneInput)
