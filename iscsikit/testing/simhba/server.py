"""Carry NETLINK_ISCSI requests to a :class:`~.hba.SimulatedHba` and its answers back.

The kernel end of the conversation is a thread reading one end of a datagram channel:
each datagram a driver sends is one request (:func:`~iscsikit.netlink.decode_request`),
and each message the HBA answers goes back as its own datagram, framed as the kernel
frames it.  Two ways in:

* :meth:`HbaServer.socketpair` -- the other end of an ``AF_UNIX`` ``SOCK_SEQPACKET``
  pair, for :class:`~iscsikit_drivers.kerneltcp.NetlinkChannel` ``(sock=...)`` in the
  same process;
* async events (PING_COMP, RECV_PDU, CONN_ERROR, UNBIND_SESSION) go to every connected
  channel, as the kernel multicasts them to iscsid's group;
* :meth:`HbaServer.listen` -- an ``AF_UNIX`` ``SOCK_SEQPACKET`` socket at a path, one
  thread per connection: the **test seam** for subprocesses (``iscsikit-adm``), which
  reach it through the environment variable the offload drivers read
  (``ISCSIKIT_OFFLOAD_NETLINK``, see ``iscsikit_drivers.offload.channel``).

A datagram that does not decode as a request is answered with nothing (the kernel drops
it too) and counted in :attr:`HbaServer.malformed`.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Callable
from pathlib import Path
from types import TracebackType

from iscsikit.netlink import KernelEvent, NetlinkDecodeError, decode_request

from .hba import SimulatedHba

__all__ = ["HbaServer"]

_RECV_SIZE = 64 * 1024


class HbaServer:
    """The simulated kernel end for ``hba``; a context manager that stops its threads."""

    def __init__(self, hba: SimulatedHba) -> None:
        self.hba = hba
        self.malformed = 0
        self._socks: list[socket.socket] = []
        self._send_lock = threading.Lock()
        hba.emit = self.broadcast
        self._threads: list[threading.Thread] = []
        self._listener: socket.socket | None = None
        self._stopping = threading.Event()

    def socketpair(self) -> socket.socket:
        """A connected socket a driver sends requests on and reads answers from."""
        user, kernel = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self._serve(kernel)
        return user

    def listen(self, path: Path) -> Path:
        """Accept connections at ``path`` (the subprocess test seam); returns it."""
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        sock.bind(str(path))
        sock.listen(8)
        self._listener = sock
        self._start(self._accept, sock)
        return path

    def _accept(self, listener: socket.socket) -> None:
        while not self._stopping.is_set():
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            self._serve(conn)

    def _serve(self, sock: socket.socket) -> None:
        self._socks.append(sock)
        self._start(self._loop, sock)

    def _start(self, target: Callable[[socket.socket], None], sock: socket.socket) -> None:
        thread = threading.Thread(target=target, args=(sock,), daemon=True, name="simhba")
        self._threads.append(thread)
        thread.start()

    def _loop(self, sock: socket.socket) -> None:
        seq = 0
        while True:
            try:
                data = sock.recv(_RECV_SIZE)
            except OSError:
                return
            if not data:
                return
            try:
                request = decode_request(data)
            except NetlinkDecodeError:
                self.malformed += 1
                continue
            for message in self.hba.handle(request):
                if isinstance(message, KernelEvent):
                    self.broadcast(message)
                    continue
                seq += 1
                try:
                    with self._send_lock:
                        sock.send(message.encode(seq=seq))
                except OSError:
                    return

    def broadcast(self, event: KernelEvent) -> None:
        """Send an async event to every connected channel (the kernel multicasts them
        to the events group; a request-only channel just queues what it gets)."""
        data = event.encode()
        with self._send_lock:
            for sock in list(self._socks):
                # Never wait on a channel that does not read (a full buffer drops the
                # event, as a netlink multicast does with ENOBUFS).
                with contextlib.suppress(OSError):
                    sock.send(data, socket.MSG_DONTWAIT)

    def close(self) -> None:
        """Stop serving: close every socket and join the threads."""
        self._stopping.set()
        if self._listener is not None:
            with contextlib.suppress(OSError):
                self._listener.shutdown(socket.SHUT_RDWR)
            self._listener.close()
        for sock in self._socks:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()
        for thread in self._threads:
            thread.join(timeout=5)
        self.hba.close()

    def __enter__(self) -> HbaServer:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
