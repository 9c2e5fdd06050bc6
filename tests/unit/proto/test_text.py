"""The key=value codec, C-bit reassembly and splitting (RFC 7143 §6.1, §11.10.2, §11.12.2)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from iscsikit.errors import LocalProtocolError, RemoteProtocolError
from iscsikit.proto.text import (
    DEFAULT_MAX_TEXT,
    TextAssembler,
    decode_text,
    encode_text,
    is_valid_key,
    split_text,
)

PROTOCOL_ERROR = 0x04

# A Login Request text as open-iscsi sends it (usr/login.c order), with its exact bytes.
LOGIN_PAIRS = [
    ("InitiatorName", "iqn.2004-10.com.example:host1"),
    ("TargetName", "iqn.2024-01.test.fake:disk"),
    ("SessionType", "Normal"),
    ("HeaderDigest", "CRC32C,None"),
    ("MaxRecvDataSegmentLength", "262144"),
]
LOGIN_BYTES = (
    b"InitiatorName=iqn.2004-10.com.example:host1\x00"
    b"TargetName=iqn.2024-01.test.fake:disk\x00"
    b"SessionType=Normal\x00"
    b"HeaderDigest=CRC32C,None\x00"
    b"MaxRecvDataSegmentLength=262144\x00"
)


# -- encode ------------------------------------------------------------------------------------


def test_encode_golden_vector() -> None:
    assert encode_text(LOGIN_PAIRS) == LOGIN_BYTES


def test_encode_nothing() -> None:
    assert encode_text([]) == b""


def test_encode_utf8_alias_and_empty_value() -> None:
    data = encode_text([("InitiatorAlias", "Grüße"), ("SendTargets", "")])
    assert data == "InitiatorAlias=Grüße\0SendTargets=\0".encode()


@pytest.mark.parametrize(
    "key",
    [
        "A",
        "iSCSIProtocolLevel",
        "X#NodeArchitecture",
        "X-com.example.foo+bar@x_y",
        "CHAP_A",
        "K" * 63,
    ],
)
def test_valid_key_names(key: str) -> None:
    assert is_valid_key(key)
    assert decode_text(encode_text([(key, "1")])) == [(key, "1")]


@pytest.mark.parametrize(
    "key", ["", "1Key", "Key Name", "K" * 64, "Kéy", "X#", "A#b", "Key=1", "Key,1", "-Key", "Y:z"]
)
def test_encode_rejects_bad_key_names(key: str) -> None:
    assert not is_valid_key(key)
    with pytest.raises(LocalProtocolError):
        encode_text([(key, "1")])


def test_encode_rejects_nul_in_value() -> None:
    with pytest.raises(LocalProtocolError, match="NUL"):
        encode_text([("TargetAlias", "a\0b")])


def test_encode_value_length_limits() -> None:
    encode_text([("TargetAlias", "a" * 255)])
    with pytest.raises(LocalProtocolError, match="255"):
        encode_text([("TargetAlias", "a" * 256)])
    # CHAP_C may carry a 1024-byte binary value, hex encoded (RFC 7143 §12.1.3).
    encode_text([("CHAP_C", "0x" + "ab" * 1024)])
    with pytest.raises(LocalProtocolError):
        encode_text([("CHAP_C", "0x" + "ab" * 1024 + "c")])
    # The limit counts bytes, not characters.
    with pytest.raises(LocalProtocolError):
        encode_text([("TargetAlias", "é" * 128)])


# -- decode ------------------------------------------------------------------------------------


def test_decode_golden_vector() -> None:
    assert decode_text(LOGIN_BYTES) == LOGIN_PAIRS


def test_decode_keeps_order_and_duplicates() -> None:
    # Duplicates are the negotiator's business (TargetAddress may legitimately repeat).
    data = b"TargetAddress=10.0.0.1:3260,1\0TargetAddress=10.0.0.2,2\0A=1\0"
    assert decode_text(data) == [
        ("TargetAddress", "10.0.0.1:3260,1"),
        ("TargetAddress", "10.0.0.2,2"),
        ("A", "1"),
    ]


def test_decode_value_is_everything_after_the_first_equals() -> None:
    assert decode_text(b"X-com.example.expr=a=b==c\0") == [("X-com.example.expr", "a=b==c")]


def test_decode_empty_value() -> None:
    assert decode_text(b"SendTargets=\0") == [("SendTargets", "")]


@pytest.mark.parametrize("padding", [b"\0", b"\0\0", b"\0\0\0"])
def test_decode_tolerates_trailing_padding(padding: bytes) -> None:
    assert decode_text(b"A=1\0" + padding) == [("A", "1")]


@pytest.mark.parametrize("data", [b"", b"\0", b"\0\0\0\0"])
def test_decode_empty_text(data: bytes) -> None:
    assert decode_text(data) == []


def test_decode_utf8_value() -> None:
    assert decode_text("TargetAlias=Disk ☃\0".encode()) == [("TargetAlias", "Disk ☃")]


@pytest.mark.parametrize(
    ("data", "why"),
    [
        (b"A=1", "NUL delimiter"),
        (b"A=1\0B=2", "NUL delimiter"),
        (b"A=1\0\0B=2\0", "empty key=value"),
        (b"\0A=1\0", "empty key=value"),
        (b"A\0", "without '='"),
        (b"=1\0", "empty key"),
        (b"1A=1\0", "invalid key"),
        (b"Key Name=1\0", "invalid key"),
        ("Kéy=1\0".encode(), "invalid key"),
        (b"K\xff=1\0", "invalid key"),
        (b"A=\xff\xfe\0", "UTF-8"),
        (b"K" * 64 + b"=1\0", "longer than 63"),
        (b"TargetAlias=" + b"a" * 256 + b"\0", "more than its 255"),
        (b"X-com.example.unknown=" + b"a" * 256 + b"\0", "more than its 255"),
        (b"InitiatorName=" + b"i" * 224 + b"\0", "more than its 223"),
    ],
)
def test_decode_errors(data: bytes, why: str) -> None:
    with pytest.raises(RemoteProtocolError, match=why) as info:
        decode_text(data)
    assert info.value.reject_reason == PROTOCOL_ERROR


def test_decode_accepts_long_chap_values() -> None:
    value = "0x" + "00" * 1024
    assert decode_text(encode_text([("CHAP_R", value)])) == [("CHAP_R", value)]


_LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_LABEL = _LETTERS + "0123456789.+@_-"
_keys = st.builds(
    lambda prefix, first, rest: prefix + first + rest,
    st.sampled_from(["", "X-", "X#"]),
    st.sampled_from(_LETTERS),
    st.text(_LABEL, max_size=30),
)
_values = st.text(st.characters(codec="utf-8", exclude_characters="\0"), max_size=60)


@given(st.lists(st.tuples(_keys, _values), max_size=12))
def test_roundtrip(pairs: list[tuple[str, str]]) -> None:
    assert decode_text(encode_text(pairs)) == pairs


# -- C-bit reassembly -------------------------------------------------------------------------


def test_assembler_single_pdu() -> None:
    assembler = TextAssembler()
    assert assembler.feed(LOGIN_BYTES, cont=False) == LOGIN_PAIRS
    assert assembler.buffered == 0


def test_assembler_split_at_every_byte_boundary() -> None:
    assembler = TextAssembler()
    for cut in range(len(LOGIN_BYTES) + 1):
        assert assembler.feed(LOGIN_BYTES[:cut], cont=True) is None
        assert assembler.buffered == cut
        assert assembler.feed(LOGIN_BYTES[cut:], cont=False) == LOGIN_PAIRS
        assert assembler.buffered == 0


def test_assembler_three_parts_at_every_pair_of_boundaries() -> None:
    assembler = TextAssembler()
    text = LOGIN_BYTES[:60]  # keep the double loop small
    text = text[: text.rindex(b"\0") + 1]
    expected = decode_text(text)
    for first in range(len(text) + 1):
        for second in range(first, len(text) + 1):
            assert assembler.feed(text[:first], cont=True) is None
            assert assembler.feed(text[first:second], cont=True) is None
            assert assembler.feed(text[second:], cont=False) == expected


def test_assembler_refuses_more_than_max_bytes() -> None:
    assembler = TextAssembler(max_bytes=16)
    assert assembler.feed(b"A=123456\0", cont=True) is None
    with pytest.raises(RemoteProtocolError, match="16-byte limit") as info:
        assembler.feed(b"B=1234567\0", cont=True)
    assert info.value.reject_reason == PROTOCOL_ERROR
    assert assembler.buffered == 0  # forgotten: the next text starts afresh
    assert assembler.feed(b"C=1\0", cont=False) == [("C", "1")]


def test_assembler_accepts_exactly_max_bytes() -> None:
    text = b"A=" + b"1" * 13 + b"\0"
    assert len(text) == 16
    assert TextAssembler(max_bytes=16).feed(text, cont=False) == [("A", "1" * 13)]


def test_assembler_default_limit_is_64k() -> None:
    assembler = TextAssembler()
    assert assembler.max_bytes == DEFAULT_MAX_TEXT == 65536
    chunk = b"\0" * 8192
    for _ in range(8):
        assert assembler.feed(chunk, cont=True) is None
    with pytest.raises(RemoteProtocolError):
        assembler.feed(b"\0", cont=True)


def test_assembler_reset_and_bad_text() -> None:
    assembler = TextAssembler()
    assembler.feed(b"A=1", cont=True)
    assembler.reset()
    assert assembler.buffered == 0
    with pytest.raises(RemoteProtocolError):
        assembler.feed(b"A=1", cont=False)  # the last part must end with a NUL
    assert assembler.buffered == 0


def test_assembler_max_bytes_must_be_positive() -> None:
    with pytest.raises(LocalProtocolError):
        TextAssembler(max_bytes=0)


# -- splitting ---------------------------------------------------------------------------------


@pytest.mark.parametrize("size", [1, 7, 48, len(LOGIN_BYTES) - 1, len(LOGIN_BYTES), 8192])
def test_split_text(size: int) -> None:
    chunks = split_text(LOGIN_BYTES, size)
    assert b"".join(chunks) == LOGIN_BYTES
    assert all(0 < len(chunk) <= size for chunk in chunks)
    assert all(len(chunk) == size for chunk in chunks[:-1])


def test_split_empty_text_gives_one_empty_segment() -> None:
    assert split_text(b"", 8192) == [b""]


def test_split_rejects_nonpositive_segment() -> None:
    with pytest.raises(LocalProtocolError):
        split_text(LOGIN_BYTES, 0)


@given(st.lists(st.tuples(_keys, _values), max_size=8), st.integers(min_value=1, max_value=64))
def test_split_then_assemble(pairs: list[tuple[str, str]], size: int) -> None:
    chunks = split_text(encode_text(pairs), size)
    assembler = TextAssembler()
    results = [assembler.feed(chunk, cont=i < len(chunks) - 1) for i, chunk in enumerate(chunks)]
    assert results[:-1] == [None] * (len(chunks) - 1)
    assert results[-1] == pairs
