"""iface.* keys: iface records, and the iface block of node records.

Order verified with iscsiadm 2.1.8 (the same on disk and in ``-m iface -I``).
"""

from __future__ import annotations

from iscsikit.config.keyspec import (
    ENABLE,
    HBA_STR_MAX,
    TRANSPORTS,
    VALUE_MAX,
    KeySpec,
    flags,
)

# -- iface.* keys (shared by iface records and the iface block of node records) --------


def _hba(name: str, what: str, *names: str) -> KeySpec:
    return KeySpec(
        name,
        "string",
        "",
        f"Offload HBA setting: {what} (enable|disable; any other value leaves it unset)",
        flags=flags(*names),
        max_length=HBA_STR_MAX,
        suggested=ENABLE,
    )


def _hba_int(name: str, vtype: str, what: str, *names: str) -> KeySpec:
    return KeySpec(
        name, vtype, "0", f"Offload HBA setting: {what} (0 = not set)", flags=flags(*names)
    )


IFACE_SPECS: dict[str, KeySpec] = {
    s.name: s
    for s in (
        KeySpec(
            "iface.iscsi_ifacename",
            "string",
            "",
            "iface name: the file name under ifaces/ (1-64 characters); "
            "'default' and 'iser' are built in",
            flags=flags("id"),
            max_length=64,
        ),
        KeySpec(
            "iface.net_ifacename",
            "string",
            "",
            "Network device the session is bound to (SO_BINDTODEVICE), e.g. eth0; "
            "exclusive with iface.hwaddress",
            max_length=15,
        ),
        KeySpec(
            "iface.ipaddress",
            "string",
            "",
            "Initiator IP address (offload HBAs only; tcp cannot bind by address). "
            "An address without '.' makes the record IPv6 unless bootproto is dhcp",
            max_length=VALUE_MAX,
        ),
        KeySpec(
            "iface.prefix_len",
            "uint8",
            "0",
            "IPv6 prefix length / IPv4 mask length for offload HBAs (0-128)",
        ),
        KeySpec(
            "iface.hwaddress",
            "string",
            "",
            "MAC address the session is bound to (aa:bb:cc:dd:ee:ff); "
            "exclusive with iface.net_ifacename",
            max_length=17,
        ),
        KeySpec(
            "iface.transport_name",
            "string",
            "tcp",
            "iSCSI transport: tcp, iser or an offload driver",
            max_length=15,
            suggested=TRANSPORTS,
        ),
        KeySpec(
            "iface.initiatorname",
            "string",
            "",
            "Initiator name for sessions through this iface; empty = initiatorname.iscsi",
            max_length=VALUE_MAX,
        ),
        KeySpec(
            "iface.state",
            "string",
            "",
            "Offload HBA iface state (enable|disable)",
            max_length=HBA_STR_MAX,
            suggested=ENABLE,
        ),
        KeySpec("iface.vlan_id", "uint16", "0", "VLAN id for offload HBAs (0-4095)"),
        KeySpec("iface.vlan_priority", "uint8", "0", "VLAN priority for offload HBAs (0-7)"),
        KeySpec(
            "iface.vlan_state",
            "string",
            "",
            "Offload HBA VLAN state (enable|disable)",
            max_length=HBA_STR_MAX,
            suggested=ENABLE,
        ),
        KeySpec(
            "iface.iface_num",
            "int32",
            "0",
            "HBA iface index (needed when an HBA port has more than one iface)",
            show_vtype="uint32",
        ),
        KeySpec("iface.mtu", "uint16", "0", "Offload HBA MTU (0 = not set)"),
        KeySpec("iface.port", "uint16", "0", "Offload HBA local port (0 = not set)"),
        # IPv4-only block
        KeySpec(
            "iface.bootproto",
            "string",
            "",
            "Offload HBA address configuration (static|dhcp)",
            flags=flags("v4"),
            max_length=HBA_STR_MAX,
            suggested=("static", "dhcp"),
        ),
        KeySpec(
            "iface.subnet_mask",
            "string",
            "",
            "Offload HBA IPv4 subnet mask",
            flags=flags("v4"),
            max_length=VALUE_MAX,
        ),
        KeySpec(
            "iface.gateway",
            "string",
            "",
            "Offload HBA IPv4 gateway",
            flags=flags("v4"),
            max_length=VALUE_MAX,
        ),
        _hba("iface.dhcp_alt_client_id_state", "DHCP alternate client id", "v4"),
        KeySpec(
            "iface.dhcp_alt_client_id",
            "string",
            "",
            "Offload HBA DHCP alternate client id",
            flags=flags("v4"),
            max_length=HBA_STR_MAX,
        ),
        _hba("iface.dhcp_dns", "DNS address from DHCP", "v4"),
        _hba("iface.dhcp_learn_iqn", "learn the initiator name from DHCP", "v4"),
        _hba("iface.dhcp_req_vendor_id_state", "request the DHCP vendor id", "v4"),
        _hba("iface.dhcp_vendor_id_state", "use the DHCP vendor id", "v4"),
        KeySpec(
            "iface.dhcp_vendor_id",
            "string",
            "",
            "Offload HBA DHCP vendor id",
            flags=flags("v4"),
            max_length=HBA_STR_MAX,
        ),
        _hba("iface.dhcp_slp_da", "SLP directory agent from DHCP", "v4"),
        _hba("iface.fragmentation", "IPv4 fragmentation", "v4"),
        _hba("iface.gratuitous_arp", "gratuitous ARP", "v4"),
        _hba("iface.incoming_forwarding", "incoming forwarding", "v4"),
        _hba("iface.tos_state", "IPv4 type of service", "v4"),
        _hba_int("iface.tos", "uint8", "IPv4 type of service", "v4"),
        _hba_int("iface.ttl", "uint8", "IPv4 time to live", "v4"),
        # IPv6-only block
        KeySpec(
            "iface.ipv6_autocfg",
            "string",
            "",
            "Offload HBA IPv6 address autoconfiguration (nd|dhcpv6|disable)",
            flags=flags("v6"),
            max_length=VALUE_MAX,
            suggested=("nd", "dhcpv6", "disable"),
        ),
        KeySpec(
            "iface.linklocal_autocfg",
            "string",
            "",
            "Offload HBA IPv6 link-local autoconfiguration (auto|disable)",
            flags=flags("v6"),
            max_length=VALUE_MAX,
            suggested=("auto", "disable"),
        ),
        KeySpec(
            "iface.router_autocfg",
            "string",
            "",
            "Offload HBA IPv6 router autoconfiguration (auto|disable)",
            flags=flags("v6"),
            max_length=VALUE_MAX,
            suggested=("auto", "disable"),
        ),
        KeySpec(
            "iface.ipv6_linklocal",
            "string",
            "",
            "Offload HBA IPv6 link-local address",
            flags=flags("v6"),
            max_length=VALUE_MAX,
        ),
        KeySpec(
            "iface.ipv6_router",
            "string",
            "",
            "Offload HBA IPv6 router address",
            flags=flags("v6"),
            max_length=VALUE_MAX,
        ),
        _hba_int(
            "iface.dup_addr_detect_cnt", "uint8", "IPv6 duplicate address detection count", "v6"
        ),
        _hba_int("iface.flow_label", "uint32", "IPv6 flow label", "v6"),
        _hba("iface.gratuitous_neighbor_adv", "IPv6 gratuitous neighbor advertisement", "v6"),
        _hba_int("iface.hop_limit", "uint8", "IPv6 hop limit", "v6"),
        _hba("iface.mld", "IPv6 multicast listener discovery", "v6"),
        _hba_int("iface.nd_reachable_tmo", "uint32", "IPv6 ND reachable timeout (ms)", "v6"),
        _hba_int("iface.nd_rexmit_time", "uint32", "IPv6 ND retransmit time (ms)", "v6"),
        _hba_int("iface.nd_stale_tmo", "uint32", "IPv6 ND stale timeout", "v6"),
        _hba_int("iface.router_adv_link_mtu", "uint32", "IPv6 router advertisement link MTU", "v6"),
        _hba_int("iface.traffic_class", "uint8", "IPv6 traffic class", "v6"),
        # common again
        _hba("iface.delayed_ack", "TCP delayed ACK"),
        _hba("iface.tcp_nagle", "TCP Nagle algorithm"),
        _hba("iface.tcp_wsf_state", "TCP window scale"),
        _hba_int("iface.tcp_wsf", "uint8", "TCP window scale factor"),
        _hba_int("iface.tcp_timer_scale", "uint8", "TCP timer scale"),
        _hba("iface.tcp_timestamp", "TCP timestamps"),
        _hba("iface.redirect", "iSCSI login redirect"),
        _hba_int("iface.def_task_mgmt_timeout", "uint16", "default task management timeout (s)"),
        _hba("iface.header_digest", "header digest"),
        _hba("iface.data_digest", "data digest"),
        _hba("iface.immediate_data", "ImmediateData"),
        _hba("iface.initial_r2t", "InitialR2T"),
        _hba("iface.data_seq_inorder", "DataSequenceInOrder"),
        _hba("iface.data_pdu_inorder", "DataPDUInOrder"),
        _hba_int("iface.erl", "uint8", "ErrorRecoveryLevel (0-2)"),
        _hba_int("iface.max_receive_data_len", "uint32", "MaxRecvDataSegmentLength"),
        _hba_int("iface.first_burst_len", "uint32", "FirstBurstLength"),
        _hba_int("iface.max_outstanding_r2t", "uint16", "MaxOutstandingR2T"),
        _hba_int("iface.max_burst_len", "uint32", "MaxBurstLength"),
        _hba("iface.chap_auth", "CHAP authentication"),
        _hba("iface.bidi_chap", "bidirectional CHAP"),
        _hba("iface.strict_login_compliance", "strict login compliance"),
        _hba("iface.discovery_auth", "discovery authentication"),
        _hba("iface.discovery_logout", "logout after discovery"),
    )
}

#: iface record order: on disk (usr/idbm.c) and in ``-m iface -I x`` (libopeniscsiusr)
#: alike -- both verified against iscsiadm 2.1.8.  The IPv4 block is followed by the
#: IPv6 block; a record holds only one of them.
IFACE_ORDER: tuple[str, ...] = tuple(IFACE_SPECS)
