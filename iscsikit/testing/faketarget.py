"""A scriptable in-process iSCSI target for tests: the initiator machines' sparring partner.

:class:`FakeTarget` is sans-I/O like the initiator side: feed it initiator PDUs with
:meth:`FakeTarget.receive`, get the target's answers back.  It runs the target role of
the same protocol core (``Negotiator("target")``, :class:`~iscsikit.proto.chap.ChapTarget`)
and can be told to misbehave in the ways real targets do: redirect, fail with any login
status, take extra negotiation rounds, split its text over several PDUs (C bit), split
a SendTargets answer (F=0 + Target Transfer Tag), offer keys of its own.  :func:`serve`
drives it over a socket so the real drivers can log in to it.
"""

from __future__ import annotations

import secrets
import socket
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TypeVar

from iscsikit.proto.chap import ChapAlgorithm, ChapTarget
from iscsikit.proto.constants import RESERVED_TAG, Stage
from iscsikit.proto.framing import PduReader
from iscsikit.proto.negotiation import Negotiator
from iscsikit.proto.pdu import (
    LoginRequest,
    LoginResponse,
    LogoutRequest,
    LogoutResponse,
    NopIn,
    NopOut,
    Pdu,
    Reject,
    TextRequest,
    TextResponse,
    encode_pdu,
)
from iscsikit.proto.text import decode_text, encode_text

_R = TypeVar("_R", TextResponse, LogoutResponse, NopIn, Reject)

ALL_CHAP = (ChapAlgorithm.SHA3_256, ChapAlgorithm.SHA256, ChapAlgorithm.SHA1, ChapAlgorithm.MD5)


@dataclass
class FakeTargetConfig:
    """How the fake target behaves.  Defaults: one open target, no surprises."""

    #: Target name → its TargetAddress values (``host:port,tpgt``) for SendTargets.
    targets: Mapping[str, Sequence[str]] = field(
        default_factory=lambda: {"iqn.2024-01.test.fake:disk": ["127.0.0.1:3260,1"]}
    )
    #: CHAP accounts for Normal sessions (user → secret); None = no authentication.
    accounts: Mapping[str, str] | None = None
    #: CHAP accounts for Discovery sessions.
    discovery_accounts: Mapping[str, str] | None = None
    #: Mutual CHAP: the target's own (name, secret).
    outgoing: tuple[str, str] | None = None
    chap_algorithms: tuple[ChapAlgorithm, ...] = ALL_CHAP
    #: The target's operational limits/preferences (RFC 7143 key names).
    operational: Mapping[str, str] = field(default_factory=dict)
    tpgt: int = 1
    alias: str | None = "fake-disk"
    #: Answer this many operational rounds with T=0 before agreeing to transit.
    extra_rounds: int = 0
    #: Keys the target offers/declares on its own in the first operational response.
    target_offers: Sequence[tuple[str, str]] = ()
    #: Split every login response text into chunks of this size (C bit).
    text_chunk: int | None = None
    #: Split the SendTargets answer into chunks of this size (F=0 + TTT continuation).
    sendtargets_chunk: int | None = None
    #: Answer the first Login Request with this (status class, status detail).
    status: tuple[int, int] | None = None
    #: Answer the first Login Request with a redirect to this TargetAddress.
    redirect: str | None = None
    permanent_redirect: bool = False
    tsih: int = 0x2A


class FakeTarget:
    """One connection's worth of target behaviour."""

    def __init__(
        self,
        config: FakeTargetConfig | None = None,
        *,
        random_bytes: Callable[[int], bytes] = secrets.token_bytes,
    ) -> None:
        self.config = config or FakeTargetConfig()
        self._random = random_bytes
        self.statsn = 0x100
        self.expcmdsn = 0
        self.logged_in = False
        self.session_type = "Normal"
        self.initiator_name: str | None = None
        self.target_name: str | None = None
        self.authenticated = False
        self.negotiated: dict[str, str] = {}
        self.requests: list[Pdu] = []
        self._first = True
        self._rounds_left = self.config.extra_rounds
        self._offered = False
        self._pending_text: list[bytes] = []
        self._chap: ChapTarget | None = None
        self._negotiator: Negotiator | None = None
        self._st_chunks: list[bytes] = []

    # -- entry point -------------------------------------------------------------------

    def receive(self, pdu: Pdu) -> list[Pdu]:
        self.requests.append(pdu)
        if isinstance(pdu, LoginRequest):
            return [self._login(pdu)]
        if not self.logged_in:
            return [self._reject(pdu, 0x04)]
        if isinstance(pdu, TextRequest):
            return [self._text(pdu)]
        if isinstance(pdu, LogoutRequest):
            return [self._logout(pdu)]
        if isinstance(pdu, NopOut):
            if pdu.itt == RESERVED_TAG:
                return []  # an answer to our ping
            return [self._nop_in(pdu)]
        return [self._reject(pdu, 0x05)]

    # -- login ---------------------------------------------------------------------------

    def _status(
        self, req: LoginRequest, cls: int, detail: int, keys: Sequence[tuple[str, str]] = ()
    ) -> LoginResponse:
        return LoginResponse(
            transit=False,
            cont=False,
            csg=req.csg,
            nsg=0,
            isid=req.isid,
            tsih=0,
            itt=req.itt,
            statsn=self.statsn,
            expcmdsn=req.cmdsn,
            maxcmdsn=req.cmdsn,
            status_class=cls,
            status_detail=detail,
            data=encode_text(keys),
        )

    def _login(self, req: LoginRequest) -> LoginResponse:
        cfg = self.config
        if self._pending_text:
            # The initiator asks for the rest of a continued response.
            return self._respond(req, b"", transit=False)
        pairs = decode_text(req.data)
        keys = dict(pairs)
        if self._first:
            self._first = False
            if cfg.redirect is not None:
                detail = 2 if cfg.permanent_redirect else 1
                return self._status(req, 1, detail, [("TargetAddress", cfg.redirect)])
            if cfg.status is not None:
                return self._status(req, *cfg.status)
            self.initiator_name = keys.get("InitiatorName")
            self.session_type = keys.get("SessionType", "Normal")
            self.target_name = keys.get("TargetName")
            if not self.initiator_name:
                return self._status(req, 2, 7)  # missing parameter
            if self.session_type == "Normal" and self.target_name not in cfg.targets:
                return self._status(req, 2, 3)  # target not found
            self._negotiator = Negotiator(
                "target", dict(cfg.operational), session_type=self.session_type
            )
        accounts = cfg.discovery_accounts if self.session_type == "Discovery" else cfg.accounts
        leading = {"InitiatorName", "InitiatorAlias", "TargetName", "SessionType"}
        rest = [(k, v) for k, v in pairs if k not in leading]
        if req.csg == Stage.SECURITY:
            return self._security(req, rest, accounts)
        if accounts and not self.authenticated:
            return self._status(req, 2, 1)  # authentication required
        return self._operational(req, rest)

    def _security(
        self, req: LoginRequest, pairs: list[tuple[str, str]], accounts: Mapping[str, str] | None
    ) -> LoginResponse:
        keys = dict(pairs)
        answers: list[tuple[str, str]] = []
        chap_keys = {k: v for k, v in keys.items() if k.startswith("CHAP_")}
        if "AuthMethod" in keys:
            offered = [m.strip() for m in keys["AuthMethod"].split(",")]
            if accounts:
                if "CHAP" not in offered:
                    return self._status(req, 2, 1)
                answers.append(("AuthMethod", "CHAP"))
                self._chap = ChapTarget(
                    accounts,
                    algorithms=self.config.chap_algorithms,
                    outgoing=self.config.outgoing,
                    random_bytes=self._random,
                )
            elif "None" in offered:
                answers.append(("AuthMethod", "None"))
                self.authenticated = True
            else:
                answers.append(("AuthMethod", "Reject"))
        if "CHAP_A" in chap_keys:
            if self._chap is None:
                return self._status(req, 2, 0)
            answers += self._chap.challenge(chap_keys)
        elif "CHAP_N" in chap_keys or "CHAP_R" in chap_keys:
            if self._chap is None:
                return self._status(req, 2, 0)
            try:
                answers += self._chap.check(chap_keys)
            except Exception:
                return self._status(req, 2, 1)
            self.authenticated = True
        transit = req.transit and (self.authenticated or not accounts)
        if req.transit and not transit and self._chap is None:
            return self._status(req, 2, 1)
        return self._respond(req, encode_text(answers), transit=transit)

    def _operational(self, req: LoginRequest, pairs: list[tuple[str, str]]) -> LoginResponse:
        assert self._negotiator is not None
        answers = self._negotiator.receive(pairs, Stage.OPERATIONAL)
        if not self._offered:
            self._offered = True
            own = list(self.config.target_offers)
            if self.session_type == "Normal":
                own.append(("TargetPortalGroupTag", str(self.config.tpgt)))
                if self.config.alias:
                    own.append(("TargetAlias", self.config.alias))
            self._negotiator.record_sent(own, Stage.OPERATIONAL)
            answers = [*answers, *own]
        transit = req.transit
        if self._rounds_left > 0:
            self._rounds_left -= 1
            transit = False
        return self._respond(req, encode_text(answers), transit=transit)

    def _respond(self, req: LoginRequest, data: bytes, *, transit: bool) -> LoginResponse:
        chunk = self.config.text_chunk
        if data and chunk and len(data) > chunk:
            self._pending_text = [data[i : i + chunk] for i in range(0, len(data), chunk)]
        if self._pending_text:
            data = self._pending_text.pop(0)
            if self._pending_text:
                # RFC 7143 §11.13.3: T must be 0 while C is 1.
                return self._login_pdu(req, data, transit=False, cont=True)
        return self._login_pdu(req, data, transit=transit, cont=False)

    def _login_pdu(
        self, req: LoginRequest, data: bytes, *, transit: bool, cont: bool
    ) -> LoginResponse:
        final = transit and req.nsg == Stage.FULL_FEATURE
        if final:
            self.logged_in = True
            self.negotiated = self._negotiator.negotiated() if self._negotiator else {}
        rsp = LoginResponse(
            transit=transit,
            cont=cont,
            csg=req.csg,
            nsg=req.nsg if transit else 0,
            isid=req.isid,
            tsih=self.config.tsih if final else 0,
            itt=req.itt,
            statsn=self.statsn,
            expcmdsn=req.cmdsn,
            maxcmdsn=req.cmdsn + 16,
            status_class=0,
            status_detail=0,
            data=data,
        )
        self.statsn += 1
        self.expcmdsn = req.cmdsn
        return rsp

    # -- full feature phase ------------------------------------------------------------

    def _text(self, req: TextRequest) -> TextResponse:
        if req.ttt == RESERVED_TAG:
            keys = dict(decode_text(req.data))
            query = keys.get("SendTargets")
            if query is None:
                body = encode_text([(k, "NotUnderstood") for k in keys])
            else:
                body = self._sendtargets(query)
            size = self.config.sendtargets_chunk
            self._st_chunks = (
                [body[i : i + size] for i in range(0, len(body), size)] if size else [body]
            )
        data = self._st_chunks.pop(0) if self._st_chunks else b""
        final = not self._st_chunks
        return self._ffp(
            TextResponse(
                final=final,
                cont=not final and not data.endswith(b"\x00"),
                itt=req.itt,
                ttt=RESERVED_TAG if final else 0x1000 + len(self._st_chunks),
                data=data,
            ),
            req,
        )

    def _sendtargets(self, query: str) -> bytes:
        if self.session_type == "Normal":
            names = [self.target_name] if query in ("", self.target_name) else []
        elif query == "All":
            names = list(self.config.targets)
        else:
            names = [query] if query in self.config.targets else []
        pairs: list[tuple[str, str]] = []
        for name in names:
            if name is None:
                continue
            pairs.append(("TargetName", name))
            pairs += [("TargetAddress", a) for a in self.config.targets[name]]
        return encode_text(pairs)

    def _logout(self, req: LogoutRequest) -> LogoutResponse:
        self.logged_in = False
        return self._ffp(LogoutResponse(response=0, itt=req.itt, time2wait=2, time2retain=0), req)

    def _nop_in(self, req: NopOut) -> NopIn:
        return self._ffp(NopIn(itt=req.itt, ttt=RESERVED_TAG, lun=req.lun, data=req.data), req)

    def _ffp(self, rsp: _R, req: Pdu) -> _R:
        """Fill in the sequence numbers of a Full Feature Phase response."""
        cmdsn = getattr(req, "cmdsn", self.expcmdsn)
        immediate = getattr(req, "immediate", False)
        self.expcmdsn = cmdsn if immediate else cmdsn + 1
        rsp.statsn = self.statsn
        rsp.expcmdsn = self.expcmdsn
        rsp.maxcmdsn = self.expcmdsn + 16
        self.statsn += 1
        return rsp

    def _reject(self, req: Pdu, reason: int) -> Reject:
        return self._ffp(Reject(reason=reason, data=encode_pdu(req)[:48]), req)


def serve(target: FakeTarget, conn: socket.socket, *, timeout: float = 10.0) -> None:
    """Run ``target`` over ``conn`` until the initiator logs out or hangs up."""
    conn.settimeout(timeout)
    reader = PduReader(peer="initiator", max_data_segment_length=1 << 20)
    while True:
        pdu = reader.next_pdu()
        if pdu is None:
            chunk = conn.recv(65536)
            if not chunk:
                return
            reader.receive_data(chunk)
            continue
        for rsp in target.receive(pdu):
            conn.sendall(
                encode_pdu(rsp, header_digest=reader.header_digest, data_digest=reader.data_digest)
            )
        if target.logged_in and target.negotiated:
            reader.header_digest = target.negotiated.get("HeaderDigest") == "CRC32C"
            reader.data_digest = target.negotiated.get("DataDigest") == "CRC32C"
        if isinstance(pdu, LogoutRequest):
            return
