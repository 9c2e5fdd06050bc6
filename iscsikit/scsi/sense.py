"""Sense data (SPC-4 §4.5) and its iSCSI framing (RFC 7143 §11.4.7.2).

This module owns decoding the sense data a target returns with CHECK CONDITION, in
both formats: fixed (response codes 0x70 current / 0x71 deferred, SPC-4 §4.5.3) and
descriptor (0x72 / 0x73, SPC-4 §4.5.2), into one :class:`Sense` value with a readable
:attr:`Sense.description`.  It does not decide what an error means for the caller;
that is :mod:`iscsikit.scsi.errors`.

Truncated sense is normal (the target's ADDITIONAL SENSE LENGTH may promise more than
the buffer holds): fields that are not there read as zero / ``None``.  Only data that is
not sense at all (empty, or a response code other than 0x70-0x73) raises
:class:`~iscsikit.scsi.buffer.ScsiParseError`.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum
from typing import Final

from iscsikit.scsi.asc import asc_text
from iscsikit.scsi.buffer import ScsiParseError, be, byte

__all__ = [
    "DescriptorType",
    "Sense",
    "SenseDescriptor",
    "SenseKey",
    "decode_iscsi_sense",
    "decode_sense",
]

_FIXED: Final = (0x70, 0x71)
_DESCRIPTOR: Final = (0x72, 0x73)
_DEFERRED: Final = (0x71, 0x73)


class SenseKey(IntEnum):
    """SPC-4 Table 48 (0x0C is obsolete, formerly EQUAL)."""

    NO_SENSE = 0x0
    RECOVERED_ERROR = 0x1
    NOT_READY = 0x2
    MEDIUM_ERROR = 0x3
    HARDWARE_ERROR = 0x4
    ILLEGAL_REQUEST = 0x5
    UNIT_ATTENTION = 0x6
    DATA_PROTECT = 0x7
    BLANK_CHECK = 0x8
    VENDOR_SPECIFIC = 0x9
    COPY_ABORTED = 0xA
    ABORTED_COMMAND = 0xB
    OBSOLETE_0C = 0xC
    VOLUME_OVERFLOW = 0xD
    MISCOMPARE = 0xE
    COMPLETED = 0xF

    @property
    def text(self) -> str:
        """The SPC spelling: ``UNIT ATTENTION``."""
        return self.name.replace("_", " ")


class DescriptorType(IntEnum):
    """Sense data descriptor types decoded into :class:`Sense` fields (SPC-4 Table 27)."""

    INFORMATION = 0x00
    COMMAND_SPECIFIC = 0x01
    SENSE_KEY_SPECIFIC = 0x02
    FIELD_REPLACEABLE_UNIT = 0x03
    STREAM_COMMANDS = 0x04
    BLOCK_COMMANDS = 0x05


@dataclass(frozen=True, slots=True)
class SenseDescriptor:
    """One descriptor of descriptor-format sense: its type and the bytes after the
    two-byte header (possibly fewer than its ADDITIONAL LENGTH when truncated)."""

    type: int
    data: bytes


@dataclass(frozen=True, slots=True)
class Sense:
    """Decoded sense data, whichever format it came in.

    ``information`` / ``command_specific`` are ``None`` when absent (fixed format: VALID
    bit clear or field truncated; descriptor format: no such descriptor).
    ``sense_key_specific`` is the three SKSV bytes when SKSV is set.  ``descriptors``
    lists every descriptor of descriptor-format sense (empty for fixed format).
    """

    response_code: int
    key: SenseKey
    asc: int
    ascq: int
    information: int | None = None
    command_specific: int | None = None
    sense_key_specific: bytes | None = None
    descriptors: tuple[SenseDescriptor, ...] = ()
    deferred: bool = False
    filemark: bool = False
    eom: bool = False
    ili: bool = False
    fru_code: int = 0
    raw: bytes = b""

    @property
    def descriptor_format(self) -> bool:
        return self.response_code in _DESCRIPTOR

    @property
    def asc_text(self) -> str:
        """``power on, reset, or bus device reset occurred``, or ``ASC 0xNN ASCQ 0xNN``."""
        return asc_text(self.asc, self.ascq)

    @property
    def description(self) -> str:
        """``UNIT ATTENTION: power on, reset, or bus device reset occurred``."""
        text = f"{self.key.text}: {self.asc_text}"
        pointer = self.field_pointer
        if pointer is not None:
            in_cdb, byte_no, bit = pointer
            where = "CDB" if in_cdb else "parameter list"
            text += f" ({where} byte {byte_no}" + (f" bit {bit})" if bit is not None else ")")
        return f"deferred error, {text}" if self.deferred else text

    @property
    def field_pointer(self) -> tuple[bool, int, int | None] | None:
        """ILLEGAL REQUEST's field pointer (SPC-4 §4.5.2.4.2): (in CDB, byte, bit or None)."""
        sks = self.sense_key_specific
        if self.key != SenseKey.ILLEGAL_REQUEST or sks is None or len(sks) < 3:
            return None
        # Byte 0: SKSV(7) C/D(6) reserved BPV(3) BIT POINTER(2-0); bytes 1-2: FIELD POINTER.
        bit = sks[0] & 0x07 if sks[0] & 0x08 else None
        return bool(sks[0] & 0x40), int.from_bytes(sks[1:3], "big"), bit


def _sksv(three: bytes) -> bytes | None:
    return bytes(three) if len(three) == 3 and three[0] & 0x80 else None


def _decode_fixed(data: bytes) -> Sense:
    # SPC-4 Table 45: 0 VALID|RESPONSE CODE, 2 FILEMARK|EOM|ILI|SDAT_OVFL|KEY,
    # 3-6 INFORMATION, 7 ADDITIONAL SENSE LENGTH, 8-11 COMMAND-SPECIFIC INFORMATION,
    # 12 ASC, 13 ASCQ, 14 FRU CODE, 15-17 SKSV|SENSE KEY SPECIFIC.
    end = min(len(data), 8 + byte(data, 7)) if len(data) >= 8 else len(data)
    body = data[:end]
    flags = byte(body, 2)
    information = be(body, 3, 4) if data[0] & 0x80 and len(body) >= 7 else None
    return Sense(
        response_code=data[0] & 0x7F,
        key=SenseKey(flags & 0x0F),
        asc=byte(body, 12),
        ascq=byte(body, 13),
        information=information,
        command_specific=be(body, 8, 4) if len(body) >= 12 else None,
        sense_key_specific=_sksv(body[15:18]),
        deferred=data[0] & 0x7F in _DEFERRED,
        filemark=bool(flags & 0x80),
        eom=bool(flags & 0x40),
        ili=bool(flags & 0x20),
        fru_code=byte(body, 14),
        raw=bytes(data),
    )


def _decode_descriptor(data: bytes) -> Sense:
    # SPC-4 Table 26: 0 RESPONSE CODE, 1 KEY, 2 ASC, 3 ASCQ, 7 ADDITIONAL SENSE LENGTH,
    # 8.. descriptors, each TYPE, ADDITIONAL LENGTH, then that many bytes.
    end = min(len(data), 8 + byte(data, 7))
    descriptors: list[SenseDescriptor] = []
    offset = 8
    while offset + 2 <= end:
        length = data[offset + 1]
        descriptors.append(
            SenseDescriptor(
                data[offset], bytes(data[offset + 2 : offset + 2 + length][: end - offset - 2])
            )
        )
        offset += 2 + length
    information = command_specific = None
    sks: bytes | None = None
    filemark = eom = ili = False
    fru = 0
    for d in descriptors:
        # Descriptor bytes are numbered from the type byte in SPC-4; d.data[i] is byte i+2.
        if d.type == DescriptorType.INFORMATION and len(d.data) >= 10 and d.data[0] & 0x80:
            information = be(d.data, 2, 8)
        elif d.type == DescriptorType.COMMAND_SPECIFIC and len(d.data) >= 10:
            command_specific = be(d.data, 2, 8)
        elif d.type == DescriptorType.SENSE_KEY_SPECIFIC:
            sks = _sksv(d.data[2:5])
        elif d.type == DescriptorType.FIELD_REPLACEABLE_UNIT:
            fru = byte(d.data, 1)
        elif d.type == DescriptorType.STREAM_COMMANDS:
            flags = byte(d.data, 1)
            filemark, eom, ili = bool(flags & 0x80), bool(flags & 0x40), bool(flags & 0x20)
        elif d.type == DescriptorType.BLOCK_COMMANDS:
            ili = bool(byte(d.data, 1) & 0x20)
    return Sense(
        response_code=data[0] & 0x7F,
        key=SenseKey(byte(data, 1) & 0x0F),
        asc=byte(data, 2),
        ascq=byte(data, 3),
        information=information,
        command_specific=command_specific,
        sense_key_specific=sks,
        descriptors=tuple(descriptors),
        deferred=data[0] & 0x7F in _DEFERRED,
        filemark=filemark,
        eom=eom,
        ili=ili,
        fru_code=fru,
        raw=bytes(data),
    )


def decode_sense(data: bytes) -> Sense:
    """Decode fixed- or descriptor-format sense data (SPC-4 §4.5).

    Raises :class:`~iscsikit.scsi.buffer.ScsiParseError` for an empty buffer or a
    response code other than 0x70-0x73 (vendor-specific 0x7F included: its layout is
    unknown).  Anything shorter than the structure is decoded as far as it goes.
    """
    if not data:
        raise ScsiParseError("empty sense data")
    code = data[0] & 0x7F
    if code in _FIXED:
        return _decode_fixed(bytes(data))
    if code in _DESCRIPTOR:
        return _decode_descriptor(bytes(data))
    raise ScsiParseError(f"not sense data: response code 0x{code:02x}")


def decode_iscsi_sense(data: bytes) -> Sense | None:
    """Decode a SCSI Response PDU's data segment: SenseLength(2) + sense (RFC 7143 §11.4.7.2).

    Returns ``None`` when the segment is empty or SenseLength is 0.  A SenseLength larger
    than the segment decodes what arrived; bytes after the sense (iSCSI Response Data)
    are ignored.
    """
    if not data:
        return None
    if len(data) < 2:
        raise ScsiParseError("SCSI Response data segment shorter than its SenseLength field")
    length = int.from_bytes(data[:2], "big")
    if length == 0:
        return None
    sense = data[2 : 2 + length]
    if not sense:
        raise ScsiParseError(f"SenseLength {length} but no sense data follows")
    return decode_sense(sense)
