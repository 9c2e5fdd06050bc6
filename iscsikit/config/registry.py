"""The one registry of open-iscsi record keys: types, defaults, orders, validation.

Every key of every record kind (node, iface, SendTargets and iSNS discovery, HBA CHAP
entries, flash nodes) is a :class:`RecordKey` built from :mod:`iscsikit.config.keytable`.
The registry answers the questions the records store, iscsid.conf, the CLI and the docs
ask: in which order keys are written to disk (``usr/idbm.c``) and printed by
``-o show`` (libopeniscsiusr), what a new record holds, which values are acceptable,
and how open-iscsi's file reader turns text into a value.

It emulates open-iscsi **2.1.8** (the version this project's oracle runs) unless built
with another ``version``: keys added later (``sess_reopen_log_freq``,
``tcp.congestion_control``) are then unknown, and ``xmit_thread_priority`` defaults to
-20, exactly as 2.1.8 writes new records.

Two ways to turn text into a value:

* :meth:`Registry.validate` is for values a user asks to store: enum values must match
  exactly (iscsiadm's "unknown value format ..." error), numbers must be decimal and in
  the field's range, strings must fit and be one line.  ``lenient=True`` instead accepts
  whatever ``iscsiadm -o update`` accepts (``abc`` -> ``0``, ``300`` in a uint8 -> ``44``).
* :meth:`Registry.parse_value` is open-iscsi's reader: ``strtoul`` numbers (garbage is
  0, values wrap to the field width), truncated strings, and ``None`` for an enum value
  it does not know (the caller keeps the current value and warns).

The registry does no I/O and must not import the records store or the CLI.
"""

from __future__ import annotations

import enum
import re
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Literal, TypeVar

from iscsikit.config import keytable
from iscsikit.config.cnum import strtoul
from iscsikit.config.keytable import KeySpec
from iscsikit.errors import InvalidParameterError

__all__ = [
    "EMULATED_VERSION",
    "REGISTRY",
    "Family",
    "RecordKey",
    "RecordType",
    "Registry",
    "ValueParser",
    "ValueType",
    "c_strtoul",
    "iface_family",
    "iface_family_for_read",
    "unknown_value_message",
]

#: The open-iscsi release whose database and output iscsikit reproduces by default.
EMULATED_VERSION = "2.1.8"

Family = Literal["ipv4", "ipv6"]
_V = TypeVar("_V")

#: C ``isspace()`` in the C locale: what open-iscsi strips and splits on.
C_SPACE = " \t\n\v\f\r"

_ULONG_MAX = (1 << 64) - 1


class RecordType(enum.Enum):
    """A kind of open-iscsi record.

    The discovery keys common to both (``discovery.startup``, ``discovery.type``)
    belong to both :attr:`SENDTARGETS` and :attr:`ISNS` records.
    """

    NODE = "node"
    IFACE = "iface"
    SENDTARGETS = "sendtargets"
    ISNS = "isns"
    HOST_CHAP = "host_chap"
    FLASHNODE = "flashnode"


class ValueType(enum.Enum):
    """How a value is stored (usr/idbm.c field type) and printed."""

    STRING = "string"
    INT32 = "int32"  # printed %d; the reader stores strtoul() truncated to 32 bits
    UINT8 = "uint8"
    UINT16 = "uint16"
    UINT32 = "uint32"
    INT64 = "int64"  # libopeniscsiusr's display type for many node integers
    ENUM = "enum"  # one of RecordKey.allowed, stored as its index (Yes/No included)
    LIST = "list"  # comma-separated subset of RecordKey.allowed (chap_algs)

    @property
    def is_numeric(self) -> bool:
        return self in _INT_RANGES


_INT_RANGES: dict[ValueType, tuple[int, int]] = {
    ValueType.INT32: (-(1 << 31), (1 << 31) - 1),
    ValueType.UINT8: (0, (1 << 8) - 1),
    ValueType.UINT16: (0, (1 << 16) - 1),
    ValueType.UINT32: (0, (1 << 32) - 1),
    ValueType.INT64: (-(1 << 63), (1 << 63) - 1),
}


#: Decimals with fewer digits than this always fit the type unchanged.
_FIT_DIGITS = {
    ValueType.INT32: 10,
    ValueType.INT64: 19,
    ValueType.UINT8: 3,
    ValueType.UINT16: 5,
    ValueType.UINT32: 10,
}


ValueParser = Callable[[str], "str | None"]


def _string_parser(limit: int | None) -> ValueParser:
    if limit is None:
        return _same
    quick = limit // 4  # at most 4 UTF-8 bytes per character

    def parse_string(text: str) -> str | None:
        return text if len(text) <= quick else _truncate(text, limit)

    return parse_string


def _same(text: str) -> str | None:
    return text


def _enum_parser(allowed: tuple[str, ...]) -> ValueParser:
    options = frozenset(allowed)

    def parse_enum(text: str) -> str | None:
        return text if text in options else None

    return parse_enum


def _number_parser(vt: ValueType) -> ValueParser:
    signed = vt is ValueType.INT32 or vt is ValueType.INT64
    limit = _FIT_DIGITS[vt]

    def parse_number(text: str) -> str | None:
        digits = text[1:] if signed and text[:1] == "-" else text
        if (
            len(digits) < limit
            and digits.isdigit()
            and digits.isascii()
            and (digits[0] != "0" or digits == text == "0")
        ):
            return text
        return str(_wrap(c_strtoul(text), vt))

    return parse_number


@dataclass(frozen=True, slots=True)
class RecordKey:
    """One key of one record type.

    ``default`` is the value a new record gets from compiled-in defaults, spelled as
    iscsiadm prints and stores it ("" = empty).  ``family`` is ``"ipv4"``/``"ipv6"``
    for iface keys present only in records of that IP family (see :func:`iface_family`).
    ``hidden`` keys (``*_length``) are neither written nor shown; ``masked`` ones are
    shown as ``********`` unless ``-S``.  ``modifiable`` is False for record ids
    (``record_id``: node.name, node.tpgt, the portal, discovery ids, the iface name) and
    for iface values inside node records (iface mode owns them; ``iface.transport_name``
    excepted).

    Extensions: ``show_value_type`` is how libopeniscsiusr prints the key (it differs
    from ``value_type`` for a few integers, e.g. ``iface.iface_num`` -1 shows as
    4294967295); ``show_family`` decides whether ``-o show`` prints it (it differs from
    ``family`` only for ``iface.gateway``/``iface.subnet_mask`` in node records, which
    usr/idbm.c writes for both families); ``max_length`` is the longest string open-iscsi
    keeps (it truncates silently); ``suggested`` lists meaningful values of free-form
    strings (``enable``/``disable``...), which open-iscsi does not enforce; ``since`` is
    the first open-iscsi version with the key (None: 2.1.8 or older).
    """

    name: str
    record: RecordType
    value_type: ValueType
    default: str
    allowed: tuple[str, ...]
    modifiable: bool
    masked: bool
    family: Family | None
    iscsid_conf_default: str | None
    description: str
    hidden: bool = False
    max_length: int | None = None
    show_value_type: ValueType | None = None
    suggested: tuple[str, ...] = ()
    since: str | None = None
    record_id: bool = False
    show_family: Family | None = None

    def on_disk(self, value: str) -> bool:
        """Whether usr/idbm.c writes this key with ``value`` to a record file.

        Empty strings (and an empty chap_algs list) are omitted; numbers and enum
        values are always written; hidden keys never.
        """
        return not self.hidden and value != ""


def c_strtoul(text: str) -> int:
    """C ``strtoul(text, NULL, 10)`` on a 64-bit host: what open-iscsi stores for a number
    (:func:`iscsikit.config.cnum.strtoul`)."""
    return strtoul(text)


def _wrap(n: int, value_type: ValueType) -> int:
    """Store an unsigned long into a C field of ``value_type`` and read it back."""
    if value_type is ValueType.INT64:
        n &= _ULONG_MAX
        return n - (1 << 64) if n >= 1 << 63 else n
    if value_type is ValueType.INT32:
        n &= 0xFFFFFFFF
        return n - (1 << 32) if n >= 1 << 31 else n
    bits = {ValueType.UINT8: 8, ValueType.UINT16: 16, ValueType.UINT32: 32}[value_type]
    return n & ((1 << bits) - 1)


def _truncate(value: str, limit: int | None) -> str:
    """Cut ``value`` to ``limit`` bytes (UTF-8), as strlcpy into a C buffer does."""
    if limit is None or len(value) * 4 <= limit:  # fast path: cannot be too long
        return value
    raw = value.encode("utf-8", "surrogateescape")
    if len(raw) <= limit:
        return value
    return raw[:limit].decode("utf-8", "surrogateescape")


def unknown_value_message(name: str, value: str, line: int | None = None) -> str:
    """open-iscsi's words for an enum value it does not know (update, or file ``line``)."""
    if line is None:
        return f"unknown value format '{value}' for parameter name '{name}'"
    return (
        f"config file line {line} contains unknown value format '{value}' "
        f"for parameter name '{name}'"
    )


def iface_family(values: Mapping[str, str], iface_name: str, *, show: bool = False) -> Family:
    """Which IP block (IPv4 or IPv6 iface keys) a record holds.

    ``show=False`` -- usr/iface.c's rule, used by iscsiadm when it *writes* a node or
    iface record (verified with 2.1.8): when ``iface.ipaddress`` is empty or
    ``<empty>``, the record is IPv6 if ``iface_name`` contains "ipv6" (case-sensitive),
    else IPv4; otherwise it is IPv6 when ``iface.bootproto`` is not exactly "dhcp" and
    the address has no '.', else IPv4.  So an iface named "eth0" with address
    "fe80::1" is written IPv6, and one with address "default" too.

    ``show=True`` -- libopeniscsiusr's rule for ``-m node -o show`` and ``-m iface -I``:
    IPv6 if and only if the iface name contains "ipv6".  For a node record the name is
    the iface directory name (``default`` for an old-style record).  A record the two
    rules disagree on (e.g. iface "eth0" with an IPv6 address) is written with IPv6 keys
    that libopeniscsiusr then rejects, so iscsiadm 2.1.8 cannot show it at all.
    """
    if show:
        return "ipv6" if "ipv6" in iface_name else "ipv4"
    address = values.get("iface.ipaddress", "")
    if address in ("", "<empty>"):
        return "ipv6" if "ipv6" in iface_name else "ipv4"
    if values.get("iface.bootproto", "") != "dhcp" and "." not in address:
        return "ipv6"
    return "ipv4"


def iface_family_for_read(record: RecordType, iface_name: str) -> Family:
    """The key set iscsiadm 2.1.8's *reader* accepts, decided before any value is read.

    iface records are read with the family their name implies (:func:`iface_family`
    with no address); node records are always read with the IPv4 set (the iface name
    and address are not known yet), so IPv6 iface values in a node record do not survive
    an iscsiadm read-modify-write.  iscsikit's own reader need not copy this: accepting
    both blocks on read loses nothing.
    """
    if record is RecordType.IFACE:
        return iface_family({}, iface_name)
    return "ipv4"


def _version(text: str) -> tuple[int, ...]:
    return tuple(int(p) for p in text.split("."))


_FLAG_FAMILY: dict[str, Family] = {"v4": "ipv4", "v6": "ipv6"}


def _key_from_spec(
    record: RecordType, spec: KeySpec, version: tuple[int, ...], show_spec: KeySpec
) -> RecordKey:
    for since, overrides in keytable.VERSIONED.get(spec.name, ()):
        if version >= _version(since):
            spec = spec._replace(**overrides)
    flags = spec.flags
    family = next((_FLAG_FAMILY[f] for f in ("v4", "v6") if f in flags), None)
    vtype = ValueType(spec.vtype)
    return RecordKey(
        name=spec.name,
        record=record,
        value_type=vtype,
        default=spec.default,
        allowed=spec.allowed,
        modifiable=not ({"id", "ro"} & flags),
        masked="mask" in flags,
        family=family,
        iscsid_conf_default=spec.conf_default,
        description=spec.description,
        hidden="hide" in flags,
        max_length=spec.max_length,
        show_value_type=ValueType(spec.show_vtype) if spec.show_vtype else vtype,
        suggested=spec.suggested,
        since=spec.since,
        record_id="id" in flags,
        show_family=next((_FLAG_FAMILY[f] for f in ("v4", "v6") if f in show_spec.flags), None),
    )


def _node_iface_spec(spec: KeySpec) -> KeySpec:
    """An iface key as it appears inside a node record."""
    flags = set(spec.flags) - {"id"}
    if spec.name != "iface.transport_name":
        flags.add("ro")
    if spec.name in keytable.NODE_COMMON_IFACE_KEYS:
        flags -= {"v4", "v6"}
    overrides = keytable.NODE_IFACE_OVERRIDES.get(spec.name, {})
    return spec._replace(flags=frozenset(flags), **overrides)


def _tables() -> dict[RecordType, tuple[list[KeySpec], list[str]]]:
    """Per record type: specs in on-disk order, and the show order (names)."""
    node_specs = {s.name: s for s in keytable.NODE_SPECS}
    node_specs.update({n: _node_iface_spec(s) for n, s in keytable.IFACE_SPECS.items()})
    iface = list(keytable.IFACE_SPECS.values())
    return {
        RecordType.NODE: (
            [node_specs[n] for n in keytable.NODE_DISK_ORDER],
            list(keytable.NODE_SHOW_ORDER),
        ),
        RecordType.IFACE: (iface, [s.name for s in iface]),
        RecordType.SENDTARGETS: (
            list(keytable.SENDTARGETS_SPECS),
            [s.name for s in keytable.SENDTARGETS_SPECS],
        ),
        RecordType.ISNS: (list(keytable.ISNS_SPECS), [s.name for s in keytable.ISNS_SPECS]),
        RecordType.HOST_CHAP: (
            list(keytable.HOST_CHAP_SPECS),
            [s.name for s in keytable.HOST_CHAP_SPECS],
        ),
        RecordType.FLASHNODE: (
            list(keytable.FLASHNODE_SPECS),
            [s.name for s in keytable.FLASHNODE_SPECS],
        ),
    }


def _split_list(text: str) -> list[str]:
    """chap_algs tokens: strsep() on ',', ' ' and newline, empty tokens dropped."""
    return [t for t in re.split(r"[, \n]", text) if t]


class _PerRecord(dict[RecordType, _V]):
    """One of a :class:`Registry`'s tables, filled for a record type when first asked."""

    def __init__(self, build: Callable[[RecordType], None]) -> None:
        super().__init__()
        self._build = build

    def __missing__(self, record: RecordType) -> _V:
        self._build(record)
        return self[record]


class Registry:
    """All record keys of one open-iscsi version (default: :data:`EMULATED_VERSION`).

    A record type's keys are made when it is first used: a command reads one or two of
    the six types, and making all of them was a millisecond of its start-up."""

    def __init__(self, version: str = EMULATED_VERSION) -> None:
        self._version = version
        self._v = _version(version)
        self._lock = threading.Lock()
        self._specs: dict[RecordType, tuple[list[KeySpec], list[str]]] | None = None
        self._disk: _PerRecord[tuple[RecordKey, ...]] = _PerRecord(self._build)
        self._show: _PerRecord[tuple[RecordKey, ...]] = _PerRecord(self._build)
        self._by_name: _PerRecord[dict[str, RecordKey]] = _PerRecord(self._build)
        self._later: _PerRecord[dict[str, str]] = _PerRecord(self._build)
        self._parsers: _PerRecord[dict[str, ValueParser]] = _PerRecord(self._build)

    def _tables(self) -> dict[RecordType, tuple[list[KeySpec], list[str]]]:
        if self._specs is None:
            self._specs = _tables()
        return self._specs

    def _build(self, record: RecordType) -> None:
        """Make the tables of ``record`` (once, whichever thread asks first)."""
        with self._lock:
            if dict.__contains__(self._disk, record):
                return
            specs, show_names = self._tables()[record]
            v = self._v
            self._later[record] = {
                s.name: s.since for s in specs if s.since is not None and v < _version(s.since)
            }
            keys = [
                _key_from_spec(record, s, v, keytable.IFACE_SPECS.get(s.name, s))
                for s in specs
                if s.since is None or v >= _version(s.since)
            ]
            by_name = {k.name: k for k in keys}
            self._by_name[record] = by_name
            self._parsers[record] = {k.name: self._make_parser(k) for k in keys}
            self._show[record] = tuple(by_name[n] for n in show_names if n in by_name)
            self._disk[record] = tuple(keys)  # last: it marks the type as made

    @property
    def version(self) -> str:
        return self._version

    # -- lookup and order ---------------------------------------------------------------

    def all_keys(self, record: RecordType) -> tuple[RecordKey, ...]:
        """Every key, hidden ones included, in on-disk order (both IP families)."""
        return self._disk[record]

    def keys(self, record: RecordType, family: Family | None = None) -> tuple[RecordKey, ...]:
        """The keys a record file holds, in on-disk (usr/idbm.c) order.

        Hidden keys are left out.  With ``family``, keys of the other IP family are left
        out too; without it both blocks are listed (IPv4 first).  A writer emits
        ``key = value`` for each key whose :meth:`RecordKey.on_disk` is true.
        """
        return tuple(
            k
            for k in self._disk[record]
            if not k.hidden and (family is None or k.family in (None, family))
        )

    def show_order(self, record: RecordType, family: Family | None = None) -> tuple[RecordKey, ...]:
        """The keys ``-o show`` prints, in order (libopeniscsiusr for node and iface
        records, usr/idbm.c for discovery records).  Every key is printed, empty ones as
        ``<empty>``; hidden keys never."""
        return tuple(
            k
            for k in self._show[record]
            if not k.hidden and (family is None or k.show_family in (None, family))
        )

    def find(self, record: RecordType, name: str) -> RecordKey | None:
        return self._by_name[record].get(name)

    def get(self, record: RecordType, name: str) -> RecordKey:
        key = self._by_name[record].get(name)
        if key is None:
            raise InvalidParameterError(
                f"unknown {record.value} record key '{name}' (open-iscsi {self._version})"
            )
        return key

    def introduced_in(self, record: RecordType, name: str) -> str | None:
        """For a key this registry does not know: the later open-iscsi version that has it."""
        return self._later[record].get(name)

    def canonical_name(self, record: RecordType, name: str) -> str:
        """The key an ``-o update`` of ``name`` sets (iscsiadm accepts
        ``node.transport_name`` for ``iface.transport_name`` in node mode)."""
        if record is RecordType.NODE:
            return keytable.NODE_UPDATE_ALIASES.get(name, name)
        return name

    def check_modifiable(self, record: RecordType, name: str) -> RecordKey:
        """The key ``-o update -n name`` would change, or iscsiadm's refusal.

        Raises :class:`InvalidParameterError` worded as iscsiadm 2.1.8 words it: an
        unknown name, a record id, an iface value in node mode, or the iface name in
        iface mode.
        """
        key = self.find(record, self.canonical_name(record, name))
        if key is None:
            raise InvalidParameterError(f"Cannot modify {name}. Invalid param name.")
        if key.modifiable:
            return key
        if record is RecordType.NODE and key.name.startswith("iface."):
            raise InvalidParameterError(
                f"Cannot modify {name}. Use iface mode to update this value."
            )
        if record is RecordType.IFACE and key.name == "iface.iscsi_ifacename":
            raise InvalidParameterError(
                f"Can not update {name}. Delete it, and then create a new one."
            )
        raise InvalidParameterError(
            f"Cannot modify {name}. It is used to look up the record and cannot be changed."
        )

    # -- values -------------------------------------------------------------------------

    def defaults(self, record: RecordType) -> dict[str, str]:
        """Compiled-in defaults of a new record: every key, hidden ones included."""
        return {k.name: k.default for k in self._disk[record]}

    def validate(self, record: RecordType, name: str, value: str, *, lenient: bool = False) -> str:
        """The normalized value to store for ``name = value``, or InvalidParameterError.

        Strict (default): enum values must match an option exactly; numbers must be
        decimal integers within the field's C type; chap_algs tokens must be known
        algorithms (repeats are dropped); strings are stripped of surrounding whitespace
        (open-iscsi's reader would strip them) and must fit ``max_length`` and one line.
        ``lenient=True`` is ``iscsiadm -o update``: only enum values are checked;
        numbers go through strtoul and wrap; strings are truncated.
        Record-id and read-only keys are not refused here; see :meth:`check_modifiable`.
        """
        key = self.find(record, self.canonical_name(record, name))
        if key is None:
            raise InvalidParameterError(f"Cannot modify {name}. Invalid param name.")
        if lenient:
            parsed = self.parse_value(key, value)
            if parsed is None:
                raise InvalidParameterError(unknown_value_message(key.name, value))
            return parsed
        return self._strict(key, value)

    def _strict(self, key: RecordKey, value: str) -> str:
        vt = key.value_type
        bad = InvalidParameterError(unknown_value_message(key.name, value))
        if vt is ValueType.ENUM:
            if value not in key.allowed:
                raise bad
            return value
        if vt is ValueType.LIST:
            tokens = _split_list(value)
            if any(t not in key.allowed for t in tokens):
                raise bad
            return ",".join(dict.fromkeys(tokens))
        if vt.is_numeric:
            m = re.fullmatch(rf"[{C_SPACE}]*([+-]?[0-9]+)[{C_SPACE}]*", value)
            if m is None:
                raise bad
            digits = m.group(1)
            low, high = _INT_RANGES[vt]
            # More than 20 significant digits is out of every C range, and int() refuses
            # over 4300 digits, leading zeros included (ValueError): convert only the
            # significant digits, and only when they could be in range.
            significant = digits.lstrip("+-").lstrip("0") or "0"
            n = None
            if len(significant) <= 20:
                n = -int(significant) if digits[0] == "-" else int(significant)
            if n is None or not low <= n <= high:
                raise InvalidParameterError(
                    f"value {value!r} for parameter name '{key.name}' is out of range {low}..{high}"
                )
            return str(n)
        text = value.strip(C_SPACE)
        if any(c in text for c in "\n\r\0"):
            raise InvalidParameterError(
                f"value for parameter name '{key.name}' must be a single line"
            )
        if key.max_length is not None and len(text.encode("utf-8", "surrogateescape")) > (
            key.max_length
        ):
            raise InvalidParameterError(
                f"value for parameter name '{key.name}' is longer than {key.max_length} bytes"
            )
        return text

    def parse_value(
        self, key: RecordKey, text: str, *, warnings: list[str] | None = None
    ) -> str | None:
        """Open-iscsi's reader: the value a record or iscsid.conf line ``key = text``
        stores, or None for an enum value open-iscsi does not know (the field keeps its
        current value; the caller warns with :func:`unknown_value_message`).

        Numbers are ``strtoul`` wrapped to the field (``abc`` -> ``0``, ``12abc`` ->
        ``12``, ``-1`` in a uint8 -> ``255``); strings are truncated to ``max_length``
        bytes; chap_algs keeps known, first-seen tokens and appends open-iscsi's
        "Ignoring ..." messages to ``warnings``.
        """
        if key.value_type is ValueType.LIST:
            seen: list[str] = []
            for token in _split_list(text):
                if token not in key.allowed:
                    if warnings is not None:
                        warnings.append(f"Ignoring unknown value '{token}' for '{key.name}'")
                elif token in seen:
                    if warnings is not None:
                        warnings.append(f"Ignoring repeated value '{token}' for '{key.name}'")
                else:
                    seen.append(token)
            return ",".join(seen)
        if self._by_name[key.record].get(key.name) is key:
            return self._parsers[key.record][key.name](text)
        return self._make_parser(key)(text)  # a key built elsewhere (e.g. replaced)

    def parsers(self, record: RecordType) -> Mapping[str, ValueParser]:
        """``{name: parser}`` for every key: ``parser(text)`` is ``parse_value(key, text)``
        (without chap_algs warnings), precompiled for reading many records fast."""
        return self._parsers[record]

    def _make_parser(self, key: RecordKey) -> ValueParser:
        vt = key.value_type
        if vt is ValueType.STRING:
            return _string_parser(key.max_length)
        if vt is ValueType.ENUM:
            return _enum_parser(key.allowed)
        if vt is ValueType.LIST:
            return lambda text: self.parse_value(key, text)
        return _number_parser(vt)

    def records(self) -> Iterable[RecordType]:
        return tuple(self._tables())

    def for_version(self, version: str) -> Registry:
        """The registry of another open-iscsi version (e.g. ``"2.1.11"``)."""
        return self if version == self._version else Registry(version)


#: The registry of :data:`EMULATED_VERSION` (open-iscsi 2.1.8).
REGISTRY = Registry()
