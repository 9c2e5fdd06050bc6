"""The asyncio shell around :class:`~iscsikit.nbd.protocol.NbdServerProtocol`.

:func:`serve` listens on a unix socket or a TCP port and runs one task per connection.  A
connection reads, feeds the protocol object and hands each request to a pool of worker
coroutines, so many requests of one client are in flight at once (that is how the client's
queue depth reaches the device); each reply is queued as soon as its request completes and a
single pump sends what is queued.  ``max_in_flight`` bounds the requests of one connection
(a request counts until its reply is handed to the socket): beyond it the connection stops
reading, and the socket pushes back on the client.

Every wait is bounded except an idle transmission phase (NBD clients such as the kernel's keep
connections open for hours): the handshake, each device request, each socket drain and the
final wait for requests in flight have timeouts.  Device exceptions become NBD error replies
(:func:`~iscsikit.nbd.device.errno_for`) and are logged; the connection keeps serving.

Decisions about the protocol live in :mod:`iscsikit.nbd.protocol`; this module only moves bytes
and calls the device.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import stat
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import quote

from iscsikit.errors import InternalError, InvalidParameterError, RemoteProtocolError
from iscsikit.nbd.align import AlignedDevice
from iscsikit.nbd.constants import DEFAULT_MAX_PAYLOAD
from iscsikit.nbd.device import BlockDevice, errno_for
from iscsikit.nbd.events import (
    DisconnectRequested,
    Export,
    ExportChosen,
    FlushRequested,
    HandshakeAborted,
    OptionRequested,
    ReadRequested,
    RequestEvent,
    RequestRejected,
    TrimRequested,
    WriteRequested,
    WriteZeroesRequested,
)
from iscsikit.nbd.protocol import NbdServerProtocol

log = logging.getLogger(__name__)

_READ_SIZE = 1 << 20
#: Bytes of replies joined into one send.
_BATCH = 256 * 1024
#: The send buffer asked for on each client socket.
_SNDBUF = 2 << 20
#: READ reply buffers kept per size.
_FREE_BUFFERS = 16


@dataclass(frozen=True, slots=True)
class Limits:
    """Timeouts (seconds) and bounds of one server."""

    handshake_timeout: float = 30.0
    request_timeout: float = 120.0
    write_timeout: float = 60.0
    drain_timeout: float = 30.0
    max_in_flight: int = 64


def owner_only_unix_socket(path: str) -> socket.socket:
    """A listening unix socket at ``path`` that only its owner (and root) can connect
    to: its mode is set before ``bind`` creates the file (Linux creates it with the
    socket's mode less the umask), so it is never wider, not even for a moment.  A stale
    socket file at ``path`` is replaced; any other file there is an error."""
    with contextlib.suppress(FileNotFoundError):
        if not stat.S_ISSOCK(os.lstat(path).st_mode):
            raise InvalidParameterError(f"{path} exists and is not a socket")
        os.unlink(path)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        os.fchmod(sock.fileno(), 0o600)
        sock.bind(path)
        sock.listen(128)
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock


async def serve(
    device: BlockDevice,
    *,
    unix_path: str | os.PathLike[str] | None = None,
    host: str = "127.0.0.1",
    port: int | None = None,
    export_name: str = "",
    read_only: bool = False,
    ready: Callable[[str], object] | None = None,
    description: str = "",
    max_payload: int = DEFAULT_MAX_PAYLOAD,
    limits: Limits = Limits(),
    on_clients: Callable[[int], object] | None = None,
) -> None:
    """Serve ``device`` over NBD until cancelled.

    Exactly one of ``unix_path`` / ``port`` (0: any free port) selects the listener.
    ``ready`` is called with the NBD URI (``nbd+unix:///NAME?socket=PATH`` or
    ``nbd://HOST:PORT/NAME``) once clients can connect.  Unaligned requests are handled by
    :class:`~iscsikit.nbd.align.AlignedDevice`, so the export advertises a minimum block size
    of 1; trim is advertised only when ``device.can_unmap``.  ``on_clients`` hears the
    number of connected clients whenever it changes (the daemon's ``safe_logout``).  On
    cancellation the listener is closed, connections are dropped and the unix socket is
    unlinked.
    """
    if (unix_path is None) == (port is None):
        raise InvalidParameterError("serve() needs exactly one of unix_path and port")
    aligned = device if isinstance(device, AlignedDevice) else AlignedDevice(device)
    export = Export(
        name=export_name,
        size=device.size,
        read_only=read_only or device.read_only,
        description=description,
        min_block=1,
        preferred_block=max(4096, device.block_size),
        max_block=max_payload,
        can_trim=device.can_unmap,
    )
    connections: set[asyncio.Task[None]] = set()

    async def on_client(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        sock = writer.get_extra_info("socket")
        if sock is not None:
            # Room for a few whole READ replies in the kernel: with the default ~208 KiB a
            # 256 KiB reply never goes out in one send, and each rest is copied and sent
            # again from the transport's buffer.  (Capped by net.core.wmem_max.)
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, _SNDBUF)
        task = asyncio.current_task()
        assert task is not None
        connections.add(task)
        if on_clients is not None:
            on_clients(len(connections))
        try:
            await _Connection(reader, writer, aligned, export, limits).run()
        finally:
            connections.discard(task)
            if on_clients is not None:
                on_clients(len(connections))

    server: asyncio.Server
    open_to: str | None = None  # a TCP listener's address
    if unix_path is not None:
        path = os.fspath(unix_path)
        listener = owner_only_unix_socket(path)
        server = await asyncio.start_unix_server(on_client, sock=listener, limit=_READ_SIZE)
        uri = f"nbd+unix:///{quote(export_name)}?socket={path}"
    else:
        server = await asyncio.start_server(on_client, host, port, limit=_READ_SIZE)
        bound = server.sockets[0].getsockname()[1]
        shown = f"[{host}]" if ":" in host else host
        uri = f"nbd://{shown}:{bound}" + (f"/{quote(export_name)}" if export_name else "")
        open_to = f"{shown}:{bound}"
    log.info("serving %d bytes as %s", export.size, uri)
    try:
        if ready is not None:
            ready(uri)
        if open_to is not None:
            log.warning(
                "%s has no authentication: anyone who can connect to %s can %s the LUN",
                uri, open_to, "read" if export.read_only else "read and write",
            )  # fmt: skip
        await asyncio.Future()  # until cancelled
    finally:
        server.close()
        for task in list(connections):
            task.cancel()
        if connections:
            await asyncio.wait(connections, timeout=limits.drain_timeout)
        if unix_path is not None:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(unix_path)


def _describe(event: RequestEvent) -> str:
    """An event for the log, without the data of a WRITE."""
    name = type(event).__name__.removesuffix("Requested").upper()
    if isinstance(event, FlushRequested):
        return f"{name} handle={event.handle:#x}"
    length = len(event.data) if isinstance(event, WriteRequested) else event.length
    return f"{name} handle={event.handle:#x} offset={event.offset} length={length}"


class _Connection:
    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        device: AlignedDevice,
        export: Export,
        limits: Limits,
    ) -> None:
        self.reader = reader
        self.writer = writer
        self.device = device
        self.limits = limits
        self.protocol = NbdServerProtocol([export])
        self.peer = writer.get_extra_info("peername") or "unix client"
        # Requests are run by worker coroutines (up to max_in_flight, started on demand)
        # that take them from ``queue``: a task per request cost a tenth of the CPU of
        # small reads (asyncio registers every task in a weak set).
        self.queue: deque[RequestEvent] = deque()
        self.idle: deque[asyncio.Future[None]] = deque()
        self.workers: set[asyncio.Task[None]] = set()
        self.closing = False
        self.drained = asyncio.Event()
        self.slots = asyncio.Semaphore(limits.max_in_flight)
        # Replies go out through one pump (see _pump): finished requests queue their bytes
        # here, so the replies of one event-loop round leave in one send.
        self.replies: list[bytes | bytearray] = []
        # Sent READ reply buffers by size, for the next READs (a fresh 256 KiB bytearray is
        # a new mmap, faulted in page by page).
        self.free: dict[int, list[bytearray]] = {}
        self.replies_ready = asyncio.Event()
        self.pump: asyncio.Task[None] | None = None
        # Request timeouts: one watchdog timer per connection instead of a timer per request
        # (asyncio.timeout() cost as much as parsing the request).  It cancels the requests
        # older than request_timeout; _execute turns that cancellation into a timeout.
        self.started: dict[asyncio.Task[None], float] = {}  # busy workers
        self.expired: set[asyncio.Task[None]] = set()
        self.watchdog: asyncio.TimerHandle | None = None

    async def run(self) -> None:
        log.debug("%s: connected", self.peer)
        cancelled = False
        try:
            self.writer.write(self.protocol.greeting())
            async with asyncio.timeout(self.limits.handshake_timeout):
                chosen = await self._handshake()
            if chosen:
                self.pump = asyncio.create_task(self._pump())
                self._arm_watchdog()
                await self._transmit()
        except RemoteProtocolError as exc:
            log.warning("%s: protocol error, closing: %s", self.peer, exc)
        except TimeoutError:
            log.warning("%s: timed out, closing", self.peer)
        except (ConnectionError, OSError) as exc:
            log.info("%s: connection lost: %s", self.peer, exc)
        except asyncio.CancelledError:
            cancelled = True
            raise
        finally:
            await self._finish(cancelled)

    async def _finish(self, cancelled: bool) -> None:
        # On DISC, EOF or a protocol error the requests in flight finish first (proto.md,
        # NBD_CMD_DISC: "The server MUST handle all outstanding requests"); on shutdown
        # (cancellation) they are cancelled.
        self.closing = True
        if (self.queue or self.started) and not cancelled:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.drained.wait(), self.limits.drain_timeout)
        for task in self.workers:
            task.cancel()
        if self.workers:
            await asyncio.wait(self.workers, timeout=self.limits.drain_timeout)
        if self.watchdog is not None:
            self.watchdog.cancel()
        if self.pump is not None:
            self.pump.cancel()
            with contextlib.suppress(Exception, asyncio.CancelledError):
                await self.pump
        if self.replies and not cancelled and not self.writer.transport.is_closing():
            # Replies the pump had not sent yet; close() below still flushes them.
            self.writer.write(b"".join(self.replies))
        self.replies.clear()
        self.writer.close()
        with contextlib.suppress(Exception, asyncio.CancelledError):
            await asyncio.wait_for(self.writer.wait_closed(), timeout=5)
        log.debug("%s: closed", self.peer)

    async def _send_queued(self) -> None:
        out = self.protocol.data_to_send()
        if out:
            self.writer.write(out)
        async with asyncio.timeout(self.limits.write_timeout):
            await self.writer.drain()

    async def _handshake(self) -> bool:
        """Option haggling; True once an export is chosen, False when the client left."""
        while True:
            while (event := self.protocol.next_event()) is not None:
                if isinstance(event, ExportChosen):
                    log.info(
                        "%s: export %r, %d bytes, flags %s, structured replies %s",
                        self.peer,
                        event.export.name,
                        event.export.size,
                        event.flags,
                        event.structured_replies,
                    )
                    await self._send_queued()
                    return True
                if isinstance(event, HandshakeAborted):
                    await self._send_queued()
                    return False
                if isinstance(event, OptionRequested):
                    log.debug("%s: option %d -> reply %s", self.peer, event.option, event.reply)
            await self._send_queued()
            data = await self.reader.read(_READ_SIZE)
            if not data:
                return False
            self.protocol.receive_data(data)

    async def _transmit(self) -> None:
        while True:
            while (event := self.protocol.next_event()) is not None:
                if isinstance(event, DisconnectRequested):
                    log.debug("%s: disconnect requested", self.peer)
                    await self._send_queued()
                    return
                if isinstance(event, RequestRejected):
                    log.debug("%s: rejected request: %s", self.peer, event.reason)
                    continue
                assert not isinstance(event, OptionRequested | ExportChosen | HandshakeAborted)
                await self.slots.acquire()
                self.queue.append(event)
                if not self._wake() and len(self.workers) < self.limits.max_in_flight:
                    worker = asyncio.create_task(self._worker())
                    self.workers.add(worker)
                    worker.add_done_callback(self.workers.discard)
            await self._send_queued()
            data = await self.reader.read(_READ_SIZE)
            if not data:
                return
            self.protocol.receive_data(data)

    def _arm_watchdog(self) -> None:
        period = min(1.0, self.limits.request_timeout / 4)
        self.watchdog = asyncio.get_running_loop().call_later(period, self._watch)

    def _watch(self) -> None:
        """Cancel the requests that have run longer than ``request_timeout``."""
        oldest = asyncio.get_running_loop().time() - self.limits.request_timeout
        for task, started in self.started.items():
            if started <= oldest and task not in self.expired:
                self.expired.add(task)
                task.cancel()
        self._arm_watchdog()

    def _wake(self) -> bool:
        """Wake an idle worker; False if none is idle."""
        while self.idle:
            waiter = self.idle.popleft()
            if not waiter.done():  # a cancelled worker's waiter is done
                waiter.set_result(None)
                return True
        return False

    async def _worker(self) -> None:
        """Run queued requests one after the other until the connection ends."""
        loop = asyncio.get_running_loop()
        task = asyncio.current_task()
        assert task is not None
        queue, started = self.queue, self.started
        while True:
            if not queue:
                if self.closing and not started:
                    self.drained.set()
                waiter = loop.create_future()
                self.idle.append(waiter)
                await waiter
                continue
            event = queue.popleft()
            started[task] = loop.time()
            try:
                await self._execute(event)
            except Exception:
                # Only a bug gets here (_execute answers device errors itself).
                log.exception("%s: %s failed", self.peer, _describe(event))
                self.slots.release()  # no reply was queued: the pump will not release it
            finally:
                del started[task]
                self.expired.discard(task)

    async def _execute(self, event: RequestEvent) -> None:
        reply: bytes | bytearray
        try:
            try:
                if type(event) is ReadRequested and event.length:
                    reply = await self._read(event)
                else:
                    reply = self.protocol.reply(event.handle, 0, await self._perform(event))
            except asyncio.CancelledError:
                task = asyncio.current_task()
                # Our watchdog's cancellation is a timeout; any other one (shutdown) is not.
                if task not in self.expired or task is None or task.uncancel():
                    raise
                raise TimeoutError from None
        except Exception as exc:
            error = errno_for(exc)
            log.warning(
                "%s: %s failed (%s): %s", self.peer, _describe(event), error.name, exc or "timeout"
            )
            reply = self.protocol.reply(event.handle, error, message=str(exc)[:200])
        # A reply is queued only once the device has finished the request (a WRITE is on
        # the target); its slot is released by the pump once the bytes are handed over.
        if self.pump is None or self.pump.done():
            self.slots.release()  # the connection is gone: nobody will send it
            return
        self.replies.append(reply)
        self.replies_ready.set()

    async def _pump(self) -> None:
        """Send queued replies: all that are ready at once (up to _BATCH bytes per send),
        waiting for room in the socket *before* each send.  Queueing everything at once
        would pile megabytes into the transport's buffer, which is moved on every partial
        send (reads ran at a third of the speed that way); one send per reply costs a
        system call per request (a third of the CPU of small reads)."""
        replies, ready, writer = self.replies, self.replies_ready, self.writer
        try:
            while True:
                await ready.wait()
                ready.clear()
                while replies:
                    async with asyncio.timeout(self.limits.write_timeout):
                        await writer.drain()
                    n, size = 0, 0
                    while n < len(replies) and size < _BATCH:
                        size += len(replies[n])
                        n += 1
                    batch = replies[:n]
                    del replies[:n]
                    if n == 1:
                        writer.write(batch[0])
                        # The transport copies what the socket did not take, or (3.12+)
                        # keeps a view of it: reuse the buffer only when all of it went.
                        if not writer.transport.get_write_buffer_size():
                            self._recycle(batch[0])
                    else:
                        writer.write(b"".join(batch))
                        for reply in batch:
                            self._recycle(reply)
                    for _ in range(n):
                        self.slots.release()
        except (ConnectionError, OSError, TimeoutError) as exc:
            log.info("%s: could not send a reply: %s", self.peer, exc)
            self.writer.transport.abort()
            for _ in replies:
                self.slots.release()
            replies.clear()

    async def _read(self, event: ReadRequested) -> bytearray:
        """A READ answered from a reply buffer the data is read straight into."""
        header = self.protocol.read_header_size
        size = header + event.length
        free = self.free.get(size)
        buffer = free.pop() if free else bytearray(size)
        await self.device.readinto(event.offset, memoryview(buffer)[header:])
        return self.protocol.reply_read_into(event.handle, buffer)

    def _recycle(self, buffer: bytes | bytearray) -> None:
        """Keep a sent READ reply buffer for the next READ of its size.  Only once it was
        copied or sent: then neither the transport nor a SCSI command refers to it (a
        failed READ's buffer is never reused: its command may still be at the target)."""
        if type(buffer) is bytearray:
            free = self.free.setdefault(len(buffer), [])
            if len(free) < _FREE_BUFFERS:
                free.append(buffer)

    async def _perform(self, event: RequestEvent) -> bytes:
        device = self.device
        if isinstance(event, ReadRequested):
            data = await device.read(event.offset, event.length)
            if len(data) != event.length:
                raise InternalError(f"device returned {len(data)} of {event.length} bytes")
            return data
        if isinstance(event, WriteRequested):
            await device.write(event.offset, event.data, fua=event.fua)
        elif isinstance(event, FlushRequested):
            await device.flush()
        elif isinstance(event, TrimRequested):
            await device.unmap(event.offset, event.length)
            if event.fua:
                await device.flush()
        elif isinstance(event, WriteZeroesRequested):
            await device.write_zeroes(event.offset, event.length, may_unmap=event.may_unmap)
            if event.fua:
                await device.flush()
        return b""


__all__ = ["Limits", "serve"]
