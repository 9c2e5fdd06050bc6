"""iSNSP wire format (RFC 4171): header, TLV attributes, function ids, status codes,
tags, and the error every malformed input raises.  Sans-I/O; see
:mod:`iscsikit.proto.isns` for what the package owns."""

from __future__ import annotations

import enum
import ipaddress
import struct
from collections.abc import Iterable
from dataclasses import dataclass

from iscsikit.errors import IscsiErr, LocalProtocolError, RemoteProtocolError

#: The iSNS server's well-known port (RFC 4171 §5.2; open-iscsi's default for -t isns).
DEFAULT_PORT = 3205
VERSION = 0x0001
HEADER_LEN = 12
_HEADER = struct.Struct(">HHHHHH")
#: The PDU Length field is 16 bits; payloads are 4-byte multiples (RFC 4171 §5.1.3).
MAX_PDU_PAYLOAD = 0xFFFC
#: Cap on one reassembled response, so a server cannot make us buffer forever.
MAX_MESSAGE_BYTES = 4 * 1024 * 1024
RESPONSE_BIT = 0x8000


class IsnsProtocolError(RemoteProtocolError):
    """The iSNS server sent something malformed or unexpected (iscsiadm exit 25)."""

    code = IscsiErr.ISNS_QUERY

    def __init__(self, message: str, *, code: IscsiErr | None = None) -> None:
        super().__init__(message, code=code or IscsiErr.ISNS_QUERY)


class FunctionId(enum.IntEnum):
    """iSNSP function ids (RFC 4171 §5.1.3); responses set bit 0x8000."""

    DEV_ATTR_REG = 0x0001
    DEV_ATTR_QRY = 0x0002
    DEV_GET_NEXT = 0x0003
    DEV_DEREG = 0x0004
    SCN_REG = 0x0005
    SCN_DEREG = 0x0006
    SCN_EVENT = 0x0007
    SCN = 0x0008
    DD_REG = 0x0009
    DD_DEREG = 0x000A
    DDS_REG = 0x000B
    DDS_DEREG = 0x000C
    ESI = 0x000D
    HEARTBEAT = 0x000E
    DEV_ATTR_REG_RSP = 0x8001
    DEV_ATTR_QRY_RSP = 0x8002
    DEV_GET_NEXT_RSP = 0x8003
    DEV_DEREG_RSP = 0x8004
    SCN_REG_RSP = 0x8005
    SCN_DEREG_RSP = 0x8006
    SCN_EVENT_RSP = 0x8007
    SCN_RSP = 0x8008
    DD_REG_RSP = 0x8009
    DD_DEREG_RSP = 0x800A
    DDS_REG_RSP = 0x800B
    DDS_DEREG_RSP = 0x800C
    ESI_RSP = 0x800D


class Flags(enum.IntFlag):
    """iSNSP header flags (RFC 4171 §5.1.4)."""

    CLIENT = 0x8000
    SERVER = 0x4000
    AUTH = 0x2000
    REPLACE = 0x1000
    LAST_PDU = 0x0800
    FIRST_PDU = 0x0400


class Status(enum.IntEnum):
    """Response status codes (RFC 4171 §6.4)."""

    SUCCESSFUL = 0
    UNKNOWN_ERROR = 1
    MESSAGE_FORMAT_ERROR = 2
    INVALID_REGISTRATION = 3
    RESERVED = 4
    INVALID_QUERY = 5
    SOURCE_UNKNOWN = 6
    SOURCE_ABSENT = 7
    SOURCE_UNAUTHORIZED = 8
    NO_SUCH_ENTRY = 9
    VERSION_NOT_SUPPORTED = 10
    INTERNAL_ERROR = 11
    BUSY = 12
    OPTION_NOT_UNDERSTOOD = 13
    INVALID_UPDATE = 14
    MESSAGE_NOT_SUPPORTED = 15
    SCN_EVENT_REJECTED = 16
    SCN_REGISTRATION_REJECTED = 17
    ATTRIBUTE_NOT_IMPLEMENTED = 18
    FC_DOMAIN_ID_NOT_AVAILABLE = 19
    FC_DOMAIN_ID_NOT_ALLOCATED = 20
    ESI_NOT_AVAILABLE = 21
    INVALID_DEREGISTRATION = 22
    REGISTRATION_FEATURE_NOT_SUPPORTED = 23

    @property
    def text(self) -> str:
        """The status as words, e.g. "Source unknown" (open-isns ``isns_strerror``)."""
        return self.name.replace("_", " ").capitalize()


class Tag(enum.IntEnum):
    """The attribute tags an iSCSI initiator uses (RFC 4171 §6.1)."""

    DELIMITER = 0
    ENTITY_IDENTIFIER = 1
    ENTITY_PROTOCOL = 2
    TIMESTAMP = 4
    REGISTRATION_PERIOD = 6
    PORTAL_IP_ADDRESS = 16
    PORTAL_TCP_UDP_PORT = 17
    ESI_INTERVAL = 20
    ESI_PORT = 21
    SCN_PORT = 23
    ISCSI_NAME = 32
    ISCSI_NODE_TYPE = 33
    ISCSI_ALIAS = 34
    ISCSI_SCN_BITMAP = 35
    PG_ISCSI_NAME = 48
    PG_PORTAL_IP_ADDR = 49
    PG_PORTAL_TCP_UDP_PORT = 50
    PG_TAG = 51
    PG_INDEX = 52


class NodeType(enum.IntFlag):
    """iSCSI Node Type bitmap (RFC 4171 §6.4.2)."""

    TARGET = 0x1
    INITIATOR = 0x2
    CONTROL = 0x4


#: The operating attributes open-iscsi's DevAttrQry asks for (usr/discovery.c).
QUERY_ATTRIBUTES = (
    Tag.ISCSI_NAME,
    Tag.ISCSI_NODE_TYPE,
    Tag.PORTAL_IP_ADDRESS,
    Tag.PORTAL_TCP_UDP_PORT,
    Tag.PG_ISCSI_NAME,
    Tag.PG_PORTAL_IP_ADDR,
    Tag.PG_PORTAL_TCP_UDP_PORT,
    Tag.PG_TAG,
)
_STRING_TAGS = frozenset(
    {Tag.ENTITY_IDENTIFIER, Tag.ISCSI_NAME, Tag.ISCSI_ALIAS, Tag.PG_ISCSI_NAME}
)
_IP_TAGS = frozenset({Tag.PORTAL_IP_ADDRESS, Tag.PG_PORTAL_IP_ADDR})
_V4_MAPPED = bytes(10) + b"\xff\xff"
_UDP_BIT = 0x10000  # Portal TCP/UDP Port: bit 16 set means UDP (RFC 4171 §6.3.2)


# -- header -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Header:
    """The 12-byte iSNSP header (RFC 4171 §5.1)."""

    function: int
    length: int
    flags: int
    xid: int
    sequence: int
    version: int = VERSION

    def encode(self) -> bytes:
        return _HEADER.pack(
            self.version, self.function, self.length, self.flags, self.xid, self.sequence
        )

    @classmethod
    def decode(cls, data: bytes | bytearray | memoryview) -> Header:
        if len(data) < HEADER_LEN:
            raise IsnsProtocolError(f"truncated iSNS header ({len(data)} of 12 bytes)")
        version, function, length, flags, xid, seq = _HEADER.unpack_from(data)
        return cls(function, length, flags, xid, seq, version)


# -- attributes ---------------------------------------------------------------------------


def _pad(value: bytes) -> bytes:
    return value + b"\0" * (-len(value) % 4)


@dataclass(frozen=True, slots=True)
class Attribute:
    """One TLV attribute (RFC 4171 §5.5): a tag and its (padded) value bytes."""

    tag: int
    value: bytes = b""

    @classmethod
    def string(cls, tag: int, text: str) -> Attribute:
        """A NUL-terminated UTF-8 string, padded to 4 bytes (RFC 4171 §5.5)."""
        return cls(tag, _pad(text.encode() + b"\0"))

    @classmethod
    def uint32(cls, tag: int, number: int) -> Attribute:
        if not 0 <= number <= 0xFFFFFFFF:
            raise LocalProtocolError(f"iSNS attribute {tag}: {number} is not a uint32")
        return cls(tag, number.to_bytes(4, "big"))

    @classmethod
    def ip(cls, tag: int, address: str) -> Attribute:
        """16 bytes; an IPv4 address as IPv4-mapped ``::ffff:a.b.c.d`` (RFC 4171 §6.3.1)."""
        parsed = ipaddress.ip_address(address)
        if isinstance(parsed, ipaddress.IPv4Address):
            return cls(tag, b"\0" * 10 + b"\xff\xff" + parsed.packed)
        return cls(tag, parsed.packed)

    def encode(self) -> bytes:
        value = _pad(self.value)
        return struct.pack(">II", self.tag, len(value)) + value

    def as_string(self) -> str:
        raw = self.value.split(b"\0", 1)[0]
        try:
            return raw.decode()
        except UnicodeDecodeError:
            raise IsnsProtocolError(f"iSNS attribute {self.tag}: not UTF-8") from None

    def as_uint32(self) -> int:
        if len(self.value) != 4:
            raise IsnsProtocolError(
                f"iSNS attribute {self.tag}: {len(self.value)} bytes, expected 4"
            )
        return int.from_bytes(self.value, "big")

    def as_port(self) -> int:
        """A Portal TCP/UDP Port value: the port (UDP is refused: iSCSI runs on TCP)."""
        value = self.as_uint32()
        if value & _UDP_BIT:
            raise IsnsProtocolError(f"iSNS attribute {self.tag}: a UDP port")
        return value & 0xFFFF

    def as_ip(self) -> str:
        """The address as text; IPv4-mapped (``::ffff:a.b.c.d``, tgtd) and IPv4-compatible
        (``::a.b.c.d``, isnsadm) addresses become ``a.b.c.d``, as open-iscsi does."""
        if len(self.value) != 16:
            raise IsnsProtocolError(
                f"iSNS attribute {self.tag}: {len(self.value)} bytes, expected 16"
            )
        value = self.value
        if value[:12] == _V4_MAPPED or (
            value[:12] == bytes(12) and int.from_bytes(value[12:], "big") > 1
        ):  # glibc's IN6_IS_ADDR_V4MAPPED / IN6_IS_ADDR_V4COMPAT (not :: nor ::1)
            return str(ipaddress.IPv4Address(value[12:]))
        return str(ipaddress.IPv6Address(self.value))


def encode_attributes(attributes: Iterable[Attribute]) -> bytes:
    return b"".join(a.encode() for a in attributes)


def decode_attributes(data: bytes | memoryview) -> list[Attribute]:
    """The TLVs of a payload; a length past the end or not a multiple of 4 is an error."""
    view = memoryview(data)
    out: list[Attribute] = []
    offset = 0
    while offset < len(view):
        if len(view) - offset < 8:
            raise IsnsProtocolError(f"truncated iSNS attribute header at offset {offset}")
        tag, length = struct.unpack_from(">II", view, offset)
        offset += 8
        if length % 4:
            raise IsnsProtocolError(f"iSNS attribute {tag}: length {length} not a multiple of 4")
        if length > len(view) - offset:
            raise IsnsProtocolError(
                f"iSNS attribute {tag}: length {length} past the end of the message"
            )
        out.append(Attribute(tag, bytes(view[offset : offset + length])))
        offset += length
    return out
