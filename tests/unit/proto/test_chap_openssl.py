"""CHAP responses checked against an independent implementation: ``openssl dgst``.

The other CHAP tests compare :mod:`iscsikit.proto.chap` with hashlib, the very library
it calls, and with the project's own target.  Here every response is recomputed by the
``openssl`` command line over the RFC 1994 §4.1 input, Identifier ‖ secret ‖ Challenge,
written to a pipe byte for byte: MD5 (CHAP_A=5), SHA1 (6), SHA-256 (7) and SHA3-256 (8,
RFC 7143 §12.1.3 and open-iscsi's ``node.session.auth.chap_algs``).  Fixed vectors also
carry the digests openssl 3.0 printed when they were written, so a wrong input order is
caught even where the tool is missing.
"""

from __future__ import annotations

import random
import shutil
import subprocess
from collections.abc import Iterator
from typing import Literal

import pytest

from iscsikit.errors import AuthenticationError
from iscsikit.proto.chap import (
    ChapAlgorithm,
    ChapInitiator,
    ChapTarget,
    chap_response,
    decode_binary,
    encode_binary,
)

OPENSSL = shutil.which("openssl")
needs_openssl = pytest.mark.skipif(OPENSSL is None, reason="the openssl command is not installed")

#: The ``openssl dgst`` option for each CHAP_A value.
OPENSSL_DIGEST = {
    ChapAlgorithm.MD5: "-md5",
    ChapAlgorithm.SHA1: "-sha1",
    ChapAlgorithm.SHA256: "-sha256",
    ChapAlgorithm.SHA3_256: "-sha3-256",
}
ALGORITHMS = list(OPENSSL_DIGEST)
IDS = [a.config_name for a in ALGORITHMS]

#: (identifier, secret, challenge) -> digest per algorithm, printed by OpenSSL 3.0.19:
#: ``python3 -c '...' | openssl dgst -sha3-256 -binary | xxd -p -c 64``.
FIXED = [
    (
        0x2A,
        b"iscsikit-secret1",
        bytes(range(16)),
        {
            ChapAlgorithm.MD5: "47f76a66693e2f1be40f3e6fc98ffcdb",
            ChapAlgorithm.SHA1: "f1b11495e7ca8601c3f2fef8fbd4725bc9e3f1af",
            ChapAlgorithm.SHA256: (
                "ddeac9ae275c62c8f257a3eb24c8d616905ee77ba53736150f1d3a51860f3a3c"
            ),
            ChapAlgorithm.SHA3_256: (
                "560662f10ca2c0958f984332c64259ecfe21bb2f91322e1e9fdd85f4cfed7b56"
            ),
        },
    ),
    (
        0xFF,
        bytes(range(256))[::-1],
        bytes(32),
        {
            ChapAlgorithm.MD5: "9e05898b709fdb9c83953b8fd2ca3649",
            ChapAlgorithm.SHA1: "f8448b18c61c2d7f3a5e04bb4c8f39899546ad5f",
            ChapAlgorithm.SHA256: (
                "e5ed2ffa3b69f3b384e7b60153fbb3417614244e4d964c54cfb12323ba706d4e"
            ),
            ChapAlgorithm.SHA3_256: (
                "0cf0c7c30c741818ea31abcb20601b736b47e60c9b43a4181173734db32399ec"
            ),
        },
    ),
]


def openssl(algorithm: ChapAlgorithm, identifier: int, secret: bytes, challenge: bytes) -> bytes:
    """H(identifier ‖ secret ‖ challenge) as ``openssl dgst -binary`` computes it."""
    assert OPENSSL is not None
    done = subprocess.run(
        [OPENSSL, "dgst", OPENSSL_DIGEST[algorithm], "-binary"],
        input=bytes([identifier]) + secret + challenge,
        capture_output=True,
        check=True,
        timeout=30,
    )
    assert len(done.stdout) == algorithm.digest_size, done
    return done.stdout


def random_vectors(seed: int, n: int) -> list[tuple[int, bytes, bytes]]:
    """``n`` reproducible (identifier, secret, challenge) triples, edges included."""
    rng = random.Random(seed)
    out = [(0, b"\0", b"\0"), (255, bytes([255]) * 255, bytes([255]) * 1024)]
    while len(out) < n:
        out.append(
            (
                rng.randrange(256),
                rng.randbytes(rng.randint(1, 255)),
                rng.randbytes(rng.randint(1, 1024)),
            )
        )
    return out


@pytest.mark.parametrize("algorithm", ALGORITHMS, ids=IDS)
@pytest.mark.parametrize("case", range(len(FIXED)))
def test_fixed_vectors_match_the_digests_openssl_printed(
    algorithm: ChapAlgorithm, case: int
) -> None:
    identifier, secret, challenge, expected = FIXED[case]
    assert chap_response(algorithm, identifier, secret, challenge).hex() == expected[algorithm]


@needs_openssl
@pytest.mark.parametrize("algorithm", ALGORITHMS, ids=IDS)
@pytest.mark.parametrize("case", range(len(FIXED)))
def test_fixed_vectors_match_openssl_now(algorithm: ChapAlgorithm, case: int) -> None:
    identifier, secret, challenge, expected = FIXED[case]
    assert openssl(algorithm, identifier, secret, challenge).hex() == expected[algorithm]


@needs_openssl
@pytest.mark.parametrize("algorithm", ALGORITHMS, ids=IDS)
def test_random_vectors_match_openssl(algorithm: ChapAlgorithm) -> None:
    for identifier, secret, challenge in random_vectors(int(algorithm), 12):
        ours = chap_response(algorithm, identifier, secret, challenge)
        assert ours == openssl(algorithm, identifier, secret, challenge), (
            identifier,
            secret.hex(),
            challenge.hex(),
        )


@needs_openssl
@pytest.mark.parametrize("encoding", ["hex", "base64"])
@pytest.mark.parametrize("algorithm", ALGORITHMS, ids=IDS)
def test_initiator_answers_what_openssl_computes(
    algorithm: ChapAlgorithm, encoding: Literal["hex", "base64"]
) -> None:
    """The CHAP_R the initiator puts on the wire, decoded, is openssl's digest."""
    rng = random.Random(100 + int(algorithm))
    secret = rng.randbytes(16)
    challenge = rng.randbytes(algorithm.digest_size)
    identifier = rng.randrange(256)
    initiator = ChapInitiator(
        "iqn.2024-01.test:openssl", secret, algorithms=ALGORITHMS, encoding=encoding
    )
    initiator.offer()
    keys = {
        "CHAP_A": str(int(algorithm)),
        "CHAP_I": str(identifier),
        "CHAP_C": encode_binary(challenge, base64=encoding == "base64"),
    }
    out = dict(initiator.respond(keys))
    assert out["CHAP_N"] == "iqn.2024-01.test:openssl"
    assert decode_binary(out["CHAP_R"]) == openssl(algorithm, identifier, secret, challenge)


@needs_openssl
@pytest.mark.parametrize("algorithm", ALGORITHMS, ids=IDS)
def test_mutual_verify_accepts_openssls_answer_and_refuses_one_bit_off(
    algorithm: ChapAlgorithm,
) -> None:
    """The target's mutual answer, computed by openssl from secret_in, is accepted; the
    same answer with one bit flipped is refused."""
    secret_in = b"target-secret-0123"

    def run(flip: bool) -> None:
        draws = iter([bytes([0x11]), bytes(range(algorithm.digest_size))])
        initiator = ChapInitiator(
            "init",
            b"initiator-secret-0",
            username_in="tgt",
            secret_in=secret_in,
            algorithms=[algorithm],
            random_bytes=lambda n: next(draws),
        )
        initiator.offer()
        ours = dict(
            initiator.respond(
                {"CHAP_A": str(int(algorithm)), "CHAP_I": "7", "CHAP_C": "0x" + "5a" * 16}
            )
        )
        their_id = int(ours["CHAP_I"])
        their_challenge = decode_binary(ours["CHAP_C"])
        assert (their_id, their_challenge) == (0x11, bytes(range(algorithm.digest_size)))
        answer = bytearray(openssl(algorithm, their_id, secret_in, their_challenge))
        if flip:
            answer[-1] ^= 1
        initiator.verify({"CHAP_N": "tgt", "CHAP_R": encode_binary(bytes(answer))})

    run(flip=False)
    with pytest.raises(AuthenticationError, match="does not match secret_in"):
        run(flip=True)


@needs_openssl
@pytest.mark.parametrize("algorithm", ALGORITHMS, ids=IDS)
def test_target_accepts_openssls_response_and_refuses_one_bit_off(
    algorithm: ChapAlgorithm,
) -> None:
    secret = b"account-secret-42"
    for flip in (False, True):
        draws = iter([bytes([0xC3]), bytes([0xA5]) * algorithm.digest_size])

        def random_bytes(n: int, d: Iterator[bytes] = draws) -> bytes:
            return next(d)

        target = ChapTarget({"init": secret}, algorithms=[algorithm], random_bytes=random_bytes)
        step = dict(target.challenge({"CHAP_A": str(int(algorithm))}))
        identifier, challenge = int(step["CHAP_I"]), decode_binary(step["CHAP_C"])
        answer = bytearray(openssl(algorithm, identifier, secret, challenge))
        if flip:
            answer[0] ^= 0x80
            with pytest.raises(AuthenticationError, match="authentication of 'init' failed"):
                target.check({"CHAP_N": "init", "CHAP_R": encode_binary(bytes(answer))})
        else:
            assert target.check({"CHAP_N": "init", "CHAP_R": encode_binary(bytes(answer))}) == []
            assert target.authenticated_user == "init"
