"""Writing an open-iscsi database: what each create / update / delete does to files.

The :class:`Writer` is the mechanics behind :class:`~iscsikit.records.store.Records`
(which owns the lock, argument checks and the public API); every method here runs with
the database lock held.  Each operation follows usr/idbm.c, quirks included where they
are deliberate (noted where they occur):

* a node file is written first, then its discovery link (``idbm_add_node``); a file
  that is not the record its path names is never replaced (DatabaseError, as
  iscsiadm fails there), the other records of the batch are still written;
* a node is deleted link first, then file, then its portal and target directories if
  they are empty (``idbm_delete_node``);
* an update re-reads the stored file and applies only the changed keys (a line splice
  when the file is in open-iscsi's exact layout, else a full, normalizing rewrite).

All file replacement goes through :class:`~iscsikit.records.fsio.WriteBatch`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

from iscsikit.config.registry import REGISTRY, RecordType
from iscsikit.errors import DatabaseError, InvalidParameterError, NoObjectsFoundError
from iscsikit.records import fsio
from iscsikit.records.fileformat import RecordProblem, format_record, parse_record, patch_record
from iscsikit.records.layout import Layout, NodeId, check_name
from iscsikit.records.model import DiscoveryRecord, NodeRecord, Record
from iscsikit.records.reader import FoundNode, Reader, node_defaults

__all__ = ["NodesNotWritten", "Writer"]

_IDS = {
    record: frozenset(k.name for k in REGISTRY.keys(record) if k.record_id) for record in RecordType
}


class NodesNotWritten(DatabaseError):
    """Some node records of a batch were not written (the others were): each with the
    reason, in iscsiadm's words (``refused``)."""

    def __init__(self, refused: list[tuple[NodeRecord, str]]) -> None:
        super().__init__("\n".join(reason for _, reason in refused))
        self.refused = tuple(refused)


class Writer:
    """File-level writes of the database at ``layout`` (the lock is the caller's)."""

    def __init__(self, layout: Layout, reader: Reader, *, durable: bool) -> None:
        self.layout = layout
        self.reader = reader
        self.durable = durable
        #: Writes reach their directories from here through no symlink (records/fsio.py).
        self.root = str(layout.db_root)

    # -- paths ------------------------------------------------------------------------

    def node_path(self, record: NodeRecord) -> str:
        """Where ``record`` lives; refuses a record whose ids were changed after reading."""
        path = self.layout.node_file(record.id)
        if record.path is not None and str(record.path) != path and record.tpgt != -1:
            raise InvalidParameterError(
                f"record read from {record.path} now names {path}: ids cannot be changed"
            )
        return path

    def link_path(self, record: NodeRecord) -> str | None:
        """The discovery link of a node (usr/idbm.c ``setup_disc_to_node_link``)."""
        if record.tpgt == -1:
            return None  # usr/idbm.c: old-style records get no link
        directory = self.layout.link_dir(
            record.discovery_type, record.discovery_address, record.discovery_port
        )
        if directory is None:
            return None
        if record.discovery_type == "isns" and not os.path.isdir(directory):
            # Before 2.0-872 every iSNS link sat in isns/ itself; iscsiadm still links
            # there when the server has no isns/<address>,<port>/ directory (a
            # ``-m discovery -t isns``, which stores no server record).
            return f"{self.layout.isns}/{record.id.link_name}"
        old_style = f"{self.layout.isns}/{record.id.link_name}"
        if record.discovery_type == "isns" and os.path.lexists(old_style):
            return old_style  # an old-style link found wins, as in setup_disc_to_node_link
        return f"{directory}/{record.id.link_name}"

    def link_dir(self, discovery: DiscoveryRecord) -> str:
        if discovery.type == "static":
            return self.layout.static
        if discovery.type == "fw":
            return self.layout.fw
        return self.layout.discovery_dir(discovery.type, discovery.address, discovery.port)

    def discovery_path(self, record: DiscoveryRecord) -> str:
        """``.../st_config`` (or ``isns_config``), or the pre-directory file itself."""
        directory = self.layout.discovery_dir(record.type, record.address, record.port)
        if os.path.isfile(directory):
            return directory
        return self.layout.discovery_file(record.type, record.address, record.port)

    # -- whole files ------------------------------------------------------------------

    def write_file(self, path: str, record: Record) -> None:
        """Write one record file (its directory is created if needed)."""
        created: list[str] = []
        fsio.make_dirs(os.path.dirname(path), created, root=self.root)
        with fsio.WriteBatch(durable=self.durable, root=self.root) as batch:
            batch.write(path, format_record(record.values, record.record_type))
            batch.dirs.extend(created)
            batch.commit()
        record.mark_stored(Path(path))

    # -- nodes ------------------------------------------------------------------------

    def add_nodes(self, records: list[NodeRecord], problems: list[RecordProblem]) -> None:
        """usr/idbm.c ``idbm_add_node`` for each record (see Records.add_nodes)."""
        layout = self.layout
        created: list[str] = []
        stale: list[str] = []
        paths: list[str] = []
        refused: list[tuple[NodeRecord, str]] = []
        written: list[NodeRecord] = []
        with fsio.WriteBatch(durable=self.durable, root=self.root) as batch:
            for record in records:
                node = record.id
                check_name("target name", node.target)
                check_name("address", node.address)
                check_name("iface name", node.iface)
                path = layout.node_file(node)
                if os.path.lexists(path):  # replaced: its old link goes (idbm_delete_node)
                    if not os.path.exists(path):  # a dangling link: iscsiadm cannot open it
                        missing = f"Could not open {path}: No such file or directory"
                        refused.append((record, missing))
                        continue
                    old = self.reader.load_node(node, problems, path=path)
                    if old is None and os.path.isfile(path):
                        refused.append((record, self._not_replaced(path)))
                        continue
                    old_link = self.link_path(old) if old is not None else None
                    if old_link is not None and old_link != self.link_path(record):
                        stale.append(old_link)
                if node.tpgt == -1:
                    if os.path.isdir(path):
                        raise InvalidParameterError(f"{path} is a directory, not a record")
                    fsio.make_dirs(layout.target_dir(node.target), created, root=self.root)
                else:
                    old_style = layout.old_style_file(node.target, node.address, node.port)
                    if os.path.isfile(old_style):
                        stale.append(old_style)  # usr/idbm.c idbm_rec_write converts it
                    fsio.make_dirs(layout.portal_dir(node), created, root=self.root)
                batch.write(path, format_record(record.values, RecordType.NODE))
                paths.append(path)
                written.append(record)
            batch.dirs.extend(created)
            batch.commit()
        links = self._add_links(written, problems)
        removed = [p for p in stale if p not in links and fsio.unlink(p, root=self.root)]
        if removed and self.durable:
            fsio.sync_dirs((os.path.dirname(p) for p in removed), many=len(removed) > 1)
        for record, path in zip(written, paths, strict=True):
            record.mark_stored(Path(path))
        if refused:
            raise NodesNotWritten(refused)

    def _not_replaced(self, path: str) -> str:
        """Why a new record does not replace the file at ``path``, which is not the record
        its path names: iscsiadm's ``idbm_add_node`` deletes the node the *file* names
        first, and fails (exit 6) where that is not there; where it is, iscsiadm would
        delete that other record, which iscsikit never does."""
        parsed = parse_record(fsio.read_text(path) or "", RecordType.NODE, path=Path(path))
        values = node_defaults()
        values.update(parsed.values)
        named = (
            f"{self.layout.nodes}/{values['node.name']}/{values['node.conn[0].address']},"
            f"{values['node.conn[0].port']},{values['node.tpgt']}/{values['iface.iscsi_ifacename']}"
        )
        if os.path.lexists(named):
            return f"{path} names the record {named}: not replaced"
        return f"Could not stat {named} to delete node: No such file or directory"

    def _add_links(self, records: list[NodeRecord], problems: list[RecordProblem]) -> set[str]:
        layout = self.layout
        created: list[str] = []
        links: set[str] = set()
        with fsio.WriteBatch(durable=self.durable, root=self.root) as batch:
            for record in records:
                link = self.link_path(record)
                if link is None:
                    continue
                directory = os.path.dirname(link)
                if directory in (layout.static, layout.fw, layout.isns):
                    fsio.make_dirs(directory, created, root=self.root)
                elif not os.path.isdir(directory):
                    problems.append(
                        RecordProblem(Path(directory), 0, "no such discovery record: no link")
                    )
                    continue
                batch.symlink(link, layout.link_target(record.id))
                links.add(link)
            batch.dirs.extend(created)
            batch.commit()
        return links

    def delete_nodes(
        self,
        items: Sequence[NodeRecord | NodeId],
        problems: list[RecordProblem],
        *,
        strict: bool = True,
    ) -> None:
        """usr/idbm.c ``idbm_delete_node`` for each: links, file, emptied directories.

        A record's links are the one its ``node.discovery_*`` names (plus static/ and
        fw/ ones); a bare id's are every link named after it, found in one scan.
        """
        layout = self.layout
        index: dict[str, list[str]] | None = None
        files: list[tuple[NodeId, str]] = []
        links: list[str] = []
        for item in items:
            if isinstance(item, NodeRecord):
                node, path = item.id, self.node_path(item)
                expected = self.link_path(item)
                links.extend([expected] if expected else [])
                links += [f"{layout.static}/{node.link_name}", f"{layout.fw}/{node.link_name}"]
            else:
                node, path = item, layout.node_file(item)
                if index is None:
                    index = self.reader.link_index()
                links.extend(index.get(node.link_name, []))
            if not os.path.lexists(path):
                if strict:
                    raise NoObjectsFoundError(f"No record found: {path}")
                continue
            files.append((node, path))
        touched: list[str] = []
        with fsio.Remover(self.root) as remover:
            self._remove(files, links, touched, remover)
        if self.durable:
            fsio.sync_dirs(touched, many=len(files) >= fsio.SYNCFS_THRESHOLD)
        for item in items:
            if isinstance(item, NodeRecord):
                item.path = None
                item.mark_stored()

    def _remove(
        self,
        files: list[tuple[NodeId, str]],
        links: list[str],
        touched: list[str],
        remover: fsio.Remover,
    ) -> None:
        """Links first, then files, then emptied portal and target directories;
        ``touched`` collects the directories whose entries changed."""
        layout = self.layout
        for link in dict.fromkeys(links):  # usr/idbm.c removes the link first
            if remover.unlink(link):
                touched.append(os.path.dirname(link))
        for _, path in files:
            remover.unlink(path)
            touched.append(os.path.dirname(path))
        for node, _ in files:
            if node.tpgt != -1 and remover.remove_empty_dir(layout.portal_dir(node)):
                touched.append(layout.target_dir(node.target))
            if remover.remove_empty_dir(layout.target_dir(node.target)):
                touched.append(layout.nodes)

    # -- updates ----------------------------------------------------------------------

    def update(
        self,
        records: Sequence[Record],
        paths: list[str],
        problems: list[RecordProblem],
    ) -> None:
        """Store what changed in each record since it was read (all of a record made
        with ``new()``), keeping what others changed meanwhile."""
        changes = [r.changes() for r in records]
        for record, change in zip(records, changes, strict=True):
            bad = [k for k in change or {} if k in _IDS[record.record_type]]
            if bad:
                REGISTRY.check_modifiable(record.record_type, bad[0])  # iscsiadm's refusal
        if records:
            full: list[str | None] = [
                format_record(r.values, r.record_type) if c is None else None
                for r, c in zip(records, changes, strict=True)
            ]
            kind = records[0].record_type
            # An iface or discovery record is named by its path (reader._settle): a file
            # that lacks its identity keys gets them back, so that iscsiadm reads what
            # was written as the record it is (a node file lacking them is no record).
            identity = (
                None
                if kind is RecordType.NODE
                else [{k: r.values[k] for k in _IDS[kind] if k in r.values} for r in records]
            )
            self.rewrite(paths, kind, changes, problems, full=full, identity=identity)
        for record, path in zip(records, paths, strict=True):
            record.mark_stored(Path(path))

    def rewrite(
        self,
        paths: list[str],
        record_type: RecordType,
        changes: Sequence[dict[str, str] | None],
        problems: list[RecordProblem],
        *,
        full: list[str | None] | None = None,
        strict: bool = True,
        identity: Sequence[Mapping[str, str]] | None = None,
        found: Sequence[FoundNode] | None = None,
    ) -> None:
        """Apply ``changes[i]`` to the stored file ``paths[i]`` (or write ``full[i]``),
        reading each again (the lock is held) so that other writers' changes stay.

        ``strict``: a missing file raises NoObjectsFoundError before anything is
        written; otherwise it is skipped.  ``identity[i]``: keys the file must hold,
        set where a rewritten file lacks them.  ``found``: the files as the reader read
        them under this same hold of the lock (:meth:`Reader.found_nodes`, one per path):
        their text and layout verdict are used instead of reading them again.
        """
        texts: list[str | None]
        canonical: list[dict[str, str] | None]
        if found is not None:
            texts = [f.text for f in found]
            canonical = [f.canonical for f in found]
        else:
            texts = [fsio.read_text(p) for p in paths]
            canonical = [None] * len(paths)
        missing = [p for p, t in zip(paths, texts, strict=True) if t is None]
        if missing and strict:
            raise NoObjectsFoundError(f"No record found: {missing[0]}")
        with fsio.WriteBatch(durable=self.durable, root=self.root) as batch:
            for i, (path, text) in enumerate(zip(paths, texts, strict=True)):
                if text is None:
                    continue
                new = full[i] if full is not None else None
                change = changes[i]
                if new is None and change:
                    new = patch_record(text, record_type, change, values=canonical[i])
                    if new is None:
                        parsed = parse_record(text, record_type, path=Path(path))
                        problems.extend(parsed.problems)
                        values = (
                            node_defaults()
                            if record_type is RecordType.NODE
                            else {k.name: k.default for k in REGISTRY.keys(record_type)}
                        )
                        values.update(parsed.values)
                        if identity is not None:
                            lacking = identity[i].keys() - parsed.values.keys()
                            values.update({k: identity[i][k] for k in lacking})
                        values.update(change)
                        new = format_record(values, record_type)
                if new is not None and new != text:
                    batch.write(path, new)
            batch.commit()
