"""SendTargets through the HBA, for drivers whose kernel caps have CAP_TEXT_NEGO.

open-iscsi does not open a TCP socket of its own for these drivers: usr/discovery.c
(``iscsi_create_leading_conn``, linked into iscsiadm) makes a *kernel* discovery session
on the iface's host -- EP_CONNECT (through the host when the iface names one), EP_POLL,
CREATE_SESSION on the endpoint, CREATE_CONN, BIND_CONN --, sets the parameters, logs in
with SEND_PDU / RECV_PDU, sets the negotiated ones, START_CONN, asks ``SendTargets``
with Text PDUs through the kernel, and tears it down (``iscsi_destroy_session``:
EP_DISCONNECT, STOP_CONN, DESTROY_CONN, DESTROY_SESSION).

Here the session is kerneltcp's :class:`~iscsikit_drivers.kerneltcp.KernelSession` made
through the host (:class:`DiscoverySession` adds the two PDU calls a Text exchange
needs), and the exchange is the one SendTargets runner,
:func:`iscsikit.net.sendtargets`, over :class:`KernelPduConnection`: a
:class:`~iscsikit.net.PduConnection` whose PDUs go through the kernel session.
"""

from __future__ import annotations

from iscsikit import net
from iscsikit.errors import (
    ConnectionFailedError,
    IscsiErr,
    TransportError,
    TransportTimeoutError,
)
from iscsikit.netlink.events import ConnFailed, PduReceived
from iscsikit.proto.address import Portal
from iscsikit.proto.pdu import Pdu, decode_pdu, encode_pdu

from ..kerneltcp.kernel import KernelSession  # noqa: TID252

__all__ = ["DiscoverySession", "KernelPduConnection"]

_BHS = 48


class DiscoverySession(KernelSession):
    """A started kernel session that also carries Full Feature Phase PDUs for its owner
    (a discovery session's Text exchange; the kernel hands the answers up as RECV_PDU,
    as libiscsi does for a PDU userspace sent)."""

    def send_raw(self, pdu: bytes, data_length: int) -> None:
        """SEND_PDU of an encoded PDU (its header, then ``data_length`` data bytes)."""
        self._send_pdu(pdu[:_BHS], pdu[_BHS : _BHS + data_length])

    def next_pdu(self, timeout: float) -> bytes | None:
        """The next PDU the kernel handed up (RECV_PDU) within ``timeout``; a CONN_ERROR
        first fails the connection."""
        event = self._wait(lambda e: isinstance(e, PduReceived | ConnFailed), timeout)
        if isinstance(event, ConnFailed):
            raise ConnectionFailedError(
                f"discovery session {self.sid}: the connection failed ({event.error})"
            )
        return event.pdu if isinstance(event, PduReceived) else None


class KernelPduConnection(net.PduConnection):
    """:class:`~iscsikit.net.PduConnection` over a :class:`DiscoverySession`: ``send``
    is SEND_PDU, ``recv`` the next RECV_PDU.  No socket of its own (the HBA holds the
    connection), no digests (the kernel adds and checks them)."""

    def __init__(self, session: DiscoverySession, portal: Portal) -> None:
        # Not PduConnection.__init__: that one owns a socket.  The attributes its
        # callers read are set here.
        self.session = session
        self.portal = portal
        self.header_digest = False
        self.data_digest = False
        self.pdus_sent = 0
        self._closed = False
        self._itt = 0

    def send(
        self, pdu: Pdu, deadline: net.Deadline, *, timeout_code: IscsiErr = IscsiErr.TRANS_TIMEOUT
    ) -> None:
        self._require_open()
        raw = encode_pdu(pdu)
        self._itt = int.from_bytes(raw[16:20], "big")
        self.session.send_raw(raw, len(getattr(pdu, "data", b"")))
        self.pdus_sent += 1

    def recv(
        self, deadline: net.Deadline, *, timeout_code: IscsiErr = IscsiErr.TRANS_TIMEOUT
    ) -> Pdu:
        self._require_open()
        raw = self.session.next_pdu(max(0.0, deadline.remaining()))
        if raw is None:
            raise TransportTimeoutError(
                f"timed out waiting for a PDU from {self.portal}", code=timeout_code
            )
        return decode_pdu(_answer_to(raw, self._itt))

    def close(self) -> None:
        self._closed = True

    def _require_open(self) -> None:
        if self._closed:
            raise TransportError(f"discovery connection to {self.portal} is closed")


def _answer_to(pdu: bytes, itt: int) -> bytes:
    """A PDU from RECV_PDU as the exchange expects it: padded to 4 bytes, and, for an
    answer (not a NOP-In ping, ITT 0xffffffff), the ITT of the request it answers
    (libiscsi sends with an ITT of its own and hands the answer up with it)."""
    length = _BHS + pdu[4] * 4 + int.from_bytes(pdu[5:8], "big")
    body = pdu[:length].ljust(length + (-length & 3), b"\0")
    if body[16:20] == b"\xff\xff\xff\xff":
        return body
    return body[:16] + itt.to_bytes(4, "big") + body[20:]
