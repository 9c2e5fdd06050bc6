"""A blocking NBD client (NetworkBlockDevice/nbd ``doc/proto.md``): one export, one socket.

:class:`NbdClient` connects to a unix socket, a TCP port or takes a connected socket, runs the
fixed newstyle handshake with NBD_OPT_GO (export name, block size constraints), falling back
to NBD_OPT_EXPORT_NAME when the server answers NBD_REP_ERR_UNSUP or is not fixed newstyle,
and then sends one request at a time with simple replies (structured replies are not asked
for).  READ, WRITE (with FUA), FLUSH, TRIM and WRITE_ZEROES are sent only when the export
advertises them; requests larger than the server's maximum block size are split.

Errors are :mod:`iscsikit.errors` exceptions:

* an error the export answers a request with is an :class:`NbdError` (``.errno`` is the NBD
  error value): EIO, ESHUTDOWN and ENOMEM are :class:`NbdIOError`, a
  :class:`~iscsikit.errors.TransportError` (exit 4: the device behind the export failed,
  e.g. the iSCSI session stayed down past ``replacement_timeout``); EINVAL, ENOSPC and
  EOVERFLOW are :class:`NbdInvalidError` (7); EPERM and ENOTSUP :class:`NbdNotSupportedError`
  (27).  The connection stays usable;
* a lost connection (EOF, reset) is :class:`~iscsikit.errors.ConnectionFailedError` (4), no
  reply within ``timeout`` :class:`~iscsikit.errors.PduTimeoutError` (11), a reply that breaks
  the protocol :class:`~iscsikit.errors.RemoteProtocolError`; after any of them the
  connection is closed and every later call raises ``ConnectionFailedError``;
* connecting: :class:`~iscsikit.errors.TransportError` (4), or
  :class:`~iscsikit.errors.TransportTimeoutError` (8) when the connection or the handshake
  takes longer than ``connect_timeout``; an export the server does not have is
  :class:`~iscsikit.errors.NoObjectsFoundError` (21);
* what the client refuses before sending: out-of-range or misaligned requests
  (:class:`~iscsikit.errors.InvalidParameterError`), writes to a read-only export and trims
  the export does not advertise (:class:`~iscsikit.errors.NotSupportedError`).

Every wait is bounded: each request (all of its bytes, both ways) by ``timeout``.  Calls from
several threads are serialized.
"""

from __future__ import annotations

import itertools
import os
import socket
import struct
import threading
import time
from collections.abc import Iterator
from types import TracebackType
from typing import Self

from iscsikit.errors import (
    ConnectionFailedError,
    InvalidParameterError,
    IscsiError,
    NoObjectsFoundError,
    NotSupportedError,
    PduTimeoutError,
    RemoteProtocolError,
    TransportError,
    TransportTimeoutError,
)
from iscsikit.nbd.constants import (
    DEFAULT_MAX_PAYLOAD,
    IHAVEOPT,
    MAX_STRING,
    NBDMAGIC,
    OPTION_REPLY_MAGIC,
    REQUEST_MAGIC,
    SIMPLE_REPLY_HEADER_SIZE,
    SIMPLE_REPLY_MAGIC,
    STRUCTURED_REPLY_MAGIC,
    ClientFlag,
    Command,
    CommandFlag,
    Errno,
    HandshakeFlag,
    Info,
    Option,
    OptionReply,
    TransmissionFlag,
)

__all__ = [
    "CONNECT_TIMEOUT",
    "DEFAULT_TIMEOUT",
    "NbdClient",
    "NbdError",
    "NbdIOError",
    "NbdInvalidError",
    "NbdNotSupportedError",
]

#: Seconds a request may take.  Longer than the in-repo server's own request timeout (120 s,
#: :class:`iscsikit.nbd.server.Limits`), so that the export's answer (EIO once the iSCSI
#: session stayed down past ``replacement_timeout``) reaches the caller rather than ours.
DEFAULT_TIMEOUT = 150.0
#: Seconds to connect and complete the handshake.
CONNECT_TIMEOUT = 30.0
#: Largest TRIM / WRITE_ZEROES request sent (no payload, but a 32-bit length; a multiple of
#: every legal minimum block size).
MAX_EFFECT_LENGTH = 1 << 30
#: Largest option reply accepted during the handshake (NBD_REP_INFO, messages).
MAX_OPTION_REPLY = 64 * 1024

_GREETING = struct.Struct(">QQH")
_OPTION = struct.Struct(">QII")
_OPTION_REPLY = struct.Struct(">QIII")
_EXPORT_NAME_REPLY = struct.Struct(">QH")
_REQUEST = struct.Struct(">IHHQQI")
_SIMPLE_REPLY = struct.Struct(">IIQ")
_ZEROES_SIZE = 124
_ZERO_CHUNK = 1 << 20


class NbdError(IscsiError):
    """The export answered a request with an error; ``errno`` is the NBD error value (the
    Linux errno of the same name).  Subclasses give the code; the connection stays usable."""

    def __init__(self, message: str, *, errno: int) -> None:
        super().__init__(message)
        self.errno = errno


class NbdIOError(NbdError, TransportError):
    """EIO / ESHUTDOWN / ENOMEM: the device behind the export failed (exit 4)."""


class NbdInvalidError(NbdError, InvalidParameterError):
    """EINVAL / ENOSPC / EOVERFLOW: the server refused the request's range or form (exit 7)."""


class NbdNotSupportedError(NbdError, NotSupportedError):
    """EPERM / ENOTSUP: the export does not allow the request, e.g. read-only (exit 27)."""


_ERROR_CLASSES: dict[int, type[NbdError]] = {
    Errno.EIO: NbdIOError,
    Errno.ESHUTDOWN: NbdIOError,
    Errno.ENOMEM: NbdIOError,
    Errno.EINVAL: NbdInvalidError,
    Errno.ENOSPC: NbdInvalidError,
    Errno.EOVERFLOW: NbdInvalidError,
    Errno.EPERM: NbdNotSupportedError,
    Errno.ENOTSUP: NbdNotSupportedError,
}


def request_error(command: Command, offset: int, length: int, errno: int) -> NbdError:
    """The exception for an error reply ``errno`` to ``command`` (see the module docstring)."""
    try:
        name = Errno(errno).name
    except ValueError:
        name = f"error {errno}"
    cls = _ERROR_CLASSES.get(errno, NbdError)
    return cls(f"NBD {command.name} of {length} bytes at {offset} failed: {name}", errno=errno)


Address = str | os.PathLike[str] | tuple[str, int] | socket.socket


class NbdClient:
    """One NBD export, opened over ``address``: a unix socket path, a ``(host, port)`` TCP
    address or a connected socket (which the client then owns).

    After the handshake ``size`` (bytes), ``flags`` (:class:`TransmissionFlag`) and the
    block size constraints ``min_block`` / ``preferred_block`` / ``max_block`` are known
    (without NBD_INFO_BLOCK_SIZE: 1, 4096 and 32 MiB).  Use as a context manager or
    :meth:`close` it.
    """

    def __init__(
        self,
        address: Address,
        *,
        export_name: str = "",
        timeout: float = DEFAULT_TIMEOUT,
        connect_timeout: float = CONNECT_TIMEOUT,
    ) -> None:
        if len(export_name.encode()) > MAX_STRING:
            raise InvalidParameterError("an NBD export name is at most 4096 bytes")
        self.export_name = export_name
        self.timeout = timeout
        self.size = 0
        self.flags = TransmissionFlag(0)
        self.min_block = 1
        self.preferred_block = 4096
        self.max_block = DEFAULT_MAX_PAYLOAD
        self._handles = itertools.count(1)
        self._lock = threading.Lock()
        self._closed = False
        self._where = _describe(address)
        self._sock = _connect(address, self._where, connect_timeout)
        try:
            self._handshake(time.monotonic() + connect_timeout)
        except BaseException:
            self._sock.close()
            self._closed = True
            raise
        # Pieces of a READ / WRITE: the server's maximum, capped at 32 MiB of memory per
        # request; still a multiple of min_block (both are, and min_block <= 64 KiB).
        self._piece = min(self.max_block, DEFAULT_MAX_PAYLOAD)

    # -- what the export offers --------------------------------------------------------------

    @property
    def read_only(self) -> bool:
        return TransmissionFlag.READ_ONLY in self.flags

    @property
    def can_flush(self) -> bool:
        return TransmissionFlag.SEND_FLUSH in self.flags

    @property
    def can_fua(self) -> bool:
        return TransmissionFlag.SEND_FUA in self.flags

    @property
    def can_trim(self) -> bool:
        return TransmissionFlag.SEND_TRIM in self.flags

    @property
    def can_write_zeroes(self) -> bool:
        return TransmissionFlag.SEND_WRITE_ZEROES in self.flags

    @property
    def closed(self) -> bool:
        return self._closed

    # -- data ----------------------------------------------------------------------------------

    def read(self, offset: int, length: int) -> bytes:
        """``length`` bytes at ``offset``."""
        self._check(offset, length)
        buffer = bytearray(length)
        self.readinto(offset, buffer)
        return bytes(buffer)

    def readinto(self, offset: int, buffer: bytearray | memoryview) -> int:
        """Fill ``buffer`` with the bytes at ``offset`` (received straight into it)."""
        view = memoryview(buffer).cast("B")
        self._check(offset, len(view))
        with self._lock:
            for start, n in _pieces(offset, len(view), self._piece):
                pos = start - offset
                self._request(Command.READ, start, n, into=view[pos : pos + n])
        return len(view)

    def write(self, offset: int, data: bytes | bytearray | memoryview, *, fua: bool = False) -> int:
        """Write ``data`` at ``offset``; with ``fua`` it is on stable storage on return (FUA
        on each piece, or a FLUSH after them when the export does not take FUA)."""
        view = memoryview(data).cast("B")
        self._check(offset, len(view), writing=True)
        flags = CommandFlag.FUA if fua and self.can_fua else CommandFlag(0)
        with self._lock:
            for start, n in _pieces(offset, len(view), self._piece):
                pos = start - offset
                self._request(Command.WRITE, start, n, flags=flags, payload=view[pos : pos + n])
            if fua and not flags:
                self._flush()
        return len(view)

    def flush(self) -> None:
        """NBD_CMD_FLUSH: every completed write is on stable storage.  A no-op when the
        export does not advertise flush (it has no cache to flush, as the kernel assumes)."""
        with self._lock:
            self._flush()

    def trim(self, offset: int, length: int, *, fua: bool = False) -> None:
        """NBD_CMD_TRIM: the range may be deallocated (reads return zeros or old data);
        :class:`NotSupportedError` when the export does not advertise trim."""
        self._check(offset, length, writing=True)
        if not self.can_trim:
            raise NotSupportedError(f"the NBD export at {self._where} does not support trim")
        self._effect(Command.TRIM, offset, length, CommandFlag.FUA if fua else CommandFlag(0))

    def write_zeroes(
        self, offset: int, length: int, *, fua: bool = False, may_unmap: bool = False
    ) -> None:
        """Zero a range: NBD_CMD_WRITE_ZEROES (NO_HOLE unless ``may_unmap``), or WRITEs of
        zeros when the export does not advertise it."""
        self._check(offset, length, writing=True)
        if not self.can_write_zeroes:
            zeros = memoryview(bytes(min(length, _ZERO_CHUNK, self._piece)))
            with self._lock:
                for start, n in _pieces(offset, length, len(zeros)):
                    self._request(Command.WRITE, start, n, payload=zeros[:n])
                if fua:
                    self._flush()
            return
        flags = CommandFlag.FUA if fua else CommandFlag(0)
        if not may_unmap:
            flags |= CommandFlag.NO_HOLE
        self._effect(Command.WRITE_ZEROES, offset, length, flags)

    # -- lifetime ------------------------------------------------------------------------------

    def close(self) -> None:
        """Send NBD_CMD_DISC (best effort) and close the socket; idempotent.  Waits for a
        request of another thread to finish."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            try:
                self._sock.settimeout(1.0)
                self._sock.sendall(_REQUEST.pack(REQUEST_MAGIC, 0, Command.DISC, 0, 0, 0))
            except OSError:
                pass
            finally:
                self._sock.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._closed else f"{self.size} bytes"
        return f"<NbdClient {self.export_name!r} at {self._where} ({state})>"

    # -- requests ------------------------------------------------------------------------------

    def _check(self, offset: int, length: int, *, writing: bool = False) -> None:
        if offset < 0 or length < 0 or offset + length > self.size:
            raise InvalidParameterError(
                f"request of {length} bytes at {offset} is outside the export ({self.size} bytes)"
            )
        if (offset | length) % self.min_block:
            raise InvalidParameterError(
                f"request of {length} bytes at {offset} is not aligned to the export's "
                f"minimum block size {self.min_block}"
            )
        if writing and self.read_only:
            raise NotSupportedError(f"the NBD export at {self._where} is read-only")

    def _flush(self) -> None:
        if self.can_flush:
            self._request(Command.FLUSH, 0, 0)

    def _effect(self, command: Command, offset: int, length: int, flags: CommandFlag) -> None:
        """TRIM / WRITE_ZEROES over a range, in pieces; FUA the export does not take becomes
        a FLUSH after them."""
        fua = CommandFlag.FUA in flags
        if not self.can_fua:
            flags &= ~CommandFlag.FUA
        with self._lock:
            for start, n in _pieces(offset, length, MAX_EFFECT_LENGTH):
                self._request(command, start, n, flags=flags)
            if fua and not self.can_fua:
                self._flush()

    def _request(
        self,
        command: Command,
        offset: int,
        length: int,
        *,
        flags: int = 0,
        payload: memoryview | None = None,
        into: memoryview | None = None,
    ) -> None:
        """One request and its simple reply, under the lock, within ``timeout``."""
        if self._closed:
            raise ConnectionFailedError(f"the NBD connection to {self._where} is closed")
        handle = next(self._handles)
        header = _REQUEST.pack(REQUEST_MAGIC, flags, command, handle, offset, length)
        deadline = time.monotonic() + self.timeout
        what = f"{command.name} of {length} bytes at {offset}"
        try:
            self._send(header, deadline)
            if payload is not None:
                self._send(payload, deadline)
            reply = bytearray(SIMPLE_REPLY_HEADER_SIZE)
            self._recv_into(memoryview(reply), deadline)
            magic, error, got = _SIMPLE_REPLY.unpack(reply)
            if magic == STRUCTURED_REPLY_MAGIC:
                raise RemoteProtocolError(f"structured reply to {what}, never negotiated")
            if magic != SIMPLE_REPLY_MAGIC:
                raise RemoteProtocolError(f"bad NBD reply magic {magic:#010x} to {what}")
            if got != handle:
                raise RemoteProtocolError(f"NBD reply for handle {got:#x}, expected {handle:#x}")
            if not error and into is not None:
                self._recv_into(into, deadline)
        except TimeoutError as exc:
            self._abort()
            raise PduTimeoutError(
                f"no NBD reply to {what} from {self._where} within {self.timeout} s"
            ) from exc
        except (OSError, EOFError) as exc:
            self._abort()
            raise ConnectionFailedError(
                f"lost the NBD connection to {self._where} during {what}: {exc or 'closed'}"
            ) from exc
        except RemoteProtocolError:
            self._abort()
            raise
        if error:
            # A simple error reply carries no data, even for READ (proto.md: the client
            # cannot know how much would follow, which is why servers send none).
            raise request_error(command, offset, length, error)

    def _abort(self) -> None:
        """The connection is unusable (a reply may still be on its way): drop it."""
        self._closed = True
        self._sock.close()

    def _send(self, data: bytes | memoryview, deadline: float) -> None:
        self._sock.settimeout(_remaining(deadline))
        self._sock.sendall(data)  # the timeout bounds the whole call (Python >= 3.5)

    def _recv_into(self, view: memoryview, deadline: float) -> None:
        got = 0
        while got < len(view):
            self._sock.settimeout(_remaining(deadline))
            n = self._sock.recv_into(view[got:])
            if not n:
                raise EOFError("the server closed the connection")
            got += n

    def _recv(self, n: int, deadline: float) -> bytes:
        buf = bytearray(n)
        self._recv_into(memoryview(buf), deadline)
        return bytes(buf)

    # -- handshake -----------------------------------------------------------------------------

    def _handshake(self, deadline: float) -> None:
        try:
            magic, second, raw_flags = _GREETING.unpack(self._recv(_GREETING.size, deadline))
            if magic != NBDMAGIC:
                raise RemoteProtocolError(f"{self._where} is not an NBD server")
            if second != IHAVEOPT:
                raise NotSupportedError(f"{self._where} speaks oldstyle NBD, not newstyle")
            server = HandshakeFlag(
                raw_flags & int(HandshakeFlag.FIXED_NEWSTYLE | HandshakeFlag.NO_ZEROES)
            )
            ours = ClientFlag(int(server))  # the same two bits: take what the server offers
            self._send(struct.pack(">I", ours), deadline)
            if HandshakeFlag.FIXED_NEWSTYLE in server and self._go(deadline):
                return
            self._export_name(deadline, no_zeroes=ClientFlag.NO_ZEROES in ours)
        except TimeoutError as exc:
            raise TransportTimeoutError(
                f"the NBD handshake with {self._where} took longer than the connect timeout"
            ) from exc
        except (OSError, EOFError) as exc:
            raise TransportError(
                f"the NBD server at {self._where} closed the connection during the handshake"
                f" (export {self.export_name!r}): {exc or 'closed'}"
            ) from exc

    def _go(self, deadline: float) -> bool:
        """NBD_OPT_GO; False when the server does not know it (fall back to EXPORT_NAME)."""
        name = self.export_name.encode()
        data = struct.pack(">I", len(name)) + name + struct.pack(">HH", 1, Info.BLOCK_SIZE)
        self._send(_OPTION.pack(IHAVEOPT, Option.GO, len(data)) + data, deadline)
        have_export = False
        while True:
            magic, option, reply, length = _OPTION_REPLY.unpack(
                self._recv(_OPTION_REPLY.size, deadline)
            )
            if magic != OPTION_REPLY_MAGIC or option != Option.GO:
                raise RemoteProtocolError(f"bad NBD option reply (magic {magic:#x}, {option})")
            if length > MAX_OPTION_REPLY:
                raise RemoteProtocolError(f"NBD option reply of {length} bytes")
            payload = self._recv(length, deadline)
            if reply == OptionReply.ACK:
                if not have_export:
                    raise RemoteProtocolError("NBD_OPT_GO acknowledged without NBD_INFO_EXPORT")
                return True
            if reply == OptionReply.INFO:
                have_export |= self._info(payload)
            elif reply == OptionReply.ERR_UNSUP:
                return False
            elif reply & (1 << 31):
                raise self._refusal(reply, payload)
            # Other replies (NBD_REP_SERVER...) are not answers to GO: ignored.

    def _info(self, payload: bytes) -> bool:
        """Take one NBD_REP_INFO; True for NBD_INFO_EXPORT."""
        if len(payload) < 2:
            raise RemoteProtocolError("NBD_REP_INFO shorter than its type")
        (kind,) = struct.unpack_from(">H", payload)
        if kind == Info.EXPORT:
            if len(payload) != 12:
                raise RemoteProtocolError("NBD_INFO_EXPORT is not 12 bytes")
            self.size, flags = struct.unpack_from(">QH", payload, 2)
            self.flags = TransmissionFlag(flags)
            return True
        if kind == Info.BLOCK_SIZE:
            if len(payload) != 14:
                raise RemoteProtocolError("NBD_INFO_BLOCK_SIZE is not 14 bytes")
            minimum, preferred, maximum = struct.unpack_from(">III", payload, 2)
            if not (_power_of_two(minimum) and minimum <= 64 * 1024 and _power_of_two(preferred)):
                raise RemoteProtocolError(f"bad NBD block sizes {minimum}/{preferred}/{maximum}")
            if maximum < minimum or maximum % minimum:
                raise RemoteProtocolError(f"bad NBD block sizes {minimum}/{preferred}/{maximum}")
            self.min_block, self.preferred_block, self.max_block = minimum, preferred, maximum
        return False

    def _refusal(self, reply: int, payload: bytes) -> IscsiError:
        message = payload[:MAX_STRING].decode(errors="replace")
        try:
            name = OptionReply(reply).name
        except ValueError:
            name = f"error {reply & 0x7FFFFFFF}"
        text = f"the NBD server at {self._where} refused export {self.export_name!r}: {name}"
        text += f" ({message})" if message else ""
        if reply == OptionReply.ERR_UNKNOWN:
            return NoObjectsFoundError(text)
        return TransportError(text)

    def _export_name(self, deadline: float, *, no_zeroes: bool) -> None:
        """NBD_OPT_EXPORT_NAME: the old way in; an unknown name makes the server hang up."""
        name = self.export_name.encode()
        self._send(_OPTION.pack(IHAVEOPT, Option.EXPORT_NAME, len(name)) + name, deadline)
        self.size, flags = _EXPORT_NAME_REPLY.unpack(self._recv(_EXPORT_NAME_REPLY.size, deadline))
        self.flags = TransmissionFlag(flags)
        if not no_zeroes:
            self._recv(_ZEROES_SIZE, deadline)


def _remaining(deadline: float) -> float:
    left = deadline - time.monotonic()
    if left <= 0:
        raise TimeoutError("deadline passed")
    return left


def _power_of_two(n: int) -> bool:
    return n > 0 and n & (n - 1) == 0


def _pieces(offset: int, length: int, limit: int) -> Iterator[tuple[int, int]]:
    """``(offset, length)`` of consecutive pieces of at most ``limit`` bytes."""
    end = offset + length
    while offset < end:
        n = min(limit, end - offset)
        yield offset, n
        offset += n


def _describe(address: Address) -> str:
    if isinstance(address, socket.socket):
        return "a connected socket"
    if isinstance(address, tuple):
        host, port = address
        return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    return os.fspath(address)


def _connect(address: Address, where: str, timeout: float) -> socket.socket:
    if isinstance(address, socket.socket):
        return address
    try:
        if isinstance(address, tuple):
            sock = socket.create_connection(address, timeout=timeout)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            return sock
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.settimeout(timeout)
            sock.connect(os.fspath(address))
        except BaseException:
            sock.close()
            raise
        return sock
    except TimeoutError as exc:
        raise TransportTimeoutError(f"connecting to the NBD server at {where} timed out") from exc
    except OSError as exc:
        raise TransportError(
            f"cannot connect to the NBD server at {where}: {exc.strerror or exc}"
        ) from exc
