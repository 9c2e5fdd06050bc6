"""The state of a Full Feature Phase connection and what every part of it shares.

:class:`_ConnectionCore` is the base of :class:`~iscsikit.proto.ffp.FullFeatureConnection`:
its ``__init__`` declares all of the connection's state in one place, and it owns what
every concern needs - the send list and ITT allocation, completing requests, the events
queue, and failing the connection.  The concerns themselves live beside it, each a
subclass: the command path (:mod:`.ffp_commands`), control requests and timers
(:mod:`.ffp_control`), target-initiated renegotiation (:mod:`.ffp_renegotiation`) and
the receive side that routes PDUs to them (:mod:`.ffp_receive`).  Not used alone.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import Final, TypeVar

from iscsikit.errors import (
    ConnectionFailedError,
    DigestError,
    IscsiError,
    LocalProtocolError,
    RemoteProtocolError,
    TransportError,
)
from iscsikit.proto import ffp_wire as w
from iscsikit.proto.constants import RejectReason
from iscsikit.proto.digest import crc32c
from iscsikit.proto.ffp_events import ConnectionFailed, Event
from iscsikit.proto.ffp_params import ConnectionParams, Timers
from iscsikit.proto.ffp_stats import ConnectionStats
from iscsikit.proto.pdu import (
    LogoutRequest,
    NopOut,
    TaskMgmtRequest,
    TextRequest,
    decode_pdu,
    encode_pdu,
)
from iscsikit.proto.session import SessionState
from iscsikit.proto.task import PingTask, Request, ScsiTask

_MASK: Final = 0xFFFFFFFF
_T = TypeVar("_T", bound=Request)
_HALF: Final = 0x80000000
_BHS: Final = 48
#: The receive scratch buffer: one ``recv_into`` may bring this much, many PDUs' worth.
_RX_SIZE: Final = 256 * 1024

# The connection's phase: ACTIVE until a logout is sent (LOGGING_OUT), then CLOSED on its
# response; FAILED from any phase when the connection breaks.  FAILED and CLOSED are final.
_ACTIVE: Final = "active"
_LOGGING_OUT: Final = "logging out"
_FAILED: Final = "failed"
_CLOSED: Final = "closed"


def _idle() -> None:
    """``_step`` while nothing is received directly (``_buf`` is None: never called)."""
    raise AssertionError("no direct receive in progress")


class _ConnectionCore:
    """The shared state and helpers of :class:`~iscsikit.proto.ffp.FullFeatureConnection`."""

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
        #: What crossed the connection (``iscsiadm -m session -s``); read, never replace.
        self.stats = ConnectionStats()
        self._hd = params.header_digest
        self._dd = params.data_digest
        self._max_recv = params.max_recv_data_segment_length
        self._max_xmit = params.max_xmit_data_segment_length
        # Outstanding requests by ITT, and commands waiting for the window / queue depth.
        self._tasks: dict[int, ScsiTask] = {}
        self._others: dict[int, Request] = {}
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
        self._step: Callable[[], None] = _idle
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

    # -- the public fast path: what an I/O layer polls ---------------------------------

    def data_to_send(self) -> list[bytes | memoryview]:
        """The buffers to write, in order; the caller owns the list from now on."""
        out = self._out
        self._out = []
        return out

    @property
    def wants_write(self) -> bool:
        """Whether :meth:`data_to_send` has something (cheaper than calling it)."""
        return bool(self._out)

    @property
    def has_events(self) -> bool:
        """Whether :meth:`next_event` has something (cheaper than calling it)."""
        return bool(self._events)

    def next_event(self) -> Event | None:
        """The oldest notification not yet taken, or None."""
        return self._events.popleft() if self._events else None

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

    # -- shared helpers --------------------------------------------------------------------

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

    def _register(self, request: Request) -> int:
        itt = self._free_itt()
        request.itt = itt
        request.started = self._now
        self._others[itt] = request
        return itt

    def _finish(self, request: Request) -> None:
        request.done = True
        callback = request.callback
        if callback is not None:
            callback(request)

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
        if isinstance(cause, DigestError):
            self.stats.digest_err += 1
        self._buf = None
        self._pos = self._start = self._end = 0
        self._out.clear()
        error = ConnectionFailedError(f"connection failed: {cause}")
        error.__cause__ = cause
        requests: list[Request] = [
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


__all__: list[str] = []
