"""Hypothesis: whatever a client sends, the NBD server protocol answers with events, queued
bytes or ``RemoteProtocolError`` — never any other exception — and it can answer every
request it hands out."""

from __future__ import annotations

import struct

from hypothesis import given, settings
from hypothesis import strategies as st

from iscsikit.errors import RemoteProtocolError
from iscsikit.nbd.events import (
    Export,
    FlushRequested,
    ReadRequested,
    TrimRequested,
    WriteRequested,
    WriteZeroesRequested,
)
from iscsikit.nbd.protocol import NbdServerProtocol

EXPORT = Export("disk", 1 << 16, max_block=4096)

OPTIONS = st.builds(
    lambda opt, data: b"IHAVEOPT" + struct.pack(">II", opt, len(data)) + data,
    st.one_of(st.integers(1, 12), st.integers(0, 2**32 - 1)),
    st.one_of(
        st.binary(max_size=16),
        st.builds(
            lambda name, infos: struct.pack(">I", len(name)) + name + struct.pack(">H", len(infos))
            + b"".join(struct.pack(">H", i) for i in infos),
            st.sampled_from([b"", b"disk", b"nope"]),
            st.lists(st.integers(0, 5), max_size=4),
        ),
    ),
)  # fmt: skip
REQUESTS = st.builds(
    lambda flags, cmd, handle, offset, length, payload: (
        b"\x25\x60\x95\x13" + struct.pack(">HHQQI", flags, cmd, handle, offset, length)
        + (bytes(length) if cmd == 1 and length <= 8192 else payload)
    ),
    st.one_of(st.sampled_from([0, 1, 2, 3, 4]), st.integers(0, 0xFFFF)),
    st.one_of(st.integers(0, 8), st.integers(0, 0xFFFF)),
    st.integers(0, 7),
    st.one_of(st.integers(0, 1 << 17), st.integers(0, 2**64 - 1)),
    st.one_of(st.integers(0, 8192), st.integers(0, 2**32 - 1)),
    st.binary(max_size=8),
)  # fmt: skip
HANDSHAKE = st.sampled_from(
    [
        b"",
        b"\x00\x00\x00\x03",
        b"\x00\x00\x00\x01" + b"IHAVEOPT" + struct.pack(">II", 8, 0),
        b"\x00\x00\x00\x03" + b"IHAVEOPT" + struct.pack(">II", 1, 4) + b"disk",
        b"\x00\x00\x00\x03"
        + b"IHAVEOPT" + struct.pack(">II", 8, 0)
        + b"IHAVEOPT" + struct.pack(">II", 7, 10) + b"\x00\x00\x00\x04disk\x00\x00",
    ]
)  # fmt: skip
STREAMS = st.tuples(
    HANDSHAKE,
    st.lists(st.one_of(OPTIONS, REQUESTS, st.binary(max_size=40)), max_size=12),
)


def answer(proto: NbdServerProtocol, event: object) -> None:
    if isinstance(event, ReadRequested):
        proto.reply(event.handle, data=bytes(event.length))
    elif isinstance(event, WriteRequested | FlushRequested | TrimRequested | WriteZeroesRequested):
        proto.reply(event.handle, 5 if event.handle % 2 else 0)


@settings(max_examples=400, deadline=None)
@given(STREAMS, st.integers(1, 64), st.booleans())
def test_any_byte_stream_gives_events_or_remote_protocol_error(
    stream: tuple[bytes, list[bytes]], cut: int, structured: bool
) -> None:
    proto = NbdServerProtocol([EXPORT], structured_replies=structured)
    proto.greeting()
    data = stream[0] + b"".join(stream[1])
    try:
        for i in range(0, len(data), cut):
            proto.receive_data(data[i : i + cut])
            while (event := proto.next_event()) is not None:
                answer(proto, event)
            proto.data_to_send()
    except RemoteProtocolError:
        return
    assert proto.in_flight == 0


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300))
def test_raw_bytes_in_every_phase(noise: bytes) -> None:
    for prefix in (
        b"",
        b"\x00\x00\x00\x03",
        b"\x00\x00\x00\x03IHAVEOPT\x00\x00\x00\x01\x00\x00\x00\x00",
    ):
        proto = NbdServerProtocol([EXPORT])
        try:
            proto.receive_data(prefix + noise)
            while (event := proto.next_event()) is not None:
                answer(proto, event)
        except RemoteProtocolError:
            continue
