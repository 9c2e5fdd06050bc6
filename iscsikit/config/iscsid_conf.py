"""iscsid.conf: read it as open-iscsi does, and derive the template of new records.

open-iscsi reads iscsid.conf twice, in two different ways:

* ``node.*``, ``iface.*`` and ``discovery.*`` keys go through the record-file reader
  (:mod:`iscsikit.config.recparse`): value = rest of the line (``#``, commas, quotes and
  inner spaces included), ``key=value`` without a space before ``=`` is rejected, the
  last assignment wins, an unknown enum value keeps the previous value with a warning.
  ``idbm_sync_config`` applies the result over the compiled defaults to make the
  template of every *new* record (:meth:`IscsidConf.template`); existing records are
  never touched.
* ``iscsid.startup``, ``iscsid.safe_logout`` and ``iscsid.ipc_auth_uid`` are read by
  ``cfg_get_string_param``: the *first* line containing the key wins unless a ``#``
  comes before it, and the value is whatever follows the next ``=``.

**configobj** (a project requirement) is used with ``list_values=False,
interpolation=False``, but never on the raw text, because its tokenizer disagrees with
open-iscsi's in five ways: it cuts values at ``#`` (``password = pa#ss`` -> ``pa``),
splits commas into lists unless ``list_values=False``, raises on duplicate keys
(open-iscsi: last wins) and on lines without ``=`` (open-iscsi: warn, go on), and starts
a section at a ``[`` line.  So the open-iscsi line reader decides what each key and
value is, and configobj is handed one line per key whose name and value are
percent-encoded (only ``[A-Za-z0-9_.~-]`` and ``%``), which it cannot misread; the
values are decoded back from the ConfigObj.

A missing file is an empty configuration (compiled defaults, as when iscsiadm cannot
reach iscsid).  A file that exists but cannot be read raises
:class:`~iscsikit.errors.DatabaseError` (exit 6): iscsid.conf is read by the idbm layer
to build records, and silently ignoring it would create records without the settings
(e.g. CHAP secrets) the administrator put there.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote, unquote_to_bytes

from configobj import ConfigObj

from iscsikit.config.paths import resolve_paths
from iscsikit.config.recparse import C_SPACE, Assignment, ConfProblem, parse_lines, split_fgets
from iscsikit.config.registry import (
    REGISTRY,
    RecordType,
    Registry,
    ValueType,
    unknown_value_message,
)
from iscsikit.errors import DatabaseError, InternalError, InvalidParameterError

__all__ = ["ISCSID_SETTINGS", "TEMPLATE_RECORDS", "ConfProblem", "IscsidConf"]

#: Keys iscsid reads with cfg_get_string_param (not part of any record).
ISCSID_SETTINGS = ("iscsid.startup", "iscsid.safe_logout", "iscsid.ipc_auth_uid")
#: Record types iscsid.conf provides a template for, in idbm_sync_config's order.
TEMPLATE_RECORDS = (RecordType.SENDTARGETS, RecordType.ISNS, RecordType.NODE)
#: cfg_get_string_param's fgets() buffer.
_CFG_BUFFER = 1024


def _enc(text: str) -> str:
    return quote(text.encode("utf-8", "surrogateescape"), safe="")


def _dec(text: str) -> str:
    return unquote_to_bytes(text).decode("utf-8", "surrogateescape")


def _through_configobj(assignments: list[Assignment]) -> dict[str, str]:
    """Last-wins ``{name: value}``, held by a ConfigObj that only sees encoded lines."""
    final: dict[str, str] = {}
    for a in assignments:
        if a.name:
            final[a.name] = a.value
    conf = ConfigObj(
        [f"{_enc(k)} = {_enc(v)}" for k, v in final.items()],
        list_values=False,
        interpolation=False,
        raise_errors=True,
    )
    values = {_dec(k): _dec(v) for k, v in conf.items()}
    if values != final:  # pragma: no cover - would be a configobj change
        raise InternalError("configobj altered an encoded iscsid.conf value")
    return values


def _cfg_get_string_param(
    text: str, key: str, path: Path, problems: list[ConfProblem]
) -> tuple[str | None, int]:
    """iscsid's reader for ``iscsid.*`` settings: (value, line) of the first match."""
    found: tuple[str | None, int] = (None, 0)
    for number, chunk in enumerate(split_fgets(text, _CFG_BUFFER), start=1):
        at = chunk.find(key)
        if at < 0:
            continue
        comment = chunk.find("#")
        if 0 <= comment < at:
            continue
        equals = chunk.find("=", at)
        if equals < 0:
            problems.append(
                ConfProblem(path, number, f"Invalid config line for {key}. Missing '='.")
            )
            continue
        value = chunk[equals + 1 :].strip(C_SPACE)
        if not value:
            problems.append(
                ConfProblem(path, number, f"Invalid config line for {key}. Missing value")
            )
            continue
        if found[0] is None:
            found = (value, number)
        else:
            problems.append(
                ConfProblem(path, number, f"{key} is set again; iscsid uses line {found[1]}")
            )
    return found


@dataclass
class IscsidConf:
    """One iscsid.conf as open-iscsi reads it.

    ``values`` holds every syntactically valid ``key = value`` (last wins, values
    verbatim); ``problems`` every warning, with file and line.  ``exists`` is False for
    a missing file (all compiled defaults).
    """

    path: Path
    values: dict[str, str] = field(default_factory=dict)
    problems: list[ConfProblem] = field(default_factory=list)
    assignments: list[Assignment] = field(default_factory=list)
    settings: dict[str, str] = field(default_factory=dict)
    exists: bool = True
    registry: Registry = field(default=REGISTRY, repr=False)

    # -- construction -------------------------------------------------------------------

    @classmethod
    def load(cls, path: Path | None = None, *, registry: Registry = REGISTRY) -> IscsidConf:
        """Read ``path`` (default: ``<root>/etc/iscsi/iscsid.conf``, see paths)."""
        path = resolve_paths().iscsid_conf if path is None else path
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            return cls(path=path, exists=False, registry=registry)
        except OSError as exc:
            raise DatabaseError(f"cannot read {path}: {exc.strerror or exc}") from exc
        return cls.parse(data.decode("utf-8", "surrogateescape"), path, registry=registry)

    @classmethod
    def parse(
        cls, text: str, path: Path = Path("iscsid.conf"), *, registry: Registry = REGISTRY
    ) -> IscsidConf:
        assignments, problems = parse_lines(text, path)
        conf = cls(
            path=path,
            values=_through_configobj(assignments),
            problems=problems,
            assignments=assignments,
            registry=registry,
        )
        conf._check_values()
        for key in ISCSID_SETTINGS:
            value, _line = _cfg_get_string_param(text, key, path, conf.problems)
            if value is not None:
                conf.settings[key] = value
        conf.problems.sort(key=lambda p: p.line)
        return conf

    def _check_values(self) -> None:
        """Warn about what open-iscsi would warn about, and about keys it ignores."""
        for a in self.assignments:
            messages: list[str] = []
            known = False
            for record in TEMPLATE_RECORDS:
                key = self.registry.find(record, a.name)
                if key is None:
                    continue
                known = True
                warnings: list[str] = []
                parsed = self.registry.parse_value(key, a.value, warnings=warnings)
                if parsed is None:
                    warnings.append(unknown_value_message(a.name, a.value, a.line))
                elif key.value_type is not ValueType.LIST:
                    try:
                        self.registry.validate(record, a.name, a.value)
                    except InvalidParameterError as exc:
                        # open-iscsi is silent here; say what it will really use.
                        warnings.append(f"{exc}; open-iscsi reads it as '{parsed}'")
                messages.extend(w for w in warnings if w not in messages)
            if not known and a.name not in ISCSID_SETTINGS:
                since = next(
                    (v for r in TEMPLATE_RECORDS if (v := self.registry.introduced_in(r, a.name))),
                    None,
                )
                if since is not None:
                    messages.append(
                        f"parameter name '{a.name}' is new in open-iscsi {since}; "
                        f"{self.registry.version} ignores it"
                    )
                else:
                    messages.append(f"unknown parameter name '{a.name}' (ignored)")
            self.problems.extend(ConfProblem(self.path, a.line, m) for m in messages)

    # -- queries ------------------------------------------------------------------------

    def get(self, key: str, default: str | None = None) -> str | None:
        return self.values.get(key, default)

    def line_of(self, key: str) -> int | None:
        """The line whose assignment of ``key`` is in effect."""
        for a in reversed(self.assignments):
            if a.name == key:
                return a.line
        return None

    def template(self, record: RecordType) -> dict[str, str]:
        """The values a new record of type ``record`` starts with (idbm_sync_config).

        Compiled defaults (every key, hidden ``*_length`` ones included), overlaid with
        each iscsid.conf assignment of a key of that record type, in file order.  An
        invalid enum value leaves the previous value (see :attr:`problems`); numbers
        follow strtoul.  Password lengths are recomputed from non-empty passwords.
        Record-id keys are applied too, as open-iscsi does: the caller sets the real ids.
        For ``SENDTARGETS`` note that ``node.session.auth.chap_algs`` is shared with
        node records.
        """
        if record not in TEMPLATE_RECORDS:
            raise InvalidParameterError(f"iscsid.conf has no template for {record.value} records")
        values = self.registry.defaults(record)
        for a in self.assignments:
            key = self.registry.find(record, a.name)
            if key is None:
                continue
            parsed = self.registry.parse_value(key, a.value)
            if parsed is not None:
                values[key.name] = parsed
        for key in self.registry.all_keys(record):
            length = f"{key.name}_length"
            if key.masked and length in values and values[key.name]:
                values[length] = str(len(values[key.name].encode("utf-8", "surrogateescape")))
        return values

    # -- iscsid settings ---------------------------------------------------------------

    @property
    def startup(self) -> str | None:
        """``iscsid.startup``: the command iscsiadm runs when iscsid does not answer."""
        return self.settings.get("iscsid.startup")

    @property
    def safe_logout(self) -> bool:
        """``iscsid.safe_logout = Yes``: refuse to log out of sessions with mounted devices."""
        return self.settings.get("iscsid.safe_logout") == "Yes"

    @property
    def ipc_auth_uid(self) -> bool:
        """``iscsid.ipc_auth_uid = Yes``: authorise IPC peers by uid 0 only (2.1.8 default
        No: the peer's user name must be root)."""
        return self.settings.get("iscsid.ipc_auth_uid") == "Yes"
