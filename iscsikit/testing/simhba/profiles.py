"""What each simulated offload driver is: its transport, caps, sysfs and netlink ops.

One :class:`DriverProfile` per kernel driver, read from the drivers' published source
(``drivers/scsi/qla4xxx/ql4_os.c``, ``bnx2i/bnx2i_iscsi.c``, ``cxgbi/cxgb3i``,
``cxgbi/cxgb4i``, ``be2iscsi/be_main.c``, ``qedi/qedi_iscsi.c``: each one's
``struct iscsi_transport``): the ``caps`` it sets, the ``iscsi_transport`` callbacks it
fills in (which NETLINK_ISCSI requests it can answer), the ``iscsi_host`` attributes its
``attr_is_visible`` shows and the ``iscsi_iface`` ones it exports.

What the kernel answers when a driver lacks a callback is not the driver's choice but
``scsi_transport_iscsi.c``'s (:data:`MISSING_ERRNO`): ``-ENOSYS`` for most, ``-EINVAL``
for GET_CHAP and the endpoint requests; a host number no SCSI host has is ``-ENODEV``.

Everything here is **simulated**: no such hardware exists where iscsikit is tested.
"""

from __future__ import annotations

import dataclasses
import errno
from typing import Final

from iscsikit.netlink.constants import Capability as Cap
from iscsikit.netlink.constants import UEvent

from .datapath import SESSION_OPS

__all__ = ["MISSING_ERRNO", "PROFILES", "DriverProfile"]

#: scsi_transport_iscsi.c's answer to a request whose callback the driver does not set.
MISSING_ERRNO: Final[dict[UEvent, int]] = {
    UEvent.GET_CHAP: errno.EINVAL,
    UEvent.TRANSPORT_EP_CONNECT: errno.EINVAL,
    UEvent.TRANSPORT_EP_CONNECT_THROUGH_HOST: errno.EINVAL,
    UEvent.TRANSPORT_EP_POLL: errno.EINVAL,
    UEvent.TRANSPORT_EP_DISCONNECT: errno.EINVAL,
    UEvent.TGT_DSCVR: errno.EINVAL,
}

#: Endpoints and the session callbacks every offload driver sets.
_EP: Final = SESSION_OPS | {
    UEvent.TRANSPORT_EP_CONNECT,
    UEvent.TRANSPORT_EP_CONNECT_THROUGH_HOST,
    UEvent.TRANSPORT_EP_POLL,
    UEvent.TRANSPORT_EP_DISCONNECT,
}
_FLASHNODE: Final = frozenset(
    {
        UEvent.NEW_FLASHNODE,
        UEvent.DEL_FLASHNODE,
        UEvent.SET_FLASHNODE_PARAMS,
        UEvent.LOGIN_FLASHNODE,
        UEvent.LOGOUT_FLASHNODE,
        UEvent.LOGOUT_FLASHNODE_SID,
    }
)
_CHAP: Final = frozenset({UEvent.GET_CHAP, UEvent.SET_CHAP, UEvent.DELETE_CHAP})
_IPV4_IFACE: Final = ("ipaddress", "subnet", "gateway", "bootproto", "enabled")
_VLAN_MTU: Final = ("vlan_id", "vlan_priority", "vlan_enabled", "mtu", "port")
#: What an IPv6 kernel iface shows (iscsi_iface_attr_is_visible: the IPv6-only names
#: only on ``ipv6-iface-*``, scsi_transport_iscsi.c:441-610).
_IPV6_IFACE: Final = (
    "ipaddress",
    "link_local_addr",
    "router_addr",
    "ipaddr_autocfg",
    "link_local_autocfg",
    "enabled",
)


@dataclasses.dataclass(frozen=True, slots=True)
class DriverProfile:
    """One offload driver as the kernel presents it."""

    #: The kernel transport name (``class/iscsi_transport/<transport>``).
    transport: str
    #: ``scsi_host/hostH/proc_name`` (the driver module).
    proc_name: str
    #: ``class/iscsi_transport/<transport>/caps``.
    caps: int
    #: The requests the driver has a callback for (every other one fails).
    ops: frozenset[UEvent]
    #: The ``iscsi_host`` attributes it shows.
    host_attrs: tuple[str, ...]
    #: The attributes of its ``ipv4-iface-H-0`` (empty: it makes no kernel iface).
    iface_attrs: tuple[str, ...] = ()
    #: The attributes of its ``ipv6-iface-H-N`` ifaces, and how many it makes.
    iface6_attrs: tuple[str, ...] = ()
    ipv6_ifaces: int = 0
    #: ``bnx2i`` and ``qedi`` need iscsiuio for ARP/DHCP (the ``set_path`` callback).
    uses_iscsiuio: bool = False
    #: GET_STATS: qla4xxx's firmware counts every PDU; the others report libiscsi's
    #: data-path counters and one custom counter, ``eh_abort_cnt``.
    firmware_stats: bool = False
    custom_stats: tuple[str, ...] = ("eh_abort_cnt",)
    #: qedi's ``netdev`` host attribute is ``host<H>`` (qedi_iscsi.c:703-704).
    netdev_is_host: bool = False
    #: be2iscsi's SET_IFACE_PARAMS rules and adapter-wide VLAN, whose ``vlan_id`` /
    #: ``vlan_priority`` cannot be read (-EINVAL) while it is disabled (:mod:`.quirks`).
    be2iscsi_ifaces: bool = False

    def supports(self, op: UEvent) -> bool:
        """Whether the driver has the callback of request ``op``."""
        return op in self.ops

    def missing_errno(self, op: UEvent) -> int:
        """The errno the kernel answers ``op`` with when the driver lacks it."""
        return MISSING_ERRNO.get(op, errno.ENOSYS)


_DATA_PATH_OFFLOAD: Final = (
    Cap.RECOVERY_L0 | Cap.HDRDGST | Cap.MULTI_R2T | Cap.DATADGST | Cap.DATA_PATH_OFFLOAD
)
_CXGBI_CAPS: Final = (
    Cap.RECOVERY_L0
    | Cap.MULTI_R2T
    | Cap.HDRDGST
    | Cap.DATADGST
    | Cap.DIGEST_OFFLOAD
    | Cap.PADDING_OFFLOAD
    | Cap.TEXT_NEGO
)

#: The six in-tree offload drivers of Linux 6.1, by transport name (open-iscsi's
#: usr/transport.c has seven offload templates: these and ``ocs``, which has no in-tree
#: kernel driver; the 6.1 registrars of ``iscsi_register_transport`` are tcp, iser and
#: these six).
PROFILES: Final[dict[str, DriverProfile]] = {
    p.transport: p
    for p in (
        DriverProfile(
            transport="qla4xxx",
            proc_name="qla4xxx",
            caps=int(
                Cap.TEXT_NEGO
                | Cap.DATA_PATH_OFFLOAD
                | Cap.HDRDGST
                | Cap.DATADGST
                | Cap.LOGIN_OFFLOAD
                | Cap.MULTI_R2T
            ),
            ops=_EP
            | _CHAP
            | _FLASHNODE
            | {UEvent.SET_IFACE_PARAMS, UEvent.PING, UEvent.GET_HOST_STATS},
            host_attrs=("hwaddress", "ipaddress", "initiatorname", "port_state", "port_speed"),
            iface_attrs=(*_IPV4_IFACE, *_VLAN_MTU),
            # ipv4-iface-H-0, ipv6-iface-H-0 and ipv6-iface-H-1 (ql4_os.c:1962-1998).
            iface6_attrs=(*_IPV6_IFACE, *_VLAN_MTU),
            ipv6_ifaces=2,
            firmware_stats=True,  # qla4xxx_conn_get_stats, ql4_os.c:1811-1870
            custom_stats=(),
        ),
        DriverProfile(
            transport="bnx2i",
            proc_name="bnx2i",
            caps=int(_DATA_PATH_OFFLOAD | Cap.TEXT_NEGO),
            ops=_EP | {UEvent.PATH_UPDATE},
            host_attrs=("netdev", "hwaddress", "ipaddress"),
            uses_iscsiuio=True,
        ),
        DriverProfile(
            transport="cxgb3i",
            proc_name="cxgb3i",
            caps=int(_CXGBI_CAPS),
            ops=_EP | {UEvent.SET_HOST_PARAM},
            host_attrs=("netdev", "hwaddress", "ipaddress", "initiatorname"),
        ),
        DriverProfile(
            transport="cxgb4i",
            proc_name="cxgb4i",
            caps=int(_CXGBI_CAPS),
            ops=_EP | {UEvent.SET_HOST_PARAM},
            host_attrs=("netdev", "hwaddress", "ipaddress", "initiatorname"),
        ),
        DriverProfile(
            transport="be2iscsi",
            proc_name="be2iscsi",
            caps=int(_DATA_PATH_OFFLOAD | Cap.TEXT_NEGO),
            ops=_EP | {UEvent.SET_IFACE_PARAMS},
            # beiscsi_attr_is_visible (be_iscsi.c:1366-1375): no ipaddress.
            host_attrs=("hwaddress", "initiatorname", "port_state", "port_speed"),
            iface_attrs=(*_IPV4_IFACE, "vlan_id", "vlan_priority", "vlan_enabled"),
            # ipv4-iface-H-0 and ipv6-iface-H-0 (be_iscsi.c:240-288); NET visibility
            # be_iscsi.c:1351-1362 (IPV6_ADDR, IFACE_ENABLE, VLAN_*).
            iface6_attrs=("ipaddress", "enabled", "vlan_id", "vlan_priority", "vlan_enabled"),
            ipv6_ifaces=1,
            be2iscsi_ifaces=True,
        ),
        DriverProfile(
            transport="qedi",
            proc_name="qedi",
            caps=int(_DATA_PATH_OFFLOAD | Cap.TEXT_NEGO),
            ops=_EP | {UEvent.PATH_UPDATE},
            host_attrs=("netdev", "hwaddress", "ipaddress"),
            # No iscsi_iface: no get/set_iface_param, no iscsi_create_iface in qedi/
            # (qedi_iscsi.c:1392-1447).
            uses_iscsiuio=True,
            netdev_is_host=True,
        ),
    )
}
