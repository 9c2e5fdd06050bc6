"""Fuzz harness: the daemon's IPC messages (:mod:`iscsikit.ipc.protocol`).

Input: ``flags, size1, size2, stream``.  ``flags & 1`` picks the side: the daemon's
:class:`~iscsikit.ipc.protocol.RequestDecoder` (what any local client can send) or the
client's :class:`~iscsikit.ipc.protocol.ReplyDecoder`.  With ``flags & 2`` the stream is
one message body and the harness writes its length prefix (random prefixes almost never
match a body).  The bytes arrive in chunks, then the stream ends.  Every rejection is
answered as the daemon answers it (``encode_exception``), every error reply is turned
back into its exception as the client does.  The decoders document events, not
exceptions: ``feed`` raises only ``IpcProtocolError`` after a fatal rejection, which the
harness never provokes.  Anything raised is a finding.
"""

from __future__ import annotations

import struct

import fuzzlib

with fuzzlib.instrument():
    from iscsikit.ipc.protocol import (
        MessageDecoder,
        MessageRejected,
        ReplyDecoder,
        ReplyReceived,
        RequestDecoder,
        encode_exception,
        encode_result,
    )

_OPS = frozenset({"login", "logout", "sessions", "ping", "discover"})


def _handle(events: list[object]) -> None:
    for event in events:
        if isinstance(event, MessageRejected):
            encode_exception(event.id, event.error)
        elif isinstance(event, ReplyReceived):
            if event.error is not None:
                event.error.to_exception()
        else:
            encode_result(event.id, event.args)  # type: ignore[attr-defined]


def TestOneInput(data: bytes) -> None:
    if len(data) < 3:
        return
    flags, sizes, stream = data[0], data[1:3], data[3:]
    if flags & 2:
        stream = struct.pack(">I", len(stream)) + stream
    decoder: MessageDecoder
    if flags & 1:
        decoder = ReplyDecoder(max_message=4096)
    else:
        decoder = RequestDecoder(ops=_OPS if flags & 4 else None, max_message=4096, max_requests=4)
    for chunk in fuzzlib.split(stream, sizes):
        if decoder.stopped:
            break
        _handle(decoder.feed(chunk))
    end = decoder.end_of_stream()
    if end is not None:
        _handle([end])


if __name__ == "__main__":
    fuzzlib.main(TestOneInput)
