"""iscsikit.net against the in-process FakeTarget served on loopback: login, SendTargets,
ping, logout, redirects, target pings answered, and the socket handed over."""

from __future__ import annotations

import socket
import threading

import pytest

from iscsikit.errors import LocalProtocolError, TransportError
from iscsikit.net import (
    PduConnection,
    deadline_after,
    discover_sendtargets,
    logout,
    ping,
    run_login,
    sendtargets,
    session_state,
)
from iscsikit.plugin import ConnectSpec, Timeouts
from iscsikit.proto.address import parse_portal
from iscsikit.proto.constants import RESERVED_TAG
from iscsikit.proto.login import LoginAccepted, LoginConfig, TargetRedirected
from iscsikit.proto.pdu import (
    LoginRequest,
    LogoutRequest,
    NopIn,
    NopOut,
    Pdu,
    TextRequest,
    decode_pdu,
    encode_pdu,
)
from iscsikit.proto.sendtargets import DiscoveredTarget
from iscsikit.proto.session import LogoutAccepted, nop_out_ping
from iscsikit.testing.faketarget import FakeTarget, FakeTargetConfig, serve
from iscsikit.testing.hostile import ScriptedTarget, read_pdu

INITIATOR = "iqn.2024-01.test.iscsikit:net"
ISID = bytes.fromhex("800102030405")
DISK = "iqn.2024-01.test.fake:disk"
TARGETS = {
    DISK: ["127.0.0.1:3260,1", "[::1]:3260,1"],
    "iqn.2024-01.test.fake:tape": ["10.0.0.9:3261,7"],
}


class Served:
    """A ScriptedTarget whose every connection is served by a fresh ``make()`` target."""

    def __init__(self, make: type[FakeTarget] = FakeTarget, **config: object) -> None:
        self.fakes: list[FakeTarget] = []
        self._make = make
        # The fake target accepts digests only when its own list allows them.
        digests = {"HeaderDigest": "CRC32C,None", "DataDigest": "CRC32C,None"}
        self._config = FakeTargetConfig(operational=digests, **config)  # type: ignore[arg-type]
        self.server = ScriptedTarget(self._serve)
        self._lock = threading.Lock()

    def _serve(self, conn: socket.socket) -> None:
        fake = self._make(self._config)
        with self._lock:
            self.fakes.append(fake)
        serve(fake, conn, timeout=5.0)

    def spec(self, target: str | None = None, **operational: str) -> ConnectSpec:
        offers = {"HeaderDigest": "None", "DataDigest": "None", **operational}
        login = LoginConfig(INITIATOR, ISID, target_name=target, operational=offers)
        return ConnectSpec(
            parse_portal(self.server.portal), login, Timeouts(login=3, logout=3, response=3)
        )

    def requests(self) -> list[Pdu]:
        (fake,) = self.fakes
        return fake.requests

    def __enter__(self) -> Served:
        self.server.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.stop()
        assert not self.server.errors


@pytest.mark.parametrize("digest", ["None", "CRC32C"])
@pytest.mark.parametrize("chunk", [None, 9])
def test_discover_sendtargets_logs_in_asks_and_logs_out(digest: str, chunk: int | None) -> None:
    with Served(targets=TARGETS, sendtargets_chunk=chunk) as served:
        found = discover_sendtargets(served.spec(HeaderDigest=digest, DataDigest=digest))
    assert found == [
        DiscoveredTarget(DISK, "127.0.0.1", 3260, 1),
        DiscoveredTarget(DISK, "::1", 3260, 1),
        DiscoveredTarget("iqn.2024-01.test.fake:tape", "10.0.0.9", 3261, 7),
    ]
    (fake,) = served.fakes
    assert fake.session_type == "Discovery"
    assert fake.negotiated["HeaderDigest"] == digest
    kinds = [type(p) for p in fake.requests]
    assert kinds[0] is LoginRequest and kinds[-1] is LogoutRequest
    # A split answer is asked for again (empty Text Request with the TTT) until complete.
    assert (kinds.count(TextRequest) > 1) == (chunk is not None)


def test_sendtargets_for_one_name() -> None:
    with Served(targets=TARGETS) as served:
        found = discover_sendtargets(served.spec(), "iqn.2024-01.test.fake:tape")
    assert isinstance(found, list)
    assert [str(t) for t in found] == ["10.0.0.9:3261,7 iqn.2024-01.test.fake:tape"]


def test_normal_login_applies_what_was_negotiated_then_ping_sendtargets_logout() -> None:
    with Served(targets=TARGETS) as served:
        spec = served.spec(
            DISK, HeaderDigest="CRC32C", DataDigest="CRC32C", MaxRecvDataSegmentLength="65536"
        )
        result = run_login(spec)
        assert not isinstance(result, TargetRedirected)
        conn, accepted = result
        assert isinstance(accepted, LoginAccepted)
        assert accepted.params["MaxRecvDataSegmentLength"] == "65536"
        assert conn.header_digest and conn.data_digest
        assert conn.reader.max_data_segment_length == 65536
        state = session_state(spec, accepted)
        assert state.expstatsn == (accepted.statsn + 1) & 0xFFFFFFFF
        assert ping(conn, state, deadline_after(3)) >= 0
        own = sendtargets(conn, state, deadline_after(3), DISK)
        assert {t.name for t in own} == {DISK}
        assert logout(conn, state, deadline_after(3)) == LogoutAccepted(2, 0)
        assert conn.closed
        with pytest.raises(TransportError, match="closed"):
            ping(conn, state, deadline_after(1))
    kinds = [type(p) for p in served.requests()]
    assert kinds == [LoginRequest, NopOut, TextRequest, LogoutRequest]


def test_a_redirect_is_returned_and_its_connection_closed() -> None:
    with Served(redirect="192.0.2.7:3262,4", permanent_redirect=True) as served:
        result = run_login(served.spec(DISK))
        discovered = discover_sendtargets(served.spec())
    for event in (result, discovered):
        assert event == TargetRedirected(parse_portal("192.0.2.7:3262"), 4, True)
    assert len(served.fakes) == 2


class PingingTarget(FakeTarget):
    """Pings the initiator (NOP-In with a Target Transfer Tag) before each Text answer."""

    def receive(self, pdu: Pdu) -> list[Pdu]:
        answers = super().receive(pdu)
        if isinstance(pdu, TextRequest):
            nop = NopIn(
                itt=RESERVED_TAG,
                ttt=0x77,
                statsn=self.statsn,  # unsolicited: the next StatSN, not consumed
                expcmdsn=self.expcmdsn,
                maxcmdsn=self.expcmdsn + 16,
                data=b"are you there",
            )
            answers.insert(0, nop)
        return answers


def test_target_pings_are_answered_while_waiting_for_the_answer() -> None:
    with Served(PingingTarget, targets=TARGETS) as served:
        found = discover_sendtargets(served.spec())
    assert isinstance(found, list) and len(found) == 3
    answers = [p for p in served.requests() if isinstance(p, NopOut)]
    assert len(answers) == 1
    (answer,) = answers
    assert (answer.ttt, answer.itt, answer.data) == (0x77, RESERVED_TAG, b"are you there")


def test_discovery_refuses_a_normal_session_spec() -> None:
    with Served() as served, pytest.raises(LocalProtocolError, match="Discovery"):
        discover_sendtargets(served.spec(DISK))
    assert served.fakes == []  # refused before connecting


def test_detach_hands_over_the_open_socket_and_the_unread_bytes() -> None:
    with Served() as served:
        spec = served.spec(DISK)
        result = run_login(spec)
        assert not isinstance(result, TargetRedirected)
        conn, accepted = result
        conn.reader.receive_data(b"\x3f\x80")  # bytes that arrived past the last PDU
        sock, leftover = conn.detach()
        assert leftover == b"\x3f\x80"
        assert conn.closed
        with pytest.raises(TransportError, match="closed"):
            conn.send(nop_out_ping(session_state(spec, accepted)), deadline_after(1))
        conn.close()  # idempotent, and must not close the handed-over socket
        with sock:
            state = session_state(spec, accepted)
            nop = nop_out_ping(state, b"still mine")
            sock.sendall(encode_pdu(nop))
            answer = decode_pdu(read_pdu(sock, timeout=3))
        assert isinstance(answer, NopIn)
        assert (answer.itt, answer.data) == (nop.itt, b"still mine")


def test_connection_is_a_context_manager() -> None:
    with Served() as served:
        with PduConnection.connect(parse_portal(served.server.portal), deadline_after(2)) as conn:
            assert not conn.closed
        assert conn.closed
