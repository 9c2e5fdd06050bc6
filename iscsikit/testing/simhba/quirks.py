"""What one driver does differently from the others with SET_HOST_PARAM and
SET_IFACE_PARAMS (Linux 6.1 source; all **simulated**).

* cxgb3i / cxgb4i, ``cxgbi_set_host_param`` (cxgbi/libcxgbi.c:2795-2807): IPADDRESS
  takes effect (the host's ``ipaddress`` shows it, ``cxgbi_set_iscsi_ipv4``); HWADDRESS
  and NETDEV_NAME are accepted and ignored; the rest goes to libiscsi's
  ``iscsi_host_set_param`` (libiscsi.c:3915-3928), which stores INITIATOR_NAME and
  answers -ENOSYS to everything else.
* be2iscsi, ``beiscsi_iface_set_param`` (be2iscsi/be_iscsi.c:430-510): only NET
  parameters count; an ``iface_num`` other than 0 is -EINVAL; VLAN_TAG sets the tag (and
  so enables VLAN), VLAN_ENABLED other than enable disables it (enable changes nothing,
  :316-327); IFACE_ENABLE creates or destroys the iface (:347-353, :410-416); IPv4
  address, subnet, gateway and bootproto, and the IPv6 address, are applied; every
  other parameter is refused by the driver with -EPERM, which it turns into success
  (:500-507).  The VLAN is the adapter's: both ifaces show it, and ``vlan_id`` /
  ``vlan_priority`` cannot be read while it is disabled (:550-565).
"""

from __future__ import annotations

import errno
import ipaddress
import sys
from collections.abc import Callable, Iterable
from pathlib import Path

from iscsikit.netlink.constants import IfaceType, ParamType
from iscsikit.netlink.params import HostParam, NetParam
from iscsikit.netlink.wire import ParamAttr
from iscsikit.sysfs.fake import FakeSysfs

from .datapath import SimError

__all__ = ["Be2iscsiIfaces", "cxgbi_set_host_param"]

_ENABLE, _DISABLE = 2, 1  # ISCSI_IFACE_ENABLE/DISABLE, ISCSI_VLAN_ENABLE/DISABLE


def cxgbi_set_host_param(fake: FakeSysfs, host_no: int, param: int, value: str) -> None:
    """SET_HOST_PARAM on a cxgbi host (module docstring); raises SimError(ENOSYS)."""
    host = fake.sys / "class/iscsi_host" / f"host{host_no}"
    if param == HostParam.IPADDRESS:
        try:
            address = ipaddress.IPv4Address(value.split("\0", 1)[0].strip())
        except ValueError:
            address = ipaddress.IPv4Address(0)  # in_aton of something else
        fake.write_attr(host, "ipaddress", str(address))
    elif param == HostParam.INITIATOR_NAME:
        fake.write_attr(host, "initiatorname", value.split("\0", 1)[0])
    elif param not in (HostParam.HWADDRESS, HostParam.NETDEV_NAME):
        raise SimError(errno.ENOSYS)


def _u(value: bytes) -> int:
    return int.from_bytes(value, sys.byteorder) if value else 0


class Be2iscsiIfaces:
    """be2iscsi's SET_IFACE_PARAMS and its VLAN (module docstring).

    ``iface_dir(type, num)`` names an iface's directory; ``add_iface(ipv6)`` makes one;
    ``write(path, param, value)`` writes the attribute a NET parameter sets."""

    def __init__(
        self,
        fake: FakeSysfs,
        host_no: int,
        iface_dir: Callable[[int, int], Path],
        write: Callable[[Path, int, bytes], None],
    ) -> None:
        self.fake = fake
        self.host_no = host_no
        self.iface_dir = iface_dir
        self.write = write
        #: The adapter's VLAN tag; None: VLAN disabled.
        self.vlan_tag: int | None = None

    def apply(self, attrs: Iterable[ParamAttr]) -> None:
        """Apply ``attrs`` in order; SimError(EINVAL) stops at an iface_num other than 0
        (what came before it stays applied, as in the driver's loop)."""
        for attr in attrs:
            if attr.param_type != ParamType.NET_PARAM:
                continue
            if attr.iface_num:
                raise SimError(errno.EINVAL)
            self._one(attr)
        self.show_vlan()

    def _one(self, attr: ParamAttr) -> None:
        ipv6 = attr.iface_type == IfaceType.IPV6
        path = self.iface_dir(IfaceType.IPV6 if ipv6 else IfaceType.IPV4, 0)
        param = attr.param
        if param == NetParam.VLAN_TAG:
            self.vlan_tag = _u(attr.value[:2])
        elif param == NetParam.VLAN_ENABLED:
            if _u(attr.value[:1]) != _ENABLE:
                self.vlan_tag = None
        elif param == NetParam.IFACE_ENABLE:
            if _u(attr.value[:1]) == _ENABLE:
                if not path.exists():
                    self.fake.add_iface(self.host_no, ipv6=ipv6, attrs={"enabled": "enable"})
            else:
                self.fake.remove_iface(self.host_no, ipv6=ipv6)
        elif param in _APPLIED[ipv6] and path.exists():
            self.write(path, param, attr.value)
        # Anything else: -EPERM from the driver, reported as success.

    def show_vlan(self) -> None:
        """Write the VLAN attributes of both ifaces as the driver shows them."""
        for kind in (IfaceType.IPV4, IfaceType.IPV6):
            path = self.iface_dir(kind, 0)
            if not path.is_dir():
                continue
            if self.vlan_tag is None:
                self.fake.write_attr(path, "vlan_enabled", "disable")
                self.fake.unreadable_attr(path, "vlan_id")
                self.fake.unreadable_attr(path, "vlan_priority")
                continue
            self.fake.write_attr(path, "vlan_enabled", "enable")
            for name in ("vlan_id", "vlan_priority"):
                if (path / name).is_symlink():
                    (path / name).unlink()
            self.fake.write_attr(path, "vlan_id", self.vlan_tag & 0xFFF)
            self.fake.write_attr(path, "vlan_priority", (self.vlan_tag >> 13) & 7)


#: The NET parameters be2iscsi applies, for IPv4 and for IPv6 ifaces.
_APPLIED: dict[bool, frozenset[int]] = {
    False: frozenset(
        {NetParam.IPV4_ADDR, NetParam.IPV4_SUBNET, NetParam.IPV4_GW, NetParam.IPV4_BOOTPROTO}
    ),
    True: frozenset({NetParam.IPV6_ADDR}),
}
