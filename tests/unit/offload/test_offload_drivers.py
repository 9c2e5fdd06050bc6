"""The offload driver plugins against simulated hosts (iscsikit.testing.simhba)."""

from __future__ import annotations

import errno
import importlib
import socket
import struct
from collections.abc import Iterator
from pathlib import Path

import pytest

from iscsikit import net
from iscsikit.errors import ConnectionFailedError, NotSupportedError
from iscsikit.netlink import NetlinkRequestError
from iscsikit.netlink.constants import Capability as Cap
from iscsikit.netlink.constants import ChapType, IfaceType, ParamType, PingStatus, UEvent
from iscsikit.netlink.messages import SetIfaceParams
from iscsikit.netlink.params import NetParam
from iscsikit.plugin import Capability, manager
from iscsikit.proto.address import Portal
from iscsikit.sysfs import SysfsContext
from iscsikit.testing.simhba import PROFILES, HbaServer, SimulatedHba
from iscsikit_drivers.kerneltcp import NetlinkChannel
from iscsikit_drivers.offload import (
    OffloadHost,
    OffloadTransport,
    ThroughHostConnector,
    net_config_attrs,
)
from iscsikit_drivers.offload.channel import SEAM_VARIABLE, default_channel
from iscsikit_drivers.offload.host import CHAP_PAGE

DRIVERS = ["qla4xxx", "cxgb3i", "cxgb4i", "bnx2i", "be2iscsi", "qedi"]


def _plugin(name: str) -> type[OffloadTransport]:
    module = importlib.import_module(f"iscsikit_drivers.offload.{name}")
    registry = manager.build([module], entry_points=False)[1]
    cls = registry.get(name)
    assert issubclass(cls, OffloadTransport)
    return cls


@pytest.fixture
def server(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[HbaServer]:
    with HbaServer(SimulatedHba(tmp_path, getattr(request, "param", "qla4xxx"))) as srv:
        yield srv


def _host(server: HbaServer) -> OffloadHost:
    def factory(*, events: bool = False) -> NetlinkChannel:
        return NetlinkChannel(sock=server.socketpair())

    return OffloadHost(server.hba.host_no, server.hba.transport_handle, factory)


@pytest.mark.parametrize("name", DRIVERS)
def test_each_plugin_reports_its_drivers_caps(name: str, tmp_path: Path) -> None:
    cls = _plugin(name)
    assert cls.__module__ == f"iscsikit_drivers.offload.{name}"
    assert cls.kernel_caps == PROFILES[name].caps
    assert cls.proc_name == PROFILES[name].proc_name
    assert "simulated" in cls.description
    assert {Capability.LOGIN, Capability.BLOCK_DEVICE} <= cls.capabilities
    # Every one of the six has CAP_TEXT_NEGO: SendTargets through the host.
    assert (Capability.SENDTARGETS in cls.capabilities) is bool(cls.kernel_caps & Cap.TEXT_NEGO)
    assert (Capability.IPV6 in cls.capabilities) is (name != "cxgb3i")
    SimulatedHba(tmp_path, name, host_no=4, hwaddress="00:0E:1E:AA:BB:CC")
    transport = cls(root=tmp_path)
    assert [h.host_no for h in transport.hosts()] == [4]
    (port,) = transport.ports()
    assert port.iface_name == f"{name}.00:0e:1e:aa:bb:cc"
    assert (
        transport.transport_handle()
        == SimulatedHba(tmp_path / "x", name, host_no=4).transport_handle
    )

    class NoTextNego(cls):  # type: ignore[valid-type,misc]
        kernel_caps = cls.kernel_caps & ~Cap.TEXT_NEGO

    with pytest.raises(NotSupportedError):
        NoTextNego(root=tmp_path).discover_sendtargets(None)


def test_ports_hook_reads_the_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The hook reads the root it is given, not ``ISCSIKIT_ROOT``."""
    SimulatedHba(tmp_path / "hba", "bnx2i", host_no=3, hwaddress="00:10:18:01:02:03")
    (tmp_path / "empty/sys").mkdir(parents=True)
    monkeypatch.setenv("ISCSIKIT_ROOT", str(tmp_path / "empty"))
    modules = [importlib.import_module(f"iscsikit_drivers.offload.{n}") for n in DRIVERS]
    pm = manager.build(modules, entry_points=False)[0]
    ports = [p for found in pm.hook.iscsikit_offload_ports(root=tmp_path / "hba") for p in found]
    assert [(p.transport, p.hwaddress, p.net_ifacename, p.ipaddress) for p in ports] == [
        ("bnx2i", "00:10:18:01:02:03", "eth2", "192.0.2.50")
    ]
    assert [
        p for found in pm.hook.iscsikit_offload_ports(root=tmp_path / "empty") for p in found
    ] == []
    monkeypatch.setenv("ISCSIKIT_ROOT", str(tmp_path / "hba"))
    assert [
        p for found in pm.hook.iscsikit_offload_ports(root=tmp_path / "empty") for p in found
    ] == []


def test_net_config_attrs_golden() -> None:
    record = {
        "iface.iface_num": "0", "iface.ipaddress": "10.1.2.3",
        "iface.subnet_mask": "255.255.255.0", "iface.gateway": "10.1.2.1",
        "iface.bootproto": "static", "iface.state": "enable", "iface.vlan_state": "enable",
        "iface.vlan_id": "42", "iface.vlan_priority": "3", "iface.mtu": "9000",
    }  # fmt: skip
    attrs = net_config_attrs(record)
    assert [a.param for a in attrs] == [
        NetParam.IPV4_BOOTPROTO, NetParam.IPV4_ADDR, NetParam.IPV4_SUBNET, NetParam.IPV4_GW,
        NetParam.IFACE_ENABLE, NetParam.VLAN_ENABLED, NetParam.VLAN_TAG, NetParam.MTU,
        NetParam.PORT,
    ]  # fmt: skip
    payload = SetIfaceParams(transport_handle=1, host_no=7, attrs=attrs).payload()
    # nlattr {len 17, type 4}, iscsi_iface_param_info {num 0, len 1, param 4, IPv4, NET}, 1
    assert payload[:20].hex() == "1100040000000000010000000400010201000000"
    assert payload[20:40].hex() == "140001000000000004000000010001020a010203"
    assert attrs[6].value == struct.pack("=H", 3 << 13 | 42)
    assert attrs[-1].value == struct.pack("=H", 3260)
    assert all(a.param_type == ParamType.NET_PARAM and a.iface_type == 1 for a in attrs)


def test_net_config_attrs_disable_and_empty() -> None:
    disabled = net_config_attrs({"iface.ipaddress": "10.1.2.3", "iface.state": "disable"})
    assert [(a.param, a.value) for a in disabled] == [(NetParam.IFACE_ENABLE, b"\x01")]
    assert net_config_attrs({"iface.bootproto": "static"}) == ()
    v6 = net_config_attrs({"iface.ipaddress": "fd00::7", "iface.iface_num": "1"})
    assert [a.param for a in v6] == [NetParam.IPV6_ADDR, NetParam.PORT]
    assert v6[0].iface_type == IfaceType.IPV6 and v6[0].iface_num == 1


def test_apply_reaches_the_simulated_iface(server: HbaServer) -> None:
    record = {"iface.ipaddress": "10.9.8.7", "iface.subnet_mask": "255.0.0.0", "iface.mtu": "9000"}
    _host(server).set_iface_params(net_config_attrs(record))
    iface = SysfsContext(server.hba.root).host(7).ifaces()[0]  # type: ignore[union-attr]
    assert (iface.attr("ipaddress"), iface.attr("subnet"), iface.attr("mtu")) == (
        "10.9.8.7", "255.0.0.0", "9000",
    )  # fmt: skip


def test_ping_status(server: HbaServer) -> None:
    server.hba.ping_status = lambda a: PingStatus.NO_ARP_RECEIVED if a == "10.0.0.9" else 0
    host = _host(server)
    assert host.ping("192.0.2.1") == PingStatus.SUCCESS
    assert host.ping("10.0.0.9", size=1500) == PingStatus.NO_ARP_RECEIVED
    (ping,) = [r for r in server.hba.requests if r.TYPE == UEvent.PING][-1:]
    assert ping.payload_size == 1500  # type: ignore[attr-defined]


def test_chap_entries_are_read_in_pages(server: HbaServer) -> None:
    host = _host(server)
    for i in range(CHAP_PAGE + 5):
        host.set_chap(i, ChapType.OUT if i % 2 else ChapType.IN, f"user{i}", f"secret{i:06d}")
    entries = host.chap_entries()
    assert [e.chap_tbl_idx for e in entries] == list(range(CHAP_PAGE + 5))
    assert (entries[3].username, entries[3].password) == ("user3", b"secret000003")
    assert sum(r.TYPE == UEvent.GET_CHAP for r in server.hba.requests) == 2
    host.delete_chap(3)
    assert 3 not in [e.chap_tbl_idx for e in host.chap_entries()]


def test_host_stats_and_flashnodes(server: HbaServer) -> None:
    server.hba.host_stats = {"iscsi_pdu_rx": 77}
    host = _host(server)
    assert host.host_stats()["iscsi_pdu_rx"] == 77
    index = host.new_flashnode("ipv4")
    for op in ("login", "logout", "delete"):
        host.flashnode(op, index)
    with pytest.raises(NetlinkRequestError) as failed:
        host.flashnode("delete", index)
    assert failed.value.errno == errno.ENODEV


@pytest.mark.parametrize("server", ["bnx2i"], indirect=True)
def test_what_bnx2i_lacks(server: HbaServer) -> None:
    host = _host(server)
    with pytest.raises(NetlinkRequestError) as failed:
        host.host_stats()
    assert failed.value.not_supported
    with pytest.raises(NetlinkRequestError) as failed:
        host.chap_entries()
    assert failed.value.errno == errno.EINVAL


def test_through_host_connector(server: HbaServer) -> None:
    channel = NetlinkChannel(sock=server.socketpair())
    listener = socket.create_server(("127.0.0.1", 0))
    with listener, channel:
        portal = Portal("127.0.0.1", listener.getsockname()[1])
        endpoint = ThroughHostConnector(7).connect(
            channel, server.hba.transport_handle, portal, net.deadline_after(5)
        )
        assert endpoint.handle > 0
        endpoint.close(clean=True)
        listener.close()
        with pytest.raises(ConnectionFailedError):
            ThroughHostConnector(7).connect(
                channel, server.hba.transport_handle, portal, net.deadline_after(5)
            )
        with pytest.raises(NetlinkRequestError) as failed:
            ThroughHostConnector(3).connect(
                channel, server.hba.transport_handle, portal, net.deadline_after(5)
            )
        assert failed.value.errno == errno.ENODEV
    kinds = [r.TYPE for r in server.hba.requests]
    assert UEvent.TRANSPORT_EP_CONNECT not in kinds
    assert kinds.count(UEvent.TRANSPORT_EP_DISCONNECT) == 2  # the good one and the refused one


def test_seam_channel_from_the_environment(server: HbaServer, tmp_path: Path) -> None:
    path = server.listen(tmp_path / "nl.sock")
    with default_channel(env={SEAM_VARIABLE: str(path)}) as channel:
        assert channel.sock.family == socket.AF_UNIX
    host = OffloadHost(7, server.hba.transport_handle)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(SEAM_VARIABLE, str(path))
        server.hba.host_stats = {"mactx_frames": 3}
        assert host.host_stats()["mactx_frames"] == 3
