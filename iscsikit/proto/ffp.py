"""The Full Feature Phase of one iSCSI connection, as a sans-I/O state machine.

:class:`FullFeatureConnection` carries SCSI commands and their data between a caller
and a target once login is over (RFC 7143 §4.2, ERL 0, one connection per session).
It owns CmdSN / ExpStatSN bookkeeping, the command window and queue depth, Data-In
placement, R2T answering, immediate and unsolicited data, NOP keepalive, task
management and the target's asynchronous messages.

It performs no I/O and reads no clock, in the BufferedProtocol style:

* :meth:`get_buffer` hands out the memory the next received bytes must go to and
  :meth:`buffer_updated` says how many arrived.  Normally that is a 256 KiB scratch
  buffer, so one receive can bring many PDUs (a QD32 4 KiB workload completes ~30
  commands per ``recv_into``); whatever part of a Data-In payload is already there is
  copied to the caller's buffer, and the rest of an incomplete payload is received
  *directly* into the caller's buffer (no copy).  While large payloads flow, the scratch
  window shrinks to 4 KiB so that they mostly take the direct route;
* :meth:`data_to_send` returns the buffers to write, a gather list (write data is
  never copied either);
* :meth:`handle_timer` takes the current time; :meth:`get_timer` says when to call it
  next; keepalive pings, command timeouts and task management escalation hang off it.

Requests (:mod:`iscsikit.proto.task`) complete by setting ``done`` and calling their
callback.  Whatever breaks the connection - a protocol violation by the target, a bad
digest, a keepalive timeout, the transport closing - fails every outstanding request
with :class:`~iscsikit.errors.ConnectionFailedError`, and the machine is finished: at
ERL 0 recovery means a new connection (that policy lives above this module).
Notifications that are not answers to a request are returned by :meth:`next_event`.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Final, TypeVar

from iscsikit.errors import (
    CommandTimeoutError,
    ConnectionFailedError,
    DigestError,
    IscsiError,
    LocalProtocolError,
    LogoutError,
    PduTimeoutError,
    RemoteProtocolError,
    TaskManagementError,
    TransportError,
)
from iscsikit.proto import ffp_wire as w
from iscsikit.proto.constants import (
    RESERVED_TAG,
    AsyncEvent,
    LogoutReason,
    LogoutResult,
    Opcode,
    RejectReason,
    TmfFunction,
    TmfResponse,
)
from iscsikit.proto.digest import crc32c
from iscsikit.proto.pdu import (
    AsyncMessage,
    LogoutRequest,
    NopOut,
    Reject,
    ScsiCommand,
    TaskMgmtRequest,
    TextRequest,
    decode_pdu,
    encode_pdu,
)
from iscsikit.proto.session import SessionState, sn_le
from iscsikit.proto.task import LogoutTask, PingTask, ScsiTask, TmfTask, _Request
from iscsikit.proto.text import decode_text, encode_text

_MASK: Final = 0xFFFFFFFF
_T = TypeVar("_T", bound=_Request)
_HALF: Final = 0x80000000
_READ_FINAL: Final = w.F_READ | w.F_FINAL
_BHS: Final = 48
#: The receive scratch buffer: one ``recv_into`` may bring this much, many PDUs' worth.
_RX_SIZE: Final = 256 * 1024
#: While large Data-In payloads arrive, receive at most this much into the scratch buffer
#: at a time: the next large payload then stays in the kernel until it can go straight to
#: the caller's buffer, instead of being received here and copied.
_RX_SMALL: Final = 4096
#: A Data-In payload rest at least this large counts as large.
_LARGE: Final = 16 * 1024
#: Room kept free behind an incomplete PDU in the scratch buffer before it is compacted.
_RX_RESERVE: Final = 16 * 1024


def _yes(value: str | None) -> bool:
    return (value or "").lower() == "yes"


@dataclass(frozen=True, slots=True)
class ConnectionParams:
    """What login negotiated that the data path obeys (RFC 7143 §13)."""

    header_digest: bool = False
    data_digest: bool = False
    #: Largest data segment we accept (what we declared).
    max_recv_data_segment_length: int = 8192
    #: Largest data segment we may send (what the target declared).
    max_xmit_data_segment_length: int = 8192
    first_burst_length: int = 65536
    max_burst_length: int = 262144
    initial_r2t: bool = True
    immediate_data: bool = True

    @classmethod
    def from_negotiated(cls, params: Mapping[str, str]) -> ConnectionParams:
        """From ``LoginAccepted.params`` (the negotiator's view of the session)."""
        return cls(
            header_digest=params.get("HeaderDigest") == "CRC32C",
            data_digest=params.get("DataDigest") == "CRC32C",
            max_recv_data_segment_length=int(params.get("MaxRecvDataSegmentLength", "8192")),
            max_xmit_data_segment_length=int(params.get("MaxXmitDataSegmentLength", "8192")),
            first_burst_length=int(params.get("FirstBurstLength", "65536")),
            max_burst_length=int(params.get("MaxBurstLength", "262144")),
            initial_r2t=_yes(params.get("InitialR2T", "Yes")),
            immediate_data=_yes(params.get("ImmediateData", "Yes")),
        )


@dataclass(frozen=True, slots=True)
class Timers:
    """Keepalive and error-handling timeouts in seconds; 0 disables one.

    The defaults are open-iscsi's: ``node.conn[0].timeo.noop_out_interval`` /
    ``noop_out_timeout``, ``node.session.err_timeo.abort_timeout`` /
    ``lu_reset_timeout`` / ``tgt_reset_timeout``, and the SCSI command timeout the
    kernel's sd driver uses (30 s).
    """

    noop_out_interval: float = 5.0
    noop_out_timeout: float = 5.0
    command_timeout: float = 30.0
    abort_timeout: float = 15.0
    lu_reset_timeout: float = 30.0
    tgt_reset_timeout: float = 30.0
    logout_timeout: float = 15.0
    #: How often :meth:`FullFeatureConnection.handle_timer` wants to run.
    tick: float = 1.0


# -- events --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AsyncEventReceived:
    """An Async Message the caller may care about: a SCSI event with its sense data
    (e.g. REPORTED LUNS DATA HAS CHANGED) or a vendor event (RFC 7143 §11.9)."""

    event: int
    lun: int
    parameters: tuple[int, int, int]
    sense_data: bytes


@dataclass(frozen=True, slots=True)
class LogoutRequested:
    """The target asked us to log out within ``within`` seconds (AsyncEvent 1)."""

    within: int


@dataclass(frozen=True, slots=True)
class ParametersRenegotiated:
    """A renegotiation the target asked for (AsyncEvent 4) finished; new values."""

    max_xmit_data_segment_length: int


@dataclass(frozen=True, slots=True)
class ConnectionFailed:
    """The connection is finished; every outstanding request failed with ``error``.

    ``time2wait``/``time2retain`` are the target's hints when it announced the drop.
    """

    error: IscsiError
    time2wait: int = 0
    time2retain: int = 0


Event = AsyncEventReceived | LogoutRequested | ParametersRenegotiated | ConnectionFailed

_ACTIVE: Final = "active"
_LOGGING_OUT: Final = "logging out"
_FAILED: Final = "failed"
_CLOSED: Final = "closed"


class FullFeatureConnection:
    """One connection in Full Feature Phase (see the module docstring)."""

    def __init__(
        self,
        params: ConnectionParams,
        state: SessionState,
        *,
        queue_depth: int = 128,
        timers: Timers | None = None,
    ) -> None:
        if queue_depth < 1:
            raise LocalProtocolError("queue_depth must be at least 1")
        self.params = params
        self.state = state
        self.queue_depth = queue_depth
        self.timers = timers or Timers()
        self.phase = _ACTIVE
        self.error: IscsiError | None = None
        self._hd = params.header_digest
        self._dd = params.data_digest
        self._max_recv = params.max_recv_data_segment_length
        self._max_xmit = params.max_xmit_data_segment_length
        # Outstanding requests by ITT, and commands waiting for the window / queue depth.
        self._tasks: dict[int, ScsiTask] = {}
        self._others: dict[int, _Request] = {}
        self._queue: deque[ScsiTask] = deque()
        self._out: list[bytes | memoryview] = []
        self._events: deque[Event] = deque()
        # Receive side.  Normally bytes land in the scratch buffer ``_rx`` (``_start`` ..
        # ``_end`` not parsed yet), where one receive can bring many PDUs; a Data-In
        # payload too large to be worth copying goes straight to the caller's buffer
        # instead: ``_buf`` is then that view, ``_pos`` how much of it is filled and
        # ``_step`` what to do when it is full.
        self._hlen = _BHS + (4 if self._hd else 0)
        self._rx = bytearray(_RX_SIZE)
        self._rxv = memoryview(self._rx)
        self._rx_limit = _RX_SIZE
        self._start = 0
        self._end = 0
        self._tail = bytearray(8)
        self._buf: memoryview | None = None
        self._pos = 0
        self._step: Callable[[], None] = self._on_segment
        self._fields: tuple[int, ...] = ()
        self._segment = bytearray()
        self._task: ScsiTask | None = None
        self._crc = 0
        # Timers: the last time we were told, receive activity since then.
        self._now: float | None = None
        self._activity = False
        self._last_rx = 0.0
        self._keepalive: PingTask | None = None
        self._keepalive_sent = 0.0
        self._text_itt: int | None = None

    # -- submitting ------------------------------------------------------------------------

    def submit(self, task: ScsiTask) -> None:
        """Queue a SCSI command; it is sent as soon as the window and queue depth allow."""
        if self.phase != _ACTIVE:
            raise self._closed_error()
        if task.itt != -1:
            raise LocalProtocolError("a task can be submitted once")
        state = self.state
        if (
            not self._queue
            and len(self._tasks) < self.queue_depth
            and ((state.maxcmdsn - state.cmdsn) & _MASK) < _HALF  # CmdSN <= MaxCmdSN
        ):
            self._send_command(task)  # nothing waits ahead of it: skip the queue
            return
        self._queue.append(task)
        self._pump()

    def reissue(self, task: ScsiTask, cdb: bytes, expected_length: int) -> None:
        """Submit ``task`` again as a new command: ``cdb`` over the same buffer.

        For callers that keep one task per slot (``iscsikit-perf``) instead of building a
        :class:`ScsiTask` per I/O.  The task must be new or finished; its outcome fields
        are reset.  ``expected_length`` may be shorter than the buffer, never longer.
        ``cdb`` is at most 16 bytes (no extended-CDB AHS on this path).
        """
        if task.itt != -1 and not task.done:
            raise LocalProtocolError("a task can be reissued only once it is done")
        view = task.read_view
        if view is None:
            view = task.write_view
        if not 1 <= len(cdb) <= 16 or expected_length > (0 if view is None else len(view)):
            raise LocalProtocolError("reissue: CDB over 16 bytes or length beyond the buffer")
        task.cdb = cdb
        task.expected_length = expected_length
        task.itt = -1
        task.done = False
        task.error = None
        task.status = -1
        task.response = 0
        task.residual = 0
        task.sense_data = b""
        task.received = 0
        task._datasn = 0
        task._r2tsn = 0
        # submit(), inlined (task.itt is -1 now).
        if self.phase != _ACTIVE:
            raise self._closed_error()
        state = self.state
        tasks = self._tasks
        if (
            not self._queue
            and len(tasks) < self.queue_depth
            and ((state.maxcmdsn - state.cmdsn) & _MASK) < _HALF
        ):
            if task.read_view is None:
                self._send_command(task)
                return
            # _send_command() for a read, inlined: this runs once per I/O.
            itt = state.next_itt()
            while itt in tasks or itt in self._others:
                itt = state.next_itt()
            task.itt = itt
            task.cmdsn = cmdsn = state.cmdsn
            state.cmdsn = (cmdsn + 1) & _MASK
            task.started = self._now
            tasks[itt] = task
            header = w.SCSI_COMMAND.pack(
                0x01,  # Opcode.SCSI_COMMAND
                task.attr | _READ_FINAL,
                0,
                0,
                task.lun_field,
                itt,
                expected_length,
                cmdsn,
                state.expstatsn,
                cdb,
            )
            if self._hd:
                header += w.digest_word(header)
            self._out.append(header)
            return
        self._queue.append(task)
        self._pump()

    def ping(self, task: PingTask) -> None:
        """Send a NOP-Out ping; the task completes when the matching NOP-In arrives."""
        if self.phase != _ACTIVE:
            raise self._closed_error()
        self._send_ping(task)

    def task_management(self, task: TmfTask) -> None:
        """Send a task management request (immediate: it passes a closed window)."""
        if self.phase != _ACTIVE:
            raise self._closed_error()
        self._send_tmf(task)

    def logout(self, task: LogoutTask) -> None:
        """Close the session; commands still queued (never sent) fail at once."""
        if self.phase != _ACTIVE:
            raise self._closed_error()
        self.phase = _LOGGING_OUT
        for queued in self._queue:
            queued.error = ConnectionFailedError("the session is logging out")
        dropped, self._queue = list(self._queue), deque()
        itt = self._register(task)
        request = LogoutRequest(
            immediate=True,
            reason=int(LogoutReason.CLOSE_SESSION),
            itt=itt,
            cmdsn=self.state.cmdsn,
            expstatsn=self.state.expstatsn,
        )
        self._emit_pdu(request)
        for queued in dropped:
            self._finish(queued)

    @property
    def outstanding(self) -> int:
        """Commands sent and not yet completed, plus those waiting to be sent."""
        return len(self._tasks) + len(self._queue)

    @property
    def closed(self) -> bool:
        """True once the connection is finished (failed or logged out)."""
        return self.phase in (_FAILED, _CLOSED)

    def _closed_error(self) -> IscsiError:
        if self.error is not None:
            return ConnectionFailedError(f"the connection has failed: {self.error}")
        return ConnectionFailedError(f"the connection is {self.phase}")

    # -- sending ---------------------------------------------------------------------------

    def data_to_send(self) -> list[bytes | memoryview]:
        """The buffers to write, in order; the caller owns the list from now on."""
        out = self._out
        self._out = []
        return out

    @property
    def wants_write(self) -> bool:
        return bool(self._out)

    def _emit(self, header: bytes, data: memoryview | bytes | None = None) -> None:
        out = self._out
        if self._hd:
            header += w.digest_word(header)
        out.append(header)
        if data:
            out.append(data)
            pad = -len(data) & 3
            if pad:
                out.append(w.PADS[pad])
            if self._dd:
                crc = crc32c(data)
                if pad:
                    crc = crc32c(w.PADS[pad], crc)
                out.append(crc.to_bytes(4, "little"))

    def _emit_pdu(self, pdu: NopOut | LogoutRequest | TaskMgmtRequest | TextRequest) -> None:
        self._out.append(encode_pdu(pdu, header_digest=self._hd, data_digest=self._dd))

    def _free_itt(self) -> int:
        """The next Initiator Task Tag no outstanding request uses."""
        itt = self.state.next_itt()
        while itt in self._tasks or itt in self._others:
            itt = self.state.next_itt()
        return itt

    def _register(self, request: _Request) -> int:
        itt = self._free_itt()
        request.itt = itt
        request.started = self._now
        self._others[itt] = request
        return itt

    def _pump(self) -> None:
        """Send queued commands while the window is open and the queue depth allows."""
        queue = self._queue
        tasks = self._tasks
        state = self.state
        while queue and len(tasks) < self.queue_depth and sn_le(state.cmdsn, state.maxcmdsn):
            self._send_command(queue.popleft())

    def _send_command(self, task: ScsiTask) -> None:
        state = self.state
        tasks = self._tasks
        task.itt = itt = self._free_itt()
        task.cmdsn = cmdsn = state.cmdsn
        state.cmdsn = (cmdsn + 1) & _MASK
        task.started = self._now
        tasks[itt] = task
        if task.write_view is None and len(task.cdb) <= 16:
            # Reads and commands without data (the hot path): the header is all there is.
            header = w.SCSI_COMMAND.pack(
                0x01,  # Opcode.SCSI_COMMAND
                task.attr | (_READ_FINAL if task.read_view is not None else w.F_FINAL),
                0,
                0,
                task.lun_field,
                itt,
                task.expected_length,
                cmdsn,
                state.expstatsn,
                task.cdb,
            )
            if self._hd:
                header += w.digest_word(header)
            self._out.append(header)
            return
        length = task.expected_length
        flags = task.attr
        immediate = 0
        unsolicited = 0
        view = task.write_view
        if view is not None:
            flags |= w.F_WRITE
            first = min(length, self.params.first_burst_length)
            if self.params.immediate_data:
                immediate = min(first, self._max_xmit)
            unsolicited = immediate if self.params.initial_r2t else first
        elif task.read_view is not None:
            flags |= w.F_READ
        if unsolicited <= immediate:
            flags |= w.F_FINAL  # no unsolicited Data-Out follows (§11.3.4)
        data = view[:immediate] if view is not None and immediate else None
        if len(task.cdb) <= 16:
            header = w.SCSI_COMMAND.pack(
                Opcode.SCSI_COMMAND,
                flags,
                0,
                immediate,
                task.lun_field,
                itt,
                length,
                cmdsn,
                state.expstatsn,
                task.cdb,
            )
            self._emit(header, data)
        else:
            command = ScsiCommand(
                final=bool(flags & w.F_FINAL),
                read=task.read_view is not None,
                write=view is not None,
                attr=task.attr,
                lun=task.lun_field,
                itt=itt,
                expected_data_transfer_length=length,
                cmdsn=cmdsn,
                expstatsn=state.expstatsn,
                cdb=task.cdb,
                data=bytes(data) if data is not None else b"",
            )
            # A CDB over 16 bytes needs an extended-CDB AHS: the general codec does that.
            self._out.append(encode_pdu(command, header_digest=self._hd, data_digest=self._dd))
        if unsolicited > immediate:
            self._send_data_out(task, RESERVED_TAG, immediate, unsolicited - immediate)

    def _send_data_out(self, task: ScsiTask, ttt: int, offset: int, length: int) -> None:
        """One Data-Out sequence (§11.7): ``length`` bytes from ``offset``, DataSN from 0."""
        view = task.write_view
        assert view is not None
        if self._hd or self._dd or (length | offset | self._max_xmit) & 3:
            self._send_data_out_general(task, ttt, offset, length)
            return
        # No digests, no padding (the usual write): header and payload per PDU, inlined.
        pack = w.DATA_OUT.pack
        append = self._out.append
        lun_field = task.lun_field
        itt = task.itt
        expstatsn = self.state.expstatsn
        step = self._max_xmit
        end = offset + length
        datasn = 0
        while offset < end:
            n = end - offset
            if n > step:
                n = step
                final = 0
            else:
                final = w.F_FINAL
            append(pack(0x05, final, 0, n, lun_field, itt, ttt, 0, expstatsn, 0, datasn, offset, 0))
            append(view[offset : offset + n])
            offset += n
            datasn += 1

    def _send_data_out_general(self, task: ScsiTask, ttt: int, offset: int, length: int) -> None:
        view = task.write_view
        assert view is not None
        pack = w.DATA_OUT.pack
        step = self._max_xmit
        end = offset + length
        datasn = 0
        while offset < end:
            n = min(step, end - offset)
            final = w.F_FINAL if offset + n >= end else 0
            header = pack(
                0x05,  # Opcode.SCSI_DATA_OUT
                final,
                0,
                n,
                task.lun_field,
                task.itt,
                ttt,
                0,
                self.state.expstatsn,
                0,
                datasn,
                offset,
                0,
            )
            self._emit(header, view[offset : offset + n])
            offset += n
            datasn += 1

    def _send_ping(self, task: PingTask) -> None:
        itt = self._register(task)
        self._emit_pdu(
            NopOut(
                immediate=True,
                lun=0,
                itt=itt,
                ttt=RESERVED_TAG,
                cmdsn=self.state.cmdsn,
                expstatsn=self.state.expstatsn,
                data=task.data,
            )
        )

    def _send_tmf(self, task: TmfTask) -> None:
        itt = self._register(task)
        referenced = task.referenced
        self._emit_pdu(
            TaskMgmtRequest(
                immediate=True,
                function=int(task.function),
                lun=task.lun_field,
                itt=itt,
                referenced_task_tag=referenced.itt if referenced is not None else RESERVED_TAG,
                cmdsn=self.state.cmdsn,
                expstatsn=self.state.expstatsn,
                refcmdsn=(
                    referenced.cmdsn if referenced is not None and referenced.cmdsn >= 0 else 0
                ),
            )
        )

    # -- receiving -------------------------------------------------------------------------

    def get_buffer(self) -> memoryview:
        """Where the next received bytes go; never empty."""
        buf = self._buf
        if buf is not None:
            return buf[self._pos :] if self._pos else buf
        end = self._end
        return self._rxv[end : end + self._rx_limit]

    def get_buffers(self) -> list[memoryview]:
        """Like :meth:`get_buffer`, as a scatter list for ``recvmsg_into`` / ``readv``.

        While the rest of a payload goes straight to the caller's buffer (or a segment
        buffer), what the machine will want next follows it in the list - a Data-In's
        padding and data digest, then the scratch buffer - so one receive can finish
        the payload *and* bring the PDUs behind it.  :meth:`buffer_updated` takes the
        total count.
        """
        buf = self._buf
        if buf is None:
            end = self._end
            return [self._rxv[end : end + self._rx_limit]]
        # Direct mode: the scratch buffer is empty (every byte in it belonged to this PDU).
        scratch = self._rxv[: self._rx_limit]
        rest = buf[self._pos :] if self._pos else buf
        if self._step == self._on_data_in_payload:
            tail = (-self._fields[4] & 3) + (4 if self._dd else 0)
            if tail:  # _on_data_in_payload receives these into _tail next
                return [rest, memoryview(self._tail)[:tail], scratch]
        return [rest, scratch]

    def buffer_updated(self, nbytes: int) -> None:
        """``nbytes`` were written at the start of the last :meth:`get_buffer` view (or
        across the last :meth:`get_buffers` list, in order)."""
        self._activity = True
        buf = self._buf
        if buf is None:
            self._end += nbytes
            if self.phase is _FAILED or self.phase is _CLOSED:
                self._start = self._end = 0  # keep draining into scratch
                return
            try:
                self._parse()
            except IscsiError as exc:
                self._fail(exc)
                return
        else:
            try:
                # Fill the direct buffer; a get_buffers() receive may run on into what
                # the machine wants next (the Data-In tail, then the scratch buffer).
                while buf is not None:
                    pos = self._pos + nbytes
                    if pos < len(buf):
                        self._pos = pos
                        nbytes = 0
                        break
                    nbytes = pos - len(buf)
                    self._pos = 0
                    if self.phase is _FAILED or self.phase is _CLOSED:
                        self._buf = None
                        self._start = self._end = 0
                        return
                    self._step()
                    buf = self._buf
                if nbytes:
                    if self.phase is _FAILED or self.phase is _CLOSED:
                        self._start = self._end = 0
                        return
                    self._end = nbytes  # the scratch buffer was empty
                    self._parse()
            except IscsiError as exc:
                self._fail(exc)
                return
        if self._queue:
            self._pump()

    def receive_data(self, data: bytes | bytearray | memoryview) -> None:
        """Feed bytes that are already in memory (tests, other I/O layers): copies them."""
        view = memoryview(data).cast("B")
        while view:
            buf = self.get_buffer()
            n = min(len(buf), len(view))
            buf[:n] = view[:n]
            view = view[n:]
            self.buffer_updated(n)

    def connection_lost(self, exc: BaseException | None = None) -> None:
        """The transport closed or failed; every outstanding request fails (a logout
        still waiting for its response included)."""
        if self.phase == _CLOSED:
            return
        if isinstance(exc, IscsiError):
            self._fail(exc)
        elif exc is not None:
            self._fail(TransportError(f"connection failed: {exc}"))
        else:
            self._fail(TransportError("connection closed by the target"))

    def next_event(self) -> Event | None:
        return self._events.popleft() if self._events else None

    def _parse(self) -> None:
        """Handle every whole PDU in the scratch buffer; go direct for a large payload."""
        rx = self._rx
        rxv = self._rxv
        hlen = self._hlen
        hd = self._hd
        dd = self._dd
        unpack = w.TARGET_BHS.unpack_from
        tasks = self._tasks
        max_recv = self._max_recv
        start = self._start
        end = self._end
        while end - start >= hlen:
            header_len = hlen
            ahs = rx[start + 4]
            if ahs:
                # Targets send no AHS in practice; check it (digest included) and skip it.
                header_len += ahs * 4
                if end - start < header_len:
                    break
            if hd:
                cut = start + header_len - 4
                if crc32c(rxv[start:cut]) != int.from_bytes(rx[cut : cut + 4], "little"):
                    raise DigestError(
                        "header digest error", reject_reason=RejectReason.DATA_DIGEST_ERROR
                    )
            fields = unpack(rx, start)
            dlen = fields[4] & 0xFFFFFF  # w.LENGTHS
            pad = -dlen & 3
            total = header_len + dlen + pad + (4 if dd and dlen else 0)
            avail = end - start
            p = start + header_len
            if fields[0] & 0x3F == 0x25:  # Opcode.SCSI_DATA_IN
                # _data_in_header's checks, inlined: this runs for every Data-In PDU.
                task = tasks.get(fields[6])  # ITT
                offset = fields[12]  # Buffer Offset
                if (
                    task is None
                    or (view := task.read_view) is None
                    or fields[11] != task._datasn  # DataSN
                    or offset != task.received
                    or offset + dlen > task.expected_length
                    or fields[1] & 0x81 == w.DATAIN_STATUS
                    or dlen > max_recv
                ):
                    task = self._data_in_header(fields, dlen)  # raises the right error
                    view = task.read_view
                    assert view is not None
                if avail >= total:
                    if dlen:
                        view[offset : offset + dlen] = rxv[p : p + dlen]
                        if dd:
                            q = p + dlen + pad
                            if crc32c(rxv[p:q]) != int.from_bytes(rx[q : q + 4], "little"):
                                raise DigestError(
                                    "data digest error in Data-In",
                                    reject_reason=RejectReason.DATA_DIGEST_ERROR,
                                )
                    start += total
                    self._start = start
                    self._rx_limit = _RX_SIZE
                    self._data_in_done(fields, task)
                else:
                    # The rest of the payload goes straight to the caller's buffer.
                    self._data_in_direct(fields, task, dlen, p, end)
                    return
            elif dlen > self._max_recv:
                self._check_length(dlen)
            elif avail >= total:
                data = b""
                if dlen:
                    data = bytes(rx[p : p + dlen])
                    if dd:
                        q = p + dlen + pad
                        if crc32c(rxv[p:q]) != int.from_bytes(rx[q : q + 4], "little"):
                            raise DigestError(
                                "data digest error", reject_reason=RejectReason.DATA_DIGEST_ERROR
                            )
                start += total
                self._start = start
                self._dispatch(fields, data)
            elif total > _RX_SIZE:
                self._segment_direct(fields, total - header_len, p, end)
                return
            else:
                break
            if self.phase is _FAILED or self.phase is _CLOSED:
                self._start = self._end = 0
                return
            end = self._end
        # Keep room behind the unparsed rest (a partial header, or a non-Data-In PDU that
        # fits the scratch buffer); compacting moves at most one PDU.
        if start == end:
            self._start = self._end = 0
        elif start and _RX_SIZE - end < _RX_RESERVE:
            rx[: end - start] = rxv[start:end]
            self._start = 0
            self._end = end - start
        else:
            self._start = start

    def _check_length(self, dlen: int) -> None:
        if dlen > self._max_recv:
            raise RemoteProtocolError(
                f"data segment of {dlen} bytes exceeds MaxRecvDataSegmentLength {self._max_recv}",
                reject_reason=RejectReason.PROTOCOL_ERROR,
            )

    def _segment_direct(self, fields: tuple[int, ...], size: int, p: int, end: int) -> None:
        """A data segment too large for the scratch buffer: receive the rest into its own."""
        segment = bytearray(size)
        have = end - p
        segment[:have] = self._rxv[p:end]
        self._start = self._end = 0
        self._fields = fields
        self._segment = segment
        self._buf = memoryview(segment)
        self._pos = have
        self._step = self._on_segment

    def _on_segment(self) -> None:
        fields = self._fields
        segment = self._segment
        dlen = fields[w.LENGTHS] & 0xFFFFFF
        self._buf = None
        self._segment = bytearray()
        if self._dd:
            end = len(segment) - 4
            if crc32c(segment[:end]) != int.from_bytes(segment[end:], "little"):
                raise DigestError("data digest error", reject_reason=RejectReason.DATA_DIGEST_ERROR)
        self._dispatch(fields, bytes(segment[:dlen]))

    def _dispatch(self, fields: tuple[int, ...], data: bytes) -> None:
        opcode = fields[w.OPCODE] & 0x3F
        if opcode == Opcode.SCSI_RESPONSE:
            self._scsi_response(fields, data)
        elif opcode == Opcode.R2T:
            self._r2t(fields)
        elif opcode == Opcode.NOP_IN:
            self._nop_in(fields, data)
        elif opcode == Opcode.TASK_MGMT_RESPONSE:
            self._tmf_response(fields)
        elif opcode == Opcode.ASYNC_MESSAGE:
            self._async_message(fields, data)
        elif opcode == Opcode.REJECT:
            self._reject(fields, data)
        elif opcode == Opcode.LOGOUT_RESPONSE:
            self._logout_response(fields)
        elif opcode == Opcode.TEXT_RESPONSE:
            self._text_response(fields, data)
        else:
            raise RemoteProtocolError(
                f"unexpected opcode 0x{opcode:02x} in Full Feature Phase",
                reject_reason=RejectReason.PROTOCOL_ERROR,
            )

    # -- Data-In, straight into the caller's buffer --------------------------------------

    def _data_in_header(self, fields: tuple[int, ...], dlen: int) -> ScsiTask:
        """The command a Data-In header belongs to, once the header checks out."""
        itt = fields[6]  # w.ITT
        task = self._tasks.get(itt)
        if task is None or task.read_view is None:
            raise RemoteProtocolError(
                f"Data-In for ITT 0x{itt:08x}, which is no outstanding read",
                reject_reason=RejectReason.INVALID_PDU_FIELD,
            )
        offset = fields[12]  # w.OFFSET40
        if (
            fields[11] != task._datasn
            or offset != task.received
            or offset + dlen > task.expected_length
            or fields[1] & 0x81 == w.DATAIN_STATUS
            or dlen > self._max_recv
        ):
            self._data_in_violation(fields, dlen, task)
        return task

    def _data_in_violation(self, fields: tuple[int, ...], dlen: int, task: ScsiTask) -> None:
        self._check_length(dlen)
        if fields[w.SN36] != task._datasn:
            raise RemoteProtocolError(
                f"Data-In DataSN {fields[w.SN36]} where {task._datasn} was due",
                reject_reason=RejectReason.PROTOCOL_ERROR,
            )
        offset = fields[w.OFFSET40]
        if offset != task.received:
            # DataPDUInOrder=Yes and DataSequenceInOrder=Yes (what iscsikit offers).
            raise RemoteProtocolError(
                f"Data-In at offset {offset} where {task.received} was due",
                reject_reason=RejectReason.PROTOCOL_ERROR,
            )
        if offset + dlen > task.expected_length:
            raise RemoteProtocolError(
                f"Data-In of {dlen} bytes at offset {offset} runs beyond the "
                f"{task.expected_length}-byte buffer",
                reject_reason=RejectReason.PROTOCOL_ERROR,
            )
        raise RemoteProtocolError(
            "Data-In with status but without the F bit",
            reject_reason=RejectReason.INVALID_PDU_FIELD,
        )

    def _data_in_direct(
        self, fields: tuple[int, ...], task: ScsiTask, dlen: int, p: int, end: int
    ) -> None:
        """Copy the part of a Data-In PDU already here; the rest of the payload goes to the
        caller's buffer directly (the scratch buffer is empty afterwards: all of it was
        this PDU)."""
        view = task.read_view
        assert view is not None
        rxv = self._rxv
        offset = fields[w.OFFSET40]
        have = min(end - p, dlen)
        if have:
            view[offset : offset + have] = rxv[p : p + have]
        self._crc = crc32c(rxv[p : p + have]) if self._dd and have else 0
        self._start = self._end = 0
        self._fields = fields
        self._task = task
        self._pos = 0
        if have < dlen:
            self._rx_limit = _RX_SMALL if dlen - have >= _LARGE else _RX_SIZE
            self._buf = view[offset + have : offset + dlen]
            self._step = self._on_data_in_payload
            return
        # Payload complete, part of the padding / digest behind it is not (rare).
        extra = end - p - have
        self._tail[:extra] = rxv[p + have : end]
        self._buf = memoryview(self._tail)[: (-dlen & 3) + (4 if self._dd else 0)]
        self._pos = extra
        self._step = self._on_data_in_tail

    def _on_data_in_payload(self) -> None:
        fields = self._fields
        buf = self._buf
        assert buf is not None
        if self._dd:
            self._crc = crc32c(buf, self._crc)
        tail = (-(fields[w.LENGTHS] & 0xFFFFFF) & 3) + (4 if self._dd else 0)
        if tail:
            self._buf = memoryview(self._tail)[:tail]
            self._step = self._on_data_in_tail
        else:
            self._data_in_finished()

    def _on_data_in_tail(self) -> None:
        buf = self._buf
        assert buf is not None
        if self._dd:
            pad = len(buf) - 4
            crc = crc32c(buf[:pad], self._crc) if pad else self._crc
            if crc != int.from_bytes(buf[pad:], "little"):
                raise DigestError(
                    "data digest error in Data-In", reject_reason=RejectReason.DATA_DIGEST_ERROR
                )
        self._data_in_finished()

    def _data_in_finished(self) -> None:
        task = self._task
        assert task is not None
        self._task = None
        self._buf = None
        self._data_in_done(self._fields, task)

    def _data_in_done(self, fields: tuple[int, ...], task: ScsiTask) -> None:
        task.received = fields[12] + (fields[4] & 0xFFFFFF)  # OFFSET40 + data length
        task._datasn += 1
        state = self.state
        # RFC 7143 §4.2.2.1, inlined from SessionState.update_from_response: this runs
        # once per Data-In PDU.
        expcmdsn = fields[9]
        maxcmdsn = fields[10]
        if ((maxcmdsn - expcmdsn + 1) & _MASK) < _HALF:
            if expcmdsn != state.expcmdsn and ((expcmdsn - state.expcmdsn) & _MASK) < _HALF:
                state.expcmdsn = expcmdsn
            if maxcmdsn != state.maxcmdsn and ((maxcmdsn - state.maxcmdsn) & _MASK) < _HALF:
                state.maxcmdsn = maxcmdsn
        flags = fields[1]
        if flags & w.DATAIN_STATUS:
            state.expstatsn = (fields[8] + 1) & _MASK
            if flags & 0x06 or task.error is not None or task.received != task.expected_length:
                # A residual, or fewer bytes than expected: the general path decides.
                self._complete_command(task, 0, fields[3], flags, fields[13], b"")
                return
            # GOOD-path completion without residuals (the usual case), inlined.
            del self._tasks[task.itt]
            task.response = 0
            task.status = fields[3]
            task.done = True
            callback = task.callback
            if callback is not None:
                callback(task)

    # -- responses -------------------------------------------------------------------------

    def _scsi_response(self, fields: tuple[int, ...], data: bytes) -> None:
        itt = fields[w.ITT]
        task = self._tasks.get(itt)
        if task is None:
            raise RemoteProtocolError(
                f"SCSI Response for ITT 0x{itt:08x}, which is no outstanding command",
                reject_reason=RejectReason.INVALID_PDU_FIELD,
            )
        self.state.update_from_response(fields[w.STATSN], fields[w.EXPCMDSN], fields[w.MAXCMDSN])
        sense = b""
        if data:
            if len(data) < 2:
                raise RemoteProtocolError(
                    "SCSI Response data segment shorter than its SenseLength field",
                    reject_reason=RejectReason.INVALID_PDU_FIELD,
                )
            length = int.from_bytes(data[:2], "big")
            if length > len(data) - 2:
                raise RemoteProtocolError(
                    f"SenseLength {length} exceeds the {len(data) - 2} bytes that follow",
                    reject_reason=RejectReason.INVALID_PDU_FIELD,
                )
            sense = data[2 : 2 + length]
        self._complete_command(
            task, fields[w.BYTE2], fields[w.BYTE3], fields[w.FLAGS], fields[w.WORD44], sense
        )

    def _complete_command(
        self, task: ScsiTask, response: int, status: int, flags: int, residual: int, sense: bytes
    ) -> None:
        del self._tasks[task.itt]
        task.response = response
        task.status = status
        task.sense_data = sense
        if flags & w.RESIDUAL_UNDERFLOW and flags & w.RESIDUAL_OVERFLOW:
            task.error = RemoteProtocolError(
                "the target reported both residual overflow and underflow",
                reject_reason=RejectReason.INVALID_PDU_FIELD,
            )
        elif flags & w.RESIDUAL_UNDERFLOW:
            task.residual = residual
        elif flags & w.RESIDUAL_OVERFLOW:
            task.residual = -residual
        if task.error is None and response != 0:
            task.error = RemoteProtocolError(
                f"target failure (iSCSI response 0x{response:02x}) for command 0x{task.cdb[0]:02x}",
                reject_reason=None,
            )
        if task.error is None and task.read_view is not None and status == 0:
            # Never hand out a buffer with holes as good data (RFC 7143 §11.4.5).
            if task.residual > task.expected_length:
                task.error = RemoteProtocolError(
                    f"residual underflow {task.residual} exceeds the expected "
                    f"length {task.expected_length}",
                    reject_reason=RejectReason.INVALID_PDU_FIELD,
                )
            elif task.received != task.transferred:
                task.error = RemoteProtocolError(
                    f"the target reported {task.transferred} bytes read but sent {task.received}",
                    reject_reason=RejectReason.PROTOCOL_ERROR,
                )
        self._finish(task)

    def _finish(self, request: _Request) -> None:
        request.done = True
        callback = request.callback
        if callback is not None:
            callback(request)

    def _r2t(self, fields: tuple[int, ...]) -> None:
        itt = fields[w.ITT]
        task = self._tasks.get(itt)
        if task is None or task.write_view is None:
            raise RemoteProtocolError(
                f"R2T for ITT 0x{itt:08x}, which is no outstanding write",
                reject_reason=RejectReason.INVALID_PDU_FIELD,
            )
        self.state.update_from_response(None, fields[w.EXPCMDSN], fields[w.MAXCMDSN])
        ttt = fields[w.TTT]
        offset = fields[w.OFFSET40]
        length = fields[w.WORD44]
        if ttt == RESERVED_TAG:
            raise RemoteProtocolError(
                "R2T with the reserved Target Transfer Tag",
                reject_reason=RejectReason.INVALID_PDU_FIELD,
            )
        if fields[w.SN36] != task._r2tsn:
            raise RemoteProtocolError(
                f"R2TSN {fields[w.SN36]} where {task._r2tsn} was due",
                reject_reason=RejectReason.PROTOCOL_ERROR,
            )
        if not 0 < length <= self.params.max_burst_length or (
            offset + length > task.expected_length
        ):
            raise RemoteProtocolError(
                f"R2T for {length} bytes at offset {offset} does not fit the "
                f"{task.expected_length}-byte transfer (MaxBurstLength "
                f"{self.params.max_burst_length})",
                reject_reason=RejectReason.INVALID_PDU_FIELD,
            )
        task._r2tsn += 1
        self._send_data_out(task, ttt, offset, length)

    def _nop_in(self, fields: tuple[int, ...], data: bytes) -> None:
        itt = fields[w.ITT]
        if itt == RESERVED_TAG:
            # Unsolicited: carries the next StatSN without advancing it (§11.19).
            self.state.update_from_response(None, fields[w.EXPCMDSN], fields[w.MAXCMDSN])
            ttt = fields[w.TTT]
            if ttt != RESERVED_TAG:
                self._emit_pdu(
                    NopOut(
                        immediate=True,
                        lun=fields[w.LUN],
                        itt=RESERVED_TAG,
                        ttt=ttt,
                        cmdsn=self.state.cmdsn,
                        expstatsn=self.state.expstatsn,
                        data=data,
                    )
                )
            return
        request = self._answered(fields, PingTask, "NOP-In", "ping")
        if data != request.data:
            request.error = RemoteProtocolError(
                "NOP-In did not echo the ping data", reject_reason=RejectReason.PROTOCOL_ERROR
            )
        if request is self._keepalive:
            self._keepalive = None
        self._finish(request)

    def _answered(self, fields: tuple[int, ...], kind: type[_T], pdu: str, what: str) -> _T:
        """The outstanding ``kind`` request a response answers (by ITT), no longer
        outstanding; the response's sequence numbers applied."""
        itt = fields[w.ITT]
        request = self._others.get(itt)
        if not isinstance(request, kind):
            raise RemoteProtocolError(
                f"{pdu} for ITT 0x{itt:08x}, which is no outstanding {what}",
                reject_reason=RejectReason.INVALID_PDU_FIELD,
            )
        del self._others[itt]
        self.state.update_from_response(fields[w.STATSN], fields[w.EXPCMDSN], fields[w.MAXCMDSN])
        return request

    def _tmf_response(self, fields: tuple[int, ...]) -> None:
        request = self._answered(fields, TmfTask, "Task Management Response", "request")
        request.response = fields[w.BYTE2]
        if request.response_means_done():
            self._tasks_ended_by(request)
            self._finish(request)
        elif request.escalates:
            self._escalate(request, f"answered {_tmf_answer(request.response)}")
        else:
            self._finish(request)

    def _tasks_ended_by(self, tmf: TmfTask) -> None:
        """Complete the commands a successful TMF ended: the target will not answer them."""
        function = tmf.function
        if function == TmfFunction.ABORT_TASK:
            victims = [tmf.referenced] if tmf.referenced is not None else []
        elif function in (TmfFunction.ABORT_TASK_SET, TmfFunction.LOGICAL_UNIT_RESET):
            victims = [t for t in self._tasks.values() if t.lun == tmf.lun]
        elif function in (TmfFunction.TARGET_WARM_RESET, TmfFunction.TARGET_COLD_RESET):
            victims = list(self._tasks.values())
        else:
            victims = []
        name = function.name.replace("_", " ")
        for task in victims:
            if task is None or self._tasks.pop(task.itt, None) is None:
                continue
            if task.error is None:
                task.error = CommandTimeoutError(
                    f"command 0x{task.cdb[0]:02x} (ITT 0x{task.itt:08x}) ended by {name}"
                )
            self._finish(task)

    def _logout_response(self, fields: tuple[int, ...]) -> None:
        request = self._answered(fields, LogoutTask, "Logout Response", "logout")
        response = fields[w.BYTE2]
        if response != LogoutResult.SUCCESS:
            try:
                why = LogoutResult(response).name.lower().replace("_", " ")
            except ValueError:
                why = f"response {response}"
            request.error = LogoutError(f"target refused the logout: {why}")
        request.time2wait = fields[w.OFFSET40] >> 16  # bytes 40-41, then Time2Retain
        request.time2retain = fields[w.OFFSET40] & 0xFFFF
        self.phase = _CLOSED
        leftovers = list(self._tasks.values()) + list(self._others.values())
        self._tasks.clear()
        self._others.clear()
        for left in leftovers:
            left.error = ConnectionFailedError("the session logged out")
        self._finish(request)
        for left in leftovers:
            self._finish(left)

    def _async_message(self, fields: tuple[int, ...], data: bytes) -> None:
        message = self._decode(fields, data)
        assert isinstance(message, AsyncMessage)
        self.state.update_from_response(message.statsn, message.expcmdsn, message.maxcmdsn)
        event = message.async_event
        if event == AsyncEvent.LOGOUT_REQUEST:
            self._events.append(LogoutRequested(message.parameter3))
        elif event in (AsyncEvent.CONNECTION_DROP, AsyncEvent.SESSION_DROP):
            what = "connection" if event == AsyncEvent.CONNECTION_DROP else "session"
            self._fail(
                TransportError(f"the target is dropping the {what}"),
                time2wait=message.parameter2,
                time2retain=message.parameter3,
            )
        elif event == AsyncEvent.NEGOTIATION_REQUEST:
            self._renegotiate()
        else:
            sense = b""
            if len(data) >= 2:
                length = int.from_bytes(data[:2], "big")
                sense = data[2 : 2 + length]
            self._events.append(
                AsyncEventReceived(
                    event,
                    message.lun,
                    (message.parameter1, message.parameter2, message.parameter3),
                    sense,
                )
            )

    def _renegotiate(self, ttt: int = RESERVED_TAG) -> None:
        """Answer AsyncEvent 4 with a Text Request re-declaring what we receive (§11.9.1);
        a continuation keeps the sequence's ITT (§11.10.4)."""
        itt = self._text_itt if ttt != RESERVED_TAG and self._text_itt is not None else None
        if itt is None:
            itt = self._free_itt()
        self._text_itt = itt
        offer = b""
        if ttt == RESERVED_TAG:
            offer = encode_text([("MaxRecvDataSegmentLength", str(self._max_recv))])
        self._emit_pdu(
            TextRequest(
                immediate=True,
                final=True,
                itt=itt,
                ttt=ttt,
                cmdsn=self.state.cmdsn,
                expstatsn=self.state.expstatsn,
                data=offer,
            )
        )

    def _text_response(self, fields: tuple[int, ...], data: bytes) -> None:
        if fields[w.ITT] != self._text_itt:
            raise RemoteProtocolError(
                f"Text Response for ITT 0x{fields[w.ITT]:08x}, which is no outstanding request",
                reject_reason=RejectReason.INVALID_PDU_FIELD,
            )
        self.state.update_from_response(fields[w.STATSN], fields[w.EXPCMDSN], fields[w.MAXCMDSN])
        for key, value in decode_text(data):
            if key == "MaxRecvDataSegmentLength" and value.isascii() and value.isdigit():
                self._max_xmit = max(512, min(int(value), 0xFFFFFF))
        if fields[w.FLAGS] & w.F_FINAL:
            self._text_itt = None
            self._events.append(ParametersRenegotiated(self._max_xmit))
        else:
            self._renegotiate(fields[w.TTT])

    def _reject(self, fields: tuple[int, ...], data: bytes) -> None:
        message = self._decode(fields, data)
        assert isinstance(message, Reject)
        self.state.update_from_response(message.statsn, message.expcmdsn, message.maxcmdsn)
        try:
            reason = RejectReason(message.reason).name.lower().replace("_", " ")
        except ValueError:
            reason = f"reason 0x{message.reason:02x}"
        if len(data) < _BHS:
            raise RemoteProtocolError(
                f"Reject ({reason}) without the rejected header",
                reject_reason=RejectReason.INVALID_PDU_FIELD,
            )
        itt = int.from_bytes(data[16:20], "big")
        error = RemoteProtocolError(
            f"the target rejected a PDU (opcode 0x{data[0] & 0x3F:02x}): {reason}",
            reject_reason=message.reason,
        )
        task = self._tasks.pop(itt, None)
        if task is not None:
            task.error = error
            self._finish(task)
            return
        request = self._others.pop(itt, None)
        if request is not None:
            if request is self._keepalive:
                self._keepalive = None
            request.error = error
            self._finish(request)
            if isinstance(request, LogoutTask):
                self.phase = _ACTIVE
            return
        if message.reason == RejectReason.PROTOCOL_ERROR:
            raise error

    def _decode(self, fields: tuple[int, ...], data: bytes) -> object:
        """The general codec's dataclass for a rarely seen PDU (Async, Reject)."""
        header = bytearray(w.TARGET_BHS.pack(*fields))
        header[4] = 0  # any AHS was read and dropped already
        padded = data + w.PADS[-len(data) & 3]
        try:
            return decode_pdu(bytes(header) + padded)
        except (ValueError, IndexError) as exc:
            raise RemoteProtocolError(
                f"malformed PDU: {exc}", reject_reason=RejectReason.INVALID_PDU_FIELD
            ) from exc

    # -- failing ---------------------------------------------------------------------------

    def _fail(self, cause: IscsiError, *, time2wait: int = 0, time2retain: int = 0) -> None:
        if self.phase in (_FAILED, _CLOSED):
            return
        self.phase = _FAILED
        self.error = cause
        self._buf = None
        self._pos = self._start = self._end = 0
        self._out.clear()
        error = ConnectionFailedError(f"connection failed: {cause}")
        error.__cause__ = cause
        requests: list[_Request] = [
            *self._tasks.values(),
            *self._queue,
            *self._others.values(),
        ]
        self._tasks.clear()
        self._queue.clear()
        self._others.clear()
        self._keepalive = None
        self._events.append(ConnectionFailed(error, time2wait, time2retain))
        for request in requests:
            request.error = error
        for request in requests:
            self._finish(request)

    # -- timers ----------------------------------------------------------------------------

    def get_timer(self) -> float | None:
        """When :meth:`handle_timer` should next run (same clock as its ``now``)."""
        if self.closed:
            return None
        if self._now is None:
            return 0.0
        return self._now + self.timers.tick

    def handle_timer(self, now: float) -> None:
        """Run keepalive, command timeouts and TMF escalation as of ``now`` (seconds)."""
        first = self._now is None
        self._now = now
        if self._activity or first:
            self._last_rx = now
            self._activity = False
        if self.closed:
            return
        t = self.timers
        try:
            self._keepalive_timer(now, t)
            self._request_timers(now, t)
        except IscsiError as exc:
            self._fail(exc)

    def _keepalive_timer(self, now: float, t: Timers) -> None:
        if not t.noop_out_interval or self.phase != _ACTIVE:
            return
        ping = self._keepalive
        if ping is not None:
            if self._last_rx <= self._keepalive_sent and now - self._keepalive_sent >= (
                t.noop_out_timeout or t.noop_out_interval
            ):
                raise PduTimeoutError(
                    f"ping timeout of {t.noop_out_timeout:g} s expired "
                    f"(nothing received for {now - self._last_rx:.1f} s)"
                )
            return
        if now - self._last_rx >= t.noop_out_interval:
            ping = PingTask()
            self._keepalive = ping
            self._keepalive_sent = now
            self._send_ping(ping)

    def _request_timers(self, now: float, t: Timers) -> None:
        if t.command_timeout:
            for task in list(self._tasks.values()):
                if task.started is None:
                    task.started = now
                elif now - task.started >= t.command_timeout and not self._aborting(task):
                    abort = TmfTask(TmfFunction.ABORT_TASK, referenced=task)
                    abort.escalates = True
                    self._send_tmf(abort)
            self._queue_timers(now, t.command_timeout)
        for request in list(self._others.values()):
            if request.started is None:
                request.started = now
                continue
            age = now - request.started
            if isinstance(request, TmfTask):
                limit = _tmf_timeout(request.function, t)
                if limit and age >= limit:
                    self._tmf_timed_out(request)
            elif isinstance(request, PingTask):
                if request is not self._keepalive and age >= (t.noop_out_timeout or 30.0):
                    del self._others[request.itt]
                    request.error = PduTimeoutError(
                        f"no NOP-In answered the ping within {age:.1f} s"
                    )
                    self._finish(request)
            elif isinstance(request, LogoutTask) and t.logout_timeout and age >= t.logout_timeout:
                raise PduTimeoutError(f"no Logout Response within {t.logout_timeout:g} s")

    def _queue_timers(self, now: float, limit: float) -> None:
        """Commands the window or queue depth held back too long fail unsent."""
        expired = []
        for task in self._queue:
            if task.started is None:
                task.started = now
            elif now - task.started >= limit:
                expired.append(task)
        for task in expired:
            self._queue.remove(task)
            task.started = None
            task.error = CommandTimeoutError(
                f"command 0x{task.cdb[0]:02x} could not be sent within {limit:g} s "
                "(the target kept its command window closed)"
            )
            self._finish(task)

    def _aborting(self, task: ScsiTask) -> bool:
        """Whether a task management request already in flight covers ``task``."""
        for request in self._others.values():
            if not isinstance(request, TmfTask):
                continue
            function = request.function
            if function in (TmfFunction.TARGET_WARM_RESET, TmfFunction.TARGET_COLD_RESET):
                return True
            if request.referenced is task:
                return True
            if function != TmfFunction.ABORT_TASK and request.lun == task.lun:
                return True
        return False

    def _tmf_timed_out(self, tmf: TmfTask) -> None:
        del self._others[tmf.itt]
        if tmf.escalates:
            self._escalate(tmf, "timed out", registered=False)
            return
        name = tmf.function.name.replace("_", " ")
        tmf.error = TaskManagementError(f"{name} timed out")
        self._finish(tmf)

    def _escalate(self, tmf: TmfTask, why: str, *, registered: bool = True) -> None:
        """The connection's own recovery, as the kernel's SCSI error handler does it:
        abort → LUN reset → target reset → drop the connection.  ``tmf`` failed (timed
        out, or the target refused it); send the next step."""
        if registered:
            self._others.pop(tmf.itt, None)
        name = tmf.function.name.replace("_", " ")
        tmf.error = TaskManagementError(f"{name} {why}", response=tmf.response)
        self._finish(tmf)
        if tmf.function == TmfFunction.ABORT_TASK:
            step = TmfTask(TmfFunction.LOGICAL_UNIT_RESET, lun=tmf.lun)
        elif tmf.function in (TmfFunction.ABORT_TASK_SET, TmfFunction.LOGICAL_UNIT_RESET):
            step = TmfTask(TmfFunction.TARGET_WARM_RESET)
        else:
            raise PduTimeoutError(f"{name} {why}; giving up on the connection")
        step.escalates = True
        self._send_tmf(step)


def _tmf_answer(response: int) -> str:
    try:
        return TmfResponse(response).name.lower().replace("_", " ")
    except ValueError:
        return f"response {response}"


def _tmf_timeout(function: TmfFunction, t: Timers) -> float:
    if function in (TmfFunction.ABORT_TASK, TmfFunction.ABORT_TASK_SET):
        return t.abort_timeout
    if function == TmfFunction.LOGICAL_UNIT_RESET:
        return t.lu_reset_timeout
    return t.tgt_reset_timeout


__all__ = [
    "AsyncEventReceived",
    "ConnectionFailed",
    "ConnectionParams",
    "Event",
    "FullFeatureConnection",
    "LogoutRequested",
    "ParametersRenegotiated",
    "Timers",
]
