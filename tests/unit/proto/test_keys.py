"""Sanity of the key table against RFC 7143 §12-§13, RFC 7144 §2.1, RFC 7145 §6."""

from __future__ import annotations

import pytest

from iscsikit.proto.keys import (
    KEYS,
    NOT_ABOVE,
    OFFER_ORDER,
    KeyKind,
    Phase,
    Scope,
    Sender,
    in_range,
    is_extension_key,
    parse_number,
    parse_range,
    spec_for,
    value_limit,
)
from iscsikit.proto.text import is_valid_key

K = KeyKind
SW, CO = Scope.SESSION, Scope.CONNECTION
INI, TGT, BOTH = Sender.INITIATOR, Sender.TARGET, Sender.BOTH

# name: (kind, scope, default, senders, leading_only, initialize_only), straight from the
# "Use / Senders / Scope / Default / Result function" lines of each section.
RFC_TABLE: dict[str, tuple[KeyKind, Scope, str | None, Sender, bool, bool]] = {
    "HeaderDigest": (K.LIST, CO, "None", BOTH, False, True),  # §13.1
    "DataDigest": (K.LIST, CO, "None", BOTH, False, True),  # §13.1
    "MaxConnections": (K.NUMERIC_MIN, SW, "1", BOTH, True, False),  # §13.2
    "SendTargets": (K.DECLARATIVE, SW, None, INI, False, False),  # §13.3 (FFPO)
    "TargetName": (K.DECLARATIVE, SW, None, BOTH, False, True),  # §13.4
    "InitiatorName": (K.DECLARATIVE, SW, None, INI, False, True),  # §13.5
    "TargetAlias": (K.DECLARATIVE, SW, None, TGT, False, False),  # §13.6 (ALL)
    "InitiatorAlias": (K.DECLARATIVE, SW, None, INI, False, False),  # §13.7 (ALL)
    "TargetAddress": (K.DECLARATIVE, SW, None, TGT, False, False),  # §13.8 (ALL)
    "TargetPortalGroupTag": (K.DECLARATIVE, SW, None, TGT, False, True),  # §13.9
    "InitialR2T": (K.BOOL_OR, SW, "Yes", BOTH, True, False),  # §13.10
    "ImmediateData": (K.BOOL_AND, SW, "Yes", BOTH, True, False),  # §13.11
    "MaxRecvDataSegmentLength": (K.DECLARATIVE, CO, "8192", BOTH, False, False),  # §13.12
    "MaxBurstLength": (K.NUMERIC_MIN, SW, "262144", BOTH, True, False),  # §13.13
    "FirstBurstLength": (K.NUMERIC_MIN, SW, "65536", BOTH, True, False),  # §13.14
    "DefaultTime2Wait": (K.NUMERIC_MAX, SW, "2", BOTH, True, False),  # §13.15
    "DefaultTime2Retain": (K.NUMERIC_MIN, SW, "20", BOTH, True, False),  # §13.16
    "MaxOutstandingR2T": (K.NUMERIC_MIN, SW, "1", BOTH, True, False),  # §13.17
    "DataPDUInOrder": (K.BOOL_OR, SW, "Yes", BOTH, True, False),  # §13.18
    "DataSequenceInOrder": (K.BOOL_OR, SW, "Yes", BOTH, True, False),  # §13.19
    "ErrorRecoveryLevel": (K.NUMERIC_MIN, SW, "0", BOTH, True, False),  # §13.20
    "SessionType": (K.DECLARATIVE, SW, "Normal", INI, True, False),  # §13.21
    "TaskReporting": (K.LIST, SW, "RFC3720", BOTH, True, False),  # §13.23
    "X#NodeArchitecture": (K.DECLARATIVE, SW, None, BOTH, True, False),  # §13.24
    "IFMarker": (K.BOOL_AND, CO, "No", BOTH, False, True),  # §13.25, obsolete
    "OFMarker": (K.BOOL_AND, CO, "No", BOTH, False, True),  # §13.25, obsolete
    "IFMarkInt": (K.NUMERIC_RANGE, CO, "2048", BOTH, False, True),  # §13.25, obsolete
    "OFMarkInt": (K.NUMERIC_RANGE, CO, "2048", BOTH, False, True),  # §13.25, obsolete
    "iSCSIProtocolLevel": (K.NUMERIC_MIN, SW, "1", BOTH, True, False),  # RFC 7144 §2.1
    "AuthMethod": (K.LIST, CO, "None", BOTH, False, True),  # §12
    "CHAP_A": (K.AUTH, CO, None, BOTH, False, True),  # §12.1.3
    "CHAP_I": (K.AUTH, CO, None, BOTH, False, True),
    "CHAP_C": (K.AUTH, CO, None, BOTH, False, True),
    "CHAP_N": (K.AUTH, CO, None, BOTH, False, True),
    "CHAP_R": (K.AUTH, CO, None, BOTH, False, True),
    "RDMAExtensions": (K.BOOL_AND, SW, "No", BOTH, True, False),  # RFC 7145 §6
    "TargetRecvDataSegmentLength": (K.NUMERIC_MIN, CO, "8192", BOTH, False, True),
    "InitiatorRecvDataSegmentLength": (K.NUMERIC_MIN, CO, "8192", BOTH, False, True),
    "MaxOutstandingUnexpectedPDUs": (K.NUMERIC_MIN, SW, "0", BOTH, True, False),  # RFC 5046 §6.6
}

RANGES = {
    "MaxConnections": (1, 65535),
    "MaxRecvDataSegmentLength": (512, 2**24 - 1),
    "MaxBurstLength": (512, 2**24 - 1),
    "FirstBurstLength": (512, 2**24 - 1),
    "DefaultTime2Wait": (0, 3600),
    "DefaultTime2Retain": (0, 3600),
    "MaxOutstandingR2T": (1, 65535),
    "ErrorRecoveryLevel": (0, 2),
    "TargetPortalGroupTag": (0, 65535),
    "iSCSIProtocolLevel": (0, 31),
    "IFMarkInt": (1, 65535),
    "OFMarkInt": (1, 65535),
    "TargetRecvDataSegmentLength": (512, 2**24 - 1),
    "InitiatorRecvDataSegmentLength": (512, 2**24 - 1),
    "MaxOutstandingUnexpectedPDUs": (2, 2**32 - 1),
    "CHAP_I": (0, 255),
}

# "Irrelevant when: SessionType=Discovery" (plus keys only sent in Normal sessions).
NOT_IN_DISCOVERY = {
    "MaxConnections", "InitialR2T", "ImmediateData", "MaxBurstLength", "FirstBurstLength",
    "MaxOutstandingR2T", "DataPDUInOrder", "DataSequenceInOrder", "TaskReporting",
    "iSCSIProtocolLevel", "TargetName", "TargetAlias", "TargetPortalGroupTag",
    "IFMarker", "OFMarker", "IFMarkInt", "OFMarkInt", "RDMAExtensions",
    "TargetRecvDataSegmentLength", "InitiatorRecvDataSegmentLength",
    "MaxOutstandingUnexpectedPDUs",
}  # fmt: skip


def test_table_has_exactly_the_rfc_keys() -> None:
    assert set(KEYS) == set(RFC_TABLE)


@pytest.mark.parametrize("name", sorted(RFC_TABLE))
def test_key_matches_rfc(name: str) -> None:
    kind, scope, default, senders, leading, initialize = RFC_TABLE[name]
    spec = KEYS[name]
    assert spec.name == name
    assert (spec.kind, spec.scope, spec.default, spec.senders) == (kind, scope, default, senders)
    assert (spec.leading_only, spec.initialize_only) == (leading, initialize)
    assert (spec.minimum, spec.maximum) == RANGES.get(name, (None, None))
    assert spec.discovery is (name not in NOT_IN_DISCOVERY)
    assert spec.rfc.startswith(("RFC 7143 §", "RFC 7144 §", "RFC 7145 §", "RFC 5046 §"))
    assert spec.description


@pytest.mark.parametrize("name", sorted(KEYS))
def test_defaults_are_legal_values(name: str) -> None:
    spec = KEYS[name]
    if spec.kind not in (KeyKind.DECLARATIVE, KeyKind.AUTH):
        assert spec.default is not None
    if spec.default is None:
        return
    if spec.kind is KeyKind.NUMERIC_RANGE or spec.numeric:
        assert in_range(spec, parse_number(spec.default))
    elif spec.values:
        assert spec.default in spec.values
    assert len(spec.default) <= spec.max_value_length


def test_key_names_are_valid_and_table_is_consistent() -> None:
    for name, spec in KEYS.items():
        assert is_valid_key(name), name
        for condition, value in spec.irrelevant_when:
            assert condition in KEYS and value in ("Yes", "No")
    assert len(OFFER_ORDER) == len(set(OFFER_ORDER))
    assert set(OFFER_ORDER) <= set(KEYS)
    for low, high in NOT_ABOVE:
        assert KEYS[low].numeric and KEYS[high].numeric


def test_stage_rules() -> None:
    # Any-Stage declarations may appear in both login stages (§13 intro).
    for name in ("InitiatorName", "TargetName", "SessionType", "TargetAlias", "TargetAddress"):
        assert KEYS[name].phases & Phase.LOGIN == Phase.LOGIN
    # Operational keys never in the security stage; security keys only there.
    for name in ("HeaderDigest", "MaxBurstLength", "ImmediateData", "MaxRecvDataSegmentLength"):
        assert not KEYS[name].phases & Phase.SECURITY
    for name in ("AuthMethod", "CHAP_A", "CHAP_C", "CHAP_R"):
        assert KEYS[name].phases == Phase.SECURITY
    # Use: ALL keys may be renegotiated in Full Feature Phase, LO/IO keys may not.
    for name in ("MaxRecvDataSegmentLength", "TargetAlias", "InitiatorAlias", "TargetAddress"):
        assert KEYS[name].phases & Phase.FULL_FEATURE
    for spec in KEYS.values():
        if spec.leading_only or spec.initialize_only:
            assert not spec.phases & Phase.FULL_FEATURE, spec.name
    # The target sends TargetName only in SendTargets responses (§13.4).
    assert KEYS["TargetName"].target_phases == Phase.FULL_FEATURE
    assert KEYS["SendTargets"].phases == Phase.FULL_FEATURE


def test_special_entries() -> None:
    assert KEYS["TargetAddress"].repeatable
    assert [n for n, s in KEYS.items() if s.repeatable] == ["TargetAddress"]
    assert {n for n, s in KEYS.items() if s.obsolete} == {
        "IFMarker",
        "OFMarker",
        "IFMarkInt",
        "OFMarkInt",
    }
    assert KEYS["FirstBurstLength"].irrelevant_when == (
        ("InitialR2T", "Yes"),
        ("ImmediateData", "No"),
    )
    assert KEYS["MaxOutstandingUnexpectedPDUs"].unlimited == 0
    assert KEYS["HeaderDigest"].values == ("CRC32C", "None")
    assert KEYS["TaskReporting"].values == ("RFC3720", "ResponseFence", "FastAbort")
    assert KEYS["SessionType"].values == ("Discovery", "Normal")


def test_helpers() -> None:
    assert is_extension_key("X-com.example.foo")
    assert is_extension_key("X#NodeArchitecture")
    assert not is_extension_key("HeaderDigest")
    assert not is_extension_key("Xylophone")
    assert spec_for("MaxBurstLength") is KEYS["MaxBurstLength"]
    assert spec_for("NoSuchKey") is None
    assert value_limit("CHAP_C") == value_limit("CHAP_R") == 2 + 2 * 1024
    assert value_limit("InitiatorName") == value_limit("TargetName") == 223
    assert value_limit("HeaderDigest") == value_limit("X-com.example.unknown") == 255


@pytest.mark.parametrize(
    ("text", "value"),
    [("0", 0), ("8192", 8192), ("0x2000", 8192), ("0X1f", 31), ("0x0", 0),
     (str(2**64 - 1), 2**64 - 1), ("0x" + "f" * 16, 2**64 - 1)],
)  # fmt: skip
def test_parse_number(text: str, value: int) -> None:
    assert parse_number(text) == value


@pytest.mark.parametrize(
    "text",
    ["", "08", "-1", "+1", " 1", "1 ", "0x", "1e3", "0b1", "ten", str(2**64), "0x1" + "0" * 16],
)
def test_parse_number_rejects(text: str) -> None:
    with pytest.raises(ValueError, match="numerical-value"):
        parse_number(text)


def test_parse_range() -> None:
    assert parse_range("1~65535") == (1, 65535)
    assert parse_range("2048") == (2048, 2048)
    with pytest.raises(ValueError, match="below"):
        parse_range("9~8")
    with pytest.raises(ValueError):
        parse_range("1~")


def test_in_range_with_unlimited() -> None:
    spec = KEYS["MaxOutstandingUnexpectedPDUs"]
    assert in_range(spec, 0) and in_range(spec, 2) and in_range(spec, 2**32 - 1)
    assert not in_range(spec, 1) and not in_range(spec, 2**32)
    assert not in_range(KEYS["MaxBurstLength"], 511)
