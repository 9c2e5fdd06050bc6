"""The asyncio data path: a :class:`FullFeatureConnection` behind a BufferedProtocol.

asyncio's ``BufferedProtocol`` asks *us* for the buffer to receive into, which is
exactly the machine's :meth:`~iscsikit.proto.ffp.FullFeatureConnection.get_buffer`:
Data-In payloads land in the callers' buffers without a copy.  Writes are batched:
commands submitted during one pass of the event loop go out in one ``writelines``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Callable
from typing import TypeVar

from iscsikit.errors import TransportError
from iscsikit.plugin.transport import AsyncCommandChannel
from iscsikit.proto.ffp import ConnectionFailed, Event, FullFeatureConnection, LogoutRequested
from iscsikit.proto.task import LogoutTask, PingTask, Request, ScsiTask, TmfTask

log = logging.getLogger(__name__)

_R = TypeVar("_R", bound=Request)


class _Protocol(asyncio.BufferedProtocol):
    def __init__(self, channel: AsyncChannel) -> None:
        self.channel = channel

    def get_buffer(self, sizehint: int) -> memoryview:
        return self.channel.machine.get_buffer()

    def buffer_updated(self, nbytes: int) -> None:
        channel = self.channel
        channel._in_io = True
        try:
            channel.machine.buffer_updated(nbytes)
        finally:
            channel._in_io = False
        channel._after_io()

    def eof_received(self) -> bool:
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        channel = self.channel
        if exc is None:
            channel.machine.connection_lost(
                TransportError(f"connection closed by {channel.describe}")
            )
        else:
            channel.machine.connection_lost(
                TransportError(f"connection to {channel.describe} failed: {exc}")
            )
        channel._after_io()
        channel._lost.set()


class AsyncChannel(AsyncCommandChannel):
    """Commands over one connection, on the running event loop."""

    def __init__(
        self,
        machine: FullFeatureConnection,
        *,
        describe: str = "target",
        on_event: Callable[[Event], None] | None = None,
    ) -> None:
        self.machine = machine
        self.describe = describe
        self.on_event = on_event
        self.logout_requested: int | None = None
        self.loop = asyncio.get_running_loop()
        self.transport: asyncio.Transport | None = None
        self._in_io = False
        self._flush_scheduled = False
        self._timer: asyncio.TimerHandle | None = None
        self._lost = asyncio.Event()

    @classmethod
    async def over(
        cls,
        sock: socket.socket,
        machine: FullFeatureConnection,
        *,
        describe: str = "target",
        leftover: bytes = b"",
        on_event: Callable[[Event], None] | None = None,
    ) -> AsyncChannel:
        """Take over a connected socket that finished login."""
        channel = cls(machine, describe=describe, on_event=on_event)
        if leftover:
            machine.receive_data(leftover)
        sock.setblocking(False)
        transport, _ = await channel.loop.create_connection(lambda: _Protocol(channel), sock=sock)
        assert isinstance(transport, asyncio.Transport)
        channel.transport = transport
        channel._run_timer()
        return channel

    # -- AsyncCommandChannel ---------------------------------------------------------------

    def submit(self, task: ScsiTask) -> None:
        self.machine.submit(task)
        self._want_flush()

    async def execute(self, task: ScsiTask) -> ScsiTask:
        await self._run(task, self.submit)
        return task

    async def task_management(self, task: TmfTask) -> TmfTask:
        await self._run(task, self.machine.task_management)
        return task

    async def ping(self, task: PingTask) -> PingTask:
        await self._run(task, self.machine.ping)
        return task

    def statistics(self) -> dict[str, int]:
        """The machine's counters (:class:`~iscsikit.proto.ffp.ConnectionStats`)."""
        return self.machine.stats.as_dict()

    async def logout(self) -> None:
        if self.machine.closed:
            self.close()
            return
        task = LogoutTask()
        try:
            await self._run(task, self.machine.logout)
        finally:
            self.close()
        if task.error is not None:
            raise task.error

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self.transport is not None:
            self.transport.close()
        self.machine.connection_lost(TransportError("the connection was closed locally"))

    @property
    def closed(self) -> bool:
        return self.machine.closed

    # -- plumbing --------------------------------------------------------------------------

    async def _run(self, request: _R, send: Callable[[_R], None]) -> None:
        future: asyncio.Future[None] = self.loop.create_future()
        chained = request.callback

        def done(finished: Request) -> None:
            if chained is not None:
                chained(finished)
            if not future.done():
                future.set_result(None)

        request.callback = done
        send(request)
        self._want_flush()
        await future

    def _want_flush(self) -> None:
        if self._in_io or self._flush_scheduled:
            return  # buffer_updated flushes when it returns
        self._flush_scheduled = True
        self.loop.call_soon(self._flush)

    def _flush(self) -> None:
        self._flush_scheduled = False
        machine = self.machine
        if machine.wants_write and self.transport is not None and not self.transport.is_closing():
            self.transport.writelines(machine.data_to_send())

    def _after_io(self) -> None:
        machine = self.machine
        if machine.wants_write:
            self._flush()
        if machine.has_events:
            self._drain_events()

    def _run_timer(self) -> None:
        self._timer = None
        machine = self.machine
        machine.handle_timer(self.loop.time())
        self._after_io()
        when = machine.get_timer()
        if when is not None:
            self._timer = self.loop.call_at(when, self._run_timer)

    def _drain_events(self) -> None:
        machine = self.machine
        while (event := machine.next_event()) is not None:
            if isinstance(event, LogoutRequested):
                self.logout_requested = event.within
            elif isinstance(event, ConnectionFailed):
                log.warning("%s: %s", self.describe, event.error)
                if self.transport is not None:
                    self.transport.abort()
            if self.on_event is not None:
                with contextlib.suppress(Exception):
                    self.on_event(event)


__all__ = ["AsyncChannel"]
