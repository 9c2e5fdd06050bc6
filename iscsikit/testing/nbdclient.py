"""A minimal blocking NBD client for tests: fixed newstyle, NBD_OPT_EXPORT_NAME, simple
replies; read, write, flush.  Enough to drive an export the way a kernel client does
(one request at a time, errors as NBD error numbers) without a C library."""

from __future__ import annotations

import contextlib
import socket
import struct
from types import TracebackType
from typing import Self

__all__ = ["NbdClient", "NbdError"]

_NBDMAGIC = 0x4E42444D41474943
_IHAVEOPT = 0x49484156454F5054
_REQUEST = struct.Struct(">IHHQQI")
_REPLY = struct.Struct(">IIQ")
_REQUEST_MAGIC = 0x25609513
_SIMPLE_REPLY_MAGIC = 0x67446698
_OPT_EXPORT_NAME = 1
_FLAG_FIXED_NEWSTYLE = 1
_FLAG_NO_ZEROES = 2
_CMD_READ, _CMD_WRITE, _CMD_DISC, _CMD_FLUSH = 0, 1, 2, 3


class NbdError(OSError):
    """The server answered a request with an NBD error (``errno``: EIO, EINVAL...)."""


class NbdClient:
    def __init__(self, path: str, *, timeout: float = 60.0) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        self.sock.connect(path)
        self._handle = 0
        magic, opt, flags = struct.unpack(">QQH", self._recv(18))
        if magic != _NBDMAGIC or opt != _IHAVEOPT:
            raise ConnectionError("not a newstyle NBD server")
        client_flags = _FLAG_FIXED_NEWSTYLE | (flags & _FLAG_NO_ZEROES)
        self.sock.sendall(struct.pack(">I", client_flags))
        self.sock.sendall(struct.pack(">QII", _IHAVEOPT, _OPT_EXPORT_NAME, 0))
        self.size, self.flags = struct.unpack(">QH", self._recv(10))
        if not client_flags & _FLAG_NO_ZEROES:
            self._recv(124)

    def _recv(self, n: int) -> bytes:
        buf = bytearray()
        while len(buf) < n:
            chunk = self.sock.recv(n - len(buf))
            if not chunk:
                raise ConnectionError("the NBD server closed the connection")
            buf += chunk
        return bytes(buf)

    def _request(self, kind: int, offset: int, length: int, data: bytes = b"") -> bytes:
        self._handle += 1
        self.sock.sendall(
            _REQUEST.pack(_REQUEST_MAGIC, 0, kind, self._handle, offset, length) + data
        )
        magic, error, handle = _REPLY.unpack(self._recv(_REPLY.size))
        if magic != _SIMPLE_REPLY_MAGIC or handle != self._handle:
            raise ConnectionError(f"bad NBD reply (magic {magic:#x}, handle {handle})")
        if error:
            raise NbdError(error, f"NBD error {error}")
        return self._recv(length) if kind == _CMD_READ else b""

    def read(self, offset: int, length: int) -> bytes:
        return self._request(_CMD_READ, offset, length)

    def write(self, offset: int, data: bytes) -> None:
        self._request(_CMD_WRITE, offset, len(data), data)

    def flush(self) -> None:
        self._request(_CMD_FLUSH, 0, 0)

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.sendall(_REQUEST.pack(_REQUEST_MAGIC, 0, _CMD_DISC, 0, 0, 0))
        self.sock.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
