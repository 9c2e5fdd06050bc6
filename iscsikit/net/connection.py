"""A TCP connection that carries iSCSI PDUs, with every wait bounded by a deadline.

This is the I/O half of the sans-I/O split for drivers that connect TCP themselves: it
resolves and connects (IPv4, IPv6 with an optional ``%zone``, host names), writes
encoded PDUs and feeds received bytes to a :class:`~iscsikit.proto.framing.PduReader`.
Socket errors become iscsikit errors with iscsiadm's codes: refused/reset → 4,
timeouts → 8 (or the caller's ``timeout_code``, 11 for a response PDU).  It owns no
protocol decisions: the login and Full Feature Phase machines of :mod:`iscsikit.proto`
make them.
"""

from __future__ import annotations

import contextlib
import errno
import socket
import time
from dataclasses import dataclass

from iscsikit.errors import (
    InvalidParameterError,
    IscsiErr,
    TransportError,
    TransportTimeoutError,
)
from iscsikit.proto.address import Portal
from iscsikit.proto.framing import PduReader
from iscsikit.proto.pdu import Pdu, encode_pdu

#: The receive buffer; a data path will want bigger reads, login and discovery do not.
_RECV_SIZE = 256 * 1024

#: RFC 7143 §12.12: login PDUs carry at most 8192 bytes of data.
_LOGIN_MRDSL = 8192


@dataclass(frozen=True, slots=True)
class Deadline:
    """The instant, on the monotonic clock, by which a whole exchange must end.

    One deadline is shared by every step of an exchange (connect, each send, each
    receive), so a peer that answers slowly but steadily cannot stretch it.
    """

    at: float

    @classmethod
    def after(cls, seconds: float) -> Deadline:
        return cls(time.monotonic() + seconds)

    def remaining(self) -> float:
        """Seconds left; zero or negative once expired."""
        return self.at - time.monotonic()

    @property
    def expired(self) -> bool:
        return self.remaining() <= 0


def deadline_after(seconds: float) -> Deadline:
    """``Deadline.after(seconds)``: the usual way to start bounding an exchange."""
    return Deadline.after(seconds)


def resolve(portal: Portal) -> list[tuple[int, tuple[object, ...]]]:
    """``getaddrinfo`` for a portal: [(family, sockaddr)], IPv6 zones honoured."""
    try:
        infos = socket.getaddrinfo(
            portal.host, portal.port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP
        )
    except socket.gaierror as exc:
        raise TransportError(f"cannot resolve host name {portal.host!r}: {exc.strerror}") from None
    except UnicodeError:
        raise InvalidParameterError(f"invalid host name {portal.host!r}") from None
    return [(family, sockaddr) for family, _, _, _, sockaddr in infos]


class PduConnection:
    """One TCP connection to a target, sending and receiving whole PDUs.

    ``header_digest`` / ``data_digest`` apply to both directions; after login they are
    set from the negotiated keys (see :func:`iscsikit.net.login.enter_full_feature`).
    """

    def __init__(self, sock: socket.socket, portal: Portal) -> None:
        self.sock = sock
        self.portal = portal
        self.reader = PduReader(peer="target", max_data_segment_length=_LOGIN_MRDSL)
        self.header_digest = False
        self.data_digest = False
        self._closed = False
        #: PDUs sent with :meth:`send` (a login's Login Requests, for statistics).
        self.pdus_sent = 0

    @classmethod
    def connect(
        cls, portal: Portal, deadline: Deadline, *, source_address: str = "", device: str = ""
    ) -> PduConnection:
        """Connect to the first address of ``portal`` that answers before ``deadline``.

        ``source_address`` binds the socket to that local address first and ``device``
        to that network device (``SO_BINDTODEVICE``, root only): open-iscsi's
        ``iface.ipaddress`` and ``iface.net_ifacename`` bindings."""
        last: OSError | None = None
        for family, sockaddr in resolve(portal):
            remaining = deadline.remaining()
            if remaining <= 0:
                break
            sock = socket.socket(family, socket.SOCK_STREAM)
            try:
                sock.settimeout(remaining)
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                if device:
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, device.encode())
                if source_address:
                    sock.bind((source_address, 0))
                sock.connect(sockaddr)
            except OSError as exc:
                sock.close()
                last = exc
                continue
            return cls(sock, portal)
        if isinstance(last, TimeoutError) or last is None:
            raise TransportTimeoutError(f"connect to {portal} timed out")
        raise TransportError(f"cannot make connection to {portal}: {_describe(last)}")

    # -- sending ---------------------------------------------------------------------------

    def send(
        self, pdu: Pdu, deadline: Deadline, *, timeout_code: IscsiErr = IscsiErr.TRANS_TIMEOUT
    ) -> None:
        data = encode_pdu(pdu, header_digest=self.header_digest, data_digest=self.data_digest)
        self.send_bytes(data, deadline, timeout_code=timeout_code)
        self.pdus_sent += 1

    def send_bytes(
        self, data: bytes, deadline: Deadline, *, timeout_code: IscsiErr = IscsiErr.TRANS_TIMEOUT
    ) -> None:
        self._check_open()
        remaining = deadline.remaining()
        if remaining <= 0:
            raise TransportTimeoutError(f"timed out sending to {self.portal}", code=timeout_code)
        try:
            self.sock.settimeout(remaining)
            self.sock.sendall(data)
        except TimeoutError:
            raise TransportTimeoutError(
                f"timed out sending to {self.portal}", code=timeout_code
            ) from None
        except OSError as exc:
            raise TransportError(f"connection to {self.portal} failed: {_describe(exc)}") from None

    # -- receiving -------------------------------------------------------------------------

    def recv(self, deadline: Deadline, *, timeout_code: IscsiErr = IscsiErr.TRANS_TIMEOUT) -> Pdu:
        """The next whole PDU; raises on timeout, EOF, or a protocol error from the reader."""
        self._check_open()
        reader = self.reader
        reader.header_digest = self.header_digest
        reader.data_digest = self.data_digest
        while True:
            pdu = reader.next_pdu()
            if pdu is not None:
                return pdu
            remaining = deadline.remaining()
            if remaining <= 0:
                raise TransportTimeoutError(
                    f"timed out waiting for a PDU from {self.portal}", code=timeout_code
                )
            try:
                self.sock.settimeout(remaining)
                chunk = self.sock.recv(_RECV_SIZE)
            except TimeoutError:
                raise TransportTimeoutError(
                    f"timed out waiting for a PDU from {self.portal}", code=timeout_code
                ) from None
            except OSError as exc:
                raise TransportError(
                    f"connection to {self.portal} failed: {_describe(exc)}"
                ) from None
            if not chunk:
                raise TransportError(f"connection closed by {self.portal}")
            reader.receive_data(chunk)

    def take_buffered(self) -> bytes:
        """Bytes already read past the last whole PDU, removed from the reader.

        Whatever reads the socket next (a data path, the kernel) must see them first.
        """
        return self.reader.take_buffered()

    # -- teardown --------------------------------------------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            raise TransportError(f"connection to {self.portal} is closed")

    @property
    def closed(self) -> bool:
        return self._closed

    def detach(self) -> tuple[socket.socket, bytes]:
        """Hand the socket over: returns it with the bytes read past the last PDU.

        The connection counts as closed afterwards but leaves the socket open; the new
        owner (a kernel transport taking the fd, a data path) closes it.
        """
        self._check_open()
        self._closed = True
        return self.sock, self.reader.take_buffered()

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        with contextlib.suppress(OSError):  # the peer may have gone already
            self.sock.shutdown(socket.SHUT_RDWR)
        self.sock.close()

    def __enter__(self) -> PduConnection:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _describe(exc: OSError) -> str:
    if exc.errno is not None:
        return f"{errno.errorcode.get(exc.errno, exc.errno)} ({exc.strerror})"
    return str(exc) or type(exc).__name__
