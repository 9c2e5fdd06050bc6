"""What every console script shares: one way to run, one way to fail.

:func:`console_main` runs a tool's body and hands any exception to
:func:`iscsikit.cli.errors.report` with the tool's name as the prefix, so
``iscsikit-ls``, ``iscsikit-perf``, ``iscsikit-nbd``, ``iscsikit-iname`` (and
``iscsikit-adm``, through :func:`iscsikit.cli.main.main`) map exceptions to exit codes
in the same place and the same way.  :class:`ArgumentParser` is argparse whose errors
are :class:`~iscsikit.cli.options.UsageError` (exit 7, the usage line and
``<prog>: error: <message>`` on stderr) instead of an exit from inside the parser.

A body returns its exit code for the failures it reports itself (iscsiadm-style loops
over several objects); everything else it raises.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import NoReturn

from iscsikit.cli.errors import Streams, report
from iscsikit.cli.options import UsageError

__all__ = ["ArgumentParser", "console_main"]


class ArgumentParser(argparse.ArgumentParser):
    """``argparse.ArgumentParser`` that raises :class:`UsageError` on a bad command line
    (``--help`` still prints and raises ``SystemExit(0)``)."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"error: {message}", usage=self.format_usage())

    def usage_error(self, message: str) -> UsageError:
        """The error a check after parsing raises (a value out of range...)."""
        return UsageError(f"error: {message}", usage=self.format_usage())


def console_main(
    prog: str,
    body: Callable[[], int],
    *,
    debug: bool = False,
    debug_flag: str | None = None,
    streams: Streams | None = None,
) -> int:
    """Run ``body`` and return its exit code, or report what it raised and return that
    exception's code (:mod:`iscsikit.cli.errors`); never raises.  ``debug`` adds
    tracebacks; ``debug_flag`` is the option that sets it (named in the summary of an
    internal error); ``streams`` defaults to the process's stdout / stderr, looked up
    when needed (so pytest's capture and redirections are seen)."""
    where: Streams = sys if streams is None else streams
    try:
        code = body()
        where.stdout.flush()  # a closed pipe is reported here, not at interpreter exit
    except BaseException as exc:
        return report(exc, where, debug=debug, prog=prog, debug_flag=debug_flag)
    return code
