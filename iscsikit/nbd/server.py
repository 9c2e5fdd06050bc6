"""The asyncio shell around :class:`~iscsikit.nbd.protocol.NbdServerProtocol`.

:func:`serve` listens on a unix socket or a TCP port and runs one task per connection.  A
connection reads, feeds the protocol object and starts one task per request, so many requests
of one client are in flight at once (that is how the client's queue depth reaches the device);
each task writes its reply as soon as it completes.  ``max_in_flight`` bounds the requests of
one connection: beyond it the connection stops reading, and TCP pushes back on the client.

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
        self.tasks: set[asyncio.Task[None]] = set()
        self.slots = asyncio.Semaphore(limits.max_in_flight)
        self.write_lock = asyncio.Lock()

    async def run(self) -> None:
        log.debug("%s: connected", self.peer)
        cancelled = False
        try:
            self.writer.write(self.protocol.greeting())
            async with asyncio.timeout(self.limits.handshake_timeout):
                chosen = await self._handshake()
            if chosen:
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
        if self.tasks and not cancelled:
            await asyncio.wait(self.tasks, timeout=self.limits.drain_timeout)
        for task in self.tasks:
            task.cancel()
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
                task = asyncio.create_task(self._execute(event))
                self.tasks.add(task)
                task.add_done_callback(self._done)
            await self._send_queued()
            data = await self.reader.read(_READ_SIZE)
            if not data:
                return
            self.protocol.receive_data(data)

    def _done(self, task: asyncio.Task[None]) -> None:
        self.tasks.discard(task)
        self.slots.release()

    async def _execute(self, event: RequestEvent) -> None:
        try:
            async with asyncio.timeout(self.limits.request_timeout):
                data = await self._perform(event)
            reply = self.protocol.reply(event.handle, 0, data)
        except Exception as exc:
            error = errno_for(exc)
            log.warning(
                "%s: %s failed (%s): %s", self.peer, _describe(event), error.name, exc or "timeout"
            )
            reply = self.protocol.reply(event.handle, error, message=str(exc)[:200])
        try:
            # Wait for room *before* writing, one writer at a time: replies queued all at once
            # would pile megabytes into the transport's buffer, which is moved on every
            # partial send (reads ran at a third of the speed that way).
            async with self.write_lock, asyncio.timeout(self.limits.write_timeout):
                await self.writer.drain()
                self.writer.write(reply)
        except (ConnectionError, OSError, TimeoutError) as exc:
            log.info("%s: could not send a reply: %s", self.peer, exc)
            self.writer.transport.abort()

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
