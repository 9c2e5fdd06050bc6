"""Logging in over a :class:`PduConnection`, and the logged-in session object.

The protocol decisions are made by :mod:`iscsikit.proto` machines; this module only
shuttles their PDUs over the socket within the configured deadlines, and applies the
negotiated digests and segment limits to the connection.
"""

from __future__ import annotations

import time

from iscsikit.errors import (
    ConnectionFailedError,
    IscsiErr,
    IscsiError,
    LocalProtocolError,
    LogoutError,
    RemoteProtocolError,
    TransportTimeoutError,
)
from iscsikit.plugin.transport import ConnectSpec, TransportSession
from iscsikit.proto.address import Portal
from iscsikit.proto.constants import RejectReason
from iscsikit.proto.ffp import ConnectionParams, FullFeatureConnection
from iscsikit.proto.login import LoginAccepted, LoginMachine, TargetRedirected
from iscsikit.proto.pdu import AsyncMessage, LoginRequest, NopIn, Pdu
from iscsikit.proto.session import (
    LogoutExchange,
    SessionState,
    answer_nop_in,
    nop_out_ping,
)
from iscsikit.proto.task import LogoutTask, PingTask

from .aio import AsyncChannel
from .blocking import BlockingChannel
from .connection import PduConnection, deadline_after


def run_login(spec: ConnectSpec) -> tuple[PduConnection, LoginAccepted] | TargetRedirected:
    """Connect and log in; returns the connection in Full Feature Phase, or the redirect.

    The whole exchange (connect included) is bounded by ``spec.timeouts.login``.
    """
    deadline = deadline_after(spec.timeouts.login)
    conn = PduConnection.connect(spec.portal, deadline)
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
    _enter_full_feature(conn, step)
    return conn, step


def _enter_full_feature(conn: PduConnection, accepted: LoginAccepted) -> None:
    """Apply what the login negotiated to the connection (RFC 7143 §13.1, §13.12)."""
    params = accepted.params
    conn.header_digest = params.get("HeaderDigest") == "CRC32C"
    conn.data_digest = params.get("DataDigest") == "CRC32C"
    conn.reader.max_data_segment_length = int(params.get("MaxRecvDataSegmentLength", "8192"))


class UserTcpSession(TransportSession):
    """A session in Full Feature Phase over one userspace TCP connection (ERL 0)."""

    def __init__(self, conn: PduConnection, accepted: LoginAccepted, spec: ConnectSpec) -> None:
        self.conn = conn
        self.spec = spec
        self.params = dict(accepted.params)
        self.portal: Portal = spec.portal
        self.target = spec.login.target_name
        self.tsih = accepted.tsih
        self.isid = spec.login.isid
        self.tpgt = accepted.target_portal_group_tag
        self.state = SessionState(
            cmdsn=spec.login.cmdsn,
            expcmdsn=accepted.expcmdsn,
            maxcmdsn=accepted.maxcmdsn,
            expstatsn=(accepted.statsn + 1) & 0xFFFFFFFF,
        )
        self._logged_out = False
        self._channel: BlockingChannel | AsyncChannel | None = None

    # -- the data path -----------------------------------------------------------------------

    def _machine(self) -> FullFeatureConnection:
        if self._channel is not None:
            raise LocalProtocolError("the session's data path is already open")
        return FullFeatureConnection(
            ConnectionParams.from_negotiated(self.params),
            self.state,
            queue_depth=self.spec.queue_depth,
            timers=self.spec.timers,
        )

    def command_channel(self) -> BlockingChannel:
        """The blocking data path (see :mod:`.blocking`); opened once, then reused."""
        if isinstance(self._channel, BlockingChannel):
            return self._channel
        machine = self._machine()
        leftover = self.conn.reader.take_buffered()
        if leftover:
            machine.receive_data(leftover)
        self._channel = BlockingChannel(self.conn.sock, machine, describe=str(self.portal))
        return self._channel

    async def async_command_channel(self) -> AsyncChannel:
        """The asyncio data path on the running loop (see :mod:`.aio`); opened once."""
        if isinstance(self._channel, AsyncChannel):
            return self._channel
        machine = self._machine()
        self._channel = await AsyncChannel.over(
            self.conn.sock,
            machine,
            describe=str(self.portal),
            leftover=self.conn.reader.take_buffered(),
        )
        return self._channel

    # -- receiving in Full Feature Phase ------------------------------------------------

    def recv(self, deadline: float, *, timeout_code: IscsiErr = IscsiErr.PDU_TIMEOUT) -> Pdu:
        """The next PDU that needs the caller; NOP-In pings are answered on the way."""
        while True:
            pdu = self.conn.recv(deadline, timeout_code=timeout_code)
            if isinstance(pdu, NopIn):
                reply = answer_nop_in(self.state, pdu)
                if reply is not None:
                    self.conn.send(reply, deadline, timeout_code=timeout_code)
                    continue
                if pdu.itt == 0xFFFFFFFF:
                    continue
            if isinstance(pdu, AsyncMessage):
                self.state.update_from_response(pdu.statsn, pdu.expcmdsn, pdu.maxcmdsn)
                # Events the caller must act on (logout requested, dropping) are returned.
            return pdu

    def ping(self, timeout: float | None = None) -> float:
        if isinstance(self._channel, BlockingChannel):
            started = time.monotonic()
            task = self._channel.ping(PingTask())
            if task.error is not None:
                raise task.error
            return time.monotonic() - started
        if self._channel is not None:
            raise LocalProtocolError("ping an asyncio session through its channel")
        deadline = deadline_after(timeout or self.spec.timeouts.response)
        nop = nop_out_ping(self.state)
        started = time.monotonic()
        self.conn.send(nop, deadline, timeout_code=IscsiErr.PDU_TIMEOUT)
        while True:
            pdu = self.recv(deadline)
            if isinstance(pdu, NopIn) and pdu.itt == nop.itt:
                if pdu.data != nop.data:
                    raise RemoteProtocolError(
                        "NOP-In did not echo the ping data",
                        reject_reason=RejectReason.PROTOCOL_ERROR,
                    )
                return time.monotonic() - started
            self._unexpected(pdu)

    def _unexpected(self, pdu: Pdu) -> None:
        if isinstance(pdu, AsyncMessage):
            return
        raise RemoteProtocolError(
            f"unexpected {type(pdu).__name__} from {self.portal}",
            reject_reason=RejectReason.PROTOCOL_ERROR,
        )

    # -- teardown -------------------------------------------------------------------------

    @property
    def closed(self) -> bool:
        if self._channel is not None:
            return self._channel.closed
        return self.conn.closed

    def logout(self, timeout: float | None = None) -> None:
        if self.conn.closed:
            return
        if isinstance(self._channel, BlockingChannel):
            self._logout_channel(self._channel)
            return
        if self._channel is not None:
            raise LocalProtocolError("log an asyncio session out through its channel")
        deadline = deadline_after(timeout or self.spec.timeouts.logout)
        exchange = LogoutExchange(self.state)
        try:
            self.conn.send(exchange.request(), deadline)
            while True:
                pdu = self.recv(deadline, timeout_code=IscsiErr.TRANS_TIMEOUT)
                if exchange.receive(pdu) is not None:
                    break
                self._unexpected(pdu)
            self._logged_out = True
        except (LogoutError, TransportTimeoutError):
            raise
        except IscsiError as exc:
            raise LogoutError(f"logout from {self.portal} failed: {exc}") from exc
        finally:
            self.conn.close()

    def _logout_channel(self, channel: BlockingChannel) -> None:
        try:
            if channel.closed:
                return
            task = channel.logout(LogoutTask())
            if task.error is not None:
                raise task.error
            self._logged_out = True
        except ConnectionFailedError as exc:
            raise LogoutError(f"logout from {self.portal} failed: {exc}") from exc
        finally:
            self.conn.close()

    def close(self) -> None:
        self.conn.close()
