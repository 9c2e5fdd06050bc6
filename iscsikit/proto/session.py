"""Full Feature Phase bookkeeping shared by every request type, sans-I/O.

:class:`SessionState` owns the numbers RFC 7143 §4.2.2 asks an initiator to keep:
CmdSN / ExpCmdSN / MaxCmdSN (the command window, serial arithmetic per RFC 1982),
ExpStatSN, and Initiator Task Tag allocation.  The small request/response helpers
here (Logout, NOP-Out / NOP-In) build PDUs from that state and check the answers;
the SCSI data path builds on the same object.
"""

from __future__ import annotations

from dataclasses import dataclass

from iscsikit.errors import LogoutError, RemoteProtocolError
from iscsikit.proto.constants import RESERVED_TAG, LogoutReason, LogoutResult, RejectReason
from iscsikit.proto.pdu import LogoutRequest, LogoutResponse, NopIn, NopOut, Pdu, Reject

_MASK = 0xFFFFFFFF


def sn_lt(a: int, b: int) -> bool:
    """Serial-number ``a < b`` (RFC 1982 with SERIAL_BITS = 32; RFC 7143 §4.2.2.1)."""
    return a != b and ((b - a) & _MASK) < 0x80000000


def sn_le(a: int, b: int) -> bool:
    return a == b or sn_lt(a, b)


class SessionState:
    """Sequence numbers and task tags of one session (one connection, ERL 0)."""

    def __init__(self, *, cmdsn: int, expcmdsn: int, maxcmdsn: int, expstatsn: int) -> None:
        self.cmdsn = cmdsn & _MASK
        self.expcmdsn = expcmdsn & _MASK
        self.maxcmdsn = maxcmdsn & _MASK
        self.expstatsn = expstatsn & _MASK
        self._itt = 0

    def next_itt(self) -> int:
        """A fresh Initiator Task Tag, never the reserved 0xffffffff."""
        self._itt = (self._itt + 1) & _MASK
        if self._itt == RESERVED_TAG:
            self._itt = 0
        return self._itt

    def window_open(self) -> bool:
        """True when a non-immediate command may be sent (CmdSN <= MaxCmdSN)."""
        return sn_le(self.cmdsn, self.maxcmdsn)

    def take_cmdsn(self, *, immediate: bool = False) -> int:
        """The CmdSN for the next command; non-immediate commands advance it."""
        cmdsn = self.cmdsn
        if not immediate:
            self.cmdsn = (self.cmdsn + 1) & _MASK
        return cmdsn

    def update_from_response(self, statsn: int | None, expcmdsn: int, maxcmdsn: int) -> None:
        """Apply a target PDU's StatSN / ExpCmdSN / MaxCmdSN (RFC 7143 §4.2.2.1).

        A MaxCmdSN more than 2**31 behind ExpCmdSN - 1 is invalid and ignored, as are
        stale (older) values, as the RFC requires.
        """
        if statsn is not None:
            self.expstatsn = (statsn + 1) & _MASK
        if sn_lt(maxcmdsn, (expcmdsn - 1) & _MASK):
            return
        if sn_lt(self.expcmdsn, expcmdsn):
            self.expcmdsn = expcmdsn & _MASK
        if sn_lt(self.maxcmdsn, maxcmdsn):
            self.maxcmdsn = maxcmdsn & _MASK


@dataclass(frozen=True, slots=True)
class LogoutAccepted:
    """The target accepted the logout; ``time2wait``/``time2retain`` are its hints (§11.15)."""

    time2wait: int
    time2retain: int


class LogoutExchange:
    """One Logout Request and its response (RFC 7143 §11.14, §11.15)."""

    def __init__(
        self,
        state: SessionState,
        *,
        reason: LogoutReason = LogoutReason.CLOSE_SESSION,
        cid: int = 0,
    ) -> None:
        self._state = state
        self.reason = reason
        self.cid = cid
        self.itt = state.next_itt()

    def request(self) -> LogoutRequest:
        # Sent as an immediate command so it passes a closed command window.
        return LogoutRequest(
            immediate=True,
            reason=int(self.reason),
            itt=self.itt,
            cid=self.cid if self.reason != LogoutReason.CLOSE_SESSION else 0,
            cmdsn=self._state.take_cmdsn(immediate=True),
            expstatsn=self._state.expstatsn,
        )

    def receive(self, pdu: Pdu) -> LogoutAccepted | None:
        """Consume a PDU; None means "not the answer, keep waiting" (e.g. an async NOP-In)."""
        if isinstance(pdu, Reject):
            raise LogoutError(f"target rejected the logout (reason 0x{pdu.reason:02x})")
        if not isinstance(pdu, LogoutResponse):
            return None
        if pdu.itt != self.itt:
            raise RemoteProtocolError(
                "Logout Response ITT does not match the request",
                reject_reason=RejectReason.INVALID_PDU_FIELD,
            )
        self._state.update_from_response(pdu.statsn, pdu.expcmdsn, pdu.maxcmdsn)
        if pdu.response != LogoutResult.SUCCESS:
            try:
                why = LogoutResult(pdu.response).name.lower().replace("_", " ")
            except ValueError:
                why = f"response {pdu.response}"
            raise LogoutError(f"target refused the logout: {why}")
        return LogoutAccepted(pdu.time2wait, pdu.time2retain)


def nop_out_ping(state: SessionState, data: bytes = b"") -> NopOut:
    """An initiator-originated NOP-Out that asks for a NOP-In (a ping, RFC 7143 §11.18)."""
    return NopOut(
        immediate=True,
        lun=0,
        itt=state.next_itt(),
        ttt=RESERVED_TAG,
        cmdsn=state.take_cmdsn(immediate=True),
        expstatsn=state.expstatsn,
        data=data,
    )


def answer_nop_in(state: SessionState, pdu: NopIn) -> NopOut | None:
    """Handle a NOP-In; returns the NOP-Out the target asked for, if it asked (§11.19).

    A NOP-In with a Target Transfer Tag other than 0xffffffff is a target ping and must
    be answered with that TTT, ITT 0xffffffff, and the ping data echoed.
    """
    # An unsolicited NOP-In (ITT 0xffffffff) carries the *next* StatSN without
    # advancing it; only a NOP-In answering our ping consumes a StatSN.
    state.update_from_response(
        None if pdu.itt == RESERVED_TAG else pdu.statsn, pdu.expcmdsn, pdu.maxcmdsn
    )
    if pdu.ttt == RESERVED_TAG:
        return None
    return NopOut(
        immediate=True,
        lun=pdu.lun,
        itt=RESERVED_TAG,
        ttt=pdu.ttt,
        cmdsn=state.take_cmdsn(immediate=True),
        expstatsn=state.expstatsn,
        data=pdu.data,
    )
