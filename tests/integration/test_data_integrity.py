"""Data integrity against a real tgtd: what iscsikit writes lands byte-exact in the
target's backing file, and what it reads is what the file holds.

Each target is configured for one way of moving write data (RFC 7143 §13.10-13.14):
immediate data, R2T only, unsolicited Data-Out, R2T bursts smaller than the I/O and
Data-Out PDUs smaller than MaxRecvDataSegmentLength, header and data digests.  Sizes
and offsets are random (seeded: a failure prints its seed), unaligned included.
"""

from __future__ import annotations

import asyncio
import os
import random
from collections.abc import Iterator
from pathlib import Path

import pytest

import iscsikit
from iscsikit.errors import InvalidParameterError
from iscsikit.lun.url import parse_iscsi_url
from iscsikit.testing.tgtd import Tgtd

pytestmark = pytest.mark.integration

LUN_SIZE = 32 << 20
SEED = int(os.environ.get("ISCSIKIT_SEED", random.randrange(1 << 32)))

# name -> (tgt target parameters, login keys iscsikit offers)
CONFIGS: dict[str, tuple[dict[str, str], dict[str, str]]] = {
    "immediate": ({}, {}),
    "r2t-only": ({}, {"ImmediateData": "No"}),
    "unsolicited": (
        {"InitialR2T": "No", "FirstBurstLength": "65536"},
        {"InitialR2T": "No", "FirstBurstLength": "65536"},
    ),
    "small-bursts": (
        {"MaxRecvDataSegmentLength": "4096", "MaxBurstLength": "16384", "FirstBurstLength": "8192"},
        {"MaxRecvDataSegmentLength": "4096"},
    ),
    "digests": (
        {"HeaderDigest": "CRC32C", "DataDigest": "CRC32C", "MaxRecvDataSegmentLength": "8192"},
        {"header_digest": "CRC32C", "data_digest": "CRC32C"},
    ),
}


@pytest.fixture(scope="module")
def target(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Tgtd]:
    with Tgtd(tmp_path_factory.mktemp("integrity")) as tgtd:
        for tid, (_, (params, _)) in enumerate(CONFIGS.items(), start=1):
            tgtd.add_target(f"iqn.2024-01.test.integrity:t{tid}", tid=tid, lun_size=LUN_SIZE)
            for key, value in params.items():
                tgtd.set_target_param(tid, key, value)
        yield tgtd


def _url(tgtd: Tgtd, tid: int) -> str:
    return f"iscsi://{tgtd.portal}/iqn.2024-01.test.integrity:t{tid}/1"


def _options(name: str) -> dict[str, str]:
    return dict(CONFIGS[name][1])


def _backing(tgtd: Tgtd, tid: int) -> bytes:
    return Path(tgtd.backing_path(tid, 1)).read_bytes()


@pytest.mark.parametrize("name", list(CONFIGS))
def test_random_writes_land_in_the_backing_file(target: Tgtd, name: str) -> None:
    tid = list(CONFIGS).index(name) + 1
    rng = random.Random(f"{SEED}-{name}")
    model = bytearray(_backing(target, tid))
    with iscsikit.open_lun(_url(target, tid), **_options(name)) as lun:
        assert lun.size == LUN_SIZE
        assert lun.block_size == 512
        negotiated = lun.session.params
        if name == "unsolicited":
            assert negotiated["InitialR2T"] == "No"
        if name == "digests":
            assert negotiated["HeaderDigest"] == negotiated["DataDigest"] == "CRC32C"
        if name == "small-bursts":
            assert negotiated["MaxBurstLength"] == "16384"
            assert negotiated["MaxXmitDataSegmentLength"] == "4096"
        if name == "r2t-only":
            assert negotiated["ImmediateData"] == "No"
        sizes = [1, 511, 512, 4095, 4096, 8193, 65536 + 17, 262_144 + 512, 1_000_003, 3 << 20]
        sizes += [rng.randrange(1, 2 << 20) for _ in range(12)]
        for wanted in sizes:
            size = wanted
            offset = rng.randrange(0, LUN_SIZE - size)
            if rng.random() < 0.5:  # half of them block-aligned (no read-modify-write)
                offset -= offset % 512
                size = max(512, size - size % 512)
            data = rng.randbytes(size)
            lun.write(offset, data)
            model[offset : offset + size] = data
            assert lun.read(offset, size) == data, f"seed {SEED}: read-back at {offset}+{size}"
        lun.flush()
        # Reads of random ranges match the model, including ones we never wrote.
        for _ in range(10):
            size = rng.randrange(1, 1 << 20)
            offset = rng.randrange(0, LUN_SIZE - size)
            assert lun.read(offset, size) == bytes(model[offset : offset + size])
    assert _backing(target, tid) == bytes(model), f"seed {SEED}: backing file differs"


def test_reads_match_file_written_behind_our_back(target: Tgtd) -> None:
    tid = 1
    path = Path(target.backing_path(tid, 1))
    pattern = os.urandom(1 << 20)
    with path.open("r+b") as f:
        f.seek(5 << 20)
        f.write(pattern)
    with iscsikit.open_lun(_url(target, tid)) as lun:
        assert lun.read(5 << 20, len(pattern)) == pattern
        buf = bytearray(1 << 20)
        assert lun.readinto(5 << 20, buf) == len(buf)
        assert bytes(buf) == pattern


def test_concurrent_async_writes(target: Tgtd) -> None:
    tid = list(CONFIGS).index("small-bursts") + 1
    rng = random.Random(f"{SEED}-async")
    chunks = [(i * 262_144, rng.randbytes(262_144)) for i in range(48)]

    async def main() -> None:
        url = _url(target, tid)
        async with iscsikit.open_lun_async(url, **_options("small-bursts")) as lun:
            await asyncio.gather(*(lun.write(off, data) for off, data in chunks))
            await lun.flush()
            back = await asyncio.gather(*(lun.read(off, len(data)) for off, data in chunks))
            assert back == [data for _, data in chunks]

    asyncio.run(main())
    image = _backing(target, tid)
    for offset, data in chunks:
        assert image[offset : offset + len(data)] == data


def test_synchronize_cache_and_unmap(target: Tgtd) -> None:
    with iscsikit.open_lun(_url(target, 1)) as lun:
        lun.write(0, b"\xab" * 4096)
        lun.flush()
        # tgt's file backing store does not advertise logical block provisioning.
        assert not lun.geometry.can_unmap
        lun.write_zeroes(0, 4096)
        assert lun.read(0, 4096) == bytes(4096)
    assert _backing(target, 1)[:4096] == bytes(4096)


def test_out_of_range_is_refused_before_any_io(target: Tgtd) -> None:
    with iscsikit.open_lun(_url(target, 1)) as lun:
        with pytest.raises(InvalidParameterError):
            lun.read(LUN_SIZE - 512, 1024)
        with pytest.raises(InvalidParameterError):
            lun.write(-1, b"x")
        assert lun.read(LUN_SIZE - 512, 512) is not None  # the session still works


def test_url_names_the_same_lun_libiscsi_sees(target: Tgtd) -> None:
    url = parse_iscsi_url(_url(target, 1))
    assert url.portal.port == target.port
    with iscsikit.open_lun(url) as lun:
        assert lun.lun == 1
        assert lun.geometry.inquiry.vendor == "IET"


def test_lun_recovers_from_a_dropped_connection(target: Tgtd) -> None:
    """tgtd kills the connection between two writes: the Lun logs in again, re-issues,
    and nothing written is lost."""
    tid = 1
    with iscsikit.open_lun(_url(target, tid)) as lun:
        first = os.urandom(65536)
        lun.write(1 << 20, first)
        assert target.drop_connections(tid) == 1
        second = os.urandom(65536)
        lun.write((1 << 20) + 65536, second)  # fails on the dead connection, then recovers
        assert lun.recoveries == 1
        assert lun.read(1 << 20, 131072) == first + second
        lun.flush()
    assert _backing(target, tid)[1 << 20 : (1 << 20) + 131072] == first + second
