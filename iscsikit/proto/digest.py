"""CRC32C header and data digests (RFC 7143 §13.1, Appendix B.4).

This module owns the one digest algorithm iSCSI defines.  The CRC itself is computed by
the ``crc32c`` package (hardware-accelerated where the CPU allows); what this module
adds is the iSCSI wire representation: the 32-bit CRC value travels least significant
byte first.  RFC 7143 Appendix B.4 shows it that way: 32 bytes of zeros have the CRC
0x8a9136aa, sent as the bytes ``aa 36 91 8a``.

It must stay free of I/O: it is imported by the sans-I/O codec.
"""

from __future__ import annotations

from typing import Final

import crc32c as _crc32c

from iscsikit.proto.constants import DIGEST_LEN

_crc: Final = _crc32c.crc32c


def crc32c(data: bytes | bytearray | memoryview, value: int = 0) -> int:
    """CRC32C (Castagnoli, generator 0x11EDC6F41) of *data*, as an integer.

    *value* continues a previous result, so ``crc32c(b, crc32c(a)) == crc32c(a + b)``:
    a digest over a header and its AHS, or over data and its padding, needs no copy.
    """
    result: int = _crc(data, value)
    return result


def digest_bytes(data: bytes | bytearray | memoryview, value: int = 0) -> bytes:
    """The 4-byte wire form of the CRC32C of *data* (RFC 7143 §13.1, App. B.4).

    *value* continues a previous :func:`crc32c` result, as there.
    """
    result: int = _crc(data, value)
    return result.to_bytes(DIGEST_LEN, "little")


__all__ = ["crc32c", "digest_bytes"]
