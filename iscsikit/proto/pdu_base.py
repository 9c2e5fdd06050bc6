"""The base of every PDU class, and the small helpers the codec modules share.

This module owns the contract between a PDU class and the codec
(:mod:`iscsikit.proto.pdu`): a class packs its own 48-byte Basic Header Segment
(RFC 7143 §11.2.1) with one precompiled :class:`struct.Struct`, unpacks it the same
way, and says whether it may carry an AHS or a data segment.  Framing, digests and
padding are the codec's job, not the classes'.

It also owns the SAM LUN helpers (:func:`lun_to_field`, :func:`field_to_lun`).  Import
PDU classes and functions from :mod:`iscsikit.proto.pdu`, not from here.
"""

from __future__ import annotations

import dataclasses
from struct import Struct
from typing import Any, ClassVar, Final, TypeAlias

from iscsikit.errors import InvalidParameterError, LocalProtocolError, RemoteProtocolError
from iscsikit.proto.constants import Opcode, RejectReason

#: What the decoders accept: a PDU in memory, or the receive buffer it sits in.
Buffer: TypeAlias = bytes | bytearray | memoryview

#: Byte 0 of the BHS: bit 1 (0x40) is the I (immediate) bit, the low six bits the
#: opcode (RFC 7143 §11.2.1).  Bit 0 is reserved.
IMMEDIATE_BIT: Final = 0x40
OPCODE_MASK: Final = 0x3F
#: The F bit (RFC 7143 §11.2.1); several PDUs define it as always 1.
FINAL_BIT: Final = 0x80

#: Zero padding for a segment of length n: ``PADDING[-n & 3]`` (RFC 7143 §11.1).
PADDING: Final = (b"", b"\0", b"\0\0", b"\0\0\0")


class Pdu:
    """Base of the PDU classes, one per opcode (RFC 7143 §11).

    Subclasses are slotted, keyword-only dataclasses whose fields are the PDU's
    header fields plus ``data``, the data segment without its padding.  Flags are
    ``bool``; numbers, tags, sequence numbers and code points are ``int`` (compare
    them with the enums of :mod:`iscsikit.proto.constants`); the 64-bit LUN field is
    an ``int`` too (see :func:`lun_to_field`).  Reserved fields are written as zeros
    and ignored on receipt, as RFC 7143 §11.2 asks.
    """

    __slots__ = ()

    # Every concrete PDU class is a dataclass: say so to type checkers, so that
    # ``dataclasses.fields(pdu)`` and ``dataclasses.replace(pdu, ...)`` type-check.
    __dataclass_fields__: ClassVar[dict[str, dataclasses.Field[Any]]]

    #: The opcode this class encodes and decodes.
    opcode: ClassVar[Opcode]
    #: Whether the PDU format has a data segment; when not, a non-zero
    #: DataSegmentLength is an invalid PDU field.
    DATA_ALLOWED: ClassVar[bool] = True
    #: Whether the PDU may carry Additional Header Segments (only a SCSI Command can:
    #: both AHS types RFC 7143 §11.2.2 defines belong to it).
    AHS_ALLOWED: ClassVar[bool] = False

    #: The data segment, unpadded.  Every subclass declares it as a field.
    data: bytes

    def _segments(self) -> tuple[bytes, bytes]:
        """The AHS bytes (padded, possibly empty) and the data segment to send."""
        return b"", self.data

    def _pack(self, lengths: int) -> bytes:
        """The 48-byte BHS; *lengths* is the TotalAHSLength/DataSegmentLength word."""
        raise NotImplementedError

    @classmethod
    def _unpack(cls, buf: Buffer, offset: int, ahs: bytes, data: bytes) -> Pdu:
        """Build a PDU from the BHS at ``buf[offset:offset + 48]``, its AHS and data."""
        raise NotImplementedError


def invalid_field(message: str) -> RemoteProtocolError:
    """A received PDU with a field no valid PDU has (Reject reason 0x09)."""
    return RemoteProtocolError(message, reject_reason=RejectReason.INVALID_PDU_FIELD)


def protocol_error(message: str) -> RemoteProtocolError:
    """A received PDU that breaks a rule of the protocol (Reject reason 0x04)."""
    return RemoteProtocolError(message, reject_reason=RejectReason.PROTOCOL_ERROR)


def local_error(pdu: Pdu, message: str) -> LocalProtocolError:
    """A PDU the caller asked to encode that the protocol cannot express."""
    return LocalProtocolError(f"cannot encode {type(pdu).__name__}: {message}")


# --- LUN helpers --------------------------------------------------------------------
#
# The BHS LUN field is the 8-byte SAM LUN structure (RFC 7143 §11.2.1, SAM-2 §4.9).
# Single-level LUNs 0..255 use peripheral device addressing (method 00b, bus 0);
# 256..16383 need flat space addressing (method 01b), the 14-bit LUN in the first
# two bytes.  The remaining six bytes are zero.

_PERIPHERAL: Final = 0x00
_FLAT: Final = 0x40
#: Largest LUN number the single-level flat space method can carry.
MAX_FLAT_LUN: Final = 0x3FFF


def lun_to_field(lun: int) -> int:
    """The 64-bit LUN field value addressing logical unit number *lun* (0..16383)."""
    if 0 <= lun <= 0xFF:
        return lun << 48
    if 0xFF < lun <= MAX_FLAT_LUN:
        return (_FLAT << 8 | lun) << 48
    raise InvalidParameterError(f"LUN {lun} is outside 0..{MAX_FLAT_LUN}")


def field_to_lun(value: int) -> int:
    """The logical unit number a 64-bit LUN field addresses (inverse of lun_to_field).

    Accepts peripheral device addressing on bus 0 and flat space addressing of a
    single-level LUN; any other structure raises :class:`InvalidParameterError`.
    """
    if value & 0x0000_FFFF_FFFF_FFFF or not 0 <= value <= 0xFFFF_FFFF_FFFF_FFFF:
        raise InvalidParameterError(f"LUN field {value:#018x} is not a single-level LUN")
    first = value >> 48
    method = first >> 8 & 0xC0
    if method == _FLAT:
        return first & MAX_FLAT_LUN
    if method == _PERIPHERAL and first >> 8 == 0:
        return first & 0xFF
    raise InvalidParameterError(f"LUN field {value:#018x} uses an unsupported addressing method")


#: The fixed prefix every BHS shares: byte 0 and the lengths word at bytes 4..7.
LENGTHS: Final = Struct(">B3xI")


__all__ = [
    "FINAL_BIT",
    "IMMEDIATE_BIT",
    "LENGTHS",
    "MAX_FLAT_LUN",
    "OPCODE_MASK",
    "PADDING",
    "Buffer",
    "Pdu",
    "field_to_lun",
    "invalid_field",
    "local_error",
    "lun_to_field",
    "protocol_error",
]
