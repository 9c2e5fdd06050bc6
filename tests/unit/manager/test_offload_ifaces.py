"""Offload ifaces come from the driver hook and are created once, as open-iscsi does."""

from __future__ import annotations

from pathlib import Path

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
    assert bnx.get("iface.net_ifacename") == "eth2"
    assert records.iface("qla4xxx.00:0e:1e:04:93:92").get("iface.ipaddress") == "10.0.0.5"
    # A user's edit survives the next listing; nothing is created twice.
    bnx.set("iface.ipaddress", "192.0.2.7")
    records.update_iface(bnx)
    assert ensure_offload_ifaces(records, pm) == []
    assert records.iface("bnx2i.00:10:18:2e:a2:9c").get("iface.ipaddress") == "192.0.2.7"


def test_no_hardware_no_ifaces(tmp_path: Path) -> None:
    pm, _ = manager.build([], entry_points=False)
    assert ensure_offload_ifaces(Records.at(tmp_path / "db"), pm) == []
