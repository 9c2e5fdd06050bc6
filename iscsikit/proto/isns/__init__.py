"""iSNS protocol (RFC 4171), the initiator's side, sans-I/O.

This module owns the iSNSP wire format an initiator needs for discovery: the 12-byte
header (RFC 4171 §5.1), TLV attributes (§5.5, §6), the requests DevAttrReg,
DevAttrQry, DevDereg, SCNReg and SCNDereg (§5.6.5), the responses (function id |
0x8000, a 4-byte status first, §5.7), reassembly of a response sent as several PDUs
(§5.4), the SCN and ESI messages a server sends and their responses (:mod:`.scn`),
and turning the Portal Group objects of a DevAttrQryRsp into
:class:`~iscsikit.proto.sendtargets.DiscoveredTarget` records as open-iscsi's
``discovery_isns_query`` does.  No sockets, no clocks: :class:`IsnsClient` hands out
bytes to send and takes the bytes received.

Everything malformed a server can send raises :class:`IsnsProtocolError` (an
:class:`~iscsikit.errors.RemoteProtocolError` exiting 25, ISNS_QUERY, as iscsiadm's
failed query does), never an IndexError or struct.error.
"""

from __future__ import annotations

from iscsikit.proto.isns.messages import (
    IsnsClient,
    PortalGroup,
    Response,
    ResponseAssembler,
    discovered_targets,
    encode_request,
    portal_groups,
)
from iscsikit.proto.isns.scn import (
    EntityStatusInquiry,
    ScnBits,
    ServerMessageReader,
    ServerRequest,
    StateChange,
    StateChangeNotification,
    encode_esi_response,
    encode_scn_response,
    parse_esi,
    parse_scn,
)
from iscsikit.proto.isns.wire import (
    DEFAULT_PORT,
    HEADER_LEN,
    MAX_MESSAGE_BYTES,
    MAX_PDU_PAYLOAD,
    QUERY_ATTRIBUTES,
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

__all__ = [
    "DEFAULT_PORT",
    "HEADER_LEN",
    "MAX_MESSAGE_BYTES",
    "MAX_PDU_PAYLOAD",
    "QUERY_ATTRIBUTES",
    "Attribute",
    "EntityStatusInquiry",
    "Flags",
    "FunctionId",
    "Header",
    "IsnsClient",
    "IsnsProtocolError",
    "NodeType",
    "PortalGroup",
    "Response",
    "ResponseAssembler",
    "ScnBits",
    "ServerMessageReader",
    "ServerRequest",
    "StateChange",
    "StateChangeNotification",
    "Status",
    "Tag",
    "decode_attributes",
    "discovered_targets",
    "encode_attributes",
    "encode_esi_response",
    "encode_request",
    "encode_scn_response",
    "parse_esi",
    "parse_scn",
    "portal_groups",
]
