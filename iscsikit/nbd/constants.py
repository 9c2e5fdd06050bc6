"""Numbers of the NBD protocol (NetworkBlockDevice/nbd ``doc/proto.md``, "Values").

Magic numbers, handshake / transmission flags, option and option-reply types, info types,
command types and flags, structured reply types and the error values a server may send.
Nothing here does I/O; every name matches the spec's ``NBD_*`` constant without its prefix.
"""

from __future__ import annotations

from enum import IntEnum, IntFlag

#: "NBDMAGIC" (INIT_PASSWD), the first 8 bytes a server sends.
NBDMAGIC = 0x4E42444D41474943
#: "IHAVEOPT": newstyle magic, sent by the server after NBDMAGIC and by the client before
#: every option.
IHAVEOPT = 0x49484156454F5054
#: Magic of a fixed-newstyle option reply.
OPTION_REPLY_MAGIC = 0x0003E889045565A9
#: Magic of a transmission-phase request (``NBD_REQUEST_MAGIC``).
REQUEST_MAGIC = 0x25609513
#: Magic of a simple reply (``NBD_SIMPLE_REPLY_MAGIC``).
SIMPLE_REPLY_MAGIC = 0x67446698
#: Magic of a structured reply chunk (``NBD_STRUCTURED_REPLY_MAGIC``).
STRUCTURED_REPLY_MAGIC = 0x668E33EF

#: Size in bytes of a request header, an option header, a simple / structured reply header.
REQUEST_HEADER_SIZE = 28
OPTION_HEADER_SIZE = 16
SIMPLE_REPLY_HEADER_SIZE = 16
STRUCTURED_REPLY_HEADER_SIZE = 20

#: Default maximum payload when a server advertises none ("Block size constraints": 32 MiB).
DEFAULT_MAX_PAYLOAD = 32 * 1024 * 1024
#: Strings (export names, messages) MUST be no longer than 4096 bytes ("Conventions").
MAX_STRING = 4096


class HandshakeFlag(IntFlag):
    """16-bit handshake flags sent by the server after IHAVEOPT."""

    FIXED_NEWSTYLE = 1 << 0
    NO_ZEROES = 1 << 1


class ClientFlag(IntFlag):
    """32-bit client flags; any other bit MUST make the server drop the connection."""

    FIXED_NEWSTYLE = 1 << 0
    NO_ZEROES = 1 << 1


class TransmissionFlag(IntFlag):
    """16-bit transmission flags describing an export."""

    HAS_FLAGS = 1 << 0
    READ_ONLY = 1 << 1
    SEND_FLUSH = 1 << 2
    SEND_FUA = 1 << 3
    ROTATIONAL = 1 << 4
    SEND_TRIM = 1 << 5
    SEND_WRITE_ZEROES = 1 << 6
    SEND_DF = 1 << 7
    CAN_MULTI_CONN = 1 << 8
    SEND_RESIZE = 1 << 9
    SEND_CACHE = 1 << 10
    SEND_FAST_ZERO = 1 << 11


class Option(IntEnum):
    """Option types of the option haggling phase."""

    EXPORT_NAME = 1
    ABORT = 2
    LIST = 3
    PEEK_EXPORT = 4
    STARTTLS = 5
    INFO = 6
    GO = 7
    STRUCTURED_REPLY = 8
    LIST_META_CONTEXT = 9
    SET_META_CONTEXT = 10
    EXTENDED_HEADERS = 11


_ERR = 1 << 31


class OptionReply(IntEnum):
    """Option reply types; errors have bit 31 set."""

    ACK = 1
    SERVER = 2
    INFO = 3
    META_CONTEXT = 4
    ERR_UNSUP = _ERR + 1
    ERR_POLICY = _ERR + 2
    ERR_INVALID = _ERR + 3
    ERR_PLATFORM = _ERR + 4
    ERR_TLS_REQD = _ERR + 5
    ERR_UNKNOWN = _ERR + 6
    ERR_SHUTDOWN = _ERR + 7
    ERR_BLOCK_SIZE_REQD = _ERR + 8
    ERR_TOO_BIG = _ERR + 9


class Info(IntEnum):
    """Information types of NBD_OPT_INFO / NBD_OPT_GO (``NBD_REP_INFO`` payloads)."""

    EXPORT = 0
    NAME = 1
    DESCRIPTION = 2
    BLOCK_SIZE = 3


class Command(IntEnum):
    """Request types of the transmission phase."""

    READ = 0
    WRITE = 1
    DISC = 2
    FLUSH = 3
    TRIM = 4
    CACHE = 5
    WRITE_ZEROES = 6
    BLOCK_STATUS = 7
    RESIZE = 8


class CommandFlag(IntFlag):
    """16-bit command flags of a request."""

    FUA = 1 << 0
    NO_HOLE = 1 << 1
    DF = 1 << 2
    REQ_ONE = 1 << 3
    FAST_ZERO = 1 << 4
    PAYLOAD_LEN = 1 << 5


class ReplyFlag(IntFlag):
    """Structured reply chunk flags."""

    DONE = 1 << 0


class ReplyType(IntEnum):
    """Structured reply chunk types; error chunks have bit 15 set."""

    NONE = 0
    OFFSET_DATA = 1
    OFFSET_HOLE = 2
    BLOCK_STATUS = 5
    ERROR = (1 << 15) + 1
    ERROR_OFFSET = (1 << 15) + 2


class Errno(IntEnum):
    """The only error values a reply may carry ("Error values")."""

    EPERM = 1
    EIO = 5
    ENOMEM = 12
    EINVAL = 22
    ENOSPC = 28
    EOVERFLOW = 75
    ENOTSUP = 95
    ESHUTDOWN = 108


__all__ = [
    "DEFAULT_MAX_PAYLOAD",
    "IHAVEOPT",
    "MAX_STRING",
    "NBDMAGIC",
    "OPTION_HEADER_SIZE",
    "OPTION_REPLY_MAGIC",
    "REQUEST_HEADER_SIZE",
    "REQUEST_MAGIC",
    "SIMPLE_REPLY_HEADER_SIZE",
    "SIMPLE_REPLY_MAGIC",
    "STRUCTURED_REPLY_HEADER_SIZE",
    "STRUCTURED_REPLY_MAGIC",
    "ClientFlag",
    "Command",
    "CommandFlag",
    "Errno",
    "HandshakeFlag",
    "Info",
    "Option",
    "OptionReply",
    "ReplyFlag",
    "ReplyType",
    "TransmissionFlag",
]
