"""conf/: the systemd units and the tmpfiles.d entry, checked against what they start.

Each unit is parsed the way systemd reads it (sections; ``#``/``;`` comments; a
repeated key adds a value, an empty assignment resets it; a trailing backslash
continues the line).  The tests check that every command is a console script
pyproject.toml installs (or a system tool), called with options it accepts; that the
socket and the run directory are the paths the code uses; and that the units are
ordered as open-iscsi 2.1.8's ``iscsid.service`` / ``open-iscsi.service``.
``systemd-analyze verify`` is not run here (CI need not have systemd); docs/daemon.md
says how to run it.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
import tomllib
from functools import cache
from pathlib import Path

import pytest

from iscsikit.config.paths import resolve_paths
from iscsikit.daemon.exports import EXPORT_DIR
from iscsikit.errors import IscsiErr
from iscsikit.manager.sessions import daemon_socket

ROOT = Path(__file__).resolve().parents[2]
CONF = ROOT / "conf"
UNITS = ("iscsikitd.service", "iscsikitd.socket", "iscsikit.service")
#: What open-iscsi's Debian package ships the same units as.
OPEN_ISCSI = {"iscsikitd.service": "iscsid.service", "iscsikit.service": "open-iscsi.service"}
OPEN_ISCSI_DIRS = (Path("/lib/systemd/system"), Path("/usr/lib/systemd/system"))
#: Commands the units may run that iscsikit does not install.
SYSTEM_TOOLS = {"kill", "sync"}
#: The keys these units may use, per section (a misspelt key fails here, not at boot).
KNOWN_KEYS = {
    "Unit": {
        "Description", "Documentation", "Requires", "Wants", "After", "Before",
        "Conflicts", "DefaultDependencies", "ConditionDirectoryNotEmpty",
        "ConditionPathExists",
    },
    "Service": {
        "Type", "ExecStart", "ExecStop", "ExecReload", "RemainAfterExit",
        "SuccessExitStatus", "KillMode", "TimeoutStopSec", "Restart",
    },
    "Socket": {"ListenStream", "SocketMode", "SocketUser", "SocketGroup", "DirectoryMode"},
    "Install": {"WantedBy", "RequiredBy", "Also", "Alias"},
}  # fmt: skip

Unit = dict[str, dict[str, list[str]]]


def parse_unit(text: str) -> Unit:
    """A unit file as ``{section: {key: [values]}}`` (systemd.syntax(7))."""
    unit: Unit = {}
    section: dict[str, list[str]] | None = None
    logical = re.sub(r"\\\n", " ", text)
    for number, raw in enumerate(logical.splitlines(), 1):
        line = raw.strip()
        if not line or line[0] in "#;":
            continue
        if line.startswith("[") and line.endswith("]"):
            section = unit.setdefault(line[1:-1], {})
            continue
        key, eq, value = line.partition("=")
        assert eq and section is not None, f"line {number}: {raw!r}"
        values = section.setdefault(key.strip(), [])
        if value.strip():
            values.append(value.strip())
        else:
            values.clear()
    return unit


@cache
def unit(name: str) -> Unit:
    return parse_unit((CONF / name).read_text())


def words(name: str, section: str, key: str) -> set[str]:
    """A list-valued key (After=, Wants=...) as a set of its space-separated words."""
    return {w for value in unit(name).get(section, {}).get(key, []) for w in value.split()}


def single(name: str, section: str, key: str) -> str:
    [value] = unit(name)[section][key]
    return value


def commands(name: str) -> list[tuple[str, list[str]]]:
    """Every Exec*= of a unit as (key, argv), systemd's prefixes (``-@:+!``) removed."""
    out = []
    for key, values in unit(name).get("Service", {}).items():
        if key.startswith("Exec"):
            out += [(key, shlex.split(value.lstrip("-@:+!"))) for value in values]
    return out


@cache
def console_scripts() -> dict[str, str]:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    scripts: dict[str, str] = pyproject["project"]["scripts"]
    return scripts


def run_module(module: str, *args: str, root: Path) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, ISCSIKIT_ROOT=str(root))
    return subprocess.run(
        [sys.executable, "-m", module, *args],
        env=env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip


@cache
def iscsikitd_options() -> set[str]:
    """The option strings ``iscsikitd --help`` lists."""
    done = subprocess.run(
        [sys.executable, "-m", "iscsikit.daemon", "--help"],
        capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    return set(re.findall(r"(?<![\w-])(--?[A-Za-z][\w-]*)", done.stdout))


# -- every unit -----------------------------------------------------------------------


@pytest.mark.parametrize("name", UNITS)
def test_unit_uses_known_sections_and_keys(name: str) -> None:
    parsed = unit(name)
    kind = "Socket" if name.endswith(".socket") else "Service"
    assert set(parsed) == {"Unit", kind, "Install"}
    for section, keys in parsed.items():
        assert set(keys) <= KNOWN_KEYS[section], (section, set(keys) - KNOWN_KEYS[section])
    assert single(name, "Unit", "Description")


@pytest.mark.parametrize("name", UNITS)
def test_units_named_are_shipped_or_systemd_targets(name: str) -> None:
    for section, key in (("Unit", "Requires"), ("Unit", "After"), ("Install", "Also")):
        for other in words(name, section, key):
            assert other.endswith(".target") or (CONF / other).is_file(), (name, key, other)


@pytest.mark.parametrize("name", [n for n in UNITS if n.endswith(".service")])
def test_commands_are_installed_console_scripts_or_system_tools(name: str) -> None:
    assert commands(name)
    for key, argv in commands(name):
        program = argv[0]
        # A bare name: systemd (>= 239) finds it in /usr/local/bin as well as /usr/bin.
        assert "/" not in program, (key, argv)
        assert program in console_scripts() or program in SYSTEM_TOOLS, (key, argv)
        assert shutil.which(program), f"{program} is not installed"


# -- iscsikitd.service / iscsikitd.socket ---------------------------------------------------


def test_iscsikitd_runs_in_the_foreground_with_options_it_accepts() -> None:
    [argv] = [a for k, a in commands("iscsikitd.service") if k == "ExecStart"]
    assert argv[0] == "iscsikitd"
    assert console_scripts()["iscsikitd"] == "iscsikit.daemon.main:main"
    options = iscsikitd_options()
    assert {"-c", "-i", "-f", "-d", "-u", "-g", "-p", "-n", "--root"} <= options
    assert {a for a in argv[1:] if a.startswith("-")} <= options
    # Type=simple: the process systemd started is the daemon, so it must not detach
    # (iscsikitd has no sd_notify, hence not Type=notify).
    assert single("iscsikitd.service", "Service", "Type") == "simple"
    assert "-f" in argv or "--foreground" in argv


def test_reload_sends_sighup() -> None:
    [argv] = [a for k, a in commands("iscsikitd.service") if k == "ExecReload"]
    assert argv == ["kill", "-HUP", "$MAINPID"]


def test_iscsikitd_always_gets_its_socket_from_the_socket_unit() -> None:
    assert "iscsikitd.socket" in words("iscsikitd.service", "Unit", "Requires")
    assert "iscsikitd.socket" in words("iscsikitd.service", "Unit", "After")
    assert "iscsikitd.socket" in words("iscsikitd.service", "Install", "Also")
    assert words("iscsikitd.socket", "Install", "WantedBy") == {"sockets.target"}


def test_socket_is_where_the_daemon_and_the_cli_look() -> None:
    paths = resolve_paths(root=Path("/"), env={})
    assert single("iscsikitd.socket", "Socket", "ListenStream") == str(daemon_socket(paths))
    assert daemon_socket(paths) == Path("/run/iscsikit/iscsikitd.sock")
    # The daemon's own mode when it binds the socket itself with no -u/-g (docs/ipc.md).
    assert single("iscsikitd.socket", "Socket", "SocketMode") == "0600"


@pytest.mark.parametrize("ours", sorted(OPEN_ISCSI))
def test_ordered_as_open_iscsi_units(ours: str) -> None:
    found = [d / OPEN_ISCSI[ours] for d in OPEN_ISCSI_DIRS if (d / OPEN_ISCSI[ours]).is_file()]
    theirs = found[0] if found else None
    if theirs is None:
        pytest.skip(f"open-iscsi not installed: no {OPEN_ISCSI[ours]} in {OPEN_ISCSI_DIRS}")
    reference = parse_unit(theirs.read_text())
    for key in ("Wants", "Before", "After", "Conflicts", "DefaultDependencies"):
        expected = {
            "iscsikitd.service" if w == "iscsid.service" else w
            for value in reference["Unit"].get(key, [])
            for w in value.split()
        }
        assert expected <= words(ours, "Unit", key), (ours, key, expected)


# -- iscsikit.service -----------------------------------------------------------------


def test_oneshot_logs_in_automatic_nodes_before_remote_file_systems() -> None:
    name = "iscsikit.service"
    assert single(name, "Service", "Type") == "oneshot"
    assert single(name, "Service", "RemainAfterExit") in {"yes", "true"}
    assert {"network-online.target", "iscsikitd.service"} <= words(name, "Unit", "After")
    assert {"remote-fs-pre.target", "shutdown.target"} <= words(name, "Unit", "Before")
    assert {"network-online.target", "remote-fs-pre.target"} <= words(name, "Unit", "Wants")
    assert words(name, "Unit", "Conflicts") == {"shutdown.target"}
    assert single(name, "Unit", "DefaultDependencies") == "no"
    # Either database root open-iscsi uses (iscsikit.config.paths detects both).
    conditions = set(unit(name)["Unit"]["ConditionDirectoryNotEmpty"])
    assert conditions == {"|/etc/iscsi/nodes", "|/var/lib/iscsi/nodes"}


def test_oneshot_commands_parse_and_their_expected_failures_count_as_success(
    tmp_path: Path,
) -> None:
    """Run each iscsikit-adm line against an empty root: no record, no session (21)."""
    name = "iscsikit.service"
    runs = {k: a for k, a in commands(name) if a[0] == "iscsikit-adm"}
    assert runs["ExecStart"][1:] == ["-m", "node", "--loginall=automatic"]
    assert runs["ExecStop"][1:] == ["-m", "node", "--logoutall=automatic"]
    success = {0} | {int(s) for s in words(name, "Service", "SuccessExitStatus")}
    assert success == {0, IscsiErr.SESS_EXISTS, IscsiErr.NO_OBJS_FOUND}
    for key, argv in runs.items():
        done = run_module("iscsikit", *argv[1:], root=tmp_path)
        assert done.returncode == IscsiErr.NO_OBJS_FOUND, (key, done.stderr)
        assert "usage" not in done.stderr.lower(), (key, done.stderr)
    assert "sync" in [a[0] for k, a in commands(name) if k == "ExecStop"]


# -- tmpfiles.d -----------------------------------------------------------------------


def test_tmpfiles_creates_the_run_directory_and_the_export_directory() -> None:
    entries = [
        line.split()
        for line in (CONF / "iscsikit-tmpfiles.conf").read_text().splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]
    assert all(len(e) == 6 for e in entries), entries
    run_dir = resolve_paths(root=Path("/"), env={}).run_dir
    directories = {Path(e[1]): (e[0], *e[2:5]) for e in entries}
    assert directories == {
        run_dir: ("d", "0755", "root", "root"),
        run_dir / EXPORT_DIR: ("d", "0755", "root", "root"),
    }
    socket = Path(single("iscsikitd.socket", "Socket", "ListenStream"))
    assert socket.parent in directories
    assert single("iscsikitd.socket", "Socket", "DirectoryMode") == directories[socket.parent][1]
