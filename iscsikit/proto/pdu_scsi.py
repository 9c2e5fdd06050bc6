"""SCSI Command, SCSI Response, Data-Out, Data-In and R2T PDUs (RFC 7143 §11.3-§11.8).

The data path: each class maps one BHS layout of RFC 7143 §11 to named fields, with
one precompiled :class:`struct.Struct` for the 48 bytes; the struct format strings
follow the byte diagrams of the cited sections ('x' = reserved bytes).  The SCSI
Command also owns its two AHS types (RFC 7143 §11.2.2).  Import the classes from
:mod:`iscsikit.proto.pdu`, which also frames them (AHS, digests, padding).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from struct import Struct
from typing import ClassVar, Final

from iscsikit.proto.constants import (
    MAX_TOTAL_AHS_LENGTH,
    RESERVED_TAG,
    AhsType,
    Opcode,
    TaskAttribute,
)
from iscsikit.proto.pdu_base import (
    FINAL_BIT,
    IMMEDIATE_BIT,
    PADDING,
    Buffer,
    Pdu,
    invalid_field,
    local_error,
    protocol_error,
)

# RFC 7143 §11.3: opcode, F|R|W|ATTR, LUN, ITT, EDTL, CmdSN, ExpStatSN, CDB[16].
_SCSI_COMMAND: Final = Struct(">BB2xIQIIII16s")
# Additional Header Segments (RFC 7143 §11.2.2): AHSLength, AHSType, then the
# type-specific bytes, the first of which is reserved for both defined types.
_AHS_HEADER: Final = Struct(">HB")
_ECDB_HEADER: Final = Struct(">HBx")
_BIDI_AHS: Final = Struct(">HBxI")
_BIDI_AHS_LENGTH: Final = 5
_CDB_IN_BHS: Final = 16
# RFC 7143 §11.4: opcode, 1|.|.|o|u|O|U|., Response, Status, 8 reserved, ITT,
# SNACK Tag, StatSN, ExpCmdSN, MaxCmdSN, ExpDataSN, Bidi Read Residual, Residual.
_SCSI_RESPONSE: Final = Struct(">BBBBI8xIIIIIIII")
# RFC 7143 §11.7 (Data-Out): opcode, F, LUN, ITT, TTT, reserved, ExpStatSN,
# reserved, DataSN, Buffer Offset, reserved.
_DATA_OUT: Final = Struct(">BB2xIQII4xI4xII4x")
# RFC 7143 §11.7 (Data-In): opcode, F|A|.|.|.|O|U|S, reserved, Status, LUN, ITT,
# TTT, StatSN, ExpCmdSN, MaxCmdSN, DataSN, Buffer Offset, Residual Count.
_DATA_IN: Final = Struct(">BBxBIQIIIIIIII")
# RFC 7143 §11.8: opcode, F=1, LUN, ITT, TTT, StatSN, ExpCmdSN, MaxCmdSN, R2TSN,
# Buffer Offset, Desired Data Transfer Length.
_R2T: Final = Struct(">BB2xIQIIIIIIII")


@dataclass(slots=True, kw_only=True)
class ScsiCommand(Pdu):
    """SCSI Command (RFC 7143 §11.3).

    ``cdb`` may have any length: its first 16 bytes travel in the BHS (zero-padded
    when shorter, so a decoded ``cdb`` is never shorter than 16 bytes) and the rest in
    an Extended CDB AHS (§11.2.2).  ``bidi_read_length`` is the Bidirectional Read
    Expected Data Transfer Length AHS, sent when not ``None``.  ``data`` is the
    immediate data.
    """

    opcode: ClassVar[Opcode] = Opcode.SCSI_COMMAND
    AHS_ALLOWED: ClassVar[bool] = True

    immediate: bool = False
    final: bool = True
    read: bool = False
    write: bool = False
    attr: int = TaskAttribute.SIMPLE.value
    lun: int = 0
    itt: int = 0
    expected_data_transfer_length: int = 0
    cmdsn: int = 0
    expstatsn: int = 0
    cdb: bytes = bytes(_CDB_IN_BHS)
    bidi_read_length: int | None = None
    data: bytes = b""

    def _segments(self) -> tuple[bytes, bytes]:
        cdb = self.cdb
        if len(cdb) <= _CDB_IN_BHS and self.bidi_read_length is None:
            return b"", self.data
        parts: list[bytes] = []
        if len(cdb) > _CDB_IN_BHS:
            # RFC 7143 §11.2.2: AHSLength counts the reserved byte and the CDB spill
            # (CDB length - 15); the segment is then padded to a 4-byte boundary.
            spill = cdb[_CDB_IN_BHS:]
            if len(spill) > MAX_TOTAL_AHS_LENGTH:
                raise local_error(self, f"a {len(cdb)}-byte CDB does not fit in an AHS")
            parts += (
                _ECDB_HEADER.pack(len(spill) + 1, AhsType.EXTENDED_CDB),
                spill,
                PADDING[-len(spill) & 3],
            )
        if self.bidi_read_length is not None:
            try:
                parts.append(
                    _BIDI_AHS.pack(
                        _BIDI_AHS_LENGTH, AhsType.BIDI_READ_LENGTH, self.bidi_read_length
                    )
                )
            except struct.error as exc:  # not a 32-bit unsigned number
                raise local_error(self, f"bidi_read_length: {exc}") from None
        return b"".join(parts), self.data

    def _pack(self, lengths: int) -> bytes:
        if self.attr & ~0x07:
            raise local_error(self, f"attr {self.attr} does not fit in 3 bits")
        return _SCSI_COMMAND.pack(
            Opcode.SCSI_COMMAND | (IMMEDIATE_BIT if self.immediate else 0),
            (FINAL_BIT if self.final else 0)
            | (0x40 if self.read else 0)
            | (0x20 if self.write else 0)
            | self.attr,
            lengths,
            self.lun,
            self.itt,
            self.expected_data_transfer_length,
            self.cmdsn,
            self.expstatsn,
            self.cdb[:_CDB_IN_BHS],
        )

    @classmethod
    def _unpack(cls, buf: Buffer, offset: int, ahs: bytes, data: bytes) -> ScsiCommand:
        b0, flags, _, lun, itt, edtl, cmdsn, expstatsn, cdb = _SCSI_COMMAND.unpack_from(buf, offset)
        bidi: int | None = None
        if ahs:
            spill, bidi = _parse_command_ahs(ahs)
            cdb += spill
        return cls(
            immediate=bool(b0 & IMMEDIATE_BIT),
            final=bool(flags & FINAL_BIT),
            read=bool(flags & 0x40),
            write=bool(flags & 0x20),
            attr=flags & 0x07,
            lun=lun,
            itt=itt,
            expected_data_transfer_length=edtl,
            cmdsn=cmdsn,
            expstatsn=expstatsn,
            cdb=cdb,
            bidi_read_length=bidi,
            data=data,
        )


def _parse_command_ahs(ahs: bytes) -> tuple[bytes, int | None]:
    """The CDB spill and bidirectional read length in a SCSI Command's AHS bytes."""
    spill = b""
    bidi: int | None = None
    pos, end = 0, len(ahs)
    while pos < end:
        if end - pos < _AHS_HEADER.size:
            raise invalid_field("truncated AHS")
        length, ahs_type = _AHS_HEADER.unpack_from(ahs, pos)
        # RFC 7143 §11.2.2: AHSLength excludes itself, AHSType and the padding.
        stop = pos + _AHS_HEADER.size + length
        if stop > end:
            raise invalid_field(f"AHS of length {length} overruns TotalAHSLength")
        if ahs_type == AhsType.EXTENDED_CDB:
            if spill or length < 2:
                raise invalid_field("duplicate or empty Extended CDB AHS")
            spill = ahs[pos + 4 : stop]
        elif ahs_type == AhsType.BIDI_READ_LENGTH:
            if bidi is not None or length != _BIDI_AHS_LENGTH:
                raise invalid_field("duplicate or malformed bidirectional read length AHS")
            bidi = _BIDI_AHS.unpack_from(ahs, pos)[2]
        else:
            raise invalid_field(f"unknown AHS type {ahs_type}")
        pos = (stop + 3) & ~3
    return spill, bidi


@dataclass(slots=True, kw_only=True)
class ScsiResponse(Pdu):
    """SCSI Response (RFC 7143 §11.4).

    ``data`` is the data segment as sent: SenseLength, sense data, response data
    (§11.4.7); :attr:`sense_data` extracts the sense bytes.
    """

    opcode: ClassVar[Opcode] = Opcode.SCSI_RESPONSE

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

    @property
    def sense_data(self) -> bytes:
        """The sense data: the data segment after its 2-byte SenseLength (§11.4.7)."""
        if len(self.data) < 2:
            return b""
        return self.data[2 : 2 + int.from_bytes(self.data[:2], "big")]

    def _pack(self, lengths: int) -> bytes:
        # RFC 7143 §11.4.1: o/u and O/U are mutually exclusive.
        if (self.bidi_overflow and self.bidi_underflow) or (self.overflow and self.underflow):
            raise local_error(self, "overflow and underflow cannot both be set")
        return _SCSI_RESPONSE.pack(
            Opcode.SCSI_RESPONSE,
            FINAL_BIT
            | (0x10 if self.bidi_overflow else 0)
            | (0x08 if self.bidi_underflow else 0)
            | (0x04 if self.overflow else 0)
            | (0x02 if self.underflow else 0),
            self.response,
            self.status,
            lengths,
            self.itt,
            self.snack_tag,
            self.statsn,
            self.expcmdsn,
            self.maxcmdsn,
            self.expdatasn,
            self.bidi_read_residual_count,
            self.residual_count,
        )

    @classmethod
    def _unpack(cls, buf: Buffer, offset: int, ahs: bytes, data: bytes) -> ScsiResponse:
        (
            _,
            flags,
            response,
            status,
            _,
            itt,
            snack_tag,
            statsn,
            expcmdsn,
            maxcmdsn,
            expdatasn,
            bidi_residual,
            residual,
        ) = _SCSI_RESPONSE.unpack_from(buf, offset)
        if flags & 0x18 == 0x18 or flags & 0x06 == 0x06:
            raise protocol_error("SCSI Response with both overflow and underflow set")
        return cls(
            bidi_overflow=bool(flags & 0x10),
            bidi_underflow=bool(flags & 0x08),
            overflow=bool(flags & 0x04),
            underflow=bool(flags & 0x02),
            response=response,
            status=status,
            itt=itt,
            snack_tag=snack_tag,
            statsn=statsn,
            expcmdsn=expcmdsn,
            maxcmdsn=maxcmdsn,
            expdatasn=expdatasn,
            bidi_read_residual_count=bidi_residual,
            residual_count=residual,
            data=data,
        )


@dataclass(slots=True, kw_only=True)
class DataOut(Pdu):
    """SCSI Data-Out (RFC 7143 §11.7)."""

    opcode: ClassVar[Opcode] = Opcode.SCSI_DATA_OUT

    final: bool = True
    lun: int = 0
    itt: int = 0
    ttt: int = RESERVED_TAG
    expstatsn: int = 0
    datasn: int = 0
    buffer_offset: int = 0
    data: bytes = b""

    def _pack(self, lengths: int) -> bytes:
        return _DATA_OUT.pack(
            Opcode.SCSI_DATA_OUT,
            FINAL_BIT if self.final else 0,
            lengths,
            self.lun,
            self.itt,
            self.ttt,
            self.expstatsn,
            self.datasn,
            self.buffer_offset,
        )

    @classmethod
    def _unpack(cls, buf: Buffer, offset: int, ahs: bytes, data: bytes) -> DataOut:
        _, flags, _, lun, itt, ttt, expstatsn, datasn, buffer_offset = _DATA_OUT.unpack_from(
            buf, offset
        )
        return cls(
            final=bool(flags & FINAL_BIT),
            lun=lun,
            itt=itt,
            ttt=ttt,
            expstatsn=expstatsn,
            datasn=datasn,
            buffer_offset=buffer_offset,
            data=data,
        )


@dataclass(slots=True, kw_only=True)
class DataIn(Pdu):
    """SCSI Data-In (RFC 7143 §11.7).  ``status`` is valid when ``status_present``."""

    opcode: ClassVar[Opcode] = Opcode.SCSI_DATA_IN

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

    def _pack(self, lengths: int) -> bytes:
        # RFC 7143 §11.7: the S bit may be set only together with the F bit.
        if self.status_present and not self.final:
            raise local_error(self, "the S bit requires the F bit")
        return _DATA_IN.pack(
            Opcode.SCSI_DATA_IN,
            (FINAL_BIT if self.final else 0)
            | (0x40 if self.ack else 0)
            | (0x04 if self.overflow else 0)
            | (0x02 if self.underflow else 0)
            | (0x01 if self.status_present else 0),
            self.status,
            lengths,
            self.lun,
            self.itt,
            self.ttt,
            self.statsn,
            self.expcmdsn,
            self.maxcmdsn,
            self.datasn,
            self.buffer_offset,
            self.residual_count,
        )

    @classmethod
    def _unpack(cls, buf: Buffer, offset: int, ahs: bytes, data: bytes) -> DataIn:
        (_, flags, status, _, lun, itt, ttt, statsn, expcmdsn, maxcmdsn, datasn, off, resid) = (
            _DATA_IN.unpack_from(buf, offset)
        )
        if flags & 0x81 == 0x01:
            raise protocol_error("Data-In with the S bit but not the F bit")
        return cls(
            final=bool(flags & FINAL_BIT),
            ack=bool(flags & 0x40),
            overflow=bool(flags & 0x04),
            underflow=bool(flags & 0x02),
            status_present=bool(flags & 0x01),
            status=status,
            lun=lun,
            itt=itt,
            ttt=ttt,
            statsn=statsn,
            expcmdsn=expcmdsn,
            maxcmdsn=maxcmdsn,
            datasn=datasn,
            buffer_offset=off,
            residual_count=resid,
            data=data,
        )


@dataclass(slots=True, kw_only=True)
class R2T(Pdu):
    """Ready To Transfer (RFC 7143 §11.8)."""

    opcode: ClassVar[Opcode] = Opcode.R2T
    DATA_ALLOWED: ClassVar[bool] = False

    lun: int = 0
    itt: int = 0
    ttt: int = 0
    statsn: int = 0
    expcmdsn: int = 0
    maxcmdsn: int = 0
    r2tsn: int = 0
    buffer_offset: int = 0
    desired_data_transfer_length: int = 0
    data: bytes = b""

    def _pack(self, lengths: int) -> bytes:
        return _R2T.pack(
            Opcode.R2T,
            FINAL_BIT,
            lengths,
            self.lun,
            self.itt,
            self.ttt,
            self.statsn,
            self.expcmdsn,
            self.maxcmdsn,
            self.r2tsn,
            self.buffer_offset,
            self.desired_data_transfer_length,
        )

    @classmethod
    def _unpack(cls, buf: Buffer, offset: int, ahs: bytes, data: bytes) -> R2T:
        _, _, _, lun, itt, ttt, statsn, expcmdsn, maxcmdsn, r2tsn, off, ddtl = _R2T.unpack_from(
            buf, offset
        )
        return cls(
            lun=lun,
            itt=itt,
            ttt=ttt,
            statsn=statsn,
            expcmdsn=expcmdsn,
            maxcmdsn=maxcmdsn,
            r2tsn=r2tsn,
            buffer_offset=off,
            desired_data_transfer_length=ddtl,
        )


__all__ = [
    "R2T",
    "DataIn",
    "DataOut",
    "ScsiCommand",
    "ScsiResponse",
]
