"""Hypothesis: whatever bytes arrive, in whatever pieces, the IPC decoders hand out events or
raise IpcProtocolError (and only once stopped) -- never anything else -- and every event they
hand out has the documented shape."""

from __future__ import annotations

import json
import struct
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from iscsikit.ipc.errors import IpcProtocolError
from iscsikit.ipc.protocol import (
    MessageDecoder,
    MessageRejected,
    ReplyDecoder,
    ReplyReceived,
    RequestDecoder,
    RequestReceived,
)

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=6), children, max_size=4)
    ),
    max_leaves=20,
)
FIELD = st.sampled_from(
    ["v", "id", "op", "args", "ok", "result", "error", "code", "message", "kind"]
)
OBJECTS = st.dictionaries(FIELD, JSON | st.sampled_from([1, 0, 2, "ping", {}]), max_size=7)
BODIES = st.one_of(
    st.binary(max_size=64),
    OBJECTS.map(lambda o: json.dumps(o).encode()),
    JSON.map(lambda o: json.dumps(o).encode()),
)
FRAMES = st.one_of(
    BODIES.map(lambda b: struct.pack(">I", len(b)) + b),
    st.builds(
        lambda n, b: struct.pack(">I", n) + b, st.integers(0, 2**32 - 1), st.binary(max_size=16)
    ),
)
STREAMS = st.lists(FRAMES, max_size=6).map(b"".join)


def drive(decoder: MessageDecoder, stream: bytes, cuts: list[int]) -> list[Any]:
    events: list[Any] = []
    pieces, start = [], 0
    for cut in sorted(c % (len(stream) + 1) for c in cuts):
        pieces.append(stream[start:cut])
        start = cut
    pieces.append(stream[start:])
    for piece in pieces:
        try:
            events += decoder.feed(piece)
        except IpcProtocolError:
            assert decoder.stopped
            break
    end = decoder.end_of_stream()
    if end is not None:
        events.append(end)
    return events


@settings(max_examples=400, deadline=None)
@given(STREAMS, st.lists(st.integers(0, 1 << 16), max_size=5), st.integers(1, 4))
def test_request_decoder(stream: bytes, cuts: list[int], budget: int) -> None:
    events = drive(RequestDecoder(max_requests=budget, max_message=256), stream, cuts)
    assert sum(isinstance(e, RequestReceived) for e in events) <= budget
    for event in events:
        if isinstance(event, RequestReceived):
            assert type(event.id) is int and event.id >= 0
            assert isinstance(event.op, str) and event.op
            assert isinstance(event.args, dict)
        else:
            assert isinstance(event, MessageRejected)
            assert isinstance(event.error, IpcProtocolError)
    assert all(not e.fatal for e in events[:-1] if isinstance(e, MessageRejected))


@settings(max_examples=400, deadline=None)
@given(STREAMS, st.lists(st.integers(0, 1 << 16), max_size=5))
def test_reply_decoder(stream: bytes, cuts: list[int]) -> None:
    for event in drive(ReplyDecoder(max_message=256), stream, cuts):
        if isinstance(event, ReplyReceived):
            if event.ok:
                assert type(event.id) is int
            else:
                assert event.error is not None
                exc = event.error.to_exception()  # rebuilding never fails either
                assert isinstance(exc, Exception)
        else:
            assert isinstance(event, MessageRejected)


@settings(max_examples=200, deadline=None)
@given(OBJECTS, st.integers(1, 5))
def test_split_never_changes_the_outcome(obj: dict[str, Any], parts: int) -> None:
    body = json.dumps(obj).encode()
    stream = struct.pack(">I", len(body)) + body
    whole = RequestDecoder().feed(stream)
    decoder = RequestDecoder()
    step = max(1, len(stream) // parts)
    split = [e for i in range(0, len(stream), step) for e in decoder.feed(stream[i : i + step])]
    assert [(type(e), e.id) for e in whole] == [(type(e), e.id) for e in split]
