"""The CI slice of the fuzz campaign (README.md here): for every harness, the whole
committed corpus replayed in this process (each input one test step, so a finding shows
its traceback), then a short coverage-guided atheris run in a subprocess, bounded in
inputs and time, with a fixed seed.  Any finding (an exception the parser does not
document, a hang over 10 s, over 2 GiB) fails the test with the libFuzzer log.
"""

from __future__ import annotations

import importlib
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import fuzzlib
import pytest

HERE = Path(__file__).resolve().parent
#: The bounded run: inputs, seconds, seed (the whole slice stays under ~3 minutes).
RUNS = 20000
MAX_TIME = 10
SEED = 14


def harness(parser: str) -> ModuleType:
    return importlib.import_module(f"fuzz_{parser}")


@pytest.mark.parametrize("parser", fuzzlib.HARNESSES)
def test_committed_corpus_replays_clean(parser: str) -> None:
    files = fuzzlib.corpus_files(parser)
    assert files, f"tests/fuzz/corpus/{parser}/ is empty: run tests/fuzz/make_corpus.py"
    test_one_input = harness(parser).TestOneInput
    for path in files:
        try:
            test_one_input(path.read_bytes())
        except Exception as exc:
            raise AssertionError(f"{path.relative_to(HERE)}: {exc!r}") from exc


@pytest.mark.parametrize("parser", fuzzlib.HARNESSES)
def test_bounded_atheris_run_finds_nothing(parser: str, tmp_path: Path) -> None:
    cmd = [
        sys.executable,
        str(HERE / f"fuzz_{parser}.py"),
        str(tmp_path / "new"),
        str(fuzzlib.CORPUS / parser),
        f"-runs={RUNS}",
        f"-max_total_time={MAX_TIME}",
        f"-seed={SEED}",
        "-timeout=10",
        "-rss_limit_mb=2048",
        "-max_len=65536",
        f"-artifact_prefix={tmp_path}/",
    ]
    (tmp_path / "new").mkdir()
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)
    log = done.stdout + done.stderr
    if "Uncaught Python exception" in log:  # the traceback, not the stats around it
        log = log[log.index("Uncaught Python exception") :]
    findings = sorted(p.name for p in tmp_path.glob("*-*") if p.is_file())
    assert done.returncode == 0 and not findings, (
        f"fuzz_{parser} found something (exit {done.returncode}, {findings}):\n{log[-4000:]}"
    )
    assert "Done " in log, log[-2000:]
