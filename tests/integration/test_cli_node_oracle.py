"""Node mode against the real iscsiadm 2.1.8: same stdout, same exit code, same database.

The invocations are the scenario files in ``tests/unit/cli/golden/node/`` (one
``### iscsiadm <args>`` line per command, run in order on a fresh copy of the database
``setup.txt`` builds).  For each scenario iscsiadm runs on one copy (the oracle: private
mount and network namespaces, fake iscsid, ``golden/node/iscsid.conf``) and
``python -m iscsikit`` on another (``ISCSIKIT_ROOT``); stdout and exit code must be
equal command by command, and the two databases equal at the end (file contents and
link targets).  The same run checks that the stored goldens still hold what iscsiadm
prints -- with ``ISCSIKIT_REGEN_GOLDEN=1`` it rewrites them instead.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from iscsikit.testing.oracle import Oracle, unavailable

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(unavailable() is not None, reason=str(unavailable())),
]

GOLDEN = Path(__file__).parents[1] / "unit/cli/golden/node"
SCENARIOS = sorted(p.name for p in GOLDEN.glob("*.txt") if p.name != "setup.txt")
REGEN = os.environ.get("ISCSIKIT_REGEN_GOLDEN") == "1"


def commands(name: str) -> list[list[str]]:
    """The argument lists of a scenario (or of setup.txt)."""
    import shlex

    out = []
    for line in (GOLDEN / name).read_text().splitlines():
        if line.startswith("### iscsiadm"):
            out.append(shlex.split(line[len("### iscsiadm") :]))
        elif name == "setup.txt" and line and not line.startswith("#"):
            out.append(shlex.split(line))
    return out


def render(results: list[tuple[list[str], int, str]]) -> str:
    import shlex

    parts = []
    for args, code, stdout in results:
        parts.append(f"### iscsiadm {shlex.join(args)}".rstrip() + f"\n### exit {code}\n{stdout}")
    return "".join(parts)


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An oracle directory holding the setup database."""
    path = tmp_path_factory.mktemp("node-base")
    (path / "etc-iscsi").mkdir()
    shutil.copy(GOLDEN / "iscsid.conf", path / "etc-iscsi/iscsid.conf")
    oracle = Oracle(path)
    for args in commands("setup.txt"):
        result = oracle.run(*args)
        assert result.returncode == 0, (args, result.stderr)
    return path


def _ours(root: Path, args: list[str]) -> tuple[int, str, str]:
    env = {**os.environ, "ISCSIKIT_ROOT": str(root)}
    proc = subprocess.run(
        [sys.executable, "-m", "iscsikit", *args],
        check=False,
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    return proc.returncode, proc.stdout, proc.stderr


def _tree(db: Path) -> dict[str, str]:
    """Record files and link targets (relative to nodes/), without config and scratch."""
    out = {}
    for path in sorted(db.rglob("*")):
        rel = path.relative_to(db).as_posix()
        if rel in ("iscsid.conf", "initiatorname.iscsi") or any(
            part.startswith(".") for part in rel.split("/")
        ):
            continue
        if path.is_symlink():
            out[rel] = "-> " + os.readlink(path).split("/nodes/", 1)[-1]
        elif path.is_file():
            out[rel] = path.read_text()
        else:
            out[rel] = "<dir>"
    return out


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_node_scenario(base: Path, tmp_path: Path, scenario: str) -> None:
    oracle_dir = tmp_path / "oracle"
    shutil.copytree(base, oracle_dir, symlinks=True)
    oracle = Oracle(oracle_dir)
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    shutil.copytree(base / "etc-iscsi", root / "etc/iscsi", symlinks=True)

    expected: list[tuple[list[str], int, str]] = []
    for args in commands(scenario):
        theirs = oracle.run(*args)
        expected.append((args, theirs.returncode, theirs.stdout))
        code, stdout, stderr = _ours(root, args)
        assert (code, stdout) == (theirs.returncode, theirs.stdout), (args, stderr, theirs.stderr)
    assert _tree(root / "etc/iscsi") == _tree(oracle_dir / "etc-iscsi")

    text = render(expected)
    if REGEN:
        (GOLDEN / scenario).write_text(text)
    else:
        assert (GOLDEN / scenario).read_text() == text, "golden out of date: regenerate"


# -- session commands on a fake kernel, no daemon ---------------------------------------

# iscsiadm with <base>/etc-iscsi as /etc/iscsi and <sys> as /sys, and no iscsid at all.
_INNER = r"""
import subprocess, sys
base, sysdir = sys.argv[1:3]
for src, dst in ((base + "/etc-iscsi", "/etc/iscsi"), (base + "/lock", "/run/lock/iscsi"),
                 (sysdir, "/sys")):
    subprocess.run(["mount", "--bind", src, dst], check=True)
sys.exit(subprocess.run(["/usr/sbin/iscsiadm", *sys.argv[3:]]).returncode)
"""
DISK1 = "iqn.2003-01.org.example:disk1"
DISK0 = "iqn.2003-01.org.example:disk0"


@pytest.fixture(scope="module")
def kernel(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """iscsikit.sysfs.fake's sample kernel (sessions 1, 2, 3, 10) and node records for
    three of them (old-style, tpgt 2, old-style + automatic on an offload iface's portal)."""
    from iscsikit.sysfs.fake import sample_kernel

    base = tmp_path_factory.mktemp("node-kernel")
    oracle = Oracle(base / "oracle")
    for args in (
        ("-o", "new", "-T", DISK1, "-p", "192.168.1.10"),
        ("-o", "new", "-T", DISK1, "-p", "192.168.1.11,2"),
        ("-o", "new", "-T", DISK0, "-p", "10.0.0.3"),
        ("-o", "update", "-T", DISK0, "-n", "node.startup", "-v", "automatic"),
    ):
        assert oracle.run("-m", "node", *args).returncode == 0
    root = base / "root"
    sample_kernel(root)
    shutil.copytree(oracle.etc, root / "etc/iscsi", symlinks=True)
    return oracle.base, root


@pytest.mark.parametrize(
    "args",
    [
        ("-m", "node", "-u"),
        ("-m", "node", "-u", "-T", DISK1),
        ("-m", "node", "-u", "-p", "192.168.1.11"),
        ("-m", "node", "-U", "all"),
        ("-m", "node", "-U", "automatic"),
        ("-m", "node", "-l"),
        ("-m", "node", "-L", "all"),
        ("-m", "node", "-s", "-T", DISK0),
        ("-m", "node", "-R", "-T", "nomatch"),
    ],
    ids=" ".join,
)
def test_node_sessions_without_daemon(kernel: tuple[Path, Path], args: tuple[str, ...]) -> None:
    base, root = kernel
    cmd = ["unshare", "-m", sys.executable, "-c", _INNER, str(base), str(root / "sys"), *args]
    theirs = subprocess.run(cmd, check=False, capture_output=True, text=True, timeout=120)
    code, stdout, stderr = _ours(root, list(args))
    assert (code, stdout) == (theirs.returncode, theirs.stdout), (stderr, theirs.stderr)
