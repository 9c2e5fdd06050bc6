"""The blocking data path: a :class:`FullFeatureConnection` driven over a plain socket.

The calling thread runs the I/O itself - no event loop, no helper thread - which is
the cheapest way to move data in Python: each turn sends everything the machine has
queued in one ``sendmsg`` and receives once (``recv_into`` the machine's buffer: its
scratch buffer, many PDUs at a time, or the rest of a large read payload straight into
the caller's buffer).  Commands resubmitted from completion callbacks therefore go out
together, one ``sendmsg`` per batch of completions (:meth:`BlockingChannel.turn`).  The
socket stays in blocking mode with ``SO_RCVTIMEO`` set to the machine's timer tick, so
a quiet connection still wakes up to run keepalive and command timeouts without a
``poll`` per receive.

``busy_poll`` (seconds, 0 = off) trades CPU for latency: with commands in flight, each
receive first spins on a non-blocking ``recv`` for up to that long before it sleeps.  At
queue depth 1 the reply then meets a running thread with warm caches instead of a
wake-up (``iscsikit-perf --busy-poll``; bench/README.md has the figures).
"""

from __future__ import annotations

import contextlib
import errno
import socket
import struct
import time
from collections.abc import Callable

from iscsikit.errors import ConnectionFailedError, TransportError, TransportTimeoutError
from iscsikit.plugin.transport import CommandChannel
from iscsikit.proto.ffp import ConnectionFailed, Event, FullFeatureConnection, LogoutRequested
from iscsikit.proto.task import LogoutTask, PingTask, Request, ScsiTask, TmfTask

#: sendmsg takes at most IOV_MAX (1024 on Linux) buffers per call.
_IOV_CHUNK = 512


def _timeval(seconds: float) -> bytes:
    whole = int(seconds)
    return struct.pack("@ll", whole, int((seconds - whole) * 1_000_000))


class BlockingChannel(CommandChannel):
    """Commands over one connection, run by whichever thread calls :meth:`wait`."""

    def __init__(
        self,
        sock: socket.socket,
        machine: FullFeatureConnection,
        *,
        describe: str = "target",
        clock: Callable[[], float] = time.monotonic,
        on_event: Callable[[Event], None] | None = None,
    ) -> None:
        self.sock = sock
        self.machine = machine
        self.describe = describe
        self.clock = clock
        self.on_event = on_event
        self.logout_requested: int | None = None
        sock.settimeout(None)
        tick = machine.timers.tick
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, _timeval(tick))
        # A target that stops reading must not block us forever either.
        send_limit = max(machine.timers.command_timeout, machine.timers.noop_out_timeout, tick)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, _timeval(send_limit))
        self._next_timer = 0.0
        #: Spin this long (seconds) on a non-blocking receive before sleeping; 0: never.
        self.busy_poll = 0.0

    # -- CommandChannel --------------------------------------------------------------------

    def submit(self, task: ScsiTask) -> None:
        self.machine.submit(task)

    def wait(self, task: ScsiTask | None = None) -> None:
        machine = self.machine
        if task is None:
            before = machine.outstanding
            while machine.outstanding >= before and before and not machine.closed:
                self._turn()
            return
        while not task.done:
            if machine.closed and not task.done:
                raise ConnectionFailedError(f"connection to {self.describe} is closed")
            self._turn()

    def task_management(self, task: TmfTask) -> TmfTask:
        self.machine.task_management(task)
        self._run_until(task)
        return task

    def ping(self, task: PingTask) -> PingTask:
        self.machine.ping(task)
        self._run_until(task)
        return task

    def logout(self, task: LogoutTask) -> LogoutTask:
        self.machine.logout(task)
        self._run_until(task)
        return task

    def statistics(self) -> dict[str, int]:
        """The machine's counters (:class:`~iscsikit.proto.ffp.ConnectionStats`)."""
        return self.machine.stats.as_dict()

    @property
    def closed(self) -> bool:
        return self.machine.closed

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)
        self.sock.close()
        self.machine.connection_lost(TransportError("the connection was closed locally"))

    # -- the I/O loop ----------------------------------------------------------------------

    def _run_until(self, request: Request) -> None:
        while not request.done:
            if self.machine.closed:
                raise ConnectionFailedError(f"connection to {self.describe} is closed")
            self._turn()

    def turn(self) -> None:
        """One step of the I/O loop: for callers that drive completions by callback."""
        self._turn()

    def _turn(self) -> None:
        """Send what is pending, run due timers, receive once (bounded by the tick)."""
        machine = self.machine
        if machine.wants_write:
            self._flush()
        now = self.clock()
        if now >= self._next_timer:
            machine.handle_timer(now)
            self._next_timer = machine.get_timer() or (now + machine.timers.tick)
            if machine.wants_write:
                self._flush()
            self._drain_events()
        if machine.closed:
            self._drain_events()
            return
        try:
            buffers = machine.get_buffers()
            n = self._spin(buffers) if self.busy_poll and machine.outstanding else -1
            if n < 0:
                if len(buffers) == 1:
                    n = self.sock.recv_into(buffers[0])
                else:  # the rest of a large read payload, then the scratch buffer
                    n = self.sock.recvmsg_into(buffers)[0]
        except (BlockingIOError, TimeoutError):
            return  # SO_RCVTIMEO: time to look at the timers
        except InterruptedError:
            return
        except OSError as exc:
            machine.connection_lost(TransportError(f"connection to {self.describe} failed: {exc}"))
            self._drain_events()
            return
        if n:
            machine.buffer_updated(n)
            if machine.has_events:
                self._drain_events()
        else:
            machine.connection_lost(TransportError(f"connection closed by {self.describe}"))
            self._drain_events()

    def _spin(self, buffers: list[memoryview]) -> int:
        """Non-blocking receives for up to ``busy_poll`` seconds: bytes read, -1 if none."""
        sock = self.sock
        single = buffers[0] if len(buffers) == 1 else None
        clock = time.perf_counter
        deadline = clock() + self.busy_poll
        while True:
            try:
                if single is not None:
                    return sock.recv_into(single, 0, socket.MSG_DONTWAIT)
                return sock.recvmsg_into(buffers, 0, socket.MSG_DONTWAIT)[0]
            except BlockingIOError:
                if clock() >= deadline:
                    return -1

    def _flush(self) -> None:
        machine = self.machine
        bufs = machine.data_to_send()
        sock = self.sock
        while bufs:
            chunk = bufs if len(bufs) <= _IOV_CHUNK else bufs[:_IOV_CHUNK]
            try:
                sent = sock.sendmsg(chunk)
            except (BlockingIOError, TimeoutError):
                machine.connection_lost(
                    TransportTimeoutError(f"{self.describe} stopped reading: send timed out")
                )
                return
            except InterruptedError:
                continue
            except OSError as exc:
                why = errno.errorcode.get(exc.errno or 0, str(exc))
                machine.connection_lost(
                    TransportError(f"connection to {self.describe} failed: {why}")
                )
                return
            if sent == sum(map(len, chunk)):  # the usual case: all of it went out
                bufs = bufs[len(chunk) :] if chunk is not bufs else []
                continue
            # Drop what went out; keep the unsent tail of a partly sent buffer.
            i = 0
            while i < len(chunk) and sent >= len(chunk[i]):
                sent -= len(chunk[i])
                i += 1
            if i < len(chunk) and sent:
                chunk[i] = memoryview(chunk[i])[sent:]
            bufs = chunk[i:] + bufs[_IOV_CHUNK:]

    def _drain_events(self) -> None:
        machine = self.machine
        while (event := machine.next_event()) is not None:
            if isinstance(event, LogoutRequested):
                self.logout_requested = event.within
            elif isinstance(event, ConnectionFailed):
                with contextlib.suppress(OSError):
                    self.sock.shutdown(socket.SHUT_RDWR)
            if self.on_event is not None:
                self.on_event(event)


__all__ = ["BlockingChannel"]
