"""iscsikit.net deadlines: every wait on a silent, slow or vanished peer ends in a typed
error with iscsiadm's code, when the one deadline of the exchange says so."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from iscsikit.errors import IscsiErr, TransportError, TransportTimeoutError
from iscsikit.net import Deadline, PduConnection, deadline_after, discover_sendtargets, run_login
from iscsikit.plugin import ConnectSpec, Timeouts
from iscsikit.proto.address import Portal, parse_portal
from iscsikit.proto.login import LoginConfig
from iscsikit.proto.pdu import Pdu, TextRequest
from iscsikit.testing.faketarget import FakeTarget, serve
from iscsikit.testing.hostile import Behaviour, ScriptedTarget, close_immediately, silent

INITIATOR = "iqn.2024-01.test.iscsikit:net"
ISID = bytes.fromhex("800102030405")
#: Scheduling slack on a loaded 2-CPU machine.
SLACK = 1.0


@contextmanager
def peer(behaviour: Behaviour) -> Iterator[Portal]:
    with ScriptedTarget(behaviour) as target:
        yield parse_portal(target.portal)


def spec(portal: Portal, **timeouts: float) -> ConnectSpec:
    login = LoginConfig(INITIATOR, ISID, operational={"HeaderDigest": "None"})
    return ConnectSpec(portal, login, Timeouts(**timeouts))


@contextmanager
def takes(low: float, high: float) -> Iterator[None]:
    started = time.monotonic()
    yield
    elapsed = time.monotonic() - started
    assert low <= elapsed <= high, elapsed


def test_deadline_counts_down_on_the_monotonic_clock() -> None:
    deadline = Deadline.after(5)
    assert 4 < deadline.remaining() <= 5
    assert not deadline.expired
    assert Deadline(time.monotonic() - 0.001).expired
    assert deadline_after(5).at >= deadline.at


def test_login_to_a_silent_target_times_out_with_code_8() -> None:
    timed_out = pytest.raises(TransportTimeoutError, match=r"timed out after 0\.5 s")
    with peer(silent()) as portal, takes(0.5, 0.5 + SLACK), timed_out as caught:
        run_login(spec(portal, login=0.5))
    assert caught.value.code == IscsiErr.TRANS_TIMEOUT


def trickle(conn: socket.socket) -> None:
    """Answer with one byte of a PDU header every 50 ms: always busy, never done."""
    conn.settimeout(10)
    conn.recv(4096)
    for _ in range(200):
        conn.sendall(b"\x23")
        time.sleep(0.05)


def test_a_trickling_peer_cannot_stretch_the_deadline() -> None:
    with peer(trickle) as portal:
        conn = PduConnection.connect(portal, deadline_after(2))
        with conn:
            conn.send_bytes(b"hello", deadline_after(1))
            with takes(0.6, 0.6 + SLACK), pytest.raises(TransportTimeoutError) as caught:
                conn.recv(deadline_after(0.6), timeout_code=IscsiErr.PDU_TIMEOUT)
    assert caught.value.code == IscsiErr.PDU_TIMEOUT


def test_an_expired_deadline_fails_before_touching_the_socket() -> None:
    with peer(silent()) as portal, PduConnection.connect(portal, deadline_after(2)) as conn:
        gone = Deadline(time.monotonic() - 1)
        with pytest.raises(TransportTimeoutError) as caught:
            conn.send_bytes(b"x", gone, timeout_code=IscsiErr.PDU_TIMEOUT)
        assert caught.value.code == IscsiErr.PDU_TIMEOUT
        with takes(0, SLACK), pytest.raises(TransportTimeoutError):
            conn.recv(gone)


class MuteInFullFeature(FakeTarget):
    """Logs in properly, then never answers a Text Request."""

    def receive(self, pdu: Pdu) -> list[Pdu]:
        return [] if isinstance(pdu, TextRequest) else super().receive(pdu)


def test_a_sendtargets_answer_that_never_comes_is_a_pdu_timeout() -> None:
    def behaviour(conn: socket.socket) -> None:
        serve(MuteInFullFeature(), conn)

    timed_out = pytest.raises(TransportTimeoutError)
    with peer(behaviour) as portal, takes(0.5, 0.5 + SLACK), timed_out as caught:
        discover_sendtargets(spec(portal, response=0.5, login=3))
    assert caught.value.code == IscsiErr.PDU_TIMEOUT


def test_a_peer_that_hangs_up_is_a_transport_error() -> None:
    with peer(close_immediately()) as portal, pytest.raises(TransportError) as caught:
        run_login(spec(portal))
    assert caught.value.code == IscsiErr.TRANS
    assert not isinstance(caught.value, TransportTimeoutError)


def test_a_refused_connection_is_a_transport_error() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # bound, not listening: connect is refused
        with pytest.raises(TransportError, match="ECONNREFUSED") as caught:
            PduConnection.connect(Portal("127.0.0.1", port), deadline_after(2))
    assert caught.value.code == IscsiErr.TRANS
