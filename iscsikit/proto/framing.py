"""Incremental PDU framing of a received byte stream (RFC 7143 §11.1, §11.2).

This module owns :class:`PduReader`, the sans-I/O parser between a transport's
``recv`` and the protocol machines: bytes go in with :meth:`PduReader.receive_data`,
whole decoded PDUs come out of :meth:`PduReader.next_pdu`.  It never reads a socket,
sleeps or looks at a clock; decoding is :mod:`iscsikit.proto.pdu`'s job.

Every header is checked before its payload is waited for: a data segment longer than
the MaxRecvDataSegmentLength we declared (RFC 7143 §13.12) is refused as soon as its
BHS (and header digest) has arrived, so a hostile length costs no memory.
"""

from __future__ import annotations

from typing import Final, Literal

from iscsikit.errors import LocalProtocolError, RemoteProtocolError
from iscsikit.proto.constants import (
    BHS_LEN,
    DIGEST_LEN,
    INITIATOR_OPCODES,
    MAX_DATA_SEGMENT_LENGTH,
    TARGET_OPCODES,
    RejectReason,
)
from iscsikit.proto.pdu import (
    PDU_TYPES,
    Pdu,
    decode_body,
    parse_bhs_lengths,
    pdu_class_for,
    pdu_length,
    verify_header_digest,
)

#: Consumed bytes are dropped from the front of the buffer once there are this many
#: and they are at least half of it (amortised O(1) per byte, no O(n**2) copying).
_COMPACT_AT: Final = 64 * 1024

#: A header accepted for the PDU being received: class, TotalAHSLength in bytes,
#: DataSegmentLength, total PDU length, and the digest settings it was parsed under.
_Header = tuple[type[Pdu], int, int, int, bool, bool]


class PduReader:
    """Splits a byte stream into PDUs sent by *peer* (``"target"`` or ``"initiator"``).

    ``header_digest``, ``data_digest`` and ``max_data_segment_length`` are the
    connection's negotiated settings for what we receive; they change after login
    (RFC 7143 §13.1, §13.12) and apply to every PDU whose header has not been
    accepted yet, so set them before asking for the first Full Feature Phase PDU.

    Errors are :class:`RemoteProtocolError`: reason 0x05 for an unknown opcode, 0x04
    for an opcode *peer* never sends or a too long data segment, 0x09 for a
    malformed header; :class:`DigestError` for a digest mismatch (reason 0x02 for a
    data digest, none for a header digest, after which the connection must be
    dropped).  After an error the reader is poisoned: every later call raises the
    same error.
    """

    __slots__ = (
        "_buf",
        "_data_digest",
        "_error",
        "_header",
        "_header_digest",
        "_max_dsl",
        "_opcodes",
        "_pos",
        "peer",
    )

    def __init__(
        self,
        *,
        peer: Literal["target", "initiator"] = "target",
        header_digest: bool = False,
        data_digest: bool = False,
        max_data_segment_length: int = 8192,
    ) -> None:
        if peer == "target":
            self._opcodes = TARGET_OPCODES
        elif peer == "initiator":
            self._opcodes = INITIATOR_OPCODES
        else:
            raise LocalProtocolError(f"peer must be 'target' or 'initiator', not {peer!r}")
        #: Who sends the PDUs this reader parses.
        self.peer: Final = peer
        self._buf = bytearray()
        self._pos = 0
        self._header: _Header | None = None
        self._error: RemoteProtocolError | None = None
        self._header_digest = bool(header_digest)
        self._data_digest = bool(data_digest)
        self._max_dsl = _check_max(max_data_segment_length)

    # --- settings -------------------------------------------------------------------

    @property
    def header_digest(self) -> bool:
        """Whether received PDUs carry a CRC32C header digest (RFC 7143 §13.1)."""
        return self._header_digest

    @header_digest.setter
    def header_digest(self, value: bool) -> None:
        self._header_digest = bool(value)
        self._header = None  # re-parse a not yet finished PDU under the new setting

    @property
    def data_digest(self) -> bool:
        """Whether received data segments carry a CRC32C data digest (RFC 7143 §13.1)."""
        return self._data_digest

    @data_digest.setter
    def data_digest(self, value: bool) -> None:
        self._data_digest = bool(value)
        self._header = None

    @property
    def max_data_segment_length(self) -> int:
        """The MaxRecvDataSegmentLength we declared (RFC 7143 §13.12)."""
        return self._max_dsl

    @max_data_segment_length.setter
    def max_data_segment_length(self, value: int) -> None:
        self._max_dsl = _check_max(value)
        self._header = None

    # --- data in, PDUs out ----------------------------------------------------------

    def receive_data(self, data: bytes | bytearray | memoryview) -> None:
        """Append bytes received from the peer (an empty chunk is ignored)."""
        if self._error is not None:
            raise self._error
        self._buf += data

    def next_pdu(self) -> Pdu | None:
        """The next complete PDU, or ``None`` when more bytes are needed."""
        if self._error is not None:
            raise self._error
        header = self._header or self._accept_header()
        if header is None:
            return None
        cls, total_ahs, dsl, length, header_digest, data_digest = header
        pos = self._pos
        if len(self._buf) - pos < length:
            return None
        try:
            pdu = decode_body(
                cls,
                self._buf,
                pos,
                total_ahs,
                dsl,
                header_digest=header_digest,
                data_digest=data_digest,
            )
        except RemoteProtocolError as exc:
            self._error = exc
            raise
        self._header = None
        pos += length
        if pos == len(self._buf):
            self._buf.clear()
            pos = 0
        elif pos >= _COMPACT_AT and pos * 2 >= len(self._buf):
            del self._buf[:pos]
            pos = 0
        self._pos = pos
        return pdu

    @property
    def bytes_needed(self) -> int:
        """How many more bytes complete the PDU being received (0: one is ready).

        An I/O layer can ``recv_into`` exactly this much.  Reading it validates the
        header once it has arrived, so it raises what :meth:`next_pdu` would.
        """
        if self._error is not None:
            raise self._error
        available = len(self._buf) - self._pos
        header = self._header or self._accept_header()
        if header is not None:
            return max(0, header[3] - available)
        if available < BHS_LEN:
            return BHS_LEN - available
        # The BHS is here but its header digest is not yet.
        total_ahs = parse_bhs_lengths(self._buf, self._pos)[1]
        return BHS_LEN + total_ahs + DIGEST_LEN - available

    @property
    def buffered(self) -> int:
        """Bytes received but not yet returned as part of a PDU."""
        return len(self._buf) - self._pos

    def take_buffered(self) -> bytes:
        """Hand over the bytes received but not yet parsed (to another reader), and forget
        them: the Full Feature Phase machine takes the stream over after login."""
        rest = bytes(self._buf[self._pos :])
        self._buf.clear()
        self._pos = 0
        self._header = None
        return rest

    # --- internals ------------------------------------------------------------------

    def _accept_header(self) -> _Header | None:
        """Validate the header at the read position once it is complete, and cache it."""
        buf, pos = self._buf, self._pos
        available = len(buf) - pos
        if available < BHS_LEN:
            return None
        header_digest = self._header_digest
        try:
            opcode, total_ahs, dsl = parse_bhs_lengths(buf, pos)
            if header_digest:
                # Nothing in the header can be trusted before its digest is checked.
                if available < BHS_LEN + total_ahs + DIGEST_LEN:
                    return None
                verify_header_digest(buf, pos, total_ahs)
            if opcode not in self._opcodes and opcode in PDU_TYPES:
                raise RemoteProtocolError(
                    f"{PDU_TYPES[opcode].__name__} received from the {self.peer}, "
                    "which never sends one",
                    reject_reason=RejectReason.PROTOCOL_ERROR,
                )
            cls = pdu_class_for(opcode, total_ahs, dsl)
            if dsl > self._max_dsl:
                raise RemoteProtocolError(
                    f"{dsl}-byte data segment exceeds MaxRecvDataSegmentLength={self._max_dsl}",
                    reject_reason=RejectReason.PROTOCOL_ERROR,
                )
        except RemoteProtocolError as exc:
            self._error = exc
            raise
        data_digest = self._data_digest
        length = pdu_length(total_ahs, dsl, header_digest=header_digest, data_digest=data_digest)
        header = (cls, total_ahs, dsl, length, header_digest, data_digest)
        self._header = header
        return header


def _check_max(value: int) -> int:
    if not 0 < value <= MAX_DATA_SEGMENT_LENGTH:
        raise LocalProtocolError(
            f"max_data_segment_length must be in 1..{MAX_DATA_SEGMENT_LENGTH}, not {value}"
        )
    return value


__all__ = ["PduReader"]
