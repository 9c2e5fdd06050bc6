"""Fuzz harness: iSNS messages from a server (:mod:`iscsikit.proto.isns`): responses to
each request the initiator sends, and the SCN / ESI messages a server sends on its own.

Input: ``flags, size1, size2, stream``.  ``flags & 7`` picks the request the
:class:`~iscsikit.proto.isns.IsnsClient` sent (DevAttrQry, DevAttrReg, DevDereg,
SCNReg, SCNDereg), or the server-message side
(:class:`~iscsikit.proto.isns.scn.ServerMessageReader`, each request then read by
``parse_scn`` / ``parse_esi`` and answered).  With ``flags & 8`` the harness writes the
awaited function id and transaction id into every PDU header of the stream (random
bytes almost never carry them).  A complete DevAttrQry response is turned into portal
groups and discovered targets, as discovery does.  The package documents that
everything malformed raises ``IsnsProtocolError``, never an IndexError or struct.error;
anything else is a finding.
"""

from __future__ import annotations

import struct

import fuzzlib

with fuzzlib.instrument():
    from iscsikit.proto.isns.messages import IsnsClient, discovered_targets, portal_groups
    from iscsikit.proto.isns.scn import (
        ServerMessageReader,
        encode_esi_response,
        encode_scn_response,
        parse_esi,
        parse_scn,
    )
    from iscsikit.proto.isns.wire import FunctionId, IsnsProtocolError

_HEADER = struct.Struct(">HHHHHH")
_RESPONSE_BIT = 0x8000


def _patch(stream: bytes, function: int, xid: int) -> bytes:
    """Every 12-byte header of *stream* (walked by its length field) with *function*
    and *xid*, and version 1."""
    out = bytearray(stream)
    pos = 0
    while len(out) - pos >= _HEADER.size:
        _v, _f, length, flags, _x, seq = _HEADER.unpack_from(out, pos)
        _HEADER.pack_into(out, pos, 1, function, length, flags, xid, seq)
        pos += _HEADER.size + length
    return bytes(out)


def _client(flags: int, client: IsnsClient) -> bytes:
    kind = flags & 7
    if kind == 0:
        return client.query_request()
    if kind == 1:
        return client.query_request("iqn.2024-01.test:disk")
    if kind == 2:
        return client.register_request()
    if kind == 3:
        return client.deregister_request()
    return client.scn_register_request(0x1F)


def _server_messages(flags: int, stream: bytes, sizes: bytes) -> None:
    reader = ServerMessageReader(max_message=8192)
    if flags & 8:
        stream = _patch(stream, FunctionId.ESI if flags & 0x10 else FunctionId.SCN, 7)
    for chunk in fuzzlib.split(stream, sizes):
        for request in reader.receive_data(chunk):
            if request.function == FunctionId.SCN:
                scn = parse_scn(request)
                encode_scn_response(scn.xid, scn.destination)
            else:
                encode_esi_response(parse_esi(request))


def TestOneInput(data: bytes) -> None:
    if len(data) < 3:
        return
    flags, sizes, stream = data[0], data[1:3], data[3:]
    try:
        if flags & 7 in (5, 6, 7):
            _server_messages(flags, stream, sizes)
            return
        client = IsnsClient("iqn.2024-01.test:initiator", first_xid=flags >> 4)
        request = _client(flags, client)
        function, xid = _HEADER.unpack_from(request)[1], _HEADER.unpack_from(request)[4]
        if flags & 8:
            stream = _patch(stream, function | _RESPONSE_BIT, xid)
        for chunk in fuzzlib.split(stream, sizes):
            response = client.receive_data(chunk)
            if response is not None:
                portal_groups(response)
                discovered_targets(response)
                break
    except IsnsProtocolError:
        pass


if __name__ == "__main__":
    fuzzlib.main(TestOneInput)
