"""NETLINK_ISCSI numbers: message types, flags, error and state codes, sizes.

Everything here is ABI shared with the kernel's ``include/scsi/iscsi_if.h`` (and
open-iscsi's copy of it); the values are the kernel's, never renumber them.  The
parameter enums live in :mod:`iscsikit.netlink.params`.  Pure data: no I/O.
"""

from __future__ import annotations

from enum import IntEnum, IntFlag
from typing import Final

__all__ = [
    "CUSTOM_STAT_SIZE",
    "ISCSI_NL_GRP_ISCSID",
    "ISCSI_NL_GRP_UIP",
    "NETLINK_ISCSI",
    "NLMSG_HDRLEN",
    "STATS_CUSTOM_MAX",
    "UEVENT_SIZE",
    "Capability",
    "ChapType",
    "ConnError",
    "ConnState",
    "DiscoveryParentType",
    "HostEventCode",
    "IfaceType",
    "NlmsgType",
    "ParamType",
    "PingStatus",
    "PortSpeed",
    "PortState",
    "StopConnFlag",
    "TgtDscvrType",
    "UEvent",
]

#: The netlink protocol number of ``socket(AF_NETLINK, SOCK_RAW, NETLINK_ISCSI)``.
NETLINK_ISCSI: Final = 8
#: Multicast group iscsid binds to for async kernel events.
ISCSI_NL_GRP_ISCSID: Final = 1
#: Multicast group of iscsiuio (PATH_REQ, IF_DOWN).
ISCSI_NL_GRP_UIP: Final = 2

#: ``sizeof(struct nlmsghdr)``.
NLMSG_HDRLEN: Final = 16
#: ``sizeof(struct iscsi_uevent)`` (8-byte aligned); kernels drop shorter messages.
UEVENT_SIZE: Final = 56
#: ``ISCSI_STATS_CUSTOM_MAX`` and ``ISCSI_HOST_STATS_CUSTOM_MAX``.
STATS_CUSTOM_MAX: Final = 32
#: ``sizeof(struct iscsi_stats_custom)``: ``char desc[64]; u64 value``.
CUSTOM_STAT_SIZE: Final = 72


class NlmsgType(IntEnum):
    """The generic netlink control types (``linux/netlink.h``)."""

    NOOP = 1
    ERROR = 2
    DONE = 3
    OVERRUN = 4


class UEvent(IntEnum):
    """``enum iscsi_uevent_e``: requests (10 + n, user to kernel) and events (100 + n)."""

    UNKNOWN = 0
    # down: requests
    CREATE_SESSION = 11
    DESTROY_SESSION = 12
    CREATE_CONN = 13
    DESTROY_CONN = 14
    BIND_CONN = 15
    SET_PARAM = 16
    START_CONN = 17
    STOP_CONN = 18
    SEND_PDU = 19
    GET_STATS = 20
    GET_PARAM = 21  # declared, never implemented by the kernel
    TRANSPORT_EP_CONNECT = 22
    TRANSPORT_EP_POLL = 23
    TRANSPORT_EP_DISCONNECT = 24
    TGT_DSCVR = 25
    SET_HOST_PARAM = 26
    UNBIND_SESSION = 27
    CREATE_BOUND_SESSION = 28
    TRANSPORT_EP_CONNECT_THROUGH_HOST = 29
    PATH_UPDATE = 30
    SET_IFACE_PARAMS = 31
    PING = 32
    GET_CHAP = 33
    DELETE_CHAP = 34
    SET_FLASHNODE_PARAMS = 35
    NEW_FLASHNODE = 36
    DEL_FLASHNODE = 37
    LOGIN_FLASHNODE = 38
    LOGOUT_FLASHNODE = 39
    LOGOUT_FLASHNODE_SID = 40
    SET_CHAP = 41
    GET_HOST_STATS = 42
    DESTROY_SESSION_ASYNC = 43
    # up: kernel events and the error reply
    KEVENT_RECV_PDU = 101
    KEVENT_CONN_ERROR = 102
    KEVENT_IF_ERROR = 103
    KEVENT_DESTROY_SESSION = 104
    KEVENT_UNBIND_SESSION = 105
    KEVENT_CREATE_SESSION = 106
    KEVENT_PATH_REQ = 107
    KEVENT_IF_DOWN = 108
    KEVENT_CONN_LOGIN_STATE = 109
    KEVENT_HOST_EVENT = 110
    KEVENT_PING_COMP = 111


class StopConnFlag(IntEnum):
    """Why STOP_CONN is sent (``STOP_CONN_*``)."""

    TERM = 1
    SUSPEND = 2
    RECOVER = 3


class ConnError(IntEnum):
    """``enum iscsi_err``: the ``error`` of a CONN_ERROR event ("conn error (1020)")."""

    OK = 0
    DATASN = 1001
    DATA_OFFSET = 1002
    MAX_CMDSN = 1003
    EXP_CMDSN = 1004
    BAD_OPCODE = 1005
    DATALEN = 1006
    AHSLEN = 1007
    PROTO = 1008
    LUN = 1009
    BAD_ITT = 1010
    CONN_FAILED = 1011
    R2TSN = 1012
    SESSION_FAILED = 1013
    HDR_DGST = 1014
    DATA_DGST = 1015
    PARAM_NOT_FOUND = 1016
    NO_SCSI_CMD = 1017
    INVALID_HOST = 1018  # iscsid shuts the session down; every other error recovers
    XMIT_FAILED = 1019
    TCP_CONN_CLOSE = 1020
    SCSI_EH_SESSION_RST = 1021
    NOP_TIMEDOUT = 1022


class ConnState(IntEnum):
    """``enum iscsi_conn_state``: the ``state`` of a CONN_LOGIN_STATE event."""

    FREE = 0
    XPT_WAIT = 1
    IN_LOGIN = 2
    LOGGED_IN = 3
    IN_LOGOUT = 4
    LOGOUT_REQUESTED = 5
    CLEANUP_WAIT = 6


class TgtDscvrType(IntEnum):
    """``enum iscsi_tgt_dscvr``: the discovery an offload HBA runs (TGT_DSCVR)."""

    SEND_TARGETS = 1
    ISNS = 2
    SLP = 3


class HostEventCode(IntEnum):
    """``enum iscsi_host_event_code``: the ``code`` of a HOST_EVENT event."""

    LINKUP = 1
    LINKDOWN = 2


class ParamType(IntEnum):
    """``enum iscsi_param_type``: which enum an iface attribute's ``param`` is from."""

    PARAM = 0
    HOST_PARAM = 1
    NET_PARAM = 2
    FLASHNODE_PARAM = 3
    CHAP_PARAM = 4
    IFACE_PARAM = 5


class IfaceType(IntEnum):
    """``enum iscsi_iface_type``."""

    IPV4 = 1
    IPV6 = 2


class ChapType(IntEnum):
    """``enum chap_type_e``: a CHAP table entry's direction."""

    OUT = 0
    IN = 1


class PingStatus(IntEnum):
    """``enum iscsi_ping_status_code``: the ``status`` of a PING_COMP event."""

    SUCCESS = 0
    FW_DISABLED = 1
    IPADDR_INVALID = 2
    LINKLOCAL_IPV6_ADDR_INVALID = 3
    TIMEOUT = 4
    INVALID_DEST_ADDR = 5
    OVERSIZE_PACKET = 6
    ICMP_ERROR = 7
    MAX_REQ_EXCEEDED = 8
    NO_ARP_RECEIVED = 9


class PortSpeed(IntFlag):
    """``enum iscsi_port_speed`` (sysfs ``port_speed``)."""

    UNKNOWN = 0x1
    SPEED_10MBPS = 0x2
    SPEED_100MBPS = 0x4
    SPEED_1GBPS = 0x8
    SPEED_10GBPS = 0x10
    SPEED_25GBPS = 0x20
    SPEED_40GBPS = 0x40


class PortState(IntEnum):
    """``enum iscsi_port_state`` (sysfs ``port_state``)."""

    DOWN = 1
    UP = 2


class DiscoveryParentType(IntEnum):
    """``enum iscsi_discovery_parent_type``."""

    UNKNOWN = 1
    SENDTGT = 2
    ISNS = 3


class Capability(IntFlag):
    """The ``CAP_*`` bits of a transport's sysfs ``caps`` (iscsi_tcp reports 0x39)."""

    RECOVERY_L0 = 0x1
    RECOVERY_L1 = 0x2
    RECOVERY_L2 = 0x4
    MULTI_R2T = 0x8
    HDRDGST = 0x10
    DATADGST = 0x20
    MULTI_CONN = 0x40
    TEXT_NEGO = 0x80
    MARKERS = 0x100
    FW_DB = 0x200
    SENDTARGETS_OFFLOAD = 0x400
    DATA_PATH_OFFLOAD = 0x800
    DIGEST_OFFLOAD = 0x1000
    PADDING_OFFLOAD = 0x2000
    LOGIN_OFFLOAD = 0x4000
