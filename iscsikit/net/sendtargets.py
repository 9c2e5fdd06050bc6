"""SendTargets discovery over a connection: the one runner every TCP driver calls.

:func:`sendtargets` asks over a connection already logged in (RFC 7143 §11.10,
Appendix C), following Text Response continuations until the answer is complete;
:func:`discover_sendtargets` is the whole Discovery session: connect, log in, ask,
log out.  The answer is parsed by :class:`~iscsikit.proto.sendtargets.SendTargetsMachine`;
what to do with it (records, redirects, retries) is the core's.
"""

from __future__ import annotations

import contextlib

from iscsikit.errors import IscsiErr, LocalProtocolError, RemoteProtocolError
from iscsikit.plugin.transport import ConnectSpec
from iscsikit.proto.constants import RejectReason
from iscsikit.proto.login import TargetRedirected
from iscsikit.proto.pdu import AsyncMessage, TextRequest
from iscsikit.proto.sendtargets import DiscoveredTarget, SendTargetsMachine
from iscsikit.proto.session import SessionState

from .connection import Deadline, PduConnection, deadline_after
from .control import logout, recv_answering_nops
from .login import run_login, session_state


def sendtargets(
    conn: PduConnection, state: SessionState, deadline: Deadline, query: str = "All"
) -> list[DiscoveredTarget]:
    """Ask ``SendTargets=<query>`` and return the complete answer.

    Waits past ``deadline`` are PDU timeouts (11).  An Async Message mid-answer is a
    protocol error: a discovery exchange has no way to act on it.
    """
    machine = SendTargetsMachine(state, conn.portal, query=query)
    step: TextRequest | list[DiscoveredTarget] = machine.start()
    while isinstance(step, TextRequest):
        conn.send(step, deadline, timeout_code=IscsiErr.PDU_TIMEOUT)
        pdu = recv_answering_nops(conn, state, deadline, timeout_code=IscsiErr.PDU_TIMEOUT)
        if isinstance(pdu, AsyncMessage):
            raise RemoteProtocolError(
                f"target sent an asynchronous event ({pdu.async_event}) during discovery",
                reject_reason=RejectReason.PROTOCOL_ERROR,
            )
        step = machine.receive(pdu)
    return step


def discover_sendtargets(
    spec: ConnectSpec, query: str = "All"
) -> list[DiscoveredTarget] | TargetRedirected:
    """A Discovery session from login to logout; the targets, or the login's redirect.

    ``spec.login`` must describe a Discovery session (no target name).  The login is
    bounded by ``spec.timeouts.login``, the question by ``spec.timeouts.response``, the
    logout by ``spec.timeouts.logout``.  A failed logout after a complete answer loses
    nothing: the targets are returned and the connection dropped.
    """
    if spec.login.target_name is not None:
        raise LocalProtocolError("a SendTargets discovery needs a Discovery session spec")
    result = run_login(spec)
    if isinstance(result, TargetRedirected):
        return result  # discovery sessions may be redirected too; the core follows it
    conn, accepted = result
    state = session_state(spec, accepted)
    try:
        targets = sendtargets(conn, state, deadline_after(spec.timeouts.response), query)
    except BaseException:
        conn.close()
        raise
    # logout() closes the connection whatever happens; its failure costs no targets.
    with contextlib.suppress(Exception):
        logout(conn, state, deadline_after(spec.timeouts.logout))
    return targets
