"""``--output json``: one versioned JSON document per invocation, on stdout.

Every mode builds its document from the functions here and writes it with
:func:`emit`, so the shapes stay the ones ``docs/iscsikit-adm.schema.json`` describes
(and ``docs/json-output.md`` explains)::

    {"version": 1, "mode": "iface", "op": "list", "ifaces": [...]}

Rules every builder follows:

* record keys are the key registry's names, in ``-o show`` order; numeric keys are
  JSON integers holding the *stored* value (an old-style record's tpgt is ``-1``, not
  iscsiadm's ``4294967295``), every other value a string (``""`` for empty, never
  ``<empty>``);
* a secret (a masked key such as a CHAP password) that is set is ``null`` unless the
  command had ``-S``/``--show``; an unset secret is ``""``;
* a failed command still writes one document, with ``"error"``
  (:func:`error_json`) and whatever was done before the failure, and exits with the
  same code as in text mode.  The message also goes to stderr as usual.

Nothing here reads the database or the system; builders take records and plain
objects.  This module must stay cheap to import (no records store, no protocol code).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol

from iscsikit.errors import MESSAGES, IscsiErr

if TYPE_CHECKING:
    from iscsikit.cli.printing import NodeLike
    from iscsikit.config.registry import Family, RecordType
    from iscsikit.records.model import DiscoveryRecord, IfaceRecord, Record

__all__ = [
    "MODES",
    "SCHEMA_VERSION",
    "JsonDoc",
    "discovery_json",
    "emit",
    "emit_error",
    "emitted",
    "error_json",
    "iface_json",
    "messages_json",
    "node_json",
    "node_list_json",
    "object_json",
    "record_json",
    "session_json",
    "wants_json",
]

#: Bumped on any incompatible change of a document's shape (docs/json-output.md).
SCHEMA_VERSION = 1
MODES = ("discovery", "discoverydb", "node", "session", "iface", "fw", "host")

JsonDoc = dict[str, Any]
_EMITTED = "_iscsikit_json_emitted"


class _Output(Protocol):
    @property
    def stdout(self) -> Any: ...


class _HasOutput(Protocol):
    @property
    def output(self) -> str: ...


def wants_json(args: _HasOutput) -> bool:
    """Whether the command line asked for ``--output json``."""
    return args.output == "json"


def emitted(env: object) -> bool:
    """Whether this invocation already wrote its document."""
    return bool(getattr(env, _EMITTED, False))


def emit(env: _Output, mode: str | None, payload: Mapping[str, Any]) -> None:
    """Write the invocation's one document: ``{"version", "mode", **payload}``.

    A second call for the same ``env`` is a bug in the caller and raises.
    """
    if emitted(env):
        raise RuntimeError("a JSON document was already written for this invocation")
    import json  # here: every mode imports this module, few write JSON (start-up)

    doc: JsonDoc = {"version": SCHEMA_VERSION, "mode": mode}
    doc.update(payload)
    env.stdout.write(json.dumps(doc, indent=2, ensure_ascii=False) + "\n")
    setattr(env, _EMITTED, True)


def error_json(code: int, message: str | None = None) -> JsonDoc:
    """``{"code": 7, "name": "INVAL", "message": ...}`` for an exit code."""
    try:
        err: IscsiErr | None = IscsiErr(code)
    except ValueError:
        err = None
    name = err.name if err is not None else "UNKNOWN"
    text = message if message is not None else (MESSAGES[err] if err is not None else "")
    return {"code": int(code), "name": name, "message": text}


def emit_error(
    env: _Output,
    mode: str | None,
    code: int,
    message: str | None = None,
    payload: Mapping[str, Any] | None = None,
) -> None:
    """The document of a failed command (nothing if one was already written).

    ``payload`` holds what the command did before it failed.  Used by the modes, and
    meant for :func:`iscsikit.cli.errors.report` for failures met before a mode ran
    (``mode`` None: a bad command line).
    """
    if emitted(env):
        return
    doc: JsonDoc = dict(payload or {})
    doc["error"] = error_json(code, message)
    emit(env, mode, doc)


# -- values and records -----------------------------------------------------------------


def _typed(value: str, numeric: bool) -> int | str:
    if numeric:
        try:
            return int(value)
        except ValueError:
            return value
    return value


def record_json(
    values: Mapping[str, str] | Record,
    record_type: RecordType | None = None,
    family: Family | None = None,
    *,
    show_secrets: bool = False,
) -> JsonDoc:
    """Every key ``-o show`` prints, by registry name (see the module docstring).

    ``values`` may be a record (its type and, for node and iface records, the IP
    family libopeniscsiusr shows are used) or a ``{key: value}`` mapping with
    ``record_type``.
    """
    from iscsikit.config.registry import REGISTRY, RecordType, iface_family
    from iscsikit.records.model import Record

    if isinstance(values, Record):
        record_type = values.record_type
        if family is None and record_type is RecordType.NODE:
            family = iface_family(
                values.values, values.values.get("iface.iscsi_ifacename") or "default", show=True
            )
        elif family is None and record_type is RecordType.IFACE:
            family = iface_family(values.values, values.values["iface.iscsi_ifacename"], show=True)
        values = values.values
    if record_type is None:
        raise TypeError("record_json needs a record or a record_type")
    out: JsonDoc = {}
    for key in REGISTRY.show_order(record_type, family):
        value = values.get(key.name, key.default)
        if key.masked and value and not show_secrets:
            out[key.name] = None
        else:
            out[key.name] = _typed(value, key.value_type.is_numeric)
    return out


def _portal(address: str, port: int) -> str:
    return f"{address}:{port}" if "." in address else f"[{address}]:{port}"


def node_json(
    node: NodeLike, record: Record | None = None, *, show_secrets: bool = False
) -> JsonDoc:
    """A node: its id (target, portal, tpgt, iface), and ``record`` when given."""
    doc: JsonDoc = {
        "target": node.target,
        "portal": _portal(node.address, node.port),
        "address": node.address,
        "port": node.port,
        "tpgt": node.tpgt,
        "iface": node.iface,
    }
    if record is not None:
        doc["record"] = record_json(record, show_secrets=show_secrets)
    return doc


def node_list_json(nodes: Iterable[NodeLike]) -> list[JsonDoc]:
    return [node_json(n) for n in nodes]


def discovery_json(
    drec: DiscoveryRecord,
    *,
    record: bool = False,
    show_secrets: bool = False,
    nodes: Iterable[NodeLike] | None = None,
) -> JsonDoc:
    """A discovery source: type, address and port (null for static and fw), optionally
    the whole record and the nodes it found."""
    doc: JsonDoc = {
        "type": drec.type,
        "address": drec.address if drec.has_file else None,
        "port": drec.port if drec.has_file else None,
    }
    if record and drec.has_file:
        doc["record"] = record_json(drec, show_secrets=show_secrets)
    if nodes is not None:
        doc["nodes"] = node_list_json(nodes)
    return doc


def iface_json(
    iface: IfaceRecord,
    *,
    record: bool = False,
    show_secrets: bool = False,
    nodes: Iterable[NodeLike] | None = None,
) -> JsonDoc:
    """An iface: the fields of ``-m iface`` (name, transport, hwaddress, ipaddress,
    net_ifacename, initiatorname), optionally the whole record and its nodes."""
    doc: JsonDoc = {
        "name": iface.name,
        "transport": iface.get("iface.transport_name"),
        "hwaddress": iface.get("iface.hwaddress"),
        "ipaddress": iface.get("iface.ipaddress"),
        "net_ifacename": iface.get("iface.net_ifacename"),
        "initiatorname": iface.get("iface.initiatorname"),
    }
    if record:
        doc["record"] = record_json(iface, show_secrets=show_secrets)
    if nodes is not None:
        doc["nodes"] = node_list_json(nodes)
    return doc


# -- other objects (sessions, hosts, firmware entries) --------------------------------

_SECRET_FIELDS = frozenset({"password", "password_in", "chap_password", "chap_password_in"})


def object_json(obj: Any, *, show_secrets: bool = False) -> Any:
    """A dataclass, mapping or sequence as plain JSON values, recursively.

    Field names are kept; fields named like a CHAP password are ``null`` when set
    unless ``show_secrets``.  Used for sessions, hosts and firmware entries, whose
    shapes belong to the modes that print them.
    """
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        items: Iterable[tuple[str, Any]] = (
            (f.name, getattr(obj, f.name)) for f in dataclasses.fields(obj)
        )
        return _mapping(items, show_secrets)
    if isinstance(obj, Mapping):
        return _mapping(((str(k), v) for k, v in obj.items()), show_secrets)
    if isinstance(obj, (list, tuple, set, frozenset)):
        return [object_json(v, show_secrets=show_secrets) for v in obj]
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    return str(obj)


def _mapping(items: Iterable[tuple[str, Any]], show_secrets: bool) -> JsonDoc:
    out: JsonDoc = {}
    for name, value in items:
        if name in _SECRET_FIELDS and value and not show_secrets:
            out[name] = None
        else:
            out[name] = object_json(value, show_secrets=show_secrets)
    return out


def session_json(info: Any, *, show_secrets: bool = False) -> JsonDoc:
    """A :class:`~iscsikit.manager.sessions.SessionInfo` (every field; CHAP passwords
    ``null`` unless ``-S``) plus ``portal`` as iscsiadm prints the persistent one, and
    each NBD export's ``uri``."""
    doc: JsonDoc = object_json(info, show_secrets=show_secrets)
    doc["portal"] = _portal(info.persistent_address, info.persistent_port)
    exports = getattr(info, "exports", ())
    doc["exports"] = [{**object_json(e), "uri": e.uri} for e in exports]
    return doc


def messages_json(lines: Sequence[str]) -> list[str]:
    """Informational stdout lines of text mode, without their newlines."""
    return [line.rstrip("\n") for line in lines]
