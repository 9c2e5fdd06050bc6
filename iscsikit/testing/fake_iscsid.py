"""A stand-in for open-iscsi's iscsid that answers iscsiadm's configuration queries.

Real iscsiadm 2.1.8 asks iscsid (over the abstract unix socket
``@ISCSIADM_ABSTRACT_NAMESPACE``) for the initiator name, alias and the path of
iscsid.conf before it writes a record.  With no iscsid it retries with back-off
(about one second per command), runs ``iscsid.startup``, and then falls back to
compiled-in defaults.  That makes the oracle slow and unlike a real host.

:class:`FakeIscsid` answers ``MGMT_IPC_CONFIG_INAME`` (8), ``CONFIG_IALIAS`` (9) and
``CONFIG_FILE`` (10) the way iscsid does, and refuses everything else with
``MGMT_IPC_ERR_INVALID_REQ``; it cannot log in (there is no kernel here).  The wire
layout is 2.1.8's (usr/mgmt_ipc.h, notes §4.4): a fixed 16104-byte request
(``command`` u32, ``payload_len`` u32, union) followed by ``payload_len`` bytes, and a
2464-byte response (``command`` u32, ``err`` i32, ``config.var`` char[VALUE_MAXLEN]).

Abstract unix sockets are scoped to the network namespace: run this only inside a
private one (``unshare -n``), never on a host whose real iscsid would be shadowed.
"""

from __future__ import annotations

import contextlib
import socket
import struct
import threading
from types import TracebackType
from typing import Self

NAMESPACE = b"\0ISCSIADM_ABSTRACT_NAMESPACE"
REQUEST_SIZE_2_1_8 = 16104
RESPONSE_SIZE = 2464
VALUE_MAXLEN = 255

CONFIG_INAME = 8
CONFIG_IALIAS = 9
CONFIG_FILE = 10
ERR_INVALID_REQ = 16

_HEADER = struct.Struct("=II")
_RESPONSE_HEAD = struct.Struct("=Ii")


class FakeIscsid:
    """Serve iscsiadm's config queries on the abstract socket, in a background thread."""

    def __init__(
        self,
        *,
        initiator_name: str,
        alias: str = "",
        config_file: str = "/etc/iscsi/iscsid.conf",
        request_size: int = REQUEST_SIZE_2_1_8,
    ) -> None:
        self._answers = {
            CONFIG_INAME: initiator_name,
            CONFIG_IALIAS: alias,
            CONFIG_FILE: config_file,
        }
        self._request_size = request_size
        self._sock: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self.requests: list[int] = []

    def start(self) -> Self:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.bind(NAMESPACE)
        sock.listen(64)
        sock.settimeout(0.2)
        self._sock = sock
        self._thread = threading.Thread(target=self._serve, name="fake-iscsid", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2)
        if self._sock is not None:
            self._sock.close()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def _serve(self) -> None:
        assert self._sock is not None
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            with conn, contextlib.suppress(OSError):
                conn.settimeout(2)
                self._answer(conn)

    def _answer(self, conn: socket.socket) -> None:
        request = _recv_exactly(conn, self._request_size)
        command, payload_len = _HEADER.unpack_from(request)
        if payload_len:
            _recv_exactly(conn, payload_len)
        self.requests.append(command)
        value = self._answers.get(command)
        err = 0 if value is not None else ERR_INVALID_REQ
        var = (value or "").encode()[: VALUE_MAXLEN - 1]
        response = bytearray(RESPONSE_SIZE)
        _RESPONSE_HEAD.pack_into(response, 0, command, err)
        response[8 : 8 + len(var)] = var
        conn.sendall(bytes(response))


def _recv_exactly(conn: socket.socket, size: int) -> bytes:
    chunks = bytearray()
    while len(chunks) < size:
        chunk = conn.recv(size - len(chunks))
        if not chunk:
            raise ConnectionError("iscsiadm closed the IPC connection early")
        chunks += chunk
    return bytes(chunks)
