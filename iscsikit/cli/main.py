"""``iscsikit-adm``: parse the command line, run the mode, turn failures into exit codes.

The order is iscsiadm's: getopt complaints that did not stop it, then ``-V``/``-h``,
then ``-k``, then the mode.  Everything that goes wrong ends in
:func:`iscsikit.cli.errors.report`, the only place an exception becomes an exit code.
Modes are imported lazily (:mod:`iscsikit.cli.modes`).
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, NoReturn

from iscsikit.cli.errors import report

if TYPE_CHECKING:
    from iscsikit.cli.env import CliEnv
    from iscsikit.cli.options import ParsedArgs

__all__ = ["main", "run", "usage_text", "version_line"]

#: The open-iscsi release whose command line and output iscsikit-adm reproduces.
COMPAT_VERSION = "2.1.8"


def version_line() -> str:
    """``-V``: the third word is the emulated iscsiadm version (what scripts compare);
    iscsikit's own version follows."""
    from iscsikit import __version__

    return f"iscsikit-adm version {COMPAT_VERSION} (iscsikit {__version__})\n"


def main(argv: Sequence[str] | None = None, *, env: CliEnv | None = None) -> int:
    """Run one command; returns the exit code (never raises, never exits)."""
    args_list = list(sys.argv[1:] if argv is None else argv)
    debug = "--traceback" in args_list
    if env is None:
        from iscsikit.cli.env import CliEnv

        try:
            env = CliEnv.from_process()
        except Exception as exc:  # e.g. a broken iscsikit.conf: report on the real streams
            return report(exc, sys, debug=debug)
    try:
        return _dispatch(args_list, env)
    except BaseException as exc:
        code = report(exc, env, debug=debug)
        _json_error(args_list, env, exc, code)
        return code


def _json_error(argv: list[str], env: CliEnv, exc: BaseException, code: int) -> None:
    """With ``--output json``, a failure still writes one document (unless the mode
    already wrote it)."""
    if not code or isinstance(exc, SystemExit):
        return
    from iscsikit.cli.options import json_requested

    wanted, mode = json_requested(argv)
    if not wanted:
        return
    from iscsikit.cli import jsonout

    message = getattr(exc, "message", None) or str(exc) or None
    with contextlib.suppress(BrokenPipeError, ValueError):
        jsonout.emit_error(env, mode, code, message)


def _dispatch(argv: list[str], env: CliEnv) -> int:
    from iscsikit.cli.options import parse

    args = parse(argv)
    for diagnostic in args.diagnostics:
        env.err(diagnostic)
    if args.version:
        env.out(version_line())
        return 0
    if args.help:
        env.out(usage_text())
        return 0
    if args.killiscsid is not None:
        return _kill_daemon(args, env)
    assert args.mode is not None  # parse() refuses a command line without a mode
    from iscsikit.cli.modes import MODES, load

    try:
        module = load(args.mode)
    except ModuleNotFoundError as exc:
        if exc.name != MODES[args.mode]:
            raise
        from iscsikit.errors import NotSupportedError

        raise NotSupportedError(f"{args.mode} mode is not available in this build") from exc
    return module.run(args, env)


def _kill_daemon(args: ParsedArgs, env: CliEnv) -> int:
    """``-k 0``: ask the daemon to stop.  Like iscsiadm, report problems but exit 0
    (iscsiadm 2.1.8 exits 0 for a bad priority and when no daemon runs)."""
    if args.killiscsid != 0:
        env.err(f"Invalid iscsid priority {args.killiscsid}. Priority must be 0.")
        return 0
    try:
        from iscsikit.manager.sessions import session_service
    except ImportError:
        env.err("can not connect to the iSCSI daemon: it is not running")
        return 0
    stop = getattr(session_service(env), "stop_daemon", None)
    if stop is None:
        env.err("can not connect to the iSCSI daemon: it is not running")
        return 0
    try:
        stop()
    except Exception as exc:
        env.err(f"Could not stop the daemon: {exc}")
    return 0


# -- help -------------------------------------------------------------------------------

_SYNOPSIS = (
    "-m discoverydb [-hV] [-d debug_level] [-P printlevel] [-t type -p ip:port -I ifaceN ... "
    "[-Dl]] | [[-p ip:port -t type] [-o operation] [-n name] [-v value] [-lD]]",
    "-m discovery [-hV] [-d debug_level] [-P printlevel] [-t type -p ip:port -I ifaceN ... "
    "[-l]] | [[-p ip:port] [-l | -D]]",
    "-m node [-hV] [-d debug_level] [-P printlevel] [-L all,manual,automatic,onboot] [-W] "
    "[-U all,manual,automatic,onboot] [-S] [[-T targetname -p ip:port -I ifaceN] "
    "[-l | -u | -R | -s]] [[-o operation] [-n name] [-v value]]",
    "-m session [-hV] [-d debug_level] [-P printlevel] [-r sessionid | sysfsdir "
    "[-R | -u | -s] [-o operation] [-n name] [-v value]]",
    "-m iface [-hV] [-d debug_level] [-P printlevel] [-I ifacename | -H hostno|MAC] "
    "[[-o operation] [-n name] [-v value]] [-C ping [-a ip] [-b packetsize] [-c count] "
    "[-i interval]]",
    "-m fw [-d debug_level] [-l] [-W] [[-n name] [-v value]]",
    "-m host [-P printlevel] [-H hostno|MAC] [[-C chap [-x chap_tbl_idx]] | [-C flashnode "
    "[-A portal_type] [-x flashnode_idx]] | [-C stats]] [[-o operation] [-n name] [-v value]]",
    "-k priority",
)


def usage_text(prog: str = "iscsikit-adm") -> str:
    """``--help``: iscsiadm's synopsis lines, then every option from :data:`OPTIONS`."""
    from iscsikit.cli.options import EXTENSION_OPTIONS, OPTIONS

    lines = [f"{prog} {s}" for s in _SYNOPSIS]
    lines.append("")
    lines.append("Options (iscsiadm 2.1.8 compatible):")
    for o in OPTIONS:
        flag = f"-{o.short}, --{o.long}" + (f" {o.metavar}" if o.takes_arg else "")
        lines.append(f"  {flag:<34} {o.help}")
    lines.append("")
    lines.append("iscsikit extensions (long options only):")
    for o in EXTENSION_OPTIONS:
        flag = f"--{o.long}" + (f" {o.metavar}" if o.takes_arg else "")
        lines.append(f"  {flag:<34} {o.help}")
    lines += ["", *_transport_lines()]
    return "\n".join(lines) + "\n"


def _transport_lines() -> list[str]:
    """The installed transport drivers (``iface.transport_name`` values) with their own
    descriptions, which say when a driver is simulated (no hardware behind it)."""
    from iscsikit.plugin import manager as plugins

    try:
        registry = plugins.transports()
    except Exception as exc:  # a broken plugin must not break --help
        return [f"Transports: cannot load the drivers: {exc}"]
    lines = ["Transports (installed drivers, iface.transport_name):"]
    for name in registry.names():
        description = " ".join(registry.get(name).description.split()) or "(no description)"
        lines.append(f"  {name:<34} {description}")
    return lines


def run() -> NoReturn:
    """The console script ``iscsikit-adm``."""
    sys.exit(main())
