"""The daemon's IPC server: a unix stream socket, peer credentials, bounds, one handler.

:class:`IpcServer` listens on ``<run_dir>/iscsikitd.sock`` (or on a socket systemd passed in,
:meth:`IpcServer.from_systemd`), checks ``SO_PEERCRED`` of every connection, decodes requests
with :class:`~iscsikit.ipc.protocol.RequestDecoder` and awaits
``handler(op, args, peer) -> result`` for each one, replying in order.  The handler's
:class:`~iscsikit.errors.IscsiError` becomes an error reply with its code; any other exception
is logged and answered as INTERNAL (9).  Nothing a client sends or fails to send stops the
server.

Who may talk: root, the daemon's own effective uid, ``allowed_uids``, and members of
``allowed_gids`` (primary group, or a supplementary one read with ``SO_PEERGROUPS``).  Others
get an ACCESS (13) reply and are closed, as iscsid does.  The socket file's mode follows:
0600, 0660 owned by the first allowed group, or 0666 when other users are allowed (the
credential check is then the only gate).

Bounds: ``max_clients`` connections (one more gets AGAIN (29) and is closed), the protocol's
message size, depth and requests per connection, ``idle_timeout`` between requests (an idle
connection is closed), ``request_timeout`` for the rest of a request once its first byte
arrived (a trickling client gets an error and is closed), and ``write_timeout`` for a client
that does not read its replies.  Handlers have no timeout: a login takes what the manager's
timers allow.

Binding makes the socket's directory private (:func:`~iscsikit.daemon.rundir.private_dir`:
a planted link or another user's directory is refused; others may only traverse it when
the socket lets them in), takes ``<socket>.lock`` (``flock``) for the server's life,
refuses when another daemon answers on the socket, replaces a stale socket file, and
creates the new one under a temporary name, owner-only until it has its final mode,
before renaming it into place.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import os
import socket
import stat
import struct
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from iscsikit.daemon.rundir import dir_mode_for_socket, private_dir
from iscsikit.errors import InternalError, InvalidParameterError, IscsiErr, IscsiError
from iscsikit.ipc.errors import AccessDeniedError, IpcProtocolError, TooManyClientsError
from iscsikit.ipc.protocol import (
    MAX_REQUESTS,
    MessageRejected,
    RequestDecoder,
    RequestReceived,
    encode_exception,
    encode_result,
)

__all__ = [
    "DaemonRunningError",
    "Handler",
    "IpcServer",
    "PeerCred",
    "peer_credentials",
    "systemd_listen_socket",
]

log = logging.getLogger(__name__)

_READ_SIZE = 65536
_UCRED = struct.Struct("3i")
_SO_PEERGROUPS = getattr(socket, "SO_PEERGROUPS", 59)  # Linux ≥ 4.13
_SD_LISTEN_FDS_START = 3


class DaemonRunningError(IscsiError):
    """Another daemon serves the socket already (exit 28, "device or resource in use")."""

    code = IscsiErr.BUSY


@dataclass(frozen=True, slots=True)
class PeerCred:
    """The credentials of a connected client, as the kernel saw them at ``connect()``."""

    pid: int
    uid: int
    gid: int
    groups: tuple[int, ...] = ()


#: ``await handler(op, args, peer)``: the JSON-able result, or an IscsiError.
Handler = Callable[[str, dict[str, Any], PeerCred], Awaitable[Any]]


def peer_credentials(sock: Any) -> PeerCred:
    """``SO_PEERCRED`` (and ``SO_PEERGROUPS`` when the kernel has it) of a unix socket."""
    pid, uid, gid = _UCRED.unpack(
        sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _UCRED.size)
    )
    groups: tuple[int, ...] = ()
    with contextlib.suppress(OSError):
        raw = sock.getsockopt(socket.SOL_SOCKET, _SO_PEERGROUPS, 4 * 1024)
        groups = struct.unpack(f"{len(raw) // 4}I", raw[: len(raw) // 4 * 4])
    return PeerCred(pid, uid, gid, groups)


def systemd_listen_socket(env: Mapping[str, str] | None = None) -> socket.socket | None:
    """The listening socket systemd passed (``LISTEN_PID`` / ``LISTEN_FDS``, fd 3), or None.

    With ``env`` None the variables are read from, and then removed from, ``os.environ``
    (sd_listen_fds(1)), so that children do not take the socket for theirs.
    """
    source = os.environ if env is None else env
    if source.get("LISTEN_PID") != str(os.getpid()):
        return None
    try:
        count = int(source.get("LISTEN_FDS", "0"))
    except ValueError:
        return None
    if env is None:
        for name in ("LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"):
            os.environ.pop(name, None)
    if count < 1:
        return None
    if count > 1:
        log.warning("systemd passed %d sockets; using the first (fd 3)", count)
    sock = socket.socket(fileno=_SD_LISTEN_FDS_START)
    if sock.family != socket.AF_UNIX or sock.type != socket.SOCK_STREAM:
        sock.detach()
        raise InvalidParameterError("the socket systemd passed is not a unix stream socket")
    sock.set_inheritable(False)
    return sock


class IpcServer:
    """Serve ``handler`` on the unix socket ``path`` (see the module docstring)."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        handler: Handler,
        *,
        allowed_uids: Iterable[int] = (),
        allowed_gids: Iterable[int] = (),
        ops: Iterable[str] | None = None,
        max_clients: int = 128,
        max_requests: int = MAX_REQUESTS,
        idle_timeout: float = 60.0,
        request_timeout: float = 10.0,
        write_timeout: float = 10.0,
    ) -> None:
        self.path = Path(path)
        self._handler = handler
        self._uids = frozenset({0, os.geteuid(), *allowed_uids})
        self._gid_order = tuple(allowed_gids)
        self._gids = frozenset(self._gid_order)
        self._ops = None if ops is None else frozenset(ops)
        self._max_clients = max_clients
        self._max_requests = max_requests
        self._idle_timeout = idle_timeout
        self._request_timeout = request_timeout
        self._write_timeout = write_timeout
        self._prebound: socket.socket | None = None
        self._lock_fd: int | None = None
        self._inode: int | None = None
        self._server: asyncio.Server | None = None
        self._clients: dict[asyncio.Task[None], asyncio.StreamWriter] = {}
        self._closed: asyncio.Event | None = None
        self._closing = False

    @classmethod
    def from_socket(cls, sock: socket.socket, handler: Handler, **options: Any) -> IpcServer:
        """Serve on a socket that is already bound and listening.  The server neither
        changes nor removes its file."""
        name = sock.getsockname()
        server = cls(name if isinstance(name, str) else "", handler, **options)
        server._prebound = sock
        return server

    @classmethod
    def from_systemd(
        cls, handler: Handler, *, env: Mapping[str, str] | None = None, **options: Any
    ) -> IpcServer | None:
        """A server on the socket systemd passed (:func:`systemd_listen_socket`), or None."""
        sock = systemd_listen_socket(env)
        return None if sock is None else cls.from_socket(sock, handler, **options)

    async def __aenter__(self) -> IpcServer:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    @property
    def serving(self) -> bool:
        return self._server is not None and self._server.is_serving()

    async def start(self) -> None:
        """Bind (unless pre-bound) and start accepting connections."""
        if self._server is not None:
            return
        self._closed = asyncio.Event()
        sock = self._prebound if self._prebound is not None else self._bind()
        sock.setblocking(False)
        try:
            self._server = await asyncio.start_unix_server(
                self._connected, sock=sock, backlog=max(128, self._max_clients)
            )
        except BaseException:
            if self._prebound is None:
                sock.close()
                self._release()
            raise
        log.info("IPC server listening on %s", self.path)

    async def serve_forever(self) -> None:
        """Serve until :meth:`close` (or cancellation, which closes)."""
        await self.start()
        assert self._closed is not None
        try:
            await self._closed.wait()
        finally:
            await self.close()

    async def close(self) -> None:
        """Stop accepting, end every connection, remove the socket file and the lock."""
        self._closing = True
        server, self._server = self._server, None
        if server is not None:
            server.close()
        # Abort each connection's transport before cancelling its task (and a request's
        # handler with it): the peer sees the end at once, whatever the task awaits.
        clients = list(self._clients)
        for task, writer in list(self._clients.items()):
            writer.transport.abort()
            task.cancel()
        await asyncio.gather(*clients, return_exceptions=True)
        if server is not None:
            await server.wait_closed()
        self._release()
        if self._closed is not None:
            self._closed.set()

    # -- binding -------------------------------------------------------------------------

    def _bind(self) -> socket.socket:
        mode, group = self._mode()
        private_dir(self.path.parent, dir_mode_for_socket(mode), gid=group)
        self._lock()
        try:
            self._remove_stale()
            temp = self.path.with_name(f".ipc-{os.getpid()}.tmp")
            with contextlib.suppress(FileNotFoundError):
                temp.unlink()
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                os.fchmod(sock.fileno(), mode & 0o700)  # never wider while it is bound
                sock.bind(os.fspath(temp))
                os.chmod(temp, mode)
                if group is not None:
                    os.chown(temp, -1, group)
                os.rename(temp, self.path)
            except OSError as exc:
                sock.close()
                with contextlib.suppress(OSError):
                    temp.unlink()
                raise InvalidParameterError(f"cannot create {self.path}: {exc}") from exc
            self._inode = self.path.stat().st_ino
            return sock
        except BaseException:
            self._release()
            raise

    def _lock(self) -> None:
        lock_path = self.path.with_name(self.path.name + ".lock")
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise DaemonRunningError(f"another iscsikitd holds {lock_path}") from None
        self._lock_fd = fd

    def _remove_stale(self) -> None:
        try:
            st = self.path.lstat()
        except FileNotFoundError:
            return
        if not stat.S_ISSOCK(st.st_mode):
            raise InvalidParameterError(f"{self.path} exists and is not a socket")
        probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        probe.settimeout(1.0)
        try:
            probe.connect(os.fspath(self.path))
        except (ConnectionRefusedError, FileNotFoundError):
            log.info("removing stale socket %s", self.path)
            with contextlib.suppress(FileNotFoundError):
                self.path.unlink()
            return
        except OSError:
            pass  # a timeout (full backlog) or anything else: somebody is there
        finally:
            probe.close()
        raise DaemonRunningError(f"another daemon answers on {self.path}")

    def _mode(self) -> tuple[int, int | None]:
        if self._uids - {0, os.geteuid()}:
            return 0o666, None  # other users: SO_PEERCRED is the gate
        if self._gid_order:
            return 0o660, self._gid_order[0]
        return 0o600, None

    def _release(self) -> None:
        if self._inode is not None:
            with contextlib.suppress(OSError):
                if self.path.lstat().st_ino == self._inode:
                    self.path.unlink()
            self._inode = None
        if self._lock_fd is not None:
            os.close(self._lock_fd)  # releases the flock; the file stays (no unlink race)
            self._lock_fd = None

    # -- connections ---------------------------------------------------------------------

    def _allowed(self, peer: PeerCred) -> bool:
        return (
            peer.uid in self._uids
            or peer.gid in self._gids
            or not self._gids.isdisjoint(peer.groups)
        )

    async def _connected(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        if len(self._clients) >= self._max_clients:
            log.warning("refusing an IPC client: %d clients connected", len(self._clients))
            await self._refuse(writer, TooManyClientsError("too many clients; retry later"))
            return
        self._clients[task] = writer
        try:
            await self._serve(reader, writer)
        except asyncio.CancelledError:
            if not self._closing:
                raise
            # close() ended this connection: the task ends normally, so asyncio's
            # stream callback (Python 3.11) does not log the cancellation as an error.
        except (OSError, TimeoutError) as exc:
            log.debug("IPC client dropped: %s", exc)
        except Exception:  # a bug here must cost one connection, never the server
            log.exception("IPC connection failed")
        finally:
            self._clients.pop(task, None)
            writer.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(writer.wait_closed(), self._write_timeout)

    async def _refuse(self, writer: asyncio.StreamWriter, error: IscsiError) -> None:
        with contextlib.suppress(Exception):
            writer.write(encode_exception(None, error))
            await asyncio.wait_for(writer.drain(), self._write_timeout)
        writer.close()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(writer.wait_closed(), self._write_timeout)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = peer_credentials(writer.get_extra_info("socket"))
        if not self._allowed(peer):
            log.warning("refused IPC client pid %d uid %d gid %d", peer.pid, peer.uid, peer.gid)
            await self._send(writer, encode_exception(None, AccessDeniedError()))
            return
        decoder = RequestDecoder(ops=self._ops, max_requests=self._max_requests)
        loop = asyncio.get_running_loop()
        deadline: float | None = None
        while True:
            if decoder.buffered:
                deadline = deadline if deadline is not None else loop.time() + self._request_timeout
                timeout = max(0.0, deadline - loop.time())
            else:
                deadline, timeout = None, self._idle_timeout
            try:
                data = await asyncio.wait_for(reader.read(_READ_SIZE), timeout)
            except TimeoutError:
                if decoder.buffered:
                    error = IpcProtocolError(
                        f"incomplete request after {self._request_timeout:g} s"
                    )
                    await self._send(writer, encode_exception(None, error))
                return
            if not data:
                rejected = decoder.end_of_stream()
                if rejected is not None:
                    log.debug("IPC client closed mid-request: %s", rejected.error)
                    with contextlib.suppress(OSError, TimeoutError):
                        await self._send(writer, encode_exception(None, rejected.error))
                return
            for event in decoder.feed(data):
                if isinstance(event, RequestReceived):
                    await self._send(writer, await self._dispatch(event, peer))
                elif isinstance(event, MessageRejected):
                    log.debug("IPC request rejected: %s", event.error)
                    await self._send(writer, encode_exception(event.id, event.error))
                    if event.fatal:
                        return

    async def _send(self, writer: asyncio.StreamWriter, data: bytes) -> None:
        writer.write(data)
        await asyncio.wait_for(writer.drain(), self._write_timeout)

    async def _dispatch(self, request: RequestReceived, peer: PeerCred) -> bytes:
        try:
            result = await self._handler(request.op, request.args, peer)
        except IscsiError as exc:
            return encode_exception(request.id, exc)
        except Exception as exc:
            log.exception("IPC operation %s failed", request.op)
            error = InternalError(f"{request.op}: internal error: {type(exc).__name__}: {exc}")
            return encode_exception(request.id, error)
        try:
            return encode_result(request.id, result)
        except InternalError as exc:
            log.error("IPC operation %s: %s", request.op, exc)
            return encode_exception(request.id, exc)
