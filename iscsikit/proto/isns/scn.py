"""What an iSNS server sends an initiator unasked, sans-I/O: State Change Notifications
(SCN, RFC 4171 §5.6.5.8) and Entity Status Inquiries (ESI, §5.6.5.13), and the
responses the initiator owes (SCNRsp §5.7.5.8, ESIRsp §5.7.5.13).

The server connects to the SCN port the initiator registered with its portal (TCP
unless the port's UDP bit is set) and sends requests there.  These messages carry no
source attribute and no delimiter (open-isns ``isns_simple_include_source``): an SCN is
the destination's iSCSI Name, a Timestamp, then for each change an iSCSI SCN Bitmap and
the iSCSI Name of the node that changed (Discovery Domain ids may follow a management
SCN's name); an ESI is the Entity Identifier, Portal IP Address and Port.  The SCNRsp
carries the destination name back, the ESIRsp the ESI's attributes.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from iscsikit.proto.isns.wire import (
    HEADER_LEN,
    RESPONSE_BIT,
    VERSION,
    Attribute,
    Flags,
    FunctionId,
    Header,
    IsnsProtocolError,
    Status,
    Tag,
    decode_attributes,
    encode_attributes,
)

__all__ = [
    "EntityStatusInquiry",
    "ScnBits",
    "ServerMessageReader",
    "ServerRequest",
    "StateChange",
    "StateChangeNotification",
    "encode_esi_response",
    "encode_scn_response",
    "parse_esi",
    "parse_scn",
]

#: Largest server request accepted (an SCN names changed nodes: small).
MAX_SERVER_MESSAGE = 64 * 1024


class ScnBits(enum.IntFlag):
    """The iSCSI SCN Bitmap (RFC 4171 §6.4.4; bit 31 is the least significant)."""

    DD_MEMBER_ADDED = 0x01
    DD_MEMBER_REMOVED = 0x02
    OBJECT_UPDATED = 0x04
    OBJECT_ADDED = 0x08
    OBJECT_REMOVED = 0x10
    MANAGEMENT_REGISTRATION = 0x20
    TARGET_AND_SELF_ONLY = 0x40
    INITIATOR_AND_SELF_ONLY = 0x80

    @classmethod
    def initiator_default(cls) -> ScnBits:
        """What open-iscsi's discoveryd registers (usr/discoveryd.c
        ``isns_register_objs``): objects updated, added, removed; targets and self only."""
        return cls.OBJECT_UPDATED | cls.OBJECT_ADDED | cls.OBJECT_REMOVED | cls.TARGET_AND_SELF_ONLY


@dataclass(frozen=True, slots=True)
class ServerRequest:
    """A request the server sent: function, transaction id, flags and attributes."""

    function: FunctionId
    xid: int
    flags: int
    attributes: tuple[Attribute, ...]


@dataclass
class ServerMessageReader:
    """Reassembles the requests a server sends on one connection (RFC 4171 §5.4):
    feed bytes, get the complete requests.  Responses and unknown functions are
    protocol errors (the connection is then closed)."""

    max_message: int = MAX_SERVER_MESSAGE
    _buffer: bytearray = field(default_factory=bytearray)
    _payload: bytearray = field(default_factory=bytearray)
    _first: Header | None = None
    _sequence: int = 0

    @property
    def buffered(self) -> bool:
        """True while part of a message has arrived and the rest has not."""
        return bool(self._buffer) or self._first is not None

    def receive_data(self, data: bytes) -> list[ServerRequest]:
        self._buffer += data
        out: list[ServerRequest] = []
        while len(self._buffer) >= HEADER_LEN:
            header = Header.decode(self._buffer)
            self._check(header)
            end = HEADER_LEN + header.length
            if end > self.max_message + HEADER_LEN:
                raise IsnsProtocolError(f"iSNS server message over {self.max_message} bytes")
            if len(self._buffer) < end:
                break
            if self._first is None:
                self._first = header
            self._sequence += 1
            self._payload += self._buffer[HEADER_LEN:end]
            del self._buffer[:end]
            if len(self._payload) > self.max_message:
                raise IsnsProtocolError(f"iSNS server message over {self.max_message} bytes")
            if header.flags & Flags.LAST_PDU:
                first, self._first, self._sequence = self._first, None, 0
                payload, self._payload = bytes(self._payload), bytearray()
                attrs = tuple(decode_attributes(payload))
                out.append(ServerRequest(FunctionId(first.function), first.xid, first.flags, attrs))
        return out

    def _check(self, header: Header) -> None:
        if header.version != VERSION:
            raise IsnsProtocolError(f"iSNS version {header.version}, expected 1")
        if header.function not in (FunctionId.SCN, FunctionId.ESI):
            raise IsnsProtocolError(f"iSNS server sent function id 0x{header.function:04x}")
        if header.length % 4:
            raise IsnsProtocolError(f"iSNS PDU length {header.length} not a multiple of 4")
        if header.flags & Flags.AUTH:
            raise IsnsProtocolError("iSNS authentication blocks are not supported")
        first = self._first
        if first is not None and (header.function, header.xid) != (first.function, first.xid):
            raise IsnsProtocolError("iSNS PDU of another message before the last PDU")
        if bool(header.flags & Flags.FIRST_PDU) != (first is None):
            raise IsnsProtocolError("iSNS PDU first-PDU flag out of place")
        if header.sequence != self._sequence:
            raise IsnsProtocolError(
                f"iSNS sequence id {header.sequence}, expected {self._sequence}"
            )


@dataclass(frozen=True, slots=True)
class StateChange:
    """One change an SCN reports: what happened (bitmap) to which storage node."""

    bits: ScnBits
    name: str


@dataclass(frozen=True, slots=True)
class StateChangeNotification:
    """An SCN: for whom (``destination``), when (seconds since 1970) and what."""

    xid: int
    destination: str
    timestamp: int
    changes: tuple[StateChange, ...]


@dataclass(frozen=True, slots=True)
class EntityStatusInquiry:
    """An ESI: the server checks that the entity is alive through this portal."""

    xid: int
    attributes: tuple[Attribute, ...]


def parse_scn(request: ServerRequest) -> StateChangeNotification:
    """The SCN's destination, timestamp and changes (open-isns ``isns_process_scn``'s
    rules: name first, timestamp second, then bitmap/name pairs, DD ids skipped)."""
    if request.function != FunctionId.SCN:
        raise IsnsProtocolError(f"not an SCN: function id 0x{request.function:04x}")
    attrs = request.attributes
    if len(attrs) < 2 or attrs[0].tag != Tag.ISCSI_NAME:
        raise IsnsProtocolError("iSNS SCN without a destination iSCSI Name")
    if attrs[1].tag != Tag.TIMESTAMP or len(attrs[1].value) != 8:
        raise IsnsProtocolError("iSNS SCN without a timestamp")
    changes: list[StateChange] = []
    i = 2
    while i < len(attrs):
        bitmap = attrs[i]
        if bitmap.tag != Tag.ISCSI_SCN_BITMAP:
            raise IsnsProtocolError(f"iSNS SCN: attribute {bitmap.tag} where a bitmap belongs")
        if i + 1 >= len(attrs) or attrs[i + 1].tag != Tag.ISCSI_NAME:
            raise IsnsProtocolError("iSNS SCN: a bitmap without the node's iSCSI Name")
        changes.append(StateChange(ScnBits(bitmap.as_uint32() & 0xFF), attrs[i + 1].as_string()))
        i += 2
        while i < len(attrs) and attrs[i].tag != Tag.ISCSI_SCN_BITMAP:
            i += 1  # DD_ID / DDS_ID of a management SCN
    return StateChangeNotification(
        request.xid,
        attrs[0].as_string(),
        int.from_bytes(attrs[1].value, "big"),
        tuple(changes),
    )


def parse_esi(request: ServerRequest) -> EntityStatusInquiry:
    if request.function != FunctionId.ESI:
        raise IsnsProtocolError(f"not an ESI: function id 0x{request.function:04x}")
    return EntityStatusInquiry(request.xid, request.attributes)


def _response(function: FunctionId, xid: int, status: Status, attrs: list[Attribute]) -> bytes:
    payload = int(status).to_bytes(4, "big") + encode_attributes(attrs)
    flags = Flags.CLIENT | Flags.FIRST_PDU | Flags.LAST_PDU
    return Header(function | RESPONSE_BIT, len(payload), flags, xid, 0).encode() + payload


def encode_scn_response(xid: int, destination: str, status: Status = Status.SUCCESSFUL) -> bytes:
    """SCNRsp: the status and the SCN's destination iSCSI Name (RFC 4171 §5.7.5.8)."""
    attrs = [Attribute.string(Tag.ISCSI_NAME, destination)] if status == 0 else []
    return _response(FunctionId.SCN, xid, status, attrs)


def encode_esi_response(inquiry: EntityStatusInquiry) -> bytes:
    """ESIRsp: success and the ESI's own attributes back (RFC 4171 §5.7.5.13)."""
    return _response(FunctionId.ESI, inquiry.xid, Status.SUCCESSFUL, list(inquiry.attributes))
