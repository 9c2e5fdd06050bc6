"""The node-name cache against the real iscsiadm 2.1.8: records iscsiadm adds or
removes between two iscsikit listings are seen -- right away (in the racy window of
the changed directories) and once the cache holds the new tree -- and the listing
always equals iscsiadm's own ``-m node``."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from iscsikit.records import Records
from iscsikit.records.namecache import MARGIN_NS
from iscsikit.testing.oracle import Oracle, unavailable

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(unavailable() is not None, reason=str(unavailable())),
]

T = "iqn.2024-01.test.cache:"


def settle() -> None:
    time.sleep(MARGIN_NS / 1e9 * 2)


def theirs(oracle: Oracle) -> list[str]:
    result = oracle.run("-m", "node")
    if result.returncode == 21:
        return []
    assert result.returncode == 0, result.stderr
    return sorted(result.stdout.splitlines())


def ours(records: Records) -> list[str]:
    return sorted(f"{n.address}:{n.port},{n.tpgt} {n.target}" for n in records.node_ids())


def new(oracle: Oracle, target: str, portal: str) -> None:
    result = oracle.run("-m", "node", "-o", "new", "-T", target, "-p", portal)
    assert result.returncode == 0, result.stderr


def delete(oracle: Oracle, target: str, portal: str) -> None:
    result = oracle.run("-m", "node", "-o", "delete", "-T", target, "-p", portal)
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("wait", [False, True], ids=["at-once", "settled"])
def test_iscsiadm_changes_between_listings_are_seen(tmp_path: Path, wait: bool) -> None:
    oracle = Oracle(tmp_path)
    for i in range(3):
        new(oracle, f"{T}t{i}", "127.0.0.1:3260,1")
    records = Records.at(oracle.db_root, lock_dir=oracle.lock)
    settle()
    assert ours(records) == theirs(oracle)
    assert ours(records) == theirs(oracle)
    assert records._reader.last_walk == (1 + 3 + 3, 0)  # all from the cache

    def check() -> None:
        if wait:
            settle()
        assert ours(records) == theirs(oracle)
        if wait:
            assert ours(records) == theirs(oracle)

    new(oracle, f"{T}t9", "127.0.0.1:3260,1")  # a new target
    check()
    new(oracle, f"{T}t0", "127.0.0.2:3260,1")  # a new portal of a known target
    check()
    new(oracle, f"{T}t1", "127.0.0.1:3261,1")  # another portal directory
    check()
    delete(oracle, f"{T}t2", "127.0.0.1:3260")  # a target gone
    check()
    delete(oracle, f"{T}t0", "127.0.0.2:3260")  # a portal gone, its target stays
    check()
    assert len(theirs(oracle)) == 4
