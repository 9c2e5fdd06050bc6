"""The receive side: netlink datagrams in, typed messages out (sans-I/O).

A NETLINK_ISCSI ``recv()`` returns one datagram holding one or more messages, each a
``struct nlmsghdr`` followed by its body and padded to 4 bytes (``NLMSG_ALIGN``).
:class:`NetlinkDecoder` takes such datagrams (:meth:`~NetlinkDecoder.receive_data`) and
hands out, in order, the :mod:`~iscsikit.netlink.events` messages they carry
(:meth:`~NetlinkDecoder.next_event`): replies, IF_ERROR replies
(:class:`~iscsikit.netlink.events.RequestFailed`) and async events interleaved as the
kernel sent them.  The caller matches replies to its pending request.

Malformed input raises :class:`~iscsikit.netlink.errors.NetlinkDecodeError` and nothing
else; a datagram that fails is dropped whole (nothing of it is queued).  Messages of a
type this codec does not know are skipped (iscsid logs and ignores them too), and so are
the netlink control messages NOOP and DONE; an NLMSG_ERROR becomes
:class:`NetlinkErrorReceived`.
"""

from __future__ import annotations

import dataclasses
from collections import deque
from collections.abc import Iterator
from struct import Struct
from typing import Final

from iscsikit.netlink.constants import NLMSG_HDRLEN, NlmsgType
from iscsikit.netlink.errors import NetlinkDecodeError
from iscsikit.netlink.events import KernelMessage, decode_uevent
from iscsikit.netlink.wire import NLMSG_HEADER, Buffer, nlmsg_align

__all__ = ["NetlinkDecoder", "NetlinkErrorReceived", "decode_datagram"]

_NLMSGERR: Final = Struct("=i")


@dataclasses.dataclass(frozen=True, slots=True)
class NetlinkErrorReceived:
    """An NLMSG_ERROR message: ``error`` is 0 (an ack) or a negative errno."""

    error: int
    seq: int


Message = KernelMessage | NetlinkErrorReceived


def decode_datagram(data: Buffer) -> list[Message]:
    """Every message of one received datagram, in order (see the module docstring)."""
    view = bytes(data)
    out: list[Message] = []
    pos = 0
    while pos < len(view):
        if len(view) - pos < NLMSG_HDRLEN:
            raise NetlinkDecodeError(f"{len(view) - pos} bytes after the last message", offset=pos)
        length, msg_type, _flags, seq, _pid = NLMSG_HEADER.unpack_from(view, pos)
        if length < NLMSG_HDRLEN or length > len(view) - pos:
            raise NetlinkDecodeError(
                f"nlmsg_len {length} with {len(view) - pos} bytes left", offset=pos
            )
        body = view[pos + NLMSG_HDRLEN : pos + length]
        try:
            message = _decode_one(msg_type, seq, body)
        except NetlinkDecodeError as exc:
            raise NetlinkDecodeError(f"message at {pos}: {exc}", offset=pos) from exc
        if message is not None:
            out.append(message)
        pos += nlmsg_align(length)
    return out


def _decode_one(msg_type: int, seq: int, body: bytes) -> Message | None:
    if msg_type in (NlmsgType.NOOP, NlmsgType.DONE, NlmsgType.OVERRUN):
        return None
    if msg_type == NlmsgType.ERROR:
        if len(body) < _NLMSGERR.size:
            raise NetlinkDecodeError(f"NLMSG_ERROR of {len(body)} bytes")
        return NetlinkErrorReceived(_NLMSGERR.unpack_from(body, 0)[0], seq)
    return decode_uevent(msg_type, body)


class NetlinkDecoder:
    """Datagrams in (:meth:`receive_data`), messages out (:meth:`next_event`)."""

    def __init__(self) -> None:
        self._pending: deque[Message] = deque()

    def receive_data(self, data: Buffer) -> None:
        """Queue the messages of one received datagram.

        Raises :class:`NetlinkDecodeError` (and queues nothing of it) when malformed.
        """
        self._pending.extend(decode_datagram(data))

    def next_event(self) -> Message | None:
        """The oldest queued message, or ``None`` when there is none."""
        return self._pending.popleft() if self._pending else None

    def __iter__(self) -> Iterator[Message]:
        """Drain the queued messages."""
        while self._pending:
            yield self._pending.popleft()

    def __len__(self) -> int:
        return len(self._pending)
