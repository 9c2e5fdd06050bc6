"""The simulated offload data path (simhba.datapath) against a scripted peer socket."""

from __future__ import annotations

import socket
import struct
from collections.abc import Iterator
from pathlib import Path

import pytest

from iscsikit.netlink.constants import ConnError
from iscsikit.netlink.events import (
    ConnFailed,
    EndpointConnected,
    PduReceived,
    SessionCreated,
    SessionUnbound,
)
from iscsikit.netlink.messages import (
    BindConn,
    CreateBoundSession,
    CreateConn,
    EpConnectThroughHost,
    EpDisconnect,
    SendPdu,
    UnbindSession,
)
from iscsikit.testing.kit import wait_for
from iscsikit.testing.simhba import SimulatedHba


class Bound:
    def __init__(self, hba: SimulatedHba, peer: socket.socket, ep: int) -> None:
        self.hba, self.peer, self.ep = hba, peer, ep


@pytest.fixture
def bound(tmp_path: Path) -> Iterator[Bound]:
    """A session whose connection is bound to an endpoint; the peer is the target."""
    hba = SimulatedHba(tmp_path, "qla4xxx")
    with socket.create_server(("127.0.0.1", 0)) as listener:
        address = ("127.0.0.1", listener.getsockname()[1])
        (ep,) = hba.handle(EpConnectThroughHost(transport_handle=0, host_no=7, address=address))
        assert isinstance(ep, EndpointConnected)
        peer, _ = listener.accept()
    (made,) = hba.handle(CreateBoundSession(
        transport_handle=0, ep_handle=ep.handle, initial_cmdsn=5, cmds_max=128, queue_depth=32
    ))  # fmt: skip
    assert isinstance(made, SessionCreated) and (made.sid, made.host_no) == (1, 7)
    hba.handle(CreateConn(transport_handle=0, sid=1, cid=0))
    hba.handle(BindConn(transport_handle=0, sid=1, cid=0, transport_eph=ep.handle))
    with peer:
        yield Bound(hba, peer, ep.handle)
    hba.close()


def _pdu(opcode: int, data: bytes = b"", statsn: int = 0, exp_cmdsn: int = 0) -> bytes:
    bhs = bytearray(48)
    bhs[0] = opcode
    bhs[5:8] = len(data).to_bytes(3, "big")
    bhs[24:32] = struct.pack(">II", statsn, exp_cmdsn)
    return bytes(bhs) + data + bytes(-len(data) & 3)


def test_pdus_both_ways_and_the_kernel_fills_a_logout(bound: Bound) -> None:
    hba, peer = bound.hba, bound.peer
    login = _pdu(0x43, b"InitiatorName=x\0")
    hba.handle(SendPdu(transport_handle=0, sid=1, cid=0, hdr=login[:48], data=login[48:64]))
    assert peer.recv(4096) == login  # a Login goes as it is, data padded
    peer.sendall(_pdu(0x23, b"TargetPortalGroupTag=1\0", statsn=41, exp_cmdsn=5))
    assert wait_for(lambda: any(isinstance(e, PduReceived) for e in hba.events), 5)
    (got,) = [e for e in hba.events if isinstance(e, PduReceived)]
    assert got.pdu[:1] == b"\x23" and got.pdu[48:71] == b"TargetPortalGroupTag=1\0"
    hba.handle(SendPdu(transport_handle=0, sid=1, cid=0, hdr=bytes([0x46, 0x80]) + bytes(46)))
    logout = peer.recv(4096)
    itt, cmdsn, exp_statsn = struct.unpack_from(">I4xII", logout, 16)
    assert (itt != 0, cmdsn, exp_statsn) == (True, 5, 42)


def test_target_closing_is_a_conn_error_once(bound: Bound) -> None:
    bound.peer.close()
    assert wait_for(lambda: any(isinstance(e, ConnFailed) for e in bound.hba.events), 5)
    (failed,) = [e for e in bound.hba.events if isinstance(e, ConnFailed)]
    assert (failed.sid, failed.cid, failed.error) == (1, 0, ConnError.TCP_CONN_CLOSE)


def test_disconnect_we_ask_for_is_not_an_error(bound: Bound) -> None:
    replies = bound.hba.handle(UnbindSession(transport_handle=0, sid=1))
    assert isinstance(replies[-1], SessionUnbound) and replies[-1].sid == 1
    bound.hba.handle(EpDisconnect(transport_handle=0, ep_handle=bound.ep))
    assert bound.peer.recv(10) == b""  # the target sees the connection close
    assert not wait_for(lambda: any(isinstance(e, ConnFailed) for e in bound.hba.events), 0.5)
