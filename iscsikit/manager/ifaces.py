"""Iface policy: the offload ifaces drivers report get a record, once.

open-iscsi creates the iface records of every offload host it finds in sysfs whenever
ifaces are listed, or when a record it looks for is missing (usr/iface.c
``iface_setup_host_bindings``; ``iface_conf_read`` retries once after it).  A host
with kernel ifaces (``hostH/iscsi_iface/<ipv4|ipv6>-iface-H-N``: qla4xxx, be2iscsi)
gets one record per kernel iface, ``<transport>.<mac>.<ipv4|ipv6>.<N>``, filled from
that iface as ``iscsi_sysfs_read_iface`` reads it; a host without gets
``<transport>.<mac>`` (``iface_setup_binding_from_kern_iface``, 2.1.8 iface.c:482-551).
Here drivers report their ports through the ``iscsikit_offload_ports`` hook and this
module writes the records that are missing; existing records (and the user's edits to
them) are never touched.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from iscsikit.config.paths import resolve_root
from iscsikit.errors import NoObjectsFoundError
from iscsikit.records.model import IfaceRecord
from iscsikit.sysfs import SysfsContext

if TYPE_CHECKING:  # annotations only: `iscsikit-adm -m iface` starts without them
    import pluggy

    from iscsikit.plugin.transport import OffloadPort
    from iscsikit.records.store import Records
    from iscsikit.sysfs.host import HostIface

__all__ = ["ensure_offload_ifaces", "kernel_iface_name", "offload_ports", "read_iface"]

#: String attributes of an IPv4 kernel iface and the record key each fills
#: (iscsi_sysfs.c ``iscsi_sysfs_read_iface``, the ``ipv4`` branch).
_V4_STR = {
    "bootproto": "iface.bootproto",
    "gateway": "iface.gateway",
    "subnet": "iface.subnet_mask",
    "dhcp_alt_client_id_en": "iface.dhcp_alt_client_id_state",
    "dhcp_alt_client_id": "iface.dhcp_alt_client_id",
    "dhcp_dns_address_en": "iface.dhcp_dns",
    "dhcp_learn_iqn_en": "iface.dhcp_learn_iqn",
    "dhcp_req_vendor_id_en": "iface.dhcp_req_vendor_id_state",
    "dhcp_use_vendor_id_en": "iface.dhcp_vendor_id_state",
    "dhcp_vendor_id": "iface.dhcp_vendor_id",
    "dhcp_slp_da_info_en": "iface.dhcp_slp_da",
    "fragment_disable": "iface.fragmentation",
    "grat_arp_en": "iface.gratuitous_arp",
    "incoming_forwarding_en": "iface.incoming_forwarding",
    "tos_en": "iface.tos_state",
}
_V4_INT = {"tos": "iface.tos", "ttl": "iface.ttl"}
#: The ``ipv6`` branch.
_V6_STR = {
    "ipaddr_autocfg": "iface.ipv6_autocfg",
    "link_local_addr": "iface.ipv6_linklocal",
    "link_local_autocfg": "iface.linklocal_autocfg",
    "router_addr": "iface.ipv6_router",
    "router_state": "iface.router_autocfg",
    "grat_neighbor_adv_en": "iface.gratuitous_neighbor_adv",
    "mld_en": "iface.mld",
}
_V6_INT = {
    "dup_addr_detect_cnt": "iface.dup_addr_detect_cnt",
    "flow_label": "iface.flow_label",
    "hop_limit": "iface.hop_limit",
    "nd_reachable_tmo": "iface.nd_reachable_tmo",
    "nd_rexmit_time": "iface.nd_rexmit_time",
    "nd_stale_tmo": "iface.nd_stale_tmo",
    "router_adv_link_mtu": "iface.router_adv_link_mtu",
    "traffic_class": "iface.traffic_class",
}
#: Both families.
_STR = {
    "ipaddress": "iface.ipaddress",
    "vlan_enabled": "iface.vlan_state",
    "enabled": "iface.state",
    "delayed_ack_en": "iface.delayed_ack",
    "tcp_nagle_disable": "iface.tcp_nagle",
    "tcp_wsf_disable": "iface.tcp_wsf_state",
    "tcp_timestamp_en": "iface.tcp_timestamp",
    "redirect_en": "iface.redirect",
    "header_digest": "iface.header_digest",
    "data_digest": "iface.data_digest",
    "immediate_data": "iface.immediate_data",
    "initial_r2t": "iface.initial_r2t",
    "data_seq_in_order": "iface.data_seq_inorder",
    "data_pdu_in_order": "iface.data_pdu_inorder",
    "chap_auth": "iface.chap_auth",
    "bidi_chap": "iface.bidi_chap",
    "strict_login_comp_en": "iface.strict_login_compliance",
    "discovery_auth_optional": "iface.discovery_auth",
    "discovery_logout": "iface.discovery_logout",
}
_INT = {
    "port": "iface.port",
    "mtu": "iface.mtu",
    "tcp_wsf": "iface.tcp_wsf",
    "tcp_timer_scale": "iface.tcp_timer_scale",
    "def_taskmgmt_tmo": "iface.def_task_mgmt_timeout",
    "erl": "iface.erl",
    "max_recv_dlength": "iface.max_receive_data_len",
    "first_burst_len": "iface.first_burst_len",
    "max_outstanding_r2t": "iface.max_outstanding_r2t",
    "max_burst_len": "iface.max_burst_len",
}
#: An unreadable VLAN attribute is UINT16_MAX / UINT8_MAX, not 0 (iscsi_sysfs.c; be2iscsi
#: fails the read while VLAN is disabled, be_iscsi.c:550-565).
_VLAN = {"vlan_id": ("iface.vlan_id", 65535), "vlan_priority": ("iface.vlan_priority", 255)}


def offload_ports(root: Path, pm: pluggy.PluginManager | None = None) -> list[OffloadPort]:
    """Every port every driver reports under ``root``, in hook order, without repeats.

    Without ``pm``: the process-wide plugins, asked only when ``root`` has an iSCSI host
    an offload driver could own (``manager.offload_ports_possible``); otherwise no driver
    can have a port, and none is imported to say so."""
    if pm is None:
        from iscsikit.plugin import manager

        if not manager.offload_ports_possible(root):
            return []
        pm = manager.plugin_manager()
    ports: dict[str, OffloadPort] = {}
    for reported in pm.hook.iscsikit_offload_ports(root=root):
        for port in reported:
            ports.setdefault(port.iface_name, port)
    return list(ports.values())


def _is_ipv6(kiface: HostIface) -> bool:
    """``iface_get_iptype``: by the address (no dot, not DHCP: IPv6), by the kernel
    name when there is no address."""
    address = (kiface.attr("ipaddress") or "").strip()
    if not address or address == "<UNKNOWN>":
        return "ipv6" in kiface.name
    bootproto = (kiface.attr("bootproto") or "").strip() if not kiface.is_ipv6 else ""
    return bootproto != "dhcp" and "." not in address


def kernel_iface_name(port: OffloadPort, kiface: HostIface) -> str:
    """``<transport>.<mac>.<ipv4|ipv6>.<N>``: the record name of a kernel iface."""
    num = kiface.name.rpartition("-")[2]
    return f"{port.iface_name}.{'ipv6' if _is_ipv6(kiface) else 'ipv4'}.{num}"


def _read_uint(kiface: HostIface, attr: str) -> str | None:
    text = kiface.attr(attr)
    if text is None:
        return None
    try:
        return str(int(text.strip(), 0))
    except ValueError:
        return None


def _kernel_iface_record(
    port: OffloadPort, host_attrs: dict[str, str], kiface: HostIface
) -> IfaceRecord:
    """The record ``iface_setup_binding_from_kern_iface`` writes for one kernel iface:
    every field ``iscsi_sysfs_read_iface`` read, an unreadable one left zero/empty."""
    iface = IfaceRecord.new(kernel_iface_name(port, kiface), transport=port.transport)
    values: dict[str, str] = {
        "iface.hwaddress": port.hwaddress.lower(),
        "iface.net_ifacename": host_attrs.get("netdev", ""),
        "iface.initiatorname": host_attrs.get("initiatorname", ""),
        "iface.iface_num": kiface.name.rpartition("-")[2],
    }
    v6 = kiface.is_ipv6
    strings = {**_STR, **(_V6_STR if v6 else _V4_STR)}
    ints = {**_INT, **(_V6_INT if v6 else _V4_INT)}
    for attr, key in strings.items():
        text = kiface.attr(attr)
        if text is not None:
            values[key] = text.strip()
    for attr, key in ints.items():
        number = _read_uint(kiface, attr)
        if number is not None:
            values[key] = number
    for attr, (key, unreadable) in _VLAN.items():
        number = _read_uint(kiface, attr)
        values[key] = str(unreadable) if number is None else number
    for key, value in values.items():
        if value and value != "(null)":
            iface.set(key, value)
    return iface


def _port_records(port: OffloadPort, ctx: SysfsContext) -> list[IfaceRecord]:
    """The records open-iscsi makes for one port: one per kernel iface of its host, or
    ``<transport>.<mac>`` when the host has none (or is not in sysfs)."""
    mac = port.hwaddress.lower()
    host = next(
        (
            h
            for h in ctx.hosts()
            if (h.hwaddress or "").strip().lower() == mac and h.transport_name == port.transport
        ),
        None,
    )
    kifaces = host.ifaces() if host is not None else []
    if host is not None and kifaces:
        host_attrs = {
            name: text.strip()
            for name in ("netdev", "initiatorname")
            if (text := host.attr(name)) is not None
        }
        return [_kernel_iface_record(port, host_attrs, k) for k in kifaces]
    # No kernel ifaces: the name, the MAC and the transport, nothing else (iface.c
    # iface_setup_binding_from_kern_iface with no kern_iface); the port's netdev and
    # address are the host's, not settings of the record.
    iface = IfaceRecord.new(port.iface_name, transport=port.transport)
    iface.set("iface.hwaddress", mac)
    return [iface]


def ensure_offload_ifaces(
    records: Records, pm: pluggy.PluginManager | None = None, *, root: Path | None = None
) -> list[IfaceRecord]:
    """Create the missing iface records for the offload ports under ``root`` (default:
    ``ISCSIKIT_ROOT``, else ``/``); return those created."""
    root = resolve_root() if root is None else root
    ctx = SysfsContext(root)
    created: list[IfaceRecord] = []
    for port in offload_ports(root, pm):
        for iface in _port_records(port, ctx):
            try:
                records.iface(iface.name)
                continue
            except NoObjectsFoundError:
                pass
            records.add_iface(iface)
            created.append(iface)
    return created


def read_iface(
    records: Records,
    name: str,
    pm: pluggy.PluginManager | None = None,
    *,
    root: Path | None = None,
) -> IfaceRecord:
    """Iface record ``name`` as ``iface_conf_read`` reads it: when it is missing, the
    offload ifaces are set up once and it is read again (NoObjectsFoundError if still
    missing)."""
    try:
        return records.iface(name)
    except NoObjectsFoundError:
        ensure_offload_ifaces(records, pm, root=root)
    return records.iface(name)
