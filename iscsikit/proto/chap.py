"""CHAP for the iSCSI security negotiation stage, sans-I/O (RFC 1994, RFC 7143 §12.1.3).

This module owns:

* the CHAP algorithm registry, :class:`ChapAlgorithm`.  The CHAP_A numbers come from the
  IANA "PPP Authentication Algorithms" registry: MD5 = 5 (RFC 1994), and SHA-1 = 6,
  SHA-256 = 7, SHA3-256 = 8, which IANA assigned for iSCSI and which open-iscsi
  (usr/auth.c) and the Linux target use.  No RFC defines 6-8; RFC 1994 §3 defers to the
  registry;
* open-iscsi's ``node.session.auth.chap_algs`` syntax (:func:`parse_chap_algs`,
  :func:`format_chap_algs`);
* the response function of RFC 1994 §4.1 (:func:`chap_response`);
* the RFC 7143 §6.1 encodings of CHAP_C / CHAP_R (binary values, :func:`encode_binary`,
  :func:`decode_binary`) and of CHAP_I / CHAP_A (numbers, :func:`parse_chap_identifier`);
* both roles of the RFC 7143 §12.1.3 exchange::

      I->T  CHAP_A=<A1,A2,...>
      T->I  CHAP_A=<A> CHAP_I=<I> CHAP_C=<C>
      I->T  CHAP_N=<N> CHAP_R=<R>   [CHAP_I=<I> CHAP_C=<C>   (mutual CHAP)]
      T->I                          [CHAP_N=<N> CHAP_R=<R>   (mutual CHAP)]

  :class:`ChapInitiator` is the initiator side.  :class:`ChapTarget` is the target side,
  which in-process fake targets in tests use.

What it must not do: I/O, clock reads, or building Login PDUs.  Choosing AuthMethod and
the stage transitions are the login machine's job.  Keys come in as a
``Mapping[str, str]`` and go out as a ``list[tuple[str, str]]``.  Randomness (CHAP
identifiers and challenges) is passed in as ``random_bytes``, and ``secrets.token_bytes``
is only the default.

Every authentication failure raises :class:`~iscsikit.errors.AuthenticationError` (exit
24).  Malformed CHAP keys from the peer raise
:class:`~iscsikit.errors.RemoteProtocolError`, and bad local configuration raises
:class:`~iscsikit.errors.InvalidParameterError`.  Calls made in the wrong order raise
:class:`~iscsikit.errors.LocalProtocolError`.  After any error the object is terminal.
"""

from __future__ import annotations

import base64 as _base64
import hashlib
import hmac
import re
import secrets
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from enum import Enum, IntEnum
from typing import Final, Literal, Protocol

from iscsikit.errors import (
    AuthenticationError,
    InvalidParameterError,
    LocalProtocolError,
    RemoteProtocolError,
)

__all__ = [
    "DEFAULT_CHAP_ALGS",
    "MAX_BINARY_LENGTH",
    "MAX_CHAP_ALGS",
    "MAX_NAME_LENGTH",
    "MAX_SECRET_LENGTH",
    "BinaryEncoding",
    "ChapAlgorithm",
    "ChapInitiator",
    "ChapTarget",
    "RandomBytes",
    "chap_response",
    "decode_binary",
    "encode_binary",
    "format_chap_algs",
    "parse_chap_algs",
    "parse_chap_identifier",
]


RandomBytes = Callable[[int], bytes]
"""``random_bytes(n)`` must return exactly *n* unpredictable bytes."""

BinaryEncoding = Literal["hex", "base64"]

#: Secrets and names are at most 255 bytes: open-iscsi stores them in 256-byte
#: NUL-terminated buffers (AUTH_STR_MAX_LEN).
MAX_SECRET_LENGTH: Final = 255
MAX_NAME_LENGTH: Final = 255
#: RFC 7143 §12.1.3: the binary length of C and R "MUST NOT exceed 1024 bytes".
MAX_BINARY_LENGTH: Final = 1024
#: open-iscsi keeps at most AUTH_CHAP_ALG_MAX_COUNT (5) chap_algs entries.  Repeats are
#: dropped, so with four algorithms the cap cannot be reached.  It is kept for parity.
MAX_CHAP_ALGS: Final = 5
#: How many times we redraw our mutual challenge if it equals the target's (see respond()).
_CHALLENGE_DRAWS: Final = 8


class _Hash(Protocol):
    def update(self, data: bytes, /) -> None: ...
    def digest(self) -> bytes: ...


class ChapAlgorithm(IntEnum):
    """A CHAP_A value (IANA "PPP Authentication Algorithms"), with its hash function."""

    MD5 = 5
    SHA1 = 6
    SHA256 = 7
    SHA3_256 = 8

    @property
    def digest_size(self) -> int:
        """Response length in bytes.  open-iscsi also uses it as its challenge length."""
        return _DIGEST_SIZE[self]

    @property
    def config_name(self) -> str:
        """The name in ``node.session.auth.chap_algs`` (``"SHA3-256"``, ...)."""
        return _CONFIG_NAME[self]

    @property
    def constructor(self) -> Callable[[], _Hash]:
        """The hashlib constructor (``hashlib.md5``, ...)."""
        return _CONSTRUCTOR[self]

    @property
    def available(self) -> bool:
        """False if this Python's crypto library refuses the hash (e.g. MD5 under FIPS)."""
        try:
            self.constructor()
        except ValueError:
            return False
        return True

    @classmethod
    def from_config_name(cls, name: str) -> ChapAlgorithm:
        """The algorithm spelled *name* exactly as open-iscsi spells it; else ValueError."""
        try:
            return _BY_CONFIG_NAME[name]
        except KeyError:
            raise ValueError(f"unknown CHAP algorithm name {name!r}") from None


_DIGEST_SIZE: Final[Mapping[ChapAlgorithm, int]] = {
    ChapAlgorithm.MD5: 16,
    ChapAlgorithm.SHA1: 20,
    ChapAlgorithm.SHA256: 32,
    ChapAlgorithm.SHA3_256: 32,
}
# Spelling of open-iscsi's chap_algs table (libopeniscsiusr/idbm.c, usr/idbm.c).
_CONFIG_NAME: Final[Mapping[ChapAlgorithm, str]] = {
    ChapAlgorithm.MD5: "MD5",
    ChapAlgorithm.SHA1: "SHA1",
    ChapAlgorithm.SHA256: "SHA256",
    ChapAlgorithm.SHA3_256: "SHA3-256",
}
_CONSTRUCTOR: Final[Mapping[ChapAlgorithm, Callable[[], _Hash]]] = {
    ChapAlgorithm.MD5: hashlib.md5,
    ChapAlgorithm.SHA1: hashlib.sha1,
    ChapAlgorithm.SHA256: hashlib.sha256,
    ChapAlgorithm.SHA3_256: hashlib.sha3_256,
}
_BY_CONFIG_NAME: Final[Mapping[str, ChapAlgorithm]] = {v: k for k, v in _CONFIG_NAME.items()}

#: open-iscsi's default ``node.session.auth.chap_algs``: MD5 only.  Offering more broke
#: old targets that expect exactly ``CHAP_A=5`` (open-iscsi #180).
DEFAULT_CHAP_ALGS: Final[tuple[ChapAlgorithm, ...]] = (ChapAlgorithm.MD5,)


# --------------------------------------------------------------------------- chap_algs


# open-iscsi splits the value with strsep(", \n"): comma, space and newline separate.
# Tabs do not, and names are case-sensitive.
_CHAP_ALGS_SEPARATOR = re.compile(r"[, \n]")


def _warn(message: str) -> None:
    warnings.warn(message, stacklevel=3)


def parse_chap_algs(
    text: str, *, warn: Callable[[str], object] | None = None
) -> tuple[ChapAlgorithm, ...]:
    """Parse open-iscsi's ``node.session.auth.chap_algs`` value, in preference order.

    Each problem is passed to ``warn`` (default: a Python :mod:`warnings` warning)
    and skipped, as idbm does: an unknown name, a repeated name, or entries past
    :data:`MAX_CHAP_ALGS`.  An empty value gives :data:`DEFAULT_CHAP_ALGS`.  So does a
    value with no known name, with a warning.
    """
    # No logging here (sans-I/O): without a callback the warning is a Python warning.
    report: Callable[[str], object] = warn if warn is not None else _warn
    found: list[ChapAlgorithm] = []
    for token in _CHAP_ALGS_SEPARATOR.split(text):
        if not token:
            continue
        if len(found) >= MAX_CHAP_ALGS:
            report(f"too many values in chap_algs; ignoring {token!r} and the rest")
            break
        algorithm = _BY_CONFIG_NAME.get(token)
        if algorithm is None:
            report(f"ignoring unknown value {token!r} in chap_algs")
        elif algorithm in found:
            report(f"ignoring repeated value {token!r} in chap_algs")
        else:
            found.append(algorithm)
    if not found:
        if _CHAP_ALGS_SEPARATOR.sub("", text):
            report(f"no known CHAP algorithm in chap_algs {text!r}; using MD5")
        return DEFAULT_CHAP_ALGS
    return tuple(found)


def format_chap_algs(algorithms: Iterable[ChapAlgorithm]) -> str:
    """The chap_algs value for *algorithms*, as idbm writes it: ``"SHA3-256,SHA256,MD5"``."""
    return ",".join(ChapAlgorithm(a).config_name for a in algorithms)


# ------------------------------------------------------------------------------ values


def chap_response(
    algorithm: ChapAlgorithm, identifier: int, secret: bytes, challenge: bytes
) -> bytes:
    """RFC 1994 §4.1: the response is H(Identifier ‖ secret ‖ Challenge).

    The identifier is one octet, and the hash is the one *algorithm* names.
    """
    if not 0 <= identifier <= 0xFF:
        raise InvalidParameterError(f"CHAP identifier {identifier} is not one octet (0..255)")
    h = ChapAlgorithm(algorithm).constructor()
    h.update(bytes((identifier,)))
    h.update(bytes(secret))
    h.update(bytes(challenge))
    return h.digest()


_HEX = re.compile(r"0[xX]([0-9a-fA-F]+)")
_BASE64 = re.compile(r"0[bB]([A-Za-z0-9+/]+)(={0,2})")
_DECIMAL = re.compile(r"[0-9]+")


def encode_binary(value: bytes, *, base64: bool = False) -> str:
    """Encode a binary-value (RFC 7143 §6.1) as ``0x`` + lowercase hex, or ``0b`` + base64.

    The base64 form uses the RFC 4648 alphabet with padding.
    """
    if not value:
        raise ValueError("a binary-value needs at least one byte (RFC 7143 §6.1)")
    if base64:
        return "0b" + _base64.b64encode(bytes(value)).decode("ascii")
    return "0x" + bytes(value).hex()


def decode_binary(text: str, *, max_length: int | None = None) -> bytes:
    """Decode a hex-constant or base64-constant binary-value (RFC 7143 §6.1).

    ``0x``/``0X`` is followed by hex digits in either case.  An odd digit count has an
    implied leading zero: a hex-constant of n digits is (n + 1) // 2 bytes (§6.1), as
    open-iscsi's acl_hex_to_data decodes it.  ``0b``/``0B`` is followed by RFC 4648
    base64.  Padding is optional, but n non-``=`` characters with n % 4 == 1 cannot
    encode whole bytes.  Anything else, including an empty body, raises ValueError.  So
    does a value longer than *max_length* bytes, which is checked before decoding.
    """
    if m := _HEX.fullmatch(text):
        digits = m.group(1)
        _check_length((len(digits) + 1) // 2, max_length)
        if len(digits) % 2:
            digits = "0" + digits
        return bytes.fromhex(digits)
    if m := _BASE64.fullmatch(text):
        body, padding = m.groups()
        if len(body) % 4 == 1:
            raise ValueError(f"base64-constant {text!r} has an impossible length")
        if padding and (len(body) + len(padding)) % 4:
            raise ValueError(f"base64-constant {text!r} has wrong padding")
        _check_length(len(body) * 3 // 4, max_length)
        return _base64.b64decode(body + "=" * (-len(body) % 4), validate=True)
    raise ValueError(f"{text[:40]!r} is not a 0x-hex or 0b-base64 binary value")


def _check_length(length: int, max_length: int | None) -> None:
    if max_length is not None and length > max_length:
        raise ValueError(f"binary value of {length} bytes exceeds {max_length}")


def _parse_number(text: str) -> int:
    # RFC 7143 §6.1 numerical-value: a decimal-constant or a hex-constant (not base64).
    # Leading zeros are accepted, as open-iscsi's strtoul accepts them.
    if len(text) <= 20 and _DECIMAL.fullmatch(text):
        return int(text)
    if len(text) <= 18 and (m := _HEX.fullmatch(text)):
        return int(m.group(1), 16)
    raise ValueError(f"{text[:40]!r} is not a number")


def parse_chap_identifier(text: str) -> int:
    """Parse CHAP_I: "a number" (RFC 7143 §12.1.3), i.e. decimal or 0x-hex, in 0..255."""
    value = _parse_number(text)
    if value > 0xFF:
        raise ValueError(f"CHAP_I {text!r} is not one octet")
    return value


# ------------------------------------------------------------------------ shared checks


def _check_name(name: str, what: str) -> str:
    if not isinstance(name, str) or not name:
        raise InvalidParameterError(f"CHAP {what} must be a non-empty string")
    if "\0" in name or len(name.encode("utf-8")) > MAX_NAME_LENGTH:
        raise InvalidParameterError(
            f"CHAP {what} must be at most {MAX_NAME_LENGTH} bytes of UTF-8 without NUL"
        )
    return name


def _check_secret(secret: bytes | str, what: str) -> bytes:
    raw = secret.encode("utf-8") if isinstance(secret, str) else bytes(secret)
    # RFC 1994 §2.2: the secret MUST be at least one octet.  The 255-byte cap is open-iscsi's.
    if not 1 <= len(raw) <= MAX_SECRET_LENGTH:
        raise InvalidParameterError(
            f"CHAP {what} must be 1..{MAX_SECRET_LENGTH} bytes, not {len(raw)}"
        )
    return raw


def _check_algorithms(algorithms: Sequence[ChapAlgorithm]) -> tuple[ChapAlgorithm, ...]:
    try:
        checked = tuple(ChapAlgorithm(a) for a in algorithms)
    except ValueError as exc:
        raise InvalidParameterError(
            f"{exc}; pass ChapAlgorithm values (parse_chap_algs() reads the config syntax)"
        ) from None
    if not checked:
        raise InvalidParameterError("at least one CHAP algorithm is needed")
    if len(set(checked)) != len(checked):
        raise InvalidParameterError(f"repeated CHAP algorithm in {format_chap_algs(checked)}")
    for algorithm in checked:
        # open-iscsi drops such algorithms with a warning; the config layer can do the same
        # with ChapAlgorithm.available.  Here the core refuses them instead.
        if not algorithm.available:
            raise InvalidParameterError(
                f"CHAP algorithm {algorithm.config_name} is disabled by this crypto library"
            )
    return checked


def _check_encoding(encoding: BinaryEncoding) -> bool:
    if encoding not in ("hex", "base64"):
        raise InvalidParameterError(f"CHAP encoding must be 'hex' or 'base64', not {encoding!r}")
    return encoding == "base64"


def _check_keys(keys: Mapping[str, str], allowed: frozenset[str], step: str) -> None:
    # Other keys (AuthMethod, TargetPortalGroupTag, ...) belong to the login machine.  An
    # auth key that does not belong to this step is an error, as in open-iscsi
    # (AUTH_DBG_STATUS_UNEXPECTED_KEY_PRESENT).
    unexpected = sorted(k for k in keys if k.startswith("CHAP_") and k not in allowed)
    if unexpected:
        raise RemoteProtocolError(f"unexpected {', '.join(unexpected)} in {step}")


def _require(keys: Mapping[str, str], key: str, step: str) -> str:
    try:
        return keys[key]
    except KeyError:
        raise RemoteProtocolError(f"{key} missing from {step}") from None


def _decode_peer_binary(keys: Mapping[str, str], key: str, step: str) -> bytes:
    try:
        return decode_binary(_require(keys, key, step), max_length=MAX_BINARY_LENGTH)
    except ValueError as exc:
        raise RemoteProtocolError(f"malformed {key} in {step}: {exc}") from None


def _identifier_of(keys: Mapping[str, str], step: str) -> int:
    text = _require(keys, "CHAP_I", step)
    try:
        return parse_chap_identifier(text)
    except ValueError as exc:
        raise RemoteProtocolError(f"malformed CHAP_I in {step}: {exc}") from None


def _draw(random_bytes: RandomBytes, n: int) -> bytes:
    data = bytes(random_bytes(n))
    if len(data) != n:
        raise LocalProtocolError(f"random_bytes({n}) returned {len(data)} bytes")
    return data


class _State(Enum):
    IDLE = "idle"
    OFFERED = "offered"  # initiator: CHAP_A sent
    CHALLENGED = "challenged"  # target: CHAP_A/I/C sent
    RESPONDED = "responded"  # initiator: CHAP_N/R/I/C sent, waiting for the target's answer
    DONE = "done"
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class _Challenge:
    algorithm: ChapAlgorithm
    identifier: int
    challenge: bytes


class _Machine:
    """State bookkeeping shared by both roles: one pass, and any error is terminal."""

    _state: _State

    def _expect(self, state: _State, action: str) -> None:
        if self._state is not state:
            raise LocalProtocolError(f"cannot {action}() in CHAP state {self._state.value!r}")

    @contextmanager
    def _step(self) -> Iterator[None]:
        try:
            yield
        except BaseException:
            self._state = _State.FAILED
            raise

    @property
    def complete(self) -> bool:
        """True once the exchange succeeded (both directions, for mutual CHAP)."""
        return self._state is _State.DONE


# --------------------------------------------------------------------------- initiator


class ChapInitiator(_Machine):
    """The initiator side of RFC 7143 §12.1.3: :meth:`offer`, :meth:`respond`, :meth:`verify`.

    Mutual CHAP is on when ``username_in`` or ``secret_in`` is given, as in open-iscsi.
    It then needs both of them, and ``secret_in`` must differ from ``secret``: RFC 7143
    §9.2.1 forbids one secret for both directions, and a target sees our response as its
    own.  Secrets given as ``str`` are UTF-8 encoded.  Short secrets are allowed, as in
    open-iscsi.  RFC 7143 §9.2.1 wants 96 random bits unless IPsec is used, which is an
    administrative rule.
    """

    def __init__(
        self,
        username: str,
        secret: bytes | str,
        *,
        username_in: str | None = None,
        secret_in: bytes | str | None = None,
        algorithms: Sequence[ChapAlgorithm] = DEFAULT_CHAP_ALGS,
        random_bytes: RandomBytes = secrets.token_bytes,
        encoding: BinaryEncoding = "hex",
    ) -> None:
        self._username = _check_name(username, "username")
        self._secret = _check_secret(secret, "secret")
        self._mutual = username_in is not None or secret_in is not None
        self._username_in = ""
        self._secret_in = b""
        if self._mutual:
            if secret_in is None:
                raise InvalidParameterError("mutual CHAP (username_in is set) needs secret_in")
            if username_in is None:
                raise InvalidParameterError(
                    "mutual CHAP (secret_in is set) needs username_in: the target's CHAP_N "
                    "must equal it"
                )
            self._username_in = _check_name(username_in, "username_in")
            self._secret_in = _check_secret(secret_in, "secret_in")
            if hmac.compare_digest(self._secret, self._secret_in):
                raise InvalidParameterError(
                    "secret_in must differ from secret: RFC 7143 §9.2.1 forbids using one "
                    "CHAP secret in both directions, and the login would fail"
                )
        self._algorithms = _check_algorithms(algorithms)
        self._base64 = _check_encoding(encoding)
        self._random_bytes = random_bytes
        self._state = _State.IDLE
        self._algorithm: ChapAlgorithm | None = None
        self._ours: _Challenge | None = None  # our mutual challenge to the target

    def __repr__(self) -> str:  # never shows secrets
        kind = "mutual" if self._mutual else "one-way"
        return f"<ChapInitiator {self._username!r} {kind} {self._state.value}>"

    @property
    def mutual(self) -> bool:
        """True when we also authenticate the target."""
        return self._mutual

    @property
    def algorithms(self) -> tuple[ChapAlgorithm, ...]:
        """What we offer, in preference order."""
        return self._algorithms

    @property
    def algorithm(self) -> ChapAlgorithm | None:
        """The algorithm the target chose.  None before :meth:`respond`."""
        return self._algorithm

    def offer(self) -> list[tuple[str, str]]:
        """The first step: ``CHAP_A=<A1,A2,...>`` in preference order (RFC 7143 §12.1.3)."""
        self._expect(_State.IDLE, "offer")
        self._state = _State.OFFERED
        return [("CHAP_A", ",".join(str(int(a)) for a in self._algorithms))]

    def respond(self, keys: Mapping[str, str]) -> list[tuple[str, str]]:
        """Answer the target's ``CHAP_A``, ``CHAP_I`` and ``CHAP_C`` with CHAP_N and CHAP_R.

        In mutual mode ``CHAP_I`` and ``CHAP_C`` follow, with our random identifier and
        challenge.  The challenge is as long as the chosen digest, as in open-iscsi.
        RFC 7143 §9.2.1: "Originators MUST NOT reuse the CHAP challenge sent by the
        Responder".  So a draw equal to the target's challenge is discarded and redrawn.
        After a few such draws the random source is broken, and LocalProtocolError is
        raised.
        """
        self._expect(_State.OFFERED, "respond")
        step = "the target's CHAP challenge"
        with self._step():
            _check_keys(keys, frozenset({"CHAP_A", "CHAP_I", "CHAP_C"}), step)
            algorithm = self._chosen_algorithm(_require(keys, "CHAP_A", step))
            identifier = _identifier_of(keys, step)
            challenge = _decode_peer_binary(keys, "CHAP_C", step)
            self._algorithm = algorithm
            response = chap_response(algorithm, identifier, self._secret, challenge)
            out = [("CHAP_N", self._username), ("CHAP_R", self._encode(response))]
            if not self._mutual:
                self._state = _State.DONE
                return out
            our_identifier = _draw(self._random_bytes, 1)[0]
            for _ in range(_CHALLENGE_DRAWS):
                ours = _draw(self._random_bytes, algorithm.digest_size)
                if not hmac.compare_digest(ours, challenge):
                    break
            else:
                raise LocalProtocolError("random_bytes keeps returning the target's challenge")
            self._ours = _Challenge(algorithm, our_identifier, ours)
            out += [("CHAP_I", str(our_identifier)), ("CHAP_C", self._encode(ours))]
            self._state = _State.RESPONDED
            return out

    def verify(self, keys: Mapping[str, str]) -> None:
        """Check the target's mutual-CHAP answer (``CHAP_N``, ``CHAP_R``).  Return on success.

        RFC 7143 §12.1.3: "If target authentication fails, the initiator MUST close the
        connection".  Every failure raises AuthenticationError.  These are checked in
        open-iscsi's order:

        * CHAP_R must be the digest length;
        * CHAP_R must not equal the response our *outgoing* secret gives, which would mean
          identical secrets both ways (RFC 7143 §9.2.1; open-iscsi PASSWD_IDENTICAL);
        * CHAP_N must equal ``username_in`` exactly;
        * CHAP_R must be H(our identifier ‖ secret_in ‖ our challenge), compared in
          constant time.
        """
        if not self._mutual:
            raise LocalProtocolError("verify() is for mutual CHAP; this initiator is one-way")
        self._expect(_State.RESPONDED, "verify")
        step = "the target's CHAP response"
        with self._step():
            _check_keys(keys, frozenset({"CHAP_N", "CHAP_R"}), step)
            name = _require(keys, "CHAP_N", step)
            received = _decode_peer_binary(keys, "CHAP_R", step)
            ours = self._ours
            if ours is None:  # pragma: no cover - guarded by the state check
                raise LocalProtocolError("no mutual challenge was sent")
            algorithm = ours.algorithm
            if len(received) != algorithm.digest_size:
                raise AuthenticationError(
                    f"target's CHAP_R is {len(received)} bytes; {algorithm.config_name} "
                    f"responses are {algorithm.digest_size}"
                )
            reflected = chap_response(algorithm, ours.identifier, self._secret, ours.challenge)
            if hmac.compare_digest(received, reflected):
                raise AuthenticationError(
                    "target answered with our own outgoing secret: identical secrets are "
                    "configured for both directions (RFC 7143 §9.2.1)"
                )
            if name != self._username_in:
                raise AuthenticationError(
                    f"target's CHAP_N {name[:MAX_NAME_LENGTH]!r} is not the configured "
                    f"username_in {self._username_in!r}"
                )
            expected = chap_response(algorithm, ours.identifier, self._secret_in, ours.challenge)
            if not hmac.compare_digest(received, expected):
                raise AuthenticationError("target's CHAP_R does not match secret_in")
            self._state = _State.DONE

    def _chosen_algorithm(self, text: str) -> ChapAlgorithm:
        offered = ",".join(str(int(a)) for a in self._algorithms)
        # RFC 7143 §6.2: a responder that supports none of the values answers "Reject".
        if text in ("Reject", "NotUnderstood", "Irrelevant"):
            raise AuthenticationError(f"target answered CHAP_A={text} to CHAP_A={offered}")
        try:
            value = _parse_number(text)
        except ValueError:
            raise RemoteProtocolError(
                f"malformed CHAP_A {text[:40]!r} in the target's CHAP challenge: RFC 7143 "
                "§12.1.3 wants one of the offered numbers"
            ) from None
        if value not in self._algorithms:
            raise AuthenticationError(
                f"target chose CHAP_A={value}, which we did not offer (CHAP_A={offered})"
            )
        return ChapAlgorithm(value)

    def _encode(self, value: bytes) -> str:
        return encode_binary(value, base64=self._base64)


# ------------------------------------------------------------------------------ target


class ChapTarget(_Machine):
    """The target side of RFC 7143 §12.1.3, for in-process fake targets and tests.

    *accounts* maps each initiator's CHAP_N to its secret.  *outgoing* is the target's
    own ``(name, secret)`` for mutual CHAP.  Without it, a mutual request fails.  The
    target checks the two RFC 7143 §9.2.1 rules a responder must check.  It rejects a
    reflected challenge, and a response equal to what its own outgoing secret gives.
    Unlike :class:`ChapInitiator`, it does not refuse identical secrets when it is built:
    a fake target may be misconfigured on purpose.
    """

    def __init__(
        self,
        accounts: Mapping[str, bytes | str],
        *,
        algorithms: Sequence[ChapAlgorithm] = DEFAULT_CHAP_ALGS,
        outgoing: tuple[str, bytes | str] | None = None,
        random_bytes: RandomBytes = secrets.token_bytes,
        encoding: BinaryEncoding = "hex",
    ) -> None:
        self._accounts = {
            _check_name(name, "account name"): _check_secret(secret, f"secret of {name!r}")
            for name, secret in accounts.items()
        }
        if not self._accounts:
            raise InvalidParameterError("a CHAP target needs at least one account")
        self._outgoing: tuple[str, bytes] | None = None
        if outgoing is not None:
            out_name, out_secret = outgoing
            self._outgoing = (
                _check_name(out_name, "outgoing name"),
                _check_secret(out_secret, "outgoing secret"),
            )
        self._algorithms = _check_algorithms(algorithms)
        self._base64 = _check_encoding(encoding)
        self._random_bytes = random_bytes
        self._state = _State.IDLE
        self._ours: _Challenge | None = None
        self._user: str | None = None

    def __repr__(self) -> str:  # never shows secrets
        return f"<ChapTarget {len(self._accounts)} account(s) {self._state.value}>"

    @property
    def algorithm(self) -> ChapAlgorithm | None:
        """The algorithm picked by :meth:`challenge`."""
        return None if self._ours is None else self._ours.algorithm

    @property
    def authenticated_user(self) -> str | None:
        """The initiator's CHAP_N, once :meth:`check` accepted it."""
        return self._user

    def challenge(self, keys: Mapping[str, str]) -> list[tuple[str, str]]:
        """Answer ``CHAP_A=<A1,A2,...>`` with ``CHAP_A=<A> CHAP_I=<I> CHAP_C=<C>``.

        A is the first offered algorithm we support (RFC 7143 §6.2.1 list negotiation).
        Values that are not numbers are skipped.  If none is supported, a real target
        answers CHAP_A=Reject and the login fails with "Authentication Failure".  Here
        that is an AuthenticationError.
        """
        self._expect(_State.IDLE, "challenge")
        step = "the initiator's CHAP_A offer"
        with self._step():
            _check_keys(keys, frozenset({"CHAP_A"}), step)
            offered = _require(keys, "CHAP_A", step)
            chosen: ChapAlgorithm | None = None
            for token in offered.split(","):
                try:
                    value = _parse_number(token)
                except ValueError:
                    continue
                if value in self._algorithms:
                    chosen = ChapAlgorithm(value)
                    break
            if chosen is None:
                raise AuthenticationError(
                    f"no supported algorithm in CHAP_A={offered[:80]} "
                    f"(supported: {format_chap_algs(self._algorithms)})"
                )
            identifier = _draw(self._random_bytes, 1)[0]
            challenge = _draw(self._random_bytes, chosen.digest_size)
            self._ours = _Challenge(chosen, identifier, challenge)
            self._state = _State.CHALLENGED
            return [
                ("CHAP_A", str(int(chosen))),
                ("CHAP_I", str(identifier)),
                ("CHAP_C", encode_binary(challenge, base64=self._base64)),
            ]

    def check(self, keys: Mapping[str, str]) -> list[tuple[str, str]]:
        """Verify ``CHAP_N``/``CHAP_R``.  If ``CHAP_I``/``CHAP_C`` follow, answer them.

        Returns ``[]`` for one-way CHAP, or ``[("CHAP_N", ...), ("CHAP_R", ...)]``.
        """
        self._expect(_State.CHALLENGED, "check")
        step = "the initiator's CHAP response"
        with self._step():
            _check_keys(keys, frozenset({"CHAP_N", "CHAP_R", "CHAP_I", "CHAP_C"}), step)
            name = _require(keys, "CHAP_N", step)
            received = _decode_peer_binary(keys, "CHAP_R", step)
            mutual = "CHAP_I" in keys or "CHAP_C" in keys
            if mutual and not ("CHAP_I" in keys and "CHAP_C" in keys):
                raise RemoteProtocolError(f"CHAP_I and CHAP_C must come together in {step}")
            ours = self._ours
            if ours is None:  # pragma: no cover - guarded by the state check
                raise LocalProtocolError("no challenge was sent")
            algorithm = ours.algorithm
            if self._outgoing is not None and hmac.compare_digest(
                received,
                chap_response(algorithm, ours.identifier, self._outgoing[1], ours.challenge),
            ):
                raise AuthenticationError(
                    "initiator answered with our own outgoing secret: identical secrets are "
                    "configured for both directions (RFC 7143 §9.2.1)"
                )
            secret = self._accounts.get(name)
            # Compute even for an unknown name, so timing does not tell names apart.
            expected = chap_response(algorithm, ours.identifier, secret or b"\0", ours.challenge)
            if not hmac.compare_digest(received, expected) or secret is None:
                raise AuthenticationError(f"CHAP authentication of {name[:80]!r} failed")
            self._user = name
            if not mutual:
                self._state = _State.DONE
                return []
            if self._outgoing is None:
                raise AuthenticationError(
                    "initiator asked for mutual CHAP, but this target has no outgoing secret"
                )
            their_identifier = _identifier_of(keys, step)
            their_challenge = _decode_peer_binary(keys, "CHAP_C", step)
            # RFC 7143 §9.2.1: "Responders MUST check for this condition [a reused challenge]
            # and close the iSCSI TCP connection if it occurs."
            if hmac.compare_digest(their_challenge, ours.challenge):
                raise AuthenticationError("initiator reflected our CHAP challenge back to us")
            out_name, out_secret = self._outgoing
            response = chap_response(algorithm, their_identifier, out_secret, their_challenge)
            self._state = _State.DONE
            return [
                ("CHAP_N", out_name),
                ("CHAP_R", encode_binary(response, base64=self._base64)),
            ]
