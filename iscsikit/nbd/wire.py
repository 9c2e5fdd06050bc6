"""Byte layouts of the NBD messages a server sends, and of the option data it parses.

Pure functions over ``struct``; the state machine that decides *when* to send what lives in
:mod:`iscsikit.nbd.protocol`.  Layouts follow proto.md: "Newstyle negotiation" (greeting,
NBD_OPT_EXPORT_NAME reply), "Fixed newstyle negotiation" (option replies), the INFO
extension (NBD_REP_INFO payloads, NBD_OPT_INFO / NBD_OPT_GO data), "Simple reply message"
and "Structured reply chunk message".
"""

from __future__ import annotations

import struct

from iscsikit.nbd.constants import (
    IHAVEOPT,
    MAX_STRING,
    NBDMAGIC,
    OPTION_REPLY_MAGIC,
    SIMPLE_REPLY_MAGIC,
    STRUCTURED_REPLY_MAGIC,
    HandshakeFlag,
    Info,
    ReplyFlag,
    ReplyType,
    TransmissionFlag,
)

_GREETING = struct.Struct(">QQH")
_OPTION_REPLY = struct.Struct(">QIII")
_EXPORT_NAME_REPLY = struct.Struct(">QH")
_SIMPLE_REPLY = struct.Struct(">IIQ")
_CHUNK = struct.Struct(">IHHQI")
_OFFSET = struct.Struct(">Q")
_ZEROES = bytes(124)
#: Bytes before the data of a READ reply: simple, structured (chunk header + offset).
SIMPLE_READ_HEADER = _SIMPLE_REPLY.size
STRUCTURED_READ_HEADER = _CHUNK.size + _OFFSET.size


def greeting(flags: HandshakeFlag) -> bytes:
    """NBDMAGIC, IHAVEOPT, 16-bit handshake flags."""
    return _GREETING.pack(NBDMAGIC, IHAVEOPT, flags)


def option_reply(option: int, reply: int, data: bytes = b"") -> bytes:
    """A fixed-newstyle option reply: magic, option, reply type, length, data."""
    return _OPTION_REPLY.pack(OPTION_REPLY_MAGIC, option, reply, len(data)) + data


def export_name_reply(size: int, flags: TransmissionFlag, *, no_zeroes: bool) -> bytes:
    """The reply to NBD_OPT_EXPORT_NAME: size, transmission flags, 124 zeroes unless
    both sides agreed on NO_ZEROES."""
    head = _EXPORT_NAME_REPLY.pack(size, flags)
    return head if no_zeroes else head + _ZEROES


def server_entry(name: str) -> bytes:
    """NBD_REP_SERVER data: 32-bit name length, name."""
    raw = name.encode()
    return struct.pack(">I", len(raw)) + raw


def info_export(size: int, flags: TransmissionFlag) -> bytes:
    """NBD_REP_INFO data for NBD_INFO_EXPORT: type, 64-bit size, 16-bit flags."""
    return struct.pack(">HQH", Info.EXPORT, size, flags)


def info_string(kind: Info, text: str) -> bytes:
    """NBD_REP_INFO data for NBD_INFO_NAME / NBD_INFO_DESCRIPTION: type, string."""
    return struct.pack(">H", kind) + text.encode()


def info_block_size(minimum: int, preferred: int, maximum: int) -> bytes:
    """NBD_REP_INFO data for NBD_INFO_BLOCK_SIZE: type, three 32-bit sizes."""
    return struct.pack(">HIII", Info.BLOCK_SIZE, minimum, preferred, maximum)


def parse_info_request(data: bytes) -> tuple[str, tuple[int, ...]]:
    """Split NBD_OPT_INFO / NBD_OPT_GO data into (export name, information requests).

    Layout: 32-bit name length, name, 16-bit count, count x 16-bit info types.  Raises
    ``ValueError`` (→ NBD_REP_ERR_INVALID) when the lengths do not add up or the name is
    not UTF-8.
    """
    if len(data) < 6:
        raise ValueError("option data shorter than 6 bytes")
    (name_len,) = struct.unpack_from(">I", data, 0)
    if name_len > MAX_STRING or 4 + name_len + 2 > len(data):
        raise ValueError("export name length does not fit the option data")
    name = data[4 : 4 + name_len].decode()  # UnicodeDecodeError is a ValueError
    (count,) = struct.unpack_from(">H", data, 4 + name_len)
    if 6 + name_len + 2 * count != len(data):
        raise ValueError("information request count does not match the option length")
    requests = struct.unpack_from(f">{count}H", data, 6 + name_len)
    return name, requests


def simple_reply(handle: int, error: int, data: bytes | memoryview = b"") -> bytes:
    """A simple reply: magic, error, handle, then the READ data (if any)."""
    head = _SIMPLE_REPLY.pack(SIMPLE_REPLY_MAGIC, error, handle)
    return b"".join((head, data)) if data else head


def simple_read_header_into(buffer: bytearray, handle: int) -> None:
    """The simple reply header of a successful READ, into ``buffer[:16]`` (the data
    follows it in the same buffer)."""
    _SIMPLE_REPLY.pack_into(buffer, 0, SIMPLE_REPLY_MAGIC, 0, handle)


def offset_data_header_into(buffer: bytearray, handle: int, offset: int, length: int) -> None:
    """The NBD_REPLY_TYPE_OFFSET_DATA chunk header (DONE) and offset of ``length`` bytes of
    READ data, into ``buffer[:28]`` (the data follows it in the same buffer)."""
    _CHUNK.pack_into(
        buffer, 0, STRUCTURED_REPLY_MAGIC, ReplyFlag.DONE, ReplyType.OFFSET_DATA, handle, 8 + length
    )
    _OFFSET.pack_into(buffer, _CHUNK.size, offset)


def chunk(handle: int, kind: ReplyType, payload: bytes | memoryview, *, done: bool) -> bytes:
    """One structured reply chunk: magic, flags, type, handle, length, payload."""
    flags = ReplyFlag.DONE if done else ReplyFlag(0)
    return _CHUNK.pack(STRUCTURED_REPLY_MAGIC, flags, kind, handle, len(payload)) + payload


def offset_data_chunk(handle: int, offset: int, data: bytes | memoryview, *, done: bool) -> bytes:
    """NBD_REPLY_TYPE_OFFSET_DATA: 64-bit offset then the data (at least one byte)."""
    head = _CHUNK.pack(
        STRUCTURED_REPLY_MAGIC,
        ReplyFlag.DONE if done else ReplyFlag(0),
        ReplyType.OFFSET_DATA,
        handle,
        8 + len(data),
    )
    return b"".join((head, struct.pack(">Q", offset), data))


def error_chunk(handle: int, error: int, message: str = "", *, done: bool = True) -> bytes:
    """NBD_REPLY_TYPE_ERROR: 32-bit error, 16-bit message length, message."""
    raw = message.encode()[:MAX_STRING]
    return chunk(handle, ReplyType.ERROR, struct.pack(">IH", error, len(raw)) + raw, done=done)


def none_chunk(handle: int) -> bytes:
    """NBD_REPLY_TYPE_NONE with NBD_REPLY_FLAG_DONE: success with no (more) payload."""
    return chunk(handle, ReplyType.NONE, b"", done=True)


__all__ = [
    "SIMPLE_READ_HEADER",
    "STRUCTURED_READ_HEADER",
    "offset_data_header_into",
    "simple_read_header_into",
    "chunk",
    "error_chunk",
    "export_name_reply",
    "greeting",
    "info_block_size",
    "info_export",
    "info_string",
    "none_chunk",
    "offset_data_chunk",
    "option_reply",
    "parse_info_request",
    "server_entry",
    "simple_reply",
]
