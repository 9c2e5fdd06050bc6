"""drivers/iser on the host: registration through the entry point, the login keys it
sends, the SET_PARAM lengths of an iSER session, and its connect step (EP_CONNECT,
EP_POLL, EP_DISCONNECT) against a fake kernel on a datagram socketpair."""

from __future__ import annotations

import errno
import socket
import threading
from collections.abc import Iterator

import pytest

from iscsikit import net
from iscsikit.errors import ConnectionFailedError, FatalLoginError, TransportTimeoutError
from iscsikit.netlink import IscsiParam, decode_request
from iscsikit.netlink.constants import UEvent
from iscsikit.netlink.events import EndpointConnected, RequestDone, RequestFailed
from iscsikit.netlink.messages import EpConnect, EpDisconnect, EpPoll, Request
from iscsikit.plugin import Capability, manager
from iscsikit.proto.address import parse_portal
from iscsikit.proto.login import LoginAccepted, LoginConfig
from iscsikit_drivers.iser import IserConnector, IserTransport
from iscsikit_drivers.kerneltcp import NetlinkChannel, negotiated_params
from iscsikit_drivers.kerneltcp.endpoint import KernelEndpoint, TcpConnector

PORTAL = parse_portal("10.99.0.1:3260")
HANDLE = 0xFFFF888012345678


def test_iser_comes_from_the_entry_point_with_a_block_device() -> None:
    _, registry = manager.build()
    cls = registry.get("iser")
    assert cls is IserTransport
    assert Capability.BLOCK_DEVICE in cls.capabilities
    assert Capability.HEADER_DIGEST not in cls.capabilities  # iSER has no digests
    assert isinstance(IserTransport().connector(), IserConnector)
    assert IserConnector.bound_session and not TcpConnector.bound_session


def test_login_config_offers_iser_keys_for_normal_sessions_only() -> None:
    normal = LoginConfig(
        "iqn.2024-01.test:i",
        bytes(6),
        target_name="iqn.2024-01.test:t",
        operational={"HeaderDigest": "None", "MaxRecvDataSegmentLength": "262144"},
    )
    keys = IserConnector().login_config(normal).operational
    assert keys == {
        "InitiatorRecvDataSegmentLength": "262144",
        "TargetRecvDataSegmentLength": "8192",
        "RDMAExtensions": "Yes",
    }
    discovery = LoginConfig("iqn.2024-01.test:i", bytes(6), operational={"HeaderDigest": "None"})
    assert IserConnector().login_config(discovery) == discovery
    assert TcpConnector().login_config(normal) == normal


def test_set_param_lengths_of_an_iser_session() -> None:
    accepted = LoginAccepted(
        params={
            "RDMAExtensions": "Yes",
            "InitiatorRecvDataSegmentLength": "262144",
            "TargetRecvDataSegmentLength": "8192",
        },
        tsih=1,
        statsn=0,
        expcmdsn=1,
        maxcmdsn=64,
        target_portal_group_tag=1,
        target_alias=None,
    )
    params = dict(negotiated_params(accepted))
    assert params[IscsiParam.MAX_RECV_DLENGTH] == "262144"
    assert params[IscsiParam.MAX_XMIT_DLENGTH] == "8192"
    assert (params[IscsiParam.HDRDGST_EN], params[IscsiParam.DATADGST_EN]) == ("0", "0")
    with pytest.raises(FatalLoginError, match="RDMAExtensions"):
        IserConnector().check_login(
            LoginAccepted(
                params={"RDMAExtensions": "No"},
                tsih=1,
                statsn=0,
                expcmdsn=1,
                maxcmdsn=1,
                target_portal_group_tag=1,
                target_alias=None,
            )
        )


# -- the connect step against a fake kernel ----------------------------------------------------


class FakeKernel:
    """Answers EP_CONNECT with HANDLE, each EP_POLL with the next of ``polls``, and
    EP_DISCONNECT with 0; records every request."""

    def __init__(self, peer: socket.socket, polls: list[int], connect_handle: int = HANDLE):
        self.peer = peer
        self.polls = polls
        self.connect_handle = connect_handle
        self.requests: list[Request] = []
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while True:
            try:
                data = self.peer.recv(65536)
            except OSError:
                return
            if not data:
                return
            msg = decode_request(data)
            self.requests.append(msg)
            if isinstance(msg, EpConnect):
                reply = EndpointConnected(
                    transport_handle=msg.transport_handle,
                    request_type=UEvent.TRANSPORT_EP_CONNECT,
                    handle=self.connect_handle,
                )
                self.peer.send(reply.encode())
            elif isinstance(msg, EpPoll):
                status = self.polls.pop(0) if self.polls else 0
                done = RequestDone(
                    transport_handle=msg.transport_handle,
                    request_type=UEvent.TRANSPORT_EP_POLL,
                    retcode=status,
                )
                self.peer.send(done.encode())
            elif isinstance(msg, EpDisconnect):
                failed = RequestFailed(
                    transport_handle=msg.transport_handle,
                    request_type=UEvent.TRANSPORT_EP_DISCONNECT,
                    errno=errno.EINVAL,  # the kernel freed it already: ignored
                )
                self.peer.send(failed.encode())


@pytest.fixture
def pair() -> Iterator[tuple[NetlinkChannel, socket.socket]]:
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
    with NetlinkChannel(ours) as channel, theirs:
        yield channel, theirs


def test_ep_connect_then_poll_until_connected(pair: tuple[NetlinkChannel, socket.socket]) -> None:
    channel, peer = pair
    kernel = FakeKernel(peer, [0, 0, 1])
    endpoint = IserConnector().connect(channel, 7, PORTAL, net.deadline_after(5.0))
    assert isinstance(endpoint, KernelEndpoint)
    assert endpoint.handle == HANDLE and endpoint.close_before_stop
    connect, *polls = kernel.requests
    assert connect == EpConnect(transport_handle=7, address=("10.99.0.1", 3260), non_blocking=1)
    assert [type(p) for p in polls] == [EpPoll] * 3
    assert all(isinstance(p, EpPoll) and p.ep_handle == HANDLE for p in polls)
    endpoint.close(clean=True)  # EP_DISCONNECT refused with EINVAL: not an error
    endpoint.close(clean=True)  # idempotent: sent once
    assert kernel.requests[-1] == EpDisconnect(transport_handle=7, ep_handle=HANDLE)
    assert sum(isinstance(r, EpDisconnect) for r in kernel.requests) == 1


def test_a_failed_poll_disconnects_and_fails(pair: tuple[NetlinkChannel, socket.socket]) -> None:
    channel, peer = pair
    kernel = FakeKernel(peer, [0, -1])
    with pytest.raises(ConnectionFailedError, match="EP_POLL -1"):
        IserConnector().connect(channel, 7, PORTAL, net.deadline_after(5.0))
    assert kernel.requests[-1] == EpDisconnect(transport_handle=7, ep_handle=HANDLE)


def test_the_poll_is_bounded_by_the_login_timeout(
    pair: tuple[NetlinkChannel, socket.socket],
) -> None:
    channel, peer = pair
    kernel = FakeKernel(peer, [])  # never connected
    with pytest.raises(TransportTimeoutError):
        IserConnector().connect(channel, 7, PORTAL, net.deadline_after(0.3))
    polls = [r for r in kernel.requests if isinstance(r, EpPoll)]
    assert polls and all(p.timeout_ms <= 300 for p in polls)
    assert kernel.requests[-1] == EpDisconnect(transport_handle=7, ep_handle=HANDLE)


def test_a_zero_handle_is_a_failed_connect(pair: tuple[NetlinkChannel, socket.socket]) -> None:
    channel, peer = pair
    kernel = FakeKernel(peer, [], connect_handle=0)
    with pytest.raises(ConnectionFailedError):
        IserConnector().connect(channel, 7, PORTAL, net.deadline_after(1.0))
    assert [type(r) for r in kernel.requests] == [EpConnect]
