"""A TCP proxy that can hold a connection's bytes and deliver them late (tests only).

:class:`StallProxy` listens on a loopback port and forwards each accepted connection
to one upstream address (a tgtd portal), both ways, in two threads per connection.
On command it makes the network misbehave the way a multipath layer must survive:

* :meth:`hold` - stop forwarding the initiator's bytes of the current connections to
  the target and keep them in a buffer (a command "still in the network");
* :meth:`cut` - close the initiator's side of those connections (the initiator sees
  its connection fail) while the upstream connection to the target stays open;
* :meth:`release` - write the held bytes into the still-open upstream connection:
  a *late* delivery of whatever the initiator sent before the cut (a stale write);
* :meth:`refuse` - close new connections at once (the path cannot come back);
* :meth:`stall_down` (or ``stall_down_after=`` for every new connection) - forward only
  N more bytes from the target to the initiator, then drop the rest while both sockets
  stay open: a peer that goes silent in the middle of a message (a PDU header, a data
  segment).  :meth:`turns` tells where each exchange began (the target's byte count
  when the initiator spoke again), so a test can aim N at a given message without the
  proxy knowing what a PDU is.

:class:`SilentPeer` is the proxy's counterpart without a target behind it: a raw server
that runs a short script on each connection (read a request, send *part* of an answer)
and then stays silent with the socket open; :func:`answer_part` makes the usual script.

Everything is bounded: sockets have timeouts, :meth:`stop` closes every socket and joins
every thread.  No iSCSI knowledge here: bytes only (a peer that must not share the codec
under test builds its bytes with :mod:`struct`).
"""

from __future__ import annotations

import contextlib
import os
import select
import socket
import threading
from collections.abc import Callable
from types import TracebackType

__all__ = ["SilentPeer", "StallProxy", "answer_part", "recv_exact", "recv_some"]

_CHUNK = 1 << 16


class _Link:
    """One proxied connection: the initiator's socket and the upstream one."""

    def __init__(self, proxy: StallProxy, client: socket.socket, upstream: socket.socket) -> None:
        self.proxy = proxy
        self.client = client
        self.upstream = upstream
        self.holding = False
        self.cut = False
        self.held = bytearray()
        self.upstream_closed = False
        #: Target->initiator bytes still to forward before going silent (None: all).
        self.down_budget: int | None = proxy.stall_down_after
        #: Target->initiator bytes forwarded so far.
        self.down_bytes = 0
        #: ``down_bytes`` each time the initiator sent again after the target had spoken.
        self.turns: list[int] = []
        self.threads = [
            threading.Thread(target=self._up, daemon=True, name="stallproxy-up"),
            threading.Thread(target=self._down, daemon=True, name="stallproxy-down"),
        ]

    def start(self) -> None:
        for thread in self.threads:
            thread.start()

    def _up(self) -> None:
        """Initiator -> target, unless held."""
        while True:
            try:
                data = self.client.recv(_CHUNK)
            except OSError:
                return
            if not data:
                if not self.holding:
                    with contextlib.suppress(OSError):
                        self.upstream.shutdown(socket.SHUT_WR)
                return
            with self.proxy.lock:
                if not self.turns or self.turns[-1] != self.down_bytes:
                    self.turns.append(self.down_bytes)
                if self.holding:
                    self.held += data
                    continue
            try:
                self.upstream.sendall(data)
            except OSError:
                return

    def _down(self) -> None:
        """Target -> initiator (dropped once the initiator's side is cut)."""
        while True:
            try:
                data = self.upstream.recv(_CHUNK)
            except OSError:
                data = b""
            if not data:
                with self.proxy.lock:
                    self.upstream_closed = True
                    # A stalled link stays silent: the target's close does not get through.
                    silent = self.down_budget == 0
                if not self.cut and not silent:
                    with contextlib.suppress(OSError):
                        self.client.shutdown(socket.SHUT_RDWR)
                return
            if self.cut:
                continue
            with self.proxy.lock:
                if self.down_budget is not None:
                    data = data[: self.down_budget]
                    self.down_budget -= len(data)
                self.down_bytes += len(data)
            if not data:
                continue  # stalled: the target's bytes go nowhere, the sockets stay open
            try:
                self.client.sendall(data)
            except OSError:
                continue

    def target_closed(self) -> bool:
        """Whether the target closed its side (its FIN arrived, read or not yet)."""
        if self.upstream_closed:
            return True
        try:
            readable, _, _ = select.select([self.upstream], [], [], 0)
            if not readable:
                return False
            return self.upstream.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) == b""
        except BlockingIOError:
            return False
        except OSError:
            return True

    def close(self) -> None:
        for sock in (self.client, self.upstream):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()
        for thread in self.threads:
            thread.join(5)


class StallProxy:
    """Forward ``127.0.0.1:<port>`` to ``upstream`` (see the module docstring)."""

    def __init__(
        self, upstream: str, *, host: str = "127.0.0.1", stall_down_after: int | None = None
    ) -> None:
        up_host, up_port = upstream.rsplit(":", 1)
        self.upstream = (up_host, int(up_port))
        self.lock = threading.Lock()
        self._listener = socket.create_server((host, 0))
        self._listener.settimeout(0.2)
        self._links: list[_Link] = []
        self._refusing = False
        #: Target->initiator bytes each new connection forwards before going silent.
        self.stall_down_after = stall_down_after
        self._stopping = threading.Event()
        self._acceptor = threading.Thread(target=self._accept, daemon=True, name="stallproxy")
        #: Connections accepted and forwarded, and refused.
        self.accepted = 0
        self.refused = 0

    @property
    def portal(self) -> str:
        host, port = self._listener.getsockname()[:2]
        return f"{host}:{port}"

    def start(self) -> StallProxy:
        self._acceptor.start()
        return self

    def _accept(self) -> None:
        while not self._stopping.is_set():
            try:
                client, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            if self._refusing:
                self.refused += 1
                client.close()
                continue
            try:
                upstream = socket.create_connection(self.upstream, timeout=5)
            except OSError:
                client.close()
                continue
            client.settimeout(None)
            upstream.settimeout(None)
            link = _Link(self, client, upstream)
            with self.lock:
                self._links.append(link)
                self.accepted += 1
            link.start()

    # -- commands ------------------------------------------------------------------------

    def hold(self) -> None:
        """Keep the initiator's further bytes of the open connections (no forwarding)."""
        with self.lock:
            for link in self._links:
                if not link.cut:
                    link.holding = True

    def held(self) -> int:
        """Bytes held so far (not yet released)."""
        with self.lock:
            return sum(len(link.held) for link in self._links)

    def cut(self) -> int:
        """Close the initiator's side of the held connections (their upstream stays
        open); how many were cut."""
        cut = 0
        with self.lock:
            links = [link for link in self._links if link.holding and not link.cut]
            for link in links:
                link.cut = True
        for link in links:
            with contextlib.suppress(OSError):
                link.client.shutdown(socket.SHUT_RDWR)
            cut += 1
        return cut

    def release(self) -> tuple[int, int]:
        """Write the held bytes into their upstream connections; (bytes delivered,
        bytes the target no longer took: its side was closed)."""
        delivered = dropped = 0
        with self.lock:
            links = [link for link in self._links if link.held]
            batches = [(link, bytes(link.held), link.target_closed()) for link in links]
            for link in links:
                link.held.clear()
        for link, data, closed in batches:
            try:
                if closed:
                    raise ConnectionResetError("the target closed it")
                link.upstream.sendall(data)
                delivered += len(data)
            except OSError:
                dropped += len(data)
        return delivered, dropped

    def stall_down(self, after: int = 0) -> None:
        """On the open connections, forward ``after`` more target->initiator bytes, then
        none: the initiator sees its peer stop in the middle of whatever it was sending.
        Its own bytes still reach the target."""
        with self.lock:
            for link in self._links:
                link.down_budget = after

    def turns(self, index: int = -1) -> list[int]:
        """Where each exchange of connection ``index`` (default: the newest) began: the
        target->initiator byte count each time the initiator sent again after hearing
        from the target (the first is 0)."""
        with self.lock:
            return list(self._links[index].turns)

    def refuse(self, refusing: bool = True) -> None:
        """Close new connections at once (True) or forward them again (False)."""
        self._refusing = refusing

    def stop(self) -> None:
        """Close every socket and join every thread; idempotent."""
        self._stopping.set()
        self._listener.close()
        if self._acceptor.is_alive():
            self._acceptor.join(5)
        with self.lock:
            links, self._links = self._links, []
        for link in links:
            link.close()

    def __enter__(self) -> StallProxy:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


# -- a peer that goes silent ----------------------------------------------------------------


def recv_some(sock: socket.socket, at_least: int = 1) -> bytes:
    """At least ``at_least`` bytes from ``sock`` (fewer if it closes; maybe more)."""
    data = b""
    while len(data) < at_least:
        chunk = sock.recv(_CHUNK)
        if not chunk:
            break
        data += chunk
    return data


def recv_exact(sock: socket.socket, n: int) -> bytes:
    """Exactly ``n`` bytes from ``sock``; :class:`ConnectionError` if it closes first."""
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise ConnectionError(f"closed after {len(data)} of {n} bytes")
        data += chunk
    return data


class SilentPeer:
    """A server that runs ``script(sock)`` on each accepted connection and then keeps the
    socket open and silent until :meth:`stop` (TCP on ``127.0.0.1``, or a unix socket at
    ``unix_path``).  Each script runs in its own thread with a 10 s socket timeout; an
    exception other than :class:`OSError` (the client leaving first) is raised again by
    :meth:`stop` as an :class:`AssertionError`."""

    def __init__(
        self,
        script: Callable[[socket.socket], None],
        *,
        unix_path: str | os.PathLike[str] | None = None,
    ) -> None:
        self.script = script
        if unix_path is None:
            self._listener = socket.create_server(("127.0.0.1", 0))
        else:
            self._listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            self._listener.bind(os.fspath(unix_path))
            self._listener.listen(8)
        self._listener.settimeout(0.2)
        self._conns: list[socket.socket] = []
        self._errors: list[BaseException] = []
        self._stopping = threading.Event()
        self._threads = [threading.Thread(target=self._accept, daemon=True, name="silentpeer")]
        self._threads[0].start()

    @property
    def portal(self) -> str:
        """``host:port`` of a TCP peer."""
        host, port = self._listener.getsockname()[:2]
        return f"{host}:{port}"

    def _accept(self) -> None:
        while not self._stopping.is_set():
            try:
                conn, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            conn.settimeout(10)
            self._conns.append(conn)
            thread = threading.Thread(target=self._run, args=(conn,), daemon=True)
            self._threads.append(thread)
            thread.start()

    def _run(self, conn: socket.socket) -> None:
        try:
            self.script(conn)
        except OSError:
            pass  # the client gave up first
        except BaseException as exc:  # reported by stop()
            self._errors.append(exc)

    def stop(self) -> None:
        """Close the listener and every connection, join the threads; idempotent."""
        self._stopping.set()
        self._listener.close()
        for conn in self._conns:
            conn.close()
        for thread in self._threads:
            thread.join(5)
        if self._errors:
            raise AssertionError(f"a SilentPeer script failed: {self._errors!r}")

    def __enter__(self) -> SilentPeer:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def answer_part(part: bytes, *, after: int = 1) -> Callable[[socket.socket], None]:
    """A :class:`SilentPeer` script: read at least ``after`` bytes of a request, send
    ``part``, then nothing more."""

    def script(sock: socket.socket) -> None:
        recv_some(sock, after)
        sock.sendall(part)

    return script
