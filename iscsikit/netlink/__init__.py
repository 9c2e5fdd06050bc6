"""NETLINK_ISCSI, the kernel's iSCSI control interface, as a sans-I/O codec.

Requests iscsid sends (:mod:`.messages`), replies and async events the kernel sends
(:mod:`.events`), the receive side that splits datagrams (:mod:`.decoder`), the wire
structs (:mod:`.wire`) and the ABI numbers (:mod:`.constants`, :mod:`.params`).  Layer 1,
beside :mod:`iscsikit.proto`: no sockets, no I/O, no clock, no process state (the
netlink pid is passed in).  docs/netlink.md describes it.
"""

from __future__ import annotations

from iscsikit.netlink.constants import NETLINK_ISCSI, ConnError, StopConnFlag, UEvent
from iscsikit.netlink.decoder import NetlinkDecoder, NetlinkErrorReceived, decode_datagram
from iscsikit.netlink.errors import NetlinkDecodeError, NetlinkRequestError
from iscsikit.netlink.events import KernelEvent, KernelMessage, Reply, RequestFailed
from iscsikit.netlink.messages import REQUESTS, Request, decode_request
from iscsikit.netlink.params import HostParam, IscsiParam

__all__ = [
    "NETLINK_ISCSI",
    "REQUESTS",
    "ConnError",
    "HostParam",
    "IscsiParam",
    "KernelEvent",
    "KernelMessage",
    "NetlinkDecodeError",
    "NetlinkDecoder",
    "NetlinkErrorReceived",
    "NetlinkRequestError",
    "Reply",
    "Request",
    "RequestFailed",
    "StopConnFlag",
    "UEvent",
    "decode_datagram",
    "decode_request",
]
