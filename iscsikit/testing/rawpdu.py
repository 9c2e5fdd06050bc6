"""A minimal iSCSI PDU builder and parser for test targets, independent of iscsikit.proto.

The scripted and hostile test targets talk to the initiator under test; if they built
their PDUs with :mod:`iscsikit.proto`, a codec bug would be on both ends of the wire and
no test could see it.  This module is written from RFC 7143 alone, with :mod:`struct`
and the ``crc32c`` package, and must never import ``iscsikit.proto``: it builds the PDUs
a target sends (:class:`DataIn`, :class:`ScsiResponse`, :class:`R2T`, :class:`NopIn`,
:class:`TaskMgmtResponse`, :class:`AsyncMessage`, :class:`LogoutResponse`,
:class:`LoginResponse`, :class:`TextResponse`) and parses those an initiator sends
(:func:`parse`).  Field names follow RFC 7143's (and so the project's dataclasses), so
scripts read alike.

The Basic Header Segment (RFC 7143 §11.2.1) is 48 bytes: opcode (with the I bit, 0x40)
at 0, flags at 1, two opcode-specific bytes, TotalAHSLength (4-byte words) at 4,
DataSegmentLength (3 bytes, big-endian) at 5, LUN or opcode-specific at 8..15, the
Initiator Task Tag at 16 and seven opcode-specific 32-bit words at 20..47.  Digests are
CRC32C sent least significant byte first (§13.1, Appendix B.4); the data digest covers
the data and its padding and is absent when there is no data segment.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Final

import crc32c as _crc32c

__all__ = [
    "ASYNC_CONNECTION_DROP",
    "ASYNC_LOGOUT_REQUEST",
    "BHS_LEN",
    "RESERVED_TAG",
    "TMF_FUNCTION_COMPLETE",
    "AsyncMessage",
    "DataIn",
    "DataOut",
    "DigestMismatch",
    "InitiatorPdu",
    "LoginRequest",
    "LoginResponse",
    "LogoutRequest",
    "LogoutResponse",
    "NopIn",
    "NopOut",
    "R2T",
    "ScsiCommand",
    "ScsiResponse",
    "SnackRequest",
    "TargetPdu",
    "TaskMgmtRequest",
    "TaskMgmtResponse",
    "TextRequest",
    "TextResponse",
    "crc32c",
    "decode_text",
    "digest",
    "encode",
    "encode_text",
    "parse",
    "pdu_length",
]

BHS_LEN: Final = 48
RESERVED_TAG: Final = 0xFFFFFFFF
#: Task Management Function Response "Function complete" (RFC 7143 §11.6.1).
TMF_FUNCTION_COMPLETE: Final = 0
#: AsyncEvent 1, the target asks for a logout; 2, it will drop a connection (§11.9.1).
ASYNC_LOGOUT_REQUEST: Final = 1
ASYNC_CONNECTION_DROP: Final = 2
#: opcode (I bit included), flags, 2 specific bytes, TotalAHSLength, DSL (3 bytes),
#: 8 bytes at 8, ITT, then seven words (RFC 7143 §11.2.1).
_BHS: Final = struct.Struct(">BBBBB3s8sI7I")


class DigestMismatch(ValueError):
    """A received header or data digest is not the CRC32C of what it covers."""


def crc32c(data: bytes | bytearray | memoryview) -> int:
    """CRC32C (Castagnoli) of ``data``, from the ``crc32c`` package."""
    value: int = _crc32c.crc32c(data)
    return value


def digest(data: bytes | bytearray | memoryview) -> bytes:
    """The 4 wire bytes of the CRC32C digest of ``data`` (least significant first)."""
    return struct.pack("<I", crc32c(data))


def pdu_length(bhs: bytes, *, header_digest: bool = False, data_digest: bool = False) -> int:
    """Total PDU length implied by a BHS (RFC 7143 §11.2.1): 48 + TotalAHSLength*4
    (+ 4 for a header digest) + DataSegmentLength padded to 4 (+ 4 for a data digest,
    only when there is a data segment)."""
    if len(bhs) < BHS_LEN:
        raise ValueError(f"BHS needs {BHS_LEN} bytes, got {len(bhs)}")
    data_len = int.from_bytes(bhs[5:8], "big")
    length = BHS_LEN + bhs[4] * 4 + data_len + (-data_len % 4)
    if header_digest:
        length += 4
    if data_digest and data_len:
        length += 4
    return length


def _pdu(
    opcode: int,
    flags: int,
    b2: int,
    b3: int,
    at8: bytes,
    itt: int,
    words: tuple[int, ...],
    data: bytes,
    header_digest: bool,
    data_digest: bool,
) -> bytes:
    """One PDU without AHS: the BHS, its digest, the padded data and its digest."""
    if len(data) > 0xFFFFFF:
        raise ValueError("a data segment is at most 2**24 - 1 bytes")
    bhs = _BHS.pack(opcode, flags, b2, b3, 0, len(data).to_bytes(3, "big"), at8, itt, *words)
    out = bytearray(bhs)
    if header_digest:
        out += digest(bhs)
    if data:
        padded = data + bytes(-len(data) % 4)
        out += padded
        if data_digest:
            out += digest(padded)
    return bytes(out)


def _lun(lun: int) -> bytes:
    return lun.to_bytes(8, "big")


# -- what a target sends -------------------------------------------------------------------


@dataclass(kw_only=True)
class DataIn:
    """SCSI Data-In (RFC 7143 §11.7): flags F 0x80, A 0x40, O 0x04, U 0x02, S 0x01."""

    final: bool = True
    ack: bool = False
    overflow: bool = False
    underflow: bool = False
    status_present: bool = False
    status: int = 0
    lun: int = 0
    itt: int = 0
    ttt: int = RESERVED_TAG
    statsn: int = 0
    expcmdsn: int = 0
    maxcmdsn: int = 0
    datasn: int = 0
    buffer_offset: int = 0
    residual_count: int = 0
    data: bytes = b""

    def encode(self, header_digest: bool = False, data_digest: bool = False) -> bytes:
        flags = (
            0x80 * self.final
            | 0x40 * self.ack
            | 0x04 * self.overflow
            | 0x02 * self.underflow
            | 0x01 * self.status_present
        )
        words = (self.ttt, self.statsn, self.expcmdsn, self.maxcmdsn, self.datasn,
                 self.buffer_offset, self.residual_count)  # fmt: skip
        return _pdu(0x25, flags, 0, self.status, _lun(self.lun), self.itt, words, self.data,
                    header_digest, data_digest)  # fmt: skip


@dataclass(kw_only=True)
class ScsiResponse:
    """SCSI Response (RFC 7143 §11.4): flags 0x80 | o 0x10 | u 0x08 | O 0x04 | U 0x02."""

    bidi_overflow: bool = False
    bidi_underflow: bool = False
    overflow: bool = False
    underflow: bool = False
    response: int = 0
    status: int = 0
    itt: int = 0
    snack_tag: int = 0
    statsn: int = 0
    expcmdsn: int = 0
    maxcmdsn: int = 0
    expdatasn: int = 0
    bidi_read_residual_count: int = 0
    residual_count: int = 0
    data: bytes = b""

    def encode(self, header_digest: bool = False, data_digest: bool = False) -> bytes:
        flags = (
            0x80
            | 0x10 * self.bidi_overflow
            | 0x08 * self.bidi_underflow
            | 0x04 * self.overflow
            | 0x02 * self.underflow
        )
        words = (self.snack_tag, self.statsn, self.expcmdsn, self.maxcmdsn, self.expdatasn,
                 self.bidi_read_residual_count, self.residual_count)  # fmt: skip
        return _pdu(0x21, flags, self.response, self.status, bytes(8), self.itt, words,
                    self.data, header_digest, data_digest)  # fmt: skip


@dataclass(kw_only=True)
class R2T:
    """Ready To Transfer (RFC 7143 §11.8)."""

    lun: int = 0
    itt: int = 0
    ttt: int = 0
    statsn: int = 0
    expcmdsn: int = 0
    maxcmdsn: int = 0
    r2tsn: int = 0
    buffer_offset: int = 0
    desired_data_transfer_length: int = 0

    def encode(self, header_digest: bool = False, data_digest: bool = False) -> bytes:
        words = (self.ttt, self.statsn, self.expcmdsn, self.maxcmdsn, self.r2tsn,
                 self.buffer_offset, self.desired_data_transfer_length)  # fmt: skip
        return _pdu(0x31, 0x80, 0, 0, _lun(self.lun), self.itt, words, b"",
                    header_digest, data_digest)  # fmt: skip


@dataclass(kw_only=True)
class NopIn:
    """NOP-In (RFC 7143 §11.19)."""

    lun: int = 0
    itt: int = RESERVED_TAG
    ttt: int = RESERVED_TAG
    statsn: int = 0
    expcmdsn: int = 0
    maxcmdsn: int = 0
    data: bytes = b""

    def encode(self, header_digest: bool = False, data_digest: bool = False) -> bytes:
        words = (self.ttt, self.statsn, self.expcmdsn, self.maxcmdsn, 0, 0, 0)
        return _pdu(0x20, 0x80, 0, 0, _lun(self.lun), self.itt, words, self.data,
                    header_digest, data_digest)  # fmt: skip


@dataclass(kw_only=True)
class TaskMgmtResponse:
    """Task Management Function Response (RFC 7143 §11.6)."""

    response: int = 0
    itt: int = 0
    statsn: int = 0
    expcmdsn: int = 0
    maxcmdsn: int = 0

    def encode(self, header_digest: bool = False, data_digest: bool = False) -> bytes:
        words = (0, self.statsn, self.expcmdsn, self.maxcmdsn, 0, 0, 0)
        return _pdu(0x22, 0x80, self.response, 0, bytes(8), self.itt, words, b"",
                    header_digest, data_digest)  # fmt: skip


@dataclass(kw_only=True)
class AsyncMessage:
    """Asynchronous Message (RFC 7143 §11.9); its ITT is always 0xffffffff."""

    lun: int = 0
    statsn: int = 0
    expcmdsn: int = 0
    maxcmdsn: int = 0
    async_event: int = 0
    async_vcode: int = 0
    parameter1: int = 0
    parameter2: int = 0
    parameter3: int = 0
    data: bytes = b""

    def encode(self, header_digest: bool = False, data_digest: bool = False) -> bytes:
        event = (self.async_event << 24) | (self.async_vcode << 16) | self.parameter1
        params = (self.parameter2 << 16) | self.parameter3
        words = (0, self.statsn, self.expcmdsn, self.maxcmdsn, event, params, 0)
        return _pdu(0x32, 0x80, 0, 0, _lun(self.lun), RESERVED_TAG, words, self.data,
                    header_digest, data_digest)  # fmt: skip


@dataclass(kw_only=True)
class LogoutResponse:
    """Logout Response (RFC 7143 §11.15)."""

    response: int = 0
    itt: int = 0
    statsn: int = 0
    expcmdsn: int = 0
    maxcmdsn: int = 0
    time2wait: int = 0
    time2retain: int = 0

    def encode(self, header_digest: bool = False, data_digest: bool = False) -> bytes:
        times = (self.time2wait << 16) | self.time2retain
        words = (0, self.statsn, self.expcmdsn, self.maxcmdsn, 0, times, 0)
        return _pdu(0x26, 0x80, self.response, 0, bytes(8), self.itt, words, b"",
                    header_digest, data_digest)  # fmt: skip


@dataclass(kw_only=True)
class LoginResponse:
    """Login Response (RFC 7143 §11.13): flags T 0x80, C 0x40, CSG << 2, NSG."""

    transit: bool = False
    cont: bool = False
    csg: int = 0
    nsg: int = 0
    version_max: int = 0
    version_active: int = 0
    isid: bytes = bytes(6)
    tsih: int = 0
    itt: int = 0
    statsn: int = 0
    expcmdsn: int = 0
    maxcmdsn: int = 0
    status_class: int = 0
    status_detail: int = 0
    data: bytes = b""

    def encode(self, header_digest: bool = False, data_digest: bool = False) -> bytes:
        flags = 0x80 * self.transit | 0x40 * self.cont | (self.csg & 3) << 2 | self.nsg & 3
        at8 = self.isid + self.tsih.to_bytes(2, "big")
        status = (self.status_class << 24) | (self.status_detail << 16)
        words = (0, self.statsn, self.expcmdsn, self.maxcmdsn, status, 0, 0)
        return _pdu(0x23, flags, self.version_max, self.version_active, at8, self.itt, words,
                    self.data, header_digest, data_digest)  # fmt: skip


@dataclass(kw_only=True)
class TextResponse:
    """Text Response (RFC 7143 §11.11): flags F 0x80, C 0x40."""

    final: bool = True
    cont: bool = False
    lun: int = 0
    itt: int = 0
    ttt: int = RESERVED_TAG
    statsn: int = 0
    expcmdsn: int = 0
    maxcmdsn: int = 0
    data: bytes = b""

    def encode(self, header_digest: bool = False, data_digest: bool = False) -> bytes:
        flags = 0x80 * self.final | 0x40 * self.cont
        words = (self.ttt, self.statsn, self.expcmdsn, self.maxcmdsn, 0, 0, 0)
        return _pdu(0x24, flags, 0, 0, _lun(self.lun), self.itt, words, self.data,
                    header_digest, data_digest)  # fmt: skip


TargetPdu = (
    DataIn
    | ScsiResponse
    | R2T
    | NopIn
    | TaskMgmtResponse
    | AsyncMessage
    | LogoutResponse
    | LoginResponse
    | TextResponse
)


def encode(pdu: TargetPdu, *, header_digest: bool = False, data_digest: bool = False) -> bytes:
    """The wire bytes of a target PDU (no AHS), digests as negotiated."""
    return pdu.encode(header_digest, data_digest)


def encode_text(pairs: list[tuple[str, str]]) -> bytes:
    """Text keys as ``key=value`` NUL-terminated, UTF-8 (RFC 7143 §6.1)."""
    return b"".join(f"{key}={value}".encode() + b"\0" for key, value in pairs)


def decode_text(data: bytes) -> list[tuple[str, str]]:
    """``(key, value)`` pairs of a text data segment (RFC 7143 §6.1), in order: each pair
    ends with a NUL, the value is what follows the first ``=``.  Strict, for checking
    what an initiator sent: raises :class:`ValueError` on anything else."""
    if not data:
        return []
    if not data.endswith(b"\0"):
        raise ValueError("text does not end with a NUL")
    pairs: list[tuple[str, str]] = []
    for item in data[:-1].split(b"\0"):
        key, sep, value = item.decode().partition("=")
        if not sep or not key:
            raise ValueError(f"not a key=value pair: {item!r}")
        pairs.append((key, value))
    return pairs


# -- what an initiator sends -------------------------------------------------------------


@dataclass(kw_only=True)
class LoginRequest:
    """Login Request (RFC 7143 §11.12)."""

    transit: bool
    cont: bool
    csg: int
    nsg: int
    version_max: int
    version_min: int
    isid: bytes
    tsih: int
    itt: int
    cid: int
    cmdsn: int
    expstatsn: int
    data: bytes


@dataclass(kw_only=True)
class ScsiCommand:
    """SCSI Command (RFC 7143 §11.3); ``cdb`` includes an extended-CDB AHS."""

    immediate: bool
    final: bool
    read: bool
    write: bool
    attr: int
    lun: int
    itt: int
    expected_data_transfer_length: int
    cmdsn: int
    expstatsn: int
    cdb: bytes
    bidi_read_length: int | None
    data: bytes


@dataclass(kw_only=True)
class DataOut:
    """SCSI Data-Out (RFC 7143 §11.7)."""

    final: bool
    lun: int
    itt: int
    ttt: int
    expstatsn: int
    datasn: int
    buffer_offset: int
    data: bytes


@dataclass(kw_only=True)
class NopOut:
    """NOP-Out (RFC 7143 §11.18)."""

    immediate: bool
    lun: int
    itt: int
    ttt: int
    cmdsn: int
    expstatsn: int
    data: bytes


@dataclass(kw_only=True)
class TaskMgmtRequest:
    """Task Management Function Request (RFC 7143 §11.5)."""

    immediate: bool
    function: int
    lun: int
    itt: int
    referenced_task_tag: int
    cmdsn: int
    expstatsn: int
    refcmdsn: int
    expdatasn: int
    data: bytes


@dataclass(kw_only=True)
class LogoutRequest:
    """Logout Request (RFC 7143 §11.14)."""

    immediate: bool
    reason: int
    itt: int
    cid: int
    cmdsn: int
    expstatsn: int
    data: bytes


@dataclass(kw_only=True)
class TextRequest:
    """Text Request (RFC 7143 §11.10)."""

    immediate: bool
    final: bool
    cont: bool
    lun: int
    itt: int
    ttt: int
    cmdsn: int
    expstatsn: int
    data: bytes


@dataclass(kw_only=True)
class SnackRequest:
    """SNACK Request (RFC 7143 §11.16)."""

    type: int
    lun: int
    itt: int
    ttt: int
    expstatsn: int
    begrun: int
    runlength: int
    data: bytes


InitiatorPdu = (
    LoginRequest
    | ScsiCommand
    | DataOut
    | NopOut
    | TaskMgmtRequest
    | LogoutRequest
    | TextRequest
    | SnackRequest
)


def parse(raw: bytes, *, header_digest: bool = False, data_digest: bool = False) -> InitiatorPdu:
    """Decode one whole PDU an initiator sent; digests (when negotiated) are checked.

    Raises :class:`DigestMismatch` for a wrong digest and :class:`ValueError` for a
    truncated PDU or an opcode an initiator never sends.
    """
    length = pdu_length(raw, header_digest=header_digest, data_digest=data_digest)
    if len(raw) != length:
        raise ValueError(f"PDU of {len(raw)} bytes where the BHS says {length}")
    opcode, flags, b2, b3, ahs_words, dsl_bytes, at8, itt, *w = _BHS.unpack_from(raw)
    ahs_end = BHS_LEN + ahs_words * 4
    ahs = raw[BHS_LEN:ahs_end]
    pos = ahs_end
    if header_digest:
        if raw[pos : pos + 4] != digest(raw[:pos]):
            raise DigestMismatch("header digest mismatch")
        pos += 4
    dsl = int.from_bytes(dsl_bytes, "big")
    padded = raw[pos : pos + dsl + (-dsl % 4)]
    if data_digest and dsl and raw[pos + len(padded) :] != digest(padded):
        raise DigestMismatch("data digest mismatch")
    data = padded[:dsl]
    immediate = bool(opcode & 0x40)
    lun = int.from_bytes(at8, "big")
    op = opcode & 0x3F
    if op == 0x03:
        return LoginRequest(transit=bool(flags & 0x80), cont=bool(flags & 0x40),
                            csg=flags >> 2 & 3, nsg=flags & 3, version_max=b2, version_min=b3,
                            isid=at8[:6], tsih=int.from_bytes(at8[6:], "big"), itt=itt,
                            cid=w[0] >> 16, cmdsn=w[1], expstatsn=w[2], data=data)  # fmt: skip
    if op == 0x01:
        cdb, bidi = raw[32:48], None
        for kind, value in _ahs(ahs):
            if kind == 1:
                cdb += value[1:]  # a reserved byte, then the CDB's rest (§11.3.5)
            elif kind == 2:
                bidi = int.from_bytes(value[1:5], "big")
        return ScsiCommand(immediate=immediate, final=bool(flags & 0x80),
                           read=bool(flags & 0x40), write=bool(flags & 0x20), attr=flags & 7,
                           lun=lun, itt=itt, expected_data_transfer_length=w[0], cmdsn=w[1],
                           expstatsn=w[2], cdb=cdb, bidi_read_length=bidi, data=data)  # fmt: skip
    if op == 0x05:
        return DataOut(final=bool(flags & 0x80), lun=lun, itt=itt, ttt=w[0], expstatsn=w[2],
                       datasn=w[4], buffer_offset=w[5], data=data)  # fmt: skip
    if op == 0x00:
        return NopOut(immediate=immediate, lun=lun, itt=itt, ttt=w[0], cmdsn=w[1],
                      expstatsn=w[2], data=data)  # fmt: skip
    if op == 0x02:
        return TaskMgmtRequest(immediate=immediate, function=flags & 0x7F, lun=lun, itt=itt,
                               referenced_task_tag=w[0], cmdsn=w[1], expstatsn=w[2],
                               refcmdsn=w[3], expdatasn=w[4], data=data)  # fmt: skip
    if op == 0x06:
        return LogoutRequest(immediate=immediate, reason=flags & 0x7F, itt=itt, cid=w[0] >> 16,
                             cmdsn=w[1], expstatsn=w[2], data=data)  # fmt: skip
    if op == 0x04:
        return TextRequest(immediate=immediate, final=bool(flags & 0x80),
                           cont=bool(flags & 0x40), lun=lun, itt=itt, ttt=w[0], cmdsn=w[1],
                           expstatsn=w[2], data=data)  # fmt: skip
    if op == 0x10:
        return SnackRequest(type=flags & 0x0F, lun=lun, itt=itt, ttt=w[0], expstatsn=w[2],
                            begrun=w[5], runlength=w[6], data=data)  # fmt: skip
    raise ValueError(f"opcode 0x{op:02x} is not one an initiator sends")


def _ahs(ahs: bytes) -> list[tuple[int, bytes]]:
    """(AHSType, AHS-Specific bytes) of each AHS (RFC 7143 §11.2.2), padding skipped."""
    out: list[tuple[int, bytes]] = []
    pos = 0
    while pos + 3 <= len(ahs):
        length = int.from_bytes(ahs[pos : pos + 2], "big")
        out.append((ahs[pos + 2], ahs[pos + 3 : pos + 3 + length]))
        pos += 3 + length + (-(3 + length) % 4)
    return out
