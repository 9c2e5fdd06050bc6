"""``--output json`` on every mode: the document validates against its schema.

For each case of JSON_CASES, iscsikit-adm runs the case's invocation plus
``--output json`` on the case's starting database. Its exit code must be iscsiadm's for
the plain invocation, its stdout one JSON document (whenever it prints anything, and
always on success) that validates against docs/iscsikit-adm.schema.json with
``"version": 1`` and the invocation's mode, that holds no CHAP secret unless ``-S``
asked for them, and the database must change exactly as iscsiadm changed it.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import pytest

from .cases import CASES_BY_NAME, JSON_CASES, SECRETS, Case
from .harness import SCHEMA, Runner, compare, substitution_for

PARAMS = [
    pytest.param(
        CASES_BY_NAME[name],
        id=name,
        marks=[pytest.mark.integration] if CASES_BY_NAME[name].needs_tgtd else [],
    )
    for name in JSON_CASES
]


@pytest.fixture(scope="module")
def validator() -> Any:
    jsonschema = pytest.importorskip(
        "jsonschema", reason="jsonschema is not installed (the test extra must list it)"
    )
    assert SCHEMA.exists(), f"{SCHEMA} is missing (the JSON document's schema)"
    schema = json.loads(SCHEMA.read_text())
    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    return cls(schema, format_checker=cls.FORMAT_CHECKER)


def test_every_mode_has_json_cases() -> None:
    modes = {CASES_BY_NAME[name].mode for name in JSON_CASES}
    assert modes == {"node", "discovery", "discoverydb", "iface", "session", "host", "fw"}


@pytest.mark.parametrize("case", PARAMS)
def test_json_output(
    case: Case, golden_runner: Runner, validator: Any, request: pytest.FixtureRequest
) -> None:
    subst = substitution_for(case, request)
    golden = golden_runner.golden(case, subst)
    ours = golden_runner.iscsikit_outcome(case, subst, extra=("--output", "json"))
    # Exit code and database as iscsiadm's plain invocation; stdout is checked below.
    as_json = dataclasses.replace(case, deliberate="--output json")
    problems = compare(as_json, golden, ours, subst)
    assert not problems, "\n".join(problems)
    if ours.rc != 0 and not ours.stdout.strip():
        return
    try:
        document = json.loads(ours.stdout)
    except json.JSONDecodeError as exc:
        pytest.fail(f"stdout is not one JSON document ({exc}):\n{ours.stdout}")
    errors = sorted(validator.iter_errors(document), key=lambda e: list(e.absolute_path))
    assert not errors, "\n".join(
        f"{'/'.join(map(str, e.absolute_path)) or '<root>'}: {e.message}" for e in errors
    )
    assert document.get("version") == 1
    assert document.get("mode") == case.mode
    if "-S" not in case.argv and "--show" not in case.argv:
        leaked = [secret for secret in SECRETS if secret in ours.stdout]
        assert not leaked, f"secrets in the JSON document without -S: {leaked}"
