"""``iscsikit-nbd``: serve an iSCSI LUN (or a RAM disk) over NBD until SIGINT / SIGTERM.

    iscsikit-nbd URL (--socket PATH | --port N) [--export-name NAME] [--read-only] [--debug]

``URL`` is an iSCSI URL opened with ``iscsikit.open_lun_async`` (imported lazily, in
:func:`_open_device`), or ``memory:SIZE`` (``memory:64M``) for a :class:`MemoryDevice`.  TCP
listens on 127.0.0.1 only.  One line goes to stderr once clients can connect:
``serving URL on nbd+unix:///?socket=PATH`` (or ``nbd://127.0.0.1:N``).

Exit codes follow iscsiadm, through :func:`iscsikit.cli.console.console_main`: 7
(``IscsiErr.INVAL``) for bad arguments, the ``IscsiError.code`` of a failure to open the
device, 1 for what the system refuses (a socket that cannot be bound), 0 after a signal.
The NBD package itself (:mod:`iscsikit.nbd`) never prints or exits.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib
import logging
import re
import signal
import sys
from collections.abc import AsyncIterator, Sequence
from contextlib import AbstractAsyncContextManager
from typing import cast

from iscsikit.cli.console import ArgumentParser, console_main
from iscsikit.errors import InvalidParameterError, NotSupportedError
from iscsikit.nbd.device import BlockDevice, MemoryDevice
from iscsikit.nbd.server import serve

PROG = "iscsikit-nbd"

_UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}
_SIZE = re.compile(r"(\d+)([KMGT]?)(?:I?B)?", re.IGNORECASE)


def _parser() -> ArgumentParser:
    parser = ArgumentParser(
        prog=PROG,
        description="Serve an iSCSI LUN over the NBD protocol.",
        epilog="URL is an iSCSI URL, or memory:SIZE (e.g. memory:64M) for a RAM disk.",
    )
    parser.add_argument("url", metavar="URL")
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--socket", metavar="PATH", help="listen on this unix socket")
    where.add_argument("--port", metavar="N", type=int, help="listen on 127.0.0.1:N (0: any)")
    parser.add_argument("--export-name", metavar="NAME", default="", help='default ""')
    parser.add_argument("--read-only", action="store_true", help="refuse writes")
    parser.add_argument("--debug", action="store_true", help="debug logging and tracebacks")
    return parser


def parse_size(text: str) -> int:
    """``64M`` → 67108864 (binary units K, M, G, T; an optional ``B`` / ``iB``)."""
    match = _SIZE.fullmatch(text.strip())
    if match is None:
        raise InvalidParameterError(f"invalid size {text!r}")
    return int(match.group(1)) * _UNITS[match.group(2).upper()]


@contextlib.asynccontextmanager
async def _memory(size: int) -> AsyncIterator[BlockDevice]:
    yield MemoryDevice(size)


def _open_device(url: str) -> AbstractAsyncContextManager[BlockDevice]:
    """An async context manager yielding the device behind ``url``."""
    if url.startswith("memory:"):
        size = parse_size(url.removeprefix("memory:"))
        if size <= 0 or size % 512:
            raise InvalidParameterError(f"memory size {size} is not a positive multiple of 512")
        return _memory(size)
    # The LUN API lives elsewhere in iscsikit; importing it here keeps this command's
    # start-up (and the memory: tests) independent of it.
    try:
        opener = importlib.import_module("iscsikit").open_lun_async
    except AttributeError:
        raise NotSupportedError("iscsikit.open_lun_async is not available") from None
    return cast("AbstractAsyncContextManager[BlockDevice]", opener(url))


async def _run(args: argparse.Namespace) -> int:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)

    def ready(uri: str) -> None:
        print(f"serving {args.url} on {uri}", file=sys.stderr, flush=True)

    async with _open_device(args.url) as device:
        server = asyncio.create_task(
            serve(
                device,
                unix_path=args.socket,
                port=args.port,
                export_name=args.export_name,
                read_only=args.read_only,
                ready=ready,
            )
        )
        stopped = asyncio.create_task(stop.wait())
        await asyncio.wait({server, stopped}, return_when=asyncio.FIRST_COMPLETED)
        stopped.cancel()
        if server.done():
            server.result()  # serve() only returns by raising: report why
        server.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await server
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command; returns the exit code (see the module docstring)."""
    args_list = list(sys.argv[1:] if argv is None else argv)
    return console_main(
        PROG, lambda: _main(args_list), debug="--debug" in args_list, debug_flag="--debug"
    )


def _main(argv: list[str]) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if args.port is not None and not 0 <= args.port <= 65535:
        raise parser.usage_error(f"invalid port {args.port}")
    logging.basicConfig(
        level=logging.DEBUG if args.debug else logging.WARNING,
        format=f"{PROG}: %(levelname)s: %(message)s",
    )
    return asyncio.run(_run(args))


__all__ = ["main", "parse_size"]


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
