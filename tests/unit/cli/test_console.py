"""console_main / exit_code: one exception -> exit code mapping for every console script."""

from __future__ import annotations

import io

import pytest

from iscsikit.cli.console import ArgumentParser, console_main
from iscsikit.cli.errors import exit_code, report
from iscsikit.errors import AuthenticationError, IscsiErr, NoObjectsFoundError


class Streams:
    def __init__(self) -> None:
        self.stdout = io.StringIO()
        self.stderr = io.StringIO()


@pytest.mark.parametrize(
    ("exc", "code"),
    [
        (NoObjectsFoundError("x"), 21),
        (AuthenticationError("x"), 24),
        (SystemExit(0), 0),
        (SystemExit(None), 0),
        (SystemExit("text"), 1),
        (KeyboardInterrupt(), 130),
        (BrokenPipeError(), 141),
        (PermissionError(13, "Permission denied"), int(IscsiErr.ERR)),
        (ValueError("bug"), int(IscsiErr.INTERNAL)),
    ],
)
def test_exit_code(exc: BaseException, code: int) -> None:
    assert exit_code(exc) == code
    assert report(exc, Streams(), debug=False, prog="tool") == code


def raising(exc: BaseException) -> int:
    raise exc


def test_each_program_its_own_prefix() -> None:
    s = Streams()
    assert console_main("iscsikit-ls", lambda: raising(AuthenticationError("no")), streams=s) == 24
    assert s.stderr.getvalue() == "iscsikit-ls: no\n"
    s = Streams()
    assert console_main("iscsikit-nbd", lambda: raising(OSError(98, "in use")), streams=s) == 1
    assert s.stderr.getvalue() == "iscsikit-nbd: [Errno 98] in use\n"


def test_the_body_code_passes_through() -> None:
    s = Streams()
    assert console_main("t", lambda: 15, streams=s) == 15
    assert s.stderr.getvalue() == ""


def test_internal_error_names_the_debug_flag_if_any() -> None:
    s = Streams()
    assert console_main("t", lambda: raising(ZeroDivisionError("z")), streams=s) == 9
    assert s.stderr.getvalue() == "t: internal error: ZeroDivisionError: z\n"
    s = Streams()
    body = lambda: raising(ZeroDivisionError("z"))  # noqa: E731
    assert console_main("t", body, debug_flag="--debug", streams=s) == 9
    assert s.stderr.getvalue().endswith("(run with --debug for details)\n")
    s = Streams()
    assert console_main("t", body, debug=True, debug_flag="--debug", streams=s) == 9
    assert "Traceback (most recent call last)" in s.stderr.getvalue()


def test_debug_shows_the_traceback_of_an_iscsi_error_too() -> None:
    s = Streams()
    assert console_main("t", lambda: raising(NoObjectsFoundError("none")), debug=True, streams=s)
    assert s.stderr.getvalue().startswith("t: none\nTraceback")


def test_argument_parser_errors_are_usage_errors() -> None:
    parser = ArgumentParser(prog="tool")
    parser.add_argument("url")
    s = Streams()
    assert console_main("tool", lambda: bool(parser.parse_args(["a", "b"])), streams=s) == 7
    assert s.stderr.getvalue() == ("usage: tool [-h] url\ntool: error: unrecognized arguments: b\n")
    s = Streams()
    assert console_main("tool", lambda: raising(parser.usage_error("bad port")), streams=s) == 7
    assert s.stderr.getvalue() == "usage: tool [-h] url\ntool: error: bad port\n"


def test_help_exits_0(capsys: pytest.CaptureFixture[str]) -> None:
    parser = ArgumentParser(prog="tool")
    assert console_main("tool", lambda: bool(parser.parse_args(["--help"]))) == 0
    assert capsys.readouterr().out.startswith("usage: tool")


def test_a_closed_stdout_is_a_broken_pipe() -> None:
    class Closed(Streams):
        def __init__(self) -> None:
            super().__init__()
            self.stdout = Pipe()

    class Pipe(io.StringIO):
        def flush(self) -> None:
            raise BrokenPipeError(32, "Broken pipe")

    s = Closed()
    assert console_main("t", lambda: 0, streams=s) == 141
    assert s.stderr.getvalue() == ""
