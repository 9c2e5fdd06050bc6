"""The IPC decoders and encoders on every kind of input: good, split, malformed, oversized,
too deep, truncated, over budget."""

from __future__ import annotations

import json
import struct
from typing import Any

import pytest

from iscsikit.errors import InternalError, IscsiErr, SessionNotFoundError
from iscsikit.ipc.errors import (
    IpcProtocolError,
    RequestLimitError,
    UnknownOperationError,
    UnsupportedVersionError,
)
from iscsikit.ipc.protocol import (
    MAX_DEPTH,
    MAX_ID,
    MAX_MESSAGE,
    MessageRejected,
    ReplyDecoder,
    ReplyReceived,
    RequestDecoder,
    RequestReceived,
    encode_error,
    encode_exception,
    encode_request,
    encode_result,
)


def frame(body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + body


def frame_json(obj: Any) -> bytes:
    return frame(json.dumps(obj).encode())


def request(**fields: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"v": 1, "id": 7, "op": "session.list", "args": {"sid": 3}}
    base.update(fields)
    return {k: v for k, v in base.items() if v is not ...}


def one(events: list[Any]) -> Any:
    assert len(events) == 1, events
    return events[0]


# -- requests ---------------------------------------------------------------------------


def test_request_round_trip() -> None:
    data = encode_request(5, "node.login", {"target": "iqn.x", "nested": {"a": [1, 2.5, None]}})
    event = one(RequestDecoder().feed(data))
    assert event == RequestReceived(
        5, "node.login", {"target": "iqn.x", "nested": {"a": [1, 2.5, None]}}
    )


def test_wire_format_is_length_then_json() -> None:
    data = encode_request(1, "ping", {})
    (length,) = struct.unpack(">I", data[:4])
    assert length == len(data) - 4
    assert json.loads(data[4:]) == {"v": 1, "id": 1, "op": "ping", "args": {}}


def test_every_split_of_several_messages() -> None:
    stream = b"".join(encode_request(i, "ping", {"n": "é" * i}) for i in range(4))
    for cut in range(len(stream) + 1):
        decoder = RequestDecoder()
        events = decoder.feed(stream[:cut]) + decoder.feed(stream[cut:])
        assert [e.id for e in events] == [0, 1, 2, 3]
        assert all(isinstance(e, RequestReceived) for e in events)
        assert decoder.buffered == 0
        assert decoder.end_of_stream() is None


def test_byte_by_byte() -> None:
    stream = encode_request(1, "a", {"x": 1}) + encode_request(2, "b", {})
    decoder = RequestDecoder()
    events = [e for b in stream for e in decoder.feed(bytes([b]))]
    assert [(e.id, e.op) for e in events] == [(1, "a"), (2, "b")]


def test_missing_args_is_empty() -> None:
    assert one(RequestDecoder().feed(frame_json(request(args=...)))).args == {}


@pytest.mark.parametrize(
    ("body", "why"),
    [
        (b"", "malformed"),
        (b"\xff\xfe{}", "malformed"),
        (b"{", "malformed"),
        (b'{"v": 1, "id": 1, "op": "a", "args": {}} trailing', "malformed"),
        (b'{"v": 1, "id": 1, "op": "a", "args": {"x": NaN}}', "malformed"),
        (b'{"v": 1, "id": 1, "op": "a", "args": {"x": Infinity}}', "malformed"),
        (b"[1, 2]", "not a JSON object"),
        (b'"text"', "not a JSON object"),
        (b"null", "not a JSON object"),
        (b'{"v": 1, "id": 1, "op": "a", "args": {"x": ' + b"9" * 5000 + b"}}", "malformed"),
    ],
)
def test_malformed_body_is_rejected_and_stream_goes_on(body: bytes, why: str) -> None:
    decoder = RequestDecoder()
    events = decoder.feed(frame(body) + encode_request(2, "next", {}))
    assert len(events) == 2
    rejected, good = events
    assert isinstance(rejected, MessageRejected)
    assert not rejected.fatal
    assert why in str(rejected.error)
    assert rejected.error.code == IscsiErr.INVALID_MGMT_REQ
    assert good == RequestReceived(2, "next", {})


@pytest.mark.parametrize(
    ("fields", "error", "has_id"),
    [
        ({"v": ...}, IpcProtocolError, True),
        ({"v": "1"}, IpcProtocolError, True),
        ({"v": True}, IpcProtocolError, True),
        ({"v": 2}, UnsupportedVersionError, True),
        ({"v": 0}, UnsupportedVersionError, True),
        ({"id": ...}, IpcProtocolError, False),
        ({"id": -1}, IpcProtocolError, False),
        ({"id": True}, IpcProtocolError, False),
        ({"id": 1.0}, IpcProtocolError, False),
        ({"id": "7"}, IpcProtocolError, False),
        ({"id": MAX_ID + 1}, IpcProtocolError, False),
        ({"op": ...}, IpcProtocolError, True),
        ({"op": ""}, IpcProtocolError, True),
        ({"op": 3}, IpcProtocolError, True),
        ({"op": "bad op"}, IpcProtocolError, True),
        ({"op": "x" * 65}, IpcProtocolError, True),
        ({"op": "1abc"}, IpcProtocolError, True),
        ({"args": []}, IpcProtocolError, True),
        ({"args": "x"}, IpcProtocolError, True),
        ({"args": None}, IpcProtocolError, True),
    ],
)
def test_bad_request_shape(fields: dict[str, Any], error: type[Exception], has_id: bool) -> None:
    decoder = RequestDecoder()
    event = one(decoder.feed(frame_json(request(**fields))))
    assert isinstance(event, MessageRejected)
    assert type(event.error) is error
    assert event.id == (7 if has_id else None)
    assert not event.fatal
    assert one(decoder.feed(encode_request(8, "ok", {}))).id == 8


def test_version_error_says_what_this_side_speaks() -> None:
    event = one(RequestDecoder().feed(frame_json(request(v=9))))
    assert "version 9" in str(event.error)
    assert "speaks 1" in str(event.error)


def test_unknown_operation_when_ops_are_known() -> None:
    decoder = RequestDecoder(ops=frozenset({"session.list"}))
    assert isinstance(one(decoder.feed(frame_json(request()))), RequestReceived)
    event = one(decoder.feed(frame_json(request(op="session.nope"))))
    assert isinstance(event.error, UnknownOperationError)
    assert event.error.code == IscsiErr.INVALID_MGMT_REQ
    assert event.id == 7


def test_extra_top_level_keys_are_ignored() -> None:
    event = one(RequestDecoder().feed(frame_json(request(future="x"))))
    assert isinstance(event, RequestReceived)


# -- bounds -----------------------------------------------------------------------------


def test_message_of_exactly_max_size_is_accepted() -> None:
    head = b'{"v":1,"id":1,"op":"a","args":{"pad":"'
    tail = b'"}}'
    body = head + b"x" * (MAX_MESSAGE - len(head) - len(tail)) + tail
    assert len(body) == MAX_MESSAGE
    event = one(RequestDecoder().feed(frame(body)))
    assert isinstance(event, RequestReceived)


@pytest.mark.parametrize("length", [MAX_MESSAGE + 1, 0xFFFFFFFF])
def test_oversized_length_is_fatal(length: int) -> None:
    decoder = RequestDecoder()
    events = decoder.feed(encode_request(1, "a", {}) + struct.pack(">I", length) + b"{")
    assert isinstance(events[0], RequestReceived)
    rejected = events[1]
    assert isinstance(rejected, MessageRejected)
    assert rejected.fatal
    assert "exceeds" in str(rejected.error)
    assert decoder.stopped
    assert decoder.end_of_stream() is None
    with pytest.raises(IpcProtocolError):
        decoder.feed(encode_request(2, "a", {}))


def test_smaller_limit() -> None:
    decoder = RequestDecoder(max_message=16)
    assert one(decoder.feed(encode_request(1, "a", {}))).fatal


def nested(depth: int) -> Any:
    value: Any = 0
    for _ in range(depth):
        value = [value]
    return value


def test_depth_at_the_limit_is_accepted() -> None:
    # The message object is level 1 and args level 2.
    args = {"x": nested(MAX_DEPTH - 2)}
    assert isinstance(one(RequestDecoder().feed(encode_request(1, "a", args))), RequestReceived)


def test_depth_over_the_limit_is_rejected_with_the_id() -> None:
    args = {"x": nested(MAX_DEPTH - 1)}
    event = one(RequestDecoder().feed(encode_request(4, "a", args)))
    assert isinstance(event, MessageRejected)
    assert "nested deeper" in str(event.error)
    assert event.id == 4
    assert not event.fatal


def test_pathological_nesting_does_not_crash() -> None:
    body = b'{"v":1,"id":1,"op":"a","args":{"x":' + b"[" * 200_000 + b"]" * 200_000 + b"}}"
    decoder = RequestDecoder()
    event = one(decoder.feed(frame(body)))
    assert isinstance(event, MessageRejected)
    assert not event.fatal
    assert one(decoder.feed(encode_request(2, "a", {}))).id == 2


def test_request_budget() -> None:
    decoder = RequestDecoder(max_requests=3)
    events = decoder.feed(
        encode_request(1, "a", {}) + frame(b"junk") + encode_request(3, "a", {})
        + encode_request(4, "a", {}) + encode_request(5, "a", {})
    )  # fmt: skip
    assert [type(e) for e in events] == [
        RequestReceived,
        MessageRejected,
        RequestReceived,
        MessageRejected,
    ]
    last = events[-1]
    assert isinstance(last.error, RequestLimitError)
    assert last.error.code == IscsiErr.AGAIN
    assert last.fatal
    assert last.id == 4
    assert decoder.stopped


# -- truncation -------------------------------------------------------------------------


@pytest.mark.parametrize("keep", [1, 3, 4, 10])
def test_truncated_stream(keep: int) -> None:
    decoder = RequestDecoder()
    data = encode_request(1, "a", {"k": "v"})
    assert decoder.feed(data[:keep]) == []
    assert decoder.buffered == keep
    rejected = decoder.end_of_stream()
    assert rejected is not None
    assert rejected.fatal
    assert f"after {keep} bytes" in str(rejected.error)
    assert rejected.error.code == IscsiErr.INVALID_MGMT_REQ


# -- replies ----------------------------------------------------------------------------


def test_result_round_trip() -> None:
    event = one(ReplyDecoder().feed(encode_result(3, {"sessions": [{"sid": 1}]})))
    assert event == ReplyReceived(3, True, {"sessions": [{"sid": 1}]})


def test_null_result() -> None:
    assert one(ReplyDecoder().feed(encode_result(3, None))) == ReplyReceived(3, True, None)


def test_error_round_trip_rebuilds_the_exception() -> None:
    event = one(ReplyDecoder().feed(encode_exception(9, SessionNotFoundError("no session 4"))))
    assert isinstance(event, ReplyReceived)
    assert not event.ok
    assert event.id == 9
    assert event.error is not None
    exc = event.error.to_exception()
    assert type(exc) is SessionNotFoundError
    assert exc.code == IscsiErr.SESS_NOT_FOUND
    assert str(exc) == "no session 4"


def test_connection_level_error_has_null_id() -> None:
    event = one(ReplyDecoder().feed(encode_error(None, 13, "denied", "AccessDeniedError")))
    assert event.id is None
    assert not event.ok


@pytest.mark.parametrize(
    "obj",
    [
        {"v": 1, "id": 1, "ok": True},
        {"v": 1, "id": None, "ok": True, "result": 1},
        {"v": 1, "id": "1", "ok": True, "result": 1},
        {"v": 1, "id": 1, "result": 1},
        {"v": 1, "id": 1, "ok": 1, "result": 1},
        {"v": 1, "id": 1, "ok": False},
        {"v": 1, "id": 1, "ok": False, "error": "bad"},
        {"v": 1, "id": 1, "ok": False, "error": {"code": "7", "message": "m", "kind": "k"}},
        {"v": 1, "id": 1, "ok": False, "error": {"code": 7, "message": 1, "kind": "k"}},
        {"v": 1, "id": 1, "ok": False, "error": {"code": 7, "message": "m"}},
        {"v": 2, "id": 1, "ok": True, "result": 1},
    ],
)
def test_bad_replies(obj: dict[str, Any]) -> None:
    event = one(ReplyDecoder().feed(frame_json(obj)))
    assert isinstance(event, MessageRejected)


# -- encoders ---------------------------------------------------------------------------


@pytest.mark.parametrize("value", [object(), {1, 2}, float("nan"), b"bytes"])
def test_unencodable_result(value: Any) -> None:
    with pytest.raises(InternalError):
        encode_result(1, {"x": value})


def test_oversized_result() -> None:
    with pytest.raises(InternalError, match="exceeds"):
        encode_result(1, "x" * MAX_MESSAGE)


def test_lone_surrogate_round_trips() -> None:
    event = one(RequestDecoder().feed(encode_request(1, "a", {"name": "bad\udcff"})))
    assert event.args == {"name": "bad\udcff"}


def test_unicode_is_sent_as_utf8() -> None:
    assert "é".encode() in encode_result(1, "é")


def test_error_message_is_bounded() -> None:
    data = encode_error(1, 7, "m" * MAX_MESSAGE, "InvalidParameterError")
    event = one(ReplyDecoder().feed(data))
    assert event.error is not None
    assert len(event.error.message) == 65536
