"""CRC32C digests (iscsikit.proto.digest) against RFC 7143 Appendix B.4."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from iscsikit.proto.digest import crc32c, digest_bytes

# RFC 7143 App. B.4 "CRC Examples": input, and the CRC bytes as sent (LSB first).
RFC_EXAMPLES = [
    (bytes(32), "aa36918a"),
    (b"\xff" * 32, "43aba862"),
    (bytes(range(32)), "4e79dd46"),
    (bytes(range(31, -1, -1)), "5cdb3f11"),
    (
        # "An iSCSI - SCSI Read (10) Command PDU"
        bytes.fromhex(
            "01c00000 00000000 00000000 00000000 14000000 00000400 00000014 00000018"
            "28000000 00000000 02000000 00000000"
        ),
        "563a96d9",
    ),
]


@pytest.mark.parametrize(
    ("data", "wire"), RFC_EXAMPLES, ids=["zeros", "ones", "inc", "dec", "read10"]
)
def test_rfc_7143_appendix_b4_examples(data: bytes, wire: str) -> None:
    assert digest_bytes(data).hex() == wire
    assert crc32c(data) == int.from_bytes(bytes.fromhex(wire), "little")


def test_zeros_value() -> None:
    assert crc32c(bytes(32)) == 0x8A9136AA


def test_accepts_any_buffer() -> None:
    data = bytes(range(32))
    assert digest_bytes(bytearray(data)) == digest_bytes(memoryview(data)) == digest_bytes(data)
    assert crc32c(b"") == 0
    assert digest_bytes(b"") == bytes(4)


@given(st.binary(max_size=256), st.binary(max_size=256))
def test_continuation(a: bytes, b: bytes) -> None:
    assert crc32c(b, crc32c(a)) == crc32c(a + b)
    assert digest_bytes(b, crc32c(a)) == digest_bytes(a + b)
