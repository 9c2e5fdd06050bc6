"""Connecting with the iface's binding, and logging in over that connection.

:func:`iscsikit.net.run_login` connects for the caller; this driver connects itself (to
bind the socket first), so it drives the :class:`~iscsikit.proto.login.LoginMachine`
over an :class:`iscsikit.net.PduConnection` as run_login does, mapping failures to the
same iscsiadm codes: refused/reset 4, timeout 8, a target breaking the protocol 5, a
refused login the machine's own (19 unknown target, 24 authentication, ...).
"""

from __future__ import annotations

import socket
from collections.abc import Mapping

from iscsikit import net
from iscsikit.errors import (
    InvalidParameterError,
    IscsiErr,
    RemoteProtocolError,
    TransportError,
    TransportTimeoutError,
)
from iscsikit.net import Deadline, PduConnection
from iscsikit.plugin import ConnectSpec
from iscsikit.proto.address import Portal
from iscsikit.proto.login import LoginAccepted, LoginMachine, TargetRedirected
from iscsikit.proto.pdu import LoginRequest

#: The ``ConnectSpec.binding`` keys this driver honours (open-iscsi's ``iface.*`` names):
#: the source address of the connection, and the network device it must leave by.
BINDING_KEYS = frozenset({"ipaddress", "net_ifacename"})


def check_binding(binding: Mapping[str, str]) -> None:
    """Refuse binding keys this driver does not honour (iscsiadm's exit 7)."""
    unknown = sorted(set(binding) - BINDING_KEYS)
    if unknown:
        raise InvalidParameterError(
            f"the example transport cannot bind by {', '.join(unknown)} "
            f"(it knows {', '.join(sorted(BINDING_KEYS))})"
        )


def connect(portal: Portal, binding: Mapping[str, str], deadline: Deadline) -> PduConnection:
    """A bound TCP connection to the first address of ``portal`` that answers."""
    source = binding.get("ipaddress", "")
    device = binding.get("net_ifacename", "")
    last: OSError | None = None
    for family, sockaddr in net.resolve(portal):
        remaining = deadline.remaining()
        if remaining <= 0:
            break
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            sock.settimeout(remaining)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if device:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, device.encode())
            if source:
                sock.bind((source, 0))
            sock.connect(sockaddr)
        except OSError as exc:
            sock.close()
            last = exc
            continue
        return PduConnection(sock, portal)
    if last is None or isinstance(last, TimeoutError):
        raise TransportTimeoutError(f"connect to {portal} timed out")
    raise TransportError(f"cannot make connection to {portal}: {last.strerror or last}")


def login(spec: ConnectSpec) -> tuple[PduConnection, LoginAccepted] | TargetRedirected:
    """Connect and log in within ``spec.timeouts.login``; the connection in Full Feature
    Phase, or the redirect.  The connection is closed on every other outcome."""
    deadline = net.deadline_after(spec.timeouts.login)
    conn = connect(spec.portal, spec.binding, deadline)
    try:
        machine = LoginMachine(spec.login)
        step: LoginRequest | LoginAccepted | TargetRedirected = machine.start()
        while isinstance(step, LoginRequest):
            conn.send(step, deadline)
            step = machine.receive(conn.recv(deadline))
    except TransportTimeoutError:
        conn.close()
        raise TransportTimeoutError(f"login to {spec.portal} timed out") from None
    except RemoteProtocolError as exc:
        conn.close()
        raise RemoteProtocolError(
            f"login to {spec.portal} failed: {exc}",
            reject_reason=exc.reject_reason,
            code=IscsiErr.LOGIN,
        ) from exc
    except BaseException:
        conn.close()
        raise
    if isinstance(step, TargetRedirected):
        conn.close()
        return step
    net.enter_full_feature(conn, step)
    return conn, step
