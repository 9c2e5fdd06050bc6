"""iSNS discovery over TCP, as ``iscsiadm -m discovery -t isns`` does it.

The one iSNS runner: it connects to the server, asks (DevAttrQry, as the initiator)
for the targets this initiator may see, and returns them as
:class:`~iscsikit.proto.sendtargets.DiscoveredTarget` records, the SendTargets
runner's kind, so :func:`iscsikit.discovery.db.apply_discovery` writes both.  When the
server answers SOURCE_UNKNOWN (it wants the source registered) the initiator registers
(DevAttrReg: name and node type Initiator), queries again and deregisters afterwards,
as open-iscsi's ``discovery_isns`` does.  The protocol is :mod:`iscsikit.proto.isns`;
here are only the socket and the deadlines: connecting, and every response, is bounded
by ``timeout`` seconds (libisns's ``call_timeout`` is 60).

Failures raise :class:`~iscsikit.errors.IscsiError` with iscsiadm's codes: a server that
cannot be reached, stays silent or breaks the protocol 25 (ISNS_QUERY, "iSNS query
failed"), a refused registration 26 (ISNS_REG_FAILED).  Nothing is printed.
"""

from __future__ import annotations

import contextlib
import socket
from dataclasses import dataclass
from types import TracebackType

from iscsikit.errors import IscsiErr, IscsiError, TransportError
from iscsikit.net.connection import Deadline, PduConnection
from iscsikit.proto.address import Portal
from iscsikit.proto.isns import (
    DEFAULT_PORT,
    IsnsClient,
    IsnsProtocolError,
    Response,
    ScnBits,
    Status,
    Tag,
    discovered_targets,
)
from iscsikit.proto.sendtargets import DiscoveredTarget
from iscsikit.records.model import DiscoveryRecord

__all__ = [
    "CALL_TIMEOUT",
    "DEFAULT_PORT",
    "IsnsQueryError",
    "ScnRegistration",
    "isns_query",
    "isns_scn_deregister",
    "isns_scn_register",
    "isns_targets",
]

#: Seconds for connecting and for each response (libisns ``call_timeout``).
CALL_TIMEOUT = 60.0
_RECV_SIZE = 64 * 1024


class IsnsQueryError(IscsiError):
    """The query failed: no server, silence, a bad answer or a failure status (exit 25).

    ``status`` is the server's status, when it sent one."""

    code = IscsiErr.ISNS_QUERY

    def __init__(
        self, message: str, *, status: Status | None = None, code: IscsiErr | None = None
    ) -> None:
        super().__init__(message, code=code)
        self.status = status


class _Channel:
    """One TCP connection to the server carrying one request/response at a time."""

    def __init__(self, portal: Portal, timeout: float) -> None:
        self.portal, self.timeout = portal, timeout
        try:
            conn = PduConnection.connect(portal, Deadline.after(timeout))
        except TransportError as exc:
            raise IsnsQueryError(f"iSNS discovery failed: {exc}") from exc
        self.sock, _ = conn.detach()

    def call(self, client: IsnsClient, request: bytes) -> Response:
        deadline = Deadline.after(self.timeout)
        try:
            self.sock.settimeout(max(deadline.remaining(), 0.001))
            self.sock.sendall(request)
            while True:
                remaining = deadline.remaining()
                if remaining <= 0:
                    raise TimeoutError
                self.sock.settimeout(remaining)
                response = client.receive_data(self.sock.recv(_RECV_SIZE))
                if response is not None:
                    return response
        except TimeoutError:
            raise IsnsQueryError(
                f"iSNS discovery failed: no response from {self.portal} in {self.timeout:g} s"
            ) from None
        except IsnsProtocolError as exc:
            raise IsnsQueryError(f"iSNS discovery failed: {exc}") from exc
        except OSError as exc:
            raise IsnsQueryError(
                f"iSNS discovery failed: connection to {self.portal}: {exc.strerror or exc}"
            ) from None

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)
        self.sock.close()

    def __enter__(self) -> _Channel:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def _registered(reg: Response, initiator_name: str) -> None:
    """A DevAttrReg response: refused raises :class:`IsnsQueryError` (26)."""
    if reg.status is not Status.SUCCESSFUL:
        raise IsnsQueryError(
            f"Could not register {initiator_name} with iSNS server: {reg.status.text}.",
            status=reg.status,
            code=IscsiErr.ISNS_REG_FAILED,
        )


def isns_query(
    portal: Portal,
    initiator_name: str,
    *,
    target: str | None = None,
    timeout: float = CALL_TIMEOUT,
) -> list[DiscoveredTarget]:
    """The targets (or the one named ``target``) the iSNS server at ``portal`` shows
    ``initiator_name``: one record per Portal Group with a tag.  Registers and
    deregisters the initiator around a second query when the server does not know it."""
    client = IsnsClient(initiator_name)
    with _Channel(portal, timeout) as channel:
        response = channel.call(client, client.query_request(target))
        registered = False
        if response.status is Status.SOURCE_UNKNOWN:
            _registered(channel.call(client, client.register_request()), initiator_name)
            registered = True
            response = channel.call(client, client.query_request(target))
        try:
            if response.status is Status.SOURCE_UNKNOWN:
                raise IsnsQueryError(
                    f"iSNS discovery failed: {response.status.text}",
                    status=response.status,
                    code=IscsiErr.ISNS_REG_FAILED,
                )
            if response.status is not Status.SUCCESSFUL:
                raise IsnsQueryError(
                    f"iSNS discovery failed: {response.status.text}", status=response.status
                )
            try:
                return discovered_targets(response)
            except IsnsProtocolError as exc:
                raise IsnsQueryError(f"iSNS discovery failed: {exc}") from exc
        finally:
            if registered:  # best effort, as open-iscsi (its result is only logged)
                with contextlib.suppress(IscsiError):
                    channel.call(client, client.deregister_request())


def isns_targets(
    record: DiscoveryRecord, initiator_name: str, *, timeout: float = CALL_TIMEOUT
) -> list[DiscoveredTarget]:
    """:func:`isns_query` at an iSNS discovery record's server (its
    ``discovery.sendtargets.address/port``, open-iscsi's key names for iSNS too)."""
    return isns_query(Portal(record.address, record.port), initiator_name, timeout=timeout)


@dataclass(frozen=True, slots=True)
class ScnRegistration:
    """What the server answered: the SCNReg status (open-isns refuses SCNReg for a
    node without an SCN port, 17) and the entity's Registration Period in seconds
    (None: the registration does not expire, RFC 4171 §6.2.6)."""

    scn_status: Status
    period: int | None


def isns_scn_register(
    portal: Portal,
    initiator_name: str,
    *,
    entity: str,
    address: str,
    scn_port: int,
    bitmap: int = ScnBits.initiator_default(),
    timeout: float = CALL_TIMEOUT,
) -> ScnRegistration:
    """Register entity ``entity`` with a portal ``address:scn_port`` whose SCN port is
    ``scn_port`` and the initiator's node (replacing an earlier registration), then
    SCNReg the node with ``bitmap``, as open-iscsi's discoveryd (``isns_scn_register``).
    A refused DevAttrReg raises :class:`IsnsQueryError` (26, ISNS_REG_FAILED) with the
    server's status; a refused SCNReg is returned (the caller may poll instead)."""
    client = IsnsClient(initiator_name)
    with _Channel(portal, timeout) as channel:
        reg = channel.call(
            client, client.register_entity_request(entity, address, scn_port, scn_port)
        )
        _registered(reg, initiator_name)
        period = None
        for attr in reg.operating:
            if attr.tag == Tag.REGISTRATION_PERIOD and len(attr.value) == 4:
                period = attr.as_uint32() or None
                break
        scn = channel.call(client, client.scn_register_request(bitmap))
        return ScnRegistration(scn.status, period)


def isns_scn_deregister(
    portal: Portal, initiator_name: str, *, entity: str, timeout: float = CALL_TIMEOUT
) -> None:
    """SCNDereg of the node, then DevDereg of ``entity`` (its portal and node go with
    it).  A failure status of either is ignored (the registration is gone either way);
    a server that cannot be reached raises :class:`IsnsQueryError`."""
    client = IsnsClient(initiator_name)
    with _Channel(portal, timeout) as channel:
        channel.call(client, client.scn_deregister_request())
        channel.call(client, client.deregister_entity_request(entity))
