"""iSNS messages an initiator exchanges (RFC 4171 §5.6, §5.7): requests, responses
reassembled from PDUs, the Portal Groups of a query, and :class:`IsnsClient`, the
sans-I/O conversation (bytes out, bytes in)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from iscsikit.errors import LocalProtocolError
from iscsikit.proto.isns.wire import (
    HEADER_LEN,
    MAX_MESSAGE_BYTES,
    MAX_PDU_PAYLOAD,
    QUERY_ATTRIBUTES,
    RESPONSE_BIT,
    VERSION,
    Attribute,
    Flags,
    FunctionId,
    Header,
    IsnsProtocolError,
    NodeType,
    Status,
    Tag,
    decode_attributes,
    encode_attributes,
)
from iscsikit.proto.sendtargets import DiscoveredTarget

# -- requests -----------------------------------------------------------------------------


def encode_request(
    function: FunctionId,
    xid: int,
    source: str,
    key: Sequence[Attribute] = (),
    operating: Sequence[Attribute] = (),
    *,
    replace: bool = False,
) -> bytes:
    """One request PDU: Source, Message Key, Delimiter, Operating Attributes (§5.6.1).

    SCNDereg has no operating attributes and no delimiter (RFC 4171 §5.6.5.6; open-isns
    ``__isns_simple_encode`` omits it there too)."""
    delimiter = [] if function == FunctionId.SCN_DEREG else [Attribute(Tag.DELIMITER)]
    payload = encode_attributes(
        [Attribute.string(Tag.ISCSI_NAME, source), *key, *delimiter, *operating]
    )
    if len(payload) > MAX_PDU_PAYLOAD:
        raise LocalProtocolError(f"iSNS request of {len(payload)} bytes does not fit one PDU")
    flags = Flags.CLIENT | Flags.FIRST_PDU | Flags.LAST_PDU
    if replace:
        flags |= Flags.REPLACE
    return Header(function, len(payload), flags, xid & 0xFFFF, 0).encode() + payload


# -- responses ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Response:
    """A reassembled response: function, transaction id, status and its attributes."""

    function: FunctionId
    xid: int
    status: Status
    attributes: tuple[Attribute, ...] = ()

    @property
    def key(self) -> tuple[Attribute, ...]:
        """The Message Key attributes (before the delimiter; all if there is none)."""
        for i, attr in enumerate(self.attributes):
            if attr.tag == Tag.DELIMITER:
                return self.attributes[:i]
        return self.attributes

    @property
    def operating(self) -> tuple[Attribute, ...]:
        """The Operating Attributes (after the delimiter; none if there is none)."""
        for i, attr in enumerate(self.attributes):
            if attr.tag == Tag.DELIMITER:
                return self.attributes[i + 1 :]
        return ()


@dataclass
class ResponseAssembler:
    """Collects the PDUs of one response (RFC 4171 §5.4) and checks each against the
    request: function id, transaction id, sequence ids 0, 1, ..., first/last flags."""

    function: FunctionId
    xid: int
    max_message: int = MAX_MESSAGE_BYTES
    _buffer: bytearray = field(default_factory=bytearray)
    _payload: bytearray = field(default_factory=bytearray)
    _sequence: int = 0
    _done: Response | None = None

    def receive_data(self, data: bytes) -> Response | None:
        """Feed bytes; the response once its last PDU arrived (then no more bytes)."""
        if self._done is not None:
            if data:
                raise IsnsProtocolError("iSNS server sent data after the response")
            return self._done
        self._buffer += data
        if len(self._buffer) > self.max_message + HEADER_LEN:
            raise IsnsProtocolError(f"iSNS response over {self.max_message} bytes")
        while self._done is None and len(self._buffer) >= HEADER_LEN:
            header = Header.decode(self._buffer)
            self._check(header)
            end = HEADER_LEN + header.length
            if len(self._buffer) < end:
                break
            self._payload += self._buffer[HEADER_LEN:end]
            del self._buffer[:end]
            if len(self._payload) > self.max_message:
                raise IsnsProtocolError(f"iSNS response over {self.max_message} bytes")
            self._sequence += 1
            if header.flags & Flags.LAST_PDU:
                if self._buffer:
                    raise IsnsProtocolError("iSNS server sent data after the last PDU")
                self._done = self._decode()
        return self._done

    @property
    def pending(self) -> int:
        """Bytes of a PDU received but not complete (0 between PDUs)."""
        return len(self._buffer)

    def _check(self, header: Header) -> None:
        expected = self.function | RESPONSE_BIT
        if header.version != VERSION:
            raise IsnsProtocolError(f"iSNS version {header.version}, expected 1")
        if header.function != expected:
            raise IsnsProtocolError(
                f"iSNS function id 0x{header.function:04x}, expected 0x{expected:04x}"
            )
        if header.xid != self.xid:
            raise IsnsProtocolError(f"iSNS transaction id {header.xid}, expected {self.xid}")
        if header.sequence != self._sequence:
            raise IsnsProtocolError(
                f"iSNS sequence id {header.sequence}, expected {self._sequence}"
            )
        if header.length % 4:
            raise IsnsProtocolError(f"iSNS PDU length {header.length} not a multiple of 4")
        if bool(header.flags & Flags.FIRST_PDU) != (self._sequence == 0):
            raise IsnsProtocolError("iSNS PDU first-PDU flag out of place")
        if header.flags & Flags.AUTH:
            raise IsnsProtocolError("iSNS authentication blocks are not supported")

    def _decode(self) -> Response:
        if len(self._payload) < 4:
            raise IsnsProtocolError("iSNS response without a status")
        code = int.from_bytes(self._payload[:4], "big")
        try:
            status = Status(code)
        except ValueError:
            raise IsnsProtocolError(f"iSNS status {code} unknown") from None
        attrs = decode_attributes(memoryview(self._payload)[4:]) if status == 0 else []
        return Response(FunctionId(self.function | RESPONSE_BIT), self.xid, status, tuple(attrs))


# -- what a query found -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PortalGroup:
    """A Portal Group object: the target, its portal and tag (None: the NULL PGT, no
    access through that portal, RFC 4171 §6.5.4)."""

    name: str
    address: str
    port: int
    tag: int | None


#: Tags that begin an object in a query response (the first key attribute of each
#: object type, RFC 4171 §6.1: entity, portal, storage node, portal group).
_OBJECT_STARTS = frozenset(
    {Tag.ENTITY_IDENTIFIER, Tag.PORTAL_IP_ADDRESS, Tag.ISCSI_NAME, Tag.PG_ISCSI_NAME}
)
_PG_TAGS = frozenset(
    {Tag.PG_ISCSI_NAME, Tag.PG_PORTAL_IP_ADDR, Tag.PG_PORTAL_TCP_UDP_PORT, Tag.PG_TAG}
)


def _objects(attributes: Iterable[Attribute]) -> list[dict[int, Attribute]]:
    objects: list[dict[int, Attribute]] = []
    current: dict[int, Attribute] | None = None
    for attr in attributes:
        if current is None or attr.tag in _OBJECT_STARTS or attr.tag in current:
            current = {}
            objects.append(current)
        current[attr.tag] = attr
    return objects


def portal_groups(response: Response) -> list[PortalGroup]:
    """The Portal Group objects of a DevAttrQryRsp (incomplete ones skipped, as
    open-iscsi skips a PG without name, address, port or tag)."""
    out: list[PortalGroup] = []
    for obj in _objects(response.operating):
        if not _PG_TAGS.intersection(obj):
            continue
        name, ip, port, tag = (obj.get(t) for t in sorted(_PG_TAGS))
        if name is None or ip is None or port is None or tag is None:
            continue
        text = name.as_string()
        if not text:
            raise IsnsProtocolError("iSNS portal group without a name")
        pgt = tag.as_uint32() if tag.value else None
        if pgt is not None and pgt > 0xFFFF:
            raise IsnsProtocolError(f"iSNS portal group tag {pgt} over 65535")
        out.append(PortalGroup(text, ip.as_ip(), port.as_port(), pgt))
    return out


def discovered_targets(response: Response) -> list[DiscoveredTarget]:
    """(target, portal, tpgt) records from the Portal Groups with a tag, in order,
    repeated ones folded."""
    found = [
        DiscoveredTarget(pg.name, pg.address, pg.port, pg.tag)
        for pg in portal_groups(response)
        if pg.tag is not None
    ]
    return list(dict.fromkeys(found))


# -- the client ---------------------------------------------------------------------------

_ENTITY_PROTOCOL_ISCSI = 2  # RFC 4171 §6.2.2


class IsnsClient:
    """An initiator's iSNS conversation, one request at a time: each ``*_request``
    method returns the bytes to send, :meth:`receive_data` the response once complete."""

    def __init__(self, initiator_name: str, *, first_xid: int = 1) -> None:
        if not initiator_name:
            raise LocalProtocolError("an iSNS source needs an initiator name")
        self.initiator_name = initiator_name
        self._xid = first_xid & 0xFFFF
        self._pending: ResponseAssembler | None = None

    def _request(
        self,
        function: FunctionId,
        key: Sequence[Attribute],
        operating: Sequence[Attribute],
        *,
        replace: bool = False,
    ) -> bytes:
        if self._pending is not None:
            raise LocalProtocolError("an iSNS request is already outstanding")
        xid, self._xid = self._xid, (self._xid + 1) & 0xFFFF
        self._pending = ResponseAssembler(function, xid)
        return encode_request(function, xid, self.initiator_name, key, operating, replace=replace)

    def query_request(self, target: str | None = None) -> bytes:
        """DevAttrQry for every visible target (or one by name) with open-iscsi's
        operating attributes (usr/discovery.c ``discovery_isns_query``)."""
        key = (
            Attribute.string(Tag.ISCSI_NAME, target)
            if target
            else Attribute.uint32(Tag.ISCSI_NODE_TYPE, NodeType.TARGET)
        )
        return self._request(
            FunctionId.DEV_ATTR_QRY, [key], [Attribute(t) for t in QUERY_ATTRIBUTES]
        )

    def register_request(self) -> bytes:
        """DevAttrReg of this initiator (name + node type Initiator; the server makes
        the entity), as open-iscsi's ``discovery_isns_reg_node``."""
        return self._request(
            FunctionId.DEV_ATTR_REG,
            [],
            [
                Attribute.string(Tag.ISCSI_NAME, self.initiator_name),
                Attribute.uint32(Tag.ISCSI_NODE_TYPE, NodeType.INITIATOR),
            ],
        )

    def register_entity_request(self, entity: str, address: str, port: int, scn_port: int) -> bytes:
        """DevAttrReg replacing entity ``entity`` (protocol iSCSI) with one portal
        ``address:port`` whose SCN port is ``scn_port`` (TCP) and this initiator's
        node, as open-iscsi's discoveryd registers (usr/discoveryd.c ``isns_build_objs``):
        the server then sends SCNs to ``address:scn_port``."""
        eid = Attribute.string(Tag.ENTITY_IDENTIFIER, entity)
        return self._request(
            FunctionId.DEV_ATTR_REG,
            [eid],
            [
                eid,
                Attribute.uint32(Tag.ENTITY_PROTOCOL, _ENTITY_PROTOCOL_ISCSI),
                Attribute.ip(Tag.PORTAL_IP_ADDRESS, address),
                Attribute.uint32(Tag.PORTAL_TCP_UDP_PORT, port),
                Attribute.uint32(Tag.SCN_PORT, scn_port),
                Attribute.string(Tag.ISCSI_NAME, self.initiator_name),
                Attribute.uint32(Tag.ISCSI_NODE_TYPE, NodeType.INITIATOR),
            ],
            replace=True,
        )

    def deregister_entity_request(self, entity: str) -> bytes:
        """DevDereg of entity ``entity`` (its portals and nodes go with it)."""
        return self._request(
            FunctionId.DEV_DEREG, [], [Attribute.string(Tag.ENTITY_IDENTIFIER, entity)]
        )

    def deregister_request(self) -> bytes:
        """DevDereg of this initiator's node."""
        return self._request(
            FunctionId.DEV_DEREG, [], [Attribute.string(Tag.ISCSI_NAME, self.initiator_name)]
        )

    def scn_register_request(self, bitmap: int) -> bytes:
        """SCNReg of this initiator with an iSCSI SCN bitmap (RFC 4171 §5.6.5.5)."""
        return self._request(
            FunctionId.SCN_REG,
            [Attribute.string(Tag.ISCSI_NAME, self.initiator_name)],
            [Attribute.uint32(Tag.ISCSI_SCN_BITMAP, bitmap)],
        )

    def scn_deregister_request(self) -> bytes:
        return self._request(
            FunctionId.SCN_DEREG, [Attribute.string(Tag.ISCSI_NAME, self.initiator_name)], []
        )

    @property
    def awaiting(self) -> FunctionId | None:
        """The request whose response is awaited, or None."""
        return self._pending.function if self._pending is not None else None

    def receive_data(self, data: bytes) -> Response | None:
        """Bytes from the server; the response once complete (the client is then free
        for the next request).  ``b""`` means the server closed the connection."""
        if self._pending is None:
            if data:
                raise IsnsProtocolError("iSNS server sent data no request asked for")
            return None
        if not data:
            raise IsnsProtocolError("iSNS server closed the connection before responding")
        response = self._pending.receive_data(data)
        if response is not None:
            self._pending = None
        return response
