"""The open-iscsi records database: typed queries, create / update / delete, safely.

:class:`Records` reads and writes a database laid out exactly as open-iscsi 2.1.8 does
(:mod:`iscsikit.records.layout`), with files byte-identical to iscsiadm's
(:mod:`iscsikit.records.fileformat`), so either tool can take over from the other.

What it adds:

* **One lock per batch.**  Every write runs under open-iscsi's own lock
  (:mod:`iscsikit.records.lock`), so it excludes a running iscsiadm; the ``*_nodes``
  batch calls take it once for any number of records.  ``with records.lock:`` makes a
  sequence of calls one critical section.
* **No lost updates.**  A record read from the store remembers what it was read with;
  :meth:`Records.update_node` re-reads the file under the lock and applies only the
  keys the caller changed, so concurrent writers of different keys of one record (or
  of different records) never undo each other.  A record made with ``new()`` replaces
  the stored one wholesale.
* **Atomic, durable writes** (:mod:`iscsikit.records.fsio`): readers never see half a
  record, a crash never loses a stored one.  Record files are 0600, directories 0700.
  A writer leaves ``<db_root>/.iscsikit-writing`` while it works; the next writer that
  finds it (the last one crashed) removes the temporary files left behind first.
* **No data lost on read-modify-write.**  iscsiadm 2.1.8 reads a node record with the
  IPv4 iface keys only, so its ``-o update`` resets the IPv6 iface values of a node
  bound to an IPv6 iface; iscsikit reads both blocks and keeps them.
* **Speed.**  Listing walks directory names only (:meth:`Records.node_ids`), and a
  tree unchanged since the last listing is listed from a cache outside the database,
  validated by directory times (:mod:`iscsikit.records.namecache`;
  ``name_cache=False`` turns it off); updates
  rewrite only the changed lines when a file is in open-iscsi's own layout; durability
  costs one ``syncfs`` per large batch rather than two ``fsync`` per file.

Errors: nothing matches -> :class:`~iscsikit.errors.NoObjectsFoundError` (21); a bad
key or value -> :class:`~iscsikit.errors.InvalidParameterError` (7); the database
cannot be read or written -> :class:`~iscsikit.errors.DatabaseError` (6), naming the
file.  Problems in files (malformed lines, unknown keys, truncation) never raise: each
record carries its own in ``record.problems`` and :attr:`Records.problems` collects
those met by the last call.  A node file that is not the record its path names (its
``node.name``, address, port, tpgt or iface differ from the path's, or are missing, as
in an empty or garbage file) is not a record: queries leave it out, updates and deletes
never touch it, and ``add_node`` refuses to replace it (DatabaseError, 6), as iscsiadm
2.1.8 does (:mod:`iscsikit.records.reader`).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path

from iscsikit.config.paths import Paths
from iscsikit.config.registry import REGISTRY, RecordType
from iscsikit.errors import InvalidParameterError, NoObjectsFoundError
from iscsikit.records import fsio
from iscsikit.records.fileformat import RecordProblem
from iscsikit.records.layout import (
    BUILTIN_IFACES,
    Layout,
    NodeId,
    check_name,
)
from iscsikit.records.lock import DEFAULT_TIMEOUT, DbLock
from iscsikit.records.model import DiscoveryRecord, IfaceRecord, NodeRecord
from iscsikit.records.namecache import NameCache
from iscsikit.records.reader import Reader
from iscsikit.records.writer import Writer

__all__ = ["SYSTEM_DB_ROOTS", "SYSTEM_LOCK_DIR", "Records"]

#: open-iscsi's lock directory, and the database roots that use it.
SYSTEM_LOCK_DIR = Path("/run/lock/iscsi")
SYSTEM_DB_ROOTS = (Path("/etc/iscsi"), Path("/var/lib/iscsi"))
#: iscsikit's run-time directory (caches) for the system databases.
SYSTEM_RUN_DIR = Path("/run/iscsikit")
#: Present while a write is in progress; found by the next writer after a crash.
DIRTY_MARKER = ".iscsikit-writing"


class Records:
    """An open-iscsi records database (see the module docstring).

    ``Records(paths)`` uses ``paths.db_root`` and ``paths.lock_dir``;
    :meth:`Records.at` roots one anywhere.  ``durable=False`` skips fsync (scratch
    data); ``link_root`` is the directory discovery links point into (default: the
    database root itself; ``/etc/iscsi`` writes links as iscsiadm would for a database
    that will be mounted there); ``lock_timeout`` bounds every wait for the lock;
    ``name_cache``: keep the node listing in ``paths.run_dir/records-cache``.
    """

    def __init__(
        self,
        paths: Paths,
        *,
        lock_timeout: float = DEFAULT_TIMEOUT,
        durable: bool = True,
        link_root: str | os.PathLike[str] | None = None,
        name_cache: bool = True,
    ) -> None:
        self.paths = paths
        self.layout = Layout(paths.db_root, link_root)
        self.lock = DbLock(paths.lock_dir, timeout=lock_timeout)
        self.durable = durable
        names = NameCache(str(self.layout.db_root), str(paths.run_dir)) if name_cache else None
        self._reader = Reader(self.layout, self.lock, names)
        self._writer = Writer(self.layout, self._reader, durable=durable)
        #: Problems found in files by the most recent call.
        self.problems: list[RecordProblem] = []
        self._dirty_marker = str(self.layout.db_root / DIRTY_MARKER)
        self._root = str(self.layout.db_root)

    @classmethod
    def at(
        cls,
        db_root: str | os.PathLike[str],
        *,
        lock_dir: str | os.PathLike[str] | None = None,
        lock_timeout: float = DEFAULT_TIMEOUT,
        durable: bool = True,
        link_root: str | os.PathLike[str] | None = None,
        name_cache: bool = True,
    ) -> Records:
        """A store rooted at ``db_root``.

        ``lock_dir`` defaults to open-iscsi's ``/run/lock/iscsi`` for the system
        databases (``/etc/iscsi``, ``/var/lib/iscsi``) and to ``<db_root>/.lock``
        elsewhere (a scratch database is not locked against the system's iscsiadm).
        The name cache lives in ``/run/iscsikit`` for the system databases, in the
        lock directory otherwise.
        """
        root = Path(os.path.abspath(db_root))
        system = root in SYSTEM_DB_ROOTS
        if lock_dir is None:
            lock_dir = SYSTEM_LOCK_DIR if system else root / ".lock"
        paths = Paths(
            root=Path("/"),
            config_dir=root,
            db_root=root,
            lock_dir=Path(lock_dir),
            run_dir=SYSTEM_RUN_DIR if system else Path(lock_dir),
            db_root_source="argument",
        )
        return cls(
            paths,
            lock_timeout=lock_timeout,
            durable=durable,
            link_root=link_root,
            name_cache=name_cache,
        )

    @property
    def db_root(self) -> Path:
        return self.layout.db_root

    def __repr__(self) -> str:
        return f"Records({str(self.db_root)!r})"

    # -- queries ----------------------------------------------------------------------

    def node_ids(
        self,
        target: str | None = None,
        address: str | None = None,
        port: int | None = None,
        tpgt: int | None = None,
        iface: str | None = None,
    ) -> list[NodeId]:
        """(target, address, port, tpgt, iface) of every matching node, as open-iscsi
        sorts them, from directory names alone (no record file is opened)."""
        self.problems = []
        return self._reader.node_ids(self.problems, target, address, port, tpgt, iface)

    def found_node_ids(
        self,
        target: str | None = None,
        address: str | None = None,
        port: int | None = None,
        tpgt: int | None = None,
        iface: str | None = None,
    ) -> list[NodeId]:
        """:meth:`node_ids` of the nodes whose file is their record (each file is read):
        what iscsiadm's ``-T``/``-p`` finds, and what updates and deletes act on.  A
        file naming another node than its path, or none (empty, garbage, no
        ``node.name`` or address line), is left out with a problem in
        :attr:`problems` (see :mod:`iscsikit.records.reader`)."""
        self.problems = []
        ids = self._reader.node_ids(self.problems, target, address, port, tpgt, iface)
        return self._reader.found_node_ids(ids, self.problems)

    def nodes(
        self,
        target: str | None = None,
        address: str | None = None,
        port: int | None = None,
        tpgt: int | None = None,
        iface: str | None = None,
    ) -> list[NodeRecord]:
        """The matching node records, sorted as :meth:`node_ids`."""
        self.problems = []
        ids = self._reader.node_ids(self.problems, target, address, port, tpgt, iface)
        return self._reader.load_nodes(ids, self.problems)

    def node(
        self,
        target: str | None = None,
        address: str | None = None,
        port: int | None = None,
        tpgt: int | None = None,
        iface: str | None = None,
    ) -> NodeRecord:
        """The one matching node record; NoObjectsFoundError (21) unless exactly one
        matches (the message says how many did: narrow the query)."""
        found = self.nodes(target, address, port, tpgt, iface)
        if not found:
            raise NoObjectsFoundError("No records found")
        if len(found) > 1:
            raise NoObjectsFoundError(f"{len(found)} node records match; expected exactly one")
        return found[0]

    def discoveries(self, type: str | None = None) -> list[DiscoveryRecord]:
        """SendTargets and iSNS discovery records (``type``: only those); the static
        and fw sources (no file) only when asked for by ``type``."""
        self.problems = []
        return self._reader.discoveries(self.problems, type)

    def discovery(
        self,
        type: str,  # open-iscsi's word
        address: str = "",
        port: int | None = None,
    ) -> DiscoveryRecord:
        """The discovery record of ``type`` at ``address``/``port`` (default port: 3260
        for sendtargets, 3205 for isns); for static and fw the source itself.
        NoObjectsFoundError if there is none."""
        self.problems = []
        if type in ("static", "fw"):
            found = self._reader.discoveries(self.problems, type)
            if not found:
                raise NoObjectsFoundError(f"No {type} discovery records found")
            return found[0]
        probe = DiscoveryRecord.new(type, address or "-", port)
        record = self._reader.load_discovery(type, probe.address, probe.port, self.problems)
        if record is None:
            raise NoObjectsFoundError(
                f"Discovery record [{probe.address},{probe.port}] of type {type} not found"
            )
        return record

    def discovery_nodes(self, discovery: DiscoveryRecord) -> list[NodeRecord]:
        """The nodes ``discovery`` found: those its directory links to (for iSNS also
        the old-style links in isns/ itself whose record names this server)."""
        self.problems = []
        links = self._reader.links(self._writer.link_dir(discovery), self.problems)
        ids = [node for node, _ in links]
        records = self._reader.load_nodes(ids, self.problems)
        if discovery.type == "isns":
            old = self._reader.links(self.layout.isns, self.problems)
            mine = [
                r
                for r in self._reader.load_nodes([n for n, _ in old], self.problems)
                if r.discovery_type == "isns"
                and (r.discovery_address, r.discovery_port) == (discovery.address, discovery.port)
            ]
            records += mine
            ids += [r.id for r in mine]
            links += [(n, p) for n, p in old if n in {r.id for r in mine}]
        present = {r.id for r in records}
        for node, link in links:
            if node not in present:
                self.problems.append(RecordProblem(Path(link), 0, "link to a missing node record"))
        return records

    def ifaces(self) -> list[IfaceRecord]:
        """The built-in ifaces (default, iser), then every ``ifaces/`` record by name."""
        self.problems = []
        found = [IfaceRecord.builtin(name) for name in BUILTIN_IFACES]
        for name in self._reader.iface_names():
            if name in BUILTIN_IFACES:
                continue
            record = self._reader.load_iface(name, self.problems)
            if record is not None:
                found.append(record)
        return found

    def iface(self, name: str) -> IfaceRecord:
        """The iface ``name`` (a built-in or a file; NoObjectsFoundError)."""
        self.problems = []
        if name in BUILTIN_IFACES:
            return IfaceRecord.builtin(name)
        record = self._reader.load_iface(check_name("iface name", name), self.problems)
        if record is None:
            raise NoObjectsFoundError(f"Could not read iface info for {name}.")
        return record

    # -- node writes ------------------------------------------------------------------

    def add_node(self, record: NodeRecord, *, discovery: DiscoveryRecord | None = None) -> None:
        """Store a new node record (replacing one with the same id), as ``-o new`` does."""
        self.add_nodes([record], discovery=discovery)

    def add_nodes(
        self, records: Iterable[NodeRecord], *, discovery: DiscoveryRecord | None = None
    ) -> None:
        """Store many node records under one lock (see :meth:`add_node`).

        Like usr/idbm.c ``idbm_add_node``: an existing record of the same id is replaced
        (and its discovery link removed); a record with a tpgt replaces an old-style
        ``<address>,<port>`` file of its portal; each record with a tpgt gets the link
        of its discovery source (``node.discovery_*``; ``discovery`` sets them), a
        static record one in ``static/``.  Old-style records get no link.
        """
        records = list(records)
        self.problems = []
        with self._writing():
            if discovery is not None:
                # An iSNS server without its record still gets links: old-style ones
                # in isns/ itself, as iscsiadm's ``-m discovery -t isns`` writes them.
                if (
                    discovery.has_file
                    and discovery.type != "isns"
                    and not os.path.lexists(self._writer.discovery_path(discovery))
                ):
                    raise NoObjectsFoundError(f"no discovery record {discovery!r}; add it first")
                for record in records:
                    record.set_discovery(discovery)
            self._writer.add_nodes(records, self.problems)

    def update_node(self, record: NodeRecord) -> None:
        """Write ``record``'s changes (see the module docstring); NoObjectsFoundError if
        it is not stored."""
        self.update_nodes([record])

    def update_nodes(self, records: Iterable[NodeRecord]) -> None:
        """:meth:`update_node` for many records, under one lock."""
        records = list(records)
        self.problems = []
        with self._writing():
            paths = [self._writer.node_path(r) for r in records]
            self._writer.update(records, paths, self.problems)

    def update_node_values(
        self,
        values: Mapping[str, str],
        *,
        target: str | None = None,
        address: str | None = None,
        port: int | None = None,
        tpgt: int | None = None,
        iface: str | None = None,
    ) -> int:
        """``iscsiadm -m node [filters] -o update -n key -v value`` for each pair: set
        keys on every matching node in one locked pass; returns how many matched
        (NoObjectsFoundError if none)."""
        changes: dict[str, str] = {}
        for name, value in values.items():
            key = REGISTRY.check_modifiable(RecordType.NODE, name)  # iscsiadm's refusals
            changes[key.name] = REGISTRY.validate(RecordType.NODE, key.name, value)
        self.problems = []
        with self._writing():
            ids = self._reader.node_ids(self.problems, target, address, port, tpgt, iface)
            # Read and checked once, under the lock: the writer reuses what was read.
            found = self._reader.found_nodes(ids, self.problems)
            if not found:
                raise NoObjectsFoundError("No records found")
            paths = [f.path for f in found]
            self._writer.rewrite(
                paths, RecordType.NODE, [changes] * len(paths), self.problems, found=found
            )
        return len(found)

    def delete_node(self, record: NodeRecord | NodeId) -> None:
        """Remove a node record, its discovery links and its emptied directories."""
        self.delete_nodes([record])

    def delete_nodes(self, records: Iterable[NodeRecord | NodeId]) -> None:
        """:meth:`delete_node` for many records (or bare ids), under one lock."""
        items = list(records)
        self.problems = []
        with self._writing():
            self._writer.delete_nodes(items, self.problems)

    # -- discovery writes -------------------------------------------------------------

    def add_discovery(self, record: DiscoveryRecord) -> None:
        """Store a SendTargets or iSNS discovery record (replacing one at its portal)."""
        _need_file(record)
        self.problems = []
        with self._writing():
            directory = self.layout.discovery_dir(record.type, record.address, record.port)
            if os.path.isfile(directory):  # usr/idbm.c idbm_open_rec_w converts old records
                fsio.unlink(directory, root=self._root)
            path = self.layout.discovery_file(record.type, record.address, record.port)
            self._writer.write_file(path, record)

    def update_discovery(self, record: DiscoveryRecord) -> None:
        """Write ``record``'s changes (NoObjectsFoundError if it is not stored)."""
        _need_file(record)
        self.problems = []
        with self._writing():
            self._writer.update([record], [self._writer.discovery_path(record)], self.problems)

    def delete_discovery(self, record: DiscoveryRecord, *, delete_nodes: bool = True) -> None:
        """Remove a discovery record and -- as ``iscsiadm -m discoverydb -o delete`` does
        -- every node it links to (``delete_nodes=False`` keeps the nodes and drops only
        the links).  For static and fw sources only the nodes and links go."""
        self.problems = []
        with self._writing():
            directory = self._writer.link_dir(record)
            path = self._writer.discovery_path(record) if record.has_file else None
            if path is not None and not os.path.lexists(path):
                raise NoObjectsFoundError(f"No discovery record found: {path}")
            links = self._reader.links(directory, self.problems)
            if delete_nodes:
                nodes = [node for node, _ in links]
                self._writer.delete_nodes(nodes, self.problems, strict=False)
            for _, link in links:
                fsio.unlink(link, root=self._root)
            if path is not None:
                fsio.unlink(path, root=self._root)
                if path != directory:
                    fsio.remove_empty_dir(directory, root=self._root)
            if self.durable:
                fsio.sync_dirs([directory, os.path.dirname(directory)])
            record.path = None

    # -- iface writes -----------------------------------------------------------------

    def add_iface(self, record: IfaceRecord) -> None:
        """Store an iface record (replacing one of that name), as ``-m iface -o new``."""
        _refuse_builtin(record.name, "is not stored in ifaces/")
        self.problems = []
        with self._writing():
            path = self.layout.iface_file(check_name("iface name", record.name))
            self._writer.write_file(path, record)

    def update_iface(self, record: IfaceRecord) -> None:
        """Write ``record``'s changes, and apply them to every node bound to it (its
        ``iface.*`` copies), as ``iscsiadm -m iface -o update`` does."""
        _refuse_builtin(record.name, "cannot be modified")
        self.problems = []
        with self._writing():
            path = self.layout.iface_file(check_name("iface name", record.name))
            stored = self._reader.load_iface(record.name, self.problems)
            if stored is None:
                raise NoObjectsFoundError(f"Could not read iface info for {record.name}.")
            changes = record.changes()
            if changes is None:
                changes = {k: v for k, v in record.values.items() if stored.values.get(k) != v}
            if "iface.iscsi_ifacename" in changes:
                REGISTRY.check_modifiable(RecordType.IFACE, "iface.iscsi_ifacename")
            self._writer.rewrite(
                [path],
                RecordType.IFACE,
                [changes],
                self.problems,
                identity=[{"iface.iscsi_ifacename": record.name}],
            )
            record.mark_stored(Path(path))
            node_changes = {k: v for k, v in changes.items() if k in _NODE_IFACE_KEYS}
            if node_changes:
                ids = self._reader.node_ids(self.problems, iface=record.name)
                ids = self._reader.found_node_ids(ids, self.problems)
                paths = [self.layout.node_file(n) for n in ids if n.tpgt != -1]
                self._writer.rewrite(
                    paths, RecordType.NODE, [node_changes] * len(paths), self.problems, strict=False
                )

    def delete_iface(self, record: IfaceRecord | str) -> None:
        """Remove an iface record and every node bound to it ("unbound and deleted")."""
        name = record if isinstance(record, str) else record.name
        _refuse_builtin(name, "cannot be deleted")
        self.problems = []
        with self._writing():
            path = self.layout.iface_file(check_name("iface name", name))
            if not os.path.lexists(path):
                raise NoObjectsFoundError(f"Could not read iface info for {name}.")
            ids = [n for n in self._reader.node_ids(self.problems, iface=name) if n.tpgt != -1]
            self._writer.delete_nodes(ids, self.problems, strict=False)
            fsio.unlink(path, root=self._root)
            if self.durable:
                fsio.sync_dirs([self.layout.ifaces])

    # -- maintenance ------------------------------------------------------------------

    def cleanup(self) -> list[Path]:
        """Remove temporary files a crashed writer left behind; returns them."""
        layout = self.layout
        with self.lock:
            removed = fsio.remove_temp_files(
                [
                    (layout.nodes, 2),
                    (layout.send_targets, 1),
                    (layout.isns, 1),
                    (layout.static, 0),
                    (layout.fw, 0),
                    (layout.ifaces, 0),
                ],
                root=self._root,
            )
        return [Path(p) for p in removed]

    # -- internals --------------------------------------------------------------------

    @contextlib.contextmanager
    def _writing(self) -> Iterator[None]:
        """Hold the lock; after a crashed writer (its marker left), clean up first."""
        with self.lock:
            # Outermost across every store on this lock (they share its depth): an inner
            # one must not take the outer one's temporary files for a crashed writer's.
            outermost = self.lock.depth == 1
            if outermost:
                if os.path.lexists(self._dirty_marker):
                    self.cleanup()
                fsio.make_dirs(str(self.layout.db_root))
                try:
                    flags = os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC
                    os.close(os.open(self._dirty_marker, flags, 0o600))
                except OSError as exc:
                    raise fsio.db_error("create", self._dirty_marker, exc) from exc
            try:
                yield
            finally:
                if outermost:
                    fsio.unlink(self._dirty_marker)


def _need_file(record: DiscoveryRecord) -> None:
    if not record.has_file:
        raise InvalidParameterError(f"{record.type} discovery has no record to store")


def _refuse_builtin(name: str, what: str) -> None:
    if name in BUILTIN_IFACES:
        raise InvalidParameterError(f"iface {name} is a special interface and {what}.")


_NODE_IFACE_KEYS = frozenset(
    k.name for k in REGISTRY.keys(RecordType.NODE) if k.name.startswith("iface.")
)
