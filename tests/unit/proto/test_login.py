"""The login machine against the in-test fake target, PDU by PDU (no sockets).

Covers: no authentication (security stage skipped), one-way and mutual CHAP with
every algorithm, redirects (IPv4, bracketed IPv6, with and without tpgt), every login
status class, multi-round operational negotiation, C-bit continued responses, keys
the target offers on its own, and the sanity checks on ISID, ITT, TSIH and stages.
"""

from __future__ import annotations

import itertools

import pytest

from iscsikit.errors import (
    AuthenticationError,
    FatalLoginError,
    IscsiErr,
    LocalProtocolError,
    LoginError,
    RemoteProtocolError,
    TargetError,
    TargetNotFoundError,
)
from iscsikit.manager.spec import NORMAL_SESSION_DEFAULTS
from iscsikit.proto.address import Portal
from iscsikit.proto.chap import ChapAlgorithm
from iscsikit.proto.constants import Stage
from iscsikit.proto.login import (
    MAX_LOGIN_ROUNDS,
    ChapSecrets,
    LoginAccepted,
    LoginConfig,
    LoginMachine,
    TargetRedirected,
)
from iscsikit.proto.pdu import LoginRequest, LoginResponse
from iscsikit.proto.sendtargets import DiscoveredTarget, SendTargetsMachine
from iscsikit.proto.session import SessionState
from iscsikit.proto.text import decode_text, encode_text
from iscsikit.testing.faketarget import FakeTarget, FakeTargetConfig

TARGET = "iqn.2024-01.test.fake:disk"
INITIATOR = "iqn.2024-01.test.fake:initiator"
ISID = bytes.fromhex("800102030405")

# What the API offers for a Normal session (open-iscsi's iscsid.conf values).
OPERATIONAL = {**NORMAL_SESSION_DEFAULTS, "HeaderDigest": "None", "DataDigest": "None"}


def counter_bytes() -> object:
    """Deterministic 'random' bytes so CHAP exchanges are reproducible."""
    counter = itertools.count(1)

    def random_bytes(n: int) -> bytes:
        return bytes((next(counter) * 37) & 0xFF for _ in range(n))

    return random_bytes


def config(**kw: object) -> LoginConfig:
    values: dict[str, object] = {
        "initiator_name": INITIATOR,
        "isid": ISID,
        "target_name": TARGET,
        "operational": OPERATIONAL,
    }
    values.update(kw)
    return LoginConfig(**values)  # type: ignore[arg-type]


def drive(
    machine: LoginMachine, target: FakeTarget
) -> tuple[LoginAccepted | TargetRedirected, list[LoginRequest]]:
    sent: list[LoginRequest] = []
    step: object = machine.start()
    while isinstance(step, LoginRequest):
        sent.append(step)
        (response,) = target.receive(step)
        step = machine.receive(response)
    assert isinstance(step, LoginAccepted | TargetRedirected)
    return step, sent


def test_no_auth_skips_security_stage() -> None:
    target = FakeTarget()
    event, sent = drive(LoginMachine(config()), target)
    assert isinstance(event, LoginAccepted)
    first = sent[0]
    assert first.csg == Stage.OPERATIONAL and first.transit and first.nsg == Stage.FULL_FEATURE
    keys = dict(decode_text(first.data))
    assert keys["InitiatorName"] == INITIATOR
    assert keys["TargetName"] == TARGET
    assert keys["SessionType"] == "Normal"
    assert "AuthMethod" not in keys
    assert len(sent) == 1
    assert event.tsih == target.config.tsih
    assert event.target_portal_group_tag == 1
    assert event.target_alias == "fake-disk"
    # Both sides agree on every negotiated key; each declares its own receive limit.
    mine, theirs = event.params, target.negotiated
    assert mine["MaxRecvDataSegmentLength"] == theirs["MaxXmitDataSegmentLength"] == "262144"
    assert mine["MaxXmitDataSegmentLength"] == theirs["MaxRecvDataSegmentLength"] == "8192"
    for key, value in theirs.items():
        if key in mine and "DataSegmentLength" not in key:
            assert mine[key] == value, key


def test_security_stage_with_auth_none_when_asked() -> None:
    event, sent = drive(LoginMachine(config(security_stage=True)), FakeTarget())
    assert isinstance(event, LoginAccepted)
    assert sent[0].csg == Stage.SECURITY and sent[0].transit and sent[0].nsg == Stage.OPERATIONAL
    assert dict(decode_text(sent[0].data))["AuthMethod"] == "None"


@pytest.mark.parametrize("algorithm", list(ChapAlgorithm))
def test_one_way_chap(algorithm: ChapAlgorithm) -> None:
    target = FakeTarget(
        FakeTargetConfig(accounts={"alice": "alice-secret-1"}), random_bytes=counter_bytes()
    )  # type: ignore[arg-type]
    chap = ChapSecrets("alice", "alice-secret-1", algorithms=(algorithm,))
    event, sent = drive(LoginMachine(config(chap=chap), random_bytes=counter_bytes()), target)  # type: ignore[arg-type]
    assert isinstance(event, LoginAccepted)
    assert target.authenticated
    assert dict(decode_text(sent[0].data))["AuthMethod"] == "CHAP,None"
    assert dict(decode_text(sent[1].data))["CHAP_A"] == str(int(algorithm))
    assert event.params["AuthMethod"] == "CHAP"


@pytest.mark.parametrize("algorithm", list(ChapAlgorithm))
def test_mutual_chap(algorithm: ChapAlgorithm) -> None:
    target = FakeTarget(
        FakeTargetConfig(accounts={"alice": "alice-secret-1"}, outgoing=("tgt", "target-secret-2")),
        random_bytes=counter_bytes(),  # type: ignore[arg-type]
    )
    chap = ChapSecrets(
        "alice",
        "alice-secret-1",
        "tgt",
        "target-secret-2",
        algorithms=tuple(dict.fromkeys((algorithm, ChapAlgorithm.MD5))),
    )
    event, sent = drive(LoginMachine(config(chap=chap), random_bytes=counter_bytes()), target)  # type: ignore[arg-type]
    assert isinstance(event, LoginAccepted)
    assert dict(decode_text(sent[0].data))["AuthMethod"] == "CHAP"  # mutual insists
    third = dict(decode_text(sent[2].data))
    assert {"CHAP_N", "CHAP_R", "CHAP_I", "CHAP_C"} <= set(third)


def test_mutual_chap_wrong_target_secret() -> None:
    target = FakeTarget(
        FakeTargetConfig(accounts={"alice": "alice-secret-1"}, outgoing=("tgt", "impostor-secret"))
    )
    chap = ChapSecrets("alice", "alice-secret-1", "tgt", "target-secret-2")
    with pytest.raises(AuthenticationError) as info:
        drive(LoginMachine(config(chap=chap)), target)
    assert info.value.code is IscsiErr.LOGIN_AUTH_FAILED


def test_wrong_secret_is_status_0201() -> None:
    target = FakeTarget(FakeTargetConfig(accounts={"alice": "alice-secret-1"}))
    with pytest.raises(AuthenticationError) as info:
        drive(LoginMachine(config(chap=ChapSecrets("alice", "wrong"))), target)
    assert (info.value.status_class, info.value.status_detail) == (2, 1)


def test_no_credentials_against_chap_target() -> None:
    with pytest.raises(AuthenticationError):
        drive(LoginMachine(config()), FakeTarget(FakeTargetConfig(accounts={"a": "b" * 12})))


@pytest.mark.parametrize(
    ("address", "portal", "tpgt"),
    [
        ("127.0.0.2:32609", Portal("127.0.0.2", 32609), None),
        ("127.0.0.2:32609,7", Portal("127.0.0.2", 32609), 7),
        ("[fe80::1]:3261,2", Portal("fe80::1", 3261), 2),
        ("[2001:db8::1]", Portal("2001:db8::1", 3260), None),
        ("target.example.com", Portal("target.example.com", 3260), None),
    ],
)
@pytest.mark.parametrize("permanent", [False, True])
def test_redirect(address: str, portal: Portal, tpgt: int | None, permanent: bool) -> None:
    target = FakeTarget(FakeTargetConfig(redirect=address, permanent_redirect=permanent))
    event, _ = drive(LoginMachine(config()), target)
    assert event == TargetRedirected(portal, tpgt, permanent)


def test_redirect_without_address_is_a_protocol_error() -> None:
    machine = LoginMachine(config())
    req = machine.start()
    rsp = LoginResponse(isid=req.isid, itt=req.itt, status_class=1, status_detail=1, data=b"")
    with pytest.raises(RemoteProtocolError, match="TargetAddress"):
        machine.receive(rsp)


@pytest.mark.parametrize(
    ("status", "exc"),
    [
        ((2, 0), FatalLoginError),
        ((2, 1), AuthenticationError),
        ((2, 2), AuthenticationError),
        ((2, 3), TargetNotFoundError),
        ((2, 4), FatalLoginError),
        ((2, 5), FatalLoginError),
        ((2, 6), FatalLoginError),
        ((2, 7), FatalLoginError),
        ((2, 8), FatalLoginError),
        ((2, 9), FatalLoginError),
        ((2, 10), FatalLoginError),
        ((2, 11), FatalLoginError),
        ((3, 0), TargetError),
        ((3, 1), TargetError),
        ((3, 2), TargetError),
        ((4, 0), LoginError),
    ],
)
def test_every_status_class(status: tuple[int, int], exc: type[LoginError]) -> None:
    machine = LoginMachine(config())
    with pytest.raises(exc) as info:
        drive(machine, FakeTarget(FakeTargetConfig(status=status)))
    assert (info.value.status_class, info.value.status_detail) == status
    with pytest.raises(LocalProtocolError):  # the machine is dead afterwards
        machine.receive(LoginResponse())


def test_unknown_target() -> None:
    with pytest.raises(TargetNotFoundError) as info:
        drive(LoginMachine(config(target_name="iqn.2024-01.test.fake:other")), FakeTarget())
    assert info.value.code is IscsiErr.FATAL_LOGIN


@pytest.mark.parametrize("rounds", [1, 3, 10])
def test_multi_round_operational_negotiation(rounds: int) -> None:
    target = FakeTarget(
        FakeTargetConfig(extra_rounds=rounds, operational={"MaxBurstLength": "65536"})
    )
    event, sent = drive(LoginMachine(config()), target)
    assert isinstance(event, LoginAccepted)
    assert len(sent) == rounds + 1
    assert all(req.transit for req in sent)
    assert event.params["MaxBurstLength"] == "65536"


@pytest.mark.parametrize("chunk", [7, 64, 200])
def test_continued_login_responses(chunk: int) -> None:
    target = FakeTarget(
        FakeTargetConfig(
            text_chunk=chunk,
            accounts={"alice": "alice-secret-1"},
            outgoing=("tgt", "target-secret-2"),
        )
    )
    chap = ChapSecrets(
        "alice", "alice-secret-1", "tgt", "target-secret-2", algorithms=(ChapAlgorithm.SHA3_256,)
    )
    event, sent = drive(LoginMachine(config(chap=chap)), target)
    assert isinstance(event, LoginAccepted)
    assert any(not req.data for req in sent)  # empty requests fetched the continuation


def test_target_offers_and_declarations() -> None:
    target = FakeTarget(
        FakeTargetConfig(
            target_offers=[("X-com.example.magic", "1"), ("MaxRecvDataSegmentLength", "4096")],
            extra_rounds=1,
        )
    )
    event, sent = drive(LoginMachine(config()), target)
    assert isinstance(event, LoginAccepted)
    answers = dict(decode_text(sent[1].data))
    assert answers["X-com.example.magic"] == "NotUnderstood"
    assert event.params["MaxXmitDataSegmentLength"] == "4096"


def test_header_checks() -> None:
    for change in ({"isid": b"\x00" * 6}, {"itt": 99}, {"version_active": 1}, {"csg": 0}):
        machine = LoginMachine(config())
        req = machine.start()
        (rsp,) = FakeTarget().receive(req)
        for field, value in change.items():
            setattr(rsp, field, value)
        with pytest.raises(RemoteProtocolError):
            machine.receive(rsp)


def test_target_cannot_transit_beyond_what_was_asked() -> None:
    machine = LoginMachine(config(chap=ChapSecrets("alice", "alice-secret-1")))
    req = machine.start()  # security stage, T=0
    rsp = LoginResponse(
        transit=True,
        csg=0,
        nsg=1,
        isid=req.isid,
        itt=req.itt,
        data=encode_text([("AuthMethod", "CHAP")]),
    )
    with pytest.raises(RemoteProtocolError):
        machine.receive(rsp)


def test_rounds_are_bounded() -> None:
    machine = LoginMachine(config())
    req = machine.start()
    with pytest.raises(RemoteProtocolError, match="rounds"):
        for _ in range(MAX_LOGIN_ROUNDS + 1):
            rsp = LoginResponse(transit=False, csg=1, isid=req.isid, itt=req.itt, statsn=1)
            result = machine.receive(rsp)
            assert isinstance(result, LoginRequest)
            req = result


def test_final_response_needs_tsih() -> None:
    machine = LoginMachine(config())
    req = machine.start()
    (rsp,) = FakeTarget().receive(req)
    rsp.tsih = 0
    with pytest.raises(RemoteProtocolError, match="TSIH"):
        machine.receive(rsp)


def test_start_twice_is_caller_error() -> None:
    machine = LoginMachine(config())
    machine.start()
    with pytest.raises(LocalProtocolError):
        machine.start()


@pytest.mark.parametrize("chunk", [None, 5, 100])
def test_discovery_session_and_sendtargets(chunk: int | None) -> None:
    targets = {
        f"iqn.2024-01.test.fake:t{i}": [f"127.0.0.1:3260,{i % 3 + 1}", f"[::1]:3261,{i % 3 + 1}"]
        for i in range(20)
    }
    target = FakeTarget(FakeTargetConfig(targets=targets, sendtargets_chunk=chunk))
    event, sent = drive(
        LoginMachine(config(target_name=None, operational={"HeaderDigest": "None"})), target
    )
    assert isinstance(event, LoginAccepted)
    assert dict(decode_text(sent[0].data))["SessionType"] == "Discovery"
    state = SessionState(
        cmdsn=1, expcmdsn=event.expcmdsn, maxcmdsn=event.maxcmdsn, expstatsn=event.statsn + 1
    )
    machine = SendTargetsMachine(state, Portal("127.0.0.1"))
    step: object = machine.start()
    exchanges = 0
    while not isinstance(step, list):
        exchanges += 1
        (rsp,) = target.receive(step)  # type: ignore[arg-type]
        step = machine.receive(rsp)
    found: list[DiscoveredTarget] = step
    assert len(found) == 40
    assert {t.name for t in found} == set(targets)
    assert DiscoveredTarget("iqn.2024-01.test.fake:t4", "::1", 3261, 2) in found
    assert str(found[0]) == "127.0.0.1:3260,1 iqn.2024-01.test.fake:t0"
    if chunk:
        assert exchanges > 1


def test_unanswered_offers_take_the_rfc_default_and_are_reported() -> None:
    machine = LoginMachine(config())
    req = machine.start()
    answers = [("HeaderDigest", "None"), ("DataDigest", "None"), ("MaxBurstLength", "65536")]
    rsp = LoginResponse(
        transit=True, csg=1, nsg=3, isid=req.isid, itt=req.itt, tsih=5, statsn=1,
        data=encode_text(answers),
    )  # fmt: skip
    event = machine.receive(rsp)
    assert isinstance(event, LoginAccepted)
    assert event.params["MaxBurstLength"] == "65536"
    assert "InitialR2T" in event.unanswered and "MaxBurstLength" not in event.unanswered
    assert event.params["InitialR2T"] == "Yes"  # RFC 7143 §13.10 default
    assert event.params["FirstBurstLength"] == "65536"  # §13.14 default
