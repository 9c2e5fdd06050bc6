"""Byte layouts of the Full Feature Phase hot path, as precompiled structs.

The general codec (:mod:`iscsikit.proto.pdu`) builds a dataclass per PDU; the data
path cannot afford that for every SCSI Command, Data-In and Data-Out, so this module
packs and unpacks those Basic Header Segments directly.  Layouts are RFC 7143 §11.3
(SCSI Command), §11.7 (Data-Out / Data-In), §11.4 (SCSI Response), §11.8 (R2T).  The
test suite checks every layout here against the general codec field by field.
"""

from __future__ import annotations

import struct
from typing import Final

from iscsikit.proto.digest import crc32c

#: Every target BHS has this shape: opcode, flags, two opcode-specific bytes, the
#: TotalAHSLength/DataSegmentLength word, LUN or opcode-specific 8 bytes, then eight
#: 32-bit fields at offsets 16..44.
TARGET_BHS: Final = struct.Struct(">BBBBIQ8I")

#: SCSI Command: opcode|I, flags, reserved, AHS/DSL, LUN, ITT, EDTL, CmdSN, ExpStatSN, CDB.
SCSI_COMMAND: Final = struct.Struct(">BBHIQIIII16s")

#: SCSI Data-Out: opcode, flags, reserved, AHS/DSL, LUN, ITT, TTT, reserved, ExpStatSN,
#: reserved, DataSN, Buffer Offset, reserved.
DATA_OUT: Final = struct.Struct(">BBHIQIIIIIIII")

# Field positions in a TARGET_BHS tuple.
OPCODE: Final = 0
FLAGS: Final = 1
BYTE2: Final = 2
BYTE3: Final = 3
LENGTHS: Final = 4
LUN: Final = 5
ITT: Final = 6
TTT: Final = 7  # SNACK Tag in a SCSI Response, reserved in NOP-In answers
STATSN: Final = 8
EXPCMDSN: Final = 9
MAXCMDSN: Final = 10
SN36: Final = 11  # DataSN (Data-In), R2TSN (R2T), ExpDataSN (SCSI Response)
OFFSET40: Final = 12  # Buffer Offset (Data-In, R2T), Bidi residual (SCSI Response)
WORD44: Final = 13  # Residual Count (Data-In, SCSI Response), Desired length (R2T)

# Flag bits (byte 1) of the target PDUs read on the hot path.
F_FINAL: Final = 0x80
F_READ: Final = 0x40  # SCSI Command R bit; also the Data-In A (acknowledge) bit
F_WRITE: Final = 0x20
DATAIN_STATUS: Final = 0x01  # S
RESIDUAL_UNDERFLOW: Final = 0x02  # U
RESIDUAL_OVERFLOW: Final = 0x04  # O
BIDI_UNDERFLOW: Final = 0x08  # u
BIDI_OVERFLOW: Final = 0x10  # o

#: Zero padding to a 4-byte boundary, by pad length.
PADS: Final = (b"", b"\0", b"\0\0", b"\0\0\0")


def digest_word(data: bytes | bytearray | memoryview, value: int = 0) -> bytes:
    """The 4 wire bytes of a CRC32C digest (least significant byte first, RFC 7143 §13.1)."""
    return crc32c(data, value).to_bytes(4, "little")


__all__ = [
    "DATA_OUT",
    "PADS",
    "SCSI_COMMAND",
    "TARGET_BHS",
    "digest_word",
]
