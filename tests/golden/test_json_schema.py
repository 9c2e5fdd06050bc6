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


# -- the HBA sub-modes against a simulated offload host ----------------------------------
# iscsiadm has no JSON output and no kernel offload driver answers here, so these cases
# check the documents against the schema and against what the simulated host holds.


def _adm_json(root: Any, sock: Any, *args: str) -> tuple[int, dict[str, Any]]:
    import os
    import subprocess
    import sys

    env = {**os.environ, "ISCSIKIT_ROOT": str(root), "ISCSIKIT_OFFLOAD_NETLINK": str(sock)}
    done = subprocess.run(
        [sys.executable, "-m", "iscsikit", *args, "--output", "json"],
        env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    return done.returncode, json.loads(done.stdout)


HBA_JSON_CASES: list[tuple[str, ...]] = [
    ("-C", "chap", "-o", "show"),
    ("-C", "stats"),
    ("-C", "flashnode"),
    ("-C", "flashnode", "-x", "0"),
    ("-C", "flashnode", "-x", "0", "-o", "update", "-n", "flashnode.session.erl", "-v", "1"),
    ("-C", "flashnode", "-x", "0", "-o", "update", "-n", "flashnode.session.bogus", "-v", "1"),
    ("-C", "flashnode", "-x", "9"),
    ("-C", "chap", "-o", "delete", "-x", "3"),
]


def test_hba_submodes_json(tmp_path: Any, validator: Any) -> None:
    from iscsikit.netlink.constants import ChapType
    from iscsikit.netlink.wire import ChapRecord
    from iscsikit.testing.simhba import HbaServer, SimulatedHba

    hba = SimulatedHba(tmp_path / "root", "qla4xxx")
    hba.chap[0] = ChapRecord(0, ChapType.OUT, "joe", b"hba-secret-1")
    hba.chap[4] = ChapRecord(4, ChapType.IN, "tgt", b"hba-secret-2")
    hba.host_stats = {"mactx_frames": 5, "iscsi_sequence_error": 2**64 - 1}
    hba.add_flashnode(0, "iqn.2003-01.org.example:fl0", "192.0.2.9")
    docs: dict[tuple[str, ...], tuple[int, dict[str, Any]]] = {}
    with HbaServer(hba) as server:
        sock = server.listen(tmp_path / "nl.sock")
        for case in HBA_JSON_CASES:
            argv = ("-m", "host", "-H", str(hba.host_no), *case)
            code, doc = _adm_json(hba.root, sock, *argv)
            errors = [e.message for e in validator.iter_errors(doc)]
            assert not errors, (case, errors)
            assert doc["mode"] == "host" and ("error" in doc) == (code != 0), (case, doc)
            docs[case] = (code, doc)
    code, chap = docs[HBA_JSON_CASES[0]]
    assert (code, chap["op"]) == (0, "show")
    assert chap["chap"] == [
        {"host.auth.tbl_idx": 0, "host.auth.username": "joe", "host.auth.password": None},
        {"host.auth.tbl_idx": 4, "host.auth.username_in": "tgt", "host.auth.password_in": None},
    ]
    # iscsiadm refuses -S in host mode, so a document never holds the secrets (text
    # mode prints them, as iscsiadm does).
    assert "hba-secret" not in json.dumps(list(docs.values()))
    (stats,) = docs[("-C", "stats")][1]["stats"]
    assert (stats["host_no"], stats["mactx_frames"], stats["iscsi_sequence_error"]) == (7, 5, -1)
    assert len(stats) == 83
    (listed,) = docs[("-C", "flashnode")][1]["flashnodes"]
    assert listed["index"] == 0
    assert listed["flashnode.targetname"] == "iqn.2003-01.org.example:fl0"
    assert docs[("-C", "flashnode")][1]["op"] == "list"
    assert docs[("-C", "flashnode", "-x", "0")][1]["flashnodes"] == [listed]
    updated = docs[HBA_JSON_CASES[4]]
    assert (updated[0], updated[1]["op"]) == (0, "update")
    assert docs[HBA_JSON_CASES[5]][1]["error"]["code"] == 7
    missing = docs[("-C", "flashnode", "-x", "9")]
    assert (missing[0], missing[1]["error"]["code"]) == (2, 2)
    deleted = docs[("-C", "chap", "-o", "delete", "-x", "3")]
    assert (deleted[0], deleted[1]["op"], deleted[1]["error"]["code"]) == (1, "delete", 1)
