"""NOP, Task Management, SNACK, Asynchronous Message and Reject PDUs (RFC 7143 §11).

Each class maps one BHS layout of RFC 7143 §11 to named fields, with one precompiled
:class:`struct.Struct` for the 48 bytes; the struct format strings follow the byte
diagrams of the cited sections ('x' = reserved bytes).  Import the classes from
:mod:`iscsikit.proto.pdu`, which also frames them (AHS, digests, padding).
"""

from __future__ import annotations

from dataclasses import dataclass
from struct import Struct
from typing import ClassVar, Final

from iscsikit.proto.constants import (
    RESERVED_TAG,
    AsyncEvent,
    Opcode,
    RejectReason,
    TmfFunction,
    TmfResponse,
)
from iscsikit.proto.pdu_base import FINAL_BIT, IMMEDIATE_BIT, Buffer, Pdu, local_error

# RFC 7143 §11.18: opcode, F=1, LUN, ITT, TTT, CmdSN, ExpStatSN, 16 reserved.
_NOP_OUT: Final = Struct(">BB2xIQIIII16x")
# RFC 7143 §11.19: opcode, F=1, LUN, ITT, TTT, StatSN, ExpCmdSN, MaxCmdSN, 12 reserved.
_NOP_IN: Final = Struct(">BB2xIQIIIII12x")
# RFC 7143 §11.5: opcode, 1|Function, LUN, ITT, RTT, CmdSN, ExpStatSN, RefCmdSN,
# ExpDataSN, 8 reserved.
_TMF_REQUEST: Final = Struct(">BB2xIQIIIIII8x")
# RFC 7143 §11.6: opcode, F=1, Response, reserved, 8 reserved, ITT, reserved, StatSN,
# ExpCmdSN, MaxCmdSN, 12 reserved.
_TMF_RESPONSE: Final = Struct(">BBBxI8xI4xIII12x")
# RFC 7143 §11.16: opcode, 1|Type, LUN, ITT, TTT/SNACK Tag, reserved, ExpStatSN,
# 8 reserved, BegRun, RunLength.
_SNACK_REQUEST: Final = Struct(">BB2xIQII4xI8xII")
# RFC 7143 §11.9: opcode, F=1, LUN, 0xffffffff, reserved, StatSN, ExpCmdSN, MaxCmdSN,
# AsyncEvent, AsyncVCode, Parameter1, Parameter2, Parameter3, reserved.
_ASYNC_MESSAGE: Final = Struct(">BB2xIQI4xIIIBBHHH4x")
# RFC 7143 §11.17: opcode, F=1, Reason, reserved, 8 reserved, 0xffffffff, reserved,
# StatSN, ExpCmdSN, MaxCmdSN, DataSN/R2TSN, 8 reserved.
_REJECT: Final = Struct(">BBBxI8xI4xIIII8x")


@dataclass(slots=True, kw_only=True)
class NopOut(Pdu):
    """NOP-Out (RFC 7143 §11.18): a ping, or the answer to a target's NOP-In."""

    opcode: ClassVar[Opcode] = Opcode.NOP_OUT

    immediate: bool = True
    lun: int = 0
    itt: int = 0
    ttt: int = RESERVED_TAG
    cmdsn: int = 0
    expstatsn: int = 0
    data: bytes = b""

    def _pack(self, lengths: int) -> bytes:
        return _NOP_OUT.pack(
            Opcode.NOP_OUT | (IMMEDIATE_BIT if self.immediate else 0),
            FINAL_BIT,
            lengths,
            self.lun,
            self.itt,
            self.ttt,
            self.cmdsn,
            self.expstatsn,
        )

    @classmethod
    def _unpack(cls, buf: Buffer, offset: int, ahs: bytes, data: bytes) -> NopOut:
        b0, _, _, lun, itt, ttt, cmdsn, expstatsn = _NOP_OUT.unpack_from(buf, offset)
        return cls(
            immediate=bool(b0 & IMMEDIATE_BIT),
            lun=lun,
            itt=itt,
            ttt=ttt,
            cmdsn=cmdsn,
            expstatsn=expstatsn,
            data=data,
        )


@dataclass(slots=True, kw_only=True)
class NopIn(Pdu):
    """NOP-In (RFC 7143 §11.19): a ping answer, or a target's own ping."""

    opcode: ClassVar[Opcode] = Opcode.NOP_IN

    lun: int = 0
    itt: int = RESERVED_TAG
    ttt: int = RESERVED_TAG
    statsn: int = 0
    expcmdsn: int = 0
    maxcmdsn: int = 0
    data: bytes = b""

    def _pack(self, lengths: int) -> bytes:
        return _NOP_IN.pack(
            Opcode.NOP_IN,
            FINAL_BIT,
            lengths,
            self.lun,
            self.itt,
            self.ttt,
            self.statsn,
            self.expcmdsn,
            self.maxcmdsn,
        )

    @classmethod
    def _unpack(cls, buf: Buffer, offset: int, ahs: bytes, data: bytes) -> NopIn:
        _, _, _, lun, itt, ttt, statsn, expcmdsn, maxcmdsn = _NOP_IN.unpack_from(buf, offset)
        return cls(
            lun=lun,
            itt=itt,
            ttt=ttt,
            statsn=statsn,
            expcmdsn=expcmdsn,
            maxcmdsn=maxcmdsn,
            data=data,
        )


@dataclass(slots=True, kw_only=True)
class TaskMgmtRequest(Pdu):
    """Task Management Function Request (RFC 7143 §11.5)."""

    opcode: ClassVar[Opcode] = Opcode.TASK_MGMT_REQUEST
    DATA_ALLOWED: ClassVar[bool] = False

    immediate: bool = True
    function: int = TmfFunction.ABORT_TASK.value
    lun: int = 0
    itt: int = 0
    referenced_task_tag: int = RESERVED_TAG
    cmdsn: int = 0
    expstatsn: int = 0
    refcmdsn: int = 0
    expdatasn: int = 0
    data: bytes = b""

    def _pack(self, lengths: int) -> bytes:
        if self.function & ~0x7F:
            raise local_error(self, f"function {self.function} does not fit in 7 bits")
        return _TMF_REQUEST.pack(
            Opcode.TASK_MGMT_REQUEST | (IMMEDIATE_BIT if self.immediate else 0),
            FINAL_BIT | self.function,
            lengths,
            self.lun,
            self.itt,
            self.referenced_task_tag,
            self.cmdsn,
            self.expstatsn,
            self.refcmdsn,
            self.expdatasn,
        )

    @classmethod
    def _unpack(cls, buf: Buffer, offset: int, ahs: bytes, data: bytes) -> TaskMgmtRequest:
        b0, b1, _, lun, itt, rtt, cmdsn, expstatsn, refcmdsn, expdatasn = _TMF_REQUEST.unpack_from(
            buf, offset
        )
        return cls(
            immediate=bool(b0 & IMMEDIATE_BIT),
            function=b1 & 0x7F,
            lun=lun,
            itt=itt,
            referenced_task_tag=rtt,
            cmdsn=cmdsn,
            expstatsn=expstatsn,
            refcmdsn=refcmdsn,
            expdatasn=expdatasn,
        )


@dataclass(slots=True, kw_only=True)
class TaskMgmtResponse(Pdu):
    """Task Management Function Response (RFC 7143 §11.6)."""

    opcode: ClassVar[Opcode] = Opcode.TASK_MGMT_RESPONSE
    DATA_ALLOWED: ClassVar[bool] = False

    response: int = TmfResponse.FUNCTION_COMPLETE.value
    itt: int = 0
    statsn: int = 0
    expcmdsn: int = 0
    maxcmdsn: int = 0
    data: bytes = b""

    def _pack(self, lengths: int) -> bytes:
        return _TMF_RESPONSE.pack(
            Opcode.TASK_MGMT_RESPONSE,
            FINAL_BIT,
            self.response,
            lengths,
            self.itt,
            self.statsn,
            self.expcmdsn,
            self.maxcmdsn,
        )

    @classmethod
    def _unpack(cls, buf: Buffer, offset: int, ahs: bytes, data: bytes) -> TaskMgmtResponse:
        _, _, response, _, itt, statsn, expcmdsn, maxcmdsn = _TMF_RESPONSE.unpack_from(buf, offset)
        return cls(response=response, itt=itt, statsn=statsn, expcmdsn=expcmdsn, maxcmdsn=maxcmdsn)


@dataclass(slots=True, kw_only=True)
class SnackRequest(Pdu):
    """SNACK Request (RFC 7143 §11.16).  ``ttt`` is the TTT or the SNACK Tag."""

    opcode: ClassVar[Opcode] = Opcode.SNACK_REQUEST
    DATA_ALLOWED: ClassVar[bool] = False

    type: int = 0
    lun: int = 0
    itt: int = RESERVED_TAG
    ttt: int = RESERVED_TAG
    expstatsn: int = 0
    begrun: int = 0
    runlength: int = 0
    data: bytes = b""

    def _pack(self, lengths: int) -> bytes:
        if self.type & ~0x0F:
            raise local_error(self, f"type {self.type} does not fit in 4 bits")
        return _SNACK_REQUEST.pack(
            Opcode.SNACK_REQUEST,
            FINAL_BIT | self.type,
            lengths,
            self.lun,
            self.itt,
            self.ttt,
            self.expstatsn,
            self.begrun,
            self.runlength,
        )

    @classmethod
    def _unpack(cls, buf: Buffer, offset: int, ahs: bytes, data: bytes) -> SnackRequest:
        _, b1, _, lun, itt, ttt, expstatsn, begrun, runlength = _SNACK_REQUEST.unpack_from(
            buf, offset
        )
        return cls(
            type=b1 & 0x0F,
            lun=lun,
            itt=itt,
            ttt=ttt,
            expstatsn=expstatsn,
            begrun=begrun,
            runlength=runlength,
        )


@dataclass(slots=True, kw_only=True)
class AsyncMessage(Pdu):
    """Asynchronous Message (RFC 7143 §11.9).  Its ITT field is always 0xffffffff."""

    opcode: ClassVar[Opcode] = Opcode.ASYNC_MESSAGE

    lun: int = 0
    statsn: int = 0
    expcmdsn: int = 0
    maxcmdsn: int = 0
    async_event: int = AsyncEvent.SCSI_EVENT.value
    async_vcode: int = 0
    parameter1: int = 0
    parameter2: int = 0
    parameter3: int = 0
    data: bytes = b""

    def _pack(self, lengths: int) -> bytes:
        return _ASYNC_MESSAGE.pack(
            Opcode.ASYNC_MESSAGE,
            FINAL_BIT,
            lengths,
            self.lun,
            RESERVED_TAG,
            self.statsn,
            self.expcmdsn,
            self.maxcmdsn,
            self.async_event,
            self.async_vcode,
            self.parameter1,
            self.parameter2,
            self.parameter3,
        )

    @classmethod
    def _unpack(cls, buf: Buffer, offset: int, ahs: bytes, data: bytes) -> AsyncMessage:
        (_, _, _, lun, _, statsn, expcmdsn, maxcmdsn, event, vcode, p1, p2, p3) = (
            _ASYNC_MESSAGE.unpack_from(buf, offset)
        )
        return cls(
            lun=lun,
            statsn=statsn,
            expcmdsn=expcmdsn,
            maxcmdsn=maxcmdsn,
            async_event=event,
            async_vcode=vcode,
            parameter1=p1,
            parameter2=p2,
            parameter3=p3,
            data=data,
        )


@dataclass(slots=True, kw_only=True)
class Reject(Pdu):
    """Reject (RFC 7143 §11.17).  ``data`` is the complete header of the rejected PDU."""

    opcode: ClassVar[Opcode] = Opcode.REJECT

    reason: int = RejectReason.PROTOCOL_ERROR.value
    statsn: int = 0
    expcmdsn: int = 0
    maxcmdsn: int = 0
    datasn_r2tsn: int = 0
    data: bytes = b""

    def _pack(self, lengths: int) -> bytes:
        return _REJECT.pack(
            Opcode.REJECT,
            FINAL_BIT,
            self.reason,
            lengths,
            RESERVED_TAG,
            self.statsn,
            self.expcmdsn,
            self.maxcmdsn,
            self.datasn_r2tsn,
        )

    @classmethod
    def _unpack(cls, buf: Buffer, offset: int, ahs: bytes, data: bytes) -> Reject:
        _, _, reason, _, _, statsn, expcmdsn, maxcmdsn, datasn = _REJECT.unpack_from(buf, offset)
        return cls(
            reason=reason,
            statsn=statsn,
            expcmdsn=expcmdsn,
            maxcmdsn=maxcmdsn,
            datasn_r2tsn=datasn,
            data=data,
        )


__all__ = [
    "AsyncMessage",
    "NopIn",
    "NopOut",
    "Reject",
    "SnackRequest",
    "TaskMgmtRequest",
    "TaskMgmtResponse",
]
