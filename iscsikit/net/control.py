"""Full Feature Phase control exchanges on a bare connection: no data path needed.

Before a data path takes a connection over (or when there never is one: a Discovery
session, a socket about to be handed to the kernel) the few exchanges a session still
needs run here, one PDU at a time: receiving with the target's NOP-In pings answered
(RFC 7143 §11.19), a NOP-Out ping (§11.18) and Logout (§11.14).  The PDUs and the
checks of the answers come from :mod:`iscsikit.proto.session`; this module only moves
them within a deadline.
"""

from __future__ import annotations

import time

from iscsikit.errors import (
    IscsiErr,
    IscsiError,
    LogoutError,
    RemoteProtocolError,
    TransportTimeoutError,
)
from iscsikit.proto.constants import RESERVED_TAG, RejectReason
from iscsikit.proto.pdu import AsyncMessage, NopIn, Pdu
from iscsikit.proto.session import (
    LogoutAccepted,
    LogoutExchange,
    SessionState,
    answer_nop_in,
    nop_out_ping,
)

from .connection import Deadline, PduConnection


def recv_answering_nops(
    conn: PduConnection,
    state: SessionState,
    deadline: Deadline,
    *,
    timeout_code: IscsiErr = IscsiErr.PDU_TIMEOUT,
) -> Pdu:
    """The next PDU that needs the caller; NOP-In pings are answered on the way.

    An Async Message is returned (its sequence numbers applied): the events a caller
    must act on (logout requested, connection dropping) are the caller's to handle.
    """
    while True:
        pdu = conn.recv(deadline, timeout_code=timeout_code)
        if isinstance(pdu, NopIn):
            reply = answer_nop_in(state, pdu)
            if reply is not None:
                conn.send(reply, deadline, timeout_code=timeout_code)
                continue
            if pdu.itt == RESERVED_TAG:
                continue
        if isinstance(pdu, AsyncMessage):
            state.update_from_response(pdu.statsn, pdu.expcmdsn, pdu.maxcmdsn)
        return pdu


def ping(conn: PduConnection, state: SessionState, deadline: Deadline) -> float:
    """NOP-Out / NOP-In round trip; returns the round-trip time in seconds.

    A wait past ``deadline`` is a PDU timeout (11); any answer but the NOP-In echoing
    the ping (or an Async Message, skipped) is a protocol error.
    """
    nop = nop_out_ping(state)
    started = time.monotonic()
    conn.send(nop, deadline, timeout_code=IscsiErr.PDU_TIMEOUT)
    while True:
        pdu = recv_answering_nops(conn, state, deadline)
        if isinstance(pdu, NopIn) and pdu.itt == nop.itt:
            if pdu.data != nop.data:
                raise RemoteProtocolError(
                    "NOP-In did not echo the ping data",
                    reject_reason=RejectReason.PROTOCOL_ERROR,
                )
            return time.monotonic() - started
        _skip_async(conn, pdu)


def logout(conn: PduConnection, state: SessionState, deadline: Deadline) -> LogoutAccepted:
    """Log the session out (close it) and close the connection, whatever happens.

    Returns the target's Time2Wait / Time2Retain hints.  A timeout stays a
    :class:`TransportTimeoutError` (8); every other failure is a :class:`LogoutError`.
    """
    exchange = LogoutExchange(state)
    try:
        conn.send(exchange.request(), deadline)
        while True:
            pdu = recv_answering_nops(conn, state, deadline, timeout_code=IscsiErr.TRANS_TIMEOUT)
            accepted = exchange.receive(pdu)
            if accepted is not None:
                return accepted
            _skip_async(conn, pdu)
    except (LogoutError, TransportTimeoutError):
        raise
    except IscsiError as exc:
        raise LogoutError(f"logout from {conn.portal} failed: {exc}") from exc
    finally:
        conn.close()


def _skip_async(conn: PduConnection, pdu: Pdu) -> None:
    if isinstance(pdu, AsyncMessage):
        return
    raise RemoteProtocolError(
        f"unexpected {type(pdu).__name__} from {conn.portal}",
        reject_reason=RejectReason.PROTOCOL_ERROR,
    )
