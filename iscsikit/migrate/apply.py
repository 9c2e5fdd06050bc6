"""Carry a :class:`~iscsikit.migrate.mapping.MigrationPlan` out, or describe it (dry run).

What is written, in order (each step prints what it does, or would do):

0. linux-iscsi's InitiatorName (``/etc/initiatorname.iscsi``) into open-iscsi's
   initiatorname.iscsi when that file has none (a different name there is reported:
   targets' ACLs may name the old one);
1. discovery records, through :class:`~iscsikit.records.Records` (replacing a record at
   the same portal);
2. iscsid.conf: one block between ``# BEGIN iscsikit-migrate`` / ``# END
   iscsikit-migrate`` lines holding the template (a block from an earlier run is
   replaced; the last assignment of a key wins in iscsid.conf, so the block overrides);
2b. with ``discover``: SendTargets with each migrated record (iscsikit.discovery), so
   the node records exist before step 3 (a dry run asks the targets but stores nothing);
3. node records already in the database that a migrated setting concerns
   (:meth:`~iscsikit.migrate.mapping.MigrationPlan.node_values`), changed keys only;
   TargetName / Subnet sections that match no record yet are reported;
4. iscsikit.conf's ``failover*`` keys (same block convention);
5. the bindings, added to iscsikit's bindings file with their own bus/target ids (a
   name or id already bound differently there is reported, never overwritten);
6. /etc/fstab: fstab.iscsi's entries with ``_netdev``, unless an entry for the same
   mount point is there already.

Text files are replaced atomically (temporary file, fsync, rename).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from iscsikit.config.initiatorname import read_initiator_name
from iscsikit.config.iscsid_conf import IscsidConf
from iscsikit.config.paths import Paths
from iscsikit.config.registry import RecordType
from iscsikit.discovery.sendtargets import discover as discover_at
from iscsikit.discovery.sendtargets import send_targets
from iscsikit.errors import DatabaseError, IscsiError
from iscsikit.migrate.legacy_files import fstab_line
from iscsikit.migrate.mapping import MigrationPlan, section_matches
from iscsikit.proto.address import Portal
from iscsikit.records import DiscoveryRecord, NodeRecord, Records
from iscsikit.records.bindings import Binding, Bindings

__all__ = ["BEGIN", "END", "MigrationResult", "apply_plan"]

BEGIN = "# BEGIN iscsikit-migrate (settings from linux-iscsi)"
END = "# END iscsikit-migrate"


@dataclass(slots=True)
class MigrationResult:
    """What was done (``actions``), what was not migrated (``reports``), the exit code."""

    actions: list[str] = field(default_factory=list)
    reports: list[str] = field(default_factory=list)
    exit_code: int = 0
    dry_run: bool = False


def _write_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.migrate.{os.getpid()}")
    try:
        with open(tmp, "w", encoding="utf-8", errors="surrogateescape") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        if path.exists():
            os.chmod(tmp, path.stat().st_mode & 0o7777)
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise DatabaseError(f"cannot write {path}: {exc.strerror}") from exc


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8", errors="surrogateescape")
    except FileNotFoundError:
        return ""
    except OSError as exc:
        raise DatabaseError(f"cannot read {path}: {exc.strerror}") from exc


def with_block(text: str, lines: list[str]) -> str:
    """``text`` without an earlier migrate block, plus one holding ``lines``."""
    out: list[str] = []
    inside = False
    for line in text.splitlines():
        if line == BEGIN:
            inside = True
        elif line == END and inside:
            inside = False
        elif not inside:
            out.append(line)
    while out and not out[-1].strip():
        out.pop()
    block = [BEGIN, *lines, END]
    return "\n".join([*out, "", *block] if out else block) + "\n"


def apply_plan(
    plan: MigrationPlan,
    paths: Paths,
    *,
    dry_run: bool = False,
    discover: bool = False,
    records: Records | None = None,
) -> MigrationResult:
    """Write ``plan`` under ``paths`` (nothing when ``dry_run``); see the module doc.
    ``discover`` runs SendTargets with each migrated record before the node step."""
    result = MigrationResult(dry_run=dry_run)
    would = "would " if dry_run else ""
    act = result.actions.append
    store = records if records is not None else Records(paths)
    for problem in plan.problems:
        result.reports.append(str(problem))
    for item in plan.unmapped:
        result.reports.append(f"not migrated: {item}")

    # 0. the initiator name (targets' ACLs name it)
    if plan.initiator_name:
        _apply_initiator_name(plan, paths, result, dry_run)

    # 1. discovery records
    for section, record in plan.discoveries:
        act(f"{would}add discovery record sendtargets {record.portal} (from line {section.line})")
        fresh = DiscoveryRecord.new("sendtargets", record.address, record.port).values
        for name, value in record.values.items():
            if fresh.get(name) != value:
                act("  " + _mask(f"{name} = {value}"))
        if not dry_run:
            store.add_discovery(record)

    # 2. iscsid.conf template
    if plan.conf is not None:
        lines = [f"{k} = {v}" for k, v in plan.template.items()]
        act(f"{would}set in {paths.iscsid_conf} (every node a later discovery finds):")
        for line in lines:
            act("  " + _mask(line))
        if not dry_run:
            _write_atomic(paths.iscsid_conf, with_block(_read(paths.iscsid_conf), lines))

    # 2b. discovery with the migrated records (--discover)
    found: list[NodeRecord] = []
    if discover and plan.discoveries:
        found = _discover(plan, paths, store, result, dry_run)

    # 3. node records (existing ones; with --dry-run --discover also those it would add)
    if plan.conf is not None:
        matched_sections: set[int] = set()
        changed = []
        for node in [*store.nodes(), *found]:
            values = plan.node_values(node)
            matched_sections.update(s.line for s in plan.conf.sections if section_matches(s, node))
            if not values:
                continue
            diff = {k: v for k, v in values.items() if node.values.get(k) != v}
            is_new = any(node is n for n in found)
            if not diff and not is_new:
                continue
            verb = "add" if is_new else "update"
            act(f"{would}{verb} node {node.target} {node.portal},{node.tpgt} {node.iface}:")
            for k, v in diff.items():
                act(f"  {_mask(f'{k} = {v}')}")
                node.set(k, v)
            changed.append(node)
        if changed and not dry_run:
            store.update_nodes(changed)  # (found is empty unless dry_run)
        for section in plan.conf.sections:
            if section.kind != "discovery" and section.line not in matched_sections:
                result.reports.append(
                    f"pending: {plan.conf.path}:{section.line}: {section.label}: no node"
                    " record matches yet; run iscsikit-migrate again after discovery (or"
                    " with --discover) to apply this section"
                )

    # 4. iscsikit.conf failover preferences
    if plan.failover:
        lines = [f"{k} = {v}" for k, v in plan.failover.items()]
        act(f"{would}set in {paths.iscsikit_conf}: " + ", ".join(lines))
        if not dry_run:
            _write_atomic(paths.iscsikit_conf, with_block(_read(paths.iscsikit_conf), lines))

    # 5. bindings
    if plan.bindings:
        _apply_bindings(plan, paths, result, dry_run)

    # 6. fstab
    if plan.fstab:
        fstab = paths.root / "etc" / "fstab"
        text = _read(fstab)
        mounted = {
            f[1] for f in (ln.split() for ln in text.splitlines()) if len(f) > 1 and f[0][:1] != "#"
        }
        new = []
        for entry in plan.fstab:
            if entry.mountpoint in mounted:
                result.reports.append(
                    f"not migrated: {plan.fstab_path}:{entry.line}: {entry.mountpoint} is"
                    f" already in {fstab}"
                )
                continue
            new.append(fstab_line(entry))
            act(f"{would}append to {fstab}: {new[-1]}")
        if new:
            act(
                "  (add 'nofail' to a line whose file system the host must boot without;"
                " '_netdev' orders it after the network and the iSCSI logins)"
            )
            if not dry_run:
                body = text if not text or text.endswith("\n") else text + "\n"
                _write_atomic(fstab, body + "\n".join(new) + "\n")

    result.exit_code = 1 if result.reports else 0
    return result


def _discover(
    plan: MigrationPlan, paths: Paths, store: Records, result: MigrationResult, dry_run: bool
) -> list[NodeRecord]:
    """SendTargets with each migrated record: stored nodes (or, for a dry run, the
    records it would add, returned).  A failed discovery is reported, not raised."""
    initiator = plan.initiator_name or read_initiator_name(paths.initiatorname_file)
    conf = IscsidConf.load(paths.iscsid_conf)
    template = {**conf.template(RecordType.NODE), **plan.template}
    would_add: list[NodeRecord] = []
    for _, record in plan.discoveries:
        try:
            if dry_run:
                targets = send_targets(record, initiator_name=initiator)
                stored = set(store.node_ids())
                for t in targets:
                    node = NodeRecord.new(
                        t.name, t.host, t.port, t.tpgt, discovery=record, template=template
                    )
                    if node.id not in stored:
                        would_add.append(node)
                result.actions.append(f"discovery at {record.portal}: {len(targets)} portal(s)")
                continue
            outcome = discover_at(
                store, conf, Portal(record.address, record.port), initiator_name=initiator
            )
        except IscsiError as exc:
            result.reports.append(
                f"discovery at {record.portal} failed ({int(exc.code)}): {exc}; its nodes get"
                " their settings when iscsikit-migrate runs after a discovery"
            )
            continue
        result.actions.append(
            f"discovered {len(outcome.found)} portal(s) at {record.portal}:"
            f" {len(outcome.added)} node record(s) added, {len(outcome.updated)} updated"
        )
    return would_add


def _apply_initiator_name(
    plan: MigrationPlan, paths: Paths, result: MigrationResult, dry_run: bool
) -> None:
    name = plan.initiator_name
    have = read_initiator_name(paths.initiatorname_file)
    if have == name:
        return
    if have is not None:
        result.reports.append(
            f"not migrated: {plan.initiator_path}: InitiatorName={name}:"
            f" {paths.initiatorname_file} already names {have} (targets' ACLs may name the"
            " old one)"
        )
        return
    result.actions.append(
        f"{'would ' if dry_run else ''}write {paths.initiatorname_file}: InitiatorName={name}"
    )
    if not dry_run:
        _write_atomic(paths.initiatorname_file, f"InitiatorName={name}\n")


def _mask(line: str) -> str:
    key, sep, value = line.partition(" = ")
    return f"{key} = ********" if "password" in key and value and sep else line


def _apply_bindings(
    plan: MigrationPlan, paths: Paths, result: MigrationResult, dry_run: bool
) -> None:
    would = "would " if dry_run else ""
    bindings = Bindings.under(paths.root)
    wanted = {Binding(b.bus, b.target, b.name): b for b in plan.bindings}
    before = set(bindings.read())
    refused = dict(bindings.add(wanted, dry_run=dry_run))
    for binding, legacy in wanted.items():
        if binding in refused:
            result.reports.append(
                f"not migrated: {plan.bindings_path}:{legacy.line}: {binding.name}: "
                f"{refused[binding]} in {bindings.path}"
            )
        elif binding not in before:
            result.actions.append(
                f"{would}bind {binding.name} to bus {binding.bus} target {binding.target}"
            )
