"""drivers/kerneltcp on the host: the SET_PARAM list, and request/reply/event routing of
the netlink channel against a fake kernel on a datagram socketpair (no netlink here)."""

from __future__ import annotations

import errno
import socket
import threading
from collections.abc import Iterator

import pytest

from iscsikit.errors import TransportTimeoutError
from iscsikit.netlink import IscsiParam, NetlinkRequestError, decode_request
from iscsikit.netlink.events import ConnFailed, RequestDone, RequestFailed, SessionCreated
from iscsikit.netlink.messages import CreateSession, SetParam
from iscsikit.plugin import ConnectSpec
from iscsikit.proto.address import parse_portal
from iscsikit.proto.login import ChapSecrets, LoginAccepted, LoginConfig, TargetRedirected
from iscsikit_drivers.kerneltcp import (
    KernelSettings,
    NetlinkChannel,
    negotiated_params,
    session_params,
)

SPEC = ConnectSpec(
    parse_portal("192.0.2.7:3261"),
    LoginConfig(
        "iqn.2024-01.test:init",
        bytes.fromhex("400001370001"),
        target_name="iqn.2024-01.test:disk",
        chap=ChapSecrets("user", b"secret"),
    ),
)
ACCEPTED = LoginAccepted(
    params={
        "HeaderDigest": "CRC32C",
        "DataDigest": "None",
        "MaxRecvDataSegmentLength": "65536",
        "MaxXmitDataSegmentLength": "262144",
        "InitialR2T": "No",
        "ImmediateData": "Yes",
        "FirstBurstLength": "65536",
        "MaxBurstLength": "1048576",
        "MaxOutstandingR2T": "1",
        "DefaultTime2Wait": "2",
        "DefaultTime2Retain": "0",
    },
    tsih=5,
    statsn=0xFFFFFFFF,
    expcmdsn=1,
    maxcmdsn=32,
    target_portal_group_tag=3,
    target_alias=None,
)


def test_session_params_follow_iscsid_and_skip_empty_values() -> None:
    params = dict(session_params(SPEC, KernelSettings(recovery_tmo=7)))
    assert params[IscsiParam.TARGET_NAME] == "iqn.2024-01.test:disk"
    assert params[IscsiParam.PERSISTENT_ADDRESS] == "192.0.2.7"
    assert params[IscsiParam.PERSISTENT_PORT] == "3261"
    assert params[IscsiParam.SESS_RECOVERY_TMO] == "7"
    assert (params[IscsiParam.USERNAME], params[IscsiParam.PASSWORD]) == ("user", "secret")
    assert IscsiParam.USERNAME_IN not in params  # one-way CHAP: empty values are not sent
    assert params[IscsiParam.PING_TMO] == params[IscsiParam.RECV_TMO] == "5"
    assert params[IscsiParam.INITIATOR_NAME] == "iqn.2024-01.test:init"
    assert params[IscsiParam.IFACE_NAME] == "default"
    assert params[IscsiParam.ISID] == "400001370001"


def test_negotiated_params_carry_what_login_agreed() -> None:
    pairs = negotiated_params(ACCEPTED)
    params = dict(pairs)
    assert params[IscsiParam.MAX_RECV_DLENGTH] == "65536"
    assert params[IscsiParam.MAX_XMIT_DLENGTH] == "262144"
    assert (params[IscsiParam.HDRDGST_EN], params[IscsiParam.DATADGST_EN]) == ("1", "0")
    assert (params[IscsiParam.INITIAL_R2T_EN], params[IscsiParam.IMM_DATA_EN]) == ("0", "1")
    assert params[IscsiParam.MAX_BURST] == "1048576"
    assert params[IscsiParam.ERL] == params[IscsiParam.IFMARKER_EN] == "0"
    assert params[IscsiParam.EXP_STATSN] == "0"  # StatSN + 1, modulo 2**32
    # iscsid's order: EXP_STATSN then TPGT last.
    assert [p for p, _ in pairs[-2:]] == [IscsiParam.EXP_STATSN, IscsiParam.TPGT]
    assert params[IscsiParam.TPGT] == "3"


@pytest.fixture
def kernel() -> Iterator[tuple[NetlinkChannel, socket.socket]]:
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
    with NetlinkChannel(ours) as channel, theirs:
        yield channel, theirs


def _answer(peer: socket.socket, *replies: bytes) -> threading.Thread:
    """Play the kernel: read one request, then send ``replies`` (one datagram each)."""

    def run() -> None:
        peer.recv(65536)
        for reply in replies:
            peer.send(reply)

    thread = threading.Thread(target=run)
    thread.start()
    return thread


def test_reply_returned_and_events_meanwhile_queued(
    kernel: tuple[NetlinkChannel, socket.socket],
) -> None:
    channel, peer = kernel
    seen: list[object] = []
    channel.on_event = seen.append
    event = ConnFailed(transport_handle=1, sid=4, cid=0, error=1020)
    reply = SessionCreated(transport_handle=1, request_type=11, sid=4, host_no=2)
    thread = _answer(peer, event.encode(), reply.encode())
    got = channel.request(
        CreateSession(transport_handle=1, initial_cmdsn=1, cmds_max=128, queue_depth=32), 2.0
    )
    thread.join()
    assert got == reply
    assert seen == [event]
    assert channel.next_event() == event
    assert channel.next_event() is None


def test_request_reaches_the_kernel_as_encoded(
    kernel: tuple[NetlinkChannel, socket.socket],
) -> None:
    channel, peer = kernel
    msg = SetParam(transport_handle=9, sid=1, cid=0, param=IscsiParam.TPGT, value="3")
    box: list[bytes] = []

    def run() -> None:
        box.append(peer.recv(65536))
        peer.send(RequestDone(transport_handle=9, request_type=16).encode())

    thread = threading.Thread(target=run)
    thread.start()
    channel.request(msg, 2.0)
    thread.join()
    assert decode_request(box[0]) == msg


def test_if_error_raises_and_timeouts_are_bounded(
    kernel: tuple[NetlinkChannel, socket.socket],
) -> None:
    channel, peer = kernel
    msg = SetParam(transport_handle=9, sid=1, cid=0, param=IscsiParam.PING_TMO, value="5")
    thread = _answer(
        peer, RequestFailed(transport_handle=9, request_type=16, errno=errno.ENOSYS).encode()
    )
    with pytest.raises(NetlinkRequestError) as exc:
        channel.request(msg, 2.0)
    thread.join()
    assert exc.value.not_supported
    with pytest.raises(TransportTimeoutError):
        channel.request(msg, 0.2)  # nobody answers
    assert channel.wait_event(lambda e: True, 0.1) is None


def test_a_closed_peer_ends_the_channel_instead_of_reading_empty_forever() -> None:
    """A connected stand-in for the kernel (a simulator's SOCK_SEQPACKET end) reads
    empty once closed: the event reader must stop, not spin at 100% CPU until its
    deadline and then start over."""
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    theirs.close()
    with NetlinkChannel(ours) as channel, pytest.raises(ConnectionResetError):
        channel.next_message(timeout=30.0)


def test_the_kernel_transport_connects_as_the_iface_binds(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A node's iface binding (ConnectSpec.binding) reaches the connector that makes the
    socket the kernel is handed, at login and at adoption (for later reconnects)."""
    import dataclasses

    from iscsikit_drivers.kerneltcp import transport as kt

    seen: list[object] = []

    def fake(*_: object, connector: object, **__: object) -> TargetRedirected:
        seen.append(connector)
        return TargetRedirected(parse_portal("192.0.2.9:3260"), tpgt=None, permanent=False)

    monkeypatch.setattr(kt.KernelSession, "login", staticmethod(fake))
    monkeypatch.setattr(kt.KernelTransport, "transport_handle", lambda self: 1)
    binding = {"iface.net_ifacename": "eth7"}
    transport = kt.KernelTransport()
    transport.login(dataclasses.replace(SPEC, binding=binding))
    transport.login(SPEC)
    bound, unbound = seen
    assert isinstance(bound, kt.TcpConnector) and bound.binding == binding
    assert isinstance(unbound, kt.TcpConnector) and unbound.binding == {}
