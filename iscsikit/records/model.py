"""Typed node, discovery and iface records over the registry's ``key -> value`` strings.

Every record holds ``values``: a value (a string, as open-iscsi prints it) for every
key of its type, defaults included.  Typed properties read the keys that identify a
record; :meth:`Record.get` / :meth:`Record.set` read and change any key, with the
registry's validation and iscsiadm's refusals ("Cannot modify node.name. It is used to
look up the record and cannot be changed.", "... Use iface mode to update this value.").

A record read from the store remembers the values it was read with, so the store can
write back only what changed (:meth:`Record.changes`) and never lose another writer's
update of other keys.

Constructors follow open-iscsi: :meth:`NodeRecord.new` is ``idbm_create_rec`` (compiled
defaults, optionally overlaid by an iscsid.conf template, then the iface copied with
``iface_copy``'s rules), :meth:`DiscoveryRecord.new` is ``idbm_discovery_setup_defaults``
and :meth:`IfaceRecord.new` is ``iface_setup_defaults``.  This module does no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Self

from iscsikit.config.registry import REGISTRY, Family, RecordType, iface_family
from iscsikit.errors import InvalidParameterError
from iscsikit.records.fileformat import RecordProblem, format_record
from iscsikit.records.layout import BUILTIN_IFACES, NodeId, check_name, strip_brackets

__all__ = ["DISCOVERY_TYPES", "DiscoveryRecord", "IfaceRecord", "NodeRecord", "Record"]

#: discovery.type of a discovery record -> node.discovery_type of the nodes it finds.
DISCOVERY_TYPES: dict[str, str] = {
    "sendtargets": "send_targets",
    "isns": "isns",
    "static": "static",
    "fw": "fw",
}
_DEFAULT_PORTS = {"sendtargets": 3260, "isns": 3205}


class Record:
    """Common behaviour: ``values`` for every key, validated changes, change tracking."""

    __slots__ = ("_loaded", "path", "problems", "record_type", "values")

    def __init__(
        self,
        record_type: RecordType,
        values: dict[str, str],
        *,
        path: Path | None = None,
        problems: list[RecordProblem] | None = None,
        loaded: bool = False,
    ) -> None:
        self.record_type = record_type
        self.values = values
        #: The file this record was read from or last written to, if any.
        self.path = path
        #: What was wrong in that file when it was read (see parse_record).
        self.problems: list[RecordProblem] = problems if problems is not None else []
        self._loaded: dict[str, str] | None = dict(values) if loaded else None

    def get(self, key: str) -> str:
        """The value of ``key`` (InvalidParameterError for a key this record type lacks)."""
        name = REGISTRY.canonical_name(self.record_type, key)
        value = self.values.get(name)
        if value is None:
            return REGISTRY.get(self.record_type, name).default
        return value

    def set(self, key: str, value: str) -> None:
        """Change ``key`` as ``iscsiadm -o update -n key -v value`` would.

        Refuses record ids and read-only keys with iscsiadm's words, and values the
        registry does not accept (InvalidParameterError, code 7).
        """
        spec = REGISTRY.check_modifiable(self.record_type, key)
        self._check_family(spec.family, key)
        self.values[spec.name] = REGISTRY.validate(self.record_type, spec.name, value)

    def _check_family(self, family: Family | None, key: str) -> None:
        """iscsiadm knows only the keys of the record's iface IP family."""
        if family is not None and family != self.family:
            raise InvalidParameterError(f"Cannot modify {key}. Invalid param name.")

    @property
    def family(self) -> Family | None:
        """The iface IP block this record carries (node and iface records)."""
        return None

    def changes(self) -> dict[str, str] | None:
        """Keys changed since the record was read (None: not read from a store)."""
        loaded = self._loaded
        if loaded is None:
            return None
        return {k: v for k, v in self.values.items() if loaded.get(k) != v}

    def mark_stored(self, path: Path | None = None) -> None:
        """Called by the store after a write: the current values are what is stored."""
        self._loaded = dict(self.values)
        if path is not None:
            self.path = path

    def to_text(self) -> str:
        """The record file open-iscsi would write for these values."""
        return format_record(self.values, self.record_type)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Record):
            return NotImplemented
        return self.record_type is other.record_type and self.values == other.values

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._describe()})"

    def _describe(self) -> str:
        return self.record_type.value


_VISIBLE_DEFAULTS = {
    record: {k.name: k.default for k in REGISTRY.keys(record)} for record in RecordType
}
#: iface keys a node record copies, and whether each is numeric (iface_copy's rules).
_NODE_IFACE_KEYS = {
    k.name: k.value_type.is_numeric
    for k in REGISTRY.keys(RecordType.NODE)
    if k.name.startswith("iface.") and k.name != "iface.prefix_len"
}


def _defaults(record: RecordType, template: Mapping[str, str] | None) -> dict[str, str]:
    values = dict(_VISIBLE_DEFAULTS[record])
    if template:
        for name, value in template.items():
            if name in values:
                values[name] = value
    return values


class NodeRecord(Record):
    """A node record: one target portal (+ tpgt) bound to one iface."""

    __slots__ = ()

    def __init__(
        self,
        values: dict[str, str],
        *,
        path: Path | None = None,
        problems: list[RecordProblem] | None = None,
        loaded: bool = False,
    ) -> None:
        super().__init__(RecordType.NODE, values, path=path, problems=problems, loaded=loaded)

    @classmethod
    def new(
        cls,
        target: str,
        address: str,
        port: int = 3260,
        tpgt: int = -1,
        *,
        iface: IfaceRecord | None = None,
        discovery: DiscoveryRecord | None = None,
        template: Mapping[str, str] | None = None,
    ) -> Self:
        """A new record with compiled defaults, overlaid by ``template`` (the node keys of
        iscsid.conf), bound to ``iface`` (default: the built-in ``default``).

        ``tpgt`` -1 makes an old-style record.  ``discovery`` sets ``node.discovery_*``
        as discovery does (else the record is ``static``, as ``-m node -o new`` makes).
        """
        values = _defaults(RecordType.NODE, template)
        values["node.name"] = check_name("target name", target)
        values["node.conn[0].address"] = check_name("address", strip_brackets(address))
        values["node.conn[0].port"] = str(int(port))
        values["node.tpgt"] = str(int(tpgt))
        node = cls(values)
        node.bind_iface(iface if iface is not None else IfaceRecord.builtin("default"))
        if discovery is not None:
            node.set_discovery(discovery)
        return node

    def bind_iface(self, iface: IfaceRecord) -> None:
        """Copy ``iface``'s values into this record, as usr/iface.c ``iface_copy`` does.

        Only non-empty strings and non-zero numbers are copied, and -- an open-iscsi
        2.1.8 quirk kept on purpose (checked with the oracle) -- ``iface.prefix_len`` is
        not copied at all: a new node bound to an iface with prefix_len 24 stores 0.
        """
        keys = _NODE_IFACE_KEYS
        for name, value in iface.values.items():
            numeric = keys.get(name)
            if numeric is None or value == "" or (numeric and value == "0"):
                continue
            self.values[name] = value
        self.values["iface.iscsi_ifacename"] = iface.name

    def set_discovery(self, discovery: DiscoveryRecord) -> None:
        """Record where this node was found (usr/idbm.c ``idbm_add_node`` with a drec)."""
        self.values["node.discovery_type"] = DISCOVERY_TYPES[discovery.type]
        if discovery.type in ("sendtargets", "isns"):
            self.values["node.discovery_address"] = discovery.address
            self.values["node.discovery_port"] = str(discovery.port)
        else:
            self.values["node.discovery_address"] = ""
            self.values["node.discovery_port"] = "0"

    @property
    def target(self) -> str:
        return self.values["node.name"]

    @property
    def address(self) -> str:
        return self.values["node.conn[0].address"]

    @property
    def port(self) -> int:
        return int(self.values["node.conn[0].port"])

    @property
    def tpgt(self) -> int:
        """-1 for an old-style record (tpgt unknown)."""
        return int(self.values["node.tpgt"])

    @property
    def iface(self) -> str:
        return self.values.get("iface.iscsi_ifacename") or "default"

    @property
    def id(self) -> NodeId:
        return NodeId(self.target, self.address, self.port, self.tpgt, self.iface)

    @property
    def portal(self) -> str:
        """``ip:port`` or ``[ipv6]:port``."""
        return self.id.portal

    @property
    def discovery_type(self) -> str:
        return self.values["node.discovery_type"]

    @property
    def discovery_address(self) -> str:
        return self.values.get("node.discovery_address", "")

    @property
    def discovery_port(self) -> int:
        return int(self.values.get("node.discovery_port") or 0)

    @property
    def family(self) -> Family:
        return iface_family(self.values, self.iface)

    def _describe(self) -> str:
        return f"{self.target} {self.portal},{self.tpgt} iface={self.iface}"


class DiscoveryRecord(Record):
    """A discovery source: SendTargets or iSNS (with a record file), static or fw (without).

    ``type`` is the ``discovery.type`` value: ``sendtargets``, ``isns``, ``static`` or
    ``fw``.  iSNS records keep their server in ``discovery.sendtargets.address/port``,
    as open-iscsi does.
    """

    __slots__ = ()

    @classmethod
    def new(
        cls,
        type: str,  # open-iscsi's word (discovery.type)
        address: str = "",
        port: int | None = None,
        *,
        template: Mapping[str, str] | None = None,
    ) -> Self:
        """A new record with compiled defaults (+ ``template``: discovery keys of
        iscsid.conf).  ``port`` defaults to 3260 (SendTargets) or 3205 (iSNS)."""
        if type not in DISCOVERY_TYPES:
            raise InvalidParameterError(f"unknown discovery type {type!r}")
        record = RecordType.ISNS if type == "isns" else RecordType.SENDTARGETS
        if type in ("static", "fw"):
            # No file: only the common keys mean anything.
            values = {"discovery.startup": "manual", "discovery.type": type}
            return cls(record, values)
        values = _defaults(record, template)
        values["discovery.type"] = type
        values["discovery.sendtargets.address"] = check_name("address", strip_brackets(address))
        values["discovery.sendtargets.port"] = str(_DEFAULT_PORTS[type] if port is None else port)
        return cls(record, values)

    @property
    def type(self) -> str:
        return self.values["discovery.type"]

    @property
    def address(self) -> str:
        return self.values.get("discovery.sendtargets.address", "")

    @property
    def port(self) -> int:
        return int(self.values.get("discovery.sendtargets.port") or 0)

    @property
    def portal(self) -> str:
        if ":" in self.address:
            return f"[{self.address}]:{self.port}"
        return f"{self.address}:{self.port}"

    @property
    def has_file(self) -> bool:
        """SendTargets and iSNS records are files; static and fw are only link dirs."""
        return self.type in ("sendtargets", "isns")

    def _describe(self) -> str:
        return f"{self.type} {self.portal}" if self.has_file else self.type


class IfaceRecord(Record):
    """An iface record: how sessions bind to the network (``ifaces/<name>``)."""

    __slots__ = ()

    def __init__(
        self,
        values: dict[str, str],
        *,
        path: Path | None = None,
        problems: list[RecordProblem] | None = None,
        loaded: bool = False,
    ) -> None:
        super().__init__(RecordType.IFACE, values, path=path, problems=problems, loaded=loaded)

    @classmethod
    def new(
        cls, name: str, *, transport: str = "tcp", template: Mapping[str, str] | None = None
    ) -> Self:
        """A new iface record as ``iscsiadm -m iface -I <name> -o new`` makes it."""
        values = _defaults(RecordType.IFACE, template)
        values["iface.iscsi_ifacename"] = check_name("iface name", name)
        values["iface.transport_name"] = transport
        return cls(values)

    @classmethod
    def builtin(cls, name: str) -> Self:
        """``default`` (tcp) or ``iser`` (iser): open-iscsi's ifaces without a file."""
        transport = BUILTIN_IFACES.get(name)
        if transport is None:
            raise InvalidParameterError(f"{name!r} is not a built-in iface")
        return cls.new(name, transport=transport)

    def set(self, key: str, value: str) -> None:
        if self.is_builtin:
            raise InvalidParameterError(
                f"iface {self.name} is a special interface and cannot be modified."
            )
        super().set(key, value)

    @property
    def name(self) -> str:
        return self.values["iface.iscsi_ifacename"]

    @property
    def transport(self) -> str:
        return self.values.get("iface.transport_name", "")

    @property
    def is_builtin(self) -> bool:
        return self.name in BUILTIN_IFACES

    @property
    def family(self) -> Family:
        return iface_family(self.values, self.name)

    def _describe(self) -> str:
        return f"{self.name} transport={self.transport}"
