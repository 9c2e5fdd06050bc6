"""The simulated offload HBAs: their sysfs trees and their netlink answers.

Requests go through the real client (``NetlinkChannel`` on one end of the simulator's
socketpair), so what is checked is what a driver sees.
"""

from __future__ import annotations

import errno
import shutil
import socket
import struct
from collections.abc import Iterator
from pathlib import Path

import pytest

from iscsikit.netlink import NetlinkRequestError
from iscsikit.netlink.constants import ChapType, IfaceType, ParamType, PingStatus
from iscsikit.netlink.events import (
    ChapReceived,
    EndpointConnected,
    FlashnodeCreated,
    HostStatsReceived,
    PingCompleted,
    RequestDone,
)
from iscsikit.netlink.messages import (
    DeleteChap,
    DelFlashnode,
    EpConnectThroughHost,
    EpDisconnect,
    EpPoll,
    GetChap,
    GetHostStats,
    NewFlashnode,
    Ping,
    SetChap,
    SetIfaceParams,
)
from iscsikit.netlink.params import ChapParam, NetParam
from iscsikit.netlink.wire import ParamAttr
from iscsikit.sysfs import SysfsContext
from iscsikit.testing.simhba import PROFILES, HbaServer, SimulatedHba
from iscsikit_drivers.kerneltcp import NetlinkChannel

Sim = tuple[SimulatedHba, NetlinkChannel]


@pytest.fixture
def sim(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Sim]:
    transport = getattr(request, "param", "qla4xxx")
    hba = SimulatedHba(tmp_path, transport)
    with HbaServer(hba) as server:
        channel = NetlinkChannel(sock=server.socketpair())
        yield hba, channel
        channel.close()


def _net(param: int, value: bytes, *, iface_type: int = IfaceType.IPV4) -> ParamAttr:
    return ParamAttr(
        param=param, value=value, iface_num=0, iface_type=iface_type,
        param_type=ParamType.NET_PARAM,
    )  # fmt: skip


def test_sysfs_tree_is_the_drivers(tmp_path: Path) -> None:
    SimulatedHba(tmp_path / "q", "qla4xxx", host_no=5)
    SimulatedHba(tmp_path / "b", "bnx2i", host_no=6)
    q = SysfsContext(tmp_path / "q").host(5)
    b = SysfsContext(tmp_path / "b").host(6)
    assert q is not None and b is not None
    assert q.proc_name == "qla4xxx" and b.proc_name == "bnx2i"
    transport = q.transport()
    assert transport is not None and transport.caps == PROFILES["qla4xxx"].caps
    # qla4xxx makes ipv4 iface 0 and ipv6 ifaces 0 and 1 (ql4_os.c:1962-1998).
    assert [i.name for i in q.ifaces()] == ["ipv4-iface-5-0", "ipv6-iface-5-0", "ipv6-iface-5-1"]
    assert q.ifaces()[0].attr("bootproto") == "static"
    assert q.hwaddress == "00:0e:1e:04:93:a0" and q.netdev is None  # qla4xxx hides netdev
    assert b.ifaces() == [] and b.netdev == "eth2"  # bnx2i: no kernel iface, a netdev


def test_set_iface_params_rewrites_the_iface(sim: tuple[SimulatedHba, NetlinkChannel]) -> None:
    hba, channel = sim
    attrs = (
        _net(NetParam.IPV4_BOOTPROTO, b"\x01"),
        _net(NetParam.IPV4_ADDR, bytes([10, 1, 2, 3])),
        _net(NetParam.IPV4_SUBNET, bytes([255, 255, 0, 0])),
        _net(NetParam.VLAN_TAG, struct.pack("=H", (3 << 13) | 42)),
        _net(NetParam.MTU, struct.pack("=H", 9000)),
    )
    reply = channel.request(
        SetIfaceParams(transport_handle=hba.transport_handle, host_no=7, attrs=attrs)
    )
    assert isinstance(reply, RequestDone)
    iface = SysfsContext(hba.root).host(7).ifaces()[0]  # type: ignore[union-attr]
    assert iface.attr("ipaddress") == "10.1.2.3"
    assert iface.attr("subnet") == "255.255.0.0"
    assert (iface.attr("vlan_id"), iface.attr("vlan_priority")) == ("42", "3")
    assert iface.attr("mtu") == "9000"


def test_set_iface_params_enable_creates_an_ipv6_iface(
    sim: tuple[SimulatedHba, NetlinkChannel],
) -> None:
    hba, channel = sim
    for num in (0, 1):  # a qla4xxx with IPv6 off has no ipv6 iface (ql4_os.c:2000-2004)
        gone = hba.iface_dir(IfaceType.IPV6, num)
        shutil.rmtree(gone)
        (hba.fake.sys / "class/iscsi_iface" / gone.name).unlink()
    attrs = (
        _net(NetParam.IFACE_ENABLE, b"\x02", iface_type=IfaceType.IPV6),
        _net(NetParam.IPV6_ADDR, socket.inet_pton(socket.AF_INET6, "fd00::7"),
             iface_type=IfaceType.IPV6),
    )  # fmt: skip
    channel.request(SetIfaceParams(transport_handle=hba.transport_handle, host_no=7, attrs=attrs))
    names = [i.name for i in SysfsContext(hba.root).host(7).ifaces()]  # type: ignore[union-attr]
    assert names == ["ipv4-iface-7-0", "ipv6-iface-7-0"]
    assert (hba.iface_dir(IfaceType.IPV6) / "ipaddress").read_text() == "fd00::7\n"


def test_ping_replies_then_sends_ping_comp(sim: tuple[SimulatedHba, NetlinkChannel]) -> None:
    hba, channel = sim
    hba.ping_status = lambda addr: PingStatus.TIMEOUT if addr == "10.9.9.9" else 0
    for addr, status in (("192.0.2.1", PingStatus.SUCCESS), ("10.9.9.9", PingStatus.TIMEOUT)):
        ping = Ping(
            transport_handle=hba.transport_handle, host_no=7, iface_num=0,
            iface_type=IfaceType.IPV4, payload_size=32, pid=4242, address=(addr, 0),
        )  # fmt: skip
        assert isinstance(channel.request(ping), RequestDone)
        event = channel.wait_event(lambda e: isinstance(e, PingCompleted), 2.0)
        assert isinstance(event, PingCompleted)
        assert (event.pid, event.status, event.host_no) == (4242, status, 7)


def test_chap_table_set_get_delete(sim: tuple[SimulatedHba, NetlinkChannel]) -> None:
    hba, channel = sim
    h = hba.transport_handle
    for index, ctype, user in ((0, ChapType.OUT, "joe"), (3, ChapType.IN, "tgt")):
        attrs = (
            ParamAttr(ChapParam.INDEX, struct.pack("=H", index)),
            ParamAttr(ChapParam.CHAP_TYPE, bytes([ctype])),
            ParamAttr(ChapParam.USERNAME, user.encode() + b"\0"),
            ParamAttr(ChapParam.PASSWORD, b"secret12345\0"),
            ParamAttr(ChapParam.PASSWORD_LEN, bytes([11])),
        )
        channel.request(SetChap(transport_handle=h, host_no=7, attrs=attrs))
    got = channel.request(GetChap(transport_handle=h, host_no=7, num_entries=128))
    assert isinstance(got, ChapReceived)
    assert [(r.chap_tbl_idx, r.chap_type, r.username) for r in got.records] == [
        (0, ChapType.OUT, "joe"),
        (3, ChapType.IN, "tgt"),
    ]
    assert got.records[0].password == b"secret12345"
    channel.request(DeleteChap(transport_handle=h, host_no=7, chap_tbl_idx=0))
    got = channel.request(GetChap(transport_handle=h, host_no=7, num_entries=128))
    assert isinstance(got, ChapReceived) and [r.chap_tbl_idx for r in got.records] == [3]
    with pytest.raises(NetlinkRequestError) as failed:
        channel.request(DeleteChap(transport_handle=h, host_no=7, chap_tbl_idx=0))
    assert failed.value.errno == errno.EINVAL


def test_host_stats(sim: tuple[SimulatedHba, NetlinkChannel]) -> None:
    hba, channel = sim
    hba.host_stats = {"mactx_frames": 12, "iscsi_sequence_error": 2**40}
    got = channel.request(GetHostStats(transport_handle=hba.transport_handle, host_no=7))
    assert isinstance(got, HostStatsReceived)
    assert got.counters["mactx_frames"] == 12 and got.counters["iscsi_sequence_error"] == 2**40
    assert got.counters["macrx_frames"] == 0


def test_flashnode_new_and_delete(sim: tuple[SimulatedHba, NetlinkChannel]) -> None:
    hba, channel = sim
    hba.add_flashnode(0, "iqn.2003-01.org.example:fl0", "192.0.2.9")
    h = hba.transport_handle
    created = channel.request(NewFlashnode(transport_handle=h, host_no=7, portal_type="ipv4"))
    assert isinstance(created, FlashnodeCreated) and created.flashnode_idx == 1
    host = SysfsContext(hba.root).host(7)
    assert host is not None and [n.index for n in host.flashnodes()] == [0, 1]
    channel.request(DelFlashnode(transport_handle=h, host_no=7, flashnode_idx=0))
    assert [n.index for n in host.flashnodes()] == [1]
    with pytest.raises(NetlinkRequestError) as failed:
        channel.request(DelFlashnode(transport_handle=h, host_no=7, flashnode_idx=0))
    assert failed.value.errno == errno.ENODEV


def test_endpoint_through_host_connects_for_real(
    sim: tuple[SimulatedHba, NetlinkChannel],
) -> None:
    hba, channel = sim
    h = hba.transport_handle
    listener = socket.create_server(("127.0.0.1", 0))
    closed = socket.create_server(("127.0.0.1", 0))
    dead_port = closed.getsockname()[1]
    closed.close()
    with listener:
        port = listener.getsockname()[1]
        results = []
        for target in (port, dead_port):
            ep = channel.request(
                EpConnectThroughHost(transport_handle=h, host_no=7, address=("127.0.0.1", target))
            )
            assert isinstance(ep, EndpointConnected) and ep.handle > 0
            polled = channel.request(EpPoll(transport_handle=h, ep_handle=ep.handle, timeout_ms=1))
            assert isinstance(polled, RequestDone)
            results.append(polled.retcode)
            channel.request(EpDisconnect(transport_handle=h, ep_handle=ep.handle))
        assert results == [1, -1]
    with pytest.raises(NetlinkRequestError) as failed:
        channel.request(EpPoll(transport_handle=h, ep_handle=999, timeout_ms=1))
    assert failed.value.errno == errno.EINVAL


@pytest.mark.parametrize(
    ("sim", "request_", "code"),
    [
        ("bnx2i", GetChap(transport_handle=0, host_no=7, num_entries=1), errno.EINVAL),
        ("bnx2i", GetHostStats(transport_handle=0, host_no=7), errno.ENOSYS),
        ("be2iscsi", NewFlashnode(transport_handle=0, host_no=7, portal_type="ipv4"),
         errno.ENOSYS),
        ("cxgb4i", SetIfaceParams(transport_handle=0, host_no=7, attrs=()), errno.ENOSYS),
        ("qedi", Ping(transport_handle=0, host_no=7, iface_num=0, iface_type=1,
                      payload_size=32, pid=1, address=("192.0.2.1", 0)), errno.ENOSYS),
        ("qla4xxx", GetHostStats(transport_handle=0, host_no=3), errno.ENODEV),
    ],
    indirect=["sim"],
)  # fmt: skip
def test_what_a_driver_lacks_fails_as_the_kernel_answers(
    sim: tuple[SimulatedHba, NetlinkChannel], request_: object, code: int
) -> None:
    _hba, channel = sim
    with pytest.raises(NetlinkRequestError) as failed:
        channel.request(request_)  # type: ignore[arg-type]
    assert failed.value.errno == code


def test_listen_serves_a_subprocess_seam(tmp_path: Path) -> None:
    hba = SimulatedHba(tmp_path / "root", "qla4xxx")
    hba.host_stats = {"iscsi_pdu_tx": 5}
    with HbaServer(hba) as server:
        path = server.listen(tmp_path / "nl.sock")
        for _ in range(2):  # each connection is served on its own
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
            sock.connect(str(path))
            with NetlinkChannel(sock=sock) as channel:
                got = channel.request(GetHostStats(transport_handle=0, host_no=7))
                assert isinstance(got, HostStatsReceived)
                assert got.counters["iscsi_pdu_tx"] == 5


def test_malformed_datagram_is_dropped(tmp_path: Path) -> None:
    with HbaServer(SimulatedHba(tmp_path, "qla4xxx")) as server:
        sock = server.socketpair()
        sock.send(b"\x00" * 10)
        with NetlinkChannel(sock=sock) as channel:
            got = channel.request(GetHostStats(transport_handle=0, host_no=7))
            assert isinstance(got, HostStatsReceived)
        assert server.malformed == 1
