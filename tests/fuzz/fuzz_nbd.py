"""Fuzz harness: NBD requests as the export server parses them, in both phases
(:class:`~iscsikit.nbd.protocol.NbdServerProtocol`: fixed newstyle negotiation, then
transmission).

Input: ``flags, size1, size2, stream``, the client's side of the connection.  With
``flags & 1`` the harness first sends a valid handshake itself (client flags, an
optional NBD_OPT_STRUCTURED_REPLY, NBD_OPT_EXPORT_NAME or NBD_OPT_GO), so that the
stream is parsed as transmission-phase requests; otherwise the stream starts at the
client flags.  ``flags & 8`` serves a read-only export.  Every request event is answered
at once (a READ with data or EIO, the others with success or an error) as the server does,
and the automatic replies are drained.  Allowed, as documented: ``RemoteProtocolError``
(a peer that broke a mandatory rule).  Anything else is a finding.
"""

from __future__ import annotations

import struct

import fuzzlib

with fuzzlib.instrument():
    from iscsikit.errors import RemoteProtocolError
    from iscsikit.nbd.constants import IHAVEOPT, Option
    from iscsikit.nbd.events import (
        Export,
        FlushRequested,
        ReadRequested,
        TrimRequested,
        WriteRequested,
        WriteZeroesRequested,
    )
    from iscsikit.nbd.protocol import NbdServerProtocol

_SIZE = 1 << 20
_REQUESTS = (ReadRequested, WriteRequested, FlushRequested, TrimRequested, WriteZeroesRequested)


def _option(option: int, payload: bytes) -> bytes:
    return struct.pack(">QII", IHAVEOPT, option, len(payload)) + payload


def handshake(flags: int) -> bytes:
    """Client flags (FIXED_NEWSTYLE | NO_ZEROES), options, the export "disk" chosen."""
    out = struct.pack(">I", 3)
    if flags & 2:
        out += _option(Option.STRUCTURED_REPLY, b"")
    if flags & 4:
        out += _option(Option.GO, struct.pack(">I", 4) + b"disk" + struct.pack(">HH", 1, 3))
    else:
        out += _option(Option.EXPORT_NAME, b"disk")
    return out


def TestOneInput(data: bytes) -> None:
    if len(data) < 3:
        return
    flags, sizes, stream = data[0], data[1:3], data[3:]
    if flags & 1:
        stream = handshake(flags) + stream
    exports = [
        Export("disk", _SIZE, read_only=bool(flags & 8), description="fuzz"),
        Export("other", 4096, min_block=512, preferred_block=512, max_block=65536),
    ]
    server = NbdServerProtocol(exports, structured_replies=not flags & 0x10)
    server.greeting()
    try:
        for chunk in fuzzlib.split(stream, sizes):
            server.receive_data(chunk)
            while (event := server.next_event()) is not None:
                if isinstance(event, ReadRequested):
                    if event.handle & 1:
                        server.reply(event.handle, error=5, message="fuzz")
                    else:
                        server.reply(event.handle, data=bytes(event.length))
                elif isinstance(event, _REQUESTS):
                    server.reply(event.handle, error=28 if event.handle & 1 else 0)
            server.data_to_send()
    except RemoteProtocolError:
        pass


if __name__ == "__main__":
    fuzzlib.main(TestOneInput)
