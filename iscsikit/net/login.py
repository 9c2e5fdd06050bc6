"""Connecting and logging in over a :class:`~iscsikit.net.connection.PduConnection`.

The protocol decisions are made by :class:`~iscsikit.proto.login.LoginMachine`; this
module only shuttles its PDUs over the socket within ``spec.timeouts.login``, maps
failures to iscsiadm's codes, and applies what the login negotiated (digests, the
receive segment limit) to the connection.  What happens in Full Feature Phase (a
userspace data path, or handing the socket to the kernel) is the caller's.
"""

from __future__ import annotations

from iscsikit.errors import IscsiErr, RemoteProtocolError, TransportTimeoutError
from iscsikit.plugin.transport import ConnectSpec
from iscsikit.proto.login import LoginAccepted, LoginMachine, TargetRedirected
from iscsikit.proto.pdu import LoginRequest
from iscsikit.proto.session import SessionState

from .connection import Deadline, PduConnection, deadline_after


def run_login(spec: ConnectSpec) -> tuple[PduConnection, LoginAccepted] | TargetRedirected:
    """Connect and log in; returns the connection in Full Feature Phase, or the redirect.

    The whole exchange (connect included) is bounded by ``spec.timeouts.login``: a
    timeout raises :class:`TransportTimeoutError` (8), a target that breaks the protocol
    :class:`RemoteProtocolError` with code 5, a refused login the machine's
    :class:`~iscsikit.errors.LoginError`.  On any error the connection is closed; on a
    redirect too (following it is the core's decision, not the transport's).
    """
    deadline = deadline_after(spec.timeouts.login)
    conn = PduConnection.connect(spec.portal, deadline)
    step = log_in(conn, spec, deadline)
    return step if isinstance(step, TargetRedirected) else (conn, step)


def log_in(
    conn: PduConnection, spec: ConnectSpec, deadline: Deadline
) -> LoginAccepted | TargetRedirected:
    """Run the login machine over ``conn`` (connected, nothing sent yet) before
    ``deadline``, with :func:`run_login`'s error codes; on acceptance the negotiated
    values are applied (:func:`enter_full_feature`).  ``conn`` is closed on any error and
    on a redirect.  For a driver that opens its connection itself (bound to an iface's
    address, say) and logs in as :func:`run_login` does."""
    try:
        machine = LoginMachine(spec.login)
        step: LoginRequest | LoginAccepted | TargetRedirected = machine.start()
        while isinstance(step, LoginRequest):
            conn.send(step, deadline)
            step = machine.receive(conn.recv(deadline))
    except TransportTimeoutError:
        conn.close()
        raise TransportTimeoutError(
            f"login to {spec.portal} timed out after {spec.timeouts.login:g} s"
        ) from None
    except RemoteProtocolError as exc:
        # The target broke the protocol during login: a login failure (exit 5).
        conn.close()
        raise RemoteProtocolError(
            f"login to {spec.portal} failed: {exc}",
            reject_reason=exc.reject_reason,
            code=IscsiErr.LOGIN,
        ) from exc
    except BaseException:
        conn.close()
        raise
    if isinstance(step, TargetRedirected):
        conn.close()
        return step
    enter_full_feature(conn, step)
    return step


def enter_full_feature(conn: PduConnection, accepted: LoginAccepted) -> None:
    """Apply what the login negotiated to the connection (RFC 7143 §13.1, §13.12).

    :func:`run_login` and :func:`log_in` already call it; it is public for callers that
    drive their own :class:`~iscsikit.proto.login.LoginMachine` over a connection.
    """
    params = accepted.params
    conn.header_digest = params.get("HeaderDigest") == "CRC32C"
    conn.data_digest = params.get("DataDigest") == "CRC32C"
    conn.reader.max_data_segment_length = int(params.get("MaxRecvDataSegmentLength", "8192"))


def session_state(spec: ConnectSpec, accepted: LoginAccepted) -> SessionState:
    """The session's sequence numbers as the final Login Response left them (§4.2.2)."""
    return SessionState(
        cmdsn=spec.login.cmdsn,
        expcmdsn=accepted.expcmdsn,
        maxcmdsn=accepted.maxcmdsn,
        expstatsn=(accepted.statsn + 1) & 0xFFFFFFFF,
    )
