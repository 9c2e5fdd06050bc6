"""The daemon IPC protocol, sans-I/O: framing, message shapes, bounds (docs/ipc.md).

Each message is a 4-byte big-endian length followed by that many bytes of UTF-8 JSON holding
one object::

    request  {"v": 1, "id": N, "op": "name", "args": {...}}
    reply    {"v": 1, "id": N, "ok": true, "result": ...}
             {"v": 1, "id": N, "ok": false, "error": {"code": C, "message": M, "kind": K}}

:class:`RequestDecoder` (the daemon's side) and :class:`ReplyDecoder` (the client's) take bytes
in :meth:`~MessageDecoder.feed` and hand out events: :class:`RequestReceived`,
:class:`ReplyReceived`, or :class:`MessageRejected` for a message that broke the protocol.  A
rejected message whose frame was intact (bad JSON, bad shape, wrong version, unknown
operation) leaves the stream usable; a broken frame (a length over the bound) or a spent
request budget is ``fatal``: the decoder stops, and the connection must be closed after the
error reply.  Bytes left over at the end of the stream are reported by
:meth:`~MessageDecoder.end_of_stream`.  The encoders build the bytes of each message.

No sockets, no clocks, no asyncio: the daemon's server and the blocking client both drive
this module.
"""

from __future__ import annotations

import json
import re
import struct
from dataclasses import dataclass
from typing import Any, ClassVar, Final

from iscsikit.errors import InternalError, IscsiError
from iscsikit.ipc.errors import (
    IpcProtocolError,
    RequestLimitError,
    UnknownOperationError,
    UnsupportedVersionError,
    exception_from_reply,
)

__all__ = [
    "HEADER",
    "MAX_DEPTH",
    "MAX_MESSAGE",
    "MAX_REQUESTS",
    "VERSION",
    "ErrorInfo",
    "Event",
    "MessageDecoder",
    "MessageRejected",
    "ReplyDecoder",
    "ReplyReceived",
    "RequestDecoder",
    "RequestReceived",
    "encode_error",
    "encode_exception",
    "encode_request",
    "encode_result",
]

#: The protocol version this module speaks.  A change a v1 peer cannot ignore bumps it.
VERSION: Final = 1
#: The length prefix: a 32-bit big-endian count of the JSON bytes that follow.
HEADER: Final = struct.Struct(">I")
#: The largest JSON body (bytes) either side accepts or sends.
MAX_MESSAGE: Final = 1 << 20
#: The deepest nesting of arrays and objects in a message (the message object is depth 1).
MAX_DEPTH: Final = 32
#: The requests one connection may carry before the daemon asks the client to reconnect.
MAX_REQUESTS: Final = 10_000
#: The largest request id: ids are non-negative and fit in a signed 64-bit integer.
MAX_ID: Final = (1 << 63) - 1

_OP_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_.-]{0,63}\Z")


@dataclass(frozen=True, slots=True)
class ErrorInfo:
    """The ``error`` object of a failed reply."""

    code: int
    message: str
    kind: str

    def to_exception(self) -> IscsiError:
        """The exception the daemon raised, rebuilt (:func:`exception_from_reply`)."""
        return exception_from_reply(self.code, self.message, self.kind)


@dataclass(frozen=True, slots=True)
class RequestReceived:
    """A well-formed request."""

    id: int
    op: str
    args: dict[str, Any]


@dataclass(frozen=True, slots=True)
class ReplyReceived:
    """A well-formed reply.  ``id`` is None for an error about the connection itself
    (refused credentials, too many clients, a request that could not be read)."""

    id: int | None
    ok: bool
    result: Any = None
    error: ErrorInfo | None = None


@dataclass(frozen=True, slots=True)
class MessageRejected:
    """A message broke the protocol.  ``id`` is the request's id when it could be read;
    ``fatal`` means the stream cannot go on (close after replying)."""

    error: IpcProtocolError
    id: int | None = None
    fatal: bool = False


Event = RequestReceived | ReplyReceived | MessageRejected


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _depth(value: Any, limit: int) -> int:
    """The nesting depth of a decoded JSON value, without recursion; stops past ``limit``."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, dict | list):
            deepest = max(deepest, level)
            if deepest > limit:
                return deepest
            children = item.values() if isinstance(item, dict) else item
            stack.extend((child, level + 1) for child in children)
    return deepest


def _valid_id(value: Any) -> int | None:
    if type(value) is int and 0 <= value <= MAX_ID:
        return value
    return None


class MessageDecoder:
    """Length-prefixed JSON objects in, events out (base of the two decoders).

    ``max_message`` bounds one body, ``max_depth`` its nesting.  Subclasses check the shape
    of each object in :meth:`_event`.
    """

    _kind: ClassVar[str] = "message"

    def __init__(self, *, max_message: int = MAX_MESSAGE, max_depth: int = MAX_DEPTH) -> None:
        self._buffer = bytearray()
        self._max_message = max_message
        self._max_depth = max_depth
        self._stopped = False

    @property
    def buffered(self) -> int:
        """Bytes received that are not a whole message yet (0: between messages)."""
        return len(self._buffer)

    @property
    def stopped(self) -> bool:
        """True after a fatal rejection: the decoder takes no more bytes."""
        return self._stopped

    def feed(self, data: bytes | bytearray | memoryview) -> list[Event]:
        """Take received bytes; return the events of every message they complete.

        Raises :class:`IpcProtocolError` only when called after a fatal rejection.
        """
        if self._stopped:
            raise IpcProtocolError(f"{self._kind} stream already broken")
        self._buffer += data
        events: list[Event] = []
        while len(self._buffer) >= HEADER.size and not self._stopped:
            (length,) = HEADER.unpack_from(self._buffer)
            if length > self._max_message:
                self._stop()
                events.append(
                    MessageRejected(
                        IpcProtocolError(
                            f"{self._kind} of {length} bytes exceeds the limit of "
                            f"{self._max_message} bytes"
                        ),
                        fatal=True,
                    )
                )
                break
            end = HEADER.size + length
            if len(self._buffer) < end:
                break
            body = bytes(self._buffer[HEADER.size : end])
            del self._buffer[:end]
            events.append(self._decode(body))
        return events

    def end_of_stream(self) -> MessageRejected | None:
        """The peer closed: a rejection when it left part of a message behind, else None."""
        if self._stopped or not self._buffer:
            return None
        have = len(self._buffer)
        self._stop()
        return MessageRejected(
            IpcProtocolError(f"truncated {self._kind}: connection closed after {have} bytes"),
            fatal=True,
        )

    def _stop(self) -> None:
        self._stopped = True
        self._buffer.clear()

    def _decode(self, body: bytes) -> Event:
        try:
            obj = json.loads(body.decode("utf-8"), parse_constant=_reject_constant)
        except RecursionError:
            return MessageRejected(IpcProtocolError(f"{self._kind} nested too deeply"))
        except ValueError as exc:  # UnicodeDecodeError and JSONDecodeError included
            return MessageRejected(IpcProtocolError(f"malformed {self._kind}: {exc}"))
        if not isinstance(obj, dict):
            return MessageRejected(IpcProtocolError(f"{self._kind} is not a JSON object"))
        msg_id = _valid_id(obj.get("id"))
        if _depth(obj, self._max_depth) > self._max_depth:
            return MessageRejected(
                IpcProtocolError(f"{self._kind} nested deeper than {self._max_depth} levels"),
                msg_id,
            )
        version = obj.get("v")
        if type(version) is not int:
            return MessageRejected(IpcProtocolError(f"{self._kind} without a version"), msg_id)
        if version != VERSION:
            return MessageRejected(
                UnsupportedVersionError(
                    f"unsupported protocol version {version} (this side speaks {VERSION})"
                ),
                msg_id,
            )
        return self._event(obj, msg_id)

    def _event(self, obj: dict[str, Any], msg_id: int | None) -> Event:
        raise NotImplementedError


class RequestDecoder(MessageDecoder):
    """The daemon's decoder.  ``ops`` (when given) is the set of known operations; at most
    ``max_requests`` requests are accepted, then the stream is rejected as fatal."""

    _kind = "request"

    def __init__(
        self,
        *,
        ops: frozenset[str] | None = None,
        max_requests: int = MAX_REQUESTS,
        max_message: int = MAX_MESSAGE,
        max_depth: int = MAX_DEPTH,
    ) -> None:
        super().__init__(max_message=max_message, max_depth=max_depth)
        self._ops = ops
        self._remaining = max_requests

    def _decode(self, body: bytes) -> Event:
        # Every message counts, well-formed or not: the budget bounds the work of a connection.
        event = super()._decode(body)
        if self._remaining <= 0:
            self._stop()
            return MessageRejected(
                RequestLimitError("too many requests on one connection: reconnect"),
                event.id,
                fatal=True,
            )
        self._remaining -= 1
        return event

    def _event(self, obj: dict[str, Any], msg_id: int | None) -> Event:
        if msg_id is None:
            return MessageRejected(
                IpcProtocolError(f"request id must be an integer from 0 to {MAX_ID}")
            )
        op = obj.get("op")
        if not isinstance(op, str) or not _OP_NAME.match(op):
            return MessageRejected(IpcProtocolError("request without a valid op name"), msg_id)
        if self._ops is not None and op not in self._ops:
            return MessageRejected(UnknownOperationError(f"unknown operation {op!r}"), msg_id)
        args = obj.get("args", {})
        if not isinstance(args, dict):
            return MessageRejected(IpcProtocolError("request args must be an object"), msg_id)
        return RequestReceived(msg_id, op, args)


class ReplyDecoder(MessageDecoder):
    """The client's decoder."""

    _kind = "reply"

    def _event(self, obj: dict[str, Any], msg_id: int | None) -> Event:
        if msg_id is None and obj.get("id") is not None:
            return MessageRejected(IpcProtocolError("reply id must be an integer or null"))
        ok = obj.get("ok")
        if ok is True:
            if "result" not in obj or msg_id is None:
                return MessageRejected(IpcProtocolError("success reply without result or id"))
            return ReplyReceived(msg_id, True, obj["result"])
        if ok is not False:
            return MessageRejected(IpcProtocolError("reply without ok"), msg_id)
        error = obj.get("error")
        if not isinstance(error, dict):
            return MessageRejected(IpcProtocolError("error reply without error"), msg_id)
        code, message, kind = error.get("code"), error.get("message"), error.get("kind")
        if type(code) is not int or not isinstance(message, str) or not isinstance(kind, str):
            return MessageRejected(IpcProtocolError("malformed error object"), msg_id)
        return ReplyReceived(msg_id, False, error=ErrorInfo(code, message, kind))


def _encode(obj: dict[str, Any]) -> bytes:
    try:
        body = json.dumps(obj, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
        try:
            data = body.encode("utf-8")
        except UnicodeEncodeError:  # lone surrogates: escaped, they still round-trip
            data = json.dumps(obj, separators=(",", ":"), allow_nan=False).encode("ascii")
    except (TypeError, ValueError, RecursionError) as exc:
        raise InternalError(f"cannot encode IPC message: {exc}") from exc
    if len(data) > MAX_MESSAGE:
        raise InternalError(f"IPC message of {len(data)} bytes exceeds {MAX_MESSAGE}")
    return HEADER.pack(len(data)) + data


def encode_request(msg_id: int, op: str, args: dict[str, Any]) -> bytes:
    """The bytes of a request; :class:`InternalError` when it cannot be encoded or is too big."""
    return _encode({"v": VERSION, "id": msg_id, "op": op, "args": args})


def encode_result(msg_id: int, result: Any) -> bytes:
    """The bytes of a success reply; :class:`InternalError` as :func:`encode_request`."""
    return _encode({"v": VERSION, "id": msg_id, "ok": True, "result": result})


def encode_error(msg_id: int | None, code: int, message: str, kind: str) -> bytes:
    """The bytes of an error reply (``msg_id`` None: about the connection)."""
    # A message cannot push the reply over the bound: 64 KiB of text is plenty.
    error = {"code": int(code), "message": message[:65536], "kind": kind}
    return _encode({"v": VERSION, "id": msg_id, "ok": False, "error": error})


def encode_exception(msg_id: int | None, exc: IscsiError) -> bytes:
    """The error reply for ``exc``: its code, message and class name."""
    return encode_error(msg_id, exc.code, str(exc), type(exc).__name__)
