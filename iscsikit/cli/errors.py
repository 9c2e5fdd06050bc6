"""The one place an exception becomes an exit code (and a message on stderr), for
every console script: ``iscsikit-adm`` and the tools (``iscsikit-ls``, ``-perf``,
``-nbd``, ``-iname``, and the daemon) through :func:`iscsikit.cli.console.console_main`.

:func:`exit_code` is the mapping, :func:`report` prints the message with the program's
prefix (``iscsikit-adm: ``, ``iscsikit-ls: ``...) and returns the code:

* :class:`~iscsikit.cli.options.UsageError` -- a bad command line: iscsiadm's reaction
  (getopt's complaints, the error, the "Try ... --help" line, or text on stdout), or an
  argparse tool's (its usage line, then ``<prog>: error: ...``), with its code (7
  unless it says otherwise);
* any :class:`~iscsikit.errors.IscsiError` -- ``<prog>: <message>``, exit ``.code``
  (the number iscsiadm uses for the same failure);
* ``SystemExit`` -- its code (``--help`` of an argparse tool: 0);
* ``KeyboardInterrupt`` -- exit 130, ``BrokenPipeError`` (``| head``) -- exit 141, as a
  C program killed by the signal would be seen by the shell;
* any other ``OSError`` -- what the system refused (a socket that cannot be bound, a
  file that cannot be written): ``<prog>: <message>``, exit 1 (ERR);
* anything else is a bug: exit 9 (INTERNAL), a one-line summary, and a traceback only
  with the debug flag (``--traceback``, ``--debug``).

With the debug flag an IscsiError or OSError is followed by its traceback too.

:class:`ExitStatus` keeps the first failure of an operation over several records:
iscsiadm returns the first error and goes on with the remaining records.
"""

from __future__ import annotations

from typing import Protocol, TextIO

from iscsikit.errors import IscsiErr, IscsiError

__all__ = ["PREFIX", "PROG", "ExitStatus", "Streams", "exit_code", "report"]

#: The program name of iscsiadm's front end; every other console script passes its own.
PROG = "iscsikit-adm"
PREFIX = PROG + ": "
#: Exit codes for the two signals a command line sees (128 + signal number).
EXIT_INTERRUPTED = 130
EXIT_BROKEN_PIPE = 141


class Streams(Protocol):
    """What :func:`report` needs of a :class:`~iscsikit.cli.env.CliEnv`."""

    @property
    def stdout(self) -> TextIO: ...
    @property
    def stderr(self) -> TextIO: ...


class ExitStatus:
    """The exit code of an operation over several records: the first non-zero one."""

    __slots__ = ("code",)

    def __init__(self) -> None:
        self.code = 0

    def note(self, code: int) -> int:
        """Remember ``code`` unless an earlier failure is already remembered; returns it."""
        if code and not self.code:
            self.code = int(code)
        return code

    def fail(self, exc: IscsiError, env: Streams) -> int:
        """Print ``exc`` as :func:`report` would and remember its code."""
        return self.note(report(exc, env, debug=False))

    def __int__(self) -> int:
        return self.code


def _write(stream: TextIO, text: str) -> None:
    try:
        stream.write(text)
        stream.flush()
    except (BrokenPipeError, ValueError):  # closed stream: nothing more to say
        pass


def _traceback(exc: BaseException, env: Streams) -> None:
    import traceback  # only with --traceback: keeps start-up fast

    _write(env.stderr, "".join(traceback.format_exception(exc)))


def exit_code(exc: BaseException) -> int:
    """The exit code for ``exc`` (the table in the module docstring); prints nothing."""
    if isinstance(exc, SystemExit):
        code = exc.code
        return code if isinstance(code, int) else (0 if code is None else 1)
    if isinstance(exc, IscsiError):
        return int(exc.code)
    if isinstance(exc, KeyboardInterrupt):
        return EXIT_INTERRUPTED
    if isinstance(exc, BrokenPipeError):
        return EXIT_BROKEN_PIPE
    if isinstance(exc, OSError):
        return int(IscsiErr.ERR)
    return int(IscsiErr.INTERNAL)


def report(
    exc: BaseException,
    env: Streams,
    *,
    debug: bool,
    prog: str = PROG,
    debug_flag: str | None = "--traceback",
) -> int:
    """Print what went wrong, each line prefixed ``<prog>: ``, and return
    :func:`exit_code` of ``exc``.  ``debug_flag`` is the option that shows tracebacks,
    named in the one-line summary of an internal error (None: the program has none)."""
    from iscsikit.cli.options import UsageError

    prefix = f"{prog}: "
    code = exit_code(exc)
    if isinstance(exc, (SystemExit, BrokenPipeError)):
        return code
    if isinstance(exc, UsageError):
        if exc.stdout is not None:
            _write(env.stdout, exc.stdout)
        lines = [prefix + d for d in exc.diagnostics]
        if exc.message:
            lines.append(prefix + exc.message)
        if exc.try_help:
            lines.append(f"Try `{prog} --help' for more information.")
        text = exc.usage or ""
        if lines:
            text += "\n".join(lines) + "\n"
        if text:
            _write(env.stderr, text)
        return code
    if isinstance(exc, (IscsiError, OSError)):
        _write(env.stderr, f"{prefix}{exc}\n")
        if debug:
            _traceback(exc, env)
        return code
    if isinstance(exc, KeyboardInterrupt):
        _write(env.stderr, f"{prefix}interrupted\n")
        return code
    if debug:
        _traceback(exc, env)
    what = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    hint = "" if debug or debug_flag is None else f" (run with {debug_flag} for details)"
    _write(env.stderr, f"{prefix}internal error: {what}{hint}\n")
    return code
