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
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from iscsikit.errors import (
    InvalidParameterError,
    IscsiErr,
    TransportError,
    TransportTimeoutError,
)
from iscsikit.proto.address import Portal
from iscsikit.proto.framing import PduReader
from iscsikit.proto.pdu import Pdu, encode_pdu
from iscsikit.sysfs import SysfsContext

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


#: The keys of :attr:`ConnectSpec.binding <iscsikit.plugin.ConnectSpec.binding>` a TCP
#: connection obeys: the node record's iface keys, as open-iscsi names them.
BINDING_KEYS = ("iface.hwaddress", "iface.net_ifacename", "iface.ipaddress")

#: What an unset iface key holds (iscsi_settings.h DEFAULT_*; ``<empty>`` in records).
_UNSET = frozenset({"", "default", "<empty>"})


@dataclass(frozen=True, slots=True)
class SocketBinding:
    """Where a TCP connection leaves from: a network device (``SO_BINDTODEVICE``) and/or
    a source address; empty strings leave it to the routing table."""

    device: str = ""
    source_address: str = ""


def socket_binding(
    binding: Mapping[str, str], *, source_address: bool = True, root: Path = Path("/")
) -> SocketBinding:
    """The socket binding an iface asks for, chosen as iscsid's ``bind_conn_to_iface``
    chooses (2.1.8 usr/io.c): ``iface.hwaddress`` names the netdev with that MAC
    (``<root>/sys/class/net/*/address``), else ``iface.net_ifacename`` is the netdev.

    ``iface.ipaddress`` is a source address when ``source_address`` (iscsikit's userspace
    TCP; the device binding still applies); without it, an address alone is refused with
    iscsid's words, as iscsid refuses it for software iSCSI.  Raises
    :class:`~iscsikit.errors.TransportError` (exit 4) when no netdev has the MAC.
    """
    hwaddress, netdev, address = (binding.get(k, "").strip() for k in BINDING_KEYS)
    device = ""
    if hwaddress not in _UNSET:
        found = SysfsContext(root).netdev_by_mac(hwaddress)
        if found is None:
            raise TransportError(f"Cannot match {hwaddress} to net/scsi interface.")
        device = found
    elif netdev not in _UNSET:
        device = netdev
    if address in _UNSET:
        return SocketBinding(device)
    if not source_address and not device:
        raise TransportError(
            f"Cannot bind {address} to net/scsi interface. This is not supported with "
            "software iSCSI (iscsi_tcp)."
        )
    return SocketBinding(device, address if source_address else "")


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
        cls,
        portal: Portal,
        deadline: Deadline,
        *,
        source_address: str = "",
        device: str = "",
        binding: SocketBinding | None = None,
    ) -> PduConnection:
        """Connect to the first address of ``portal`` that answers before ``deadline``.

        ``source_address`` binds the socket to that local address first and ``device``
        to that network device (``SO_BINDTODEVICE``, root only): open-iscsi's
        ``iface.ipaddress`` and ``iface.net_ifacename`` bindings; ``binding`` gives both
        (:func:`socket_binding`).  A device or address that cannot be bound fails with
        iscsid's words (exit 4)."""
        if binding is not None:
            source_address = source_address or binding.source_address
            device = device or binding.device
        last: OSError | None = None
        for family, sockaddr in resolve(portal):
            remaining = deadline.remaining()
            if remaining <= 0:
                break
            sock = socket.socket(family, socket.SOCK_STREAM)
            try:
                sock.settimeout(remaining)
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                _bind(sock, family, device, source_address)
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


def _bind(sock: socket.socket, family: int, device: str, source_address: str) -> None:
    """Bind ``sock`` to ``device`` and ``source_address``; a refusal closes it and raises
    :class:`TransportError` with iscsid's message (it is no reason to try another
    address of the portal)."""
    try:
        if device:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, device.encode() + b"\0")
    except OSError as exc:
        sock.close()
        raise TransportError(f"Could not bind connection 0 to {device}: {_describe(exc)}") from None
    if not source_address:
        return
    try:
        host = source_address.strip("[]")
        sock.bind((host, 0) if family == socket.AF_INET else (host, 0, 0, 0))
    except (OSError, socket.gaierror) as exc:
        sock.close()
        raise TransportError(f"Could not bind {source_address} to conn: {_describe(exc)}") from None


def _describe(exc: OSError) -> str:
    if exc.errno is not None:
        return f"{errno.errorcode.get(exc.errno, exc.errno)} ({exc.strerror})"
    return str(exc) or type(exc).__name__
