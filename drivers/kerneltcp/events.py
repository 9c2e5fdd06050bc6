"""The kernel's async events for every session of this process, read by one thread.

iscsid reads CONN_ERROR (and the other events) on its one netlink socket.  Here a
:class:`KernelEvents` reader owns a NETLINK_ISCSI socket of its own, subscribed to the
events group, and hands each event to the callback registered for its session id, from
its thread.

**Stale events.** A CONN_ERROR about a connection that was since replaced (the failed
login before a successful one, the old socket of a recovered session) must not start a
new recovery.  Netlink delivers a socket's messages in order, so :meth:`barrier` sends a
request the kernel refuses at once (a STOP_CONN on transport handle 0: -EINVAL, no side
effect) and waits until the reader has read its reply: every event the reader read
before that reply is older than the barrier.  Each event is handed over with the
*generation* the reader was in when it read it; a session takes a barrier after it
stopped the old connection and before it binds the new one, and keeps the generation
:meth:`barrier` returns: an event with a smaller generation is about a connection it no
longer has.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections import deque
from collections.abc import Callable

from iscsikit.errors import TransportTimeoutError
from iscsikit.netlink import KernelEvent, NetlinkRequestError, RequestFailed, StopConnFlag
from iscsikit.netlink.messages import StopConn

from .netlink import NetlinkChannel

__all__ = ["EventCallback", "KernelEvents", "shared_events"]

log = logging.getLogger("iscsikit.kerneltcp")

#: ``callback(event, generation)``, called from the reader's thread.
EventCallback = Callable[[KernelEvent, int], None]


class KernelEvents:
    """One reader thread and its socket (see the module docstring)."""

    def __init__(self, channel: NetlinkChannel | None = None) -> None:
        self._channel = channel or NetlinkChannel()
        self._lock = threading.Lock()
        self._subscribers: dict[int, EventCallback] = {}
        self._generation = 0
        self._barriers: deque[threading.Event] = deque()
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._run, name="kernel-events", daemon=True)
        self._thread.start()

    # -- what sessions call ----------------------------------------------------------------

    def subscribe(self, sid: int, callback: EventCallback) -> None:
        with self._lock:
            self._subscribers[sid] = callback

    def unsubscribe(self, sid: int) -> None:
        with self._lock:
            self._subscribers.pop(sid, None)

    def barrier(self, timeout: float = 10.0) -> int:
        """Wait until every event queued before now was read; the new generation."""
        done = threading.Event()
        with self._lock:
            self._barriers.append(done)
            # Sent under the lock: replies come back in the order the barriers queue.
            self._channel.sock.send(
                StopConn(transport_handle=0, sid=0, cid=0, flag=StopConnFlag.RECOVER).encode(
                    pid=self._channel.pid, seq=0
                )
            )
        if not done.wait(timeout):
            raise TransportTimeoutError("the kernel's event stream did not answer a barrier")
        with self._lock:
            return self._generation

    @property
    def alive(self) -> bool:
        """Whether the reader still reads (it ends when closed or its socket fails)."""
        return self._thread.is_alive()

    def close(self) -> None:
        self._stopped.set()
        with contextlib.suppress(OSError):
            self._channel.close()

    # -- the reader ------------------------------------------------------------------------

    def _run(self) -> None:
        while not self._stopped.is_set():
            try:
                item = self._channel.next_message(timeout=1.0)
            except (OSError, ValueError):
                if self._stopped.is_set():
                    return
                log.exception("kernel event socket failed")
                return
            except Exception:  # a datagram the codec refuses: log it, keep reading
                log.exception("undecodable kernel event")
                continue
            if item is None:
                continue
            if isinstance(item, RequestFailed | NetlinkRequestError):
                self._barrier_passed()
            elif isinstance(item, KernelEvent):
                self._dispatch(item)

    def _barrier_passed(self) -> None:
        with self._lock:
            self._generation += 1
            if self._barriers:
                self._barriers.popleft().set()

    def _dispatch(self, event: KernelEvent) -> None:
        sid = getattr(event, "sid", None)
        with self._lock:
            callback = self._subscribers.get(sid) if isinstance(sid, int) else None
            generation = self._generation
        if callback is None:
            return
        try:
            callback(event, generation)
        except Exception:
            log.exception("kernel event handler for session %s failed", sid)


_shared: dict[str, KernelEvents] = {}
_shared_lock = threading.Lock()


def shared_events() -> KernelEvents:
    """The process's reader, started on first use, and again when the last one ended
    (its socket failed): a dead reader would leave every later login waiting out its
    barrier, and no session would hear its events."""
    with _shared_lock:
        current = _shared.get("events")
        if current is None or not current.alive:
            if current is not None:
                current.close()
            _shared["events"] = KernelEvents()
        return _shared["events"]
