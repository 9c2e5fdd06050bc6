"""SendTargets discovery (RFC 7143 §4.3, Appendix C), sans-I/O.

:class:`SendTargetsMachine` builds the Text Request ``SendTargets=All`` (or a target
name), follows long responses (F=0 with a Target Transfer Tag, and C-bit continuation
of a key split across PDUs, RFC 7143 §11.10.2), and parses the answer into
:class:`DiscoveredTarget` records: one per (target, portal), so a target with several
``TargetAddress`` values yields several records.
"""

from __future__ import annotations

from dataclasses import dataclass

from iscsikit.errors import RemoteProtocolError
from iscsikit.proto.address import Portal, format_portal, parse_address
from iscsikit.proto.constants import RESERVED_TAG, RejectReason
from iscsikit.proto.pdu import Pdu, Reject, TextRequest, TextResponse
from iscsikit.proto.session import SessionState
from iscsikit.proto.text import TextAssembler, encode_text

#: Cap on the whole SendTargets answer, so a target cannot make us buffer forever.
#: 300 targets with long names and two portals each fit in ~64 KiB; allow plenty more.
MAX_RESPONSE_BYTES = 16 * 1024 * 1024

#: ``TargetPortalGroupTag`` unknown: open-iscsi's PORTAL_GROUP_TAG_UNKNOWN.
TPGT_UNKNOWN = -1


@dataclass(frozen=True, slots=True)
class DiscoveredTarget:
    """One (target, portal) pair returned by discovery."""

    name: str
    host: str
    port: int
    tpgt: int

    @property
    def portal(self) -> str:
        """``ip:port`` (``[addr]:port`` for IPv6), as iscsiadm prints it."""
        return format_portal(self.host, self.port)

    def __str__(self) -> str:
        # iscsiadm's discovery output line: "ip:port,tpgt iqn".
        return f"{self.portal},{self.tpgt} {self.name}"


def parse_sendtargets(
    pairs: list[tuple[str, str]], discovery_portal: Portal
) -> list[DiscoveredTarget]:
    """Group ``TargetName`` / ``TargetAddress`` keys into records (RFC 7143 Appendix C).

    A ``TargetName`` without any ``TargetAddress`` is reachable at the portal the
    discovery ran on, with an unknown portal group tag (as open-iscsi records it).
    Duplicate (target, portal, tpgt) entries are folded, order is preserved.
    """
    result: list[DiscoveredTarget] = []
    seen: set[DiscoveredTarget] = set()
    current: str | None = None
    addresses = 0

    def add(record: DiscoveredTarget) -> None:
        if record not in seen:
            seen.add(record)
            result.append(record)

    def close_target() -> None:
        if current is not None and addresses == 0:
            add(
                DiscoveredTarget(
                    current, discovery_portal.host, discovery_portal.port, TPGT_UNKNOWN
                )
            )

    for key, value in pairs:
        if key == "TargetName":
            close_target()
            if not value:
                raise RemoteProtocolError(
                    "SendTargets answer has an empty TargetName",
                    reject_reason=RejectReason.PROTOCOL_ERROR,
                )
            current, addresses = value, 0
        elif key == "TargetAddress":
            if current is None:
                raise RemoteProtocolError(
                    "SendTargets answer has a TargetAddress before any TargetName",
                    reject_reason=RejectReason.PROTOCOL_ERROR,
                )
            try:
                portal, tpgt = parse_address(value)
            except ValueError as exc:
                raise RemoteProtocolError(
                    f"SendTargets answer has a bad TargetAddress {value!r}: {exc}",
                    reject_reason=RejectReason.PROTOCOL_ERROR,
                ) from None
            addresses += 1
            add(
                DiscoveredTarget(
                    current, portal.host, portal.port, TPGT_UNKNOWN if tpgt is None else tpgt
                )
            )
        # Other keys (TargetAlias, X- extensions) carry nothing discovery records keep.
    close_target()
    return result


class SendTargetsMachine:
    """One SendTargets exchange on a logged-in (usually Discovery) session.

    ``start()`` returns the Text Request; feed every Text Response to ``receive``,
    which returns either the next (empty, continuation) Text Request to send or the
    final list of :class:`DiscoveredTarget`.
    """

    def __init__(
        self,
        state: SessionState,
        discovery_portal: Portal,
        *,
        query: str = "All",
        max_response_bytes: int = MAX_RESPONSE_BYTES,
    ) -> None:
        self._state = state
        self._portal = discovery_portal
        self._query = query
        self._text = TextAssembler(max_response_bytes)
        self._itt: int | None = None
        self._done = False

    def start(self) -> TextRequest:
        if self._itt is not None:
            raise RemoteProtocolError("SendTargets already started")
        self._itt = self._state.next_itt()
        return self._request(encode_text([("SendTargets", self._query)]), RESERVED_TAG)

    def _request(self, data: bytes, ttt: int) -> TextRequest:
        assert self._itt is not None
        cmdsn = self._state.take_cmdsn()
        return TextRequest(
            immediate=False,
            final=True,
            cont=False,
            lun=0,
            itt=self._itt,
            ttt=ttt,
            cmdsn=cmdsn,
            expstatsn=self._state.expstatsn,
            data=data,
        )

    def receive(self, pdu: Pdu) -> TextRequest | list[DiscoveredTarget]:
        if self._itt is None or self._done:
            raise RemoteProtocolError("unexpected Text Response: no SendTargets in progress")
        if isinstance(pdu, Reject):
            raise RemoteProtocolError(
                f"target rejected the SendTargets request (reason 0x{pdu.reason:02x})",
                reject_reason=RejectReason.PROTOCOL_ERROR,
            )
        if not isinstance(pdu, TextResponse):
            raise RemoteProtocolError(
                f"expected a Text Response, got {type(pdu).__name__}",
                reject_reason=RejectReason.PROTOCOL_ERROR,
            )
        if pdu.itt != self._itt:
            raise RemoteProtocolError(
                "Text Response ITT does not match the request",
                reject_reason=RejectReason.INVALID_PDU_FIELD,
            )
        self._state.update_from_response(pdu.statsn, pdu.expcmdsn, pdu.maxcmdsn)
        if pdu.final and pdu.cont:
            raise RemoteProtocolError(
                "Text Response with both F and C bits set",
                reject_reason=RejectReason.PROTOCOL_ERROR,
            )
        if pdu.final and pdu.ttt != RESERVED_TAG:
            raise RemoteProtocolError(
                "final Text Response carries a Target Transfer Tag",
                reject_reason=RejectReason.INVALID_PDU_FIELD,
            )
        pairs = self._text.feed(pdu.data, cont=not pdu.final)
        if pairs is None:
            if pdu.ttt == RESERVED_TAG:
                raise RemoteProtocolError(
                    "non-final Text Response without a Target Transfer Tag",
                    reject_reason=RejectReason.INVALID_PDU_FIELD,
                )
            # RFC 7143 §11.10.4: an empty Text Request with the TTT asks for more.
            return self._request(b"", pdu.ttt)
        self._done = True
        return parse_sendtargets(pairs, self._portal)
