"""64 processes updating one database at once: no lost update, no corrupt file, no debris.

Each process i
* sets keys on its own record (``own<i>``) -- distinct records;
* sets its own key on one of three shared records (record ``shared<i // 22>``, int key
  ``i % 22``) through the plain read / set / update_node API -- distinct keys of the
  same record, which must all survive because update_node merges only what changed;
* increments a counter on one record inside ``with db.lock`` -- the same key of the
  same record, a read-modify-write that must never lose an increment.
"""

from __future__ import annotations

import multiprocessing
import time
from pathlib import Path

from iscsikit.config.registry import REGISTRY, RecordType, ValueType
from iscsikit.records import NodeRecord, Records
from iscsikit.records.layout import TEMP_MARKER

PROCS = 64
T = "iqn.2001-04.com.example:"
COUNTER = "node.session.iscsi.DefaultTime2Retain"
PER_RECORD = 22
INT_KEYS = [
    k.name
    for k in REGISTRY.keys(RecordType.NODE)
    if k.modifiable and k.value_type is ValueType.INT32 and k.name != COUNTER
][:PER_RECORD]


def worker(db_root: str, lock_dir: str, i: int, start: float) -> None:
    db = Records.at(db_root, lock_dir=lock_dir, lock_timeout=60)
    while time.time() < start:  # line everyone up
        time.sleep(0.001)
    own = db.node(target=f"{T}own{i}")
    own.set("node.startup", "automatic")
    own.set("node.session.auth.username", f"user {i} #x")
    db.update_node(own)
    shared = db.node(target=f"{T}shared{i // PER_RECORD}")
    shared.set(INT_KEYS[i % PER_RECORD], str(1000 + i))
    db.update_node(shared)
    with db.lock:
        counter = db.node(target=f"{T}counter")
        counter.set(COUNTER, str(int(counter.get(COUNTER)) + 1))
        db.update_node(counter)


def test_64_processes(tmp_path: Path) -> None:
    assert len(INT_KEYS) == PER_RECORD
    db_root, lock_dir = tmp_path / "iscsi", tmp_path / "lock"
    db = Records.at(db_root, lock_dir=lock_dir)
    names = [f"own{i}" for i in range(PROCS)] + ["shared0", "shared1", "shared2", "counter"]
    db.add_nodes([NodeRecord.new(T + n, "10.0.0.1", 3260, 1) for n in names])

    ctx = multiprocessing.get_context("fork")
    start = time.time() + 1.0
    procs = [
        ctx.Process(target=worker, args=(str(db_root), str(lock_dir), i, start))
        for i in range(PROCS)
    ]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(120)
    assert [p.exitcode for p in procs] == [0] * PROCS

    records = {n.target[len(T) :]: n for n in db.nodes()}
    assert db.problems == []  # every file parses cleanly
    for i in range(PROCS):
        own = records[f"own{i}"]
        assert own.get("node.startup") == "automatic"
        assert own.get("node.session.auth.username") == f"user {i} #x"
        shared = records[f"shared{i // PER_RECORD}"]
        assert shared.get(INT_KEYS[i % PER_RECORD]) == str(1000 + i)
    assert records["counter"].get(COUNTER) == str(PROCS)
    assert [p for p in tmp_path.rglob("*") if TEMP_MARKER in p.name] == []
    assert not (lock_dir / "lock.write").exists()
    assert not (db_root / ".iscsikit-writing").exists()
