"""Numbers of the iSCSI wire protocol (RFC 7143 §11): opcodes, sizes and code points.

This module owns the enumerations every other part of :mod:`iscsikit.proto` compares
against.  It holds no logic: the PDU codec (:mod:`iscsikit.proto.pdu`) decodes these
fields as plain ``int`` (an unknown value from a peer must not crash a decoder), and
callers compare them with the enums below (``IntEnum`` members equal their values).
"""

from __future__ import annotations

from enum import IntEnum
from typing import Final


class Opcode(IntEnum):
    """PDU opcodes (RFC 7143 §11.2.1): the low six bits of BHS byte 0."""

    # Initiator opcodes.
    NOP_OUT = 0x00
    SCSI_COMMAND = 0x01
    TASK_MGMT_REQUEST = 0x02
    LOGIN_REQUEST = 0x03
    TEXT_REQUEST = 0x04
    SCSI_DATA_OUT = 0x05
    LOGOUT_REQUEST = 0x06
    SNACK_REQUEST = 0x10
    # Target opcodes.
    NOP_IN = 0x20
    SCSI_RESPONSE = 0x21
    TASK_MGMT_RESPONSE = 0x22
    LOGIN_RESPONSE = 0x23
    TEXT_RESPONSE = 0x24
    SCSI_DATA_IN = 0x25
    LOGOUT_RESPONSE = 0x26
    R2T = 0x31
    ASYNC_MESSAGE = 0x32
    REJECT = 0x3F


#: Opcodes only an initiator sends (RFC 7143 §11.2.1).
INITIATOR_OPCODES: Final = frozenset(op for op in Opcode if op < 0x20)
#: Opcodes only a target sends (RFC 7143 §11.2.1).
TARGET_OPCODES: Final = frozenset(op for op in Opcode if op >= 0x20)

#: Basic Header Segment length (RFC 7143 §11.2.1).
BHS_LEN: Final = 48
#: Length of a CRC32C header or data digest (RFC 7143 §13.1).
DIGEST_LEN: Final = 4
#: The reserved tag value 0xffffffff (RFC 7143 §11.2.1, §11.18).
RESERVED_TAG: Final = 0xFFFFFFFF
#: Largest value the 24-bit DataSegmentLength field can hold (RFC 7143 §11.2.1).
MAX_DATA_SEGMENT_LENGTH: Final = 2**24 - 1
#: Largest TotalAHSLength in bytes: 255 four-byte words (RFC 7143 §11.2.1).
MAX_TOTAL_AHS_LENGTH: Final = 255 * 4


class Stage(IntEnum):
    """Login stages, the CSG / NSG fields (RFC 7143 §11.12.3).  Value 2 is reserved."""

    SECURITY = 0
    OPERATIONAL = 1
    FULL_FEATURE = 3


class LoginStatusClass(IntEnum):
    """Login Response Status-Class (RFC 7143 §11.13.5)."""

    SUCCESS = 0
    REDIRECTION = 1
    INITIATOR_ERROR = 2
    TARGET_ERROR = 3


class LogoutReason(IntEnum):
    """Logout Request reason codes (RFC 7143 §11.14.1)."""

    CLOSE_SESSION = 0
    CLOSE_CONNECTION = 1
    REMOVE_CONNECTION_FOR_RECOVERY = 2


class LogoutResult(IntEnum):
    """Logout Response ``Response`` codes (RFC 7143 §11.15.1)."""

    SUCCESS = 0
    CID_NOT_FOUND = 1
    RECOVERY_NOT_SUPPORTED = 2
    CLEANUP_FAILED = 3


class RejectReason(IntEnum):
    """Reject PDU reason codes (RFC 7143 §11.17.1).  0x01 is reserved."""

    DATA_DIGEST_ERROR = 0x02
    SNACK_REJECT = 0x03
    PROTOCOL_ERROR = 0x04
    COMMAND_NOT_SUPPORTED = 0x05
    IMMEDIATE_COMMAND_REJECT = 0x06
    TASK_IN_PROGRESS = 0x07
    INVALID_DATA_ACK = 0x08
    INVALID_PDU_FIELD = 0x09
    LONG_OPERATION_REJECT = 0x0A
    DEPRECATED_NEGOTIATION_RESET = 0x0B
    WAITING_FOR_LOGOUT = 0x0C


class TaskAttribute(IntEnum):
    """SCSI Command ATTR field, the task attribute (RFC 7143 §11.3.1, SAM-2)."""

    UNTAGGED = 0
    SIMPLE = 1
    ORDERED = 2
    HEAD_OF_QUEUE = 3
    ACA = 4


class ScsiServiceResponse(IntEnum):
    """SCSI Response ``Response`` field (RFC 7143 §11.4.3)."""

    COMMAND_COMPLETED_AT_TARGET = 0x00
    TARGET_FAILURE = 0x01


class ScsiStatus(IntEnum):
    """Common SCSI status byte values (RFC 7143 §11.4.2, SAM-2)."""

    GOOD = 0x00
    CHECK_CONDITION = 0x02
    CONDITION_MET = 0x04
    BUSY = 0x08
    RESERVATION_CONFLICT = 0x18
    TASK_SET_FULL = 0x28
    ACA_ACTIVE = 0x30
    TASK_ABORTED = 0x40


class TmfFunction(IntEnum):
    """Task Management Function Request function codes (RFC 7143 §11.5.1)."""

    ABORT_TASK = 1
    ABORT_TASK_SET = 2
    CLEAR_ACA = 3
    CLEAR_TASK_SET = 4
    LOGICAL_UNIT_RESET = 5
    TARGET_WARM_RESET = 6
    TARGET_COLD_RESET = 7
    TASK_REASSIGN = 8


class TmfResponse(IntEnum):
    """Task Management Function Response codes (RFC 7143 §11.6.1)."""

    FUNCTION_COMPLETE = 0
    TASK_DOES_NOT_EXIST = 1
    LUN_DOES_NOT_EXIST = 2
    TASK_STILL_ALLEGIANT = 3
    TASK_ALLEGIANCE_REASSIGNMENT_NOT_SUPPORTED = 4
    FUNCTION_NOT_SUPPORTED = 5
    FUNCTION_AUTHORIZATION_FAILED = 6
    FUNCTION_REJECTED = 255


class AsyncEvent(IntEnum):
    """Asynchronous Message AsyncEvent codes (RFC 7143 §11.9.1)."""

    SCSI_EVENT = 0
    LOGOUT_REQUEST = 1
    CONNECTION_DROP = 2
    SESSION_DROP = 3
    NEGOTIATION_REQUEST = 4
    VENDOR_SPECIFIC = 255


class SnackType(IntEnum):
    """SNACK Request Type field (RFC 7143 §11.16.1)."""

    DATA_R2T = 0
    STATUS = 1
    DATA_ACK = 2
    R_DATA = 3


class AhsType(IntEnum):
    """Additional Header Segment types (RFC 7143 §11.2.2)."""

    EXTENDED_CDB = 1
    BIDI_READ_LENGTH = 2


__all__ = [
    "BHS_LEN",
    "DIGEST_LEN",
    "INITIATOR_OPCODES",
    "MAX_DATA_SEGMENT_LENGTH",
    "MAX_TOTAL_AHS_LENGTH",
    "RESERVED_TAG",
    "TARGET_OPCODES",
    "AhsType",
    "AsyncEvent",
    "LoginStatusClass",
    "LogoutReason",
    "LogoutResult",
    "Opcode",
    "RejectReason",
    "ScsiServiceResponse",
    "ScsiStatus",
    "SnackType",
    "Stage",
    "TaskAttribute",
    "TmfFunction",
    "TmfResponse",
]
