"""One offload host's operations over NETLINK_ISCSI, as iscsiadm performs them.

:class:`OffloadHost` is SCSI host ``host_no`` of an offload transport (its kernel
``transport_handle``), with a channel factory: each operation opens a channel, sends
its request(s) and closes it, as iscsiadm's ``ctldev_open`` / ``ctldev_close`` do
(usr/iscsiadm.c).  A refusal by the kernel raises
:class:`~iscsikit.netlink.NetlinkRequestError` (``not_supported`` for -ENOSYS); the CLI
maps it to iscsiadm's message and exit code.
"""

from __future__ import annotations

import itertools
import os
import sys
import time
from collections.abc import Iterable, Sequence

from iscsikit.errors import IscsiErr, IscsiError, NotSupportedError, TransportTimeoutError
from iscsikit.netlink.constants import IfaceType
from iscsikit.netlink.events import (
    ChapReceived,
    FlashnodeCreated,
    HostStatsReceived,
    PingCompleted,
)
from iscsikit.netlink.messages import (
    DeleteChap,
    DelFlashnode,
    GetChap,
    GetHostStats,
    LoginFlashnode,
    LogoutFlashnode,
    NewFlashnode,
    Ping,
    SetChap,
    SetFlashnodeParams,
    SetIfaceParams,
)
from iscsikit.netlink.params import ChapParam
from iscsikit.netlink.wire import ChapRecord, ParamAttr
from iscsikit.plugin.transport import OffloadHostOps

from .channel import ChannelFactory, default_channel
from .connector import iscsiuio_running
from .flashcfg import flashnode_attrs

__all__ = ["CHAP_PAGE", "OffloadHost"]

#: Entries per GET_CHAP: iscsiadm's ``MAX_CHAP_BUF_SZ / sizeof(struct iscsi_chap_rec)``
#: (64 KiB / 524).
CHAP_PAGE = 65536 // ChapRecord.SIZE
_pids = itertools.count(1)


class OffloadHost(OffloadHostOps):
    """SCSI host ``host_no`` of the transport whose kernel handle is ``handle``
    (implements :class:`~iscsikit.plugin.transport.OffloadHostOps`)."""

    def __init__(
        self,
        host_no: int,
        handle: int,
        channel_factory: ChannelFactory = default_channel,
        *,
        via_iscsiuio: bool = False,
    ) -> None:
        self.host_no = host_no
        self.handle = handle
        self.channel_factory = channel_factory
        #: bnx2i, qedi: iscsiadm pings through iscsiuio, not the kernel (no send_ping).
        self.via_iscsiuio = via_iscsiuio

    def set_iface_params(self, attrs: Iterable[ParamAttr]) -> None:
        """SET_IFACE_PARAMS with ``attrs`` (``-m iface -o apply``)."""
        msg = SetIfaceParams(transport_handle=self.handle, host_no=self.host_no, attrs=tuple(attrs))
        with self.channel_factory() as channel:
            channel.request(msg)

    def ping(
        self,
        address: str,
        *,
        iface_num: int = 0,
        iface_type: int = IfaceType.IPV4,
        size: int = 32,
        timeout: float = 30.0,
    ) -> int:
        """PING and the PING_COMP that answers it: its ``status`` (0: the ping came back).

        The pid that matches the two is this process's id plus a counter (iscsiadm
        uses ``rand()``).  A host whose driver pings through iscsiuio (bnx2i, qedi:
        their ``iscsi_transport`` has no ``send_ping``; open-iscsi's transport template
        has ``exec_ping = uip_broadcast_ping_req``) is not sent a PING: without
        iscsiuio this fails as iscsiadm's ``uip_broadcast`` does (ISCSID_NOTCONN, 20);
        with it, iscsiuio's ping protocol is not implemented (OP_NOT_SUPP)."""
        if self.via_iscsiuio:
            if not iscsiuio_running():
                raise IscsiError(
                    "can not connect to iSCSI daemon (111)!", code=IscsiErr.ISCSID_NOTCONN
                )
            raise NotSupportedError("pinging through iscsiuio is not implemented")
        pid = (os.getpid() << 8 | next(_pids) & 0xFF) & 0xFFFFFFFF
        msg = Ping(
            transport_handle=self.handle, host_no=self.host_no, iface_num=iface_num,
            iface_type=iface_type, payload_size=size, pid=pid, address=(address, 0),
        )  # fmt: skip
        deadline = time.monotonic() + timeout
        with self.channel_factory(events=True) as channel:
            channel.request(msg)
            event = channel.wait_event(
                lambda e: isinstance(e, PingCompleted) and e.pid == pid,
                max(0.0, deadline - time.monotonic()),
            )
        if not isinstance(event, PingCompleted):
            raise TransportTimeoutError(f"no PING_COMP from host {self.host_no} for {address}")
        return event.status

    def chap_entries(self) -> list[ChapRecord]:
        """Every CHAP table entry, read in pages as iscsiadm's ``get_host_chap_info``:
        the next page starts after the last index returned, until a page is short."""
        out: list[ChapRecord] = []
        index = 0
        with self.channel_factory() as channel:
            while True:
                reply = channel.request(
                    GetChap(
                        transport_handle=self.handle, host_no=self.host_no,
                        num_entries=CHAP_PAGE, chap_tbl_idx=index,
                    )
                )  # fmt: skip
                assert isinstance(reply, ChapReceived)
                out += reply.records
                if reply.num_entries != CHAP_PAGE or not reply.records:
                    return out
                index = reply.records[-1].chap_tbl_idx + 1

    def set_chap(self, index: int, chap_type: int, username: str, password: str) -> None:
        """SET_CHAP: add or replace entry ``index`` (``-m host -C chap -o update``)."""
        secret = password.encode()
        attrs = (
            ParamAttr(ChapParam.INDEX, index.to_bytes(2, sys.byteorder)),
            ParamAttr(ChapParam.CHAP_TYPE, bytes([chap_type])),
            ParamAttr(ChapParam.USERNAME, username.encode() + b"\0"),
            ParamAttr(ChapParam.PASSWORD, secret + b"\0"),
            ParamAttr(ChapParam.PASSWORD_LEN, bytes([len(secret) & 0xFF])),
        )
        with self.channel_factory() as channel:
            channel.request(
                SetChap(transport_handle=self.handle, host_no=self.host_no, attrs=attrs)
            )

    def delete_chap(self, index: int) -> None:
        """DELETE_CHAP of entry ``index``."""
        msg = DeleteChap(transport_handle=self.handle, host_no=self.host_no, chap_tbl_idx=index)
        with self.channel_factory() as channel:
            channel.request(msg)

    def host_stats(self) -> dict[str, int]:
        """GET_HOST_STATS: the ``struct iscsi_offload_host_stats`` counters by name."""
        with self.channel_factory() as channel:
            reply = channel.request(
                GetHostStats(transport_handle=self.handle, host_no=self.host_no)
            )
        assert isinstance(reply, HostStatsReceived)
        return dict(reply.counters)

    def new_flashnode(self, portal_type: str = "ipv4") -> int:
        """NEW_FLASHNODE: the index of the new flash node."""
        msg = NewFlashnode(
            transport_handle=self.handle, host_no=self.host_no, portal_type=portal_type
        )
        with self.channel_factory() as channel:
            reply = channel.request(msg)
        assert isinstance(reply, FlashnodeCreated)
        return reply.flashnode_idx

    def flashnode(self, op: str, index: int) -> None:
        """``delete``, ``login`` or ``logout`` of flash node ``index``."""
        cls = {"delete": DelFlashnode, "login": LoginFlashnode, "logout": LogoutFlashnode}[op]
        msg = cls(transport_handle=self.handle, host_no=self.host_no, flashnode_idx=index)
        with self.channel_factory() as channel:
            channel.request(msg)

    def update_flashnode(
        self, index: int, params: Sequence[tuple[str, str]], portal_type: str
    ) -> None:
        """SET_FLASHNODE_PARAMS of flash node ``index``, built as iscsiadm builds it
        (:mod:`.flashcfg`: its errors are raised before anything is sent)."""
        attrs = flashnode_attrs(params, portal_type)
        msg = SetFlashnodeParams(
            transport_handle=self.handle, host_no=self.host_no, flashnode_idx=index, attrs=attrs
        )
        with self.channel_factory() as channel:
            channel.request(msg)
