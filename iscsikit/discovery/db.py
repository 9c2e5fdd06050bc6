"""What a discovery does to the node database (open-iscsi README §5.1.3, §5.2).

The ops of ``iscsiadm -m discoverydb ... --discover`` / ``-m discovery -t st``:

* ``new``: a (target, portal, tpgt, iface) that was returned and has no record is added;
* ``update``: one that was returned and has a record is rewritten from the iscsid.conf
  template (open-iscsi's behaviour: per-node edits such as ``node.startup`` are lost,
  open-iscsi #58/#286);
* ``delete``: a record this discovery source found earlier whose target portal was not
  returned this time, or that is bound to an iface this discovery did not bind, is deleted;
* ``nonpersistent``: nothing is written.

With no ``-o`` the ops are ``new|update|delete``.  Discovered portals are bound to the
ifaces passed in, or else to every ``tcp`` iface in ``ifaces/`` other than ``default``,
or else to ``default``.  All decisions are here; the store only reads and writes.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from iscsikit.errors import InvalidParameterError
from iscsikit.proto.sendtargets import DiscoveredTarget
from iscsikit.records.model import DiscoveryRecord, IfaceRecord, NodeRecord
from iscsikit.records.store import Records
from iscsikit.records.writer import NodesNotWritten


class DiscoveryOp(enum.Flag):
    """iscsiadm's ``-o`` values that apply to discovery (usr/iscsiadm.c ``OP_*``)."""

    NEW = enum.auto()
    DELETE = enum.auto()
    UPDATE = enum.auto()
    NONPERSISTENT = enum.auto()

    @classmethod
    def default(cls) -> DiscoveryOp:
        return cls.NEW | cls.DELETE | cls.UPDATE

    @classmethod
    def parse(cls, names: Sequence[str]) -> DiscoveryOp:
        """``["new", "delete"]`` -> NEW|DELETE; empty -> the default set."""
        if not names:
            return cls.default()
        ops = cls(0)
        for name in names:
            try:
                ops |= cls[name.upper()]
            except KeyError:
                raise InvalidParameterError(f"can not recognize operation: '{name}'") from None
        return ops


@dataclass
class DiscoveryOutcome:
    """What a discovery found and what it changed in the database."""

    found: list[DiscoveredTarget]
    ifaces: list[IfaceRecord]
    added: list[NodeRecord] = field(default_factory=list)
    updated: list[NodeRecord] = field(default_factory=list)
    deleted: list[NodeRecord] = field(default_factory=list)
    #: Records that were to be added or updated but were not, each with the reason
    #: (a file at their path that is another record or none: iscsiadm goes on too).
    not_written: list[tuple[NodeRecord, str]] = field(default_factory=list)


def binding_ifaces(records: Records, requested: Sequence[str] = ()) -> list[IfaceRecord]:
    """The ifaces discovered portals are bound to (usr/iscsiadm.c, README §5.1.3).

    ``requested`` names must exist (NoObjectsFoundError otherwise).  Without them: every
    iface file whose transport is ``tcp``; if there is none, the built-in ``default``.
    """
    if requested:
        return [records.iface(name) for name in dict.fromkeys(requested)]
    tcp = [i for i in records.ifaces() if not i.is_builtin and i.transport == "tcp"]
    return tcp or [records.iface("default")]


def _key(target: str, address: str, port: int, tpgt: int) -> tuple[str, str, int, int]:
    return (target, address, port, tpgt)


def apply_discovery(
    records: Records,
    source: DiscoveryRecord,
    found: Sequence[DiscoveredTarget],
    ifaces: Sequence[IfaceRecord],
    *,
    ops: DiscoveryOp | None = None,
    template: Mapping[str, str] | None = None,
) -> DiscoveryOutcome:
    """Apply ``found`` to the node records of discovery source ``source``.

    ``template`` holds the node keys of iscsid.conf (``IscsidConf.template``); new and
    updated records start from it.  All writes happen as one batch per kind under the
    database lock.
    """
    ops = DiscoveryOp.default() if ops is None else ops
    outcome = DiscoveryOutcome(found=list(found), ifaces=list(ifaces))
    if DiscoveryOp.NONPERSISTENT in ops:
        return outcome
    with records.lock:
        existing = {n.id: n for n in records.discovery_nodes(source)}
        # A dict keeps the target's order and folds repeated entries.
        returned = {_key(t.name, t.host, t.port, t.tpgt): t for t in found}
        wanted: list[NodeRecord] = []
        for target in returned.values():
            for iface in ifaces:
                wanted.append(
                    NodeRecord.new(
                        target.name,
                        target.host,
                        target.port,
                        target.tpgt,
                        iface=iface,
                        discovery=source,
                        template=template,
                    )
                )
        stored = set(records.node_ids()) if wanted else set()  # names only, no parsing
        for node in wanted:
            if node.id in stored or node.id in existing:
                if DiscoveryOp.UPDATE in ops:
                    outcome.updated.append(node)
            elif DiscoveryOp.NEW in ops:
                outcome.added.append(node)
        if DiscoveryOp.DELETE in ops:
            # Stale: not returned this time, or bound to an iface this discovery did not
            # use (iscsiadm drops those too: rediscovery through fewer ifaces).
            kept = {node.id for node in wanted}
            outcome.deleted = [node for node in existing.values() if node.id not in kept]
        # add_nodes replaces a record of the same id: that is open-iscsi's "update".
        changed = outcome.added + outcome.updated
        if changed:
            try:
                records.add_nodes(changed, discovery=source)
            except NodesNotWritten as exc:
                outcome.not_written = list(exc.refused)
                failed = {id(record) for record, _ in exc.refused}
                outcome.added = [n for n in outcome.added if id(n) not in failed]
                outcome.updated = [n for n in outcome.updated if id(n) not in failed]
        if outcome.deleted:
            records.delete_nodes(outcome.deleted)
    return outcome
