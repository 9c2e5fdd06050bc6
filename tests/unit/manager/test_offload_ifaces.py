"""Offload ifaces come from the driver hook and are created once, as open-iscsi does."""

from __future__ import annotations

from pathlib import Path

import pytest

from iscsikit.manager.ifaces import ensure_offload_ifaces
from iscsikit.plugin import OffloadPort, hookimpl, manager
from iscsikit.records.store import Records


class FakeHba:
    @hookimpl
    def iscsikit_offload_ports(self) -> list[OffloadPort]:
        return [
            OffloadPort("bnx2i", "00:10:18:2E:A2:9C", net_ifacename="eth2"),
            OffloadPort("bnx2i", "00:10:18:2e:a2:9c"),  # same port twice: one iface
            OffloadPort("qla4xxx", "00:0e:1e:04:93:92", ipaddress="10.0.0.5"),
        ]


def test_offload_ifaces_created_once_and_never_clobbered(tmp_path: Path) -> None:
    pm, _ = manager.build([FakeHba()], entry_points=False)
    records = Records.at(tmp_path / "db")
    created = ensure_offload_ifaces(records, pm)
    assert [i.name for i in created] == ["bnx2i.00:10:18:2e:a2:9c", "qla4xxx.00:0e:1e:04:93:92"]
    bnx = records.iface("bnx2i.00:10:18:2e:a2:9c")
    assert bnx.transport == "bnx2i"
    assert bnx.get("iface.hwaddress") == "00:10:18:2e:a2:9c"
    # As iscsiadm writes it: name, MAC and transport; the host's netdev and address are
    # not copied into the record (2.1.8 iface.c iface_setup_binding_from_kern_iface).
    assert bnx.get("iface.net_ifacename") == ""
    assert records.iface("qla4xxx.00:0e:1e:04:93:92").get("iface.ipaddress") == ""
    # A user's edit survives the next listing; nothing is created twice.
    bnx.set("iface.ipaddress", "192.0.2.7")
    records.update_iface(bnx)
    assert ensure_offload_ifaces(records, pm) == []
    assert records.iface("bnx2i.00:10:18:2e:a2:9c").get("iface.ipaddress") == "192.0.2.7"


def test_no_hardware_no_ifaces(tmp_path: Path) -> None:
    pm, _ = manager.build([], entry_points=False)
    assert ensure_offload_ifaces(Records.at(tmp_path / "db"), pm) == []


def test_kernel_ifaces_get_one_record_each(tmp_path: Path) -> None:
    """qla4xxx and be2iscsi hosts have kernel ifaces: one record per iface, named
    ``<transport>.<mac>.<ipv4|ipv6>.<N>`` and filled from it (2.1.8 iface.c:482-551);
    bnx2i has none: ``<transport>.<mac>``."""
    from iscsikit.testing.simhba import SimulatedHba

    SimulatedHba(tmp_path, "qla4xxx", host_no=3, hwaddress="00:0e:1e:04:93:a0")
    SimulatedHba(tmp_path, "be2iscsi", host_no=4, hwaddress="00:90:fa:00:00:01")
    SimulatedHba(tmp_path, "bnx2i", host_no=5, hwaddress="00:10:18:2e:a2:9c")
    records = Records.at(tmp_path / "db")
    created = {i.name: i for i in ensure_offload_ifaces(records, root=tmp_path)}
    assert sorted(created) == [
        "be2iscsi.00:90:fa:00:00:01.ipv4.0",
        "be2iscsi.00:90:fa:00:00:01.ipv6.0",
        "bnx2i.00:10:18:2e:a2:9c",
        "qla4xxx.00:0e:1e:04:93:a0.ipv4.0",
        "qla4xxx.00:0e:1e:04:93:a0.ipv6.0",
        "qla4xxx.00:0e:1e:04:93:a0.ipv6.1",
    ]
    v4 = records.iface("qla4xxx.00:0e:1e:04:93:a0.ipv4.0")
    assert (v4.get("iface.iface_num"), v4.get("iface.bootproto")) == ("0", "static")
    assert (v4.get("iface.state"), v4.get("iface.vlan_state")) == ("enable", "disable")
    assert v4.get("iface.subnet_mask") == "255.255.255.0"
    assert v4.get("iface.initiatorname") == "iqn.2000-04.com.qlogic:isp8214.000e1e0493a0.4"
    v6 = records.iface("qla4xxx.00:0e:1e:04:93:a0.ipv6.1")
    assert (v6.get("iface.iface_num"), v6.get("iface.ipv6_autocfg")) == ("1", "nd")
    assert ensure_offload_ifaces(records, root=tmp_path) == []


def test_a_missing_record_is_set_up_when_read(tmp_path: Path) -> None:
    """iface_conf_read sets up the host bindings once when the record is missing."""
    from iscsikit.errors import NoObjectsFoundError
    from iscsikit.manager.ifaces import read_iface
    from iscsikit.testing.simhba import SimulatedHba

    SimulatedHba(tmp_path, "qla4xxx", hwaddress="00:0e:1e:04:93:a0")
    records = Records.at(tmp_path / "db")
    name = "qla4xxx.00:0e:1e:04:93:a0.ipv6.0"
    assert read_iface(records, name, root=tmp_path).name == name
    with pytest.raises(NoObjectsFoundError):
        read_iface(records, "qla4xxx.00:0e:1e:04:93:a0", root=tmp_path)
