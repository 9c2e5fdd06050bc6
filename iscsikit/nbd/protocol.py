"""The server side of the NBD protocol, sans-I/O (NetworkBlockDevice/nbd ``doc/proto.md``).

:class:`NbdServerProtocol` owns one connection's protocol state: the fixed newstyle
handshake (greeting, client flags, option haggling with NBD_OPT_EXPORT_NAME / ABORT / LIST /
INFO / GO / STRUCTURED_REPLY), then the transmission phase (request parsing, validation of
flags, bounds and payload sizes, the bookkeeping of requests in flight, and the encoding of
simple and structured replies).

It never touches sockets, tasks or clocks.  The I/O layer feeds received bytes to
:meth:`~NbdServerProtocol.receive_data`, drains :meth:`~NbdServerProtocol.next_event` until it
returns ``None``, sends :meth:`~NbdServerProtocol.data_to_send` (bytes the protocol decided on
by itself: option replies, error replies to invalid requests), and answers each request event
with the bytes of :meth:`~NbdServerProtocol.reply`, in any order.

A peer that breaks a mandatory rule (bad magic, unknown client flags, an export name that
cannot be served through NBD_OPT_EXPORT_NAME, bytes after NBD_CMD_DISC) raises
:class:`~iscsikit.errors.RemoteProtocolError`; the connection must then be closed (proto.md,
"Terminating the transmission phase": a hard disconnect on a violation).  The error is sticky.
Misuse by the caller raises :class:`~iscsikit.errors.LocalProtocolError`.
"""

from __future__ import annotations

import enum
import struct
from collections import deque
from collections.abc import Callable, Sequence
from typing import NoReturn

from iscsikit.errors import LocalProtocolError, RemoteProtocolError
from iscsikit.nbd import wire
from iscsikit.nbd.constants import (
    IHAVEOPT,
    MAX_STRING,
    OPTION_HEADER_SIZE,
    REQUEST_HEADER_SIZE,
    REQUEST_MAGIC,
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
from iscsikit.nbd.events import (
    DisconnectRequested,
    Event,
    Export,
    ExportChosen,
    FlushRequested,
    HandshakeAborted,
    OptionRequested,
    ReadRequested,
    RequestRejected,
    TrimRequested,
    WriteRequested,
    WriteZeroesRequested,
)

#: Option data we are willing to buffer.  INFO / GO carry a name (<= 4096 bytes) and a few
#: info types; anything far larger is discarded and answered NBD_REP_ERR_TOO_BIG.
MAX_OPTION_DATA = 64 * 1024

_OPTION_HEADER = struct.Struct(">QII")
_REQUEST = struct.Struct(">IHHQQI")
_COMPACT_AT = 1 << 20

#: Command flags each command accepts (proto.md, "Command flags"; FUA is valid on every
#: command once NBD_FLAG_SEND_FUA is advertised, which we always do).  DF is added for READ
#: when structured replies are negotiated.
_ALLOWED_FLAGS: dict[Command, CommandFlag] = {
    Command.READ: CommandFlag.FUA,
    Command.WRITE: CommandFlag.FUA,
    Command.FLUSH: CommandFlag.FUA,
    Command.TRIM: CommandFlag.FUA,
    Command.WRITE_ZEROES: CommandFlag.FUA | CommandFlag.NO_HOLE,
}
_ERRNOS = frozenset(int(e) for e in Errno)
_WRITING = frozenset({Command.WRITE, Command.TRIM, Command.WRITE_ZEROES})
#: Writes beyond the end SHOULD get ENOSPC, reads and trims EINVAL (proto.md, "Error values").
_BEYOND_END = {
    Command.READ: Errno.EINVAL,
    Command.TRIM: Errno.EINVAL,
    Command.WRITE: Errno.ENOSPC,
    Command.WRITE_ZEROES: Errno.ENOSPC,
}


class State(enum.Enum):
    CLIENT_FLAGS = "waiting for client flags"
    OPTIONS = "option haggling"
    TRANSMISSION = "transmission"
    CLOSED = "closed"  # after NBD_OPT_ABORT or NBD_CMD_DISC: replies only
    ERROR = "error"


class NbdServerProtocol:
    """One server-side NBD connection.  See the module docstring for the calling pattern.

    ``exports`` are offered by name; the empty name selects ``exports[0]`` unless an export
    is called ``""``.  ``structured_replies`` lets a client negotiate NBD_OPT_STRUCTURED_REPLY
    (otherwise it is answered NBD_REP_ERR_UNSUP).
    """

    def __init__(self, exports: Sequence[Export], *, structured_replies: bool = True) -> None:
        if not exports:
            raise LocalProtocolError("an NBD server needs at least one export")
        for export in exports:
            _check_export(export)
        self._exports = tuple(exports)
        self._allow_structured = structured_replies
        self._state = State.CLIENT_FLAGS
        self._greeted = False
        self._error: RemoteProtocolError | None = None
        self._buf = bytearray()
        self._pos = 0
        self._out: list[bytes] = []
        self._no_zeroes = False
        self._structured = False
        self.export: Export | None = None
        self.flags = TransmissionFlag(0)
        # Bytes to skip (an oversized option or a rejected WRITE payload), then what to do.
        self._discard = 0
        self._after_discard: Callable[[], Event | None] | None = None
        self._request: tuple[int, int, int, int, int] | None = None  # a parsed WRITE header
        # handle -> (command, offset, length) of every request handed out and not yet
        # answered; a deque because a client MAY (unwisely) reuse a handle still in flight.
        self._inflight: dict[int, deque[tuple[Command, int, int]]] = {}
        self._inflight_count = 0

    # --- public state ---------------------------------------------------------------

    @property
    def state(self) -> State:
        return self._state

    @property
    def structured_replies(self) -> bool:
        """Whether NBD_OPT_STRUCTURED_REPLY was negotiated."""
        return self._structured

    @property
    def in_flight(self) -> int:
        """Requests handed out as events and not yet answered with :meth:`reply`."""
        return self._inflight_count

    # --- bytes in, events out -------------------------------------------------------

    def greeting(self) -> bytes:
        """The first bytes to send: NBDMAGIC, IHAVEOPT, FIXED_NEWSTYLE | NO_ZEROES."""
        if self._greeted:
            raise LocalProtocolError("the greeting was already sent")
        self._greeted = True
        return wire.greeting(HandshakeFlag.FIXED_NEWSTYLE | HandshakeFlag.NO_ZEROES)

    def receive_data(self, data: bytes | bytearray | memoryview) -> None:
        """Append bytes received from the client."""
        if self._error is not None:
            raise self._error
        if self._state is State.CLOSED and data:
            # proto.md: nothing may follow NBD_CMD_DISC or NBD_OPT_ABORT.
            self._fail("client sent data after it disconnected")
        self._buf += data

    def next_event(self) -> Event | None:
        """The next event, or ``None`` when more bytes are needed."""
        if self._error is not None:
            raise self._error
        while True:
            if self._discard:
                if not self._skip():
                    return None
                after, self._after_discard = self._after_discard, None
                if after is not None:
                    event = after()
                    if event is not None:
                        return event
                continue
            if self._state is State.CLIENT_FLAGS:
                if not self._client_flags():
                    return None
                continue
            if self._state is State.OPTIONS:
                event = self._option()
            elif self._state is State.TRANSMISSION:
                event = self._transmission()
            else:
                return None
            # None with a discard pending means "skip bytes first", not "need more data".
            if event is not None or not self._discard:
                return event

    def data_to_send(self) -> bytes:
        """Bytes the protocol queued by itself (option replies, automatic error replies)."""
        out = b"".join(self._out)
        self._out.clear()
        return out

    # --- replies --------------------------------------------------------------------

    def reply(
        self, handle: int, error: int = 0, data: bytes | memoryview = b"", message: str = ""
    ) -> bytes:
        """The bytes answering the request ``handle``: READ data on success, else ``error``.

        With structured replies a READ is answered by one OFFSET_DATA chunk, an error by an
        NBD_REPLY_TYPE_ERROR chunk carrying ``message``; other successes use a simple reply
        (proto.md, "Structured reply chunk message": allowed for replies without payload).
        """
        queue = self._inflight.get(handle)
        if not queue:
            raise LocalProtocolError(f"no request with handle {handle:#x} is in flight")
        command, offset, length = queue[0]
        if error:
            if error not in _ERRNOS:
                raise LocalProtocolError(f"{error} is not an NBD error value")
            if data:
                raise LocalProtocolError("an error reply carries no data")
        elif command is Command.READ and len(data) != length:
            raise LocalProtocolError(f"READ of {length} bytes answered with {len(data)}")
        elif command is not Command.READ and data:
            raise LocalProtocolError(f"{command.name} is answered without data")
        queue.popleft()
        if not queue:
            del self._inflight[handle]
        self._inflight_count -= 1
        return self._encode_reply(command, handle, offset, error, data, message)

    @property
    def read_header_size(self) -> int:
        """Bytes that precede the data in a successful READ reply (for
        :meth:`reply_read_into`): 16 for a simple reply, 28 for an OFFSET_DATA chunk."""
        return wire.STRUCTURED_READ_HEADER if self._structured else wire.SIMPLE_READ_HEADER

    def reply_read_into(self, handle: int, buffer: bytearray) -> bytearray:
        """Answer the READ ``handle`` successfully with a reply built in place: the caller
        put the data at ``buffer[read_header_size:]``; the header is written before it and
        ``buffer`` is returned (the same bytes :meth:`reply` would give, without copying
        the data)."""
        header = self.read_header_size
        queue = self._inflight.get(handle)
        if not queue:
            raise LocalProtocolError(f"no request with handle {handle:#x} is in flight")
        command, offset, length = queue[0]
        if command is not Command.READ or not length:
            raise LocalProtocolError(f"{command.name} of {length} bytes is not a READ with data")
        if len(buffer) != header + length:
            raise LocalProtocolError(f"READ of {length} bytes in a {len(buffer)}-byte buffer")
        queue.popleft()
        if not queue:
            del self._inflight[handle]
        self._inflight_count -= 1
        if self._structured:
            wire.offset_data_header_into(buffer, handle, offset, length)
        else:
            wire.simple_read_header_into(buffer, handle)
        return buffer

    def _encode_reply(
        self,
        command: int,
        handle: int,
        offset: int,
        error: int,
        data: bytes | memoryview,
        msg: str,
    ) -> bytes:
        if not self._structured:
            return wire.simple_reply(handle, error, data)
        if error:
            return wire.error_chunk(handle, error, msg)
        if command == Command.READ and data:
            # One content chunk for the whole read: also satisfies NBD_CMD_FLAG_DF.  DONE is
            # safe because the data is complete before the first byte goes out.
            return wire.offset_data_chunk(handle, offset, data, done=True)
        if command == Command.READ:
            return wire.none_chunk(handle)
        return wire.simple_reply(handle, 0)

    # --- handshake ------------------------------------------------------------------

    def _client_flags(self) -> bool:
        if len(self._buf) - self._pos < 4:
            return False
        (raw,) = struct.unpack_from(">I", self._buf, self._pos)
        self._consume(4)
        known = int(ClientFlag.FIXED_NEWSTYLE | ClientFlag.NO_ZEROES)  # int: IntFlag ~ is bounded
        if raw & ~known:
            # proto.md, "Client flags": the server MUST drop the connection.
            self._fail(f"unknown client flags {raw:#010x}")
        # Without C_FIXED_NEWSTYLE we still answer options the fixed way, as the spec allows
        # ("Servers MAY choose to honour fixed newstyle from clients that didn't set this bit").
        self._no_zeroes = bool(raw & ClientFlag.NO_ZEROES)
        self._state = State.OPTIONS
        return True

    def _option(self) -> Event | None:
        available = len(self._buf) - self._pos
        if available < OPTION_HEADER_SIZE:
            return None
        magic, option, length = _OPTION_HEADER.unpack_from(self._buf, self._pos)
        if magic != IHAVEOPT:
            self._fail(f"bad option magic {magic:#018x}")
        if option == Option.EXPORT_NAME and length > MAX_STRING:
            self._fail("NBD_OPT_EXPORT_NAME with a name longer than 4096 bytes")
        if length > MAX_OPTION_DATA:
            self._consume(OPTION_HEADER_SIZE)
            self._discard = length

            def too_big() -> Event:
                return self._option_error(option, length, OptionReply.ERR_TOO_BIG, "too long")

            self._after_discard = too_big
            return None
        if available < OPTION_HEADER_SIZE + length:
            return None
        start = self._pos + OPTION_HEADER_SIZE
        data = bytes(self._buf[start : start + length])
        self._consume(OPTION_HEADER_SIZE + length)
        return self._handle_option(option, data)

    def _handle_option(self, option: int, data: bytes) -> Event:
        length = len(data)
        if option == Option.EXPORT_NAME:
            return self._export_name(data)
        if option == Option.ABORT:
            # proto.md: the server MUST reply NBD_REP_ACK; the client then drops the link.
            self._send_option(option, OptionReply.ACK)
            self._state = State.CLOSED
            return HandshakeAborted()
        if option == Option.LIST:
            if length:
                return self._option_error(option, length, OptionReply.ERR_INVALID, "has data")
            for export in self._exports:
                self._send_option(option, OptionReply.SERVER, wire.server_entry(export.name))
            self._send_option(option, OptionReply.ACK)
            return OptionRequested(option, 0, OptionReply.ACK)
        if option in (Option.INFO, Option.GO):
            return self._info_or_go(option, data)
        if option == Option.STRUCTURED_REPLY and self._allow_structured:
            if length:
                return self._option_error(option, length, OptionReply.ERR_INVALID, "has data")
            self._structured = True
            self._send_option(option, OptionReply.ACK)
            return OptionRequested(option, 0, OptionReply.ACK)
        # STARTTLS included: a NOTLS server answers it NBD_REP_ERR_UNSUP (proto.md, "NOTLS").
        return self._option_error(option, length, OptionReply.ERR_UNSUP, "unsupported option")

    def _export_name(self, data: bytes) -> Event:
        try:
            name = data.decode()
        except UnicodeDecodeError:
            name = None
        export = self._lookup(name) if name is not None else None
        if export is None:
            # NBD_OPT_EXPORT_NAME cannot be answered with an error: the server MUST
            # terminate the session (proto.md, "NBD_OPT_EXPORT_NAME").
            self._fail(f"NBD_OPT_EXPORT_NAME for an unknown export {data[:64]!r}")
        flags = self._transmission_flags(export)
        self._out.append(wire.export_name_reply(export.size, flags, no_zeroes=self._no_zeroes))
        return self._enter_transmission(export, flags)

    def _info_or_go(self, option: int, data: bytes) -> Event:
        try:
            name, requests = wire.parse_info_request(data)
        except ValueError as exc:
            return self._option_error(option, len(data), OptionReply.ERR_INVALID, str(exc))
        export = self._lookup(name)
        if export is None:
            msg = f"no export named {name!r}"
            return self._option_error(option, len(data), OptionReply.ERR_UNKNOWN, msg)
        flags = self._transmission_flags(export)
        # NBD_INFO_EXPORT is always sent; BLOCK_SIZE too (a minimum of 1 cannot hurt a client
        # that did not ask); NAME and DESCRIPTION only when asked.
        self._send_option(option, OptionReply.INFO, wire.info_export(export.size, flags))
        if Info.NAME in requests:
            self._send_option(option, OptionReply.INFO, wire.info_string(Info.NAME, export.name))
        if Info.DESCRIPTION in requests and export.description:
            info = wire.info_string(Info.DESCRIPTION, export.description)
            self._send_option(option, OptionReply.INFO, info)
        sizes = wire.info_block_size(export.min_block, export.preferred_block, export.max_block)
        self._send_option(option, OptionReply.INFO, sizes)
        self._send_option(option, OptionReply.ACK)
        if option == Option.GO:
            return self._enter_transmission(export, flags)
        return OptionRequested(option, len(data), OptionReply.ACK)

    def _lookup(self, name: str) -> Export | None:
        for export in self._exports:
            if export.name == name:
                return export
        return self._exports[0] if name == "" else None

    def _transmission_flags(self, export: Export) -> TransmissionFlag:
        flags = (
            TransmissionFlag.HAS_FLAGS
            | TransmissionFlag.SEND_FLUSH
            | TransmissionFlag.SEND_FUA
            | TransmissionFlag.SEND_WRITE_ZEROES
        )
        if export.can_trim:
            flags |= TransmissionFlag.SEND_TRIM
        # Not CAN_MULTI_CONN: a flush on one connection is not known to cover writes
        # another connection completed (the device below may cache per session).
        if export.read_only:
            flags |= TransmissionFlag.READ_ONLY
        if self._structured:
            flags |= TransmissionFlag.SEND_DF
        return flags

    def _enter_transmission(self, export: Export, flags: TransmissionFlag) -> Event:
        self.export = export
        self.flags = flags
        self._state = State.TRANSMISSION
        return ExportChosen(export, flags, self._structured)

    def _send_option(self, option: int, reply: OptionReply, data: bytes = b"") -> None:
        self._out.append(wire.option_reply(option, reply, data))

    def _option_error(self, option: int, length: int, reply: OptionReply, msg: str) -> Event:
        self._send_option(option, reply, msg.encode()[:MAX_STRING])
        return OptionRequested(option, length, reply)

    # --- transmission ---------------------------------------------------------------

    def _transmission(self) -> Event | None:
        header = self._request
        if header is None:
            if len(self._buf) - self._pos < REQUEST_HEADER_SIZE:
                return None
            magic, flags, kind, handle, offset, length = _REQUEST.unpack_from(self._buf, self._pos)
            if magic != REQUEST_MAGIC:
                self._fail(f"bad request magic {magic:#010x}")
            self._consume(REQUEST_HEADER_SIZE)
            if kind == Command.DISC:
                self._state = State.CLOSED
                return DisconnectRequested()
            rejection = self._validate(flags, kind, offset, length)
            if rejection is not None:
                return self._reject(handle, kind, offset, length, *rejection)
            if kind != Command.WRITE:
                return self._accept(Command(kind), handle, flags, offset, length, b"")
            header = self._request = (flags, kind, handle, offset, length)
        flags, kind, handle, offset, length = header
        if len(self._buf) - self._pos < length:
            return None
        with memoryview(self._buf) as view:  # one copy (a bytearray slice would be two)
            data = bytes(view[self._pos : self._pos + length])
        self._consume(length)
        self._request = None
        return self._accept(Command.WRITE, handle, flags, offset, length, data)

    def _validate(
        self, flags: int, kind: int, offset: int, length: int
    ) -> tuple[Errno, str] | None:
        assert self.export is not None
        try:
            command = Command(kind)
        except ValueError:
            return Errno.EINVAL, f"unknown command {kind}"
        allowed = _ALLOWED_FLAGS.get(command)
        if allowed is None or (command is Command.TRIM and not self.export.can_trim):
            # proto.md, NBD_CMD_TRIM: a client MUST NOT send it unless NBD_FLAG_SEND_TRIM
            # was advertised; EINVAL is the answer to a command the server does not know.
            return Errno.EINVAL, f"{command.name} is not supported"
        if command is Command.READ and self._structured:
            allowed |= CommandFlag.DF
        if flags & ~int(allowed):  # int(): ~ on an IntFlag only complements its own bits
            return Errno.EINVAL, f"flags {flags:#06x} are not valid for {command.name}"
        if command is Command.FLUSH:
            return None  # offset and length are reserved; be lenient about their values
        if self.export.read_only and command in _WRITING:
            return Errno.EPERM, "the export is read-only"
        if command in (Command.READ, Command.WRITE) and length > self.export.max_block:
            return Errno.EINVAL, f"{length} bytes exceed the maximum {self.export.max_block}"
        if offset + length > self.export.size:
            return _BEYOND_END[command], "request beyond the end of the export"
        return None

    def _reject(
        self, handle: int, kind: int, offset: int, length: int, error: Errno, reason: str
    ) -> Event | None:
        event = RequestRejected(handle, kind, error, reason)
        encoded = self._encode_reply(kind, handle, offset, error, b"", reason)
        if kind != Command.WRITE or not length:
            self._out.append(encoded)
            return event
        # The payload of a refused WRITE still follows the header: skip it, then answer.
        self._discard = length

        def answer() -> Event:
            self._out.append(encoded)
            return event

        self._after_discard = answer
        return None

    def _accept(
        self, command: Command, handle: int, flags: int, offset: int, length: int, data: bytes
    ) -> Event:
        self._inflight.setdefault(handle, deque()).append((command, offset, length))
        self._inflight_count += 1
        fua = bool(flags & CommandFlag.FUA)
        if command is Command.READ:
            return ReadRequested(handle, offset, length, flags)
        if command is Command.WRITE:
            return WriteRequested(handle, offset, data, fua)
        if command is Command.FLUSH:
            return FlushRequested(handle)
        if command is Command.TRIM:
            return TrimRequested(handle, offset, length, fua)
        may_unmap = not flags & CommandFlag.NO_HOLE
        return WriteZeroesRequested(handle, offset, length, fua, may_unmap)

    # --- buffer ---------------------------------------------------------------------

    def _consume(self, n: int) -> None:
        pos = self._pos + n
        if pos == len(self._buf):
            self._buf.clear()
            pos = 0
        elif pos >= _COMPACT_AT and pos * 2 >= len(self._buf):
            del self._buf[:pos]
            pos = 0
        self._pos = pos

    def _skip(self) -> bool:
        """Drop up to ``_discard`` buffered bytes; True once all of them are gone."""
        n = min(self._discard, len(self._buf) - self._pos)
        self._consume(n)
        self._discard -= n
        return self._discard == 0

    def _fail(self, message: str) -> NoReturn:
        self._state = State.ERROR
        self._error = RemoteProtocolError(message)
        raise self._error


def _check_export(export: Export) -> None:
    def power_of_two(n: int) -> bool:
        return n > 0 and n & (n - 1) == 0

    if export.size < 0 or len(export.name.encode()) > MAX_STRING:
        raise LocalProtocolError(f"invalid export {export.name!r}")
    if not (power_of_two(export.min_block) and export.min_block <= 64 * 1024):
        raise LocalProtocolError("minimum block size must be a power of two <= 64 KiB")
    if not power_of_two(export.preferred_block) or export.preferred_block < export.min_block:
        raise LocalProtocolError("preferred block size must be a power of two >= the minimum")
    if export.max_block % export.min_block or export.max_block < export.preferred_block:
        raise LocalProtocolError("maximum block size must be a multiple of the minimum")


__all__ = ["MAX_OPTION_DATA", "NbdServerProtocol", "State"]
