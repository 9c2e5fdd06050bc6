"""The text of one record file: read leniently and written byte-for-byte as open-iscsi.

A record file (node, iface, SendTargets or iSNS discovery) is::

    # BEGIN RECORD 2.1.8
    node.name = iqn.2001-04.com.example:disk1
    ...
    # END RECORD

:func:`format_record` writes what usr/idbm.c ``idbm_print`` writes to a file: the
registry's on-disk key order, one ``key = value`` per line, empty strings left out,
numbers and enum values always present, hidden ``*_length`` keys never, only the iface
IP block of the record's family -- byte-identical to iscsiadm 2.1.8 (checked by
``tests/integration/test_records_oracle.py``).

:func:`parse_record` reads what usr/idbm.c ``idbm_recinfo_config`` reads, line for line
(the rules are in :mod:`iscsikit.config.recparse`, which this module agrees with and
the unit tests compare against): ``fgets`` chunks of at most 2047 bytes (a longer line,
or a last line without a newline, is skipped and the rest of a long line read as the
next line), lines stripped of C whitespace, ``#`` lines and blank lines skipped (BEGIN
and END are comments), the name up to whitespace or ``=``, then ``=`` (``key=value``
does *not* parse, as in open-iscsi), the value the rest of the line -- spaces, ``#``
and quotes included.  Values go through the registry's lenient reader
(:meth:`~iscsikit.config.registry.Registry.parse_value`): ``12abc`` reads as 12 and an
unknown enum value keeps the previous one.  Where open-iscsi warns or silently ignores
(unknown keys, repeated keys, altered values, a missing ``# END RECORD``), iscsikit
records a :class:`RecordProblem` with the file and line; what is valid still loads.

:func:`patch_record` is the fast path of an update: it rewrites only the lines of the
changed keys of a file in open-iscsi's own layout, or returns None when a full rewrite
is needed.

This module does no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from iscsikit.config.recparse import split_fgets
from iscsikit.config.registry import (
    REGISTRY,
    Family,
    RecordKey,
    RecordType,
    ValueType,
    iface_family,
    unknown_value_message,
)
from iscsikit.errors import InvalidParameterError

__all__ = [
    "BEGIN_PREFIX",
    "END_LINE",
    "RECORD_VERSION",
    "ParsedRecord",
    "RecordProblem",
    "canonical_values",
    "format_record",
    "parse_record",
    "patch_record",
    "record_family",
    "record_values",
]

#: The version written in ``# BEGIN RECORD <version>`` (open-iscsi writes its own
#: ISCSI_VERSION_STR there and never checks it on read).
RECORD_VERSION = "2.1.8"
BEGIN_PREFIX = "# BEGIN RECORD"
END_LINE = "# END RECORD"

_C_SPACE = " \t\n\v\f\r"
#: The longest line content (bytes) fgets(buf, 2048) returns together with its newline.
_MAX_LINE_BYTES = 2046
#: Keys whose value decides which iface IP block a record carries.
_FAMILY_KEYS = frozenset({"iface.ipaddress", "iface.bootproto", "iface.iscsi_ifacename"})


@dataclass(frozen=True, slots=True)
class RecordProblem:
    """Something wrong in a record file: ``line`` is 1-based (0: the file as a whole)."""

    path: Path | None
    line: int
    message: str

    def __str__(self) -> str:
        where = str(self.path) if self.path is not None else "<record>"
        return f"{where}:{self.line}: {self.message}" if self.line else f"{where}: {self.message}"


@dataclass(slots=True)
class ParsedRecord:
    """What a record file says: ``values`` holds only the keys the file sets (defaults
    are the caller's business), normalized as open-iscsi's reader would store them."""

    values: dict[str, str]
    problems: list[RecordProblem] = field(default_factory=list)
    #: The version in the ``# BEGIN RECORD`` line, if the first line is one.
    version: str | None = None
    #: Whether a ``# END RECORD`` line was seen (a file being written, or truncated,
    #: lacks it).
    complete: bool = False


class _Table:
    """Per record type: keys by name and the writer's key lists, built once.

    ``reader`` maps a name to (key, byte limit, value cache): an ASCII string value of at
    most ``limit`` characters needs no truncation, and non-string keys memoize the
    registry's reading of each text (values repeat across records).
    """

    __slots__ = (
        "always",
        "family_of",
        "good_pairs",
        "hidden",
        "position",
        "reader",
        "record",
        "signatures",
        "writers",
    )

    def __init__(self, record: RecordType) -> None:
        self.record = record
        self.reader: dict[str, tuple[RecordKey, int, dict[str, str | None] | None]] = {}
        self.hidden = frozenset(k.name for k in REGISTRY.all_keys(record) if k.hidden)
        for key in REGISTRY.keys(record):
            if key.value_type is ValueType.STRING:
                limit = (1 << 30) if key.max_length is None else key.max_length
                self.reader[key.name] = (key, limit, None)
            else:
                self.reader[key.name] = (key, 0, {})
        self.writers: dict[Family | None, tuple[tuple[str, str, bool], ...]] = {}
        keys = REGISTRY.keys(record)
        self.position = {k.name: i for i, k in enumerate(keys)}
        self.family_of = {k.name: k.family for k in keys}
        self.signatures: dict[tuple[tuple[str, ...], Family | None], bool] = {}
        self.good_pairs: set[tuple[str, str]] = set()
        # Keys a writer always emits (numbers and enum values are never empty).
        self.always = {
            family: frozenset(
                k.name
                for k in REGISTRY.keys(record, family)
                if k.value_type.is_numeric or k.value_type is ValueType.ENUM
            )
            for family in (None, "ipv4", "ipv6")
        }

    def writer(self, family: Family | None) -> tuple[tuple[str, str, bool], ...]:
        found = self.writers.get(family)
        if found is None:
            found = tuple(
                (k.name, k.default, k.value_type.is_numeric)
                for k in REGISTRY.keys(self.record, family)
            )
            self.writers[family] = found
        return found


_TABLES: dict[RecordType, _Table] = {}
_CACHE_LIMIT = 4096


def _cached(cache: dict[str, str | None], key: RecordKey, text: str) -> str | None:
    """The registry's reading of ``text`` for a non-string ``key``, memoized."""
    try:
        return cache[text]
    except KeyError:
        value = REGISTRY.parse_value(key, text)
        if len(cache) < _CACHE_LIMIT:
            cache[text] = value
        return value


def _table(record: RecordType) -> _Table:
    table = _TABLES.get(record)
    if table is None:
        table = _TABLES[record] = _Table(record)
    return table


def _split_line(line: str) -> tuple[str, str] | str:
    """usr/idbm.c's name/value split of one stripped line: (name, value) or a problem.

    The name runs up to whitespace or ``=``; the one character that ended it is
    skipped, then whitespace; what follows must be ``=`` -- so ``key=value`` fails
    because the ``=`` was the character skipped.  After ``=`` and whitespace, the value
    is the rest of the line.
    """
    end = 0
    size = len(line)
    while end < size and line[end] not in _C_SPACE and line[end] != "=":
        end += 1
    if end == size:
        return "does not have value"
    pos = end + 1
    while pos < size and line[pos] in _C_SPACE:
        pos += 1
    if pos < size and line[pos] != "=":
        return "does not have '=' separator"
    pos += 1
    while pos < size and line[pos] in _C_SPACE:
        pos += 1
    if pos >= size:
        return "does not have value"
    return line[:end], line[pos:]


_NO_NEWLINE = "has no newline (truncated file?)"


def _exact_chunk(chunk: str) -> tuple[str, str | None]:
    """One fgets() chunk: (line without newline, why open-iscsi skips it or None)."""
    raw, nul, _ = chunk.partition("\0")  # a C string ends at NUL
    if raw.endswith("\n"):
        return raw[:-1], None
    if nul:
        return raw, "contains a NUL byte"
    if len(chunk.encode("utf-8", "surrogateescape")) <= _MAX_LINE_BYTES:
        return raw, _NO_NEWLINE
    return raw, "is longer than 2046 bytes (its rest is read as the next line)"


def _lines(text: str, path: Path | None, problems: list[RecordProblem]) -> list[str]:
    """The file's lines as fgets() reads them; unreadable chunks become ``""`` (skipped)
    after their problem is recorded.

    Fast path (every line fits fgets' buffer, no NUL, a final newline): ``str.split``.
    Otherwise the byte-exact chunks of :func:`split_fgets`.
    """
    lines = text.split("\n")
    if (
        lines[-1] == ""
        and "\0" not in text
        and (
            max(map(len, lines)) * 4 <= _MAX_LINE_BYTES
            or max(len(x.encode("utf-8", "surrogateescape")) for x in lines) <= _MAX_LINE_BYTES
        )
    ):
        lines.pop()
        return lines
    out: list[str] = []
    for number, chunk in enumerate(split_fgets(text), start=1):
        raw, unreadable = _exact_chunk(chunk)
        if unreadable is not None:
            problems.append(RecordProblem(path, number, f"line {number} {unreadable}; skipped"))
            raw = ""
        out.append(raw)
    return out


def parse_record(text: str, record: RecordType, *, path: Path | None = None) -> ParsedRecord:
    """Read a record file's text as open-iscsi 2.1.8 does (see the module docstring)."""
    table = _table(record)
    reader = table.reader
    values: dict[str, str] = {}
    problems: list[RecordProblem] = []
    refused: set[str] = set()  # names whose value was refused (kept out of ``values``)
    version: str | None = None
    complete = False
    number = 0
    for raw in _lines(text, path, problems):
        number += 1
        line = raw.strip(_C_SPACE)
        if not line:
            continue
        if line[0] == "#":
            if line.startswith(END_LINE):
                complete = True
            elif number == 1 and line.startswith(BEGIN_PREFIX):
                version = line[len(BEGIN_PREFIX) :].strip(_C_SPACE)
            continue
        name, sep, value = line.partition(" = ")
        entry = reader.get(name) if sep else None
        if entry is None or value[0] in _C_SPACE:
            split = _split_line(line)
            if isinstance(split, str):
                problems.append(RecordProblem(path, number, f"line {number} {split}; skipped"))
                continue
            name, value = split
            entry = reader.get(name)
            if entry is None:
                if name not in table.hidden:  # *_length: derived, never trusted from a file
                    problems.append(
                        RecordProblem(path, number, f"unknown key '{name}' ignored (line {number})")
                    )
                continue
        key, limit, cache = entry
        if name in values or name in refused:
            problems.append(
                RecordProblem(path, number, f"'{name}' set again on line {number}; the last wins")
            )
        if cache is None:
            stored: str | None = (
                value
                if len(value) <= limit and value.isascii()
                else REGISTRY.parse_value(key, value)
            )
        else:
            stored = _cached(cache, key, value)
        if stored is None:
            refused.add(name)
            problems.append(RecordProblem(path, number, unknown_value_message(name, value, number)))
            continue
        if stored != value:
            problems.append(
                RecordProblem(
                    path, number, f"line {number}: '{name}' value {value!r} reads as {stored!r}"
                )
            )
        values[name] = stored
    if not complete:
        problems.append(
            RecordProblem(
                path,
                number + 1,
                f"no '{END_LINE}' line: the record is truncated or still being written",
            )
        )
    if len(problems) > 1:
        problems.sort(key=lambda p: p.line)
    return ParsedRecord(values, problems, version, complete)


def record_family(values: Mapping[str, str], record: RecordType) -> Family | None:
    """The iface IP block a node or iface record carries (None for other records)."""
    if record is RecordType.NODE or record is RecordType.IFACE:
        return iface_family(values, values.get("iface.iscsi_ifacename") or "default")
    return None


def format_record(
    values: Mapping[str, str],
    record: RecordType,
    *,
    family: Family | None = None,
    version: str = RECORD_VERSION,
) -> str:
    """The file usr/idbm.c writes for ``values`` (missing keys take their defaults).

    ``family`` (node and iface records) defaults to the one the values imply
    (:func:`~iscsikit.config.registry.iface_family`).  A value holding a newline or NUL
    would forge other keys and raises InvalidParameterError.
    """
    if family is None:
        family = record_family(values, record)
    parts = [f"{BEGIN_PREFIX} {version}"]
    append = parts.append
    get = values.get
    for name, default, numeric in _table(record).writer(family):
        value = get(name)
        if value is None:
            value = default
        if value == "":
            if not numeric:
                continue  # idbm_print: empty strings are not written to files
            value = default
        elif "\n" in value or "\0" in value:
            raise InvalidParameterError(f"value of '{name}' must be a single line")
        append(f"{name} = {value}")
    append(END_LINE)
    append("")
    return "\n".join(parts)


def _signature_ok(table: _Table, names: tuple[str, ...], family: Family | None) -> bool:
    """Whether a key sequence is one format_record writes: known keys, on-disk order,
    every always-written key of ``family`` and none of the other family's."""
    position = table.position
    family_of = table.family_of
    last = -1
    for name in names:
        pos = position.get(name)
        if pos is None or pos <= last:
            return False
        if family is not None and family_of[name] not in (None, family):
            return False
        last = pos
    return table.always[family] <= set(names)


def _value_ok(table: _Table, name: str, value: str) -> bool:
    """Whether the reader keeps ``value`` of ``name`` exactly as written (it strips C
    whitespace around a value, truncates strings and normalizes numbers)."""
    if value[0] in _C_SPACE or value[-1] in _C_SPACE:
        return False
    key, limit, cache = table.reader[name]
    if cache is None:
        return (len(value) <= limit and value.isascii()) or REGISTRY.parse_value(
            key, value
        ) == value
    return _cached(cache, key, value) == value


def _canonical_values(text: str, table: _Table) -> dict[str, str] | None:
    """The values of ``text`` if it is exactly what :func:`format_record` writes for them.

    That is: this version's BEGIN line, then known keys in on-disk order, each once, as
    ``key = value`` with values the reader keeps unchanged, every always-written key of
    the record's iface family and none of the other family, then the END line.  Verdicts
    on key sequences and on (key, value) pairs are memoized: records written from one
    template share nearly all of them, so a typical check costs a split and a few set
    operations.
    """
    lines = text.split("\n")
    if (
        len(lines) < 3
        or lines[0] != f"{BEGIN_PREFIX} {RECORD_VERSION}"
        or lines[-2] != END_LINE
        or lines[-1]
        or "\0" in text
    ):
        return None
    pairs = [line.partition(" = ") for line in lines[1:-2]]
    values = {name: value for name, _, value in pairs}
    if len(values) != len(pairs) or "" in values.values():
        return None  # a key twice, or a line without " = <value>"
    family = record_family(values, table.record)
    names = tuple(values)
    verdict = table.signatures.get((names, family))
    if verdict is None:
        verdict = _signature_ok(table, names, family)
        if len(table.signatures) < _CACHE_LIMIT:
            table.signatures[(names, family)] = verdict
    if not verdict:
        return None
    good = table.good_pairs
    for name, value in values.items() - good:
        if not _value_ok(table, name, value):
            return None
        if len(good) < _CACHE_LIMIT * 4:
            good.add((name, value))
    return values


def canonical_values(text: str, record: RecordType) -> dict[str, str] | None:
    """The values of ``text`` when it is exactly what :func:`format_record` writes for
    them (then they are what :func:`parse_record` reads), else None.  The dict may be
    handed to :func:`patch_record` for the same text, which then skips this check."""
    return _canonical_values(text, _table(record))


def record_values(text: str, record: RecordType) -> dict[str, str]:
    """The values ``text`` sets, as :func:`parse_record` reads them (problems dropped):
    a file in open-iscsi's own layout is read by the memoized fast path."""
    values = _canonical_values(text, _table(record))
    return values if values is not None else parse_record(text, record).values


def patch_record(
    text: str,
    record: RecordType,
    changes: Mapping[str, str],
    *,
    values: dict[str, str] | None = None,
) -> str | None:
    """The record ``text`` with ``changes`` applied, or None when a full rewrite is needed.

    The fast path of an update: when ``text`` is exactly what :func:`format_record`
    writes (see :func:`_canonical_values`), the result is byte-identical to a full
    rewrite with the changed values; it only splices the changed lines.  A file open-
    iscsi would rewrite differently (foreign lines, odd spacing, values it would
    normalize), or a change of a key that decides the iface family, returns None.
    ``values``: :func:`canonical_values` of this very ``text``, already computed (the
    dict is updated in place).
    """
    table = _table(record)
    if values is None:
        values = _canonical_values(text, table)
    if values is None:
        return None
    for name, value in changes.items():
        entry = table.reader.get(name)
        if entry is None or name in _FAMILY_KEYS:
            return None
        if "\n" in value or "\0" in value:
            raise InvalidParameterError(f"value of '{name}' must be a single line")
        old = values.get(name)
        if old == value:
            continue
        if old is None or value == "":
            # The line must appear or vanish: rewrite (canonical, so values are complete).
            if value == "" and entry[0].value_type.is_numeric:
                return None
            merged = dict(values)
            merged.update(changes)
            return format_record({k: v for k, v in merged.items() if v != ""}, record)
        start = text.index(f"\n{name} = ") + 1
        end = text.index("\n", start)
        text = f"{text[:start]}{name} = {value}{text[end:]}"
        values[name] = value
    return text
