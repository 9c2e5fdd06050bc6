"""The declarative table of every login/text key (RFC 7143 §12.1, §13; RFC 7144; RFC 7145).

This module owns *facts about keys*: for each key its result function (:class:`KeyKind`),
scope, default, range or value set, "Use" (leading-only / initialize-only), who may send
it, in which stages it may appear, whether it is relevant in a Discovery session, its
value length limit, and the RFC section it comes from.  It also owns the value syntax of
RFC 7143 §6.1 that the table needs (:func:`parse_number`).

It must not hold negotiation *logic*: :mod:`iscsikit.proto.negotiation` drives the rules
from this table, one function per :class:`KeyKind`, never per key.  No I/O.

Where the RFC text is terse the table follows it literally and says so in ``description``;
the choices that needed interpretation are listed in the module comments below.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum, Flag
from types import MappingProxyType


class KeyKind(Enum):
    """How a key's value is settled: its "Result function" (RFC 7143 §13 intro, §6.2)."""

    NUMERIC_MIN = "Minimum"  # the answer must not exceed the offer
    NUMERIC_MAX = "Maximum"  # the answer must not be lower than the offer
    NUMERIC_RANGE = "Range"  # offer "lo~hi", answer one value in it (obsolete markers)
    BOOL_AND = "AND"
    BOOL_OR = "OR"
    LIST = "List"  # §6.2.1: the acceptor picks the first offered value it supports
    DECLARATIVE = "Declarative"  # §6.2: a one-way declaration, never answered
    AUTH = "Authentication"  # §12.1: carried by the authentication exchange (proto.chap)


class Scope(Enum):
    """Key scope: session-wide (SW) or connection-only (CO)."""

    SESSION = "SW"
    CONNECTION = "CO"


class Sender(Flag):
    """Who may send a key ("Senders:")."""

    INITIATOR = 1
    TARGET = 2
    BOTH = 3


class Phase(Flag):
    """Where a key may appear: the two login stages and the Full Feature Phase."""

    SECURITY = 1  # CSG 0
    OPERATIONAL = 2  # CSG 1
    FULL_FEATURE = 4  # Text Request / Response negotiation (§6.6)
    LOGIN = SECURITY | OPERATIONAL  # "Any-Stage" keys
    ALL = SECURITY | OPERATIONAL | FULL_FEATURE  # "Use: ALL, Any-Stage"


#: §6.1: "If not otherwise specified, the maximum length of a simple-value (not its
#: encoded representation) is 255 bytes, not including the delimiter".
DEFAULT_MAX_VALUE_LENGTH = 255
#: §6.1: key names (standard-labels) must not exceed 63 characters.
MAX_KEY_LENGTH = 63
#: iSCSI names are at most 223 bytes (RFC 7143 §4.2.7.1).
MAX_ISCSI_NAME_LENGTH = 223
#: CHAP_C / CHAP_R are binary values of at most 1024 bytes (RFC 7143 §12.1.3; open-iscsi
#: AUTH_LARGE_BINARY_MAX_LEN).  The limit here is on the encoded text, so it is the widest
#: legal encoding: "0x" and two hex digits per byte.
MAX_CHAP_BINARY_TEXT = 2 + 2 * 1024
#: The answers of §6.2 that are never legal proposals or declarations.
ANSWER_CONSTANTS = frozenset({"Reject", "Irrelevant", "NotUnderstood"})
_MAX_24 = 2**24 - 1
_LOGIN_OP = Phase.OPERATIONAL


@dataclass(frozen=True, slots=True)
class KeySpec:
    """Everything the protocol core needs to know about one key."""

    name: str
    kind: KeyKind
    scope: Scope
    #: Value when never negotiated / declared (None: no default, e.g. names).
    default: str | None
    rfc: str
    description: str
    minimum: int | None = None
    maximum: int | None = None
    #: A value that means "no limit" and compares above every other (RFC 5046 §6.6).
    unlimited: int | None = None
    #: The defined values of a LIST key (or of a declarative with a fixed value set).
    values: tuple[str, ...] = ()
    #: Prefixes of extension values a LIST key also accepts (Y- / Z- formats, §13.1, §12.1).
    value_extensions: tuple[str, ...] = ()
    #: "Use: LO" - only in the leading connection's login.
    leading_only: bool = False
    #: "Use: IO" - only during login (every connection's).
    initialize_only: bool = False
    senders: Sender = Sender.BOTH
    phases: Phase = _LOGIN_OP
    #: Where the target may send it, when that differs from ``phases`` (TargetName, §13.4).
    target_phases: Phase | None = None
    #: Relevant in a Discovery session ("Irrelevant when: SessionType=Discovery" -> False).
    discovery: bool = True
    #: Further "Irrelevant when:" conditions, all of which must hold (key, value) pairs.
    irrelevant_when: tuple[tuple[str, str], ...] = ()
    #: May legitimately be sent more than once (TargetAddress, §6.2).
    repeatable: bool = False
    #: Obsoleted by RFC 7143 §13.25: never offered, answered with "Reject".
    obsolete: bool = False
    max_value_length: int = DEFAULT_MAX_VALUE_LENGTH

    @property
    def numeric(self) -> bool:
        """True when values are numerical-values (§6.1) checked against the range."""
        return self.minimum is not None


_SW, _CO = Scope.SESSION, Scope.CONNECTION
_I, _T = Sender.INITIATOR, Sender.TARGET
_NUM, _NUMX = KeyKind.NUMERIC_MIN, KeyKind.NUMERIC_MAX
_DECL = KeyKind.DECLARATIVE
_NO_ISER = (("RDMAExtensions", "No"),)

# Interpretations (reported to the lead, see the module docstring):
# * Keys whose section has no "Irrelevant when: SessionType=Discovery" line stay relevant in
#   Discovery sessions (DefaultTime2Wait/Retain, ErrorRecoveryLevel, X#NodeArchitecture).
# * TargetAlias and TargetPortalGroupTag are only *sent* in Normal sessions (§13.6 "SHOULD
#   ... if SessionType=Normal", §13.9 "when TargetName is given"), hence discovery=False.
# * AuthMethod has no stated default; "None" (no authentication) is what an unnegotiated
#   connection means.  SPKM1/SPKM2 are obsolete (IANA registry) and not in the value set.
# * iSER keys follow RFC 7145 §6; MaxOutstandingUnexpectedPDUs comes from RFC 5046 §6.6.
# fmt: off
_SPECS: tuple[KeySpec, ...] = (
    # -- security stage (RFC 7143 §12) --------------------------------------------------------
    KeySpec("AuthMethod", KeyKind.LIST, _CO, "None", "RFC 7143 §12",
            "Authentication method; the acceptor picks the first offered method it supports.",
            values=("KRB5", "SRP", "CHAP", "None"), value_extensions=("Z-", "Z#"),
            initialize_only=True, phases=Phase.SECURITY),
    KeySpec("CHAP_A", KeyKind.AUTH, _CO, None, "RFC 7143 §12.1.3",
            "CHAP algorithms: a list from the initiator, the target's selection back.",
            initialize_only=True, phases=Phase.SECURITY),
    KeySpec("CHAP_I", KeyKind.AUTH, _CO, None, "RFC 7143 §12.1.3",
            "CHAP identifier (one octet) sent with a challenge.",
            minimum=0, maximum=255, initialize_only=True, phases=Phase.SECURITY),
    KeySpec("CHAP_C", KeyKind.AUTH, _CO, None, "RFC 7143 §12.1.3",
            "CHAP challenge, a binary-value of at most 1024 bytes.",
            initialize_only=True, phases=Phase.SECURITY, max_value_length=MAX_CHAP_BINARY_TEXT),
    KeySpec("CHAP_N", KeyKind.AUTH, _CO, None, "RFC 7143 §12.1.3",
            "CHAP name of the responding side.", initialize_only=True, phases=Phase.SECURITY),
    KeySpec("CHAP_R", KeyKind.AUTH, _CO, None, "RFC 7143 §12.1.3",
            "CHAP response, a binary-value of at most 1024 bytes.",
            initialize_only=True, phases=Phase.SECURITY, max_value_length=MAX_CHAP_BINARY_TEXT),
    # -- declarations (RFC 7143 §13.3-§13.9, §13.12, §13.21, §13.24) ---------------------------
    KeySpec("InitiatorName", _DECL, _SW, None, "RFC 7143 §13.5",
            "Initiator's iSCSI name; in the first Login Request of every connection.",
            initialize_only=True, senders=_I, phases=Phase.LOGIN,
            max_value_length=MAX_ISCSI_NAME_LENGTH),
    KeySpec("InitiatorAlias", _DECL, _SW, None, "RFC 7143 §13.7",
            "Human-readable initiator name (UTF-8), informational only.",
            senders=_I, phases=Phase.ALL),
    KeySpec("TargetName", _DECL, _SW, None, "RFC 7143 §13.4",
            "Target's iSCSI name: declared by the initiator at login (Normal sessions); "
            "sent by the target only in SendTargets responses.",
            initialize_only=True, phases=Phase.LOGIN, target_phases=Phase.FULL_FEATURE,
            discovery=False, max_value_length=MAX_ISCSI_NAME_LENGTH),
    KeySpec("SessionType", _DECL, _SW, "Normal", "RFC 7143 §13.21",
            "Discovery or Normal session.", values=("Discovery", "Normal"),
            leading_only=True, senders=_I, phases=Phase.LOGIN),
    KeySpec("TargetAlias", _DECL, _SW, None, "RFC 7143 §13.6",
            "Human-readable target name (UTF-8), sent by the target in Normal sessions.",
            senders=_T, phases=Phase.ALL, discovery=False),
    KeySpec("TargetAddress", _DECL, _SW, None, "RFC 7143 §13.8",
            "domainname[:port][,portal-group-tag]: in redirects and SendTargets responses.",
            senders=_T, phases=Phase.ALL, repeatable=True),
    KeySpec("TargetPortalGroupTag", _DECL, _SW, None, "RFC 7143 §13.9",
            "16-bit tag of the portal group serving the login (Normal sessions).",
            minimum=0, maximum=65535, initialize_only=True, senders=_T, phases=Phase.LOGIN,
            discovery=False),
    KeySpec("SendTargets", _DECL, _SW, None, "RFC 7143 §13.3",
            "Discovery request (All, an iSCSI name, or empty); answered by proto.sendtargets.",
            senders=_I, phases=Phase.FULL_FEATURE),
    KeySpec("MaxRecvDataSegmentLength", _DECL, _CO, "8192", "RFC 7143 §13.12",
            "Largest data segment the declarer can receive; each side declares its own.",
            minimum=512, maximum=_MAX_24, phases=Phase.OPERATIONAL | Phase.FULL_FEATURE),
    KeySpec("X#NodeArchitecture", _DECL, _SW, None, "RFC 7143 §13.24",
            "Node architecture description (list-of-values, at most 255 bytes).",
            leading_only=True),
    # -- operational negotiation (RFC 7143 §13.1, §13.2, §13.10-§13.20, §13.23) ----------------
    KeySpec("HeaderDigest", KeyKind.LIST, _CO, "None", "RFC 7143 §13.1",
            "Header digest: CRC32C or None.", values=("CRC32C", "None"),
            value_extensions=("Y-", "Y#"), initialize_only=True),
    KeySpec("DataDigest", KeyKind.LIST, _CO, "None", "RFC 7143 §13.1",
            "Data digest: CRC32C or None.", values=("CRC32C", "None"),
            value_extensions=("Y-", "Y#"), initialize_only=True),
    KeySpec("MaxConnections", _NUM, _SW, "1", "RFC 7143 §13.2",
            "Maximum number of connections in the session.",
            minimum=1, maximum=65535, leading_only=True, discovery=False),
    KeySpec("InitialR2T", KeyKind.BOOL_OR, _SW, "Yes", "RFC 7143 §13.10",
            "Yes: the first burst of write data waits for an R2T.",
            values=("Yes", "No"), leading_only=True, discovery=False),
    KeySpec("ImmediateData", KeyKind.BOOL_AND, _SW, "Yes", "RFC 7143 §13.11",
            "Yes: write data may ride in the SCSI Command PDU.",
            values=("Yes", "No"), leading_only=True, discovery=False),
    KeySpec("MaxBurstLength", _NUM, _SW, "262144", "RFC 7143 §13.13",
            "Maximum SCSI data payload of a Data-In or solicited Data-Out sequence.",
            minimum=512, maximum=_MAX_24, leading_only=True, discovery=False),
    KeySpec("FirstBurstLength", _NUM, _SW, "65536", "RFC 7143 §13.14",
            "Maximum unsolicited data per command; must not exceed MaxBurstLength.",
            minimum=512, maximum=_MAX_24, leading_only=True, discovery=False,
            irrelevant_when=(("InitialR2T", "Yes"), ("ImmediateData", "No"))),
    KeySpec("DefaultTime2Wait", _NUMX, _SW, "2", "RFC 7143 §13.15",
            "Seconds to wait before logout or task reassignment after a connection loss.",
            minimum=0, maximum=3600, leading_only=True),
    KeySpec("DefaultTime2Retain", _NUM, _SW, "20", "RFC 7143 §13.16",
            "Seconds after Time2Wait during which task reassignment is still possible.",
            minimum=0, maximum=3600, leading_only=True),
    KeySpec("MaxOutstandingR2T", _NUM, _SW, "1", "RFC 7143 §13.17",
            "Maximum outstanding R2Ts per task.",
            minimum=1, maximum=65535, leading_only=True, discovery=False),
    KeySpec("DataPDUInOrder", KeyKind.BOOL_OR, _SW, "Yes", "RFC 7143 §13.18",
            "Yes: data PDUs within a sequence are in increasing offset order.",
            values=("Yes", "No"), leading_only=True, discovery=False),
    KeySpec("DataSequenceInOrder", KeyKind.BOOL_OR, _SW, "Yes", "RFC 7143 §13.19",
            "Yes: data sequences are transferred in increasing offset order.",
            values=("Yes", "No"), leading_only=True, discovery=False),
    KeySpec("ErrorRecoveryLevel", _NUM, _SW, "0", "RFC 7143 §13.20",
            "Error recovery level supported (0-2).",
            minimum=0, maximum=2, leading_only=True),
    KeySpec("TaskReporting", KeyKind.LIST, _SW, "RFC3720", "RFC 7143 §13.23",
            "Task completion reporting semantics.",
            values=("RFC3720", "ResponseFence", "FastAbort"),
            leading_only=True, discovery=False),
    KeySpec("iSCSIProtocolLevel", _NUM, _SW, "1", "RFC 7144 §2.1",
            "iSCSI protocol level (1 = RFC 7143, 2 = RFC 7144 features).",
            minimum=0, maximum=31, leading_only=True, discovery=False),
    # -- obsolete markers (RFC 7143 §13.25, defined in RFC 3720 §12.17-§12.18, §A.3) ------------
    KeySpec("IFMarker", KeyKind.BOOL_AND, _CO, "No", "RFC 7143 §13.25",
            "Obsolete: target-to-initiator markers.  Answered with Reject.",
            values=("Yes", "No"), initialize_only=True, discovery=False, obsolete=True),
    KeySpec("OFMarker", KeyKind.BOOL_AND, _CO, "No", "RFC 7143 §13.25",
            "Obsolete: initiator-to-target markers.  Answered with Reject.",
            values=("Yes", "No"), initialize_only=True, discovery=False, obsolete=True),
    KeySpec("IFMarkInt", KeyKind.NUMERIC_RANGE, _CO, "2048", "RFC 7143 §13.25",
            "Obsolete: target-to-initiator marker interval.  MUST be answered with Reject.",
            minimum=1, maximum=65535, initialize_only=True, discovery=False, obsolete=True,
            irrelevant_when=(("IFMarker", "No"),)),
    KeySpec("OFMarkInt", KeyKind.NUMERIC_RANGE, _CO, "2048", "RFC 7143 §13.25",
            "Obsolete: initiator-to-target marker interval.  MUST be answered with Reject.",
            minimum=1, maximum=65535, initialize_only=True, discovery=False, obsolete=True,
            irrelevant_when=(("OFMarker", "No"),)),
    # -- iSER (RFC 7145 §6, RFC 5046 §6.6) --------------------------------------------------------
    KeySpec("RDMAExtensions", KeyKind.BOOL_AND, _SW, "No", "RFC 7145 §6",
            "Yes: the session uses iSER (RDMA) data movement.",
            values=("Yes", "No"), leading_only=True, discovery=False),
    KeySpec("TargetRecvDataSegmentLength", _NUM, _CO, "8192", "RFC 7145 §6",
            "iSER: largest data segment the target can receive.",
            minimum=512, maximum=_MAX_24, initialize_only=True, discovery=False,
            irrelevant_when=_NO_ISER),
    KeySpec("InitiatorRecvDataSegmentLength", _NUM, _CO, "8192", "RFC 7145 §6",
            "iSER: largest data segment the initiator can receive.",
            minimum=512, maximum=_MAX_24, initialize_only=True, discovery=False,
            irrelevant_when=_NO_ISER),
    KeySpec("MaxOutstandingUnexpectedPDUs", _NUM, _SW, "0", "RFC 5046 §6.6",
            "iSER: unexpected PDUs a side may have outstanding; 0 means no limit.",
            minimum=2, maximum=2**32 - 1, unlimited=0, leading_only=True, discovery=False,
            irrelevant_when=_NO_ISER),
)
# fmt: on

#: Every key this implementation knows, by name.
KEYS: Mapping[str, KeySpec] = MappingProxyType({spec.name: spec for spec in _SPECS})

#: The order keys are offered in: open-iscsi's (usr/login.c iscsi_make_login_pdu,
#: fill_op_params_text, add_params_normal_session, add_params_transport_specific), then the
#: keys open-iscsi never sends.  Target declarations come first in a target's PDUs.
# fmt: off
OFFER_ORDER: tuple[str, ...] = (
    "InitiatorName", "InitiatorAlias", "TargetName", "SessionType",
    "TargetAlias", "TargetPortalGroupTag", "AuthMethod",
    "HeaderDigest", "DataDigest", "DefaultTime2Wait", "DefaultTime2Retain",
    "ErrorRecoveryLevel", "InitialR2T", "ImmediateData", "MaxBurstLength", "FirstBurstLength",
    "MaxOutstandingR2T", "MaxConnections", "DataPDUInOrder", "DataSequenceInOrder",
    "MaxRecvDataSegmentLength", "InitiatorRecvDataSegmentLength",
    "TargetRecvDataSegmentLength", "RDMAExtensions", "MaxOutstandingUnexpectedPDUs",
    "TaskReporting", "iSCSIProtocolLevel", "X#NodeArchitecture",
)
# fmt: on

#: Cross-key rules on outcomes: (a, b) means a must not exceed b.  RFC 7143 §13.14:
#: "FirstBurstLength MUST NOT exceed MaxBurstLength."
NOT_ABOVE: tuple[tuple[str, str], ...] = (("FirstBurstLength", "MaxBurstLength"),)

_DECIMAL = re.compile(r"0|[1-9][0-9]*")
_HEX = re.compile(r"0[xX][0-9a-fA-F]+")


def is_extension_key(name: str) -> bool:
    """True for private (``X-``) and public (``X#``) extension keys (RFC 7143 §13.22, §6.2)."""
    return name.startswith(("X-", "X#"))


def spec_for(name: str) -> KeySpec | None:
    """The table entry for ``name``, or None for a key this implementation does not know."""
    return KEYS.get(name)


def value_limit(name: str) -> int:
    """Maximum encoded length of ``name``'s value in bytes (§6.1 default: 255)."""
    spec = KEYS.get(name)
    return spec.max_value_length if spec is not None else DEFAULT_MAX_VALUE_LENGTH


def parse_number(text: str) -> int:
    """A numerical-value (RFC 7143 §6.1): decimal-constant or hex-constant, below 2**64.

    Raises ValueError for anything else (leading zeros, signs, spaces, base64).
    """
    if _DECIMAL.fullmatch(text):
        value = int(text)
    elif _HEX.fullmatch(text):
        value = int(text, 16)
    else:
        raise ValueError(f"not a numerical-value: {text[:40]!r}")
    if value >= 2**64:
        raise ValueError(f"numerical-value {text[:40]!r} is not below 2**64")
    return value


def parse_range(text: str) -> tuple[int, int]:
    """A numerical-value-range ``lo~hi`` (RFC 7143 §6.1); a single value means ``v~v``."""
    lo_text, sep, hi_text = text.partition("~")
    lo = parse_number(lo_text)
    hi = parse_number(hi_text) if sep else lo
    if hi < lo:
        raise ValueError(f"range {text[:40]!r} has its upper value below its lower value")
    return lo, hi


def in_range(spec: KeySpec, value: int) -> bool:
    """Whether ``value`` is admissible for a numeric key (its range, or its "no limit" value)."""
    if spec.unlimited is not None and value == spec.unlimited:
        return True
    return (spec.minimum is None or value >= spec.minimum) and (
        spec.maximum is None or value <= spec.maximum
    )


__all__ = [
    "ANSWER_CONSTANTS",
    "DEFAULT_MAX_VALUE_LENGTH",
    "KEYS",
    "MAX_CHAP_BINARY_TEXT",
    "MAX_ISCSI_NAME_LENGTH",
    "MAX_KEY_LENGTH",
    "NOT_ABOVE",
    "OFFER_ORDER",
    "KeyKind",
    "KeySpec",
    "Phase",
    "Scope",
    "Sender",
    "in_range",
    "is_extension_key",
    "parse_number",
    "parse_range",
    "spec_for",
    "value_limit",
]
