"""The example out-of-tree driver package, as a vendor ships it: pip-installed into a
fresh, isolated venv next to iscsikit, found by the plugin manager through its entry
point, and passing the driver kit with that venv's own pytest against tgtd.

Both projects are copied out of the checkout first, so their builds leave nothing in
it; pip's cache (``~/.cache/pip`` unless ``PIP_CACHE_DIR`` says otherwise) keeps the
dependency downloads across runs.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from iscsikit.testing.kit import TransportConformance, wait_for
from iscsikit.testing.plugin import TgtdFactory
from iscsikit.testing.tgtd import tgt_missing

pytestmark = pytest.mark.integration

CHECKOUT = Path(__file__).resolve().parents[2]
EXAMPLE = CHECKOUT / "examples" / "iscsikit-driver-example"
IQN = "iqn.2024-01.test.iscsikit.example"

_IGNORE = shutil.ignore_patterns(
    "__pycache__", "*.pyc", "*.egg-info", "build", "dist", ".pytest_cache", ".mypy_cache"
)


def _run(cmd: list[str], *, timeout: float, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in {"PYTHONPATH", "VIRTUAL_ENV"}}
    return subprocess.run(
        cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )


def _ok(run: subprocess.CompletedProcess[str]) -> str:
    assert run.returncode == 0, f"{run.args} exited {run.returncode}:\n{run.stdout}\n{run.stderr}"
    return run.stdout


def _copy_iscsikit(dest: Path) -> Path:
    dest.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(CHECKOUT / name, dest / name)
    for package in ("iscsikit", "drivers"):
        shutil.copytree(CHECKOUT / package, dest / package, ignore=_IGNORE)
    return dest


@pytest.fixture(scope="module")
def venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv (no system site-packages) with iscsikit and the example installed."""
    if tgt_missing():
        pytest.skip(f"tgt not installed: {', '.join(tgt_missing())} (Debian package tgt)")
    base = tmp_path_factory.mktemp("example-driver")
    env_dir = base / "venv"
    _ok(_run([sys.executable, "-m", "venv", str(env_dir)], timeout=120, cwd=base))
    python = env_dir / "bin" / "python"
    iscsikit_src = _copy_iscsikit(base / "iscsikit-src")
    example_src = base / "example-src"
    shutil.copytree(EXAMPLE, example_src, ignore=_IGNORE)
    install = [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    _ok(_run([*install, str(iscsikit_src), "pytest"], timeout=600, cwd=base))
    _ok(_run([*install, str(example_src)], timeout=600, cwd=base))
    return env_dir


def test_the_venv_is_isolated(venv: Path) -> None:
    probe = "import sys, iscsikit; print(sys.prefix, iscsikit.__file__, sep='\\n')"
    out = _ok(_run([str(venv / "bin/python"), "-c", probe], timeout=60, cwd=venv))
    prefix, module = out.splitlines()
    assert Path(prefix) == venv
    assert Path(module).is_relative_to(venv)  # the installed copy, not the checkout
    cfg = (venv / "pyvenv.cfg").read_text()
    assert re.search(r"include-system-site-packages\s*=\s*false", cfg)


def test_the_plugin_manager_discovers_example(venv: Path) -> None:
    probe = (
        "import json; from iscsikit.plugin import manager; pm, reg = manager.build(); "
        "cls = reg.get('example'); "
        "print(json.dumps({'names': reg.names(), 'module': cls.__module__, "
        "'plugins': sorted(n for n, _ in pm.list_name_plugin())}))"
    )
    out = json.loads(_ok(_run([str(venv / "bin/python"), "-c", probe], timeout=60, cwd=venv)))
    assert "example" in out["names"]
    assert {"usertcp", "tcp"} <= set(out["names"])  # iscsikit's own drivers too
    assert out["module"] == "iscsikit_example_driver"
    assert "example" in out["plugins"]  # registered under its entry-point name


def test_the_api_logs_in_through_example(venv: Path, tgtd_factory: TgtdFactory) -> None:
    tgtd = tgtd_factory()
    tgtd.add_target(f"{IQN}:api", luns=1)
    probe = (
        "import json, sys, iscsikit\n"
        "portal = sys.argv[1]\n"
        "found = iscsikit.discover(portal, transport='example')\n"
        "with iscsikit.login(portal, found[0].name, transport='example') as s:\n"
        "    out = {'names': [t.name for t in found], 'transport': s.transport,\n"
        "           'driver': type(s.transport_session).__module__, 'rtt': s.ping()}\n"
        "print(json.dumps(out))\n"
    )
    run = _run([str(venv / "bin/python"), "-c", probe, tgtd.portal], timeout=120, cwd=venv)
    out = json.loads(_ok(run))
    assert out["names"] == [f"{IQN}:api"]
    assert out["transport"] == "example"
    assert out["driver"] == "iscsikit_example_driver.session"
    assert 0 <= out["rtt"] < 5
    assert wait_for(lambda: tgtd.sessions(1) == [])  # logged out


def test_the_example_passes_the_kit(venv: Path, tmp_path: Path) -> None:
    tests = tmp_path / "tests"
    shutil.copytree(EXAMPLE / "tests", tests, ignore=_IGNORE)
    shutil.copy2(EXAMPLE / "pyproject.toml", tmp_path / "pyproject.toml")
    run = _run(
        [str(venv / "bin/python"), "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rA"],
        timeout=300,
        cwd=tmp_path,
    )
    output = run.stdout + run.stderr
    # Exit code 5 (nothing collected) is a failure here as much as 1 is.
    assert run.returncode == 0, output
    summary = output.strip().splitlines()[-1]
    counts = {word: int(n) for n, word in re.findall(r"(\d+) (\w+)", summary)}
    kit_tests = {name for name in dir(TransportConformance) if name.startswith("test_")}
    assert set(counts) == {"passed"}, summary
    assert counts["passed"] >= len(kit_tests), summary
    # Every kit test ran and passed against the example driver, on tgtd and on the
    # simulated target.
    for cls in ("TestExampleConformance", "TestExampleOnSimulatedTarget"):
        for name in kit_tests:
            assert re.search(rf"^PASSED \S+::{cls}::{name}$", output, re.M), (cls, name)
