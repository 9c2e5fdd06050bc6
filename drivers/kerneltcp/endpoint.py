"""How a kernel connection gets its carrier: the strategy of the connect step.

A kernel iSCSI connection is bound (BIND_CONN) to a *transport endpoint* given by a
64-bit handle.  Transports make that endpoint in one of two ways (open-iscsi's
``ep_connect`` template hook, open-iscsi-notes.md §1.4):

- :class:`TcpConnector` (iscsi_tcp): userspace connects a TCP socket and the handle is
  its fd; the session is made beforehand with CREATE_SESSION.
- :class:`KernelEndpointConnector` (iser, and the offload HBAs): the kernel connects
  (EP_CONNECT, non-blocking, then EP_POLL until it is up, as ``ktransport_ep_connect`` /
  ``ktransport_ep_poll`` do), the handle is the kernel's endpoint, and the session is
  made *on* it with CREATE_BOUND_SESSION (the endpoint names the device the SCSI host
  belongs to).  EP_DISCONNECT frees it.

:class:`~.kernel.KernelSession` drives either; everything else (login through the
kernel, SET_PARAM, START_CONN, recovery, logout) is the same for both.
"""

from __future__ import annotations

import abc
import contextlib
import socket
import struct
from collections.abc import Mapping

from iscsikit import net
from iscsikit.errors import ConnectionFailedError, TransportError, TransportTimeoutError
from iscsikit.net.connection import socket_binding
from iscsikit.netlink import NetlinkRequestError
from iscsikit.netlink.events import EndpointConnected, RequestDone
from iscsikit.netlink.messages import EpConnect, EpDisconnect, EpPoll, Request
from iscsikit.proto.address import Portal
from iscsikit.proto.login import LoginAccepted, LoginConfig

from .netlink import NetlinkChannel

__all__ = [
    "Connector",
    "Endpoint",
    "KernelEndpoint",
    "KernelEndpointConnector",
    "SocketEndpoint",
    "TcpConnector",
]

#: One EP_POLL waits at most this long in the kernel (it holds the netlink receive
#: mutex meanwhile, so other processes' requests wait too); iscsid polls with 1 ms.
_POLL_SLICE_MS = 100


class Endpoint(abc.ABC):
    """One connected carrier that BIND_CONN binds a connection to (``handle``)."""

    handle: int
    #: Teardown order: iscsid disconnects a kernel endpoint *before* STOP_CONN
    #: (``session_conn_shutdown``) and closes a socket after it.
    close_before_stop: bool = False

    @abc.abstractmethod
    def close(self, clean: bool) -> None:
        """Disconnect; ``clean`` after a logout (else abortive); idempotent, never raises."""

    @abc.abstractmethod
    def forget(self) -> None:
        """Let go without disconnecting (the kernel session lives on, to be adopted)."""


class Connector(abc.ABC):
    """Makes the endpoints of one transport's connections."""

    #: The session is made with CREATE_BOUND_SESSION on its first endpoint.
    bound_session: bool = False

    def login_config(self, config: LoginConfig) -> LoginConfig:
        """The login keys this carrier needs (RDMA ones for iser); unchanged by default."""
        return config

    def check_login(self, accepted: LoginAccepted) -> None:
        """Refuse a login outcome this carrier cannot run with (raise); default: accept."""
        return

    def bound(self, binding: Mapping[str, str]) -> Connector:
        """This connector for a session whose iface asks for ``binding``
        (:attr:`ConnectSpec.binding <iscsikit.plugin.ConnectSpec.binding>`); the
        default ignores it (the kernel, or an HBA, chooses the way out)."""
        return self

    @abc.abstractmethod
    def connect(
        self, channel: NetlinkChannel, transport: int, portal: Portal, deadline: net.Deadline
    ) -> Endpoint:
        """A connected endpoint to ``portal`` before ``deadline``, or an error."""


# -- iscsi_tcp: a userspace socket ----------------------------------------------------------


class SocketEndpoint(Endpoint):
    """A connected TCP socket; the handle is its fd.  The kernel takes its own file
    reference at BIND_CONN, so closing ours never breaks the data path."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock: socket.socket | None = sock
        self.handle = sock.fileno()

    def close(self, clean: bool) -> None:
        if self.sock is None:
            return
        if not clean:  # iscsid: an abortive close (RST) unless this is a clean logout
            with contextlib.suppress(OSError):
                self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.sock.close()
        self.sock = None

    def forget(self) -> None:
        if self.sock is not None:
            self.sock.close()
            self.sock = None


class TcpConnector(Connector):
    """iscsi_tcp's carrier: a TCP connection made in userspace (:mod:`iscsikit.net`),
    bound to the iface's netdev as iscsid's ``bind_conn_to_iface`` binds it: the netdev
    with ``iface.hwaddress``, else ``iface.net_ifacename``; an ``iface.ipaddress``
    alone is refused, as iscsid refuses it for iscsi_tcp (exit 4 either way)."""

    def __init__(self, binding: Mapping[str, str] | None = None) -> None:
        self.binding: Mapping[str, str] = dict(binding or {})

    def bound(self, binding: Mapping[str, str]) -> TcpConnector:
        return TcpConnector(binding)

    def connect(
        self, channel: NetlinkChannel, transport: int, portal: Portal, deadline: net.Deadline
    ) -> SocketEndpoint:
        binding = socket_binding(self.binding, source_address=False)
        sock, _ = net.PduConnection.connect(portal, deadline, binding=binding).detach()
        sock.setblocking(True)
        return SocketEndpoint(sock)


# -- iser and the offload HBAs: a kernel endpoint ---------------------------------------------


class KernelEndpoint(Endpoint):
    """An endpoint the kernel made (EP_CONNECT); EP_DISCONNECT frees it."""

    close_before_stop = True

    def __init__(self, channel: NetlinkChannel, transport: int, handle: int) -> None:
        self.channel = channel
        self.transport = transport
        self.handle = handle
        self._open = True

    def close(self, clean: bool) -> None:
        if not self._open:
            return
        self._open = False
        # After STOP_CONN the kernel may have freed a bound endpoint itself (-EINVAL).
        with contextlib.suppress(NetlinkRequestError, TransportError, OSError):
            self.channel.request(
                EpDisconnect(transport_handle=self.transport, ep_handle=self.handle)
            )

    def forget(self) -> None:
        self._open = False


class KernelEndpointConnector(Connector):
    """EP_CONNECT (non-blocking) to the portal, then EP_POLL until the endpoint is up,
    bounded by the login deadline; the session is bound to the first endpoint."""

    bound_session = True

    def endpoint_request(self, transport: int, portal: Portal) -> Request:
        """The request that makes the endpoint: EP_CONNECT here; an offload HBA's
        connector asks through its SCSI host (EP_CONNECT_THROUGH_HOST)."""
        return EpConnect(transport_handle=transport, address=(portal.host, portal.port))

    def connect(
        self, channel: NetlinkChannel, transport: int, portal: Portal, deadline: net.Deadline
    ) -> KernelEndpoint:
        reply = channel.request(self.endpoint_request(transport, portal))
        if not isinstance(reply, EndpointConnected) or reply.handle == 0:
            raise ConnectionFailedError(f"the kernel could not make an endpoint to {portal}")
        endpoint = KernelEndpoint(channel, transport, reply.handle)
        try:
            while True:
                remaining = deadline.remaining()
                if remaining <= 0:
                    raise TransportTimeoutError(f"connect to {portal} timed out")
                timeout_ms = max(1, min(_POLL_SLICE_MS, int(remaining * 1000)))
                polled = channel.request(
                    EpPoll(
                        transport_handle=transport, ep_handle=endpoint.handle, timeout_ms=timeout_ms
                    )
                )
                status = polled.retcode if isinstance(polled, RequestDone) else -1
                if status > 0:
                    return endpoint
                if status < 0:
                    raise ConnectionFailedError(f"connect to {portal} failed (EP_POLL {status})")
        except BaseException:
            endpoint.close(clean=False)
            raise
