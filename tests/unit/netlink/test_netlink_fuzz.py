"""Fuzzing the NETLINK_ISCSI decoders: whatever the bytes, they return or raise
:class:`NetlinkDecodeError`, never anything else, and never hang.

Inputs are random datagrams, and valid kernel streams (every golden message) with bytes
flipped, cut or inserted, with lengths rewritten - the shapes a confused socket gives.
"""

from __future__ import annotations

import contextlib
import struct

from hypothesis import given, settings
from hypothesis import strategies as st
from test_netlink_events import CASES as EVENT_CASES
from test_netlink_requests import CASES as REQUEST_CASES

from iscsikit.netlink.decoder import NetlinkDecoder, decode_datagram
from iscsikit.netlink.errors import NetlinkDecodeError
from iscsikit.netlink.messages import decode_request

EVENT_BYTES = [raw for _, raw in EVENT_CASES]
REQUEST_BYTES = [raw for _, raw in REQUEST_CASES]


@st.composite
def mangled(draw: st.DrawFn, pool: list[bytes]) -> bytes:
    """A stream of valid messages from *pool*, then damaged in a few random ways."""
    data = bytearray(b"".join(draw(st.lists(st.sampled_from(pool), min_size=1, max_size=4))))
    for _ in range(draw(st.integers(0, 4))):
        action = draw(st.sampled_from(["flip", "cut", "insert", "length", "type"]))
        pos = draw(st.integers(0, max(len(data) - 1, 0)))
        if action == "flip" and data:
            data[pos] ^= draw(st.integers(1, 255))
        elif action == "cut":
            del data[pos : pos + draw(st.integers(1, 80))]
        elif action == "insert":
            data[pos:pos] = draw(st.binary(min_size=1, max_size=16))
        elif action == "length" and len(data) >= 4:
            struct.pack_into("=I", data, 0, draw(st.integers(0, 2**32 - 1)))
        elif action == "type" and len(data) >= 20:
            # the uevent type: reach every decoder, including the payload-bearing ones
            struct.pack_into("=I", data, 16, draw(st.integers(0, 120)))
    return bytes(data)


def _decode(data: bytes) -> None:
    decoder = NetlinkDecoder()
    try:
        decoder.receive_data(data)
    except NetlinkDecodeError:
        assert decoder.next_event() is None
        return
    list(decoder)


@settings(max_examples=400, deadline=1000)
@given(st.binary(max_size=2048))
def test_random_bytes(data: bytes) -> None:
    _decode(data)


@settings(max_examples=600, deadline=1000)
@given(mangled(EVENT_BYTES))
def test_mangled_kernel_streams(data: bytes) -> None:
    _decode(data)


@settings(max_examples=400, deadline=1000)
@given(mangled(REQUEST_BYTES))
def test_mangled_requests(data: bytes) -> None:
    # decode_request takes one message; decode_datagram sees requests as unknown/replies.
    for decode in (decode_request, decode_datagram):
        with contextlib.suppress(NetlinkDecodeError):
            decode(data)
