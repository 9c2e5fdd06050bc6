"""The initiator's login state machine (RFC 7143 §6.3, §11.12, §11.13), sans-I/O.

:class:`LoginMachine` turns a :class:`LoginConfig` into Login Request PDUs and
consumes Login Response PDUs until the connection reaches the Full Feature Phase
(:class:`LoginAccepted`), is redirected (:class:`TargetRedirected`), or fails with an
exception from :mod:`iscsikit.errors`.  It owns stage transitions (T/CSG/NSG bits),
response continuation (C bit), ISID/ITT/TSIH checks, round limits, and routes keys:
``AuthMethod`` and operational keys to the :class:`~iscsikit.proto.negotiation.Negotiator`,
``CHAP_*`` keys to :class:`~iscsikit.proto.chap.ChapInitiator`.

It never touches sockets or clocks: the I/O layer sends what :meth:`LoginMachine.start`
and :meth:`LoginMachine.receive` return and enforces the login timeout.  Randomness
(CHAP challenges) is injected.
"""

from __future__ import annotations

import enum
import secrets
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from iscsikit.errors import (
    AuthenticationError,
    LocalProtocolError,
    RemoteProtocolError,
    login_status_error,
)
from iscsikit.proto.address import Portal, parse_address
from iscsikit.proto.chap import ChapAlgorithm, ChapInitiator
from iscsikit.proto.constants import LoginStatusClass, RejectReason, Stage
from iscsikit.proto.keys import KEYS
from iscsikit.proto.negotiation import Negotiator
from iscsikit.proto.pdu import LoginRequest, LoginResponse, Pdu, Reject
from iscsikit.proto.text import TextAssembler, decode_text, encode_text

#: A hostile target could answer T=0 forever; real ones need a handful of rounds.
MAX_LOGIN_ROUNDS = 32

#: Leading-login keys the initiator declares itself (RFC 7143 §13.5, §13.6, §13.21).
_CHAP_PREFIX = "CHAP_"


@dataclass(frozen=True, slots=True)
class ChapSecrets:
    """CHAP credentials for the login machine (see :class:`iscsikit.Chap` for the API)."""

    username: str
    password: str | bytes
    username_in: str | None = None
    password_in: str | bytes | None = None
    algorithms: tuple[ChapAlgorithm, ...] = (ChapAlgorithm.MD5,)

    @property
    def mutual(self) -> bool:
        return self.username_in is not None or self.password_in is not None


@dataclass(frozen=True, slots=True)
class LoginConfig:
    """Everything one login attempt needs.  ``target_name=None`` means a Discovery session."""

    initiator_name: str
    isid: bytes
    target_name: str | None = None
    initiator_alias: str | None = None
    tsih: int = 0
    cid: int = 0
    cmdsn: int = 1
    expstatsn: int = 0
    itt: int = 0
    chap: ChapSecrets | None = None
    #: Operational key offers by RFC name (``HeaderDigest``, ``MaxRecvDataSegmentLength``...).
    operational: Mapping[str, str] = field(default_factory=dict)
    #: Offer ``AuthMethod=None`` first in the security stage even with no CHAP configured.
    #: By default a login without CHAP skips the security stage (RFC 7143 §6.3).
    security_stage: bool = False

    @property
    def session_type(self) -> str:
        return "Normal" if self.target_name is not None else "Discovery"

    def __post_init__(self) -> None:
        if len(self.isid) != 6:
            raise LocalProtocolError("ISID must be 6 bytes")


@dataclass(frozen=True, slots=True)
class LoginAccepted:
    """The connection is in Full Feature Phase."""

    params: dict[str, str]
    tsih: int
    statsn: int
    expcmdsn: int
    maxcmdsn: int
    target_portal_group_tag: int | None
    target_alias: str | None
    #: Keys we offered that the target never answered (they hold the RFC default).
    unanswered: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class TargetRedirected:
    """Login status class 1: log in again at ``portal`` (RFC 7143 §11.13.5)."""

    portal: Portal
    tpgt: int | None
    permanent: bool


LoginEvent = LoginAccepted | TargetRedirected


class _State(enum.Enum):
    IDLE = "idle"
    SECURITY = "security"
    OPERATIONAL = "operational"
    DONE = "done"
    FAILED = "failed"


class _Auth(enum.Enum):
    """Progress of the security stage (RFC 7143 §12.1.3 CHAP exchange)."""

    OFFERED = "AuthMethod offered"
    ALGORITHM_SENT = "CHAP_A sent"
    RESPONSE_SENT = "CHAP_R sent"
    DONE = "authenticated"


class LoginMachine:
    """One connection's login: ``start()``, then ``receive(pdu)`` until an event comes back.

    ``receive`` returns either the next :class:`LoginRequest` to send or a terminal
    :class:`LoginAccepted` / :class:`TargetRedirected`.  Failures raise:
    :class:`~iscsikit.errors.LoginError` subclasses for a login status,
    :class:`~iscsikit.errors.AuthenticationError` when the target fails mutual CHAP,
    :class:`~iscsikit.errors.RemoteProtocolError` when the target breaks the protocol.
    After a failure the machine is dead: every call raises ``LocalProtocolError``.
    """

    def __init__(
        self,
        config: LoginConfig,
        *,
        random_bytes: Callable[[int], bytes] = secrets.token_bytes,
    ) -> None:
        self.config = config
        self._state = _State.IDLE
        self._rounds = 0
        self._target_name = config.target_name or ""
        self._text = TextAssembler()
        self._negotiator = Negotiator(
            "initiator", dict(config.operational), session_type=config.session_type
        )
        self._chap: ChapInitiator | None = None
        if config.chap is not None:
            self._chap = ChapInitiator(
                config.chap.username,
                config.chap.password,
                username_in=config.chap.username_in,
                secret_in=config.chap.password_in,
                algorithms=config.chap.algorithms,
                random_bytes=random_bytes,
            )
        self._auth = _Auth.OFFERED
        self._declared: dict[str, str] = {}
        self._last_request: LoginRequest | None = None
        self._expstatsn = config.expstatsn

    # -- public ---------------------------------------------------------------------------

    @property
    def stage(self) -> Stage:
        return Stage.SECURITY if self._state is _State.SECURITY else Stage.OPERATIONAL

    @property
    def done(self) -> bool:
        return self._state in (_State.DONE, _State.FAILED)

    def start(self) -> LoginRequest:
        """The first Login Request: leading keys plus the first stage's offers."""
        self._expect(_State.IDLE)
        keys = self._leading_keys()
        if self._chap is not None or self.config.security_stage:
            self._state = _State.SECURITY
            keys += self._auth_offer()
            self._negotiator.record_sent(keys, Stage.SECURITY)
            # With AuthMethod=None only, ask to leave the security stage at once.
            transit = self._chap is None
            return self._request(keys, transit=transit)
        self._state = _State.OPERATIONAL
        self._negotiator.record_sent(keys, Stage.OPERATIONAL)
        keys += self._negotiator.offer(Stage.OPERATIONAL)
        return self._request(keys, transit=True)

    def receive(self, pdu: Pdu) -> LoginRequest | LoginEvent:
        """Consume one PDU from the target."""
        if self._state not in (_State.SECURITY, _State.OPERATIONAL):
            raise LocalProtocolError(f"login machine is {self._state.value}, not awaiting a PDU")
        try:
            return self._receive(pdu)
        except BaseException:
            self._state = _State.FAILED
            raise

    # -- internals ------------------------------------------------------------------------

    def _expect(self, state: _State) -> None:
        if self._state is not state:
            raise LocalProtocolError(
                f"login machine is {self._state.value}, expected {state.value}"
            )

    def _leading_keys(self) -> list[tuple[str, str]]:
        cfg = self.config
        keys = [("InitiatorName", cfg.initiator_name)]
        if cfg.initiator_alias:
            keys.append(("InitiatorAlias", cfg.initiator_alias))
        if cfg.target_name is not None:
            keys.append(("TargetName", cfg.target_name))
        keys.append(("SessionType", cfg.session_type))
        return keys

    def _auth_offer(self) -> list[tuple[str, str]]:
        if self._chap is None:
            return [("AuthMethod", "None")]
        # open-iscsi offers "CHAP,None" for one-way CHAP; with mutual CHAP configured we
        # insist on CHAP so a target cannot silently skip authenticating itself.
        return [("AuthMethod", "CHAP" if self._chap.mutual else "CHAP,None")]

    def _request(
        self,
        keys: Sequence[tuple[str, str]],
        *,
        transit: bool,
        csg: Stage | None = None,
        continuation: bool = False,
    ) -> LoginRequest:
        # Continuation requests (fetching a C-bit response) are bounded by the text
        # assembler's size limit instead; negotiation rounds are bounded here.
        self._rounds += 0 if continuation else 1
        if self._rounds > MAX_LOGIN_ROUNDS:
            raise RemoteProtocolError(
                f"login did not complete in {MAX_LOGIN_ROUNDS} rounds",
                reject_reason=RejectReason.PROTOCOL_ERROR,
            )
        cfg = self.config
        current = self.stage if csg is None else csg
        nsg = Stage.OPERATIONAL if current is Stage.SECURITY else Stage.FULL_FEATURE
        request = LoginRequest(
            transit=transit,
            cont=False,
            csg=int(current),
            nsg=int(nsg) if transit else 0,
            version_max=0,
            version_min=0,
            isid=cfg.isid,
            tsih=cfg.tsih,
            itt=cfg.itt,
            cid=cfg.cid,
            cmdsn=cfg.cmdsn,
            expstatsn=self._expstatsn,
            data=encode_text(keys),
        )
        self._last_request = request
        return request

    def _receive(self, pdu: Pdu) -> LoginRequest | LoginEvent:
        if isinstance(pdu, Reject):
            raise RemoteProtocolError(
                f"target rejected a login PDU (reason 0x{pdu.reason:02x})",
                reject_reason=RejectReason.PROTOCOL_ERROR,
            )
        if not isinstance(pdu, LoginResponse):
            raise RemoteProtocolError(
                f"expected a Login Response during login, got {type(pdu).__name__}",
                reject_reason=RejectReason.PROTOCOL_ERROR,
            )
        self._check_header(pdu)
        if pdu.status_class != LoginStatusClass.SUCCESS:
            return self._status(pdu)
        # StatSN is valid once the status is success (RFC 7143 §11.13.4).
        self._expstatsn = (pdu.statsn + 1) & 0xFFFFFFFF
        pairs = self._text.feed(pdu.data, pdu.cont)
        if pairs is None:
            # The target has more text for this stage: ask for it with an empty request.
            if pdu.transit:
                raise RemoteProtocolError(
                    "Login Response with both T and C bits set",
                    reject_reason=RejectReason.PROTOCOL_ERROR,
                )
            return self._request([], transit=False, continuation=True)
        if self._state is _State.SECURITY:
            return self._security(pdu, pairs)
        return self._operational(pdu, pairs)

    def _check_header(self, pdu: LoginResponse) -> None:
        cfg = self.config
        if pdu.status_class != LoginStatusClass.SUCCESS:
            # Report the status even if the target did not echo ISID/ITT: tgt zeroes the
            # whole header of its error responses, and the status is what matters.
            return
        if pdu.isid != cfg.isid:
            raise RemoteProtocolError(
                "Login Response ISID does not match the request",
                reject_reason=RejectReason.INVALID_PDU_FIELD,
            )
        if pdu.itt != cfg.itt:
            raise RemoteProtocolError(
                "Login Response ITT does not match the request",
                reject_reason=RejectReason.INVALID_PDU_FIELD,
            )
        if pdu.version_active != 0:
            raise RemoteProtocolError(
                f"target chose unsupported iSCSI version {pdu.version_active}",
                reject_reason=RejectReason.INVALID_PDU_FIELD,
            )
        if pdu.csg != self.stage:
            raise RemoteProtocolError(
                f"Login Response for stage {pdu.csg}, expected {int(self.stage)}",
                reject_reason=RejectReason.PROTOCOL_ERROR,
            )
        last = self._last_request
        # The target may only transit when we asked to, and not beyond our NSG.
        if (
            pdu.transit
            and last is not None
            and (not last.transit or pdu.nsg > last.nsg or pdu.nsg <= pdu.csg or pdu.nsg == 2)
        ):
            raise RemoteProtocolError(
                f"target moved to stage {pdu.nsg} without the initiator's consent",
                reject_reason=RejectReason.PROTOCOL_ERROR,
            )

    def _status(self, pdu: LoginResponse) -> TargetRedirected:
        if pdu.status_class == LoginStatusClass.REDIRECTION and pdu.status_detail in (1, 2):
            keys = dict(decode_text(pdu.data))
            address = keys.get("TargetAddress")
            if not address:
                raise RemoteProtocolError(
                    "redirect without a TargetAddress", reject_reason=RejectReason.PROTOCOL_ERROR
                )
            try:
                portal, tpgt = parse_address(address)
            except ValueError as exc:
                raise RemoteProtocolError(
                    f"redirect to an unusable TargetAddress {address!r}: {exc}",
                    reject_reason=RejectReason.PROTOCOL_ERROR,
                ) from None
            self._state = _State.DONE
            return TargetRedirected(portal, tpgt, permanent=pdu.status_detail == 2)
        raise login_status_error(pdu.status_class, pdu.status_detail, self._target_name)

    # -- security stage (RFC 7143 §6.3.1, §12.1.3) ------------------------------------

    def _security(
        self, pdu: LoginResponse, pairs: list[tuple[str, str]]
    ) -> LoginRequest | LoginEvent:
        chap_keys = {k: v for k, v in pairs if k.startswith(_CHAP_PREFIX)}
        other = [(k, v) for k, v in pairs if not k.startswith(_CHAP_PREFIX)]
        if len(chap_keys) != sum(1 for k, _ in pairs if k.startswith(_CHAP_PREFIX)):
            raise RemoteProtocolError(
                "a CHAP key was sent twice", reject_reason=RejectReason.PROTOCOL_ERROR
            )
        self._remember_declarations(other)
        answers = self._negotiator.receive(other, Stage.SECURITY)
        method = self._negotiator.negotiated().get("AuthMethod")
        chap = self._chap

        if self._auth is _Auth.OFFERED:
            if method == "CHAP":
                if chap is None:
                    raise RemoteProtocolError(
                        "target chose CHAP which was not offered",
                        reject_reason=RejectReason.PROTOCOL_ERROR,
                    )
                if pdu.transit:
                    raise RemoteProtocolError(
                        "target left the security stage before CHAP ran",
                        reject_reason=RejectReason.PROTOCOL_ERROR,
                    )
                self._auth = _Auth.ALGORITHM_SENT
                return self._request([*answers, *chap.offer()], transit=False)
            if method in (None, "None"):
                if chap is not None and chap.mutual:
                    raise AuthenticationError(
                        f"target {self._target_name} refused CHAP but mutual CHAP is required"
                    )
                if method is None and not pdu.transit:
                    # No answer yet (e.g. the target needs another round): keep going.
                    return self._request(answers, transit=chap is None)
                self._auth = _Auth.DONE
                return self._leave_security(pdu, answers)
            raise RemoteProtocolError(
                f"target chose AuthMethod={method}, which was not offered",
                reject_reason=RejectReason.PROTOCOL_ERROR,
            )

        assert chap is not None
        if self._auth is _Auth.ALGORITHM_SENT:
            if pdu.transit:
                raise RemoteProtocolError(
                    "target left the security stage before CHAP ran",
                    reject_reason=RejectReason.PROTOCOL_ERROR,
                )
            reply = chap.respond(chap_keys)
            self._auth = _Auth.RESPONSE_SENT
            return self._request([*answers, *reply], transit=True)

        if self._auth is _Auth.RESPONSE_SENT:
            if chap.mutual:
                chap.verify(chap_keys)
            elif chap_keys:
                raise RemoteProtocolError(
                    f"unexpected CHAP keys {sorted(chap_keys)} after the CHAP response",
                    reject_reason=RejectReason.PROTOCOL_ERROR,
                )
            self._auth = _Auth.DONE
            return self._leave_security(pdu, answers)

        # _Auth.DONE: the target answered T=0 after authentication; ask again to transit.
        if chap_keys:
            raise RemoteProtocolError(
                "CHAP keys after authentication completed",
                reject_reason=RejectReason.PROTOCOL_ERROR,
            )
        return self._leave_security(pdu, answers)

    def _leave_security(
        self, pdu: LoginResponse, answers: list[tuple[str, str]]
    ) -> LoginRequest | LoginEvent:
        if not pdu.transit:
            return self._request(answers, transit=True, csg=Stage.SECURITY)
        if answers:
            raise RemoteProtocolError(
                "target offered keys while leaving the security stage",
                reject_reason=RejectReason.PROTOCOL_ERROR,
            )
        if pdu.nsg == Stage.FULL_FEATURE:
            # Allowed only if we asked for it, which we never do from security.
            raise RemoteProtocolError(
                "target skipped operational negotiation", reject_reason=RejectReason.PROTOCOL_ERROR
            )
        self._state = _State.OPERATIONAL
        return self._request(self._negotiator.offer(Stage.OPERATIONAL), transit=True)

    # -- operational stage (RFC 7143 §6.3.2) --------------------------------------------

    def _operational(
        self, pdu: LoginResponse, pairs: list[tuple[str, str]]
    ) -> LoginRequest | LoginEvent:
        if any(k.startswith(_CHAP_PREFIX) for k, _ in pairs):
            raise RemoteProtocolError(
                "CHAP key in the operational stage", reject_reason=RejectReason.PROTOCOL_ERROR
            )
        self._remember_declarations(pairs)
        answers = self._negotiator.receive(pairs, Stage.OPERATIONAL)
        if not pdu.transit:
            return self._request(answers, transit=True)
        if answers:
            raise RemoteProtocolError(
                "target offered keys in its final Login Response",
                reject_reason=RejectReason.PROTOCOL_ERROR,
            )
        if self.config.tsih == 0 and pdu.tsih == 0:
            raise RemoteProtocolError(
                "final Login Response of a leading login carries TSIH 0",
                reject_reason=RejectReason.INVALID_PDU_FIELD,
            )
        if self.config.tsih not in (0, pdu.tsih):
            raise RemoteProtocolError(
                "target changed the TSIH of an existing session",
                reject_reason=RejectReason.INVALID_PDU_FIELD,
            )
        self._state = _State.DONE
        params = self._negotiator.negotiated()
        # A target that never answered an offer breaks RFC 7143 §6.2, but open-iscsi
        # logs in regardless; so do we, with the RFC default for each such key (the
        # value a target that ignored the key is running with), and say which they were.
        unanswered = self._negotiator.pending
        for key in unanswered:
            spec = KEYS.get(key)
            if spec is not None and spec.default is not None:
                params[key] = spec.default
        tpgt_text = self._declared.get("TargetPortalGroupTag")
        tpgt = int(tpgt_text) if tpgt_text is not None and tpgt_text.isdigit() else None
        for key in ("TargetAlias", "TargetPortalGroupTag"):
            if key in self._declared:
                params.setdefault(key, self._declared[key])
        return LoginAccepted(
            params=params,
            tsih=pdu.tsih,
            statsn=pdu.statsn,
            expcmdsn=pdu.expcmdsn,
            maxcmdsn=pdu.maxcmdsn,
            target_portal_group_tag=tpgt,
            target_alias=self._declared.get("TargetAlias"),
            unanswered=unanswered,
        )

    def _remember_declarations(self, pairs: Sequence[tuple[str, str]]) -> None:
        for key, value in pairs:
            if key in ("TargetAlias", "TargetPortalGroupTag", "TargetAddress"):
                self._declared[key] = value
