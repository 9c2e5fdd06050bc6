"""Text negotiation rules (RFC 7143 §6.2, §6.3, §13) for both roles, driven by the key table."""

from __future__ import annotations

from collections.abc import Mapping

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from iscsikit.errors import InvalidParameterError, LocalProtocolError, RemoteProtocolError
from iscsikit.proto.keys import KEYS, KeyKind, parse_number
from iscsikit.proto.negotiation import Negotiator

SEC, OP, FFP = 0, 1, 3

# What open-iscsi offers for a Normal session (iscsid.conf defaults).
OPEN_ISCSI = {
    "HeaderDigest": "None",
    "DataDigest": "None",
    "DefaultTime2Wait": "2",
    "DefaultTime2Retain": "0",
    "ErrorRecoveryLevel": "0",
    "InitialR2T": "No",
    "ImmediateData": "Yes",
    "MaxBurstLength": "16776192",
    "FirstBurstLength": "262144",
    "MaxOutstandingR2T": "1",
    "MaxConnections": "1",
    "DataPDUInOrder": "Yes",
    "DataSequenceInOrder": "Yes",
    "MaxRecvDataSegmentLength": "262144",
}


def ini(local: Mapping[str, str] | None = None, **kw: object) -> Negotiator:
    return Negotiator("initiator", local or {}, **kw)  # type: ignore[arg-type]


def tgt(local: Mapping[str, str] | None = None, **kw: object) -> Negotiator:
    return Negotiator("target", local or {}, **kw)  # type: ignore[arg-type]


def run(initiator: Negotiator, target: Negotiator, stage: int = OP, rounds: int = 8) -> None:
    """Exchange offers and answers, initiator first, until neither side has anything to say."""
    message = initiator.offer(stage)
    sides = (initiator, target)
    turn = 1
    for _ in range(rounds):
        receiver = sides[turn]
        reply = receiver.receive(message, stage) + receiver.offer(stage)
        if not message and not reply:
            return
        message, turn = reply, turn ^ 1
    raise AssertionError("negotiation did not settle")


def answer(
    local: Mapping[str, str], pairs: list[tuple[str, str]], **kw: object
) -> list[tuple[str, str]]:
    """The target's answers to ``pairs``."""
    return tgt(local, **kw).receive(pairs, OP)


def offered(key: str, value: str, **kw: object) -> Negotiator:
    """An initiator that has offered key=value."""
    side = ini({key: value}, **kw)
    assert side.offer(OP) == [(key, value)]
    return side


# -- offers ------------------------------------------------------------------------------------


def test_initiator_offers_in_open_iscsi_order() -> None:
    local = dict(reversed(list(OPEN_ISCSI.items())))  # order of the mapping does not matter
    assert ini(local).offer(OP) == [(k, OPEN_ISCSI[k]) for k in OPEN_ISCSI]


def test_offers_only_configured_keys_and_never_twice() -> None:
    side = ini({"MaxBurstLength": "65536", "TaskReporting": "ResponseFence,RFC3720"})
    assert side.offer(OP) == [
        ("MaxBurstLength", "65536"),
        ("TaskReporting", "ResponseFence,RFC3720"),
    ]
    assert side.offer(OP) == []
    assert side.pending == {"MaxBurstLength", "TaskReporting"}
    assert not side.complete


def test_discovery_offers_only_discovery_keys() -> None:
    side = ini(OPEN_ISCSI, session_type="Discovery")
    assert side.offer(OP) == [
        ("HeaderDigest", "None"),
        ("DataDigest", "None"),
        ("DefaultTime2Wait", "2"),
        ("DefaultTime2Retain", "0"),
        ("ErrorRecoveryLevel", "0"),
        ("MaxRecvDataSegmentLength", "262144"),
    ]


def test_offers_respect_stages() -> None:
    side = ini({"AuthMethod": "CHAP,None", "InitiatorName": "iqn.x:i", "HeaderDigest": "CRC32C"})
    assert side.offer(SEC) == [("InitiatorName", "iqn.x:i"), ("AuthMethod", "CHAP,None")]
    assert side.offer(OP) == [("HeaderDigest", "CRC32C")]
    assert side.offer(FFP) == []


def test_numbers_are_offered_normalized() -> None:
    assert ini({"MaxBurstLength": "0x10000"}).offer(OP) == [("MaxBurstLength", "65536")]


def test_target_declares_after_answering() -> None:
    target = tgt(
        {"MaxRecvDataSegmentLength": "65536", "TargetPortalGroupTag": "1", "TargetAlias": "d"}
    )
    assert target.receive([("InitiatorName", "iqn.x:i")], SEC) == []
    # TargetPortalGroupTag and TargetAlias may go in the security stage, MRDSL may not.
    assert target.offer(SEC) == [("TargetAlias", "d"), ("TargetPortalGroupTag", "1")]
    # The initiator's own MaxRecvDataSegmentLength is no reason not to declare ours.
    assert target.receive([("MaxRecvDataSegmentLength", "262144")], OP) == []
    assert target.offer(OP) == [("MaxRecvDataSegmentLength", "65536")]


def test_target_sends_nothing_normal_only_in_discovery() -> None:
    target = tgt({"TargetPortalGroupTag": "1", "TargetAlias": "d"})
    assert target.receive([("SessionType", "Discovery")], OP) == []
    assert target.session_type == "Discovery"
    assert target.offer(OP) == []


def test_bad_stage_is_caller_error() -> None:
    with pytest.raises(LocalProtocolError):
        ini().offer(2)
    with pytest.raises(LocalProtocolError):
        ini().receive([], 4)


# -- numeric Minimum / Maximum -----------------------------------------------------------------


def test_numeric_min_offerer() -> None:
    side = offered("MaxBurstLength", "262144")
    assert side.receive([("MaxBurstLength", "65536")], OP) == []
    assert side.complete
    assert side.negotiated()["MaxBurstLength"] == "65536"


@pytest.mark.parametrize("bad", ["1048576", "262145", "100", "abc", "", "065536", "Yes"])
def test_numeric_min_illegal_answers(bad: str) -> None:
    with pytest.raises(RemoteProtocolError) as info:
        offered("MaxBurstLength", "262144").receive([("MaxBurstLength", bad)], OP)
    assert info.value.reject_reason == 0x04


def test_numeric_answer_in_hex_is_normalized() -> None:
    side = offered("MaxBurstLength", "262144")
    side.receive([("MaxBurstLength", "0x10000")], OP)
    assert side.negotiated()["MaxBurstLength"] == "65536"


@pytest.mark.parametrize(
    ("offer", "limit", "expected"),
    [("262144", "65536", "65536"), ("32768", "65536", "32768"), ("65536", "65536", "65536"),
     ("100", "65536", "Reject"), ("16777216", "65536", "Reject")],
)  # fmt: skip
def test_numeric_min_responder(offer: str, limit: str, expected: str) -> None:
    assert answer({"MaxBurstLength": limit}, [("MaxBurstLength", offer)]) == [
        ("MaxBurstLength", expected)
    ]


def test_numeric_responder_without_local_uses_default() -> None:
    assert answer({}, [("MaxBurstLength", "1048576")]) == [("MaxBurstLength", "262144")]
    assert answer({}, [("DefaultTime2Wait", "0")]) == [("DefaultTime2Wait", "2")]


def test_numeric_malformed_proposal() -> None:
    with pytest.raises(RemoteProtocolError, match="malformed"):
        answer({}, [("MaxBurstLength", "lots")])


def test_numeric_max() -> None:
    assert answer({"DefaultTime2Wait": "5"}, [("DefaultTime2Wait", "2")]) == [
        ("DefaultTime2Wait", "5")
    ]
    assert answer({"DefaultTime2Wait": "1"}, [("DefaultTime2Wait", "2")]) == [
        ("DefaultTime2Wait", "2")
    ]
    side = offered("DefaultTime2Wait", "2")
    side.receive([("DefaultTime2Wait", "5")], OP)
    assert side.negotiated()["DefaultTime2Wait"] == "5"
    with pytest.raises(RemoteProtocolError, match="illegal answer"):
        offered("DefaultTime2Wait", "2").receive([("DefaultTime2Wait", "1")], OP)
    with pytest.raises(RemoteProtocolError):
        offered("DefaultTime2Wait", "2").receive([("DefaultTime2Wait", "3601")], OP)


def test_min_with_zero_meaning_unlimited() -> None:
    key = "MaxOutstandingUnexpectedPDUs"
    iser = {"RDMAExtensions": "Yes"}
    # 0 = no limit, so it loses every Minimum comparison (RFC 5046 §6.6).
    pairs = [("RDMAExtensions", "Yes"), (key, "0")]
    assert answer({**iser, key: "8"}, pairs)[1] == (key, "8")
    assert answer({**iser, key: "0"}, [("RDMAExtensions", "Yes"), (key, "16")])[1] == (key, "16")
    assert answer({**iser, key: "0"}, pairs)[1] == (key, "0")
    side = ini({**iser, key: "16"})
    side.offer(OP)
    with pytest.raises(RemoteProtocolError, match="illegal answer"):
        side.receive([("RDMAExtensions", "Yes"), (key, "0")], OP)
    assert answer({**iser}, [("RDMAExtensions", "Yes"), (key, "1")])[1] == (key, "Reject")


# -- booleans ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "offer", "mine", "expected"),
    [
        ("ImmediateData", "Yes", "Yes", "Yes"),  # AND
        ("ImmediateData", "Yes", "No", "No"),
        ("ImmediateData", "No", "Yes", "No"),
        ("ImmediateData", "No", "No", "No"),
        ("InitialR2T", "Yes", "Yes", "Yes"),  # OR
        ("InitialR2T", "Yes", "No", "Yes"),
        ("InitialR2T", "No", "Yes", "Yes"),
        ("InitialR2T", "No", "No", "No"),
    ],
)
def test_boolean_responder(key: str, offer: str, mine: str, expected: str) -> None:
    target = tgt({key: mine})
    assert target.receive([(key, offer)], OP) == [(key, expected)]
    assert target.negotiated()[key] == expected


@pytest.mark.parametrize(
    ("key", "offer", "reply", "result"),
    [
        ("ImmediateData", "Yes", "Yes", "Yes"),
        ("ImmediateData", "Yes", "No", "No"),
        ("InitialR2T", "No", "Yes", "Yes"),
        ("InitialR2T", "No", "No", "No"),
    ],
)
def test_boolean_offerer_needs_answer(key: str, offer: str, reply: str, result: str) -> None:
    side = offered(key, offer)
    assert side.pending == {key}
    side.receive([(key, reply)], OP)
    assert side.complete and side.negotiated()[key] == result


@pytest.mark.parametrize(("key", "offer"), [("ImmediateData", "No"), ("InitialR2T", "Yes")])
def test_boolean_determined_by_offerer(key: str, offer: str) -> None:
    # AND with No, OR with Yes: the outcome is fixed and the answer optional (§6.2.2).
    side = offered(key, offer)
    assert side.complete and side.negotiated()[key] == offer
    confirmed = offered(key, offer)
    assert confirmed.receive([(key, offer)], OP) == []
    assert confirmed.negotiated()[key] == offer
    rejected = offered(key, offer)
    rejected.receive([(key, "Reject")], OP)
    assert rejected.negotiated()[key] == offer
    with pytest.raises(RemoteProtocolError, match="fixed the outcome"):
        offered(key, offer).receive([(key, "No" if offer == "Yes" else "Yes")], OP)


@pytest.mark.parametrize("bad", ["yes", "True", "1", ""])
def test_boolean_must_be_yes_or_no(bad: str) -> None:
    with pytest.raises(RemoteProtocolError):
        answer({}, [("ImmediateData", bad)])
    with pytest.raises(RemoteProtocolError):
        offered("ImmediateData", "Yes").receive([("ImmediateData", bad)], OP)


# -- lists -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("offer", "supported", "expected"),
    [
        ("CRC32C,None", "None,CRC32C", "CRC32C"),  # the offerer's preference wins
        ("None,CRC32C", "CRC32C,None", "None"),
        ("None,CRC32C", "CRC32C", "CRC32C"),
        ("CRC32C", "None", "Reject"),
        ("Y-com.example.md5,None", "CRC32C,None", "None"),  # unknown values are ignored
        ("Y-com.example.md5", "None", "Reject"),
    ],
)
def test_list_responder(offer: str, supported: str, expected: str) -> None:
    assert answer({"HeaderDigest": supported}, [("HeaderDigest", offer)]) == [
        ("HeaderDigest", expected)
    ]


def test_list_responder_without_local_supports_the_default() -> None:
    assert answer({}, [("DataDigest", "CRC32C,None")]) == [("DataDigest", "None")]
    assert answer({}, [("TaskReporting", "FastAbort,RFC3720")]) == [("TaskReporting", "RFC3720")]


def test_list_offerer() -> None:
    side = offered("HeaderDigest", "CRC32C,None")
    side.receive([("HeaderDigest", "None")], OP)
    assert side.negotiated()["HeaderDigest"] == "None"


@pytest.mark.parametrize("bad", ["MD5", "CRC32C,None", "", "crc32c"])
def test_list_answer_must_be_one_offered_value(bad: str) -> None:
    with pytest.raises(RemoteProtocolError, match="illegal answer"):
        offered("HeaderDigest", "CRC32C,None").receive([("HeaderDigest", bad)], OP)


def test_list_none_only_if_offered() -> None:
    with pytest.raises(RemoteProtocolError):
        offered("HeaderDigest", "CRC32C").receive([("HeaderDigest", "None")], OP)


@pytest.mark.parametrize("bad", ["CRC32C,,None", "Reject", "None,NotUnderstood", ","])
def test_list_malformed_proposal(bad: str) -> None:
    with pytest.raises(RemoteProtocolError):
        answer({}, [("HeaderDigest", bad)])


# -- Reject / Irrelevant / NotUnderstood answers -----------------------------------------------


def test_reject_leaves_default_when_acceptable() -> None:
    side = offered("HeaderDigest", "CRC32C,None")
    side.receive([("HeaderDigest", "Reject")], OP)
    assert side.complete and side.negotiated()["HeaderDigest"] == "None"


@pytest.mark.parametrize(
    ("key", "value"),
    [("HeaderDigest", "CRC32C"), ("MaxBurstLength", "65536"), ("DefaultTime2Wait", "10"),
     ("ImmediateData", "Yes"), ("InitialR2T", "No")],
)  # fmt: skip
def test_reject_of_a_needed_value_is_an_error(key: str, value: str) -> None:
    fallback = KEYS[key].default
    needs = {"ImmediateData": "Yes", "InitialR2T": "No"}
    if key in needs:
        # AND offered Yes / OR offered No accept any outcome: the default is fine.
        side = offered(key, value)
        side.receive([(key, "Reject")], OP)
        assert side.negotiated()[key] == fallback
        return
    with pytest.raises(RemoteProtocolError, match="cannot work with"):
        offered(key, value).receive([(key, "Reject")], OP)


@pytest.mark.parametrize("reply", ["NotUnderstood", "Irrelevant", "Reject"])
def test_rfc7143_keys_unknown_to_old_targets(reply: str) -> None:
    side = ini({"TaskReporting": "ResponseFence,RFC3720", "iSCSIProtocolLevel": "2"})
    side.offer(OP)
    side.receive([("TaskReporting", reply), ("iSCSIProtocolLevel", reply)], OP)
    params = side.negotiated()
    assert (params["TaskReporting"], params["iSCSIProtocolLevel"]) == ("RFC3720", "1")


def test_not_understood_of_a_key_we_cannot_work_without() -> None:
    with pytest.raises(RemoteProtocolError, match="cannot work with"):
        offered("TaskReporting", "FastAbort").receive([("TaskReporting", "NotUnderstood")], OP)


# -- unknown and extension keys ----------------------------------------------------------------


def test_unknown_keys_get_not_understood() -> None:
    pairs = [("FooBar", "1"), ("X-com.example.magic", "42"), ("X#Unregistered", "a")]
    assert answer({}, pairs) == [(k, "NotUnderstood") for k, _ in pairs]


def test_allowed_extension_keys_are_declarations() -> None:
    target = tgt({}, allow=frozenset({"X-com.example.magic"}))
    assert target.receive([("X-com.example.magic", "42")], OP) == []
    assert target.peer_declarations == {"X-com.example.magic": "42"}


def test_local_extension_keys_are_declared() -> None:
    side = ini({"X-com.example.magic": "42", "MaxBurstLength": "65536"})
    assert side.offer(SEC) == []
    assert side.offer(OP) == [("MaxBurstLength", "65536"), ("X-com.example.magic", "42")]
    # The peer may not understand our extension: that is no error.
    assert (
        side.receive([("X-com.example.magic", "NotUnderstood"), ("MaxBurstLength", "512")], OP)
        == []
    )


@pytest.mark.parametrize("constant", ["Reject", "Irrelevant", "NotUnderstood"])
def test_answer_constants_are_not_proposals(constant: str) -> None:
    for key in ("FooBar", "MaxBurstLength", "HeaderDigest", "TargetAlias", "X-com.example.q"):
        with pytest.raises(RemoteProtocolError):
            ini().receive([(key, constant)], OP)


# -- declarations ------------------------------------------------------------------------------


def test_declarations_are_stored_not_answered() -> None:
    side = ini({"MaxRecvDataSegmentLength": "262144"})
    side.offer(OP)
    pairs = [
        ("MaxRecvDataSegmentLength", "65536"),
        ("TargetAlias", "Disk ☃"),
        ("TargetPortalGroupTag", "0x10"),
    ]
    assert side.receive(pairs, OP) == []
    assert side.peer_declarations == {
        "MaxRecvDataSegmentLength": "65536",
        "TargetAlias": "Disk ☃",
        "TargetPortalGroupTag": "16",
    }
    params = side.negotiated()
    assert params["MaxRecvDataSegmentLength"] == "262144"  # what we receive
    assert params["MaxXmitDataSegmentLength"] == "65536"  # what we may send
    assert params["TargetAlias"] == "Disk ☃" and params["TargetPortalGroupTag"] == "16"


def test_undeclared_segment_lengths_default_to_8192() -> None:
    params = ini().negotiated()
    assert params["MaxRecvDataSegmentLength"] == params["MaxXmitDataSegmentLength"] == "8192"


@pytest.mark.parametrize(
    ("key", "value"),
    [("MaxRecvDataSegmentLength", "511"), ("MaxRecvDataSegmentLength", "16777216"),
     ("MaxRecvDataSegmentLength", "big"), ("TargetPortalGroupTag", "65536")],
)  # fmt: skip
def test_illegal_declarations(key: str, value: str) -> None:
    with pytest.raises(RemoteProtocolError, match="illegal declaration"):
        ini().receive([(key, value)], OP)


def test_target_learns_session_type() -> None:
    target = tgt()
    assert target.receive([("SessionType", "Discovery"), ("MaxBurstLength", "65536")], OP) == [
        ("MaxBurstLength", "Irrelevant")
    ]
    with pytest.raises(RemoteProtocolError, match="illegal declaration"):
        tgt().receive([("SessionType", "Boot")], SEC)


def test_target_address_may_repeat() -> None:
    pairs = [("TargetAddress", "10.0.0.1:3260,1"), ("TargetAddress", "10.0.0.2:3260,1")]
    side = ini()
    assert side.receive(pairs, SEC) == []
    assert side.peer_declarations["TargetAddress"] == "10.0.0.2:3260,1"


# -- Irrelevant ---------------------------------------------------------------------------------


def test_operational_keys_are_irrelevant_in_discovery() -> None:
    pairs = list(OPEN_ISCSI.items())
    answers = dict(answer({}, pairs, session_type="Discovery"))
    irrelevant = ["InitialR2T", "ImmediateData", "MaxBurstLength", "FirstBurstLength"]
    irrelevant += ["MaxOutstandingR2T", "MaxConnections", "DataPDUInOrder", "DataSequenceInOrder"]
    for key in irrelevant:
        assert answers[key] == "Irrelevant"
    assert answers["HeaderDigest"] == "None" and answers["ErrorRecoveryLevel"] == "0"
    assert "MaxRecvDataSegmentLength" not in answers  # declarative


def test_discovery_negotiated_holds_only_relevant_keys() -> None:
    initiator, target = ini(OPEN_ISCSI, session_type="Discovery"), tgt(session_type="Discovery")
    run(initiator, target)
    params = initiator.negotiated()
    assert set(params) == {
        "AuthMethod", "HeaderDigest", "DataDigest", "DefaultTime2Wait", "DefaultTime2Retain",
        "ErrorRecoveryLevel", "SessionType", "MaxRecvDataSegmentLength", "MaxXmitDataSegmentLength",
    }  # fmt: skip
    assert params["DefaultTime2Wait"] == "2" and params["DefaultTime2Retain"] == "0"


def test_first_burst_length_irrelevant_without_unsolicited_data() -> None:
    local = {"InitialR2T": "Yes", "ImmediateData": "No", "FirstBurstLength": "4096"}
    initiator = ini(local)
    message = initiator.offer(OP)
    assert message == [("InitialR2T", "Yes"), ("ImmediateData", "No"), ("FirstBurstLength", "4096")]
    replies = tgt().receive(message, OP)
    assert replies == [
        ("InitialR2T", "Yes"),
        ("ImmediateData", "No"),
        ("FirstBurstLength", "Irrelevant"),
    ]
    initiator.receive(replies, OP)
    assert initiator.complete
    assert "FirstBurstLength" not in initiator.negotiated()


def test_irrelevant_answer_to_a_relevant_key_needs_an_acceptable_default() -> None:
    with pytest.raises(RemoteProtocolError, match="cannot work with"):
        offered("MaxBurstLength", "65536").receive([("MaxBurstLength", "Irrelevant")], OP)


def test_iser_keys() -> None:
    iser = {"InitiatorRecvDataSegmentLength": "262144", "TargetRecvDataSegmentLength": "65536",
            "RDMAExtensions": "Yes"}  # fmt: skip
    initiator, target = (
        ini(iser),
        tgt({"RDMAExtensions": "Yes", "TargetRecvDataSegmentLength": "8192"}),
    )
    run(initiator, target)
    for side in (initiator, target):
        params = side.negotiated()
        assert params["RDMAExtensions"] == "Yes"
        assert params["InitiatorRecvDataSegmentLength"] == "8192"  # target had the default
        assert params["TargetRecvDataSegmentLength"] == "8192"
        assert params["MaxOutstandingUnexpectedPDUs"] == "0"
    # A TCP-only target turns RDMAExtensions down: the iSER keys become irrelevant.
    message = ini(iser).offer(OP)
    assert dict(tgt().receive(message, OP)) == {
        "InitiatorRecvDataSegmentLength": "Irrelevant",
        "TargetRecvDataSegmentLength": "Irrelevant",
        "RDMAExtensions": "No",
    }
    initiator, target = ini(iser), tgt()
    run(initiator, target)
    assert "TargetRecvDataSegmentLength" not in initiator.negotiated()
    assert initiator.negotiated()["RDMAExtensions"] == "No"


# -- obsolete markers --------------------------------------------------------------------------


def test_obsolete_markers_are_rejected() -> None:
    pairs = [
        ("IFMarker", "No"),
        ("OFMarker", "Yes"),
        ("OFMarkInt", "1~65535"),
        ("IFMarkInt", "2048"),
    ]
    target = tgt()
    assert target.receive(pairs, OP) == [(k, "Reject") for k, _ in pairs]
    assert not any(k in target.negotiated() for k, _ in pairs)


def test_range_rule_for_completeness() -> None:
    from iscsikit.proto.negotiation import _RULES

    rule, spec = _RULES[KeyKind.NUMERIC_RANGE], KEYS["OFMarkInt"]
    assert rule.respond(spec, "1000~3000", "2048") == "2048"
    assert rule.respond(spec, "1~100", "2048") == "100"
    assert rule.respond(spec, "0~100", "2048") == "Reject"
    assert rule.accepts(spec, "1~100", "50") and not rule.accepts(spec, "1~100", "101")
    assert rule.check(spec, "8~8") == "8"


# -- protocol violations -----------------------------------------------------------------------


def test_key_twice_in_one_negotiation() -> None:
    with pytest.raises(RemoteProtocolError, match="twice"):
        tgt().receive([("MaxBurstLength", "512"), ("MaxBurstLength", "512")], OP)


def test_key_renegotiated_later() -> None:
    target = tgt()
    target.receive([("MaxBurstLength", "512")], OP)
    with pytest.raises(RemoteProtocolError, match="twice"):
        target.receive([("MaxBurstLength", "1024")], OP)
    side = offered("MaxBurstLength", "65536")
    side.receive([("MaxBurstLength", "512")], OP)
    with pytest.raises(RemoteProtocolError, match="twice"):
        side.receive([("MaxBurstLength", "512")], OP)
    with pytest.raises(RemoteProtocolError, match="twice"):
        tgt().receive([("InitiatorName", "iqn.x:a"), ("InitiatorName", "iqn.x:a")], SEC)


@pytest.mark.parametrize(
    ("receiver", "key", "value", "stage"),
    [
        ("target", "MaxBurstLength", "512", SEC),  # operational key in the security stage
        ("target", "MaxRecvDataSegmentLength", "8192", SEC),
        ("target", "AuthMethod", "None", OP),  # security key in the operational stage
        ("target", "CHAP_A", "5", OP),
        ("target", "ImmediateData", "Yes", FFP),  # LO key after login
        ("target", "SendTargets", "All", OP),  # FFPO
        ("target", "TargetAlias", "x", OP),  # target-only key from the initiator
        ("initiator", "InitiatorName", "iqn.x:t", SEC),  # initiator-only key from the target
        ("initiator", "SessionType", "Normal", SEC),
        ("initiator", "TargetName", "iqn.x:t", SEC),  # the target sends it only via SendTargets
        ("initiator", "TargetName", "iqn.x:t", OP),
        ("initiator", "TargetPortalGroupTag", "1", FFP),  # IO
    ],
)
def test_wrong_stage_or_sender(receiver: str, key: str, value: str, stage: int) -> None:
    side = ini() if receiver == "initiator" else tgt()
    with pytest.raises(RemoteProtocolError, match="not"):
        side.receive([(key, value)], stage)


def test_target_name_from_target_in_full_feature_phase_is_allowed() -> None:
    assert ini().receive([("TargetName", "iqn.x:t")], FFP) == []


def test_leading_only_keys_on_a_secondary_connection() -> None:
    with pytest.raises(RemoteProtocolError, match="leading-only"):
        tgt(leading=False).receive([("MaxBurstLength", "512")], OP)
    # Connection-scoped keys are fine there.
    assert tgt(leading=False).receive([("HeaderDigest", "None")], OP) == [("HeaderDigest", "None")]
    assert ini({"MaxBurstLength": "65536", "HeaderDigest": "None"}, leading=False).offer(OP) == [
        ("HeaderDigest", "None")
    ]


def test_first_burst_above_max_burst() -> None:
    side = ini({"MaxBurstLength": "65536", "FirstBurstLength": "65536"})
    side.offer(OP)
    with pytest.raises(RemoteProtocolError, match="exceeds"):
        side.receive([("MaxBurstLength", "8192"), ("FirstBurstLength", "65536")], OP)


def test_invalid_key_and_value_in_pairs() -> None:
    with pytest.raises(RemoteProtocolError, match="invalid key"):
        tgt().receive([("Bad Key", "1")], OP)
    with pytest.raises(RemoteProtocolError, match="too long"):
        tgt().receive([("TargetAlias", "x" * 256)], OP)


# -- security stage ----------------------------------------------------------------------------


def test_auth_method_and_chap_keys() -> None:
    initiator = ini({"AuthMethod": "CHAP,None"})
    assert initiator.offer(SEC) == [("AuthMethod", "CHAP,None")]
    target = tgt({"AuthMethod": "CHAP"})
    assert target.receive([("AuthMethod", "CHAP,None"), ("CHAP_A", "7,5")], SEC) == [
        ("AuthMethod", "CHAP")
    ]
    assert target.auth_pairs == [("CHAP_A", "7,5")]
    reply = [("AuthMethod", "CHAP"), ("CHAP_A", "5"), ("CHAP_I", "1"), ("CHAP_C", "0x" + "ab" * 16)]
    assert initiator.receive(reply, SEC) == []
    assert initiator.auth_pairs == reply[1:]
    assert initiator.negotiated()["AuthMethod"] == "CHAP"
    with pytest.raises(RemoteProtocolError, match="twice"):
        initiator.receive([("CHAP_C", "0x00")], SEC)


def test_record_sent_for_keys_built_by_the_login_machine() -> None:
    side = ini()
    side.record_sent(
        [("InitiatorName", "iqn.x:i"), ("SessionType", "Normal"), ("AuthMethod", "CHAP")], SEC
    )
    assert side.pending == {"AuthMethod"}
    assert side.offer(SEC) == []
    with pytest.raises(RemoteProtocolError, match="illegal answer"):
        side.receive([("AuthMethod", "None")], SEC)
    side = ini()
    side.record_sent([("AuthMethod", "CHAP,None")], SEC)
    side.receive([("AuthMethod", "None")], SEC)
    assert side.complete and side.negotiated()["AuthMethod"] == "None"
    with pytest.raises(LocalProtocolError, match="already"):
        side.record_sent([("AuthMethod", "CHAP")], SEC)
    with pytest.raises(LocalProtocolError):
        ini().record_sent([("MaxBurstLength", "512")], SEC)
    with pytest.raises(LocalProtocolError):
        ini().record_sent([("MaxBurstLength", "1")], OP)


def test_pending_offers_are_left_out_of_negotiated() -> None:
    side = ini({"AuthMethod": "CHAP,None", "MaxBurstLength": "65536"})
    side.offer(SEC)
    assert "AuthMethod" not in side.negotiated()
    side.offer(OP)
    assert "MaxBurstLength" not in side.negotiated()


# -- local configuration ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "local",
    [
        {"NoSuchKey": "1"},
        {"MaxBurstLength": "511"},
        {"MaxBurstLength": "lots"},
        {"MaxBurstLength": "65536", "FirstBurstLength": "131072"},
        {"MaxBurstLength": "32768"},  # below the default FirstBurstLength
        {"ImmediateData": "yes"},
        {"HeaderDigest": "crc32c"},
        {"HeaderDigest": "CRC32C,,None"},
        {"HeaderDigest": "Reject"},
        {"AuthMethod": "SPKM1"},
        {"CHAP_A": "5"},
        {"IFMarker": "No"},
        {"SendTargets": "All"},
        {"TargetAlias": "x"},  # only the target declares it
        {"SessionType": "Discovery"},  # contradicts session_type
        {"MaxRecvDataSegmentLength": "100"},
        {"InitiatorName": "i" * 224},
        {"X-com.example.a": "x\0y"},
        {"X-com.example.a": "NotUnderstood"},
    ],
)
def test_bad_local_values(local: dict[str, str]) -> None:
    with pytest.raises(InvalidParameterError):
        ini(local)


def test_local_extension_values_accepted() -> None:
    local = {"HeaderDigest": "Y-com.example.md5,CRC32C,None", "AuthMethod": "Z-com.example.x,CHAP"}
    # Offered as given, each in its stage (RFC 7143 §13.5.4: X-/Y-/Z- values are legal).
    assert ini(local).offer(0) == [("AuthMethod", "Z-com.example.x,CHAP")]
    assert ini(local).offer(OP) == [("HeaderDigest", "Y-com.example.md5,CRC32C,None")]


def test_target_only_keys_for_target_role() -> None:
    tgt({"TargetAlias": "x", "TargetPortalGroupTag": "1"})
    with pytest.raises(InvalidParameterError, match="initiator"):
        tgt({"InitiatorName": "iqn.x:i"})


@pytest.mark.parametrize(
    "kw",
    [
        {"session_type": "Boot"},
        {"allow": frozenset({"HeaderDigest"})},
        {"allow": frozenset({"X-bad key"})},
    ],
)
def test_bad_arguments(kw: dict[str, object]) -> None:
    with pytest.raises(InvalidParameterError):
        ini({}, **kw)
    with pytest.raises(InvalidParameterError):
        Negotiator("observer", {})  # type: ignore[arg-type]


# -- both roles against each other --------------------------------------------------------------


def test_open_iscsi_against_default_target() -> None:
    initiator, target = ini(OPEN_ISCSI), tgt({"MaxRecvDataSegmentLength": "65536"})
    run(initiator, target)
    assert initiator.complete and target.complete
    i, t = initiator.negotiated(), target.negotiated()
    assert i["MaxBurstLength"] == "262144" and i["FirstBurstLength"] == "65536"
    assert i["InitialR2T"] == "Yes" and i["ImmediateData"] == "Yes"
    assert i["DefaultTime2Retain"] == "0"
    assert (i["MaxRecvDataSegmentLength"], i["MaxXmitDataSegmentLength"]) == ("262144", "65536")
    assert (t["MaxRecvDataSegmentLength"], t["MaxXmitDataSegmentLength"]) == ("65536", "262144")


def test_target_proposes_what_the_initiator_did_not() -> None:
    initiator, target = ini({"MaxBurstLength": "65536"}), tgt({"ErrorRecoveryLevel": "1"})
    message = initiator.offer(OP)
    reply = target.receive(message, OP) + target.offer(OP)
    assert reply == [("MaxBurstLength", "65536"), ("ErrorRecoveryLevel", "1")]
    assert target.pending == {"ErrorRecoveryLevel"}
    assert initiator.receive(reply, OP) == [("ErrorRecoveryLevel", "0")]
    assert target.receive([("ErrorRecoveryLevel", "0")], OP) == []
    assert target.complete
    assert (
        initiator.negotiated()["ErrorRecoveryLevel"]
        == target.negotiated()["ErrorRecoveryLevel"]
        == "0"
    )


_NUMERIC = {
    "MaxConnections": st.integers(1, 65535),
    "MaxBurstLength": st.integers(512, 2**24 - 1),
    "FirstBurstLength": st.integers(512, 2**24 - 1),
    "DefaultTime2Wait": st.integers(0, 3600),
    "DefaultTime2Retain": st.integers(0, 3600),
    "MaxOutstandingR2T": st.integers(1, 65535),
    "ErrorRecoveryLevel": st.integers(0, 2),
    "iSCSIProtocolLevel": st.integers(0, 31),
    "MaxRecvDataSegmentLength": st.integers(512, 2**24 - 1),
    "TargetRecvDataSegmentLength": st.integers(512, 2**24 - 1),
    "InitiatorRecvDataSegmentLength": st.integers(512, 2**24 - 1),
    "MaxOutstandingUnexpectedPDUs": st.sampled_from([0, 2, 3, 100, 2**32 - 1]),
}
_BOOLEAN = (
    "InitialR2T",
    "ImmediateData",
    "DataPDUInOrder",
    "DataSequenceInOrder",
    "RDMAExtensions",
)
_LIST_VALUES = {
    "HeaderDigest": ("CRC32C", "None"),
    "DataDigest": ("CRC32C", "None"),
    "TaskReporting": ("RFC3720", "ResponseFence", "FastAbort"),
}


@st.composite
def local_config(draw: st.DrawFn) -> dict[str, str]:
    local: dict[str, str] = {}
    for key, values in _NUMERIC.items():
        if draw(st.booleans()):
            local[key] = str(draw(values))
    for key in _BOOLEAN:
        if draw(st.booleans()):
            local[key] = draw(st.sampled_from(["Yes", "No"]))
    for key, choices in _LIST_VALUES.items():
        if draw(st.booleans()):
            chosen = draw(st.permutations(choices))[: draw(st.integers(1, len(choices)))]
            local[key] = ",".join(chosen)
    # RFC 7143 §13.14 on this side's effective values, as a valid configuration must be.
    first = int(local.get("FirstBurstLength", "65536"))
    if first > int(local.get("MaxBurstLength", "262144")):
        local["MaxBurstLength"] = str(first)
    return local


def _effective(local: Mapping[str, str], key: str) -> str:
    default = KEYS[key].default
    assert default is not None
    return local.get(key, default)


def _disjoint(offerer: Mapping[str, str], acceptor: Mapping[str, str], key: str) -> bool:
    """Whether the acceptor supports none of the offered list values."""
    return not set(offerer[key].split(",")) & set(_effective(acceptor, key).split(","))


def _expected(key: str, i: Mapping[str, str], t: Mapping[str, str]) -> str:
    """The outcome RFC 7143 §6.2 prescribes, from both sides' configurations alone."""
    spec = KEYS[key]
    mine, theirs = _effective(i, key), _effective(t, key)
    if spec.kind is KeyKind.LIST:
        offer, supported = (i[key], theirs) if key in i else (theirs, mine)
        if key not in i and key not in t:
            return mine
        pick = [v for v in offer.split(",") if v in supported.split(",")]
        return pick[0] if pick else str(spec.default)
    if spec.kind in (KeyKind.BOOL_AND, KeyKind.BOOL_OR):
        fixing = "No" if spec.kind is KeyKind.BOOL_AND else "Yes"
        return fixing if fixing in (mine, theirs) else mine
    a, b = parse_number(mine), parse_number(theirs)
    if spec.kind is KeyKind.NUMERIC_MAX:
        return str(max(a, b))
    unlimited = spec.unlimited
    return str(min(a, b, key=lambda v: float("inf") if v == unlimited else v))


@settings(max_examples=150, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(local_config(), local_config(), st.sampled_from(["Normal", "Discovery"]))
def test_both_roles_agree(
    i_local: dict[str, str], t_local: dict[str, str], session_type: str
) -> None:
    initiator = ini(i_local, session_type=session_type)
    target = tgt(t_local, session_type=session_type)
    try:
        run(initiator, target)
    except RemoteProtocolError as exc:
        # Only a list Reject whose default the offerer cannot accept may end a negotiation
        # between two valid configurations (§6.2: the proposer MAY then terminate).
        assert "cannot work with" in str(exc)
        assert any(
            _disjoint(i_local, t_local, key)
            if key in i_local
            else key in t_local and _disjoint(t_local, i_local, key)
            for key in _LIST_VALUES
        )
        event("ended by an unacceptable list Reject")
        return
    assert initiator.complete and target.complete
    event(f"agreed ({session_type})")
    i, t = initiator.negotiated(), target.negotiated()
    assert i.pop("MaxRecvDataSegmentLength") == t.pop("MaxXmitDataSegmentLength")
    assert i.pop("MaxXmitDataSegmentLength") == t.pop("MaxRecvDataSegmentLength")
    assert i == t
    for key, value in i.items():
        spec = KEYS[key]
        if spec.kind is not KeyKind.DECLARATIVE and key != "AuthMethod":
            assert value == _expected(key, i_local, t_local), key
