"""``iscsikitd``: the iscsikit daemon, with iscsid's options.

    iscsikitd [-c CONFIG] [-i INITIATORNAME] [-f] [-d LEVEL] [-u UID] [-g GID]
              [-p PIDFILE | -n] [--root DIR]

It owns every session the command line logs in: ``iscsikit-adm -m node -l`` asks it
over ``<run_dir>/iscsikitd.sock`` (docs/ipc.md).  A userspace session's LUNs are
served over NBD under ``<run_dir>/nbd/`` (:mod:`iscsikit.daemon.exports`).  At start it
logs in every record with ``node.startup = automatic`` and starts discoveryd for the
discovery records with ``use_discoveryd = Yes`` (:mod:`iscsikit.daemon.discoveryd`);
SIGTERM/SIGINT (and ``iscsikit-adm -k 0``) log every session out and exit 0; SIGHUP
re-reads iscsid.conf.

Without ``-f`` it detaches (double fork, ``setsid``) and logs to syslog; with ``-f`` it
logs to stderr, one line per event and no timestamps when the journal collects them
(``JOURNAL_STREAM``).  ``-u``/``-g`` drop privileges once the socket is bound; the
socket then admits root, that uid and members of that gid.  Started by systemd with a
socket (``iscsikitd.socket``), it serves on the socket it was handed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import logging.handlers
import os
import signal
import sys
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from iscsikit.cli.console import ArgumentParser, console_main
from iscsikit.config.paths import Paths, resolve_paths
from iscsikit.errors import InvalidParameterError

__all__ = ["main", "run"]

log = logging.getLogger("iscsikitd")

#: Worker threads for blocking driver calls (logins in flight at once).
LOGIN_THREADS = 64

_LEVELS = {0: logging.WARNING, 1: logging.INFO, 2: logging.INFO}


def _parser() -> ArgumentParser:
    parser = ArgumentParser(
        prog="iscsikitd",
        description="The iscsikit daemon: owns iSCSI sessions for iscsikit-adm.",
    )
    parser.add_argument("-c", "--config", metavar="FILE", help="iscsid.conf to read")
    parser.add_argument("-i", "--initiatorname", metavar="FILE", help="initiatorname.iscsi to read")
    parser.add_argument("-f", "--foreground", action="store_true", help="do not detach")
    parser.add_argument(
        "-d", "--debug", metavar="LEVEL", type=int, default=0, help="debug level 0-8"
    )
    parser.add_argument("-u", "--uid", metavar="UID", type=int, help="run as this uid")
    parser.add_argument("-g", "--gid", metavar="GID", type=int, help="run as this gid")
    pid = parser.add_mutually_exclusive_group()
    pid.add_argument("-p", "--pid", metavar="FILE", help="pid file (<run_dir>/iscsikitd.pid)")
    pid.add_argument("-n", "--no-pid-file", action="store_true", help="write no pid file")
    parser.add_argument(
        "--root", metavar="DIR", help="the filesystem root of every path (ISCSIKIT_ROOT)"
    )
    return parser


def _logging(level: int, *, foreground: bool) -> None:
    root = logging.getLogger()
    root.setLevel(_LEVELS.get(level, logging.DEBUG))
    handler: logging.Handler
    if foreground:
        handler = logging.StreamHandler(sys.stderr)
        stamp = "" if os.environ.get("JOURNAL_STREAM") else "%(asctime)s "
        handler.setFormatter(logging.Formatter(f"{stamp}iscsikitd: %(levelname)s: %(message)s"))
    elif Path("/dev/log").exists():
        handler = logging.handlers.SysLogHandler(
            "/dev/log", facility=logging.handlers.SysLogHandler.LOG_DAEMON
        )
        handler.setFormatter(logging.Formatter("iscsikitd[%(process)d]: %(message)s"))
    else:
        handler = logging.NullHandler()
    root.handlers[:] = [handler]


def _detach() -> None:
    """The classic double fork: the daemon is re-parented to init, has no terminal."""
    if os.fork():
        os._exit(0)
    os.setsid()
    if os.fork():
        os._exit(0)
    os.chdir("/")
    devnull = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(devnull, fd)
    os.close(devnull)


async def run(
    paths: Paths,
    *,
    conf: Path | None = None,
    pidfile: Path | None = None,
    uid: int | None = None,
    gid: int | None = None,
) -> int:
    """Serve until stopped; 0 after an orderly stop."""
    from iscsikit.daemon.discoveryd import Discoveryd
    from iscsikit.daemon.rundir import private_dir, write_private_file
    from iscsikit.daemon.server import IpcServer
    from iscsikit.daemon.service import OPERATIONS, Daemon
    from iscsikit.manager.sessions import daemon_socket

    # Logins run the drivers' blocking connect + login in worker threads: enough of them
    # that -L all over many targets logs in concurrently.
    asyncio.get_running_loop().set_default_executor(
        ThreadPoolExecutor(LOGIN_THREADS, thread_name_prefix="login")
    )
    daemon = Daemon(paths, conf)
    options: dict[str, Any] = {
        "allowed_uids": () if uid is None else (uid,),
        "allowed_gids": () if gid is None else (gid,),
        "ops": tuple(OPERATIONS),
    }
    server = IpcServer.from_systemd(daemon.handle, **options)
    if server is None:
        server = IpcServer(daemon_socket(paths), daemon.handle, **options)
    await server.start()
    startup: asyncio.Task[None] | None = None
    discoveryd = Discoveryd(daemon)
    try:
        # Everything that needs root happens before the privileges go.
        # The export directory belongs to the user the daemon runs as from here on.
        private_dir(daemon.exports.directory, 0o700, uid=uid, gid=gid)
        if pidfile is not None:
            pidfile.parent.mkdir(parents=True, exist_ok=True)
            write_private_file(pidfile, f"{os.getpid()}\n")
        if gid is not None:
            os.setgid(gid)
        if uid is not None:
            os.setuid(uid)
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGTERM, daemon.stopping.set)
        loop.add_signal_handler(signal.SIGINT, daemon.stopping.set)
        loop.add_signal_handler(signal.SIGHUP, daemon.reload)
        log.info("iscsikitd ready: %s (records in %s)", server.path, paths.db_root)
        await daemon.adopt_kernel_sessions()
        daemon.watch_devices()
        startup = asyncio.create_task(daemon.login_automatic())
        discoveryd.start()  # records with use_discoveryd = Yes (iscsid's discoveryd_start)
        await daemon.stopping.wait()
        log.info("stopping: logging out %d session(s)", len(daemon.manager.sessions()))
    finally:
        if startup is not None:
            startup.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await startup
        await discoveryd.stop()
        log.info("stopping: discoveryd stopped")
        await daemon.stop()
        log.info("stopping: sessions and exports stopped")
        await server.close()
        if pidfile is not None:
            with contextlib.suppress(OSError):
                pidfile.unlink()
    log.info("stopped")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()

    def body() -> int:
        args = parser.parse_args(argv)
        if not 0 <= args.debug <= 8:
            raise parser.usage_error(f"invalid debug level {args.debug} (0-8)")
        if args.initiatorname:
            from iscsikit.config.initiatorname import read_initiator_name

            name = read_initiator_name(Path(args.initiatorname))
            if not name:
                raise InvalidParameterError(f"no InitiatorName in {args.initiatorname}")
            os.environ["ISCSIKIT_INITIATOR_NAME"] = name
        paths = resolve_paths(root=Path(args.root) if args.root else None)
        pidfile = None if args.no_pid_file else Path(args.pid or paths.run_dir / "iscsikitd.pid")
        _logging(args.debug, foreground=args.foreground)
        if not args.foreground:
            _detach()
        return asyncio.run(
            run(
                paths,
                conf=Path(args.config) if args.config else None,
                pidfile=pidfile,
                uid=args.uid,
                gid=args.gid,
            )
        )

    debug = "-d" in (argv if argv is not None else sys.argv[1:])
    return console_main("iscsikitd", body, debug=debug, debug_flag="-d")


if __name__ == "__main__":
    sys.exit(main())
