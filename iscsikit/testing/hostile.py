"""A scripted, possibly hostile, fake iSCSI target on loopback for tests.

:class:`ScriptedTarget` listens on a loopback port in a background thread and runs a
*behaviour* (a function taking the accepted socket) for every connection, each in its own
thread. It is how tests produce what real targets will not: silence, truncated or
malformed PDUs, abrupt closes and resets. The module works on raw bytes only and must not
import ``iscsikit.proto`` (it is the test *of* that code); a behaviour that needs real
PDUs builds them with :mod:`iscsikit.testing.rawpdu` (written from RFC 7143 apart from
the codec, which owns the BHS layout and :func:`pdu_length` re-exported here) or is
given them as bytes.

Nothing here can hang a test run: all threads are daemons, the listener polls a stop flag,
stop() closes every accepted socket so blocked reads return, and exceptions raised by a
behaviour are collected in :attr:`ScriptedTarget.errors` for the test to assert on. The
peer closing the connection (:class:`PeerClosed`) and errors caused by stop() itself are
normal ends, not errors.
"""

from __future__ import annotations

import contextlib
import socket
import struct
import threading
import time
from collections.abc import Callable
from types import TracebackType
from typing import Self

from iscsikit.testing.rawpdu import BHS_LEN, pdu_length

__all__ = [
    "BHS_LEN",
    "Behaviour",
    "PeerClosed",
    "ScriptedTarget",
    "close_immediately",
    "pdu_length",
    "read_pdu",
    "send_bytes",
    "silent",
]

#: A behaviour serves one accepted connection; the target closes the socket afterwards.
Behaviour = Callable[[socket.socket], None]


class PeerClosed(ConnectionError):
    """The other side closed the connection (EOF) before a whole PDU arrived."""


def _recv_exact(conn: socket.socket, n: int, deadline: float | None, have: bytes) -> bytes:
    buf = bytearray(have)
    while len(buf) < n:
        if deadline is not None:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"read {len(buf)} of {n} bytes before the timeout")
            conn.settimeout(remaining)
        else:
            conn.settimeout(None)
        chunk = conn.recv(n - len(buf))
        if not chunk:
            raise PeerClosed(f"connection closed after {len(buf)} of {n} bytes")
        buf += chunk
    return bytes(buf)


def read_pdu(
    conn: socket.socket,
    timeout: float | None = 5.0,
    *,
    header_digest: bool = False,
    data_digest: bool = False,
) -> bytes:
    """Read one whole PDU (BHS, AHS, padded data segment, and the digests if negotiated)
    from ``conn``; digests are read as bytes, not checked.

    Raises :class:`PeerClosed` on EOF and :class:`TimeoutError` if the whole PDU has not
    arrived within ``timeout`` seconds (None waits forever, until stop()).
    """
    deadline = None if timeout is None else time.monotonic() + timeout
    bhs = _recv_exact(conn, BHS_LEN, deadline, b"")
    length = pdu_length(bhs, header_digest=header_digest, data_digest=data_digest)
    return _recv_exact(conn, length, deadline, bhs)


def _drain(conn: socket.socket, record: list[bytes] | None) -> None:
    while True:
        pdu = read_pdu(conn, timeout=None)
        if record is not None:
            record.append(pdu)


def silent(*, record: list[bytes] | None = None) -> Behaviour:
    """Accept and read PDUs forever, never answer (for initiator timeout tests).

    Every PDU read is appended to ``record`` if given.
    """

    def behaviour(conn: socket.socket) -> None:
        _drain(conn, record)

    return behaviour


def send_bytes(
    data: bytes,
    *,
    read_first: bool = True,
    close: bool = False,
    record: list[bytes] | None = None,
) -> Behaviour:
    """Read one PDU (unless ``read_first=False``), send ``data`` verbatim, then either
    close (``close=True``) or keep the connection open, reading and ignoring PDUs."""

    def behaviour(conn: socket.socket) -> None:
        if read_first:
            pdu = read_pdu(conn)
            if record is not None:
                record.append(pdu)
        conn.sendall(data)
        if not close:
            _drain(conn, record)

    return behaviour


def close_immediately(*, reset: bool = False) -> Behaviour:
    """Close the connection as soon as it is accepted; ``reset=True`` sends a TCP RST
    (SO_LINGER 0) instead of an orderly FIN."""

    def behaviour(conn: socket.socket) -> None:
        if reset:
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        conn.close()

    return behaviour


class ScriptedTarget:
    """A TCP server on a loopback address running ``behaviour`` for each connection.

    Use as a context manager (or start()/stop()). ``errors`` collects exceptions raised by
    behaviours; ``connections`` counts accepted connections. ``port=0`` picks a free port.
    """

    def __init__(self, behaviour: Behaviour, host: str = "127.0.0.1", *, port: int = 0) -> None:
        self.behaviour = behaviour
        self._host = host.strip("[]")
        family = socket.AF_INET6 if ":" in self._host else socket.AF_INET
        self._listener = socket.socket(family, socket.SOCK_STREAM)
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind((self._host, port))
        self._listener.listen(16)
        self._listener.settimeout(0.05)
        self._port: int = self._listener.getsockname()[1]
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._conns: list[socket.socket] = []
        self._threads: list[threading.Thread] = []
        self._acceptor: threading.Thread | None = None
        self.errors: list[BaseException] = []
        self.connections = 0

    @property
    def host(self) -> str:
        return self._host

    @property
    def port(self) -> int:
        return self._port

    @property
    def portal(self) -> str:
        """``127.0.0.1:port`` or ``[::1]:port``."""
        return f"[{self._host}]:{self._port}" if ":" in self._host else f"{self._host}:{self._port}"

    def start(self) -> Self:
        if self._acceptor is None:
            self._acceptor = threading.Thread(
                target=self._accept_loop, name=f"ScriptedTarget-{self._port}", daemon=True
            )
            self._acceptor.start()
        return self

    def _accept_loop(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _addr = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                break  # listener closed by stop()
            conn.settimeout(None)
            with self._lock:
                if self._stop.is_set():
                    conn.close()
                    break
                self.connections += 1
                self._conns.append(conn)
                thread = threading.Thread(
                    target=self._serve,
                    args=(conn,),
                    name=f"ScriptedTarget-{self._port}-conn{self.connections}",
                    daemon=True,
                )
                self._threads.append(thread)
            thread.start()

    def _serve(self, conn: socket.socket) -> None:
        try:
            self.behaviour(conn)
        except PeerClosed:
            pass
        except Exception as exc:
            if not (self._stop.is_set() and isinstance(exc, OSError)):
                self.errors.append(exc)
        finally:
            with contextlib.suppress(OSError):
                conn.close()

    def stop(self, timeout: float = 1.0) -> None:
        """Stop accepting, close every connection and wait up to ``timeout`` s in all for
        the behaviour threads. A behaviour blocked reading returns at once; one that is
        sleeping is left to finish on its own (daemon thread, its socket already shut)."""
        self._stop.set()
        with contextlib.suppress(OSError):
            self._listener.close()
        with self._lock:
            conns, threads = list(self._conns), list(self._threads)
        for conn in conns:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        deadline = time.monotonic() + timeout
        for thread in [self._acceptor, *threads]:
            if thread is not None and thread is not threading.current_thread():
                thread.join(max(0.0, deadline - time.monotonic()))
        for conn in conns:
            with contextlib.suppress(OSError):
                conn.close()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"<ScriptedTarget {self.portal} connections={self.connections}>"


# -- mid-I/O helpers (Full Feature Phase scripts) -------------------------------------------


def reset_connection(conn: socket.socket, partial: bytes = b"") -> None:
    """Send ``partial`` (e.g. the first half of a PDU), then abort the connection with a
    TCP RST (SO_LINGER 0): the peer's next receive fails with ECONNRESET."""
    if partial:
        conn.sendall(partial)
    conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    conn.close()


__all__ += ["reset_connection"]
