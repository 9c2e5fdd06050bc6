"""The parameter enums of NETLINK_ISCSI: what SET_PARAM, SET_HOST_PARAM, SET_IFACE_PARAMS,
SET_FLASHNODE_PARAMS and SET_CHAP name, numbered as the kernel's ``iscsi_if.h`` numbers them.

Member names are the kernel's without their common prefix (``ISCSI_PARAM_TARGET_NAME`` is
``IscsiParam.TARGET_NAME``).  Values are ABI: never renumber, only append.  Pure data.
"""

from __future__ import annotations

from enum import IntEnum
from typing import Final

__all__ = [
    "HOST_STATS_FIELDS",
    "ChapParam",
    "FlashnodeParam",
    "HostParam",
    "IfaceParam",
    "IscsiParam",
    "NetParam",
]


class IscsiParam(IntEnum):
    """``enum iscsi_param``: the ``param`` of SET_PARAM (session, connection, target, LU)."""

    MAX_RECV_DLENGTH = 0
    MAX_XMIT_DLENGTH = 1
    HDRDGST_EN = 2
    DATADGST_EN = 3
    INITIAL_R2T_EN = 4
    MAX_R2T = 5
    IMM_DATA_EN = 6
    FIRST_BURST = 7
    MAX_BURST = 8
    PDU_INORDER_EN = 9
    DATASEQ_INORDER_EN = 10
    ERL = 11
    IFMARKER_EN = 12
    OFMARKER_EN = 13
    EXP_STATSN = 14
    TARGET_NAME = 15
    TPGT = 16
    PERSISTENT_ADDRESS = 17
    PERSISTENT_PORT = 18
    SESS_RECOVERY_TMO = 19
    CONN_PORT = 20
    CONN_ADDRESS = 21
    USERNAME = 22
    USERNAME_IN = 23
    PASSWORD = 24
    PASSWORD_IN = 25
    FAST_ABORT = 26
    ABORT_TMO = 27
    LU_RESET_TMO = 28
    HOST_RESET_TMO = 29
    PING_TMO = 30
    RECV_TMO = 31
    IFACE_NAME = 32
    ISID = 33
    INITIATOR_NAME = 34
    TGT_RESET_TMO = 35
    TARGET_ALIAS = 36
    CHAP_IN_IDX = 37
    CHAP_OUT_IDX = 38
    BOOT_ROOT = 39
    BOOT_NIC = 40
    BOOT_TARGET = 41
    AUTO_SND_TGT_DISABLE = 42
    DISCOVERY_SESS = 43
    PORTAL_TYPE = 44
    CHAP_AUTH_EN = 45
    DISCOVERY_LOGOUT_EN = 46
    BIDI_CHAP_EN = 47
    DISCOVERY_AUTH_OPTIONAL = 48
    DEF_TIME2WAIT = 49
    DEF_TIME2RETAIN = 50
    MAX_SEGMENT_SIZE = 51
    STATSN = 52
    KEEPALIVE_TMO = 53
    LOCAL_PORT = 54
    TSID = 55
    DEF_TASKMGMT_TMO = 56
    TCP_TIMESTAMP_STAT = 57
    TCP_WSF_DISABLE = 58
    TCP_NAGLE_DISABLE = 59
    TCP_TIMER_SCALE = 60
    TCP_TIMESTAMP_EN = 61
    TCP_XMIT_WSF = 62
    TCP_RECV_WSF = 63
    IP_FRAGMENT_DISABLE = 64
    IPV4_TOS = 65
    IPV6_TC = 66
    IPV6_FLOW_LABEL = 67
    IS_FW_ASSIGNED_IPV6 = 68
    DISCOVERY_PARENT_IDX = 69
    DISCOVERY_PARENT_TYPE = 70
    LOCAL_IPADDR = 71


class HostParam(IntEnum):
    """``enum iscsi_host_param``: the ``param`` of SET_HOST_PARAM."""

    HWADDRESS = 0
    INITIATOR_NAME = 1
    NETDEV_NAME = 2
    IPADDRESS = 3
    PORT_STATE = 4
    PORT_SPEED = 5


class NetParam(IntEnum):
    """``enum iscsi_net_param`` (1-based): SET_IFACE_PARAMS attributes of type NET."""

    IPV4_ADDR = 1
    IPV4_SUBNET = 2
    IPV4_GW = 3
    IPV4_BOOTPROTO = 4
    MAC = 5
    IPV6_LINKLOCAL = 6
    IPV6_ADDR = 7
    IPV6_ROUTER = 8
    IPV6_ADDR_AUTOCFG = 9
    IPV6_LINKLOCAL_AUTOCFG = 10
    IPV6_ROUTER_AUTOCFG = 11
    IFACE_ENABLE = 12
    VLAN_ID = 13
    VLAN_PRIORITY = 14
    VLAN_ENABLED = 15
    VLAN_TAG = 16
    IFACE_TYPE = 17
    IFACE_NAME = 18
    MTU = 19
    PORT = 20
    IPADDR_STATE = 21
    IPV6_LINKLOCAL_STATE = 22
    IPV6_ROUTER_STATE = 23
    DELAYED_ACK_EN = 24
    TCP_NAGLE_DISABLE = 25
    TCP_WSF_DISABLE = 26
    TCP_WSF = 27
    TCP_TIMER_SCALE = 28
    TCP_TIMESTAMP_EN = 29
    CACHE_ID = 30
    IPV4_DHCP_DNS_ADDR_EN = 31
    IPV4_DHCP_SLP_DA_EN = 32
    IPV4_TOS_EN = 33
    IPV4_TOS = 34
    IPV4_GRAT_ARP_EN = 35
    IPV4_DHCP_ALT_CLIENT_ID_EN = 36
    IPV4_DHCP_ALT_CLIENT_ID = 37
    IPV4_DHCP_REQ_VENDOR_ID_EN = 38
    IPV4_DHCP_USE_VENDOR_ID_EN = 39
    IPV4_DHCP_VENDOR_ID = 40
    IPV4_DHCP_LEARN_IQN_EN = 41
    IPV4_FRAGMENT_DISABLE = 42
    IPV4_IN_FORWARD_EN = 43
    IPV4_TTL = 44
    IPV6_GRAT_NEIGHBOR_ADV_EN = 45
    IPV6_MLD_EN = 46
    IPV6_FLOW_LABEL = 47
    IPV6_TRAFFIC_CLASS = 48
    IPV6_HOP_LIMIT = 49
    IPV6_ND_REACHABLE_TMO = 50
    IPV6_ND_REXMIT_TIME = 51
    IPV6_ND_STALE_TMO = 52
    IPV6_DUP_ADDR_DETECT_CNT = 53
    IPV6_RTR_ADV_LINK_MTU = 54
    REDIRECT_EN = 55


class IfaceParam(IntEnum):
    """``enum iscsi_iface_param``: SET_IFACE_PARAMS attributes of type IFACE."""

    DEF_TASKMGMT_TMO = 0
    HDRDGST_EN = 1
    DATADGST_EN = 2
    IMM_DATA_EN = 3
    INITIAL_R2T_EN = 4
    DATASEQ_INORDER_EN = 5
    PDU_INORDER_EN = 6
    ERL = 7
    MAX_RECV_DLENGTH = 8
    FIRST_BURST = 9
    MAX_R2T = 10
    MAX_BURST = 11
    CHAP_AUTH_EN = 12
    BIDI_CHAP_EN = 13
    DISCOVERY_AUTH_OPTIONAL = 14
    DISCOVERY_LOGOUT_EN = 15
    STRICT_LOGIN_COMP_EN = 16
    INITIATOR_NAME = 17


class FlashnodeParam(IntEnum):
    """``enum iscsi_flashnode_param``: SET_FLASHNODE_PARAMS attributes."""

    IS_FW_ASSIGNED_IPV6 = 0
    PORTAL_TYPE = 1
    AUTO_SND_TGT_DISABLE = 2
    DISCOVERY_SESS = 3
    ENTRY_EN = 4
    HDR_DGST_EN = 5
    DATA_DGST_EN = 6
    IMM_DATA_EN = 7
    INITIAL_R2T_EN = 8
    DATASEQ_INORDER = 9
    PDU_INORDER = 10
    CHAP_AUTH_EN = 11
    SNACK_REQ_EN = 12
    DISCOVERY_LOGOUT_EN = 13
    BIDI_CHAP_EN = 14
    DISCOVERY_AUTH_OPTIONAL = 15
    ERL = 16
    TCP_TIMESTAMP_STAT = 17
    TCP_NAGLE_DISABLE = 18
    TCP_WSF_DISABLE = 19
    TCP_TIMER_SCALE = 20
    TCP_TIMESTAMP_EN = 21
    IP_FRAG_DISABLE = 22
    MAX_RECV_DLENGTH = 23
    MAX_XMIT_DLENGTH = 24
    FIRST_BURST = 25
    DEF_TIME2WAIT = 26
    DEF_TIME2RETAIN = 27
    MAX_R2T = 28
    KEEPALIVE_TMO = 29
    ISID = 30
    TSID = 31
    PORT = 32
    MAX_BURST = 33
    DEF_TASKMGMT_TMO = 34
    IPADDR = 35
    ALIAS = 36
    REDIRECT_IPADDR = 37
    MAX_SEGMENT_SIZE = 38
    LOCAL_PORT = 39
    IPV4_TOS = 40
    IPV6_TC = 41
    IPV6_FLOW_LABEL = 42
    NAME = 43
    TPGT = 44
    LINK_LOCAL_IPV6 = 45
    DISCOVERY_PARENT_IDX = 46
    DISCOVERY_PARENT_TYPE = 47
    TCP_XMIT_WSF = 48
    TCP_RECV_WSF = 49
    CHAP_IN_IDX = 50
    CHAP_OUT_IDX = 51
    USERNAME = 52
    USERNAME_IN = 53
    PASSWORD = 54
    PASSWORD_IN = 55
    STATSN = 56
    EXP_STATSN = 57
    IS_BOOT_TGT = 58


class ChapParam(IntEnum):
    """``enum iscsi_chap_param``: SET_CHAP attributes."""

    INDEX = 0
    CHAP_TYPE = 1
    USERNAME = 2
    PASSWORD = 3
    PASSWORD_LEN = 4


#: ``struct iscsi_offload_host_stats``: its 82 u64 counters, in order (GET_HOST_STATS).
HOST_STATS_FIELDS: Final = (
    "mactx_frames",
    "mactx_bytes",
    "mactx_multicast_frames",
    "mactx_broadcast_frames",
    "mactx_pause_frames",
    "mactx_control_frames",
    "mactx_deferral",
    "mactx_excess_deferral",
    "mactx_late_collision",
    "mactx_abort",
    "mactx_single_collision",
    "mactx_multiple_collision",
    "mactx_collision",
    "mactx_frames_dropped",
    "mactx_jumbo_frames",
    "macrx_frames",
    "macrx_bytes",
    "macrx_unknown_control_frames",
    "macrx_pause_frames",
    "macrx_control_frames",
    "macrx_dribble",
    "macrx_frame_length_error",
    "macrx_jabber",
    "macrx_carrier_sense_error",
    "macrx_frame_discarded",
    "macrx_frames_dropped",
    "mac_crc_error",
    "mac_encoding_error",
    "macrx_length_error_large",
    "macrx_length_error_small",
    "macrx_multicast_frames",
    "macrx_broadcast_frames",
    "iptx_packets",
    "iptx_bytes",
    "iptx_fragments",
    "iprx_packets",
    "iprx_bytes",
    "iprx_fragments",
    "ip_datagram_reassembly",
    "ip_invalid_address_error",
    "ip_error_packets",
    "ip_fragrx_overlap",
    "ip_fragrx_outoforder",
    "ip_datagram_reassembly_timeout",
    "ipv6tx_packets",
    "ipv6tx_bytes",
    "ipv6tx_fragments",
    "ipv6rx_packets",
    "ipv6rx_bytes",
    "ipv6rx_fragments",
    "ipv6_datagram_reassembly",
    "ipv6_invalid_address_error",
    "ipv6_error_packets",
    "ipv6_fragrx_overlap",
    "ipv6_fragrx_outoforder",
    "ipv6_datagram_reassembly_timeout",
    "tcptx_segments",
    "tcptx_bytes",
    "tcprx_segments",
    "tcprx_byte",
    "tcp_duplicate_ack_retx",
    "tcp_retx_timer_expired",
    "tcprx_duplicate_ack",
    "tcprx_pure_ackr",
    "tcptx_delayed_ack",
    "tcptx_pure_ack",
    "tcprx_segment_error",
    "tcprx_segment_outoforder",
    "tcprx_window_probe",
    "tcprx_window_update",
    "tcptx_window_probe_persist",
    "ecc_error_correction",
    "iscsi_pdu_tx",
    "iscsi_data_bytes_tx",
    "iscsi_pdu_rx",
    "iscsi_data_bytes_rx",
    "iscsi_io_completed",
    "iscsi_unexpected_io_rx",
    "iscsi_format_error",
    "iscsi_hdr_digest_error",
    "iscsi_data_digest_error",
    "iscsi_sequence_error",
)
