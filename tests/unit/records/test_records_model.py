"""Typed records: constructors, identity properties, validated changes, iscsiadm's refusals."""

from __future__ import annotations

import pytest

from iscsikit.config.registry import RecordType
from iscsikit.errors import InvalidParameterError, IscsiErr
from iscsikit.records import DiscoveryRecord, IfaceRecord, NodeId, NodeRecord

T = "iqn.2001-04.com.example:disk1"


def test_new_node_defaults_and_identity() -> None:
    node = NodeRecord.new(T, "10.0.0.1", 3260, 1)
    assert (node.target, node.address, node.port, node.tpgt, node.iface) == (
        T,
        "10.0.0.1",
        3260,
        1,
        "default",
    )
    assert node.id == NodeId(T, "10.0.0.1", 3260, 1, "default")
    assert node.portal == "10.0.0.1:3260"
    assert node.discovery_type == "static"
    assert node.get("node.session.cmds_max") == "128"
    assert node.get("iface.transport_name") == "tcp"
    assert node.record_type is RecordType.NODE
    assert "node.session.auth.password_length" not in node.values


def test_new_node_ipv6_and_old_style() -> None:
    node = NodeRecord.new(T, "[fd00::1]", 3261)
    assert node.address == "fd00::1" and node.portal == "[fd00::1]:3261"
    assert node.tpgt == -1 and node.id.old_style


def test_template_overlays_defaults() -> None:
    node = NodeRecord.new(T, "1.2.3.4", template={"node.conn[0].timeo.login_timeout": "15"})
    assert node.get("node.conn[0].timeo.login_timeout") == "15"


def test_set_validates_and_refuses_like_iscsiadm() -> None:
    node = NodeRecord.new(T, "1.2.3.4", 3260, 1)
    node.set("node.startup", "automatic")
    node.set("node.session.auth.password", "pa ss#word")
    assert node.get("node.startup") == "automatic"
    cases = {
        ("node.name", "x"): "It is used to look up the record and cannot be changed",
        ("node.tpgt", "2"): "It is used to look up the record",
        ("iface.mtu", "9000"): "Use iface mode to update this value",
        ("node.bogus", "1"): "Invalid param name",
        ("node.startup", "bogus"): "unknown value format 'bogus'",
        ("node.session.cmds_max", "abc"): "unknown value format",
    }
    for (key, value), words in cases.items():
        with pytest.raises(InvalidParameterError, match=words) as info:
            node.set(key, value)
        assert info.value.code == IscsiErr.INVAL
    node.set("node.transport_name", "iser")  # iscsiadm's alias of iface.transport_name
    assert node.get("iface.transport_name") == "iser"


def test_get_unknown_key() -> None:
    with pytest.raises(InvalidParameterError):
        NodeRecord.new(T, "1.2.3.4").get("node.nope")


def test_bind_iface_copies_like_iface_copy() -> None:
    iface = IfaceRecord.new("ifx")
    iface.set("iface.initiatorname", "iqn.2004-10.com.example:host")
    iface.set("iface.ipaddress", "10.9.9.9")
    iface.set("iface.prefix_len", "24")
    iface.set("iface.mtu", "9000")
    node = NodeRecord.new(T, "1.2.3.4", 3260, 1, iface=iface)
    assert node.iface == "ifx"
    assert node.get("iface.initiatorname") == "iqn.2004-10.com.example:host"
    assert node.get("iface.ipaddress") == "10.9.9.9"
    assert node.get("iface.mtu") == "9000"
    # open-iscsi 2.1.8 iface_copy() does not copy prefix_len (checked with the oracle).
    assert node.get("iface.prefix_len") == "0"


def test_discovery_sets_node_source() -> None:
    disc = DiscoveryRecord.new("sendtargets", "10.0.0.9")
    assert disc.port == 3260 and disc.type == "sendtargets" and disc.has_file
    node = NodeRecord.new(T, "1.2.3.4", 3260, 1, discovery=disc)
    assert (node.discovery_type, node.discovery_address, node.discovery_port) == (
        "send_targets",
        "10.0.0.9",
        3260,
    )
    isns = DiscoveryRecord.new("isns", "[fd00::9]")
    assert isns.port == 3205 and isns.record_type is RecordType.ISNS
    assert isns.portal == "[fd00::9]:3205"
    static = DiscoveryRecord.new("static")
    assert not static.has_file
    node.set_discovery(static)
    assert (node.discovery_type, node.discovery_address, node.discovery_port) == ("static", "", 0)
    with pytest.raises(InvalidParameterError):
        DiscoveryRecord.new("slp", "1.2.3.4")


def test_discovery_set() -> None:
    disc = DiscoveryRecord.new("sendtargets", "10.0.0.9")
    disc.set("discovery.sendtargets.auth.authmethod", "CHAP")
    with pytest.raises(InvalidParameterError, match="look up the record"):
        disc.set("discovery.sendtargets.address", "1.1.1.1")


def test_iface_builtins_and_families() -> None:
    default = IfaceRecord.builtin("default")
    iser = IfaceRecord.builtin("iser")
    assert (default.transport, iser.transport) == ("tcp", "iser")
    assert default.is_builtin
    with pytest.raises(InvalidParameterError, match="special interface"):
        default.set("iface.mtu", "1")
    with pytest.raises(InvalidParameterError):
        IfaceRecord.builtin("eth0")
    v4 = IfaceRecord.new("ifx")
    assert v4.family == "ipv4"
    with pytest.raises(InvalidParameterError, match="Invalid param name"):
        v4.set("iface.hop_limit", "3")  # an IPv6 key: iscsiadm does not know it here
    v4.set("iface.ipaddress", "fd00::7")
    assert v4.family == "ipv6"
    v4.set("iface.hop_limit", "3")
    assert IfaceRecord.new("x_ipv6").family == "ipv6"
    with pytest.raises(InvalidParameterError):
        IfaceRecord.new("a/b")


def test_changes_track_what_moved() -> None:
    node = NodeRecord(NodeRecord.new(T, "1.2.3.4", 3260, 1).values, loaded=True)
    assert node.changes() == {}
    node.set("node.startup", "onboot")
    assert node.changes() == {"node.startup": "onboot"}
    node.mark_stored()
    assert node.changes() == {}
    assert NodeRecord.new(T, "1.2.3.4").changes() is None


def test_equality_and_text() -> None:
    a = NodeRecord.new(T, "1.2.3.4", 3260, 1)
    b = NodeRecord.new(T, "1.2.3.4", 3260, 1)
    assert a == b
    b.set("node.startup", "onboot")
    assert a != b
    assert a.to_text().startswith("# BEGIN RECORD 2.1.8\nnode.name = " + T + "\n")
    assert "iqn.2001-04.com.example:disk1 1.2.3.4:3260,1" in repr(a)
