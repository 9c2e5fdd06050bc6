"""Hypothesis over states x inputs: whatever a target sends, the machines answer with a
PDU, an event, or an ``IscsiError`` — never any other exception.

Each example first drives the login machine some steps into a real exchange with the
fake target (so every state is reached), then feeds it an arbitrary PDU.
"""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from iscsikit.errors import IscsiError
from iscsikit.proto.address import Portal
from iscsikit.proto.chap import ChapAlgorithm
from iscsikit.proto.login import ChapSecrets, LoginConfig, LoginMachine
from iscsikit.proto.pdu import LoginRequest, LoginResponse, NopIn, Pdu, Reject, TextResponse
from iscsikit.proto.sendtargets import SendTargetsMachine
from iscsikit.proto.session import SessionState
from iscsikit.proto.text import encode_text
from iscsikit.testing.faketarget import FakeTarget, FakeTargetConfig

KEYS = st.sampled_from(
    [
        "AuthMethod", "CHAP_A", "CHAP_I", "CHAP_C", "CHAP_N", "CHAP_R", "HeaderDigest",
        "DataDigest", "MaxRecvDataSegmentLength", "MaxBurstLength", "InitialR2T",
        "TargetPortalGroupTag", "TargetAlias", "TargetName", "TargetAddress", "X-foo",
        "Bogus", "SendTargets", "MaxConnections", "ErrorRecoveryLevel",
    ]
)  # fmt: skip
VALUES = st.one_of(
    st.sampled_from(["None", "CHAP", "CRC32C", "Yes", "No", "5", "7", "0x00", "0b", "Reject",
                     "NotUnderstood", "Irrelevant", "1", "65536", "iqn.2024-01.x:y", "1.2:1,1"]),
    st.text(max_size=12),
)  # fmt: skip
TEXT = st.one_of(
    st.lists(st.tuples(KEYS, VALUES), max_size=6).map(
        lambda pairs: (
            encode_text([(k, v.replace("\0", "")) for k, v in pairs])
            if all("\0" not in v and len(v.encode()) < 200 for _, v in pairs)
            else b"junk\0"
        )
    ),
    st.binary(max_size=40),
)
u32 = st.integers(0, 0xFFFFFFFF)


@st.composite
def login_responses(draw: st.DrawFn, req: LoginRequest) -> Pdu:
    if draw(st.integers(0, 9)) == 0:
        return draw(st.sampled_from([NopIn(), Reject(reason=4), TextResponse()]))
    return LoginResponse(
        transit=draw(st.booleans()),
        cont=False,
        csg=draw(st.sampled_from([req.csg, 0, 1, 3])),
        nsg=draw(st.sampled_from([0, 1, 3])),
        version_max=0,
        version_active=draw(st.sampled_from([0, 0, 0, 1])),
        isid=draw(st.sampled_from([req.isid, req.isid, bytes(6)])),
        tsih=draw(st.sampled_from([0, 1, 0xFFFF])),
        itt=draw(st.sampled_from([req.itt, req.itt, 5])),
        statsn=draw(u32),
        expcmdsn=draw(u32),
        maxcmdsn=draw(u32),
        status_class=draw(st.sampled_from([0, 0, 0, 1, 2, 3, 9])),
        status_detail=draw(st.integers(0, 12)),
        data=draw(TEXT),
    )


@settings(max_examples=400, deadline=None)
@given(st.data(), st.integers(0, 4), st.booleans(), st.booleans())
def test_login_machine_never_raises_anything_but_iscsi_errors(
    data: st.DataObject, steps: int, chap: bool, mutual: bool
) -> None:
    secrets = None
    if chap:
        secrets = ChapSecrets(
            "alice", "alice-secret-1", *(("tgt", "target-secret-2") if mutual else ()),
            algorithms=(ChapAlgorithm.SHA256, ChapAlgorithm.MD5),
        )  # fmt: skip
    machine = LoginMachine(
        LoginConfig(
            initiator_name="iqn.2024-01.test:i",
            isid=b"\x80\x00\x00\x00\x00\x01",
            target_name="iqn.2024-01.test.fake:disk",
            chap=secrets,
            operational={"HeaderDigest": "CRC32C,None", "MaxBurstLength": "65536"},
        )
    )
    target = FakeTarget(
        FakeTargetConfig(
            accounts={"alice": "alice-secret-1"} if chap else None,
            outgoing=("tgt", "target-secret-2") if mutual else None,
            extra_rounds=2,
        )
    )
    req: object = machine.start()
    try:
        for _ in range(steps):
            if not isinstance(req, LoginRequest):
                return
            (rsp,) = target.receive(req)
            req = machine.receive(rsp)
        if not isinstance(req, LoginRequest):
            return
        for _ in range(3):
            req = machine.receive(data.draw(login_responses(req)))
            if not isinstance(req, LoginRequest):
                return
    except IscsiError:
        pass


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.tuples(st.booleans(), st.booleans(), u32, TEXT, st.booleans()), min_size=1, max_size=5
    )
)
def test_sendtargets_machine_never_raises_anything_but_iscsi_errors(
    responses: list[tuple[bool, bool, int, bytes, bool]],
) -> None:
    state = SessionState(cmdsn=1, expcmdsn=1, maxcmdsn=10, expstatsn=1)
    machine = SendTargetsMachine(state, Portal("127.0.0.1"))
    req = machine.start()
    try:
        for final, cont, ttt, text, right_itt in responses:
            result = machine.receive(
                TextResponse(
                    final=final, cont=cont and not final, itt=req.itt if right_itt else req.itt + 1,
                    ttt=ttt, statsn=1, expcmdsn=1, maxcmdsn=10, data=text,
                )
            )  # fmt: skip
            if isinstance(result, list):
                return
            req = result
    except IscsiError:
        pass
