"""The iSCSI PDU codec (RFC 7143 §11): PDU classes, their registry, encode and decode.

This module owns the wire form of a whole PDU (RFC 7143 §11.1, §11.2)::

    BHS (48) | AHS (TotalAHSLength * 4) | header digest (4, optional)
    | data segment | padding to 4 | data digest (4, optional, only when data)

One slotted dataclass per opcode holds the header fields (they live in
:mod:`~iscsikit.proto.pdu_login`, :mod:`~iscsikit.proto.pdu_scsi` and
:mod:`~iscsikit.proto.pdu_mgmt` and are re-exported here); :data:`PDU_TYPES` maps
opcodes to them.  :func:`encode_pdu` turns a PDU into bytes, :func:`decode_pdu` turns
exactly one complete PDU back.  Incremental parsing of a byte stream is
:class:`iscsikit.proto.framing.PduReader`, built on the lower-level helpers here
(:func:`parse_bhs_lengths`, :func:`pdu_class_for`, :func:`pdu_length`,
:func:`verify_header_digest`, :func:`decode_body`).

Errors: a PDU the caller cannot send raises :class:`LocalProtocolError`; a malformed
received PDU raises :class:`RemoteProtocolError` carrying the RFC 7143 §11.17.1 Reject
reason, and a digest mismatch its subclass :class:`DigestError`.  No I/O happens here.
"""

from __future__ import annotations

import struct
from typing import Final

from iscsikit.errors import DigestError, LocalProtocolError, RemoteProtocolError
from iscsikit.proto.constants import (
    BHS_LEN,
    DIGEST_LEN,
    MAX_DATA_SEGMENT_LENGTH,
    MAX_TOTAL_AHS_LENGTH,
    RejectReason,
)
from iscsikit.proto.digest import crc32c
from iscsikit.proto.pdu_base import (
    LENGTHS,
    OPCODE_MASK,
    PADDING,
    Buffer,
    Pdu,
    field_to_lun,
    invalid_field,
    local_error,
    lun_to_field,
    protocol_error,
)
from iscsikit.proto.pdu_login import (
    LoginRequest,
    LoginResponse,
    LogoutRequest,
    LogoutResponse,
    TextRequest,
    TextResponse,
)
from iscsikit.proto.pdu_mgmt import (
    AsyncMessage,
    NopIn,
    NopOut,
    Reject,
    SnackRequest,
    TaskMgmtRequest,
    TaskMgmtResponse,
)
from iscsikit.proto.pdu_scsi import R2T, DataIn, DataOut, ScsiCommand, ScsiResponse

#: Every PDU class, keyed by its opcode (RFC 7143 §11.2.1).
PDU_TYPES: Final[dict[int, type[Pdu]]] = {
    cls.opcode: cls
    for cls in (
        NopOut,
        ScsiCommand,
        TaskMgmtRequest,
        LoginRequest,
        TextRequest,
        DataOut,
        LogoutRequest,
        SnackRequest,
        NopIn,
        ScsiResponse,
        TaskMgmtResponse,
        LoginResponse,
        TextResponse,
        DataIn,
        LogoutResponse,
        R2T,
        AsyncMessage,
        Reject,
    )
}

_LITTLE: Final = "little"


def encode_pdu(pdu: Pdu, *, header_digest: bool = False, data_digest: bool = False) -> bytes:
    """The bytes of *pdu* on the wire, with CRC32C digests when negotiated (§13.1).

    The data digest is sent only when the data segment is not empty.  Raises
    :class:`LocalProtocolError` for a field the wire format cannot carry (a number out
    of its field's range, a 7-byte ISID, more than 2**24 - 1 bytes of data, ...).
    """
    ahs, data = pdu._segments()
    dsl = len(data)
    if dsl:
        if not pdu.DATA_ALLOWED:
            raise local_error(pdu, "this PDU has no data segment")
        if dsl > MAX_DATA_SEGMENT_LENGTH:
            raise local_error(pdu, f"{dsl} bytes of data exceed 2**24 - 1")
    if len(ahs) > MAX_TOTAL_AHS_LENGTH:
        raise local_error(pdu, f"{len(ahs)} bytes of AHS exceed {MAX_TOTAL_AHS_LENGTH}")
    try:
        # Byte 4 is TotalAHSLength in 4-byte words, bytes 5..7 DataSegmentLength.
        bhs = pdu._pack(len(ahs) << 22 | dsl)
    except struct.error as exc:
        raise local_error(pdu, f"a field is out of range ({exc})") from None
    if ahs:
        parts = [bhs, ahs]
    elif not dsl and not header_digest:
        return bhs
    else:
        parts = [bhs]
    if header_digest:
        crc = crc32c(bhs)
        if ahs:
            crc = crc32c(ahs, crc)
        parts.append(crc.to_bytes(DIGEST_LEN, _LITTLE))
    if dsl:
        pad = PADDING[-dsl & 3]
        parts += (data, pad)
        if data_digest:
            parts.append(crc32c(pad, crc32c(data)).to_bytes(DIGEST_LEN, _LITTLE))
    return b"".join(parts)


def parse_bhs_lengths(bhs: Buffer, offset: int = 0) -> tuple[int, int, int]:
    """``(opcode, total_ahs_bytes, data_segment_length)`` of the BHS at *offset*.

    Only the first 8 bytes of the BHS are read; nothing is validated.
    """
    try:
        b0, word = LENGTHS.unpack_from(bhs, offset)
    except struct.error:
        raise LocalProtocolError("parse_bhs_lengths needs the first 8 bytes of a BHS") from None
    return b0 & OPCODE_MASK, word >> 22 & 0x3FC, word & MAX_DATA_SEGMENT_LENGTH


def pdu_class_for(opcode: int, total_ahs: int, data_segment_length: int) -> type[Pdu]:
    """The class decoding *opcode*, after checking that its header lengths are allowed.

    Raises :class:`RemoteProtocolError`: reason 0x05 (command not supported) for an
    unknown opcode, 0x09 (invalid PDU field) for an AHS or a data segment on a PDU
    whose format has none.
    """
    cls = PDU_TYPES.get(opcode)
    if cls is None:
        raise RemoteProtocolError(
            f"unknown opcode {opcode:#04x}", reject_reason=RejectReason.COMMAND_NOT_SUPPORTED
        )
    if total_ahs and not cls.AHS_ALLOWED:
        raise invalid_field(f"{cls.__name__} with {total_ahs} bytes of AHS")
    if data_segment_length and not cls.DATA_ALLOWED:
        raise invalid_field(f"{cls.__name__} with a {data_segment_length}-byte data segment")
    return cls


def pdu_length(
    total_ahs: int, data_segment_length: int, *, header_digest: bool, data_digest: bool
) -> int:
    """The number of bytes a PDU with these header lengths occupies on the wire."""
    length = BHS_LEN + total_ahs + (data_segment_length + 3 & ~3)
    if header_digest:
        length += DIGEST_LEN
    if data_digest and data_segment_length:
        length += DIGEST_LEN
    return length


def verify_header_digest(buf: Buffer, offset: int, total_ahs: int) -> None:
    """Check the header digest after the BHS and AHS at *offset*.

    A mismatch raises :class:`DigestError` with no Reject reason: RFC 7143 §7.8 has
    the connection dropped, since no header field can be trusted.
    """
    end = offset + BHS_LEN + total_ahs
    with memoryview(buf) as view:
        expected = crc32c(view[offset:end])
        received = int.from_bytes(view[end : end + DIGEST_LEN], _LITTLE)
    if expected != received:
        raise DigestError(
            f"header digest mismatch: received {received:#010x}, computed {expected:#010x}"
        )


def decode_body(
    cls: type[Pdu],
    buf: Buffer,
    offset: int,
    total_ahs: int,
    data_segment_length: int,
    *,
    header_digest: bool,
    data_digest: bool,
) -> Pdu:
    """Decode the complete PDU at *offset* whose header *pdu_class_for* accepted.

    The header digest, if any, is skipped, not checked (see
    :func:`verify_header_digest`); the data digest is checked when *data_digest*.
    """
    start = offset + BHS_LEN + total_ahs + (DIGEST_LEN if header_digest else 0)
    end = start + data_segment_length
    with memoryview(buf) as view:
        ahs = bytes(view[offset + BHS_LEN : offset + BHS_LEN + total_ahs]) if total_ahs else b""
        data = bytes(view[start:end]) if data_segment_length else b""
        if data_digest and data_segment_length:
            padded = end + (-data_segment_length & 3)
            expected = crc32c(view[start:padded])
            received = int.from_bytes(view[padded : padded + DIGEST_LEN], _LITTLE)
            if expected != received:
                raise DigestError(
                    f"data digest mismatch: received {received:#010x}, computed {expected:#010x}",
                    reject_reason=RejectReason.DATA_DIGEST_ERROR,
                )
    return cls._unpack(buf, offset, ahs, data)


def decode_pdu(buf: Buffer, *, header_digest: bool = False, data_digest: bool = False) -> Pdu:
    """Decode *buf*, which must hold exactly one complete PDU (for tests and tools).

    Raises :class:`RemoteProtocolError` (reason 0x04) when *buf* is shorter or longer
    than the PDU its header describes, and whatever :func:`pdu_class_for`,
    :func:`verify_header_digest` and :func:`decode_body` raise.
    """
    if len(buf) < BHS_LEN:
        raise protocol_error(f"truncated PDU: {len(buf)} bytes, a BHS alone is {BHS_LEN}")
    opcode, total_ahs, dsl = parse_bhs_lengths(buf)
    cls = pdu_class_for(opcode, total_ahs, dsl)
    length = pdu_length(total_ahs, dsl, header_digest=header_digest, data_digest=data_digest)
    if len(buf) != length:
        raise protocol_error(f"{len(buf)} bytes given, the header describes {length}")
    if header_digest:
        verify_header_digest(buf, 0, total_ahs)
    return decode_body(
        cls, buf, 0, total_ahs, dsl, header_digest=header_digest, data_digest=data_digest
    )


__all__ = [
    "PDU_TYPES",
    "R2T",
    "AsyncMessage",
    "DataIn",
    "DataOut",
    "LoginRequest",
    "LoginResponse",
    "LogoutRequest",
    "LogoutResponse",
    "NopIn",
    "NopOut",
    "Pdu",
    "Reject",
    "ScsiCommand",
    "ScsiResponse",
    "SnackRequest",
    "TaskMgmtRequest",
    "TaskMgmtResponse",
    "TextRequest",
    "TextResponse",
    "decode_body",
    "decode_pdu",
    "encode_pdu",
    "field_to_lun",
    "lun_to_field",
    "parse_bhs_lengths",
    "pdu_class_for",
    "pdu_length",
    "verify_header_digest",
]
