"""HBA records: CHAP table entries (``-m host -C chap``) and flash nodes.

No offload HBA here, so order and types come from the reference TSV (upstream HEAD),
not from the oracle; masking of the flash node passwords is assumed like the others.
"""

from __future__ import annotations

from iscsikit.config.keyspec import VALUE_MAX, KeySpec, flags

# -- HBA records (no kernel here: order and types from the reference TSV) ---------------

HOST_CHAP_SPECS: tuple[KeySpec, ...] = (
    KeySpec("host.auth.tbl_idx", "uint16", "0", "CHAP table index in HBA flash", flags=flags("id")),
    KeySpec(
        "host.auth.username", "string", "", "CHAP name stored in HBA flash", max_length=VALUE_MAX
    ),
    KeySpec(
        "host.auth.password",
        "string",
        "",
        "CHAP secret stored in HBA flash",
        flags=flags("mask"),
        max_length=VALUE_MAX,
    ),
    KeySpec(
        "host.auth.password_length",
        "int32",
        "0",
        "Length of host.auth.password (set automatically)",
        flags=flags("hide"),
    ),
    KeySpec(
        "host.auth.username_in",
        "string",
        "",
        "Mutual CHAP name stored in HBA flash",
        max_length=VALUE_MAX,
    ),
    KeySpec(
        "host.auth.password_in",
        "string",
        "",
        "Mutual CHAP secret stored in HBA flash",
        flags=flags("mask"),
        max_length=VALUE_MAX,
    ),
    KeySpec(
        "host.auth.password_in_length",
        "int32",
        "0",
        "Length of host.auth.password_in (set automatically)",
        flags=flags("hide"),
    ),
)


def _fn(name: str, vtype: str, *names: str) -> KeySpec:
    what = name.split(".", 1)[1].replace("conn[0].", "connection ").replace("session.", "session ")
    return KeySpec(
        name,
        vtype,
        "" if vtype == "string" else "0",
        f"Flash node entry {what} (qla4xxx; read from /sys/bus/iscsi_flashnode)",
        flags=flags(*names),
    )


FLASHNODE_SPECS: tuple[KeySpec, ...] = (
    _fn("flashnode.session.auto_snd_tgt_disable", "uint8"),
    _fn("flashnode.session.discovery_session", "uint8"),
    _fn("flashnode.session.portal_type", "string"),
    _fn("flashnode.session.entry_enable", "uint8"),
    _fn("flashnode.session.immediate_data", "uint8"),
    _fn("flashnode.session.initial_r2t", "uint8"),
    _fn("flashnode.session.data_seq_in_order", "uint8"),
    _fn("flashnode.session.data_pdu_in_order", "uint8"),
    _fn("flashnode.session.chap_auth_en", "uint8"),
    _fn("flashnode.session.discovery_logout_en", "uint8"),
    _fn("flashnode.session.bidi_chap_en", "uint8"),
    _fn("flashnode.session.discovery_auth_optional", "uint8"),
    _fn("flashnode.session.erl", "uint8"),
    _fn("flashnode.session.first_burst_len", "uint32"),
    _fn("flashnode.session.def_time2wait", "uint16"),
    _fn("flashnode.session.def_time2retain", "uint16"),
    _fn("flashnode.session.max_outstanding_r2t", "uint16"),
    _fn("flashnode.session.isid", "string"),
    _fn("flashnode.session.tsid", "uint16"),
    _fn("flashnode.session.max_burst_len", "uint32"),
    _fn("flashnode.session.def_taskmgmt_tmo", "uint16"),
    _fn("flashnode.session.targetalias", "string"),
    _fn("flashnode.session.targetname", "string"),
    _fn("flashnode.session.discovery_parent_idx", "uint16"),
    _fn("flashnode.session.discovery_parent_type", "string"),
    _fn("flashnode.session.tpgt", "uint16"),
    _fn("flashnode.session.chap_out_idx", "uint16"),
    _fn("flashnode.session.chap_in_idx", "uint16"),
    _fn("flashnode.session.username", "string"),
    _fn("flashnode.session.username_in", "string"),
    _fn("flashnode.session.password", "string", "mask"),
    _fn("flashnode.session.password_in", "string", "mask"),
    _fn("flashnode.session.is_boot_target", "uint8"),
    _fn("flashnode.conn[0].is_fw_assigned_ipv6", "uint8"),
    _fn("flashnode.conn[0].header_digest_en", "uint8"),
    _fn("flashnode.conn[0].data_digest_en", "uint8"),
    _fn("flashnode.conn[0].snack_req_en", "uint8"),
    _fn("flashnode.conn[0].tcp_timestamp_stat", "uint8"),
    _fn("flashnode.conn[0].tcp_nagle_disable", "uint8"),
    _fn("flashnode.conn[0].tcp_wsf_disable", "uint8"),
    _fn("flashnode.conn[0].tcp_timer_scale", "uint8"),
    _fn("flashnode.conn[0].tcp_timestamp_en", "uint8"),
    _fn("flashnode.conn[0].fragment_disable", "uint8"),
    _fn("flashnode.conn[0].max_xmit_dlength", "uint32"),
    _fn("flashnode.conn[0].max_recv_dlength", "uint32"),
    _fn("flashnode.conn[0].keepalive_tmo", "uint16"),
    _fn("flashnode.conn[0].port", "uint16"),
    _fn("flashnode.conn[0].ipaddress", "string"),
    _fn("flashnode.conn[0].redirect_ipaddr", "string"),
    _fn("flashnode.conn[0].max_segment_size", "uint32"),
    _fn("flashnode.conn[0].local_port", "uint16"),
    _fn("flashnode.conn[0].ipv4_tos", "uint8"),
    _fn("flashnode.conn[0].ipv6_traffic_class", "uint8"),
    _fn("flashnode.conn[0].ipv6_flow_label", "uint16"),
    _fn("flashnode.conn[0].link_local_ipv6", "string"),
    _fn("flashnode.conn[0].tcp_xmit_wsf", "uint32"),
    _fn("flashnode.conn[0].tcp_recv_wsf", "uint32"),
    _fn("flashnode.conn[0].statsn", "uint32"),
    _fn("flashnode.conn[0].exp_statsn", "uint32"),
)
