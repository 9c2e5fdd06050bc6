"""Acceptance: a script written for iscsiadm runs unchanged with iscsikit-adm substituted.

scripts/iscsiadm-workflow.sh (discover, set node.startup automatic, list, show, delete,
checking every exit code) runs with ``ISCSIADM`` unset inside the oracle's mount
namespace (so ``iscsiadm`` works on a scratch database), and with
``ISCSIADM="python -m iscsikit"`` on a copy of the same database. Both must succeed and
print the same; the databases must end up the same. The stored
``expected/iscsiadm-workflow.*`` serve where open-iscsi is absent.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from iscsikit.testing.oracle import Oracle

from .cases import GOLD, INITIATOR, Case
from .harness import (
    SCRIPTS,
    Golden,
    Outcome,
    Runner,
    Substitution,
    Targets,
    Tree,
    compare,
    copy_db,
    db_tree,
    fake_sysfs,
    iscsikit_env,
    regenerating,
)

pytestmark = pytest.mark.integration

SCRIPT = SCRIPTS / "iscsiadm-workflow.sh"
#: The script as a case: its argument is the portal; the database starts with the iface
#: discovery goes through (iscsiadm runs without iscsid here).
WORKFLOW = Case("iscsiadm-workflow", ("{PORTAL}",), GOLD, host_network=True)


def _outcome(
    argv: tuple[str, ...], proc: subprocess.CompletedProcess[str], before: Tree, after: Tree
) -> Outcome:
    return Outcome(argv, proc.returncode, proc.stdout, proc.stderr, before, after)


def test_workflow_script_runs_unchanged(
    golden_runner: Runner, golden_targets: Targets, tmp_path: Path
) -> None:
    subst = Substitution(golden_targets)
    start = golden_runner.start_db(WORKFLOW, subst)
    args = subst.expand(WORKFLOW.argv)

    root = tmp_path / "root"
    etc = root / "etc" / "iscsi"
    copy_db(start, etc)
    fake_sysfs(root)
    # Links copied from the starting database point into the directory it was built in.
    prefixes = [str(start)]
    before = db_tree(etc, link_prefixes=prefixes)
    proc = subprocess.run(
        ["bash", str(SCRIPT), *args],
        env=iscsikit_env(root, ISCSIADM=f"{sys.executable} -m iscsikit"),
        cwd=root,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    after = db_tree(etc, link_prefixes=prefixes)
    ours = _outcome(("ISCSIADM=iscsikit-adm", str(SCRIPT), *args), proc, before, after)

    if golden_runner.live:
        base = tmp_path / "oracle"
        copy_db(start, base / "etc-iscsi")
        oracle = Oracle(base, initiator_name=INITIATOR)
        path = os.environ.get("PATH", "/usr/bin:/bin") + ":/usr/sbin:/sbin"
        before = db_tree(oracle.etc)
        theirs_proc = golden_runner.run_script_as_oracle(oracle, SCRIPT, args, {"PATH": path})
        argv = ("iscsiadm", str(SCRIPT), *args)
        theirs = _outcome(argv, theirs_proc, before, db_tree(oracle.etc))
        assert theirs.rc == 0, (
            f"the script fails with iscsiadm itself:\n{theirs.stdout}{theirs.stderr}"
        )
        golden = Golden.from_outcome(WORKFLOW.name, theirs, subst)
        if regenerating():
            golden.write()
        else:
            stored = Golden.load(WORKFLOW.name)
            assert (stored.rc, stored.stdout, stored.tree) == (
                golden.rc,
                golden.stdout,
                golden.tree,
            ), "expected/iscsiadm-workflow.* is stale: rerun with ISCSIKIT_REGEN_GOLDEN=1"
    else:
        golden = Golden.load(WORKFLOW.name)

    assert ours.rc == 0, f"the script fails with iscsikit-adm:\n{ours.stdout}{ours.stderr}"
    problems = compare(WORKFLOW, golden, ours, subst)
    assert not problems, "\n".join(problems)
