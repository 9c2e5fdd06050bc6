"""``--output json`` builders and the schema every document must follow."""

from __future__ import annotations

import io
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from iscsikit.cli import jsonout
from iscsikit.config.registry import RecordType
from iscsikit.records import DiscoveryRecord, IfaceRecord, NodeRecord

SCHEMA = Path(__file__).resolve().parents[3] / "docs" / "iscsikit-adm.schema.json"


@pytest.fixture(scope="module")
def validator() -> Any:
    jsonschema = pytest.importorskip("jsonschema")
    schema = json.loads(SCHEMA.read_text())
    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    return cls(schema)


def errors(validator: Any, doc: dict[str, Any]) -> list[str]:
    return [e.message for e in validator.iter_errors(doc)]


@dataclass
class Env:
    stdout: io.StringIO = field(default_factory=io.StringIO)


def test_emit_writes_one_document() -> None:
    env = Env()
    assert not jsonout.emitted(env)
    jsonout.emit(env, "iface", {"op": "list", "ifaces": []})
    assert json.loads(env.stdout.getvalue()) == {
        "version": 1,
        "mode": "iface",
        "op": "list",
        "ifaces": [],
    }
    assert jsonout.emitted(env)
    with pytest.raises(RuntimeError):
        jsonout.emit(env, "iface", {})
    jsonout.emit_error(env, "iface", 7)  # already written: nothing more
    assert env.stdout.getvalue().count('"version"') == 1


def test_emit_error_document() -> None:
    env = Env()
    jsonout.emit_error(env, None, 7, "bad", {"op": "show"})
    doc = json.loads(env.stdout.getvalue())
    assert doc == {
        "version": 1,
        "mode": None,
        "op": "show",
        "error": {"code": 7, "name": "INVAL", "message": "bad"},
    }


def test_error_json() -> None:
    assert jsonout.error_json(21) == {
        "code": 21,
        "name": "NO_OBJS_FOUND",
        "message": "no objects found",
    }
    assert jsonout.error_json(243)["name"] == "UNKNOWN"


def test_record_json_types_and_secrets() -> None:
    drec = DiscoveryRecord.new("sendtargets", "10.0.0.1")
    drec.values["discovery.sendtargets.auth.password"] = "s3cret"
    doc = jsonout.record_json(drec)
    assert list(doc)[:4] == [
        "discovery.startup",
        "discovery.type",
        "discovery.sendtargets.address",
        "discovery.sendtargets.port",
    ]
    assert doc["discovery.sendtargets.port"] == 3260  # a number
    assert doc["discovery.sendtargets.auth.password"] is None  # set, hidden
    assert doc["discovery.sendtargets.auth.password_in"] == ""  # unset
    shown = jsonout.record_json(drec, show_secrets=True)
    assert shown["discovery.sendtargets.auth.password"] == "s3cret"
    values = dict(drec.values)
    assert jsonout.record_json(values, RecordType.SENDTARGETS) == doc
    with pytest.raises(TypeError):
        jsonout.record_json(values)


def test_node_and_iface_json_pick_the_shown_family() -> None:
    node = NodeRecord.new("iqn.2001-04.com.example:t", "fe80::1", 3261)
    doc = jsonout.node_json(node, node)
    assert doc["portal"] == "[fe80::1]:3261" and doc["tpgt"] == -1
    assert doc["record"]["node.tpgt"] == -1  # the stored value, not 4294967295
    assert "iface.ipv6_linklocal" not in doc["record"]  # "default": IPv4 keys
    iface = IfaceRecord.new("ipv6lab")
    shown = jsonout.iface_json(iface, record=True)
    assert "iface.ipv6_linklocal" in shown["record"] and "iface.tos" not in shown["record"]
    assert shown["transport"] == "tcp" and shown["hwaddress"] == ""


def test_discovery_json_static_has_no_address() -> None:
    doc = jsonout.discovery_json(DiscoveryRecord.new("static"), nodes=[])
    assert doc == {"type": "static", "address": None, "port": None, "nodes": []}


@dataclass(frozen=True)
class FakeSession:
    sid: int
    target: str
    persistent_address: str
    persistent_port: int
    password: str
    params: dict[str, str]
    devices: tuple[Any, ...] = ()


def test_session_json_masks_passwords() -> None:
    info = FakeSession(3, "iqn.x:y", "10.0.0.1", 3260, "pw", {"HeaderDigest": "None"})
    doc = jsonout.session_json(info)
    assert doc["password"] is None and doc["portal"] == "10.0.0.1:3260"
    assert doc["params"] == {"HeaderDigest": "None"} and doc["devices"] == []
    assert jsonout.session_json(info, show_secrets=True)["password"] == "pw"
    assert jsonout.object_json(Path("/x")) == "/x"


def test_messages_json() -> None:
    assert jsonout.messages_json(["a\n", "b"]) == ["a", "b"]


def test_schema_accepts_every_builder(validator: Any) -> None:
    node = NodeRecord.new("iqn.2001-04.com.example:t", "10.0.0.1", 3260, 1)
    drec = DiscoveryRecord.new("sendtargets", "10.0.0.1")
    iface = IfaceRecord.new("ifx")
    docs: list[dict[str, Any]] = [
        {"version": 1, "mode": "node", "op": "show", "nodes": [jsonout.node_json(node, node)]},
        {
            "version": 1,
            "mode": "discovery",
            "op": "discover",
            "discovery": jsonout.discovery_json(drec),
            "targets": [jsonout.node_json(node)],
            "changes": {"added": [jsonout.node_json(node)], "updated": [], "deleted": []},
            "logins": [{**jsonout.node_json(node), "error": jsonout.error_json(20)}],
        },
        {
            "version": 1,
            "mode": "discoverydb",
            "op": "show",
            "discoveries": [jsonout.discovery_json(drec, record=True, nodes=[node])],
        },
        {
            "version": 1,
            "mode": "iface",
            "op": "show",
            "ifaces": [jsonout.iface_json(iface, record=True, nodes=[node])],
        },
        {
            "version": 1,
            "mode": "iface",
            "op": "ping",
            "pings": [{"seq": 1, "error": jsonout.error_json(1)}],
            "messages": ["Ping 1 failed"],
        },
        {"version": 1, "mode": "node", "op": "update", "changes": {"node.startup": "manual"}},
        {"version": 1, "mode": "host", "error": jsonout.error_json(21), "messages": []},
    ]
    for doc in docs:
        assert errors(validator, doc) == [], doc


@pytest.mark.parametrize(
    "doc",
    [
        {"mode": "iface"},  # no version
        {"version": 2, "mode": "iface"},
        {"version": 1, "mode": "bogus"},
        {"version": 1, "mode": "iface", "nodes": []},  # not an iface-mode key
        {"version": 1, "mode": "iface", "extra": 1},
        {"version": 1, "mode": "iface", "ifaces": [{"name": "x"}]},  # fields missing
        {"version": 1, "mode": "discovery", "changes": {"node.startup": "x"}},
        {"version": 1, "mode": "node", "nodes": [{"target": "t"}]},
        {"version": 1, "mode": "node", "error": {"code": 7}},
        {"version": 1, "mode": "discovery", "discoveries": [{"type": "slp"}]},
    ],
)
def test_schema_rejects(validator: Any, doc: dict[str, Any]) -> None:
    assert errors(validator, doc)
