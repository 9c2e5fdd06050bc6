"""The bindings file: which SCSI bus and target id each iSCSI target name keeps.

linux-iscsi's ``/var/lib/iscsi/bindings`` (iscsi.bindings(5)) gives every target a
``bus target`` pair that stays the same across reboots, so names derived from it stay
the same too.  iscsikit uses it for the opt-in persistent names
``/dev/iscsi/bus<B>/target<T>/lun<L>/disk`` (``iscsikit-persistent-name``, docs/
persistent-names.md).  One line per target: ``bus target targetname``; ``#`` comments and
blank lines are kept as they are.  A target without a line gets the smallest free target
id on the smallest bus that has one (ids 0..``TARGETS_PER_BUS``-1), and its line is added
under an exclusive lock, written to a temporary file and renamed into place, so
concurrent helpers (udev runs one per device) never lose or duplicate an entry.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from iscsikit.errors import DatabaseError

__all__ = ["BINDINGS_FILE", "TARGETS_PER_BUS", "Binding", "Bindings"]

#: Under the filesystem root (linux-iscsi's location).
BINDINGS_FILE = "var/lib/iscsi/bindings"
#: Target ids per bus before the next bus is used (linux-iscsi allocates the same way).
TARGETS_PER_BUS = 256
MAX_BUSES = 256


@dataclass(frozen=True, slots=True)
class Binding:
    bus: int
    target: int
    name: str


def _parse(text: str, path: Path) -> list[Binding]:
    out = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        fields = line.split()
        if len(fields) != 3 or not fields[0].isdigit() or not fields[1].isdigit():
            raise DatabaseError(f"{path}:{number}: expected 'bus target targetname': {raw!r}")
        out.append(Binding(int(fields[0]), int(fields[1]), fields[2]))
    return out


class Bindings:
    """The bindings file at ``path``."""

    def __init__(self, path: Path) -> None:
        self.path = path

    @classmethod
    def under(cls, root: Path) -> Bindings:
        return cls(root / BINDINGS_FILE)

    def read(self) -> list[Binding]:
        try:
            text = self.path.read_text(encoding="utf-8", errors="surrogateescape")
        except FileNotFoundError:
            return []
        except OSError as exc:
            raise DatabaseError(f"cannot read {self.path}: {exc.strerror}") from exc
        return _parse(text, self.path)

    def lookup(self, name: str) -> Binding | None:
        return next((b for b in self.read() if b.name == name), None)

    def bind(self, name: str) -> Binding:
        """The binding of target ``name``, added (smallest free id) when it has none."""
        found = self.lookup(name)
        if found is not None:
            return found
        with self._locked() as existing:
            found = next((b for b in existing if b.name == name), None)
            if found is not None:  # another helper bound it meanwhile
                return found
            binding = _first_free(existing, name)
            self._append([binding])
            return binding

    def add(self, wanted: Iterable[Binding], *, dry_run: bool = False) -> list[tuple[Binding, str]]:
        """Add bindings with their own ids (a migration keeps linux-iscsi's); returns
        those refused, with why: a name bound elsewhere, or an id bound to another name.
        One already present as asked is neither added nor refused."""
        refused: list[tuple[Binding, str]] = []
        with self._locked(take=not dry_run) as existing:
            by_name = {b.name: b for b in existing}
            by_id = {(b.bus, b.target): b.name for b in existing}
            new = []
            for b in wanted:
                have = by_name.get(b.name)
                if have is not None and (have.bus, have.target) == (b.bus, b.target):
                    continue
                other = by_id.get((b.bus, b.target))
                if have is not None:
                    refused.append((b, f"already bound to {have.bus} {have.target}"))
                elif other is not None:
                    refused.append((b, f"{b.bus} {b.target} is bound to {other}"))
                else:
                    new.append(b)
                    by_name[b.name] = b
                    by_id[(b.bus, b.target)] = b.name
            if new and not dry_run:
                self._append(new)
        return refused

    @contextlib.contextmanager
    def _locked(self, *, take: bool = True) -> Iterator[list[Binding]]:
        """The current bindings, read under the exclusive lock (``take=False``: no lock,
        nothing created: a dry run only reads)."""
        if not take:
            yield self.read()
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        lock_path = self.path.with_name(self.path.name + ".lock")
        with open(lock_path, "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
            yield self.read()

    def _append(self, bindings: list[Binding]) -> None:
        """Lines added under the lock: written to a temporary file, renamed into place."""
        try:
            old = self.path.read_text(encoding="utf-8", errors="surrogateescape")
        except FileNotFoundError:
            old = ""
        if old and not old.endswith("\n"):
            old += "\n"
        lines = "".join(f"{b.bus} {b.target} {b.name}\n" for b in bindings)
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}")
        try:
            with open(tmp, "w", encoding="utf-8", errors="surrogateescape") as f:
                f.write(old + lines)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.path)
        except OSError as exc:
            tmp.unlink(missing_ok=True)
            raise DatabaseError(f"cannot write {self.path}: {exc.strerror}") from exc


def _first_free(existing: list[Binding], name: str) -> Binding:
    used = {(b.bus, b.target) for b in existing}
    for bus in range(MAX_BUSES):
        for target in range(TARGETS_PER_BUS):
            if (bus, target) not in used:
                return Binding(bus, target, name)
    raise DatabaseError("every bus and target id is bound")
