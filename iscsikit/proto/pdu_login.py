"""Login, Text and Logout PDUs (RFC 7143 §11.10-§11.15).

Each class maps one BHS layout of RFC 7143 §11 to named fields, with one precompiled
:class:`struct.Struct` for the 48 bytes; the struct format strings follow the byte
diagrams of the cited sections ('x' = reserved bytes).  Import the classes from
:mod:`iscsikit.proto.pdu`, which also frames them (AHS, digests, padding).
"""

from __future__ import annotations

from dataclasses import dataclass
from struct import Struct
from typing import ClassVar, Final

from iscsikit.proto.constants import RESERVED_TAG, LogoutReason, LogoutResult, Opcode, Stage
from iscsikit.proto.pdu_base import (
    FINAL_BIT,
    IMMEDIATE_BIT,
    Buffer,
    Pdu,
    local_error,
    protocol_error,
)

# RFC 7143 §11.12: opcode, T|C|CSG|NSG, Version-max, Version-min, ISID, TSIH, ITT,
# CID, 2 reserved, CmdSN, ExpStatSN, 16 reserved.
_LOGIN_REQUEST: Final = Struct(">BBBBI6sHIH2xII16x")
# RFC 7143 §11.13: opcode, T|C|CSG|NSG, Version-max, Version-active, ISID, TSIH, ITT,
# reserved, StatSN, ExpCmdSN, MaxCmdSN, Status-Class, Status-Detail, 10 reserved.
_LOGIN_RESPONSE: Final = Struct(">BBBBI6sHI4xIIIBB10x")
# RFC 7143 §11.10: opcode, F|C, LUN, ITT, TTT, CmdSN, ExpStatSN, 16 reserved.
_TEXT_REQUEST: Final = Struct(">BB2xIQIIII16x")
# RFC 7143 §11.11: opcode, F|C, LUN, ITT, TTT, StatSN, ExpCmdSN, MaxCmdSN, 12 reserved.
_TEXT_RESPONSE: Final = Struct(">BB2xIQIIIII12x")
# RFC 7143 §11.14: opcode, 1|Reason, 8 reserved, ITT, CID, 2 reserved, CmdSN,
# ExpStatSN, 16 reserved.
_LOGOUT_REQUEST: Final = Struct(">BB2xI8xIH2xII16x")
# RFC 7143 §11.15: opcode, F=1, Response, reserved, 8 reserved, ITT, reserved, StatSN,
# ExpCmdSN, MaxCmdSN, reserved, Time2Wait, Time2Retain, reserved.
_LOGOUT_RESPONSE: Final = Struct(">BBBxI8xI4xIII4xHH4x")


@dataclass(slots=True, kw_only=True)
class LoginRequest(Pdu):
    """Login Request (RFC 7143 §11.12).  The I bit is always 1 on the wire."""

    opcode: ClassVar[Opcode] = Opcode.LOGIN_REQUEST

    transit: bool = False
    cont: bool = False
    csg: int = Stage.SECURITY.value
    nsg: int = Stage.SECURITY.value
    version_max: int = 0
    version_min: int = 0
    isid: bytes = bytes(6)
    tsih: int = 0
    itt: int = 0
    cid: int = 0
    cmdsn: int = 0
    expstatsn: int = 0
    data: bytes = b""

    def _pack(self, lengths: int) -> bytes:
        return _LOGIN_REQUEST.pack(
            Opcode.LOGIN_REQUEST | IMMEDIATE_BIT,
            _login_flags(self, self.transit, self.cont, self.csg, self.nsg),
            self.version_max,
            self.version_min,
            lengths,
            _check_isid(self, self.isid),
            self.tsih,
            self.itt,
            self.cid,
            self.cmdsn,
            self.expstatsn,
        )

    @classmethod
    def _unpack(cls, buf: Buffer, offset: int, ahs: bytes, data: bytes) -> LoginRequest:
        _, flags, vmax, vmin, _, isid, tsih, itt, cid, cmdsn, expstatsn = (
            _LOGIN_REQUEST.unpack_from(buf, offset)
        )
        _check_login_flags(flags)
        return cls(
            transit=bool(flags & 0x80),
            cont=bool(flags & 0x40),
            csg=flags >> 2 & 0x03,
            nsg=flags & 0x03,
            version_max=vmax,
            version_min=vmin,
            isid=isid,
            tsih=tsih,
            itt=itt,
            cid=cid,
            cmdsn=cmdsn,
            expstatsn=expstatsn,
            data=data,
        )


@dataclass(slots=True, kw_only=True)
class LoginResponse(Pdu):
    """Login Response (RFC 7143 §11.13)."""

    opcode: ClassVar[Opcode] = Opcode.LOGIN_RESPONSE

    transit: bool = False
    cont: bool = False
    csg: int = Stage.SECURITY.value
    nsg: int = Stage.SECURITY.value
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

    def _pack(self, lengths: int) -> bytes:
        return _LOGIN_RESPONSE.pack(
            Opcode.LOGIN_RESPONSE,
            _login_flags(self, self.transit, self.cont, self.csg, self.nsg),
            self.version_max,
            self.version_active,
            lengths,
            _check_isid(self, self.isid),
            self.tsih,
            self.itt,
            self.statsn,
            self.expcmdsn,
            self.maxcmdsn,
            self.status_class,
            self.status_detail,
        )

    @classmethod
    def _unpack(cls, buf: Buffer, offset: int, ahs: bytes, data: bytes) -> LoginResponse:
        (
            _,
            flags,
            vmax,
            vactive,
            _,
            isid,
            tsih,
            itt,
            statsn,
            expcmdsn,
            maxcmdsn,
            sclass,
            sdetail,
        ) = _LOGIN_RESPONSE.unpack_from(buf, offset)
        _check_login_flags(flags)
        return cls(
            transit=bool(flags & 0x80),
            cont=bool(flags & 0x40),
            csg=flags >> 2 & 0x03,
            nsg=flags & 0x03,
            version_max=vmax,
            version_active=vactive,
            isid=isid,
            tsih=tsih,
            itt=itt,
            statsn=statsn,
            expcmdsn=expcmdsn,
            maxcmdsn=maxcmdsn,
            status_class=sclass,
            status_detail=sdetail,
            data=data,
        )


def _login_flags(pdu: Pdu, transit: bool, cont: bool, csg: int, nsg: int) -> int:
    """Byte 1 of a Login Request or Response: T|C|.|.|CSG|NSG (RFC 7143 §11.12)."""
    if transit and cont:
        raise local_error(pdu, "the T and C bits cannot both be set")
    if (csg | nsg) & ~0x03:
        raise local_error(pdu, f"csg {csg} / nsg {nsg} do not fit in 2 bits")
    return (0x80 if transit else 0) | (0x40 if cont else 0) | csg << 2 | nsg


def _check_login_flags(flags: int) -> None:
    """Refuse a received login PDU whose T and C bits are both set (RFC 7143 §11.12)."""
    if flags & 0xC0 == 0xC0:
        raise protocol_error("login PDU with both the T and C bits set")


def _check_isid(pdu: Pdu, isid: bytes) -> bytes:
    """The ISID to pack: exactly 6 bytes (RFC 7143 §11.12), never silently padded."""
    if len(isid) != 6:
        raise local_error(pdu, f"ISID must be 6 bytes, not {len(isid)}")
    return isid


@dataclass(slots=True, kw_only=True)
class TextRequest(Pdu):
    """Text Request (RFC 7143 §11.10)."""

    opcode: ClassVar[Opcode] = Opcode.TEXT_REQUEST

    immediate: bool = False
    final: bool = True
    cont: bool = False
    lun: int = 0
    itt: int = 0
    ttt: int = RESERVED_TAG
    cmdsn: int = 0
    expstatsn: int = 0
    data: bytes = b""

    def _pack(self, lengths: int) -> bytes:
        return _TEXT_REQUEST.pack(
            Opcode.TEXT_REQUEST | (IMMEDIATE_BIT if self.immediate else 0),
            _text_flags(self, self.final, self.cont),
            lengths,
            self.lun,
            self.itt,
            self.ttt,
            self.cmdsn,
            self.expstatsn,
        )

    @classmethod
    def _unpack(cls, buf: Buffer, offset: int, ahs: bytes, data: bytes) -> TextRequest:
        b0, flags, _, lun, itt, ttt, cmdsn, expstatsn = _TEXT_REQUEST.unpack_from(buf, offset)
        _check_text_flags(flags)
        return cls(
            immediate=bool(b0 & IMMEDIATE_BIT),
            final=bool(flags & FINAL_BIT),
            cont=bool(flags & 0x40),
            lun=lun,
            itt=itt,
            ttt=ttt,
            cmdsn=cmdsn,
            expstatsn=expstatsn,
            data=data,
        )


@dataclass(slots=True, kw_only=True)
class TextResponse(Pdu):
    """Text Response (RFC 7143 §11.11)."""

    opcode: ClassVar[Opcode] = Opcode.TEXT_RESPONSE

    final: bool = True
    cont: bool = False
    lun: int = 0
    itt: int = 0
    ttt: int = RESERVED_TAG
    statsn: int = 0
    expcmdsn: int = 0
    maxcmdsn: int = 0
    data: bytes = b""

    def _pack(self, lengths: int) -> bytes:
        return _TEXT_RESPONSE.pack(
            Opcode.TEXT_RESPONSE,
            _text_flags(self, self.final, self.cont),
            lengths,
            self.lun,
            self.itt,
            self.ttt,
            self.statsn,
            self.expcmdsn,
            self.maxcmdsn,
        )

    @classmethod
    def _unpack(cls, buf: Buffer, offset: int, ahs: bytes, data: bytes) -> TextResponse:
        _, flags, _, lun, itt, ttt, statsn, expcmdsn, maxcmdsn = _TEXT_RESPONSE.unpack_from(
            buf, offset
        )
        _check_text_flags(flags)
        return cls(
            final=bool(flags & FINAL_BIT),
            cont=bool(flags & 0x40),
            lun=lun,
            itt=itt,
            ttt=ttt,
            statsn=statsn,
            expcmdsn=expcmdsn,
            maxcmdsn=maxcmdsn,
            data=data,
        )


def _text_flags(pdu: Pdu, final: bool, cont: bool) -> int:
    """Byte 1 of a Text Request or Response: F|C (RFC 7143 §11.10, §11.11)."""
    if final and cont:
        raise local_error(pdu, "the F and C bits cannot both be set")
    return (FINAL_BIT if final else 0) | (0x40 if cont else 0)


def _check_text_flags(flags: int) -> None:
    """Refuse a received text PDU with both F and C set (RFC 7143 §11.10, §11.11)."""
    if flags & 0xC0 == 0xC0:
        raise protocol_error("text PDU with both the F and C bits set")


@dataclass(slots=True, kw_only=True)
class LogoutRequest(Pdu):
    """Logout Request (RFC 7143 §11.14)."""

    opcode: ClassVar[Opcode] = Opcode.LOGOUT_REQUEST
    DATA_ALLOWED: ClassVar[bool] = False

    immediate: bool = True
    reason: int = LogoutReason.CLOSE_SESSION.value
    itt: int = 0
    cid: int = 0
    cmdsn: int = 0
    expstatsn: int = 0
    data: bytes = b""

    def _pack(self, lengths: int) -> bytes:
        if self.reason & ~0x7F:
            raise local_error(self, f"reason {self.reason} does not fit in 7 bits")
        return _LOGOUT_REQUEST.pack(
            Opcode.LOGOUT_REQUEST | (IMMEDIATE_BIT if self.immediate else 0),
            FINAL_BIT | self.reason,
            lengths,
            self.itt,
            self.cid,
            self.cmdsn,
            self.expstatsn,
        )

    @classmethod
    def _unpack(cls, buf: Buffer, offset: int, ahs: bytes, data: bytes) -> LogoutRequest:
        b0, b1, _, itt, cid, cmdsn, expstatsn = _LOGOUT_REQUEST.unpack_from(buf, offset)
        return cls(
            immediate=bool(b0 & IMMEDIATE_BIT),
            reason=b1 & 0x7F,
            itt=itt,
            cid=cid,
            cmdsn=cmdsn,
            expstatsn=expstatsn,
        )


@dataclass(slots=True, kw_only=True)
class LogoutResponse(Pdu):
    """Logout Response (RFC 7143 §11.15)."""

    opcode: ClassVar[Opcode] = Opcode.LOGOUT_RESPONSE
    DATA_ALLOWED: ClassVar[bool] = False

    response: int = LogoutResult.SUCCESS.value
    itt: int = 0
    statsn: int = 0
    expcmdsn: int = 0
    maxcmdsn: int = 0
    time2wait: int = 0
    time2retain: int = 0
    data: bytes = b""

    def _pack(self, lengths: int) -> bytes:
        return _LOGOUT_RESPONSE.pack(
            Opcode.LOGOUT_RESPONSE,
            FINAL_BIT,
            self.response,
            lengths,
            self.itt,
            self.statsn,
            self.expcmdsn,
            self.maxcmdsn,
            self.time2wait,
            self.time2retain,
        )

    @classmethod
    def _unpack(cls, buf: Buffer, offset: int, ahs: bytes, data: bytes) -> LogoutResponse:
        _, _, response, _, itt, statsn, expcmdsn, maxcmdsn, t2w, t2r = _LOGOUT_RESPONSE.unpack_from(
            buf, offset
        )
        return cls(
            response=response,
            itt=itt,
            statsn=statsn,
            expcmdsn=expcmdsn,
            maxcmdsn=maxcmdsn,
            time2wait=t2w,
            time2retain=t2r,
        )


__all__ = [
    "LoginRequest",
    "LoginResponse",
    "LogoutRequest",
    "LogoutResponse",
    "TextRequest",
    "TextResponse",
]
