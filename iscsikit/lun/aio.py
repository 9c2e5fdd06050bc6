"""A logical unit for asyncio code: many commands in flight over one connection.

Every coroutine of :class:`AsyncLun` may run concurrently with the others; the
connection keeps up to ``queue_depth`` commands at the target and queues the rest in
order.  Writes hold the blocks they touch in a :class:`~iscsikit.lun.ranges.RangeLock`
(shared for whole blocks, exclusive for a read-modify-write), so concurrent writes that
share a block all land.  :func:`open_lun_async` is the async twin of :func:`~iscsikit.lun.open_lun`
over a :class:`~iscsikit.manager.managed.ManagedSession`: the session manager logs in (in a
worker thread, then the connection moves onto the loop) and recovers a failed
connection, re-issuing the interrupted commands whole on the next one.
The object has the shape of :class:`iscsikit.nbd.device.BlockDevice`, so an AsyncLun
can be served over NBD as it is.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Generator
from typing import Any, TypeVar

from iscsikit.lun import ops
from iscsikit.lun.lun import PlainSession, settings_for_url
from iscsikit.lun.ranges import RangeLock, block_span
from iscsikit.lun.url import IscsiUrl, parse_iscsi_url
from iscsikit.manager.managed import ManagedSession
from iscsikit.plugin.transport import AsyncCommandChannel
from iscsikit.proto.task import ScsiTask

_R = TypeVar("_R")


async def run_async(channel: AsyncCommandChannel, op: Generator[list[ScsiTask], None, _R]) -> _R:
    """Drive an :mod:`~iscsikit.lun.ops` generator over an asyncio channel."""
    try:
        step = next(op)
        while True:
            if len(step) == 1:
                await channel.execute(step[0])
            else:
                await asyncio.gather(*(channel.execute(task) for task in step))
            step = op.send(None)
    except StopIteration as stop:
        result: _R = stop.value
        return result


class AsyncLun(ops.GeometryView):
    """One logical unit over a session whose data path runs on the event loop."""

    def __init__(
        self,
        session: ManagedSession | PlainSession | None,
        channel: AsyncCommandChannel,
        geometry: ops.Geometry,
        *,
        owns: bool,
    ) -> None:
        self.session = session
        self.channel = channel
        self.geometry = geometry
        self._owns = owns
        self._closed = False
        #: The blocks writes in flight hold (see :mod:`iscsikit.lun.ranges`).
        self.ranges = RangeLock()

    @classmethod
    async def over(cls, channel: AsyncCommandChannel, lun: int = 0) -> AsyncLun:
        """Open ``lun`` over a channel someone else owns (the session manager's
        recovering channel: the daemon's NBD exports); closing it leaves the session."""
        geometry = await run_async(channel, ops.probe(lun))
        return cls(None, channel, geometry, owns=False)

    @classmethod
    async def attach(
        cls, session: ManagedSession | PlainSession, lun: int = 0, *, owns: bool = False
    ) -> AsyncLun:
        """Open ``lun`` of a logged-in session; ``owns`` makes :meth:`aclose` log it out.
        A :class:`~iscsikit.manager.managed.ManagedSession` recovers."""
        channel: AsyncCommandChannel
        if isinstance(session, ManagedSession):
            channel = session.io
        else:
            channel = await session.transport_session.async_command_channel()
        geometry = await run_async(channel, ops.probe(lun))
        return cls(session, channel, geometry, owns=owns)

    async def read(self, offset: int, length: int) -> bytes:
        return await run_async(self.channel, ops.read(self.geometry, offset, length))

    async def readinto(self, offset: int, buffer: bytearray | memoryview) -> int:
        view = memoryview(buffer).cast("B")
        bs = self.block_size
        if offset % bs == 0 and len(view) % bs == 0:
            await run_async(self.channel, ops.read_blocks(self.geometry, offset, view))
        else:
            view[:] = await self.read(offset, len(view))
        return len(view)

    async def write(
        self, offset: int, data: bytes | bytearray | memoryview, *, fua: bool = False
    ) -> None:
        """Write any byte range; partial blocks are merged under an exclusive hold."""
        length = memoryview(data).nbytes
        first, end, whole = block_span(offset, length, self.block_size)
        async with self.ranges.hold(first, end, exclusive=not whole):
            await run_async(self.channel, ops.write(self.geometry, offset, data, fua=fua))

    async def flush(self) -> None:
        await run_async(self.channel, ops.flush(self.geometry))

    async def unmap(self, offset: int, length: int) -> None:
        async with self._shared(offset, length):
            await run_async(self.channel, ops.unmap(self.geometry, offset, length))

    async def write_zeroes(self, offset: int, length: int, *, may_unmap: bool = False) -> None:
        async with self._shared(offset, length):
            await run_async(self.channel, ops.write_zeroes(self.geometry, offset, length))

    def _shared(self, offset: int, length: int) -> contextlib.AbstractAsyncContextManager[None]:
        """A shared hold of the blocks of a whole-block change (a read-modify-write of any
        of them must not read before it and write back after it)."""
        first, end, _ = block_span(offset, length, self.block_size)
        return self.ranges.hold(first, end, exclusive=False)

    async def execute(
        self,
        cdb: bytes,
        *,
        read_length: int = 0,
        write_data: bytes | bytearray | memoryview | None = None,
    ) -> ScsiTask:
        return await run_async(
            self.channel,
            ops.command(cdb, lun=self.lun, read_length=read_length, write_data=write_data),
        )

    async def aclose(self) -> None:
        """Log out, if this AsyncLun opened the session; idempotent."""
        if self._closed:
            return
        self._closed = True
        if self._owns:
            try:
                await self.channel.logout()
            except Exception:
                self.channel.close()
                raise

    async def __aenter__(self) -> AsyncLun:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


@contextlib.asynccontextmanager
async def open_lun_async(url: str | IscsiUrl, **options: Any) -> AsyncIterator[AsyncLun]:
    """``async with open_lun_async(url) as lun:`` - see :func:`iscsikit.open_lun`."""
    parsed = parse_iscsi_url(url) if isinstance(url, str) else url
    session = ManagedSession(settings_for_url(parsed, **options))
    await session.login()
    try:
        lun = await AsyncLun.attach(session, parsed.lun, owns=True)
    except BaseException:
        session.drop()
        raise
    async with lun:
        yield lun


__all__ = ["AsyncLun", "open_lun_async", "run_async"]
