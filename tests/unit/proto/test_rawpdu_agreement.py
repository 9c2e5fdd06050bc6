"""The codec and the test targets' independent builder agree, byte for byte.

:mod:`iscsikit.testing.rawpdu` is written from RFC 7143 without the codec, so the
hostile and scripted targets do not share its bugs.  Two independent implementations
that agree on every field drawn from its full range are strong evidence that both read
the RFC alike; where they disagree, one of them is wrong and this test says which PDU.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
from conftest import PduStrategies
from hypothesis import given, settings
from hypothesis import strategies as st

from iscsikit.proto import pdu as codec
from iscsikit.proto import text as codec_text
from iscsikit.testing import rawpdu
from iscsikit.testing.hostile import pdu_length as hostile_pdu_length

#: Target PDUs rawpdu builds, with the codec's class of the same name.
BUILT = [
    (codec.DataIn, rawpdu.DataIn),
    (codec.ScsiResponse, rawpdu.ScsiResponse),
    (codec.R2T, rawpdu.R2T),
    (codec.NopIn, rawpdu.NopIn),
    (codec.TaskMgmtResponse, rawpdu.TaskMgmtResponse),
    (codec.AsyncMessage, rawpdu.AsyncMessage),
    (codec.LogoutResponse, rawpdu.LogoutResponse),
    (codec.LoginResponse, rawpdu.LoginResponse),
    (codec.TextResponse, rawpdu.TextResponse),
]
#: Initiator PDUs rawpdu parses.
PARSED = [
    (codec.LoginRequest, rawpdu.LoginRequest),
    (codec.ScsiCommand, rawpdu.ScsiCommand),
    (codec.DataOut, rawpdu.DataOut),
    (codec.NopOut, rawpdu.NopOut),
    (codec.TaskMgmtRequest, rawpdu.TaskMgmtRequest),
    (codec.LogoutRequest, rawpdu.LogoutRequest),
    (codec.TextRequest, rawpdu.TextRequest),
    (codec.SnackRequest, rawpdu.SnackRequest),
]
DIGESTS = st.tuples(st.booleans(), st.booleans())


def _fields(pdu: object) -> dict[str, Any]:
    return {f.name: getattr(pdu, f.name) for f in dataclasses.fields(pdu)}  # type: ignore[arg-type]


@pytest.mark.parametrize(("ours", "theirs"), BUILT, ids=[c.__name__ for c, _ in BUILT])
@settings(max_examples=150, deadline=None)
@given(data=st.data(), digests=DIGESTS)
def test_target_pdus_built_alike(
    pdu_strategies: type[PduStrategies],
    ours: type[codec.Pdu],
    theirs: type[rawpdu.TargetPdu],
    data: st.DataObject,
    digests: tuple[bool, bool],
) -> None:
    pdu = data.draw(pdu_strategies.of(ours))
    hd, dd = digests
    expected = codec.encode_pdu(pdu, header_digest=hd, data_digest=dd)
    kwargs = _fields(pdu)
    if "data" not in {f.name for f in dataclasses.fields(theirs)}:
        assert kwargs.pop("data") == b""  # a PDU type that carries no data segment
    built = theirs(**kwargs).encode(hd, dd)
    assert built == expected, pdu
    assert hostile_pdu_length(built, header_digest=hd, data_digest=dd) == len(built)


@pytest.mark.parametrize(("ours", "theirs"), PARSED, ids=[c.__name__ for c, _ in PARSED])
@settings(max_examples=150, deadline=None)
@given(data=st.data(), digests=DIGESTS)
def test_initiator_pdus_parsed_alike(
    pdu_strategies: type[PduStrategies],
    ours: type[codec.Pdu],
    theirs: type[rawpdu.InitiatorPdu],
    data: st.DataObject,
    digests: tuple[bool, bool],
) -> None:
    pdu = data.draw(pdu_strategies.of(ours))
    hd, dd = digests
    wire = codec.encode_pdu(pdu, header_digest=hd, data_digest=dd)
    parsed = rawpdu.parse(wire, header_digest=hd, data_digest=dd)
    assert type(parsed) is theirs
    assert _fields(parsed) == _fields(pdu)


def test_parse_checks_both_digests() -> None:
    wire = bytearray(
        codec.encode_pdu(codec.NopOut(itt=5, data=b"ping!"), header_digest=True, data_digest=True)
    )
    assert rawpdu.parse(bytes(wire), header_digest=True, data_digest=True).data == b"ping!"
    for where, what in ((10, "header"), (len(wire) - 1, "data")):
        bad = bytearray(wire)
        bad[where] ^= 0x01
        with pytest.raises(rawpdu.DigestMismatch, match=what):
            rawpdu.parse(bytes(bad), header_digest=True, data_digest=True)


def test_rfc_7143_appendix_b4_crc32c_vectors() -> None:
    # 32 bytes of zeros, of 0xff, ascending and descending (RFC 7143 Appendix B.4).
    assert rawpdu.crc32c(bytes(32)) == 0x8A9136AA
    assert rawpdu.crc32c(b"\xff" * 32) == 0x62A8AB43
    assert rawpdu.crc32c(bytes(range(32))) == 0x46DD794E
    assert rawpdu.crc32c(bytes(range(31, -1, -1))) == 0x113FDB5C
    assert rawpdu.digest(bytes(32)) == bytes.fromhex("aa36918a")


#: Pairs both text codecs accept: RFC 7143 key names, values without a NUL.
PAIRS = st.lists(
    st.tuples(
        st.from_regex(r"[A-Za-z][A-Za-z0-9.\-+@_]{0,20}", fullmatch=True),
        st.text(st.characters(blacklist_characters="\0", blacklist_categories=["Cs"]), max_size=40),
    ),
    max_size=6,
)


@settings(max_examples=300, deadline=None)
@given(pairs=PAIRS)
def test_text_keys_encoded_and_decoded_alike(pairs: list[tuple[str, str]]) -> None:
    wire = rawpdu.encode_text(pairs)
    assert wire == codec_text.encode_text(pairs)
    assert rawpdu.decode_text(wire) == codec_text.decode_text(wire) == pairs


@pytest.mark.parametrize("bad", [b"A=1", b"no-equals\0", b"=empty-key\0", b"A=1\0\0B=2\0"])
def test_decode_text_refuses_what_is_not_key_value_text(bad: bytes) -> None:
    with pytest.raises(ValueError):
        rawpdu.decode_text(bad)
