"""SET_FLASHNODE_PARAMS from ``-n flashnode.* -v VALUE`` pairs, as iscsiadm builds it (pure).

open-iscsi's ``iscsi_set_flashnode_params`` (usr/iscsiadm.c) checks every name against
the flash node record (``idbm_recinfo_flashnode``, usr/idbm.c: every key there may be
modified, an unknown one fails with ``Cannot modify <name>. Invalid param name.``,
ISCSI_ERR_INVAL), parses each value into the record as ``idbm_rec_update_param`` does
(integers with ``strtoul``: junk reads as 0, the value is cut to the field's width;
strings cut to the field's size) and then ``flashnode_build_config`` (usr/flashnode.c)
makes one ``iscsi_flashnode_param_info`` attribute per name it knows: integers native
at the field's C width, strings as the whole field (NUL padded), ``ipaddress`` /
``redirect_ipaddr`` as ``in_addr`` or ``in6_addr`` by the node's ``portal_type`` (a
value ``inet_pton`` refuses is dropped), ``isid`` as 6 bytes from 12 hex digits, a
``port`` of 0 as 3260.  Keys it does not build (``chap_in_idx``, the usernames and
passwords, ``is_boot_target``) are accepted and dropped; when nothing is left iscsiadm
fails with ``Build flashnode config failed.`` (ISCSI_ERR).

:data:`FLASHNODE_KEYS` also names each key's ``iscsi_flashnode`` sysfs attribute
(``iscsi_sysfs_get_flashnode_info``), which the simulated qla4xxx updates.
"""

from __future__ import annotations

import ipaddress
import sys
from collections.abc import Sequence
from dataclasses import dataclass

from iscsikit.errors import IscsiErr, IscsiError
from iscsikit.netlink.params import FlashnodeParam as P
from iscsikit.netlink.wire import ParamAttr

__all__ = ["FLASHNODE_KEYS", "FlashnodeKey", "flashnode_attrs", "strtoul"]

_NAME = 255  # TARGET_NAME_MAXLEN (VALUE_MAXLEN)
_AUTH = 256  # AUTH_STR_MAX_LEN
_HOST = 1025  # NI_MAXHOST


@dataclass(frozen=True, slots=True)
class FlashnodeKey:
    """One ``flashnode.*`` key: its kernel param (None: iscsiadm does not send it), how
    the value is encoded (``u8``, ``u16``, ``u32``, ``str``, ``ip``, ``ip6``, ``isid``,
    ``port``), the field size for strings, the sysfs attribute and its device."""

    param: int | None
    kind: str
    attr: str
    conn: bool = False
    size: int = 0


def _s(param: int | None, kind: str, attr: str, size: int = 0) -> FlashnodeKey:
    return FlashnodeKey(param, kind, attr, False, size)


def _c(param: int | None, kind: str, attr: str, size: int = 0) -> FlashnodeKey:
    return FlashnodeKey(param, kind, attr, True, size)


_SESS = "flashnode.session."
_CONN = "flashnode.conn[0]."

#: Every key of iscsiadm's flash node record, in ``idbm_recinfo_flashnode`` order.
FLASHNODE_KEYS: dict[str, FlashnodeKey] = {
    _SESS + "auto_snd_tgt_disable": _s(P.AUTO_SND_TGT_DISABLE, "u8", "auto_snd_tgt_disable"),
    _SESS + "discovery_session": _s(P.DISCOVERY_SESS, "u8", "discovery_session"),
    _SESS + "portal_type": _s(P.PORTAL_TYPE, "str", "portal_type", 5),
    _SESS + "entry_enable": _s(P.ENTRY_EN, "u8", "entry_enable"),
    _SESS + "immediate_data": _s(P.IMM_DATA_EN, "u8", "immediate_data"),
    _SESS + "initial_r2t": _s(P.INITIAL_R2T_EN, "u8", "initial_r2t"),
    _SESS + "data_seq_in_order": _s(P.DATASEQ_INORDER, "u8", "data_seq_in_order"),
    _SESS + "data_pdu_in_order": _s(P.PDU_INORDER, "u8", "data_pdu_in_order"),
    _SESS + "chap_auth_en": _s(P.CHAP_AUTH_EN, "u8", "chap_auth"),
    _SESS + "discovery_logout_en": _s(P.DISCOVERY_LOGOUT_EN, "u8", "discovery_logout"),
    _SESS + "bidi_chap_en": _s(P.BIDI_CHAP_EN, "u8", "bidi_chap"),
    _SESS + "discovery_auth_optional": _s(
        P.DISCOVERY_AUTH_OPTIONAL, "u8", "discovery_auth_optional"
    ),
    _SESS + "erl": _s(P.ERL, "u8", "erl"),
    _SESS + "first_burst_len": _s(P.FIRST_BURST, "u32", "first_burst_len"),
    _SESS + "def_time2wait": _s(P.DEF_TIME2WAIT, "u16", "def_time2wait"),
    _SESS + "def_time2retain": _s(P.DEF_TIME2RETAIN, "u16", "def_time2retain"),
    _SESS + "max_outstanding_r2t": _s(P.MAX_R2T, "u16", "max_outstanding_r2t"),
    _SESS + "isid": _s(P.ISID, "isid", "isid", 16),
    _SESS + "tsid": _s(P.TSID, "u16", "tsid"),
    _SESS + "max_burst_len": _s(P.MAX_BURST, "u32", "max_burst_len"),
    _SESS + "def_taskmgmt_tmo": _s(P.DEF_TASKMGMT_TMO, "u16", "def_taskmgmt_tmo"),
    _SESS + "targetalias": _s(P.ALIAS, "str", "targetalias", _NAME),
    _SESS + "targetname": _s(P.NAME, "str", "targetname", _NAME),
    _SESS + "discovery_parent_idx": _s(P.DISCOVERY_PARENT_IDX, "u16", "discovery_parent_idx"),
    _SESS + "discovery_parent_type": _s(
        P.DISCOVERY_PARENT_TYPE, "str", "discovery_parent_type", 80
    ),
    _SESS + "tpgt": _s(P.TPGT, "u16", "tpgt"),
    # flashnode_build_config sends chap_out_idx as a u32 (the record's field is a u16).
    _SESS + "chap_out_idx": _s(P.CHAP_OUT_IDX, "u32", "chap_out_idx"),
    _SESS + "chap_in_idx": _s(None, "u16", "chap_in_idx"),
    _SESS + "username": _s(None, "str", "username", _AUTH),
    _SESS + "username_in": _s(None, "str", "username_in", _AUTH),
    _SESS + "password": _s(None, "str", "password", _AUTH),
    _SESS + "password_in": _s(None, "str", "password_in", _AUTH),
    _SESS + "is_boot_target": _s(None, "u8", "is_boot_target"),
    _CONN + "is_fw_assigned_ipv6": _c(P.IS_FW_ASSIGNED_IPV6, "u8", "is_fw_assigned_ipv6"),
    _CONN + "header_digest_en": _c(P.HDR_DGST_EN, "u8", "header_digest"),
    _CONN + "data_digest_en": _c(P.DATA_DGST_EN, "u8", "data_digest"),
    _CONN + "snack_req_en": _c(P.SNACK_REQ_EN, "u8", "snack_req"),
    _CONN + "tcp_timestamp_stat": _c(P.TCP_TIMESTAMP_STAT, "u8", "tcp_timestamp_stat"),
    _CONN + "tcp_nagle_disable": _c(P.TCP_NAGLE_DISABLE, "u8", "tcp_nagle_disable"),
    _CONN + "tcp_wsf_disable": _c(P.TCP_WSF_DISABLE, "u8", "tcp_wsf_disable"),
    _CONN + "tcp_timer_scale": _c(P.TCP_TIMER_SCALE, "u8", "tcp_timer_scale"),
    _CONN + "tcp_timestamp_en": _c(P.TCP_TIMESTAMP_EN, "u8", "tcp_timestamp_enable"),
    _CONN + "fragment_disable": _c(P.IP_FRAG_DISABLE, "u8", "fragment_disable"),
    _CONN + "max_recv_dlength": _c(P.MAX_RECV_DLENGTH, "u32", "max_recv_dlength"),
    _CONN + "max_xmit_dlength": _c(P.MAX_XMIT_DLENGTH, "u32", "max_xmit_dlength"),
    _CONN + "keepalive_tmo": _c(P.KEEPALIVE_TMO, "u16", "keepalive_tmo"),
    _CONN + "port": _c(P.PORT, "port", "port"),
    _CONN + "ipaddress": _c(P.IPADDR, "ip", "ipaddress", _HOST),
    _CONN + "redirect_ipaddr": _c(P.REDIRECT_IPADDR, "ip", "redirect_ipaddr", _HOST),
    _CONN + "max_segment_size": _c(P.MAX_SEGMENT_SIZE, "u32", "max_segment_size"),
    _CONN + "local_port": _c(P.LOCAL_PORT, "u16", "local_port"),
    _CONN + "ipv4_tos": _c(P.IPV4_TOS, "u8", "ipv4_tos"),
    _CONN + "ipv6_traffic_class": _c(P.IPV6_TC, "u8", "ipv6_traffic_class"),
    _CONN + "ipv6_flow_label": _c(P.IPV6_FLOW_LABEL, "u16", "ipv6_flow_label"),
    _CONN + "link_local_ipv6": _c(P.LINK_LOCAL_IPV6, "ip6", "link_local_ipv6", _HOST),
    _CONN + "tcp_xmit_wsf": _c(P.TCP_XMIT_WSF, "u32", "tcp_xmit_wsf"),
    _CONN + "tcp_recv_wsf": _c(P.TCP_RECV_WSF, "u32", "tcp_recv_wsf"),
    _CONN + "statsn": _c(P.STATSN, "u32", "statsn"),
    _CONN + "exp_statsn": _c(P.EXP_STATSN, "u32", "exp_statsn"),
}

_WIDTH = {"u8": 1, "u16": 2, "u32": 4, "port": 2}


def strtoul(text: str) -> int:
    """C ``strtoul(text, NULL, 10)`` as an unsigned long: leading blanks, a sign, the
    digits that follow; nothing numeric reads as 0, overflow as ULONG_MAX."""
    s = text.lstrip(" \t\n\v\f\r")
    sign = 1
    if s[:1] in ("+", "-"):
        sign, s = (-1 if s[0] == "-" else 1), s[1:]
    digits = ""
    for ch in s:
        if not ch.isascii() or not ch.isdigit():
            break
        digits += ch
    if not digits:
        return 0
    value = int(digits)
    if value > 0xFFFF_FFFF_FFFF_FFFF:
        return 0xFFFF_FFFF_FFFF_FFFF
    return (sign * value) & 0xFFFF_FFFF_FFFF_FFFF


def _value(key: FlashnodeKey, text: str, portal_type: str) -> bytes | None:
    """The attribute value of ``text`` for ``key``, or None when iscsiadm drops it."""
    if key.kind in _WIDTH:
        width = _WIDTH[key.kind]
        number = strtoul(text) & ((1 << 8 * width) - 1)
        if key.kind == "port" and number == 0:
            number = 3260
        return number.to_bytes(width, sys.byteorder)
    if key.kind == "str":
        raw = text.encode()[: key.size - 1]
        return raw + b"\0" * (key.size - len(raw))
    if key.kind == "isid":
        digits = text.encode()[:15].decode("ascii", "replace")
        out = bytearray(6)
        for i in range(6):  # sscanf("%02hhx" x6): stops at the first pair it cannot read
            try:
                out[i] = int(digits[2 * i : 2 * i + 2], 16)
            except ValueError:
                break
        return bytes(out)
    v6 = key.kind == "ip6" or not portal_type.startswith("ipv4")
    try:
        address = ipaddress.IPv6Address(text) if v6 else ipaddress.IPv4Address(text)
    except ValueError:
        return None  # inet_pton refused it: flashnode_fill_ipaddr fails, the key is dropped
    return address.packed


def flashnode_attrs(params: Sequence[tuple[str, str]], portal_type: str) -> tuple[ParamAttr, ...]:
    """The SET_FLASHNODE_PARAMS attributes of ``params`` (name, value) for a node whose
    ``portal_type`` is ``portal_type``; raises iscsiadm's errors (see the module)."""
    for name, _ in params:
        if name not in FLASHNODE_KEYS:
            raise IscsiError(f"Cannot modify {name}. Invalid param name.", code=IscsiErr.INVAL)
    values = dict(params)  # the record holds one value per key: the last one given wins
    if _SESS + "portal_type" in values:
        portal_type = values[_SESS + "portal_type"][:4]
    out = []
    for name, _ in params:
        key = FLASHNODE_KEYS[name]
        if key.param is None:
            continue
        value = _value(key, values[name], portal_type)
        if value is not None:
            out.append(ParamAttr(param=key.param, value=value))
    if not out:
        raise IscsiError("Build flashnode config failed.", code=IscsiErr.ERR)
    return tuple(out)
