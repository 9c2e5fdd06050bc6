"""errors.report is the one exception -> exit code mapping; main() never raises."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from iscsikit.cli.env import CliEnv
from iscsikit.cli.errors import ExitStatus, report
from iscsikit.cli.main import main, version_line
from iscsikit.cli.options import UsageError
from iscsikit.errors import IscsiErr, IscsiError, NoObjectsFoundError


class Streams:
    def __init__(self) -> None:
        self.stdout = io.StringIO()
        self.stderr = io.StringIO()


def test_iscsi_error() -> None:
    s = Streams()
    assert report(NoObjectsFoundError("No records found"), s, debug=False) == 21
    assert s.stderr.getvalue() == "iscsikit-adm: No records found\n"
    assert s.stdout.getvalue() == ""


def test_usage_error_pieces() -> None:
    s = Streams()
    exc = UsageError(
        "node mode: option '-?' is not allowed/supported", diagnostics=["invalid option -- 'Z'"]
    )
    assert report(exc, s, debug=False) == 7
    assert s.stderr.getvalue() == (
        "iscsikit-adm: invalid option -- 'Z'\n"
        "iscsikit-adm: node mode: option '-?' is not allowed/supported\n"
    )
    s = Streams()
    assert report(UsageError(try_help=True), s, debug=False) == 7
    assert s.stderr.getvalue() == "Try `iscsikit-adm --help' for more information.\n"
    s = Streams()
    assert report(UsageError(stdout="Invalid iface name .\n"), s, debug=False) == 7
    assert (s.stdout.getvalue(), s.stderr.getvalue()) == ("Invalid iface name .\n", "")


def test_internal_error_and_traceback() -> None:
    s = Streams()
    assert report(RuntimeError("boom"), s, debug=False) == 9
    assert s.stderr.getvalue() == (
        "iscsikit-adm: internal error: RuntimeError: boom (run with --traceback for details)\n"
    )
    s = Streams()
    assert report(RuntimeError("boom"), s, debug=True) == 9
    assert "Traceback" in s.stderr.getvalue() or "RuntimeError: boom" in s.stderr.getvalue()
    assert s.stderr.getvalue().endswith("iscsikit-adm: internal error: RuntimeError: boom\n")


def test_signals_and_exit() -> None:
    assert report(KeyboardInterrupt(), Streams(), debug=False) == 130
    assert report(BrokenPipeError(), Streams(), debug=False) == 141
    assert report(SystemExit(3), Streams(), debug=False) == 3
    assert report(SystemExit(None), Streams(), debug=False) == 0


def test_exit_status_keeps_the_first_failure() -> None:
    status = ExitStatus()
    for code in (0, 21, 0, 7):
        status.note(code)
    assert status.code == 21 and int(status) == 21
    s = Streams()
    status = ExitStatus()
    status.fail(IscsiError("first", code=IscsiErr.TRANS), s)
    status.fail(IscsiError("second", code=IscsiErr.LOGIN), s)
    assert status.code == 4
    assert s.stderr.getvalue() == "iscsikit-adm: first\niscsikit-adm: second\n"


def run(tmp_path: Path, argv: list[str]) -> tuple[int, str, str]:
    env = CliEnv.for_test(tmp_path)
    code = main(argv, env=env)
    return code, env.stdout.getvalue(), env.stderr.getvalue()  # type: ignore[attr-defined]


def test_main_version_help_and_usage(tmp_path: Path) -> None:
    assert run(tmp_path, ["-V"]) == (0, version_line(), "")
    assert version_line().split()[:3] == ["iscsikit-adm", "version", "2.1.8"]
    code, out, _ = run(tmp_path, ["--help"])
    assert code == 0 and "--targetname" in out and "--output" in out
    assert run(tmp_path, []) == (7, "", "Try `iscsikit-adm --help' for more information.\n")
    code, out, err = run(tmp_path, ["--bogus", "-V"])  # the complaint, then the version
    assert (code, out, err) == (0, version_line(), "iscsikit-adm: unrecognized option '--bogus'\n")


def test_help_lists_every_installed_transport_with_its_description(tmp_path: Path) -> None:
    from iscsikit.plugin import manager as plugins

    registry = plugins.transports()
    _, out, _ = run(tmp_path, ["--help"])
    listed = out.split("Transports (installed drivers, iface.transport_name):\n", 1)[1]
    rows = dict(line.split(None, 1) for line in listed.splitlines())
    assert set(rows) == set(registry.names()) >= {"tcp", "usertcp"}
    for name, description in rows.items():
        assert description == " ".join(registry.get(name).description.split())


def test_main_kill(tmp_path: Path) -> None:
    code, out, err = run(tmp_path, ["-k", "1"])
    assert (code, out) == (0, "")
    assert err == "iscsikit-adm: Invalid iscsid priority 1. Priority must be 0.\n"
    assert run(tmp_path, ["-k", "0"])[0] == 0  # no daemon: reported, exit 0 as iscsiadm


def test_main_internal_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from iscsikit.cli.modes import node

    def broken(*_: object) -> int:
        raise ZeroDivisionError("x")

    monkeypatch.setattr(node, "_run", broken)
    code, _, err = run(tmp_path, ["-m", "node"])
    assert code == 9 and "internal error: ZeroDivisionError: x" in err
    code, _, err = run(tmp_path, ["-m", "node", "--traceback"])
    assert code == 9 and "Traceback (most recent call last)" in err


def test_main_json_error_document(tmp_path: Path) -> None:
    import json

    code, out, err = run(tmp_path, ["--output", "json", "-m", "node", "-x", "1"])
    assert code == 7 and "not allowed" in err
    doc = json.loads(out)
    assert doc["version"] == 1 and doc["mode"] == "node" and doc["error"]["code"] == 7


def test_main_broken_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    conf = tmp_path / "etc/iscsikit/iscsikit.conf"
    conf.parent.mkdir(parents=True)
    conf.write_text("db_root = \n")
    monkeypatch.setenv("ISCSIKIT_ROOT", str(tmp_path))
    assert main(["-m", "node"]) == 7
    assert "db_root" in capsys.readouterr().err
