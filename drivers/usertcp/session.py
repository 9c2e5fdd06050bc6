"""The logged-in usertcp session: a connection from :mod:`iscsikit.net` and its data path.

Connecting, logging in and the control exchanges (ping, logout) before a data path
exists are :mod:`iscsikit.net`'s; what is usertcp's own is that the socket stays in
Python and carries the data path (the blocking and asyncio channels).
"""

from __future__ import annotations

import time

from iscsikit import net
from iscsikit.errors import ConnectionFailedError, LocalProtocolError, LogoutError
from iscsikit.net import PduConnection, deadline_after
from iscsikit.plugin.transport import ConnectSpec, TransportSession
from iscsikit.proto.ffp import ConnectionParams, FullFeatureConnection
from iscsikit.proto.login import LoginAccepted
from iscsikit.proto.task import LogoutTask, PingTask

from .aio import AsyncChannel
from .blocking import BlockingChannel


class UserTcpSession(TransportSession):
    """A session in Full Feature Phase over one userspace TCP connection (ERL 0)."""

    def __init__(self, conn: PduConnection, accepted: LoginAccepted, spec: ConnectSpec) -> None:
        #: Login Requests this connection's login took (``struct iscsi_stats.login_pdus``).
        self.login_pdus = conn.pdus_sent
        self.conn = conn
        self.spec = spec
        self.took_login(spec, accepted)
        self.state = net.session_state(spec, accepted)
        self._logged_out = False
        self._channel: BlockingChannel | AsyncChannel | None = None

    # -- the data path -----------------------------------------------------------------------

    def _machine(self) -> FullFeatureConnection:
        if self._channel is not None:
            raise LocalProtocolError("the session's data path is already open")
        machine = FullFeatureConnection(
            ConnectionParams.from_negotiated(self.params),
            self.state,
            queue_depth=self.spec.queue_depth,
            timers=self.spec.timers,
        )
        machine.stats.login_pdus = self.login_pdus
        return machine

    def command_channel(self) -> BlockingChannel:
        """The blocking data path (see :mod:`.blocking`); opened once, then reused."""
        if isinstance(self._channel, BlockingChannel):
            return self._channel
        machine = self._machine()
        leftover = self.conn.take_buffered()
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
            leftover=self.conn.take_buffered(),
        )
        return self._channel

    def ping(self, timeout: float | None = None) -> float:
        if isinstance(self._channel, BlockingChannel):
            started = time.monotonic()
            task = self._channel.ping(PingTask())
            if task.error is not None:
                raise task.error
            return time.monotonic() - started
        if self._channel is not None:
            raise LocalProtocolError("ping an asyncio session through its channel")
        return net.ping(
            self.conn, self.state, deadline_after(timeout or self.spec.timeouts.response)
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
        net.logout(self.conn, self.state, deadline_after(timeout or self.spec.timeouts.logout))
        self._logged_out = True

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
