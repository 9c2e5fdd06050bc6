"""What the target starts in Full Feature Phase: Async Messages and renegotiation.

An Async Message (RFC 7143 §11.9) either becomes an event for the caller (a SCSI or
vendor event, a logout request), fails the connection (the target is dropping it), or
starts a renegotiation: a Text Request re-declaring MaxRecvDataSegmentLength, whose
Text Response may change what we may send (§11.9.1, §11.10).  Which of these happens is
the table ``_ASYNC_ACTIONS``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

from iscsikit.errors import RemoteProtocolError, TransportError
from iscsikit.proto import ffp_wire as w
from iscsikit.proto.constants import RESERVED_TAG, AsyncEvent, RejectReason
from iscsikit.proto.ffp_control import _ControlPath
from iscsikit.proto.ffp_events import AsyncEventReceived, LogoutRequested, ParametersRenegotiated
from iscsikit.proto.pdu import AsyncMessage, TextRequest
from iscsikit.proto.text import decode_text, encode_text


class _Renegotiation(_ControlPath):  # a chain, not mixins: see ffp_control
    """Async Messages and Text renegotiation (see the module docstring)."""

    def _async_message(self, fields: tuple[int, ...], data: bytes) -> None:
        self.stats.async_pdus += 1
        message = self._decode(fields, data)
        assert isinstance(message, AsyncMessage)
        self.state.update_from_response(message.statsn, message.expcmdsn, message.maxcmdsn)
        action = _ASYNC_ACTIONS.get(message.async_event, _Renegotiation._async_reported)
        action(self, message, data)

    def _logout_requested(self, message: AsyncMessage, data: bytes) -> None:
        self._events.append(LogoutRequested(message.parameter3))

    def _dropped(self, message: AsyncMessage, data: bytes) -> None:
        what = "connection" if message.async_event == AsyncEvent.CONNECTION_DROP else "session"
        self._fail(
            TransportError(f"the target is dropping the {what}"),
            time2wait=message.parameter2,
            time2retain=message.parameter3,
        )

    def _negotiation_requested(self, message: AsyncMessage, data: bytes) -> None:
        self._renegotiate()

    def _async_reported(self, message: AsyncMessage, data: bytes) -> None:
        """A SCSI event (with its sense data), a vendor event or one we do not know."""
        sense = b""
        if len(data) >= 2:
            length = int.from_bytes(data[:2], "big")
            sense = data[2 : 2 + length]
        self._events.append(
            AsyncEventReceived(
                message.async_event,
                message.lun,
                (message.parameter1, message.parameter2, message.parameter3),
                sense,
            )
        )

    def _renegotiate(self, ttt: int = RESERVED_TAG) -> None:
        """Answer AsyncEvent 4 with a Text Request re-declaring what we receive (§11.9.1);
        a continuation keeps the sequence's ITT (§11.10.4)."""
        itt = self._text_itt if ttt != RESERVED_TAG and self._text_itt is not None else None
        if itt is None:
            itt = self._free_itt()
        self._text_itt = itt
        offer = b""
        if ttt == RESERVED_TAG:
            offer = encode_text([("MaxRecvDataSegmentLength", str(self._max_recv))])
        self._emit_pdu(
            TextRequest(
                immediate=True,
                final=True,
                itt=itt,
                ttt=ttt,
                cmdsn=self.state.cmdsn,
                expstatsn=self.state.expstatsn,
                data=offer,
            )
        )
        self.stats.text_pdus += 1

    def _text_response(self, fields: tuple[int, ...], data: bytes) -> None:
        self.stats.textrsp_pdus += 1
        if fields[w.ITT] != self._text_itt:
            raise RemoteProtocolError(
                f"Text Response for ITT 0x{fields[w.ITT]:08x}, which is no outstanding request",
                reject_reason=RejectReason.INVALID_PDU_FIELD,
            )
        self.state.update_from_response(fields[w.STATSN], fields[w.EXPCMDSN], fields[w.MAXCMDSN])
        for key, value in decode_text(data):
            if key == "MaxRecvDataSegmentLength" and value.isascii() and value.isdigit():
                self._max_xmit = max(512, min(int(value), 0xFFFFFF))
        if fields[w.FLAGS] & w.F_FINAL:
            self._text_itt = None
            self._events.append(ParametersRenegotiated(self._max_xmit))
        else:
            self._renegotiate(fields[w.TTT])


#: What each AsyncEvent (RFC 7143 §11.9.1) does; any other one (SCSI, vendor-specific,
#: unknown) is reported to the caller as :class:`AsyncEventReceived`.
_ASYNC_ACTIONS: Final[dict[int, Callable[[_Renegotiation, AsyncMessage, bytes], None]]] = {
    AsyncEvent.LOGOUT_REQUEST.value: _Renegotiation._logout_requested,
    AsyncEvent.CONNECTION_DROP.value: _Renegotiation._dropped,
    AsyncEvent.SESSION_DROP.value: _Renegotiation._dropped,
    AsyncEvent.NEGOTIATION_REQUEST.value: _Renegotiation._negotiation_requested,
}

__all__: list[str] = []
