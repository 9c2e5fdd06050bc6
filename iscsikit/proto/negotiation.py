"""Text mode negotiation (RFC 7143 §6.2, §6.3, §6.6) driven by the key table, for both roles.

This module owns the *rules*: what to offer, how to answer the peer's offers, which
answers to our offers are legal, and the final outcome.  Facts about individual keys live
in :mod:`iscsikit.proto.keys`; there is one rule object per :class:`~iscsikit.proto.keys.KeyKind`
and no per-key code.  The initiator's login machine uses the ``"initiator"`` role; in-test
fake targets use ``"target"``.  The authentication exchange itself (CHAP_* keys) belongs
to :mod:`iscsikit.proto.chap`: the negotiator only checks where those keys may appear and
hands them over in :attr:`Negotiator.auth_pairs`.  No I/O, no clock, no randomness.

One :class:`Negotiator` covers one connection's login (or one Full Feature Phase text
negotiation, §6.6: create a fresh one with ``stage=3`` calls).  SendTargets exchanges are
not negotiations; :mod:`iscsikit.proto.sendtargets` decodes those itself.

Violations by the peer raise :class:`~iscsikit.errors.RemoteProtocolError` with
``reject_reason`` 0x04 (see :mod:`iscsikit.proto.text` for how login maps it); a bad
``local`` configuration raises :class:`~iscsikit.errors.InvalidParameterError`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Literal, Protocol

from iscsikit.errors import InvalidParameterError, LocalProtocolError, RemoteProtocolError
from iscsikit.proto.constants import RejectReason
from iscsikit.proto.keys import (
    ANSWER_CONSTANTS,
    KEYS,
    NOT_ABOVE,
    OFFER_ORDER,
    KeyKind,
    KeySpec,
    Phase,
    Sender,
    in_range,
    is_extension_key,
    parse_number,
    parse_range,
    value_limit,
)
from iscsikit.proto.text import is_valid_key

Role = Literal["initiator", "target"]

_STAGE_PHASE = {0: Phase.SECURITY, 1: Phase.OPERATIONAL, 3: Phase.FULL_FEATURE}
_STAGE_NAME = {
    Phase.SECURITY: "the security stage",
    Phase.OPERATIONAL: "the operational stage",
    Phase.FULL_FEATURE: "the Full Feature Phase",
}
_SENDER = {"initiator": Sender.INITIATOR, "target": Sender.TARGET}
_SESSION_TYPES = ("Normal", "Discovery")
_MRDSL = "MaxRecvDataSegmentLength"
#: Declarations reported by negotiated() (SendTargets and TargetAddress are not outcomes).
_REPORTED_DECLARATIONS = (
    "InitiatorName", "InitiatorAlias", "TargetName", "TargetAlias",
    "TargetPortalGroupTag", "X#NodeArchitecture",
)  # fmt: skip


def _remote(message: str) -> RemoteProtocolError:
    return RemoteProtocolError(message, reject_reason=RejectReason.PROTOCOL_ERROR)


# -- result functions, one per KeyKind (RFC 7143 §6.2.1, §6.2.2, §13 intro) --------------------


class _Rule(Protocol):
    def check(self, spec: KeySpec, value: str) -> str:
        """Validate a value we would send; return it normalized.  ValueError if bad."""

    def respond(self, spec: KeySpec, offered: str, preferred: str) -> str:
        """Our answer to the peer's offer ("Reject" allowed).  ValueError if malformed."""

    def accepts(self, spec: KeySpec, offered: str, answer: str) -> bool:
        """Whether ``answer`` is a legal outcome for our ``offered`` value."""

    def determined(self, spec: KeySpec, offered: str) -> str | None:
        """The outcome when the offered value alone fixes it (answer optional), else None."""


def _number(spec: KeySpec, value: str) -> int:
    number = parse_number(value)
    if not in_range(spec, number):
        raise ValueError(f"{spec.name}={value} is outside {spec.minimum}..{spec.maximum}")
    return number


class _Numeric:
    """Minimum / Maximum: the answer may not exceed / fall below the offer."""

    def __init__(self, smaller_wins: bool) -> None:
        self.smaller_wins = smaller_wins

    @staticmethod
    def _rank(spec: KeySpec, value: int) -> float:
        return math.inf if value == spec.unlimited else value  # RFC 5046 §6.6: 0 = no limit

    def check(self, spec: KeySpec, value: str) -> str:
        return str(_number(spec, value))

    def respond(self, spec: KeySpec, offered: str, preferred: str) -> str:
        offer = parse_number(offered)
        if not in_range(spec, offer):
            return "Reject"  # §6.2.2: an inadmissible proposal MAY be answered with Reject
        mine = parse_number(preferred)
        pick = min if self.smaller_wins else max
        return str(pick(offer, mine, key=lambda v: self._rank(spec, v)))

    def accepts(self, spec: KeySpec, offered: str, answer: str) -> bool:
        try:
            value = _number(spec, answer)
        except ValueError:
            return False
        got, sent = self._rank(spec, value), self._rank(spec, parse_number(offered))
        return got <= sent if self.smaller_wins else got >= sent

    def determined(self, spec: KeySpec, offered: str) -> str | None:
        return None


class _Range:
    """numerical-value-range offers answered with one value inside (obsolete markers)."""

    def check(self, spec: KeySpec, value: str) -> str:
        lo, hi = parse_range(value)
        if not (in_range(spec, lo) and in_range(spec, hi)):
            raise ValueError(f"{spec.name}={value} is outside {spec.minimum}..{spec.maximum}")
        return f"{lo}~{hi}" if lo != hi else str(lo)

    def respond(self, spec: KeySpec, offered: str, preferred: str) -> str:
        lo, hi = parse_range(offered)
        if not (in_range(spec, lo) and in_range(spec, hi)):
            return "Reject"
        return str(min(max(parse_range(preferred)[0], lo), hi))

    def accepts(self, spec: KeySpec, offered: str, answer: str) -> bool:
        lo, hi = parse_range(offered)
        try:
            value = parse_number(answer)
        except ValueError:
            return False
        return lo <= value <= hi

    def determined(self, spec: KeySpec, offered: str) -> str | None:
        return None


class _Boolean:
    """AND / OR.  §6.2.2: AND with "No" and OR with "Yes" fix the outcome by themselves."""

    def __init__(self, fixing: str) -> None:
        self.fixing = fixing  # "No" for AND, "Yes" for OR

    @staticmethod
    def check(spec: KeySpec, value: str) -> str:
        if value not in ("Yes", "No"):
            raise ValueError(f"{spec.name}={value} is not a boolean-value (Yes or No)")
        return value

    def respond(self, spec: KeySpec, offered: str, preferred: str) -> str:
        self.check(spec, offered)
        return self.fixing if self.fixing in (offered, preferred) else offered

    def accepts(self, spec: KeySpec, offered: str, answer: str) -> bool:
        if answer not in ("Yes", "No"):
            return False
        return offered != self.fixing or answer == self.fixing

    def determined(self, spec: KeySpec, offered: str) -> str | None:
        return self.fixing if offered == self.fixing else None


class _List:
    """§6.2.1: the acceptor answers the first offered value it supports, else Reject."""

    @staticmethod
    def items(spec: KeySpec, value: str) -> list[str]:
        items = value.split(",")
        for item in items:
            if not item or item in ANSWER_CONSTANTS:
                raise ValueError(f"{spec.name}={value} is not a list-of-values")
        return items

    def check(self, spec: KeySpec, value: str) -> str:
        for item in self.items(spec, value):
            extension = bool(spec.value_extensions) and item.startswith(spec.value_extensions)
            if item not in spec.values and not extension:
                known = ", ".join(spec.values)
                raise ValueError(f"{spec.name} value {item!r} is not one of {known}")
        return value

    def respond(self, spec: KeySpec, offered: str, preferred: str) -> str:
        supported = set(self.items(spec, preferred))
        # Values the acceptor does not understand are ignored (§6.2.1).
        return next((item for item in self.items(spec, offered) if item in supported), "Reject")

    def accepts(self, spec: KeySpec, offered: str, answer: str) -> bool:
        return answer in self.items(spec, offered)

    def determined(self, spec: KeySpec, offered: str) -> str | None:
        return None


_RULES: dict[KeyKind, _Rule] = {
    KeyKind.NUMERIC_MIN: _Numeric(smaller_wins=True),
    KeyKind.NUMERIC_MAX: _Numeric(smaller_wins=False),
    KeyKind.NUMERIC_RANGE: _Range(),
    KeyKind.BOOL_AND: _Boolean(fixing="No"),
    KeyKind.BOOL_OR: _Boolean(fixing="Yes"),
    KeyKind.LIST: _List(),
}


def _check_declaration(spec: KeySpec, value: str) -> str:
    """Validate a declared value (§6.1 value types); return it normalized."""
    if spec.numeric:
        return str(_number(spec, value))
    if spec.values and value not in spec.values:
        raise ValueError(f"{spec.name}={value} is not one of {', '.join(spec.values)}")
    return value


def _check_value(spec: KeySpec, value: str) -> str:
    """Validate and normalize one value of ``spec`` we are about to send."""
    if value in ANSWER_CONSTANTS:
        raise ValueError(f"{spec.name}={value}: {value} is only an answer (RFC 7143 §6.2)")
    if "\0" in value or len(value.encode("utf-8")) > spec.max_value_length:
        raise ValueError(f"{spec.name} value is longer than {spec.max_value_length} bytes")
    if spec.kind is KeyKind.DECLARATIVE:
        return _check_declaration(spec, value)
    return _RULES[spec.kind].check(spec, value)


# -- the negotiator ----------------------------------------------------------------------------


class Negotiator:
    """One side of a text negotiation, driven by :data:`iscsikit.proto.keys.KEYS`.

    ``local`` holds this side's configured values by RFC key name: what it offers and
    declares, and, as acceptor, the value it "would have selected if given a choice"
    (§6.2.2): its limit for Minimum/Maximum keys, its preference for booleans, the values
    it supports for lists.  Keys absent from ``local`` use the table default.
    ``allow`` names extension keys (X-/X#) this side understands; they are treated as
    declarations.  Extension keys in ``local`` are allowed implicitly.  ``leading`` is
    False for a connection added to an existing session (leading-only keys are refused).
    A target learns the session type from the initiator's SessionType declaration.
    """

    def __init__(
        self,
        role: Role,
        local: Mapping[str, str],
        *,
        session_type: str = "Normal",
        allow: frozenset[str] = frozenset(),
        leading: bool = True,
    ) -> None:
        if role not in _SENDER:
            raise InvalidParameterError(f"role must be 'initiator' or 'target', not {role!r}")
        if session_type not in _SESSION_TYPES:
            raise InvalidParameterError(
                f"SessionType must be Normal or Discovery: {session_type!r}"
            )
        for name in allow:
            if not (is_extension_key(name) and is_valid_key(name)):
                raise InvalidParameterError(f"allow: {name!r} is not an X-/X# extension key")
        self.role: Role = role
        self._me = _SENDER[role]
        self._peer = Sender.BOTH & ~self._me
        self._session_type = session_type
        self._leading = leading
        self._local = self._validate_local(local)
        self._allow = frozenset(allow) | {k for k in self._local if k not in KEYS}
        self._values: dict[str, str] = {}  # outcomes so far
        self._offers: dict[str, str] = {}  # our offers awaiting an answer
        self._determined: dict[str, str] = {}  # our boolean offers whose answer is optional
        self._declared: dict[str, str] = {}  # our declarations
        self._peer_declarations: dict[str, str] = {}
        self._sent: set[str] = set()
        self._received: set[str] = set()
        self._auth_pairs: list[tuple[str, str]] = []

    # -- configuration ---------------------------------------------------------------------

    def _validate_local(self, local: Mapping[str, str]) -> dict[str, str]:
        values: dict[str, str] = {}
        for name, value in local.items():
            if not isinstance(value, str):
                raise InvalidParameterError(f"{name}: value must be a string, not {value!r}")
            spec = KEYS.get(name)
            if spec is None:
                if not (is_extension_key(name) and is_valid_key(name)):
                    raise InvalidParameterError(f"unknown iSCSI key {name!r}")
                if "\0" in value or value in ANSWER_CONSTANTS or len(value.encode()) > 255:
                    raise InvalidParameterError(f"invalid value for {name}: {value[:40]!r}")
                values[name] = value
                continue
            problem = self._unconfigurable(spec, value)
            if problem:
                raise InvalidParameterError(f"{name}: {problem}")
            try:
                values[name] = _check_value(spec, value)
            except ValueError as exc:
                raise InvalidParameterError(f"invalid {spec.rfc} value: {exc}") from None
        # On effective values: a FirstBurstLength left at its default must fit too, or our
        # own MaxBurstLength offer could produce an outcome that breaks the rule.
        for low, high in NOT_ABOVE:
            low_value = values.get(low, KEYS[low].default or "0")
            high_value = values.get(high, KEYS[high].default or "0")
            if int(low_value) > int(high_value):
                raise InvalidParameterError(
                    f"{low} ({low_value}) must not exceed {high} ({high_value}) (RFC 7143 §13.14)"
                )
        return values

    def _unconfigurable(self, spec: KeySpec, value: str) -> str | None:
        if spec.kind is KeyKind.AUTH:
            return "authentication keys are produced by proto.chap, not configured"
        if spec.obsolete:
            return f"obsolete ({spec.rfc}), never offered"
        if spec.name == "SendTargets":
            return "a discovery request, sent by proto.sendtargets"
        if not spec.senders & self._me:
            return f"only the {'target' if self.role == 'initiator' else 'initiator'} sends it"
        if spec.name == "SessionType" and value != self._session_type:
            return f"{value!r} contradicts session_type={self._session_type!r}"
        return None

    # -- public state ----------------------------------------------------------------------

    @property
    def session_type(self) -> str:
        return self._session_type

    @property
    def pending(self) -> frozenset[str]:
        """Our offers still unanswered."""
        return frozenset(self._offers)

    @property
    def complete(self) -> bool:
        """True when every offer we made has been answered."""
        return not self._offers

    @property
    def peer_declarations(self) -> dict[str, str]:
        """Every declaration the peer made (declarative keys, allowed extension keys)."""
        return dict(self._peer_declarations)

    @property
    def auth_pairs(self) -> list[tuple[str, str]]:
        """The authentication-exchange pairs (CHAP_*) of the last :meth:`receive` call."""
        return list(self._auth_pairs)

    # -- sending ---------------------------------------------------------------------------

    def offer(self, stage: int) -> list[tuple[str, str]]:
        """The keys this side proposes or declares first in ``stage`` (0, 1 or 3).

        Only keys present in ``local`` are sent, in open-iscsi's order
        (:data:`~iscsikit.proto.keys.OFFER_ORDER`), filtered by role, stage, leading-only,
        session type and relevance.  A key already sent, received or settled is never
        offered again.
        """
        phase = self._phase(stage)
        unsettled = {k for k in self._local if k not in self._values} | set(self._offers)
        names = [*OFFER_ORDER, *(k for k in KEYS if k not in OFFER_ORDER), *sorted(self._allow)]
        out: list[tuple[str, str]] = []
        for name in names:
            value = self._local.get(name)
            if value is None or self._settled(name):
                continue
            spec = KEYS.get(name)
            if spec is None:
                if phase & (Phase.OPERATIONAL | Phase.FULL_FEATURE):
                    self._declared[name] = value
                    self._sent.add(name)
                    out.append((name, value))
                continue
            if self._refusal(spec, phase, self._me) or self._irrelevant(spec, unsettled):
                continue
            self._register(spec, value)
            out.append((name, value))
        return out

    def record_sent(self, pairs: Iterable[tuple[str, str]], stage: int) -> None:
        """Note offers/declarations this side sent without :meth:`offer`.

        For keys a caller builds itself (the login machine's leading declarations and
        AuthMethod offer): their answers are then checked and they are never re-offered.
        """
        phase = self._phase(stage)
        for name, value in pairs:
            spec = KEYS.get(name)
            if self._settled(name):
                raise LocalProtocolError(f"{name} was already sent or received (RFC 7143 §6.2)")
            if spec is None:
                self._declared[name] = value
                self._sent.add(name)
                continue
            problem = self._refusal(spec, phase, self._me) or self._unconfigurable(spec, value)
            if problem:
                raise LocalProtocolError(f"cannot send {name}: {problem}")
            try:
                normalized = _check_value(spec, value)
            except ValueError as exc:
                raise LocalProtocolError(str(exc)) from None
            self._register(spec, normalized)

    def _settled(self, name: str) -> bool:
        """Whether sending ``name`` now would negotiate or declare it a second time."""
        if name in self._sent:
            return True
        spec = KEYS.get(name)
        # Both sides declare their own MaxRecvDataSegmentLength (and extension keys): the
        # peer's declaration is no reason not to send ours.  A negotiated key the peer
        # sent is settled by that exchange.
        return name in self._received and spec is not None and spec.kind is not KeyKind.DECLARATIVE

    def _register(self, spec: KeySpec, value: str) -> None:
        self._sent.add(spec.name)
        if spec.kind is KeyKind.DECLARATIVE:
            self._declared[spec.name] = value
            return
        fixed = _RULES[spec.kind].determined(spec, value)
        if fixed is None:
            self._offers[spec.name] = value
        else:
            self._determined[spec.name] = fixed
            self._values[spec.name] = fixed

    # -- receiving -------------------------------------------------------------------------

    def receive(self, pairs: Sequence[tuple[str, str]], stage: int) -> list[tuple[str, str]]:
        """Process what the peer sent in ``stage``; return our answers to its offers.

        Answers to our offers settle those keys; the peer's offers are answered by the
        key's result function; declarations are stored; unknown keys get NotUnderstood,
        keys irrelevant to this session get Irrelevant.  Raises RemoteProtocolError for
        any rule the peer broke.  Answers come in the order the offers arrived.
        """
        phase = self._phase(stage)
        self._auth_pairs = []
        seen: set[str] = set()
        for name, value in pairs:
            spec = KEYS.get(name)
            if not is_valid_key(name):
                raise _remote(f"invalid key name {name[:40]!r} (RFC 7143 §6.1)")
            if "\0" in value or len(value.encode("utf-8")) > value_limit(name):
                raise _remote(f"value of {name} is too long or holds a NUL (RFC 7143 §6.1)")
            if not (spec is not None and spec.repeatable) and (
                name in seen or name in self._received
            ):
                raise _remote(f"{name} sent twice in one negotiation (RFC 7143 §6.2)")
            seen.add(name)
            if spec is not None:
                problem = self._refusal(spec, phase, self._peer)
                if problem:
                    raise _remote(f"{name}: {problem}")
        # SessionType first (it decides relevance); keys with "Irrelevant when" conditions
        # last, so that the outcomes they depend on are known (§13.14, RFC 7145 §6).
        order = sorted(range(len(pairs)), key=lambda i: self._processing_rank(pairs[i][0]))
        answers: dict[int, tuple[str, str]] = {}
        for index in order:
            name, value = pairs[index]
            answer = self._receive_one(name, value)
            self._received.add(name)
            if answer is not None:
                answers[index] = (name, answer)
                self._sent.add(name)
        self._check_constraints()
        return [answers[i] for i in sorted(answers)]

    @staticmethod
    def _processing_rank(name: str) -> int:
        spec = KEYS.get(name)
        if name == "SessionType":
            return 0
        return 2 if spec is not None and spec.irrelevant_when else 1

    def _receive_one(self, name: str, value: str) -> str | None:
        spec = KEYS.get(name)
        if spec is None:
            return self._unknown(name, value)
        if spec.kind is KeyKind.AUTH:
            self._auth_pairs.append((name, value))
        elif name in self._offers:
            self._answered(spec, self._offers.pop(name), value)
        elif name in self._determined:
            fixed = self._determined.pop(name)
            # Optional answer (§6.2.2): it may only confirm the outcome.
            if value not in ANSWER_CONSTANTS and value != fixed:
                raise _remote(f"{name}={value}, but our offer fixed the outcome at {fixed}")
        elif spec.kind is KeyKind.DECLARATIVE:
            self._declaration(spec, value)
        else:
            return self._proposal(spec, value)
        return None

    def _unknown(self, name: str, value: str) -> str | None:
        if value in ANSWER_CONSTANTS:
            if name in self._declared:
                return None  # the peer did not understand our extension declaration
            raise _remote(f"{name}={value}: we never sent {name} (RFC 7143 §6.2)")
        if name in self._allow:
            self._peer_declarations[name] = value
            return None
        return "NotUnderstood"  # §6.2: unknown keys, including X- keys we do not know

    def _declaration(self, spec: KeySpec, value: str) -> None:
        if value in ANSWER_CONSTANTS:
            if spec.name in self._declared:
                return  # a needless answer to our declaration
            raise _remote(f"{spec.name}={value} is not a declaration (RFC 7143 §6.2)")
        try:
            value = _check_declaration(spec, value)
        except ValueError as exc:
            raise _remote(f"illegal declaration: {exc} ({spec.rfc})") from None
        if spec.name == "SessionType":
            self._session_type = value
        self._peer_declarations[spec.name] = value

    def _proposal(self, spec: KeySpec, value: str) -> str:
        if value in ANSWER_CONSTANTS:
            raise _remote(f"{spec.name}={value} used as a proposal (RFC 7143 §6.2)")
        if spec.obsolete:
            return "Reject"  # RFC 7143 §13.25
        if self._irrelevant(spec):
            return "Irrelevant"
        preferred = self._local.get(spec.name, spec.default)
        assert preferred is not None  # every negotiated key has a default
        try:
            answer = _RULES[spec.kind].respond(spec, value, preferred)
        except ValueError as exc:
            raise _remote(f"malformed proposal {spec.name}={value[:40]}: {exc}") from None
        if answer != "Reject":  # Reject leaves the key at its current value (§6.2)
            self._values[spec.name] = answer
        return answer

    def _answered(self, spec: KeySpec, offered: str, answer: str) -> None:
        rule = _RULES[spec.kind]
        if answer in ANSWER_CONSTANTS:
            fallback = self._values.get(spec.name, spec.default)
            assert fallback is not None
            if answer == "Irrelevant" and self._irrelevant(spec):
                return
            if not rule.accepts(spec, offered, fallback):
                raise _remote(
                    f"{spec.name}={answer} to our offer {offered} leaves {fallback}, which "
                    "this side cannot work with (RFC 7143 §6.2)"
                )
            self._values[spec.name] = fallback
            return
        if not rule.accepts(spec, offered, answer):
            raise _remote(
                f"illegal answer {spec.name}={answer[:40]} to our offer {offered} "
                f"(result function {spec.kind.value}, {spec.rfc})"
            )
        self._values[spec.name] = str(parse_number(answer)) if spec.numeric else answer

    def _check_constraints(self) -> None:
        for low, high in NOT_ABOVE:
            if low not in self._values or high not in self._values:
                continue
            if not self._irrelevant(KEYS[low]) and int(self._values[low]) > int(self._values[high]):
                raise _remote(f"negotiated {low} exceeds {high} (RFC 7143 §13.14)")

    # -- rules shared by both directions ---------------------------------------------------

    def _phase(self, stage: int) -> Phase:
        phase = _STAGE_PHASE.get(int(stage))
        if phase is None:
            raise LocalProtocolError(f"stage must be 0, 1 or 3, not {stage}")
        return phase

    def _refusal(self, spec: KeySpec, phase: Phase, sender: Sender) -> str | None:
        """Why ``sender`` may not send ``spec`` in ``phase`` (None if it may)."""
        who = "initiator" if sender is Sender.INITIATOR else "target"
        if not spec.senders & sender:
            return f"not sent by the {who} ({spec.rfc})"
        phases = spec.phases
        if sender is Sender.TARGET and spec.target_phases is not None:
            phases = spec.target_phases
        if not phase & phases:
            return f"not allowed from the {who} in {_STAGE_NAME[phase]} ({spec.rfc})"
        if spec.leading_only and not self._leading:
            return f"leading-only key on a non-leading connection ({spec.rfc})"
        return None

    def _irrelevant(self, spec: KeySpec, unsettled: Iterable[str] = ()) -> bool:
        """Whether ``spec`` is irrelevant to this session ("Irrelevant when:" lines)."""
        if self._session_type == "Discovery" and not spec.discovery:
            return True
        if not spec.irrelevant_when:
            return False
        pending = set(unsettled)
        if any(name in pending for name, _ in spec.irrelevant_when):
            return False
        return all(self._current(name) == value for name, value in spec.irrelevant_when)

    def _current(self, name: str) -> str | None:
        return self._values.get(name, KEYS[name].default)

    # -- outcome ---------------------------------------------------------------------------

    def negotiated(self) -> dict[str, str]:
        """The session's parameters as this side sees them.

        * every negotiated (non-declarative) key relevant to the session type - not
          obsolete, not irrelevant under its "Irrelevant when" conditions - with its
          outcome, or the table default if it was never negotiated or was answered with
          Reject / Irrelevant / NotUnderstood; keys whose offer is still unanswered are
          left out (their outcome is not known yet);
        * ``SessionType``;
        * ``MaxRecvDataSegmentLength``: what *this* side declared (default 8192), the
          largest data segment it receives; ``MaxXmitDataSegmentLength``: what the
          peer declared as its MaxRecvDataSegmentLength (default 8192), the largest
          data segment this side may send;
        * the names, aliases, TargetPortalGroupTag and X#NodeArchitecture that either
          side declared.

        The peer's raw declarations are in :attr:`peer_declarations`.
        """
        result: dict[str, str] = {}
        for name, spec in KEYS.items():
            if spec.kind in (KeyKind.DECLARATIVE, KeyKind.AUTH) or spec.obsolete:
                continue
            if name in self._offers or self._irrelevant(spec):
                continue
            value = self._current(name)
            assert value is not None
            result[name] = value
        result["SessionType"] = self._session_type
        result[_MRDSL] = self._declared.get(_MRDSL, KEYS[_MRDSL].default or "8192")
        result["MaxXmitDataSegmentLength"] = self._peer_declarations.get(
            _MRDSL, KEYS[_MRDSL].default or "8192"
        )
        for name in _REPORTED_DECLARATIONS:
            value = self._declared.get(name, self._peer_declarations.get(name))
            if value is not None:
                result[name] = value
        return result


__all__ = ["Negotiator", "Role"]
