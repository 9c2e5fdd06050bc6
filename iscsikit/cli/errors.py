"""The one place an exception becomes an exit code (and a message on stderr).

* :class:`~iscsikit.cli.options.UsageError` -- exactly iscsiadm's reaction to a bad
  command line: getopt's complaints, the error, the "Try ... --help" line, or text on
  stdout, with its code (7 unless it says otherwise);
* any :class:`~iscsikit.errors.IscsiError` -- ``iscsikit-adm: <message>``, exit ``.code``
  (the number iscsiadm uses for the same failure);
* ``KeyboardInterrupt`` -- exit 130, ``BrokenPipeError`` (``| head``) -- exit 141, as a
  C program killed by the signal would be seen by the shell;
* anything else is a bug: exit 9 (INTERNAL), a one-line summary, and a traceback only
  with ``--traceback``.

:class:`ExitStatus` keeps the first failure of an operation over several records:
iscsiadm returns the first error and goes on with the remaining records.
"""

from __future__ import annotations

from typing import Protocol, TextIO

from iscsikit.errors import IscsiErr, IscsiError

__all__ = ["PREFIX", "ExitStatus", "Streams", "report"]

PREFIX = "iscsikit-adm: "
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


def report(exc: BaseException, env: Streams, *, debug: bool) -> int:
    """Print what went wrong and return the exit code for ``exc``."""
    from iscsikit.cli.options import UsageError

    if isinstance(exc, SystemExit):
        code = exc.code
        return code if isinstance(code, int) else (0 if code is None else 1)
    if isinstance(exc, UsageError):
        if exc.stdout is not None:
            _write(env.stdout, exc.stdout)
        lines = [PREFIX + d for d in exc.diagnostics]
        if exc.message:
            lines.append(PREFIX + exc.message)
        if exc.try_help:
            lines.append("Try `iscsikit-adm --help' for more information.")
        if lines:
            _write(env.stderr, "\n".join(lines) + "\n")
        return int(exc.code)
    if isinstance(exc, IscsiError):
        _write(env.stderr, f"{PREFIX}{exc}\n")
        if debug:
            _traceback(exc, env)
        return int(exc.code)
    if isinstance(exc, KeyboardInterrupt):
        _write(env.stderr, f"{PREFIX}interrupted\n")
        return EXIT_INTERRUPTED
    if isinstance(exc, BrokenPipeError):
        return EXIT_BROKEN_PIPE
    if debug:
        _traceback(exc, env)
    what = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    hint = "" if debug else " (run with --traceback for details)"
    _write(env.stderr, f"{PREFIX}internal error: {what}{hint}\n")
    return int(IscsiErr.INTERNAL)
