"""``.ci/run`` cannot be talked out of its rules: a variable that would let tests be
skipped or deselected stops it before anything runs (exit 2)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

CI_RUN = Path(__file__).resolve().parents[2] / ".ci" / "run"


@pytest.mark.parametrize(
    ("name", "value"),
    [("ISCSIKIT_ALLOW_SKIPS", "1"), ("ISCSIKIT_ALLOW_SKIPS", ""), ("PYTEST_ADDOPTS", "-k x")],
)
def test_a_skip_variable_is_refused(name: str, value: str) -> None:
    refused = ("ISCSIKIT_ALLOW_SKIPS", "PYTEST_ADDOPTS")
    env = {k: v for k, v in os.environ.items() if k not in refused}
    env[name] = value
    done = subprocess.run(
        ["bash", str(CI_RUN)], env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 2
    assert f".ci/run: {name} is set" in done.stderr
    assert done.stdout == ""  # nothing ran


def test_ci_is_forced_on() -> None:
    text = CI_RUN.read_text()
    assert "\nexport CI=true\n" in text
    assert 'CI="${CI:-' not in text
