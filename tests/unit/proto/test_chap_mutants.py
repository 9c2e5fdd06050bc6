"""CHAP boundaries that mutation testing found untested (docs/mutation.md).

Each test pins one edge of :mod:`iscsikit.proto.chap` that a mutant of the code moved
without any other test noticing: the longest numbers CHAP_I may be written with, base64
padding, and the 0x-hex length limit.
"""

from __future__ import annotations

import pytest

from iscsikit.errors import RemoteProtocolError
from iscsikit.proto.chap import ChapTarget, decode_binary, parse_chap_identifier


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("0" * 19 + "7", 7),  # 20 characters: the longest decimal accepted
        ("0x" + "0" * 15 + "a", 10),  # 18 characters: the longest hex accepted
        ("255", 255),
        ("0xff", 255),
    ],
)
def test_chap_identifier_longest_spellings(text: str, value: int) -> None:
    assert parse_chap_identifier(text) == value


@pytest.mark.parametrize("text", ["0" * 20 + "7", "0x" + "0" * 16 + "a", "256", "0x100"])
def test_chap_identifier_too_long_or_too_large(text: str) -> None:
    with pytest.raises(ValueError):
        parse_chap_identifier(text)


@pytest.mark.parametrize("text", ["0bAAAA=", "0bAAAA==", "0bAAA==", "0bAA="])
def test_base64_with_wrong_padding_is_refused(text: str) -> None:
    with pytest.raises(ValueError, match="wrong padding"):
        decode_binary(text)


@pytest.mark.parametrize(
    ("text", "value"),
    [("0bAAAA", bytes(3)), ("0bAA==", bytes(1)), ("0bAAA=", bytes(2)), ("0bAAA", bytes(2))],
)
def test_base64_with_right_or_no_padding(text: str, value: bytes) -> None:
    assert decode_binary(text) == value


def test_target_refuses_other_chap_keys_in_the_offer() -> None:
    """The initiator's first step carries CHAP_A only (RFC 7143 §12.1.3)."""
    target = ChapTarget({"init": b"secret-secret"})
    with pytest.raises(RemoteProtocolError, match="unexpected CHAP_R in the initiator's"):
        target.challenge({"CHAP_A": "5", "CHAP_R": "0x00"})


@pytest.mark.parametrize("text", ["0bA", "0bAAAAA", "0bAAAAA=="])
def test_base64_of_an_impossible_length_is_refused(text: str) -> None:
    """n % 4 == 1 characters cannot encode whole bytes: refused as such (not left to
    the base64 decoder's own error)."""
    with pytest.raises(ValueError, match="impossible length"):
        decode_binary(text)
