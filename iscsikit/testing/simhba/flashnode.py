"""What the simulated qla4xxx does with SET_FLASHNODE_PARAMS: its flash node's sysfs
attributes change as the kernel would show them afterwards.

``qla4xxx_sysfs_ddb_set_param`` (drivers/scsi/qla4xxx/ql4_os.c) copies each
``iscsi_flashnode_param_info`` into the flash node's session or connection and writes
the entry to flash; ``qla4xxx_sysfs_ddb_get_param`` then prints it (``%u`` for integers,
``%pI4`` / ``%pI6`` for addresses by ``portal_type``, ``%pm`` for the ISID, strings
as they are).  A parameter the driver does not handle fails the request with -ENOSYS.
**Simulated**: no such hardware exists where iscsikit is tested.
"""

from __future__ import annotations

import errno
import ipaddress
import sys
from collections.abc import Iterable
from pathlib import Path

from iscsikit.netlink.params import FlashnodeParam as P
from iscsikit.netlink.wire import ParamAttr

from .datapath import SimError

__all__ = ["apply_flashnode_params"]

#: Parameter -> (sysfs attribute, on the connection device, how the kernel prints it).
_ATTRS: dict[int, tuple[str, bool, str]] = {
    P.IS_FW_ASSIGNED_IPV6: ("is_fw_assigned_ipv6", True, "u"),
    P.PORTAL_TYPE: ("portal_type", False, "s"),
    P.AUTO_SND_TGT_DISABLE: ("auto_snd_tgt_disable", False, "u"),
    P.DISCOVERY_SESS: ("discovery_session", False, "u"),
    P.ENTRY_EN: ("entry_enable", False, "u"),
    P.HDR_DGST_EN: ("header_digest", True, "u"),
    P.DATA_DGST_EN: ("data_digest", True, "u"),
    P.IMM_DATA_EN: ("immediate_data", False, "u"),
    P.INITIAL_R2T_EN: ("initial_r2t", False, "u"),
    P.DATASEQ_INORDER: ("data_seq_in_order", False, "u"),
    P.PDU_INORDER: ("data_pdu_in_order", False, "u"),
    P.CHAP_AUTH_EN: ("chap_auth", False, "u"),
    P.SNACK_REQ_EN: ("snack_req", True, "u"),
    P.DISCOVERY_LOGOUT_EN: ("discovery_logout", False, "u"),
    P.BIDI_CHAP_EN: ("bidi_chap", False, "u"),
    P.DISCOVERY_AUTH_OPTIONAL: ("discovery_auth_optional", False, "u"),
    P.ERL: ("erl", False, "u"),
    P.TCP_TIMESTAMP_STAT: ("tcp_timestamp_stat", True, "u"),
    P.TCP_NAGLE_DISABLE: ("tcp_nagle_disable", True, "u"),
    P.TCP_WSF_DISABLE: ("tcp_wsf_disable", True, "u"),
    P.TCP_TIMER_SCALE: ("tcp_timer_scale", True, "u"),
    P.TCP_TIMESTAMP_EN: ("tcp_timestamp_enable", True, "u"),
    P.IP_FRAG_DISABLE: ("fragment_disable", True, "u"),
    P.MAX_RECV_DLENGTH: ("max_recv_dlength", True, "u"),
    P.MAX_XMIT_DLENGTH: ("max_xmit_dlength", True, "u"),
    P.FIRST_BURST: ("first_burst_len", False, "u"),
    P.DEF_TIME2WAIT: ("def_time2wait", False, "u"),
    P.DEF_TIME2RETAIN: ("def_time2retain", False, "u"),
    P.MAX_R2T: ("max_outstanding_r2t", False, "u"),
    P.KEEPALIVE_TMO: ("keepalive_tmo", True, "u"),
    P.ISID: ("isid", False, "isid"),
    P.TSID: ("tsid", False, "u"),
    P.PORT: ("port", True, "u"),
    P.MAX_BURST: ("max_burst_len", False, "u"),
    P.DEF_TASKMGMT_TMO: ("def_taskmgmt_tmo", False, "u"),
    P.IPADDR: ("ipaddress", True, "ip"),
    P.ALIAS: ("targetalias", False, "s"),
    P.REDIRECT_IPADDR: ("redirect_ipaddr", True, "ip"),
    P.MAX_SEGMENT_SIZE: ("max_segment_size", True, "u"),
    P.LOCAL_PORT: ("local_port", True, "u"),
    P.IPV4_TOS: ("ipv4_tos", True, "u"),
    P.IPV6_TC: ("ipv6_traffic_class", True, "u"),
    P.IPV6_FLOW_LABEL: ("ipv6_flow_label", True, "u"),
    P.NAME: ("targetname", False, "s"),
    P.TPGT: ("tpgt", False, "u"),
    P.LINK_LOCAL_IPV6: ("link_local_ipv6", True, "ip6"),
    P.DISCOVERY_PARENT_IDX: ("discovery_parent_idx", False, "u"),
    P.TCP_XMIT_WSF: ("tcp_xmit_wsf", True, "u"),
    P.TCP_RECV_WSF: ("tcp_recv_wsf", True, "u"),
    P.CHAP_OUT_IDX: ("chap_out_idx", False, "u"),
    P.STATSN: ("statsn", True, "u"),
    P.EXP_STATSN: ("exp_statsn", True, "u"),
}


def _shown(kind: str, value: bytes, ipv6: bool) -> str:
    if kind == "u":
        return str(int.from_bytes(value[:4], sys.byteorder))
    if kind == "isid":
        return value[:6].hex()
    if kind in ("ip", "ip6"):
        if kind == "ip6" or ipv6:
            return str(ipaddress.IPv6Address(value[:16].ljust(16, b"\0")))
        return str(ipaddress.IPv4Address(value[:4].ljust(4, b"\0")))
    return value.split(b"\0", 1)[0].decode("utf-8", "replace")


def apply_flashnode_params(sess: Path, conn: Path, attrs: Iterable[ParamAttr]) -> None:
    """Write each parameter into the flash node's ``sess`` / ``conn`` device; every
    parameter is checked before anything is written (-ENOSYS for an unknown one)."""
    attrs = list(attrs)
    if any(a.param not in _ATTRS for a in attrs):
        raise SimError(errno.ENOSYS)
    ipv6 = (sess / "portal_type").read_text().strip().startswith("ipv6")
    for a in attrs:
        name, on_conn, kind = _ATTRS[a.param]
        if a.param == P.PORTAL_TYPE:
            ipv6 = a.value.startswith(b"ipv6")
        ((conn if on_conn else sess) / name).write_text(_shown(kind, a.value, ipv6) + "\n")
