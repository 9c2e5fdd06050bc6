"""iface binding: a node record's iface keys become the session's binding
(iscsikit.manager.node_login) and the socket binding a TCP driver applies
(iscsikit.net.connection.socket_binding), chosen as iscsid's ``bind_conn_to_iface``."""

from __future__ import annotations

from pathlib import Path

import pytest

from iscsikit.errors import IscsiErr, TransportError
from iscsikit.manager.node_login import binding_of, node_settings
from iscsikit.net.connection import SocketBinding, socket_binding
from iscsikit.records.model import IfaceRecord, NodeRecord

IQN = "iqn.2024-01.test:binding"
MAC = "52:54:00:12:34:56"


def _node(**keys: str) -> NodeRecord:
    """A node bound to an iface record with ``keys`` (as ``-m iface -o update`` sets
    them, then discovery with ``-I`` binds nodes to it)."""
    iface = IfaceRecord.new("bound")
    for key, value in keys.items():
        iface.set(f"iface.{key}", value)
    return NodeRecord.new(IQN, "127.0.0.1", 3260, 1, iface=iface)


def _sys(tmp_path: Path, netdevs: dict[str, str]) -> Path:
    for name, mac in netdevs.items():
        base = tmp_path / "sys/class/net" / name
        base.mkdir(parents=True)
        (base / "address").write_text(mac + "\n")
    return tmp_path


def test_an_unbound_node_has_no_binding() -> None:
    node = _node()
    assert binding_of(node) == {}
    assert node_settings(node).binding == {}
    assert node_settings(node).spec().binding == {}


def test_the_ifaces_keys_reach_the_connect_spec() -> None:
    node = _node(net_ifacename="eth1", hwaddress=MAC, ipaddress="192.0.2.7")
    expected = {
        "iface.net_ifacename": "eth1",
        "iface.hwaddress": MAC,
        "iface.ipaddress": "192.0.2.7",
    }
    assert binding_of(node) == expected
    spec = node_settings(node).spec()
    assert dict(spec.binding) == expected
    # Every recovery login of the session binds the same way.
    assert dict(node_settings(node).spec(spec.portal).binding) == expected


def test_default_values_are_unset() -> None:
    node = _node(net_ifacename="default", hwaddress="default", ipaddress="default")
    assert binding_of(node) == {}


def test_hwaddress_names_the_netdev_with_that_mac(tmp_path: Path) -> None:
    root = _sys(tmp_path, {"eth0": "52:54:00:00:00:01", "eth1": MAC})
    got = socket_binding({"iface.hwaddress": MAC.upper()}, root=root)
    assert got == SocketBinding(device="eth1")


def test_hwaddress_wins_over_net_ifacename_as_in_iscsid(tmp_path: Path) -> None:
    root = _sys(tmp_path, {"eth1": MAC})
    binding = {"iface.hwaddress": MAC, "iface.net_ifacename": "eth9"}
    assert socket_binding(binding, root=root).device == "eth1"


def test_no_netdev_with_the_mac_is_iscsids_error(tmp_path: Path) -> None:
    root = _sys(tmp_path, {"eth0": "52:54:00:00:00:01"})
    with pytest.raises(TransportError) as caught:
        socket_binding({"iface.hwaddress": MAC}, root=root)
    assert str(caught.value) == f"Cannot match {MAC} to net/scsi interface."
    assert caught.value.code is IscsiErr.TRANS


def test_net_ifacename_is_the_device() -> None:
    assert socket_binding({"iface.net_ifacename": "lo"}) == SocketBinding(device="lo")


def test_ipaddress_is_a_source_address_for_userspace_tcp() -> None:
    binding = {"iface.ipaddress": "127.0.0.2", "iface.net_ifacename": "lo"}
    assert socket_binding(binding) == SocketBinding("lo", "127.0.0.2")


def test_ipaddress_alone_is_refused_for_iscsi_tcp_as_iscsid_refuses_it() -> None:
    with pytest.raises(TransportError, match="not supported with software iSCSI") as caught:
        socket_binding({"iface.ipaddress": "127.0.0.2"}, source_address=False)
    assert caught.value.code is IscsiErr.TRANS
    # With a netdev the address is ignored (iscsid binds by netdev first).
    binding = {"iface.ipaddress": "127.0.0.2", "iface.net_ifacename": "lo"}
    assert socket_binding(binding, source_address=False) == SocketBinding("lo")
