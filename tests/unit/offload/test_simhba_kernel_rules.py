"""The simulated HBAs answer as the Linux 6.1 drivers do, on each point where a
line-by-line check of the profiles against the source found them wrong (kernel
file:line in each test)."""

from __future__ import annotations

import errno
import socket
import struct
from pathlib import Path

import pytest

from iscsikit.manager.ifaces import ensure_offload_ifaces
from iscsikit.netlink import KernelMessage, RequestFailed
from iscsikit.netlink.constants import IfaceType, ParamType
from iscsikit.netlink.events import EndpointConnected, RequestDone, SessionCreated, StatsReceived
from iscsikit.netlink.messages import (
    BindConn,
    CreateBoundSession,
    CreateConn,
    CreateSession,
    DestroyConn,
    DestroySession,
    DestroySessionAsync,
    EpConnectThroughHost,
    GetStats,
    SendPdu,
    SetHostParam,
    SetIfaceParams,
)
from iscsikit.netlink.params import HostParam, NetParam
from iscsikit.netlink.wire import ParamAttr
from iscsikit.records.store import Records
from iscsikit.sysfs import SysfsContext
from iscsikit.testing.simhba import PROFILES, SimulatedHba

SIX = sorted(PROFILES)


def _errno(replies: list[KernelMessage]) -> int:
    (reply,) = replies
    if isinstance(reply, RequestFailed):
        return reply.errno
    assert isinstance(reply, RequestDone), reply
    return 0


def _session(hba: SimulatedHba, listener: socket.socket) -> int:
    address = ("127.0.0.1", listener.getsockname()[1])
    (ep,) = hba.handle(EpConnectThroughHost(transport_handle=0, host_no=7, address=address))
    assert isinstance(ep, EndpointConnected)
    (made,) = hba.handle(CreateBoundSession(
        transport_handle=0, ep_handle=ep.handle, initial_cmdsn=1, cmds_max=128, queue_depth=32
    ))  # fmt: skip
    assert isinstance(made, SessionCreated)
    hba.handle(CreateConn(transport_handle=0, sid=made.sid, cid=0))
    return made.sid


@pytest.mark.parametrize("transport", SIX)
def test_get_stats_create_session_and_async_destroy(tmp_path: Path, transport: str) -> None:
    hba = SimulatedHba(tmp_path, transport)
    # CREATE_SESSION without an endpoint: create_session returns NULL -> -ENOMEM
    # (scsi_transport_iscsi.c:2960-2961; e.g. ql4_os.c:3101, libcxgbi.c:2736).
    limits = {"initial_cmdsn": 1, "cmds_max": 128, "queue_depth": 32}
    assert _errno(hba.handle(CreateSession(transport_handle=0, **limits))) == errno.ENOMEM
    with socket.create_server(("127.0.0.1", 0)) as listener:
        sid = _session(hba, listener)
        # GET_STATS: every driver's .get_stats; an unknown connection is -EEXIST (:2831).
        (stats,) = hba.handle(GetStats(transport_handle=0, sid=sid, cid=0))
        assert isinstance(stats, StatsReceived) and (stats.sid, stats.cid) == (sid, 0)
        custom = () if transport == "qla4xxx" else (("eh_abort_cnt", 0),)
        assert stats.custom == custom  # libiscsi drivers: eh_abort_cnt (libcxgbi.c:2522)
        assert _errno(hba.handle(GetStats(transport_handle=0, sid=sid, cid=3))) == errno.EEXIST
        # DESTROY_SESSION_ASYNC: generic (:3975-3991): -EBUSY with a connection, then 0.
        async_destroy = DestroySessionAsync(transport_handle=0, sid=sid)
        assert _errno(hba.handle(async_destroy)) == errno.EBUSY
        hba.handle(DestroyConn(transport_handle=0, sid=sid, cid=0))
        assert _errno(hba.handle(async_destroy)) == 0
        assert _errno(hba.handle(DestroySession(transport_handle=0, sid=sid))) == errno.EINVAL
    hba.close()


def test_qla4xxx_firmware_counts_pdus(tmp_path: Path) -> None:
    """qla4xxx_conn_get_stats reports the firmware's counters (ql4_os.c:1849-1870)."""
    hba = SimulatedHba(tmp_path, "qla4xxx")
    with socket.create_server(("127.0.0.1", 0)) as listener:
        sid = _session(hba, listener)
        ep = max(hba.datapath.endpoints)
        hba.handle(BindConn(transport_handle=0, sid=sid, cid=0, transport_eph=ep))
        peer, _ = listener.accept()
        with peer:
            hdr = bytearray(48)
            hdr[0], hdr[5:8] = 0x43, (8).to_bytes(3, "big")
            hba.handle(
                SendPdu(transport_handle=0, sid=sid, cid=0, hdr=bytes(hdr), data=b"A=b\0c=d\0")
            )
            (stats,) = hba.handle(GetStats(transport_handle=0, sid=sid, cid=0))
    assert isinstance(stats, StatsReceived)
    assert (stats.counters["login_pdus"], stats.counters["txdata_octets"]) == (1, 8)
    hba.close()


def test_be2iscsi_host_and_ifaces(tmp_path: Path) -> None:
    """beiscsi_attr_is_visible shows no ipaddress (be_iscsi.c:1366-1375); the VLAN of
    the adapter cannot be read while it is disabled (:550-565), so iscsiadm's record has
    vlan_id 65535 and vlan_priority 255 (iscsi_sysfs.c's UINT16_MAX / UINT8_MAX)."""
    hba = SimulatedHba(tmp_path, "be2iscsi")
    host = SysfsContext(tmp_path).host(7)
    assert host is not None and host.ipaddress is None and host.hwaddress
    v4, v6 = host.ifaces()
    assert (v4.name, v6.name) == ("ipv4-iface-7-0", "ipv6-iface-7-0")
    for iface in (v4, v6):
        assert iface.attr("vlan_id") is None and iface.attr("vlan_priority") is None
        assert iface.attr("vlan_enabled") == "disable" and iface.attr("enabled") == "enable"
    records = Records.at(tmp_path / "db")
    ensure_offload_ifaces(records, root=tmp_path)
    rec = records.iface(f"be2iscsi.{hba.hwaddress}.ipv4.0")
    assert (rec.get("iface.vlan_id"), rec.get("iface.vlan_priority")) == ("65535", "255")
    hba.close()


def _net(
    param: int, value: bytes, *, num: int = 0, v6: bool = False, net: bool = True
) -> ParamAttr:
    return ParamAttr(
        param=param, value=value, iface_num=num,
        iface_type=IfaceType.IPV6 if v6 else IfaceType.IPV4,
        param_type=ParamType.NET_PARAM if net else ParamType.IFACE_PARAM,
    )  # fmt: skip


def test_be2iscsi_set_iface_params_rules(tmp_path: Path) -> None:
    """beiscsi_iface_set_param (be_iscsi.c:430-510)."""
    hba = SimulatedHba(tmp_path, "be2iscsi")

    def apply(*attrs: ParamAttr) -> int:
        return _errno(hba.handle(SetIfaceParams(transport_handle=0, host_no=7, attrs=attrs)))

    v4 = hba.iface_dir(IfaceType.IPV4)
    # iface_num other than 0: -EINVAL (:465-472).
    assert apply(_net(NetParam.IPV4_ADDR, bytes([10, 0, 0, 9]), num=1)) == errno.EINVAL
    # Non-NET parameters are skipped (:459-460); unsupported ones (MTU) succeed without
    # effect (-EPERM turned into 0, :500-507).
    mtu = struct.pack("=H", 9000)
    assert apply(_net(NetParam.MTU, mtu, net=False), _net(NetParam.MTU, mtu)) == 0
    assert not (v4 / "mtu").exists()
    assert apply(_net(NetParam.IPV4_ADDR, bytes([10, 0, 0, 9]))) == 0
    assert (v4 / "ipaddress").read_text() == "10.0.0.9\n"
    # VLAN_TAG enables the adapter's VLAN (both ifaces show it); VLAN_ENABLED disable
    # turns it off and the reads fail again.
    assert apply(_net(NetParam.VLAN_TAG, struct.pack("=H", (5 << 13) | 42))) == 0
    for kind in (IfaceType.IPV4, IfaceType.IPV6):
        path = hba.iface_dir(kind)
        assert [(path / n).read_text() for n in ("vlan_enabled", "vlan_id", "vlan_priority")] == [
            "enable\n", "42\n", "5\n",
        ]  # fmt: skip
    assert apply(_net(NetParam.VLAN_ENABLED, b"\x01")) == 0
    iface = SysfsContext(tmp_path).host(7).ifaces()[0]  # type: ignore[union-attr]
    assert (iface.attr("vlan_enabled"), iface.attr("vlan_id")) == ("disable", None)
    # IFACE_ENABLE disable destroys the iface (:410-416).
    assert apply(_net(NetParam.IFACE_ENABLE, b"\x01", v6=True)) == 0
    assert not hba.iface_dir(IfaceType.IPV6).exists()
    hba.close()


def test_qedi_has_no_kernel_iface_and_names_its_host(tmp_path: Path) -> None:
    """qedi creates no iscsi_iface (qedi_iscsi.c:1392-1447) and its netdev attribute is
    ``host<H>`` (:703-704); so it gets the one ``qedi.<mac>`` record."""
    hba = SimulatedHba(tmp_path, "qedi")
    host = SysfsContext(tmp_path).host(7)
    assert host is not None and host.ifaces() == [] and host.netdev == "host7"
    created = ensure_offload_ifaces(Records.at(tmp_path / "db"), root=tmp_path)
    assert [i.name for i in created] == [f"qedi.{hba.hwaddress}"]
    hba.close()


def test_iface_state_text_is_enable_disable(tmp_path: Path) -> None:
    """qla4xxx prints OP_STATE as enable/disable (ql4_def.h:185-187)."""
    hba = SimulatedHba(tmp_path, "qla4xxx")
    attrs = (_net(NetParam.IFACE_ENABLE, b"\x01"), _net(NetParam.VLAN_ENABLED, b"\x02"))
    hba.handle(SetIfaceParams(transport_handle=0, host_no=7, attrs=attrs))
    path = hba.iface_dir(IfaceType.IPV4)
    assert ((path / "enabled").read_text(), (path / "vlan_enabled").read_text()) == (
        "disable\n",
        "enable\n",
    )
    hba.close()


@pytest.mark.parametrize("transport", ["cxgb3i", "cxgb4i"])
def test_cxgbi_set_host_param(tmp_path: Path, transport: str) -> None:
    """cxgbi_set_host_param (libcxgbi.c:2795-2807): IPADDRESS takes effect, HWADDRESS
    and NETDEV are ignored, INITIATOR_NAME stored, the rest -ENOSYS (libiscsi.c:3928)."""
    hba = SimulatedHba(tmp_path, transport)

    def set_param(param: int, value: str) -> int:
        msg = SetHostParam(transport_handle=0, host_no=7, param=param, value=value)
        return _errno(hba.handle(msg))

    assert set_param(HostParam.IPADDRESS, "10.9.8.7") == 0
    assert set_param(HostParam.HWADDRESS, "00:00:00:00:00:01") == 0
    assert set_param(HostParam.INITIATOR_NAME, "iqn.2026-12.com.example:x") == 0
    assert set_param(HostParam.PORT_STATE, "LINK UP") == errno.ENOSYS
    host = SysfsContext(tmp_path).host(7)
    assert host is not None and host.ipaddress == "10.9.8.7"
    assert host.hwaddress == hba.hwaddress and host.initiatorname == "iqn.2026-12.com.example:x"
    hba.close()
