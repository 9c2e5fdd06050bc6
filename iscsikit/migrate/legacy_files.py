"""linux-iscsi's two other files: the bindings file and ``/etc/fstab.iscsi``.

* bindings (``/var/iscsi/bindings``, older ``/etc/iscsi.bindings``): one line per target,
  ``BusId TargetId TargetName``, ``#`` comments -- the same meaning and layout as
  iscsikit's own bindings file (:mod:`iscsikit.records.bindings`), which only lives
  elsewhere (``/var/lib/iscsi/bindings``).
* fstab.iscsi: fstab(5) lines that linux-iscsi's init script mounted after its logins
  (and unmounted before logging out).  With open-iscsi they go into ``/etc/fstab`` with
  ``_netdev``, so systemd / the netfs script orders them after the network and iSCSI.

Bad lines become :class:`~iscsikit.migrate.conf.ConfProblem` with ``file:line``.  Pure.
"""

from __future__ import annotations

from dataclasses import dataclass

from iscsikit.migrate.conf import ConfProblem

__all__ = [
    "FstabEntry",
    "LegacyBinding",
    "fstab_line",
    "parse_bindings",
    "parse_fstab",
]


@dataclass(frozen=True, slots=True)
class LegacyBinding:
    bus: int
    target: int
    name: str
    line: int


@dataclass(frozen=True, slots=True)
class FstabEntry:
    """One fstab.iscsi line: the six fstab(5) fields (dump and pass default to 0)."""

    device: str
    mountpoint: str
    fstype: str
    options: str
    dump: str
    passno: str
    line: int


def parse_bindings(text: str, path: str) -> tuple[list[LegacyBinding], list[ConfProblem]]:
    """The bindings of ``text`` and its bad lines (a duplicate name or id is bad)."""
    out: list[LegacyBinding] = []
    problems: list[ConfProblem] = []
    names: set[str] = set()
    ids: set[tuple[int, int]] = set()
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        fields = line.split()
        if len(fields) != 3 or not fields[0].isdigit() or not fields[1].isdigit():
            problems.append(ConfProblem(path, number, line, "expected 'BusId TargetId TargetName'"))
            continue
        bus, target, name = int(fields[0]), int(fields[1]), fields[2]
        if name in names or (bus, target) in ids:
            problems.append(ConfProblem(path, number, line, "duplicate target name or bus/id"))
            continue
        names.add(name)
        ids.add((bus, target))
        out.append(LegacyBinding(bus, target, name, number))
    return out, problems


def parse_fstab(text: str, path: str) -> tuple[list[FstabEntry], list[ConfProblem]]:
    """fstab(5) entries of ``text`` (4 to 6 fields) and its bad lines."""
    out: list[FstabEntry] = []
    problems: list[ConfProblem] = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        fields = line.split()
        if not 4 <= len(fields) <= 6:
            problems.append(
                ConfProblem(path, number, line, "expected 'device mountpoint type options'")
            )
            continue
        device, mountpoint, fstype, options, *rest = fields
        rest += ["0"] * (2 - len(rest))
        out.append(FstabEntry(device, mountpoint, fstype, options, rest[0], rest[1], number))
    return out, problems


def fstab_line(entry: FstabEntry) -> str:
    """The /etc/fstab line for ``entry``: its options plus ``_netdev`` (once)."""
    options = [o for o in entry.options.split(",") if o] or ["defaults"]
    if "_netdev" not in options:
        options.append("_netdev")
    return "\t".join(
        (entry.device, entry.mountpoint, entry.fstype, ",".join(options), entry.dump, entry.passno)
    )
