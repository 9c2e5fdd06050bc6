"""I/O errors while the records are written: a DatabaseError (code 6) naming the file,
never a bare OSError, and the stored records as they were before or after the change.

Running as root, EACCES cannot be provoked, and EIO / ENOSPC need a failing disk: the
records module's ``os`` is swapped for a proxy whose chosen function fails once with EIO
when it touches the database (docs/mutation.md: fsio's error conversions).
"""

from __future__ import annotations

import contextlib
import errno
import os
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from iscsikit.errors import DatabaseError, IscsiErr
from iscsikit.records import DiscoveryRecord, IfaceRecord, NodeRecord, Records, fsio

T1 = "iqn.2024-01.test.faults:one"
T2 = "iqn.2024-01.test.faults:two"

#: The os functions the writer calls on the database, each made to fail in turn.
FAULTS = ("open", "write", "mkdir", "replace", "unlink", "rmdir", "symlink", "fsync")


class FaultyOs(ModuleType):
    """``os`` with ``name`` failing (EIO) on its ``nth`` call that touches ``root``."""

    def __init__(self, name: str, root: Path, nth: int = 1) -> None:
        super().__init__("os")
        self._name, self._root, self.fired = name, str(root), False
        self._left = nth

    def __getattr__(self, attr: str) -> Any:
        real = getattr(os, attr)
        if attr != self._name:
            return real

        def failing(*args: Any, **kwargs: Any) -> Any:
            touches = any(self._root in str(a) for a in args) or any(
                k.endswith("dir_fd") for k in kwargs
            )
            if attr in ("write", "fsync"):
                touches = True  # a descriptor: only the writer writes and syncs here
            if touches and not self.fired:
                self._left -= 1
                if self._left == 0:
                    self.fired = True
                    raise OSError(errno.EIO, os.strerror(errno.EIO))
            return real(*args, **kwargs)

        return failing


def snapshot(root: Path) -> dict[str, bytes | str]:
    out: dict[str, bytes | str] = {}
    for path in sorted(root.rglob("*")):
        rel = str(path.relative_to(root))
        if rel.startswith(".lock") or ".tmp" in path.name:
            continue
        if path.is_symlink():
            out[rel] = "-> " + os.readlink(path)
        elif path.is_file():
            out[rel] = path.read_bytes()
    return out


def _base(db: Records) -> DiscoveryRecord:
    disc = DiscoveryRecord.new("sendtargets", "127.0.0.1", 3260)
    db.add_discovery(disc)
    db.add_iface(IfaceRecord.new("ifx"))
    db.add_nodes([NodeRecord.new(T1, "127.0.0.1", 3260, 1)], discovery=disc)
    return disc


def _add(db: Records, disc: DiscoveryRecord) -> None:
    db.add_nodes([NodeRecord.new(T2, "127.0.0.2", 3261, 2)], discovery=disc)


def _update(db: Records, disc: DiscoveryRecord) -> None:
    [node] = [n for n in db.nodes() if n.id.target == T1]
    node.set("node.startup", "automatic")
    db.update_node(node)


def _delete(db: Records, disc: DiscoveryRecord) -> None:
    db.delete_nodes([n.id for n in db.nodes() if n.id.target == T1])


OPS = {"add": _add, "update": _update, "delete": _delete}


@pytest.mark.parametrize("nth", [1, 2, 3], ids=["1st", "2nd", "3rd"])
@pytest.mark.parametrize("durable", [False, True], ids=["plain", "durable"])
@pytest.mark.parametrize("op", OPS)
@pytest.mark.parametrize("fault", FAULTS)
def test_an_io_error_is_a_database_error_and_no_half_record(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fault: str, op: str, durable: bool, nth: int
) -> None:
    root = tmp_path / "iscsi"
    db = Records.at(root, durable=durable)
    disc = _base(db)
    before = snapshot(root)
    faulty = FaultyOs(fault, root, nth)
    monkeypatch.setattr(fsio, "os", faulty)
    try:
        OPS[op](db, disc)
    except DatabaseError as exc:
        assert exc.code is IscsiErr.IDBM
        assert "Input/output error" in str(exc), str(exc)
        assert str(root) in str(exc), str(exc)
        failed = True
    else:
        failed = False
    monkeypatch.undo()
    # The call failed exactly when the fault fired (a bare OSError would have ended the
    # test above; an error swallowed would leave failed False).
    assert failed == faulty.fired
    after = snapshot(root)
    # Each record file is whole: the old text or the new, never a torn one.
    for rel, data in after.items():
        if isinstance(data, bytes) and "/nodes/" in f"/{rel}":
            assert data.startswith(b"# BEGIN RECORD") and data.rstrip().endswith(b"# END RECORD")
    if failed:
        # A failure leaves the old record text or the new one at each path, nothing else.
        for rel, data in before.items():
            if rel in after and isinstance(data, bytes) and op == "add":
                assert after[rel] == data, rel
        # And the database can still be read and written.
        assert {n.id.target for n in Records.at(root, durable=False).nodes()} >= (
            {T1} if op != "delete" else set()
        )
        Records.at(root, durable=False).add_nodes([NodeRecord.new(T2, "127.0.0.3", 3260, 1)])


def test_every_fault_is_reached(tmp_path: Path) -> None:
    """Each os function fails in at least one operation (else its cases test nothing)."""
    reached: dict[str, set[str]] = {}
    for n, (fault, op) in enumerate((f, o) for f in FAULTS for o in OPS):
        root = tmp_path / str(n)
        db = Records.at(root, durable=True)
        disc = _base(db)
        faulty = FaultyOs(fault, root)
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(fsio, "os", faulty)
            with contextlib.suppress(DatabaseError):
                OPS[op](db, disc)
        if faulty.fired:
            reached.setdefault(fault, set()).add(op)
    assert set(reached) == set(FAULTS), reached
