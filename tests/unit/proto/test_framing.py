"""Incremental framing (iscsikit.proto.framing.PduReader)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Literal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from iscsikit.errors import DigestError, LocalProtocolError, RemoteProtocolError
from iscsikit.proto.constants import BHS_LEN, MAX_DATA_SEGMENT_LENGTH, RejectReason, Stage
from iscsikit.proto.framing import PduReader
from iscsikit.proto.pdu import (
    R2T,
    DataIn,
    DataOut,
    LoginRequest,
    LoginResponse,
    LogoutResponse,
    NopIn,
    NopOut,
    Pdu,
    ScsiResponse,
    TaskMgmtResponse,
    TextResponse,
    encode_pdu,
    parse_bhs_lengths,
)

if TYPE_CHECKING:
    from conftest import PduStrategies, Vector

Peer = Literal["target", "initiator"]
FAST = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def feed(reader: PduReader, stream: bytes, sizes: Iterable[int]) -> Iterator[Pdu]:
    """Feed *stream* in chunks of the (cycled) *sizes*, yielding PDUs as they complete."""
    sizes = list(sizes)
    pos = i = 0
    while pos < len(stream):
        size = sizes[i % len(sizes)]
        i += 1
        reader.receive_data(stream[pos : pos + size])
        pos += size
        while (pdu := reader.next_pdu()) is not None:
            yield pdu
        assert reader.bytes_needed > 0


# --- round trips through the reader -----------------------------------------------


_CHUNKS = st.one_of(
    st.just([1]),
    st.lists(st.integers(1, 7), min_size=1, max_size=5),
    st.lists(st.integers(1, 3000), min_size=1, max_size=5),
)


@given(
    data=st.data(),
    peer=st.sampled_from(["target", "initiator"]),
    header_digest=st.booleans(),
    data_digest=st.booleans(),
    sizes=_CHUNKS,
)
@FAST
def test_chunked_stream_yields_the_same_pdus(
    pdu_strategies: type[PduStrategies],
    data: st.DataObject,
    peer: Peer,
    header_digest: bool,
    data_digest: bool,
    sizes: list[int],
) -> None:
    strategy = pdu_strategies.any_target if peer == "target" else pdu_strategies.any_initiator
    pdus = data.draw(st.lists(strategy, min_size=1, max_size=6))
    stream = b"".join(
        encode_pdu(p, header_digest=header_digest, data_digest=data_digest) for p in pdus
    )
    reader = PduReader(
        peer=peer,
        header_digest=header_digest,
        data_digest=data_digest,
        max_data_segment_length=MAX_DATA_SEGMENT_LENGTH,
    )
    assert list(feed(reader, stream, sizes)) == pdus
    assert reader.buffered == 0
    assert reader.bytes_needed == BHS_LEN


@given(data=st.data(), header_digest=st.booleans(), data_digest=st.booleans())
@FAST
def test_reading_exactly_bytes_needed_never_overreads(
    pdu_strategies: type[PduStrategies], data: st.DataObject, header_digest: bool, data_digest: bool
) -> None:
    pdus = data.draw(st.lists(pdu_strategies.any_target, min_size=1, max_size=5))
    encoded = [encode_pdu(p, header_digest=header_digest, data_digest=data_digest) for p in pdus]
    stream = b"".join(encoded)
    reader = PduReader(header_digest=header_digest, data_digest=data_digest)
    reader.max_data_segment_length = MAX_DATA_SEGMENT_LENGTH
    out: list[Pdu] = []
    pos = 0
    while pos < len(stream):
        need = reader.bytes_needed
        assert need > 0
        reader.receive_data(stream[pos : pos + need])  # what recv_into(need) would do
        pos += need
        # Never more than the PDU being read is buffered.
        assert reader.buffered <= len(encoded[len(out)])
        if (pdu := reader.next_pdu()) is not None:
            out.append(pdu)
            assert reader.buffered == 0
    assert out == pdus


def test_settings_change_between_pdus_already_buffered(all_vectors: list[Vector]) -> None:
    # A real Login Response (no digests) and then real Full Feature Phase PDUs with
    # header digests, all arriving in one chunk: the reader must not have looked at
    # the second PDU under the first one's settings.
    by_name = {v.name: v for v in all_vectors}
    names = [
        "cap-08-login-response-normal",
        "cap-15-r2t-hd",
        "cap-18-data-in-read10-hd",
        "cap-20-nop-in-ping-reply-hd",
        "cap-22-task-mgmt-response-hd",
        "cap-24-logout-response-hd",
    ]
    reader = PduReader(peer="target")
    reader.receive_data(b"".join(by_name[n].raw for n in names))
    login = reader.next_pdu()
    assert isinstance(login, LoginResponse)
    assert reader.bytes_needed == 0  # the next header is complete (and unchecked yet)
    reader.header_digest = True
    got = []
    while (pdu := reader.next_pdu()) is not None:
        got.append(pdu)
    assert [type(p) for p in got] == [R2T, DataIn, NopIn, TaskMgmtResponse, LogoutResponse]
    assert got == [by_name[n].expected() for n in names[1:]]


def test_many_small_pdus_in_one_chunk_then_nothing_left() -> None:
    one = encode_pdu(NopIn(data=b"ping"))
    reader = PduReader()
    reader.receive_data(one * 5000 + one[:10])
    count = 0
    while reader.next_pdu() is not None:
        count += 1
    assert count == 5000
    assert reader.buffered == 10
    reader.receive_data(memoryview(one)[10:])
    assert reader.next_pdu() == NopIn(data=b"ping")
    assert reader.buffered == 0


def test_large_stream_in_large_chunks() -> None:
    pdu = DataIn(datasn=1, data=bytes(range(256)) * 200)  # 51200 bytes of data
    stream = encode_pdu(pdu, header_digest=True, data_digest=True) * 40
    reader = PduReader(header_digest=True, data_digest=True, max_data_segment_length=65536)
    assert list(feed(reader, stream, [100_000, 7, 65_536])) == [pdu] * 40


# --- bytes_needed / buffered ------------------------------------------------------


def test_bytes_needed_walks_through_a_pdu() -> None:
    raw = encode_pdu(TextResponse(data=b"TargetName=x\0"), header_digest=True, data_digest=True)
    reader = PduReader(header_digest=True, data_digest=True)
    assert (reader.bytes_needed, reader.buffered) == (48, 0)
    reader.receive_data(raw[:10])
    assert (reader.bytes_needed, reader.buffered) == (38, 10)
    reader.receive_data(raw[10:48])
    assert reader.bytes_needed == 4  # the header digest comes before anything is trusted
    reader.receive_data(raw[48:52])
    assert reader.bytes_needed == len(raw) - 52  # 13 bytes + 3 padding + data digest
    reader.receive_data(raw[52:-1])
    assert reader.bytes_needed == 1
    assert reader.next_pdu() is None
    reader.receive_data(raw[-1:])
    assert reader.bytes_needed == 0
    assert reader.next_pdu() == TextResponse(data=b"TargetName=x\0")


def test_truncated_pdus_never_yield() -> None:
    for pdu in (NopIn(), NopIn(data=b"abc"), ScsiResponse(data=bytes(18)), R2T()):
        for hd in (False, True):
            raw = encode_pdu(pdu, header_digest=hd, data_digest=True)
            for cut in range(len(raw)):
                reader = PduReader(header_digest=hd, data_digest=True)
                reader.receive_data(raw[:cut])
                assert reader.next_pdu() is None
                assert reader.bytes_needed > 0


@given(st.integers(0, 47))
def test_partial_bhs(n: int) -> None:
    reader = PduReader()
    reader.receive_data(bytes(n))
    assert reader.next_pdu() is None
    assert reader.bytes_needed == BHS_LEN - n


# --- refusals ---------------------------------------------------------------------


def _error(reader: PduReader, data: bytes) -> RemoteProtocolError:
    reader.receive_data(data)
    with pytest.raises(RemoteProtocolError) as exc:
        reader.next_pdu()
    return exc.value


@pytest.mark.parametrize(
    ("peer", "pdu"),
    [
        ("target", LoginRequest()),
        ("target", NopOut()),
        ("target", DataOut(data=b"x")),
        ("initiator", LoginResponse()),
        ("initiator", NopIn()),
        ("initiator", R2T()),
    ],
)
def test_pdu_the_peer_never_sends_is_a_protocol_error(peer: Peer, pdu: Pdu) -> None:
    err = _error(PduReader(peer=peer), encode_pdu(pdu))
    assert err.reject_reason == RejectReason.PROTOCOL_ERROR


def test_unknown_opcode() -> None:
    raw = bytearray(encode_pdu(NopIn()))
    raw[0] = 0x3C
    assert _error(PduReader(), bytes(raw)).reject_reason == RejectReason.COMMAND_NOT_SUPPORTED


def test_hostile_length_is_refused_from_the_bhs_alone() -> None:
    bhs = encode_pdu(DataIn())
    bhs = bhs[:5] + b"\xff\xff\xff" + bhs[8:]  # DataSegmentLength 16 MiB - 1
    reader = PduReader(max_data_segment_length=8192)
    err = _error(reader, bhs)
    assert err.reject_reason == RejectReason.PROTOCOL_ERROR
    assert reader.buffered == BHS_LEN  # nothing of the payload was waited for


def test_hostile_length_with_header_digest_is_refused_once_the_digest_checks() -> None:
    pdu = DataIn(data=bytes(9000))
    raw = encode_pdu(pdu, header_digest=True)
    reader = PduReader(header_digest=True)
    reader.receive_data(raw[:48])
    assert reader.next_pdu() is None
    err = _error(reader, raw[48:52])
    assert not isinstance(err, DigestError)
    assert "9000" in str(err)


@pytest.mark.parametrize(("dsl", "ok"), [(8192, True), (8193, False)])
def test_max_data_segment_length_boundary(dsl: int, ok: bool) -> None:
    reader = PduReader()
    reader.receive_data(encode_pdu(DataIn(data=bytes(dsl))))
    if ok:
        assert reader.next_pdu() == DataIn(data=bytes(dsl))
    else:
        with pytest.raises(RemoteProtocolError):
            reader.next_pdu()


def test_bad_header_digest() -> None:
    raw = bytearray(encode_pdu(NopIn(data=b"abcd"), header_digest=True))
    raw[50] ^= 0x10
    reader = PduReader(header_digest=True)
    reader.receive_data(bytes(raw[:52]))  # the data has not arrived: checked already
    with pytest.raises(DigestError) as exc:
        reader.next_pdu()
    assert exc.value.reject_reason is None


def test_bad_data_digest() -> None:
    raw = bytearray(encode_pdu(NopIn(data=b"abcd"), header_digest=True, data_digest=True))
    raw[53] ^= 0x01
    err = _error(PduReader(header_digest=True, data_digest=True), bytes(raw))
    assert isinstance(err, DigestError)
    assert err.reject_reason == RejectReason.DATA_DIGEST_ERROR


def test_reader_is_poisoned_after_an_error() -> None:
    good = encode_pdu(NopIn())
    bad = bytearray(encode_pdu(NopIn()))
    bad[0] = 0x03  # a Login Request, from a target
    reader = PduReader()
    reader.receive_data(good + bytes(bad) + good)
    assert reader.next_pdu() == NopIn()
    with pytest.raises(RemoteProtocolError) as first:
        reader.next_pdu()
    for call in (
        reader.next_pdu,
        lambda: reader.receive_data(good),
        lambda: reader.bytes_needed,
        lambda: reader.receive_data(b""),
    ):
        with pytest.raises(RemoteProtocolError) as again:
            call()
        assert again.value is first.value


def test_poisoned_by_bytes_needed_too() -> None:
    bad = bytearray(encode_pdu(NopIn()))
    bad[0] = 0x3E
    reader = PduReader()
    reader.receive_data(bytes(bad))
    with pytest.raises(RemoteProtocolError) as first:
        _ = reader.bytes_needed
    with pytest.raises(RemoteProtocolError) as again:
        reader.next_pdu()
    assert again.value is first.value


def test_malformed_pdu_error_poisons() -> None:
    raw = bytearray(encode_pdu(ScsiResponse()))
    raw[1] = 0x86  # O and U together
    reader = PduReader()
    err = _error(reader, bytes(raw))
    assert err.reject_reason == RejectReason.PROTOCOL_ERROR
    with pytest.raises(RemoteProtocolError):
        reader.next_pdu()


# --- fuzz: nothing but RemoteProtocolError ----------------------------------------


def _drain(reader: PduReader, stream: bytes, sizes: list[int]) -> None:
    try:
        for _ in feed(reader, stream, sizes):
            pass
    except RemoteProtocolError:
        return


@given(
    stream=st.binary(min_size=1, max_size=3000),
    sizes=_CHUNKS,
    peer=st.sampled_from(["target", "initiator"]),
    header_digest=st.booleans(),
    data_digest=st.booleans(),
)
@FAST
def test_fuzz_random_bytes(
    stream: bytes, sizes: list[int], peer: Peer, header_digest: bool, data_digest: bool
) -> None:
    reader = PduReader(peer=peer, header_digest=header_digest, data_digest=data_digest)
    _drain(reader, stream, sizes)


@given(data=st.data(), header_digest=st.booleans(), sizes=_CHUNKS)
@FAST
def test_fuzz_mutated_valid_streams(
    pdu_strategies: type[PduStrategies], data: st.DataObject, header_digest: bool, sizes: list[int]
) -> None:
    # Mostly valid input reaches the deeper decoding paths that random bytes do not.
    pdus = data.draw(st.lists(pdu_strategies.any_initiator, min_size=1, max_size=4))
    stream = bytearray(b"".join(encode_pdu(p, header_digest=header_digest) for p in pdus))
    for _ in range(data.draw(st.integers(1, 4))):
        pos = data.draw(st.integers(0, len(stream) - 1))
        stream[pos] = data.draw(st.integers(0, 255))
    reader = PduReader(
        peer="initiator",
        header_digest=header_digest,
        max_data_segment_length=MAX_DATA_SEGMENT_LENGTH,
    )
    _drain(reader, bytes(stream), sizes)


# --- construction -----------------------------------------------------------------


def test_defaults() -> None:
    reader = PduReader()
    assert (reader.peer, reader.header_digest, reader.data_digest) == ("target", False, False)
    assert reader.max_data_segment_length == 8192


@pytest.mark.parametrize(
    "kwargs",
    [
        {"peer": "both"},
        {"max_data_segment_length": 0},
        {"max_data_segment_length": MAX_DATA_SEGMENT_LENGTH + 1},
    ],
)
def test_bad_arguments(kwargs: dict[str, object]) -> None:
    with pytest.raises(LocalProtocolError):
        PduReader(**kwargs)  # type: ignore[arg-type]


def test_bad_setting() -> None:
    reader = PduReader()
    with pytest.raises(LocalProtocolError):
        reader.max_data_segment_length = -5
    assert reader.max_data_segment_length == 8192


def test_login_response_example_from_a_stream() -> None:
    rsp = LoginResponse(
        transit=True,
        csg=Stage.OPERATIONAL,
        nsg=Stage.FULL_FEATURE,
        isid=b"\x40\x00\x01\x37\x00\x00",
        tsih=5,
        itt=1,
        statsn=1,
        expcmdsn=2,
        maxcmdsn=33,
        data=b"HeaderDigest=None\x00",
    )
    raw = encode_pdu(rsp)
    assert parse_bhs_lengths(raw) == (0x23, 0, 18)
    reader = PduReader()
    assert list(feed(reader, raw, [5])) == [rsp]
