"""The blocking client of iscsikitd's IPC socket (docs/ipc.md).

:class:`DaemonClient` connects on first use, sends one request at a time over a plain unix
socket and returns the reply's result, or raises the daemon's error rebuilt as the iscsikit
exception the daemon raised (:func:`~iscsikit.ipc.errors.exception_from_reply`).  A connection
carries many requests; one the daemon closed while idle is noticed before the next request
and replaced, so a request is never sent twice.

Failures of the exchange itself carry iscsiadm's codes:

* :class:`DaemonNotRunningError` (20) -- no socket, or nobody accepts on it;
* :class:`DaemonTimeoutError` (33) -- no reply in time (iscsiadm's ``iscsid_response``);
* :class:`DaemonCommError` (18) -- anything else: a reset, a truncated or malformed reply.

The command line imports this module on every daemon call, so it stays small: no asyncio,
no threads, and the C socket type (:mod:`_socket`, which :class:`socket.socket` only
subclasses) instead of :mod:`socket`, whose import (its enum conversions, selectors) would
be a tenth of ``iscsikit-adm -m session``'s start-up for nothing this client uses.
"""

from __future__ import annotations

import _socket
import itertools
import math
import os
import time
from typing import Any

from iscsikit.errors import IscsiErr, IscsiError
from iscsikit.ipc.errors import AccessDeniedError, RequestLimitError
from iscsikit.ipc.protocol import (
    MessageRejected,
    ReplyDecoder,
    ReplyReceived,
    encode_request,
)

__all__ = [
    "DEFAULT_TIMEOUT",
    "DaemonClient",
    "DaemonCommError",
    "DaemonNotRunningError",
    "DaemonTimeoutError",
]

#: Seconds to wait for a connection and for each reply, unless the caller says otherwise.
DEFAULT_TIMEOUT = 30.0
_RECV_SIZE = 65536
#: Seconds to look for the daemon's reason after a failed send.
_REFUSAL_WAIT = 1.0


class DaemonNotRunningError(IscsiError):
    """No daemon to ask (iscsiadm: "could not connect to iscsid", exit 20)."""

    code = IscsiErr.ISCSID_NOTCONN


class DaemonCommError(IscsiError):
    """A daemon is there but the exchange with it failed (exit 18)."""

    code = IscsiErr.ISCSID_COMM_ERR


class DaemonTimeoutError(DaemonCommError):
    """The daemon did not reply in time (exit 33, "iscsid request timed out")."""

    code = IscsiErr.REQ_TIMEDOUT


class DaemonClient:
    """A connection to the daemon at ``socket_path``; use as a context manager or
    :meth:`close` it.  ``timeout`` bounds connecting and waiting for each reply
    (``math.inf``: wait for ever, as iscsiadm waits for a login).  One thread at a time:
    threads that share a daemon each open their own client."""

    def __init__(
        self, socket_path: str | os.PathLike[str], timeout: float = DEFAULT_TIMEOUT
    ) -> None:
        self.socket_path = os.fspath(socket_path)
        self.timeout = timeout
        self._sock: _socket.socket | None = None
        self._decoder = ReplyDecoder()
        self._ids = itertools.count(1)

    def __enter__(self) -> DaemonClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the connection (the next call opens a new one)."""
        sock, self._sock = self._sock, None
        if sock is not None:
            sock.close()

    def call(self, op: str, /, **args: Any) -> Any:
        """Run operation ``op`` with keyword ``args`` in the daemon; return its result."""
        return self.request(op, args)

    def request(self, op: str, args: dict[str, Any], *, timeout: float | None = None) -> Any:
        """:meth:`call` with ``args`` as a dict and a ``timeout`` for this reply only."""
        wait = self.timeout if timeout is None else timeout
        msg_id = next(self._ids)
        data = encode_request(msg_id, op, args)
        for attempt in range(2):
            sock = self._connection(wait)
            try:
                # The request is small: sending it is bounded even when the reply is not.
                sock.settimeout(wait if not math.isinf(wait) else self._bound())
                sock.sendall(data)
            except OSError as exc:
                refusal = self._refusal(sock)
                self.close()
                if refusal is not None:
                    raise refusal from exc
                raise DaemonCommError(f"could not send the request to iscsikitd: {exc}") from exc
            reply = self._receive(sock, wait)
            if reply.ok:
                if reply.id != msg_id:
                    self.close()
                    raise DaemonCommError(f"reply {reply.id} to request {msg_id}")
                return reply.result
            assert reply.error is not None
            error = reply.error.to_exception()
            if isinstance(error, RequestLimitError) and attempt == 0:
                self.close()
                continue  # nothing was done: the same request on a new connection
            if reply.id is None:  # the daemon refused the connection itself
                self.close()
            elif reply.id != msg_id:
                self.close()
                raise DaemonCommError(f"reply {reply.id} to request {msg_id}")
            raise error
        raise AssertionError("unreachable")

    # -- the connection ------------------------------------------------------------------

    def _connection(self, wait: float) -> _socket.socket:
        if self._sock is not None and not _dropped(self._sock):
            return self._sock
        self.close()
        sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
        sock.settimeout(None if math.isinf(wait) else wait)
        try:
            sock.connect(self.socket_path)
        except (FileNotFoundError, ConnectionRefusedError) as exc:
            sock.close()
            what = "no socket" if isinstance(exc, FileNotFoundError) else "connection refused"
            raise DaemonNotRunningError(
                f"could not connect to iscsid: iscsikitd is not running ({what} at "
                f"{self.socket_path})"
            ) from exc
        except PermissionError as exc:
            sock.close()
            raise AccessDeniedError(
                f"daemon access denied: cannot open {self.socket_path} ({exc.strerror})"
            ) from exc
        except TimeoutError as exc:
            sock.close()
            raise DaemonTimeoutError(f"connecting to iscsikitd timed out after {wait} s") from exc
        except OSError as exc:
            sock.close()
            raise DaemonCommError(f"could not connect to iscsikitd: {exc}") from exc
        self._sock = sock
        self._decoder = ReplyDecoder()
        return sock

    def _refusal(self, sock: _socket.socket) -> IscsiError | None:
        """Why the daemon closed a connection we could not write to, if it said so: it
        refuses a peer (credentials, too many clients) as soon as it connects."""
        try:
            reply = self._receive(sock, _REFUSAL_WAIT)
        except IscsiError:
            return None
        if reply.ok or reply.id is not None or reply.error is None:
            return None
        return reply.error.to_exception()

    def _bound(self) -> float:
        """The finite wait for a step that never takes long (sending a request, the rest
        of a reply that has begun), even when the operation's own wait is infinite."""
        return self.timeout if not math.isinf(self.timeout) else DEFAULT_TIMEOUT

    def _receive(self, sock: _socket.socket, wait: float) -> ReplyReceived:
        deadline = time.monotonic() + wait
        while True:
            if math.isinf(deadline) and self._decoder.buffered:
                # An operation may take its time (a login: wait is infinite), but once its
                # reply has begun the rest comes at once: a daemon that stops mid-reply
                # must not hold the command forever.
                wait = self._bound()
                deadline = time.monotonic() + wait
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                self.close()
                raise DaemonTimeoutError(f"iscsikitd did not reply within {wait} s")
            sock.settimeout(None if math.isinf(remaining) else remaining)
            try:
                data = sock.recv(_RECV_SIZE)
            except TimeoutError:
                continue  # the deadline check above reports it
            except OSError as exc:
                self.close()
                raise DaemonCommError(f"lost the connection to iscsikitd: {exc}") from exc
            if not data:
                rejected = self._decoder.end_of_stream()
                self.close()
                what = rejected.error if rejected else "connection closed before the reply"
                raise DaemonCommError(f"lost the connection to iscsikitd: {what}")
            for event in self._decoder.feed(data):
                # One request is outstanding, so the first event is its answer.
                if isinstance(event, MessageRejected):
                    self.close()
                    raise DaemonCommError(f"bad reply from iscsikitd: {event.error}")
                if isinstance(event, ReplyReceived):
                    return event
                self.close()
                raise DaemonCommError("iscsikitd sent a request instead of a reply")


def _dropped(sock: _socket.socket) -> bool:
    """True when an idle connection is unusable: the daemon closed or reset it, or sent
    something nobody asked for (then what follows could not be matched to a request)."""
    import select  # only a reused connection is checked: not on a command's one request

    try:
        readable, _, _ = select.select([sock], [], [], 0)
    except (OSError, ValueError):
        return True
    return bool(readable)
