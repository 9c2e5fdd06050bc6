"""The stored goldens are still what iscsiadm 2.1.8 prints (needs open-iscsi).

Runs iscsiadm for every case (reusing test_golden's runs when both ran) and compares
with expected/. ``ISCSIKIT_REGEN_GOLDEN=1`` rewrites expected/ instead, and removes the
files of cases that no longer exist (test_iscsiadm_script.py rewrites the script's):

    ISCSIKIT_REGEN_GOLDEN=1 pytest tests/golden
"""

from __future__ import annotations

import pytest

from .cases import CASES, Case
from .harness import (
    EXPECTED,
    EXTRA_GOLDENS,
    Golden,
    Runner,
    live_unavailable,
    regenerating,
    stored_case_names,
    substitution_for,
)

pytestmark = pytest.mark.integration


@pytest.fixture(autouse=True)
def _need_iscsiadm() -> None:
    reason = live_unavailable()
    if reason:
        pytest.skip(f"regenerating the goldens needs iscsiadm: {reason}")


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_stored_golden_is_current(
    case: Case, golden_runner: Runner, request: pytest.FixtureRequest
) -> None:
    subst = substitution_for(case, request)
    live = Golden.from_outcome(case.name, golden_runner.oracle_outcome(case, subst), subst)
    if regenerating():
        live.write()
        return
    stored = Golden.load(case.name)
    assert stored.rc == live.rc
    if case.unordered:  # readdir order: another file system, another order
        assert sorted(stored.stdout.splitlines()) == sorted(live.stdout.splitlines())
    else:
        assert stored.stdout == live.stdout
    assert stored.stderr == live.stderr
    assert stored.tree == live.tree


def test_no_stale_goldens() -> None:
    stale = stored_case_names() - {case.name for case in CASES} - EXTRA_GOLDENS
    if regenerating():
        for name in stale:
            for path in Golden.files(name):
                path.unlink(missing_ok=True)
        return
    assert not stale, f"goldens of removed cases in {EXPECTED}: {sorted(stale)}"
