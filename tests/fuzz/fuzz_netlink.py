"""Fuzz harness: NETLINK_ISCSI replies and events as the kernel driver decodes them
(:mod:`iscsikit.netlink`, used by drivers/kerneltcp's netlink channel).

Input: ``flags, datagram``.  With ``flags & 1`` the harness writes the datagram's length
into the first message's ``nlmsg_len`` (a random length is almost never right).  The
datagram goes to a :class:`~iscsikit.netlink.decoder.NetlinkDecoder`, whose messages are
drained; with ``flags & 2`` it is also read as a request
(:func:`~iscsikit.netlink.messages.decode_request`, what the fake kernels parse).
Allowed, as documented: ``NetlinkDecodeError``.  Anything else is a finding.
"""

from __future__ import annotations

import contextlib
import struct

import fuzzlib

with fuzzlib.instrument():
    from iscsikit.netlink import NetlinkDecodeError, NetlinkDecoder, decode_request


def TestOneInput(data: bytes) -> None:
    if not data:
        return
    flags, datagram = data[0], data[1:]
    if flags & 1 and len(datagram) >= 4:
        datagram = struct.pack("=I", len(datagram)) + datagram[4:]
    decoder = NetlinkDecoder()
    with contextlib.suppress(NetlinkDecodeError):
        decoder.receive_data(datagram)
    for message in decoder:
        repr(message)
    if flags & 2:
        with contextlib.suppress(NetlinkDecodeError):
            repr(decode_request(datagram))


if __name__ == "__main__":
    fuzzlib.main(TestOneInput)
