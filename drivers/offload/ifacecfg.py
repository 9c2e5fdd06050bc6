"""SET_IFACE_PARAMS from an iface record, built as iscsiadm builds it (pure).

open-iscsi's ``__iface_build_net_config`` (usr/iface.c) turns one iface record into NET
parameters of its kernel iface (``iface.iface_num``, IPv4 or IPv6 by the address):

* IPv4, ``iface.state = disable``: IFACE_ENABLE(disable) alone;
* IPv4 with ``bootproto = dhcp``: BOOTPROTO(dhcp); with a dotted ``ipaddress``:
  BOOTPROTO(static), IPV4_ADDR, IPV4_SUBNET, IPV4_GW (each when set);
* IPv6: IPV6_ADDR (and IPV6_LINKLOCAL, IPV6_ROUTER) when set;
* then, if anything was added: IFACE_ENABLE from ``iface.state``, VLAN_ENABLED from
  ``iface.vlan_state``, VLAN_TAG (priority << 13 | id) unless the VLAN is disabled or its
  id is 0, MTU and PORT (``port`` 0 means 3260) when non-zero.

Integers go in native byte order at their C width, addresses as ``in_addr`` /
``in6_addr``, states as ``ISCSI_NET_PARAM_ENABLE`` (2) / ``_DISABLE`` (1).
"""

from __future__ import annotations

import ipaddress
import sys
from collections.abc import Mapping

from iscsikit.netlink.constants import IfaceType, ParamType
from iscsikit.netlink.params import NetParam
from iscsikit.netlink.wire import ParamAttr

__all__ = ["iface_type", "net_config_attrs"]

_STATE = {"disable": 1, "enable": 2}
_BOOTPROTO_STATIC, _BOOTPROTO_DHCP = 1, 2
_MAX_VLAN_ID, _MAX_VLAN_PRIORITY = 4095, 7


def _int(record: Mapping[str, str], key: str) -> int:
    try:
        return int(record.get(key, "") or 0)
    except ValueError:
        return 0


def iface_type(record: Mapping[str, str]) -> int:
    """IPv6 when ``iface.ipaddress`` has a colon (``iface_get_iptype``), else IPv4."""
    return IfaceType.IPV6 if ":" in record.get("iface.ipaddress", "") else IfaceType.IPV4


def net_config_attrs(record: Mapping[str, str]) -> tuple[ParamAttr, ...]:
    """The NET attributes of ``record`` (an iface record's ``key -> value``)."""
    num = _int(record, "iface.iface_num")
    kind = iface_type(record)

    def attr(param: int, value: bytes) -> ParamAttr:
        return ParamAttr(
            param=param, value=value, iface_num=num, iface_type=kind,
            param_type=ParamType.NET_PARAM,
        )  # fmt: skip

    def state(param: int, key: str) -> ParamAttr | None:
        value = _STATE.get(record.get(key, ""))
        return None if value is None else attr(param, bytes([value]))

    def address(param: int, key: str, v6: bool = False) -> ParamAttr | None:
        text = record.get(key, "")
        if not text or text == "<empty>":
            return None
        try:
            ip = ipaddress.IPv6Address(text) if v6 else ipaddress.IPv4Address(text)
        except ValueError:
            return None
        return attr(param, ip.packed)

    out: list[ParamAttr | None] = []
    if kind == IfaceType.IPV4:
        if record.get("iface.state", "") == "disable":
            return tuple(a for a in [state(NetParam.IFACE_ENABLE, "iface.state")] if a)
        bootproto = record.get("iface.bootproto", "")
        if "dhcp" in bootproto:
            out.append(attr(NetParam.IPV4_BOOTPROTO, bytes([_BOOTPROTO_DHCP])))
        elif "." in record.get("iface.ipaddress", ""):
            out.append(attr(NetParam.IPV4_BOOTPROTO, bytes([_BOOTPROTO_STATIC])))
            out.append(address(NetParam.IPV4_ADDR, "iface.ipaddress"))
            out.append(address(NetParam.IPV4_SUBNET, "iface.subnet_mask"))
            out.append(address(NetParam.IPV4_GW, "iface.gateway"))
    else:
        out.append(address(NetParam.IPV6_ADDR, "iface.ipaddress", v6=True))
        out.append(address(NetParam.IPV6_LINKLOCAL, "iface.ipv6_linklocal", v6=True))
        out.append(address(NetParam.IPV6_ROUTER, "iface.ipv6_router", v6=True))
    attrs = [a for a in out if a is not None]
    if not attrs:
        return ()
    attrs += [
        a
        for a in (
            state(NetParam.IFACE_ENABLE, "iface.state"),
            state(NetParam.VLAN_ENABLED, "iface.vlan_state"),
        )
        if a is not None
    ]
    vlan_id, priority = _int(record, "iface.vlan_id"), _int(record, "iface.vlan_priority")
    if record.get("iface.vlan_state", "") != "disable" and vlan_id:
        tag = 0
        if vlan_id <= _MAX_VLAN_ID and priority <= _MAX_VLAN_PRIORITY:
            tag = (priority << 13) | (vlan_id & _MAX_VLAN_ID)
        attrs.append(attr(NetParam.VLAN_TAG, tag.to_bytes(2, sys.byteorder)))
    mtu, port = _int(record, "iface.mtu"), _int(record, "iface.port") or 3260
    if mtu:
        attrs.append(attr(NetParam.MTU, mtu.to_bytes(2, sys.byteorder)))
    attrs.append(attr(NetParam.PORT, port.to_bytes(2, sys.byteorder)))
    return tuple(attrs)
