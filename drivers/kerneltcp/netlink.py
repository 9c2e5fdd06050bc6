"""The NETLINK_ISCSI socket: one request at a time, async events routed aside.

iscsid sends a request and reads until the reply of the same type arrives; events the
kernel multicasts meanwhile (CONN_ERROR, RECV_PDU, UNBIND_SESSION...) are dispatched
first (it peeks with ``MSG_PEEK``).  Here every datagram is decoded by
:class:`~iscsikit.netlink.NetlinkDecoder` and routed: the awaited reply is returned (an
IF_ERROR reply raised as :class:`~iscsikit.netlink.NetlinkRequestError`), events go to
a queue that :meth:`NetlinkChannel.next_event` drains, and to ``on_event`` if given.
Every wait is bounded.
"""

from __future__ import annotations

import errno
import os
import socket
import time
from collections import deque
from collections.abc import Callable

from iscsikit.errors import TransportTimeoutError
from iscsikit.netlink import (
    NETLINK_ISCSI,
    KernelEvent,
    KernelMessage,
    NetlinkDecoder,
    NetlinkErrorReceived,
    NetlinkRequestError,
    Reply,
    Request,
    RequestFailed,
)
from iscsikit.netlink.constants import ISCSI_NL_GRP_ISCSID

__all__ = ["NetlinkChannel"]

#: Events kept for :meth:`NetlinkChannel.next_event`; older ones are dropped.
_MAX_QUEUED_EVENTS = 1024
#: Large enough for GET_STATS with 32 custom counters, and for a RECV_PDU.
_RECV_SIZE = 256 * 1024


class NetlinkChannel:
    """A NETLINK_ISCSI socket bound as iscsid binds it (``nl_pid`` = pid, group 1).

    ``events=False`` leaves the events group out: the socket then only gets the replies
    to its own requests (a session's request channel, while one
    :class:`~.events.KernelEvents` reader takes the events).

    ``sock`` replaces the netlink socket (tests pass one end of a datagram socketpair
    and play the kernel on the other); it must be connected to its peer.  When the
    process's pid is already bound (a second channel in one process), the kernel picks
    the port id: replies go to the sender's port, so nothing else changes.
    """

    def __init__(
        self,
        sock: socket.socket | None = None,
        *,
        on_event: Callable[[KernelEvent], None] | None = None,
        events: bool = True,
    ) -> None:
        if sock is None:
            sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_ISCSI)
            groups = ISCSI_NL_GRP_ISCSID if events else 0
            try:
                try:
                    sock.bind((os.getpid(), groups))
                except OSError as exc:
                    if exc.errno != errno.EADDRINUSE:
                        raise
                    sock.bind((0, groups))
                sock.connect((0, 0))  # the kernel
            except BaseException:
                sock.close()
                raise
            self.pid = int(sock.getsockname()[0])
        else:
            self.pid = os.getpid()
        self.sock = sock
        self.on_event = on_event
        self._decoder = NetlinkDecoder()
        self._events: deque[KernelEvent] = deque(maxlen=_MAX_QUEUED_EVENTS)
        self._pending: deque[KernelMessage | NetlinkErrorReceived] = deque()
        self._seq = 0

    # -- requests --------------------------------------------------------------------------

    def request(self, msg: Request, timeout: float = 10.0) -> Reply:
        """Send ``msg`` and return the kernel's reply of the same type.

        Raises :class:`NetlinkRequestError` for IF_ERROR (or an NLMSG_ERROR) and
        :class:`TransportTimeoutError` when no reply comes within ``timeout`` seconds.
        """
        self._seq = (self._seq + 1) & 0xFFFFFFFF
        self.sock.send(msg.encode(pid=self.pid, seq=self._seq))
        deadline = time.monotonic() + timeout
        while True:
            for item in self._decoder:
                if isinstance(item, KernelEvent):
                    self._route(item)
                elif isinstance(item, RequestFailed) and item.request_type == msg.TYPE:
                    raise item.exception()
                elif isinstance(item, Reply) and item.request_type == msg.TYPE:
                    return item
                elif isinstance(item, NetlinkErrorReceived) and item.error != 0:
                    raise NetlinkRequestError(msg.TYPE, -item.error)
                # Anything else (a late reply to a request that timed out, an ack): dropped.
            self._receive(deadline, f"the kernel's reply to {msg.TYPE.name}")

    # -- events ----------------------------------------------------------------------------

    def next_event(self, timeout: float = 0.0) -> KernelEvent | None:
        """The oldest async event, waiting up to ``timeout`` seconds; ``None`` if none."""
        deadline = time.monotonic() + timeout
        while True:
            for item in self._decoder:
                if isinstance(item, KernelEvent):
                    self._route(item)
            if self._events:
                return self._events.popleft()
            try:
                self._receive(deadline, "a kernel event")
            except TransportTimeoutError:
                return None

    def next_message(self, timeout: float) -> KernelMessage | NetlinkErrorReceived | None:
        """The next decoded message of any kind (a reader thread's loop), or None when
        none comes within ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while True:
            if self._pending:
                return self._pending.popleft()
            self._pending.extend(self._decoder)
            if self._pending:
                continue
            try:
                self._receive(deadline, "a kernel message")
            except TransportTimeoutError:
                return None

    def wait_event(
        self, match: Callable[[KernelEvent], bool], timeout: float
    ) -> KernelEvent | None:
        """The first event ``match`` accepts within ``timeout``; the others stay queued."""
        deadline = time.monotonic() + timeout
        skipped: list[KernelEvent] = []
        try:
            while True:
                event = self.next_event(max(0.0, deadline - time.monotonic()))
                if event is None:
                    return None
                if match(event):
                    return event
                skipped.append(event)
        finally:
            self._events.extendleft(reversed(skipped))

    def _route(self, event: KernelEvent) -> None:
        self._events.append(event)
        if self.on_event is not None:
            self.on_event(event)

    # -- I/O -------------------------------------------------------------------------------

    def _receive(self, deadline: float, what: str) -> None:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TransportTimeoutError(f"timed out waiting for {what}")
        self.sock.settimeout(remaining)
        try:
            data = self.sock.recv(_RECV_SIZE)
        except TimeoutError:
            raise TransportTimeoutError(f"timed out waiting for {what}") from None
        except OSError as exc:
            if exc.errno != errno.ENOBUFS:
                raise
            # Multicast events overran the buffer and some were dropped: what is queued
            # after the overrun is still good, so read on.
            return
        if not data:
            # A netlink socket never reads empty; a connected stand-in for the kernel
            # (a simulator's SOCK_SEQPACKET) does once its end is closed, and would read
            # empty forever: the channel is gone.
            raise ConnectionResetError(errno.ECONNRESET, f"the kernel's end closed ({what})")
        self._decoder.receive_data(data)

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> NetlinkChannel:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
