"""Reading an open-iscsi database: walks by name, record files only when asked.

Listing never opens a record file: node ids come from directory names
(``nodes/<target>/<address>,<port>,<tpgt>/<iface>``), sorted as open-iscsi's
libopeniscsiusr lists them (``scandir(..., alphasort)`` at each level, i.e. byte
order).  Loading a record reads one file, without the lock: the store replaces files
atomically, so a file is always whole.  An iscsiadm, though, rewrites files in place;
a file read without its ``# END RECORD`` line is therefore read once more under the
lock before it is reported as truncated.

A malformed file never affects another record: its problems are collected (file and
line) and what is valid in it loads.  Only I/O errors other than "not there" raise
(:class:`~iscsikit.errors.DatabaseError`).

**Which file is a record.**  iscsiadm 2.1.8 takes a node's identity from the file's
values, not from its path (``__idbm_rec_read`` starts from compiled defaults, and
``rec_match_fn`` / ``print_nodes_config`` compare the values read), so a file without
``node.name`` or address lines, or naming another target, portal, tpgt or iface than
its path, is never found by ``-T``/``-p`` ("No records found", exit 21) -- and where it
is found (tpgt or iface differing), iscsiadm's update writes a second file elsewhere.
iscsikit applies one rule (:func:`identity_conflicts`): a node file is the record at
its path only when its identity keys (after the compiled defaults) equal the path's;
otherwise it is not loaded (a :class:`RecordProblem` says why) and so never shown,
updated, deleted, logged into or rewritten.  Listing (:meth:`Reader.node_ids`) still
goes by directory names only.  Iface and discovery records are found by their path in
iscsiadm too (``iface_conf_read``, ``idbm_discovery_read``): there the path names the
record whatever the file says.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import NamedTuple

from iscsikit.config.registry import REGISTRY, RecordType
from iscsikit.errors import DatabaseError
from iscsikit.records.fileformat import (
    ParsedRecord,
    RecordProblem,
    canonical_values,
    parse_record,
)
from iscsikit.records.fsio import db_error, read_text
from iscsikit.records.layout import (
    BUILTIN_IFACES,
    ISNS_CONFIG,
    ST_CONFIG,
    Layout,
    NodeId,
    is_temp_name,
    parse_discovery_dir_name,
    parse_link_name,
    parse_portal_name,
    strip_brackets,
)
from iscsikit.records.lock import DbLock
from iscsikit.records.model import DiscoveryRecord, IfaceRecord, NodeRecord
from iscsikit.records.namecache import NameCache, Recorder

__all__ = ["FoundNode", "Reader", "listdir_sorted", "node_defaults"]

#: How long a reader waits for the lock to re-read a record caught mid-write.
REREAD_LOCK_TIMEOUT = 5.0


def _sort_key(name: str) -> bytes:
    return name.encode("utf-8", "surrogateescape")


def listdir_sorted(path: str) -> list[str]:
    """Entry names in byte order, temporary files left out; [] if ``path`` is missing."""
    try:
        names = os.listdir(path)
    except (FileNotFoundError, NotADirectoryError):
        return []
    except OSError as exc:
        raise db_error("list", path, exc) from exc
    names.sort(key=_sort_key)
    return [n for n in names if not is_temp_name(n)]


def _visible(record: RecordType) -> dict[str, str]:
    return {k.name: k.default for k in REGISTRY.keys(record)}


_DEFAULTS = {record: _visible(record) for record in RecordType}


def node_defaults() -> dict[str, str]:
    """A fresh dict of every (visible) node key's compiled default."""
    return dict(_DEFAULTS[RecordType.NODE])


def identity_conflicts(values: Mapping[str, str], identity: Iterable[tuple[str, str]]) -> list[str]:
    """Why a file whose ``values`` (compiled defaults, then the file's) are not the
    record its path names: one phrase per identity key that differs; [] if it is."""
    return [
        f"'{name}' is {values.get(name, '')!r} in the file, {want!r} by its path"
        for name, want in identity
        if values.get(name, "") != want
    ]


def node_identity(node: NodeId) -> list[tuple[str, str]]:
    """The keys (and values) a node file at ``node``'s path must hold to be its record.

    An old-style file (``<address>,<port>``) names no iface: the one inside it counts.
    """
    identity = [
        ("node.name", node.target),
        ("node.conn[0].address", node.address),
        ("node.conn[0].port", str(node.port)),
        ("node.tpgt", str(node.tpgt)),
    ]
    if node.tpgt != -1:
        identity.append(("iface.iscsi_ifacename", node.iface))
    return identity


def _settle(
    values: dict[str, str],
    parsed: ParsedRecord,
    identity: list[tuple[str, str]],
    path: Path,
    problems: list[RecordProblem],
) -> None:
    """Iface and discovery files: the identity keys come from the path (iscsiadm finds
    these records by path -- ``idbm_discovery_read``, ``iface_conf_read``); a file that
    says otherwise is reported."""
    for name, want in identity:
        have = parsed.values.get(name)
        if have is not None and have != want:
            problems.append(
                RecordProblem(path, 0, f"'{name}' is {have!r} in the file but {want!r} by its name")
            )
        values[name] = want


def _foreign(path: Path, conflicts: list[str]) -> RecordProblem:
    why = "; ".join(conflicts)
    return RecordProblem(path, 0, f"not the record its path names (not found by iscsiadm): {why}")


class FoundNode(NamedTuple):
    """A node file found to be its record (:meth:`Reader.found_nodes`): its path, the
    text read, and its values if the file is in open-iscsi's layout (else None)."""

    node: NodeId
    path: str
    text: str
    canonical: dict[str, str] | None


class Reader:
    """Walks and loads records of the database at ``layout`` (see the module doc)."""

    def __init__(self, layout: Layout, lock: DbLock, names: NameCache | None = None) -> None:
        self.layout = layout
        self.lock = lock
        #: Where the node tree's names are cached (:mod:`~iscsikit.records.namecache`).
        self.names = names
        #: (directories checked against the cache, directories read) by the last
        #: unfiltered :meth:`node_ids`: (n, 0) when the cached listing was used.
        self.last_walk = (0, 0)

    # -- nodes ------------------------------------------------------------------------

    def node_ids(
        self,
        problems: list[RecordProblem],
        target: str | None = None,
        address: str | None = None,
        port: int | None = None,
        tpgt: int | None = None,
        iface: str | None = None,
    ) -> list[NodeId]:
        """Every node (optionally only those matching), sorted; only an old-style record
        (a file, rare) is opened, for the iface named inside it."""
        names = self.names
        if names is None or (target, address, port, tpgt, iface) != (None,) * 5:
            return self._node_ids(listdir_sorted, problems, target, address, port, tpgt, iface)
        top = self.layout.nodes
        cached = names.load(top)
        if cached is not None:
            self.last_walk = (names.checked, 0)
            return list(map(NodeId._make, cached))
        started = names.clock()
        recorder = Recorder(listdir_sorted)
        known = len(problems)
        found = self._node_ids(recorder.listdir, problems, None, None, None, None, None)
        self.last_walk = (0, len(recorder.read))
        if len(problems) == known and all(n.tpgt != -1 for n in found):
            nodes = [(n.target, n.address, n.port, n.tpgt, n.iface) for n in found]
            names.store(top, recorder.read, nodes, started)
        return found

    def _node_ids(
        self,
        listdir: Callable[[str], list[str]],
        problems: list[RecordProblem],
        target: str | None,
        address: str | None,
        port: int | None,
        tpgt: int | None,
        iface: str | None,
    ) -> list[NodeId]:
        nodes = self.layout.nodes
        if address is not None:
            address = strip_brackets(address)
        targets = [target] if target is not None else listdir(nodes)
        found: list[NodeId] = []
        portals: dict[str, tuple[str, int, int | None] | None] = {}  # names repeat
        for name in targets:
            tdir = f"{nodes}/{name}"
            for portal in listdir(tdir):
                if portal in portals:
                    parsed = portals[portal]
                else:
                    parsed = portals[portal] = parse_portal_name(portal)
                if parsed is None:
                    problems.append(
                        RecordProblem(
                            Path(tdir, portal), 0, "not a node record: expected address,port,tpgt"
                        )
                    )
                    continue
                addr, prt, group = parsed
                if (address is not None and addr != address) or (port is not None and prt != port):
                    continue
                if group is None:  # old style: a file, tpgt unknown, its iface inside
                    if tpgt is None or tpgt == -1:
                        ifname = _old_style_iface(f"{tdir}/{portal}")
                        if iface is None or ifname == iface:
                            found.append(NodeId(name, addr, prt, -1, ifname))
                    continue
                if tpgt is not None and group != tpgt:
                    continue
                pdir = f"{tdir}/{portal}"
                for ifname in listdir(pdir):
                    if iface is None or ifname == iface:
                        found.append(NodeId(name, addr, prt, group, ifname))
        return found

    def load_node(
        self, node: NodeId, problems: list[RecordProblem], *, path: str | None = None
    ) -> NodeRecord | None:
        """The record of ``node`` (None if it is not there)."""
        records = self.load_nodes([node], problems, paths=[path] if path else None)
        return records[0] if records else None

    def load_nodes(
        self,
        nodes: list[NodeId],
        problems: list[RecordProblem],
        *,
        paths: list[str] | None = None,
    ) -> list[NodeRecord]:
        """Records of ``nodes`` in order; ones that vanished meanwhile are left out."""
        files = paths if paths is not None else [self.layout.node_file(n) for n in nodes]
        texts = [self._read_node_text(path) for path in files]
        parsed = [
            parse_record(t, RecordType.NODE, path=Path(p)) if t is not None else None
            for t, p in zip(texts, files, strict=True)
        ]
        torn = [i for i, p in enumerate(parsed) if p is not None and not p.complete]
        if torn and not self.lock.held:
            self._reread(torn, files, parsed)
        records = []
        for node, path, result in zip(nodes, files, parsed, strict=True):
            if result is None:
                continue
            record = self._node_record(node, Path(path), result, problems)
            if record is not None:
                records.append(record)
        return records

    def found_node_ids(self, nodes: list[NodeId], problems: list[RecordProblem]) -> list[NodeId]:
        """Those of ``nodes`` whose file is their record (see the module doc): what
        iscsiadm's ``-T``/``-p`` would find."""
        return [found.node for found in self.found_nodes(nodes, problems)]

    def found_nodes(self, nodes: list[NodeId], problems: list[RecordProblem]) -> list[FoundNode]:
        """:meth:`found_node_ids` with what was read to decide: each file's text, and
        its values when the file is in open-iscsi's own layout (for the writer, which
        then neither reads nor checks the file again while the lock is held)."""
        found = []
        layout = self.layout
        for node in nodes:
            path = layout.node_file(node)
            text = self._read_node_text(path)
            if text is None:
                continue
            canonical = canonical_values(text, RecordType.NODE)
            values = node_defaults()
            values.update(
                canonical if canonical is not None else parse_record(text, RecordType.NODE).values
            )
            conflicts = identity_conflicts(values, node_identity(node))
            if conflicts:
                problems.append(_foreign(Path(path), conflicts))
            else:
                found.append(FoundNode(node, path, text, canonical))
        return found

    def _read_node_text(self, path: str) -> str | None:
        try:
            return read_text(path)
        except DatabaseError:
            if os.path.isdir(path):  # e.g. an iface named like a file we expected
                return None
            raise

    def _reread(self, torn: list[int], files: list[str], parsed: list[ParsedRecord | None]) -> None:
        """Read files caught without an END line again, under the lock (an iscsiadm
        rewrites in place); keep the first reading if the lock is not free soon."""
        try:
            self.lock.acquire(timeout=min(self.lock.timeout, REREAD_LOCK_TIMEOUT))
        except DatabaseError:
            return
        try:
            for i in torn:
                text = read_text(files[i])
                parsed[i] = (
                    parse_record(text, RecordType.NODE, path=Path(files[i]))
                    if text is not None
                    else None
                )
        finally:
            self.lock.release()

    @staticmethod
    def _node_record(
        node: NodeId, path: Path, parsed: ParsedRecord, problems: list[RecordProblem]
    ) -> NodeRecord | None:
        """The record of the file at ``node``'s path, or None (a problem noted) when the
        file is not that record (see the module doc)."""
        values = node_defaults()
        values.update(parsed.values)
        own = parsed.problems
        conflicts = identity_conflicts(values, node_identity(node))
        if conflicts:
            own.append(_foreign(path, conflicts))
            problems.extend(own)
            return None
        problems.extend(own)
        return NodeRecord(values, path=path, problems=own, loaded=True)

    # -- discovery --------------------------------------------------------------------

    def discoveries(self, problems: list[RecordProblem], kind: str | None) -> list[DiscoveryRecord]:
        """SendTargets and iSNS records with a file; static/fw when asked by type."""
        found: list[DiscoveryRecord] = []
        for dtype in ("sendtargets", "isns"):
            if kind not in (None, dtype):
                continue
            root = self.layout.discovery_root(dtype)
            for name in listdir_sorted(root):
                parsed = parse_discovery_dir_name(name)
                if parsed is None:
                    continue  # pre-2.0-872 iSNS node links live here too
                record = self.load_discovery(dtype, parsed[0], parsed[1], problems)
                if record is not None:
                    found.append(record)
        for dtype in ("static", "fw"):
            if kind == dtype:
                directory = self.layout.static if dtype == "static" else self.layout.fw
                if os.path.isdir(directory):
                    record = DiscoveryRecord.new(dtype)
                    record.path = Path(directory)
                    found.append(record)
        return found

    def load_discovery(
        self, kind: str, address: str, port: int, problems: list[RecordProblem]
    ) -> DiscoveryRecord | None:
        directory = self.layout.discovery_dir(kind, address, port)
        # usr/idbm.c idbm_open_rec_r: an old record is the file <address>,<port> itself.
        path = (
            f"{directory}/{ST_CONFIG if kind == 'sendtargets' else ISNS_CONFIG}"
            if os.path.isdir(directory)
            else directory
        )
        text = read_text(path)
        if text is None:
            if os.path.isdir(directory):
                problems.append(RecordProblem(Path(path), 0, "discovery directory without record"))
            return None
        record_type = RecordType.SENDTARGETS if kind == "sendtargets" else RecordType.ISNS
        parsed = parse_record(text, record_type, path=Path(path))
        values = dict(_DEFAULTS[record_type])
        values.update(parsed.values)
        own = parsed.problems
        identity = [
            ("discovery.type", kind),
            ("discovery.sendtargets.address", address),
            ("discovery.sendtargets.port", str(port)),
        ]
        _settle(values, parsed, identity, Path(path), own)
        problems.extend(own)
        return DiscoveryRecord(record_type, values, path=Path(path), problems=own, loaded=True)

    def links(self, directory: str, problems: list[RecordProblem]) -> list[tuple[NodeId, str]]:
        """The nodes a discovery directory links to: (node, link path), sorted.

        The link *name* says which node (as in usr/idbm.c); its target may carry another
        database root (``/etc/iscsi/...`` in a copied database) and is only checked,
        through :meth:`Layout.resolve_link`, to report a link that points elsewhere.
        """
        found = []
        for name in listdir_sorted(directory):
            if name in (ST_CONFIG, ISNS_CONFIG):
                continue
            path = f"{directory}/{name}"
            node = parse_link_name(name)
            if node is None:
                if os.path.islink(path):
                    problems.append(RecordProblem(Path(path), 0, "bad link name"))
                continue
            try:
                target = self.layout.resolve_link(os.readlink(path))
            except OSError:
                target = None  # not a link (or gone): nothing to check
            if target is not None and str(target) != self.layout.portal_dir(node):
                problems.append(
                    RecordProblem(Path(path), 0, f"link points to {target}, not to its node")
                )
            found.append((node, path))
        return found

    def link_index(self) -> dict[str, list[str]]:
        """Every discovery link by name (send_targets/*, isns/*, old isns, static, fw)."""
        index: dict[str, list[str]] = {}
        dirs = [self.layout.static, self.layout.fw, self.layout.isns]
        for root in (self.layout.send_targets, self.layout.isns):
            dirs.extend(f"{root}/{n}" for n in listdir_sorted(root) if parse_discovery_dir_name(n))
        for directory in dirs:
            for name in listdir_sorted(directory):
                if parse_link_name(name) is not None:
                    index.setdefault(name, []).append(f"{directory}/{name}")
        return index

    # -- ifaces -----------------------------------------------------------------------

    def iface_names(self) -> list[str]:
        return listdir_sorted(self.layout.ifaces)

    def load_iface(self, name: str, problems: list[RecordProblem]) -> IfaceRecord | None:
        path = self.layout.iface_file(name)
        text = read_text(path)
        if text is None:
            return None
        parsed = parse_record(text, RecordType.IFACE, path=Path(path))
        values = dict(_DEFAULTS[RecordType.IFACE])
        values.update(parsed.values)
        own = parsed.problems
        _settle(values, parsed, [("iface.iscsi_ifacename", name)], Path(path), own)
        if name in BUILTIN_IFACES:
            own.append(RecordProblem(Path(path), 0, "a built-in iface cannot have a file"))
        problems.extend(own)
        return IfaceRecord(values, path=Path(path), problems=own, loaded=True)


def _old_style_iface(path: str) -> str:
    """The iface of an old-style record (``nodes/<target>/<a>,<p>``, a file): its
    ``iface.iscsi_ifacename`` line, as iscsiadm reads it from the record (``-o new -I iser``
    without a tpgt writes one), ``default`` when the line is missing or the file unreadable."""
    try:
        text = read_text(path)
    except (OSError, DatabaseError):
        return "default"
    for line in (text or "").splitlines():
        key, sep, value = line.partition("=")
        if sep and key.strip() == "iface.iscsi_ifacename":
            return value.strip() or "default"
    return "default"
