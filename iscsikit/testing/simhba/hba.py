"""One simulated offload HBA: its sysfs tree and what its kernel driver answers.

:class:`SimulatedHba` writes, under a root, the tree one host of a driver has
(``class/iscsi_transport/<t>``, the SCSI host with its ``iscsi_host`` attributes, the
driver's ``iscsi_iface`` devices) with :class:`~iscsikit.sysfs.fake.FakeSysfs`, and
answers decoded NETLINK_ISCSI requests (:meth:`SimulatedHba.handle`) as
``scsi_transport_iscsi.c`` plus that driver would: a request whose callback the driver
lacks fails with the kernel's errno (:mod:`.profiles`), a wrong host number with
``-ENODEV``; SET_IFACE_PARAMS rewrites the iface attributes, PING answers and then sends
PING_COMP, the CHAP table and the flash nodes live here (SET_FLASHNODE_PARAMS:
:mod:`.flashnode`), GET_HOST_STATS returns the counters in
:attr:`SimulatedHba.host_stats`; endpoints and sessions are
:mod:`.datapath`'s (a real TCP connection to the portal, PDUs carried both ways), so a
driver logs in through the simulated host to a real target.

:mod:`.server` carries requests in and messages out; events not answering a request
(RECV_PDU, CONN_ERROR) go out through :attr:`SimulatedHba.emit`.  It is
all **simulated**: no such hardware exists where iscsikit is tested.
"""

from __future__ import annotations

import errno
import ipaddress
import sys
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import ClassVar

from iscsikit.netlink import KernelMessage, Request, RequestFailed
from iscsikit.netlink.constants import ChapType, IfaceType, ParamType, PingStatus, UEvent
from iscsikit.netlink.events import (
    ChapReceived,
    FlashnodeCreated,
    HostStatsReceived,
    KernelEvent,
    PingCompleted,
    RequestDone,
)
from iscsikit.netlink.messages import (
    DeleteChap,
    DelFlashnode,
    GetChap,
    GetHostStats,
    LoginFlashnode,
    LogoutFlashnode,
    NewFlashnode,
    Ping,
    SetChap,
    SetFlashnodeParams,
    SetHostParam,
    SetIfaceParams,
)
from iscsikit.netlink.params import ChapParam, NetParam
from iscsikit.netlink.wire import ChapRecord, ParamAttr
from iscsikit.sysfs.fake import FakeSysfs

from .datapath import DataPath, SimError
from .flashnode import apply_flashnode_params
from .kernelview import SessionView
from .profiles import PROFILES, DriverProfile
from .quirks import Be2iscsiIfaces, cxgbi_set_host_param

__all__ = ["SimulatedHba"]

#: The simulated neighbour table: the loopback target the tests use has a next hop.
_NEIGHBOURS: Mapping[str, str] = {"127.0.0.1": "52:54:00:00:00:01"}

#: A handle the transport has in sysfs (any u64; this one is recognisable in dumps).
_HANDLE_BASE = 0xFFFF_A000_0000_0000

#: NET parameters and the iscsi_iface attribute each one sets.
_NET_ATTR: dict[int, str] = {
    NetParam.IPV4_ADDR: "ipaddress",
    NetParam.IPV6_ADDR: "ipaddress",
    NetParam.IPV4_SUBNET: "subnet",
    NetParam.IPV4_GW: "gateway",
    NetParam.IPV4_BOOTPROTO: "bootproto",
    NetParam.IFACE_ENABLE: "enabled",
    NetParam.VLAN_ENABLED: "vlan_enabled",
    NetParam.MTU: "mtu",
    NetParam.PORT: "port",
    NetParam.IPV6_LINKLOCAL: "link_local_addr",
    NetParam.IPV6_ROUTER: "router_addr",
}
_BOOTPROTO = {1: "static", 2: "dhcp"}
#: ISCSI_IFACE_DISABLE / ENABLE as qla4xxx (``OP_STATE``, ql4_def.h:185-187) and
#: be2iscsi (be_iscsi.c:546-548, 603-607) print them.
_STATE = {1: "disable", 2: "enable"}

#: A fresh kernel iface's attributes, as the drivers print them (VLAN off, iface on).
_IFACE_DEFAULTS: Mapping[str, str] = {
    "subnet": "255.255.255.0",
    "gateway": "0.0.0.0",
    "bootproto": "static",
    "enabled": _STATE[2],
    "vlan_id": "0",
    "vlan_priority": "0",
    "vlan_enabled": _STATE[1],
    "mtu": "1500",
    "port": "3260",
    "link_local_addr": "fe80::20e:1eff:fe04:93a0",
    "router_addr": "::",
    "ipaddr_autocfg": "nd",
    "link_local_autocfg": "auto",
}


def _iface_values(attrs: tuple[str, ...], *, ip: str) -> dict[str, str]:
    """The attributes ``attrs`` of a new kernel iface whose address is ``ip``."""
    return {k: ip if k == "ipaddress" else _IFACE_DEFAULTS.get(k, "") for k in attrs}


def _u(value: bytes) -> int:
    """A little integer as iscsiadm sends it (native byte order, its own length)."""
    return int.from_bytes(value, sys.byteorder) if value else 0


def _attr_text(param: int, value: bytes) -> str:
    """How the driver prints the attribute a NET parameter set."""
    if param in (NetParam.IPV4_ADDR, NetParam.IPV4_SUBNET, NetParam.IPV4_GW):
        return str(ipaddress.IPv4Address(value[:4]))
    if param in (NetParam.IPV6_ADDR, NetParam.IPV6_LINKLOCAL, NetParam.IPV6_ROUTER):
        return str(ipaddress.IPv6Address(value[:16]))
    if param == NetParam.IPV4_BOOTPROTO:
        return _BOOTPROTO.get(_u(value), "unknown")
    if param in (NetParam.IFACE_ENABLE, NetParam.VLAN_ENABLED):
        return _STATE.get(_u(value), "unknown")
    return str(_u(value))


class SimulatedHba:
    """One simulated host of driver ``transport`` (a key of :data:`~.profiles.PROFILES`)
    written under ``root`` (what ``ISCSIKIT_ROOT`` / ``SysfsContext(root)`` is given)."""

    def __init__(
        self,
        root: Path,
        transport: str,
        *,
        host_no: int = 7,
        hwaddress: str = "00:0e:1e:04:93:a0",
        ipaddress: str = "192.0.2.50",
        netdev: str = "eth2",
        initiatorname: str = "iqn.2000-04.com.qlogic:isp8214.000e1e0493a0.4",
        neighbours: Mapping[str, str] | None = None,
    ) -> None:
        self.profile: DriverProfile = PROFILES[transport]
        self.root = Path(root)
        self.fake = FakeSysfs(self.root)
        self.host_no = host_no
        self.hwaddress = hwaddress.lower()
        self.transport_handle = _HANDLE_BASE + host_no
        #: Every request handled, in order (tests read it).
        self.requests: list[Request] = []
        #: Events emitted while no server carries them.
        self.events: list[KernelEvent] = []
        #: CHAP entries by table index.
        self.chap: dict[int, ChapRecord] = {}
        #: ``struct iscsi_offload_host_stats`` counters GET_HOST_STATS answers with.
        self.host_stats: dict[str, int] = {}
        #: The PING_COMP status of a ping to an address (default: SUCCESS).
        self.ping_status: Callable[[str], int] = lambda _addr: PingStatus.SUCCESS
        #: Async events not answering a request (RECV_PDU, CONN_ERROR...) go here; the
        #: server replaces it to send them to every connected channel.
        self.emit: Callable[[KernelEvent], None] = self.events.append
        self._lock = threading.Lock()
        self._build(
            ipaddress, f"host{host_no}" if self.profile.netdev_is_host else netdev, initiatorname
        )
        self._be2iscsi: Be2iscsiIfaces | None = None
        if self.profile.be2iscsi_ifaces:
            self._be2iscsi = Be2iscsiIfaces(
                self.fake, host_no, self.iface_dir, self._write_net_attr
            )
            self._be2iscsi.show_vlan()
        self.write_neighbours(_NEIGHBOURS if neighbours is None else neighbours, netdev)
        self.datapath = DataPath(
            host_no,
            self.transport_handle,
            self._emit,
            SessionView(self.fake, host_no),
            path_request=self.profile.uses_iscsiuio,
            firmware_stats=self.profile.firmware_stats,
            custom_stats=self.profile.custom_stats,
        )

    def _emit(self, event: KernelEvent) -> None:
        self.emit(event)  # looked up on each call: the server replaces ``emit``

    # -- the sysfs tree ----------------------------------------------------------------

    def write_neighbours(self, neighbours: Mapping[str, str], device: str) -> None:
        """``<root>/proc/net/arp``: the kernel's IPv4 neighbour table as the file shows
        it (what iscsiuio would learn by ARP for a PATH_REQ; simulated, so loopback
        targets get an entry too)."""
        arp = self.root / "proc/net/arp"
        arp.parent.mkdir(parents=True, exist_ok=True)
        lines = ["IP address       HW type     Flags       HW address            Mask     Device"]
        lines += [
            f"{ip:<16} 0x1         0x2         {mac:<21} *        {device}"
            for ip, mac in neighbours.items()
        ]
        arp.write_text("\n".join(lines) + "\n")

    def _build(self, ip: str, netdev: str, initiatorname: str) -> None:
        p = self.profile
        self.fake.add_transport(p.transport, handle=self.transport_handle, caps=p.caps)
        values = {
            "hwaddress": self.hwaddress,
            "ipaddress": ip,
            "netdev": netdev,
            "initiatorname": initiatorname,
            "port_state": "LINK UP",
            "port_speed": "1 Gbps",
        }
        self.fake.add_host(
            self.host_no,
            proc_name=p.proc_name,
            attrs={k: values[k] for k in p.host_attrs},
            parent=f"devices/pci0000:00/0000:00:{self.host_no:02x}.0",
        )
        if p.iface_attrs:
            self.fake.add_iface(self.host_no, attrs=_iface_values(p.iface_attrs, ip=ip))
        for num in range(p.ipv6_ifaces):
            self.fake.add_iface(
                self.host_no, ipv6=True, num=num, attrs=_iface_values(p.iface6_attrs, ip="::")
            )

    def iface_dir(self, iface_type: int, num: int = 0) -> Path:
        """The directory of kernel iface ``<ipv4|ipv6>-iface-H-num``."""
        kind = "ipv6" if iface_type == IfaceType.IPV6 else "ipv4"
        name = f"{kind}-iface-{self.host_no}-{num}"
        return self.fake.host_dir(self.host_no) / "iscsi_iface" / name

    def add_flashnode(self, index: int, target: str, address: str, port: int = 3260) -> None:
        """A flash target entry as qla4xxx exports one (a subset of its attributes)."""
        self.fake.add_flashnode(
            self.host_no,
            index,
            sess={"targetname": target, "tpgt": 1, "portal_type": "ipv4", "is_boot_target": 0},
            conn={"ipaddress": address, "port": port, "max_recv_dlength": 65536},
        )

    def _flashnode_exists(self, index: int) -> bool:
        devices = self.fake.sys / "bus/iscsi_flashnode/devices"
        return (devices / f"flashnode_sess-{self.host_no}:{index}").exists()

    # -- requests ----------------------------------------------------------------------

    def handle(self, request: Request) -> list[KernelMessage]:
        """What the kernel sends back for ``request``: its reply, then any event."""
        with self._lock:
            self.requests.append(request)
            op = UEvent(request.TYPE)
            if not self.profile.supports(op):
                return [self._failed(request, self.profile.missing_errno(op))]
            host_no = getattr(request, "host_no", self.host_no)
            if host_no != self.host_no:
                return [self._failed(request, errno.ENODEV)]
            handler = self._HANDLERS.get(op)
            path = getattr(self.datapath, _DATAPATH.get(op, ""), None)
            try:
                if handler is not None:
                    return handler(self, request)
                if path is not None:
                    result: list[KernelMessage] = path(request)
                    return result
            except SimError as exc:
                return [self._failed(request, exc.errno)]
            return [self._failed(request, errno.ENOSYS)]

    def _failed(self, request: Request, code: int) -> RequestFailed:
        return RequestFailed(
            transport_handle=self.transport_handle, request_type=request.TYPE, errno=code
        )

    def _done(self, request: Request, retcode: int = 0) -> RequestDone:
        return RequestDone(
            transport_handle=self.transport_handle, request_type=request.TYPE, retcode=retcode
        )

    def _set_iface_params(self, req: Request) -> list[KernelMessage]:
        assert isinstance(req, SetIfaceParams)
        if self._be2iscsi is not None:
            self._be2iscsi.apply(req.attrs)
            return [self._done(req)]
        for attr in req.attrs:
            self._set_iface_param(attr)
        return [self._done(req)]

    def _set_iface_param(self, attr: ParamAttr) -> None:
        if attr.param_type != ParamType.NET_PARAM:
            return  # IFACE (iSCSI) parameters: kept by the firmware, not shown in sysfs
        iface_type = attr.iface_type or IfaceType.IPV4
        path = self.iface_dir(iface_type, attr.iface_num or 0)
        if not path.exists():
            if attr.param != NetParam.IFACE_ENABLE:
                raise SimError(errno.EINVAL)
            self.fake.add_iface(
                self.host_no,
                ipv6=iface_type == IfaceType.IPV6,
                num=attr.iface_num or 0,
                attrs={},
            )
        if attr.param == NetParam.VLAN_TAG:
            tag = _u(attr.value)
            self.fake.write_attr(path, "vlan_id", tag & 0xFFF)
            self.fake.write_attr(path, "vlan_priority", tag >> 13)
            return
        self._write_net_attr(path, attr.param, attr.value)

    def _write_net_attr(self, path: Path, param: int, value: bytes) -> None:
        """Write the iface attribute NET parameter ``param`` sets, as the driver prints it."""
        name = _NET_ATTR.get(param)
        if name is not None:
            self.fake.write_attr(path, name, _attr_text(param, value))

    def _set_host_param(self, req: Request) -> list[KernelMessage]:
        assert isinstance(req, SetHostParam)
        cxgbi_set_host_param(self.fake, self.host_no, req.param, req.value)
        return [self._done(req)]

    def _ping(self, req: Request) -> list[KernelMessage]:
        assert isinstance(req, Ping)
        status = int(self.ping_status(req.address[0]))
        done = PingCompleted(
            transport_handle=self.transport_handle, host_no=self.host_no, status=status, pid=req.pid
        )
        return [self._done(req), done]

    def _get_chap(self, req: Request) -> list[KernelMessage]:
        assert isinstance(req, GetChap)
        entries = [self.chap[i] for i in sorted(self.chap) if i >= req.chap_tbl_idx]
        entries = entries[: req.num_entries]
        return [
            ChapReceived(
                transport_handle=self.transport_handle,
                request_type=req.TYPE,
                host_no=req.host_no,
                num_entries=len(entries),
                chap_tbl_idx=req.chap_tbl_idx,
                records=tuple(entries),
            )
        ]

    def _set_chap(self, req: Request) -> list[KernelMessage]:
        assert isinstance(req, SetChap)
        values = {a.param: a.value for a in req.attrs}
        if ChapParam.INDEX not in values:
            raise SimError(errno.EINVAL)
        index = _u(values[ChapParam.INDEX])
        password = values.get(ChapParam.PASSWORD, b"").rstrip(b"\0")
        self.chap[index] = ChapRecord(
            chap_tbl_idx=index,
            chap_type=_u(values.get(ChapParam.CHAP_TYPE, b"\0")) or ChapType.OUT,
            username=values.get(ChapParam.USERNAME, b"").rstrip(b"\0").decode(),
            password=password,
        )
        return [self._done(req)]

    def _delete_chap(self, req: Request) -> list[KernelMessage]:
        assert isinstance(req, DeleteChap)
        if self.chap.pop(req.chap_tbl_idx, None) is None:
            raise SimError(errno.EINVAL)
        return [self._done(req)]

    def _get_host_stats(self, req: Request) -> list[KernelMessage]:
        assert isinstance(req, GetHostStats)
        stats = HostStatsReceived(
            transport_handle=self.transport_handle,
            request_type=req.TYPE,
            host_no=self.host_no,
            counters=dict(self.host_stats),
        )
        return [stats]

    def _new_flashnode(self, req: Request) -> list[KernelMessage]:
        assert isinstance(req, NewFlashnode)
        index = 0
        while self._flashnode_exists(index):
            index += 1
        self.fake.add_flashnode(
            self.host_no,
            index,
            sess={"targetname": "", "tpgt": 0, "portal_type": req.portal_type},
            conn={"ipaddress": "", "port": 3260},
        )
        created = FlashnodeCreated(
            transport_handle=self.transport_handle, request_type=req.TYPE, flashnode_idx=index
        )
        return [created]

    def _flashnode_op(self, req: Request) -> list[KernelMessage]:
        assert isinstance(req, DelFlashnode | LoginFlashnode | LogoutFlashnode | SetFlashnodeParams)
        if not self._flashnode_exists(req.flashnode_idx):
            raise SimError(errno.ENODEV)
        if isinstance(req, DelFlashnode):
            self.fake.remove_flashnode(self.host_no, req.flashnode_idx)
        if isinstance(req, SetFlashnodeParams):
            name = f"{self.host_no}:{req.flashnode_idx}"
            sess = self.fake.host_dir(self.host_no) / f"flashnode_sess-{name}"
            apply_flashnode_params(sess, sess / f"flashnode_conn-{name}:0", req.attrs)
        return [self._done(req)]

    def _ok(self, req: Request) -> list[KernelMessage]:
        return [self._done(req)]

    def close(self) -> None:
        """Close the endpoints still open."""
        with self._lock:
            self.datapath.close()

    _HANDLERS: ClassVar[dict[UEvent, Callable[[SimulatedHba, Request], list[KernelMessage]]]] = {
        UEvent.SET_IFACE_PARAMS: _set_iface_params,
        UEvent.PING: _ping,
        UEvent.GET_CHAP: _get_chap,
        UEvent.SET_CHAP: _set_chap,
        UEvent.DELETE_CHAP: _delete_chap,
        UEvent.GET_HOST_STATS: _get_host_stats,
        UEvent.NEW_FLASHNODE: _new_flashnode,
        UEvent.DEL_FLASHNODE: _flashnode_op,
        UEvent.SET_FLASHNODE_PARAMS: _flashnode_op,
        UEvent.LOGIN_FLASHNODE: _flashnode_op,
        UEvent.LOGOUT_FLASHNODE: _flashnode_op,
        UEvent.LOGOUT_FLASHNODE_SID: _ok,
        UEvent.SET_HOST_PARAM: _set_host_param,  # only cxgb3i/cxgb4i have it
    }


#: The requests :class:`~.datapath.DataPath` answers, by its method names.
_DATAPATH: dict[UEvent, str] = {
    UEvent.TRANSPORT_EP_CONNECT: "ep_connect",
    UEvent.TRANSPORT_EP_CONNECT_THROUGH_HOST: "ep_connect",
    UEvent.TRANSPORT_EP_POLL: "ep_poll",
    UEvent.TRANSPORT_EP_DISCONNECT: "ep_disconnect",
    UEvent.CREATE_BOUND_SESSION: "create_bound_session",
    UEvent.CREATE_CONN: "create_conn",
    UEvent.BIND_CONN: "bind_conn",
    UEvent.SEND_PDU: "send_pdu",
    UEvent.SET_PARAM: "set_param",
    UEvent.START_CONN: "start_conn",
    UEvent.STOP_CONN: "stop_conn",
    UEvent.UNBIND_SESSION: "unbind_session",
    UEvent.DESTROY_CONN: "destroy_conn",
    UEvent.DESTROY_SESSION: "destroy_session",
    UEvent.DESTROY_SESSION_ASYNC: "destroy_session",
    UEvent.CREATE_SESSION: "create_session",
    UEvent.GET_STATS: "get_stats",
    UEvent.PATH_UPDATE: "path_update",
}
