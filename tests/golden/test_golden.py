"""The golden battery: every case of cases.py through iscsikit-adm, against iscsiadm 2.1.8.

With open-iscsi installed (CI) the reference is iscsiadm run live on a byte-identical
database; without it, the stored golden in expected/ (test_regenerate.py keeps those
current). stdout and exit code must match, and so must the database afterwards; stderr
must carry iscsiadm's messages in order (stderr.py).
A case marked ``deliberate`` compares the exit code only (docs/compatibility.md).
"""

from __future__ import annotations

import pytest

from .cases import CASES, PLACEHOLDERS, Case
from .harness import (
    EXTRA_GOLDENS,
    Golden,
    Outcome,
    Runner,
    Substitution,
    compare,
    stored_case_names,
    substitution_for,
)
from .stderr import stderr_problems

_integration = pytest.mark.integration

PARAMS = [
    pytest.param(case, id=case.name, marks=[_integration] if case.needs_tgtd else [])
    for case in CASES
]


@pytest.mark.parametrize("case", PARAMS)
def test_case(case: Case, golden_runner: Runner, request: pytest.FixtureRequest) -> None:
    subst = substitution_for(case, request)
    golden = golden_runner.golden(case, subst)
    ours = golden_runner.iscsikit_outcome(case, subst)
    problems = compare(case, golden, ours, subst)
    problems += stderr_problems(case.name, golden.stderr, subst.normalise(ours.stderr))
    assert not problems, "\n".join(problems)


def test_battery_size_and_coverage() -> None:
    """At least 80 invocations, every mode, print levels and error paths present."""
    assert len(CASES) >= 80
    modes = {case.mode for case in CASES}
    assert {"node", "discovery", "discoverydb", "iface", "session", "host", "fw"} <= modes
    for mode, levels in {"node": "012", "discovery": "1", "iface": "012", "session": "134"}.items():
        for level in levels:
            assert any(
                case.mode == mode
                and "-P" in case.argv
                and case.argv[case.argv.index("-P") + 1] == level
                for case in CASES
            ), (mode, level)
    for case in CASES:
        for word in case.argv:
            assert "{" not in word or any(p in word for p in PLACEHOLDERS), (case.name, word)


def test_every_case_has_a_stored_golden() -> None:
    """expected/ matches the battery: a golden per case, none left from removed cases."""
    stored = stored_case_names()
    names = {case.name for case in CASES}
    assert not names - stored, f"cases without a stored golden: {sorted(names - stored)}"
    stale = stored - names - EXTRA_GOLDENS
    assert not stale, f"stale goldens: {sorted(stale)}"


def test_compare_sees_every_kind_of_difference() -> None:
    """The comparison itself: exit code, stdout, line order, database, deliberate."""
    case = Case("x", ("-m", "node"))
    golden = Golden("x", 0, "a\nb\n", "", None)
    same = Outcome(case.argv, 0, "a\nb\n", "", {"f": "1"}, {"f": "1"})
    subst = Substitution(None)
    assert compare(case, golden, same, subst) == []
    swapped = Outcome(case.argv, 0, "b\na\n", "", {}, {})
    assert compare(case, golden, swapped, subst)
    assert compare(Case("x", case.argv, unordered=True), golden, swapped, subst) == []
    failed = Outcome(case.argv, 7, "a\nb\n", "", {}, {})
    assert "exit code" in "".join(compare(case, golden, failed, subst))
    wrote = Outcome(case.argv, 0, "a\nb\n", "", {}, {"nodes/t": "<dir>"})
    assert "changed the database" in "".join(compare(case, golden, wrote, subst))
    other = Outcome(case.argv, 0, "other\n", "", {}, {})
    assert compare(Case("x", case.argv, deliberate="why"), golden, other, subst) == []
    written = Golden("x", 0, "a\nb\n", "", {"nodes/u": "<dir>"})
    assert "database afterwards" in "".join(compare(case, written, wrote, subst))
