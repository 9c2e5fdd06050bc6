"""iscsikit's C number readers against the C library itself (glibc through ctypes):
the same text gives the same number, for any length of digit run."""

from __future__ import annotations

import ctypes
import ctypes.util

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from iscsikit.config import cnum

_libc = ctypes.CDLL(ctypes.util.find_library("c"))
_libc.strtoul.restype = ctypes.c_ulong
_libc.strtoul.argtypes = [ctypes.c_char_p, ctypes.c_void_p, ctypes.c_int]
_libc.strtol.restype = ctypes.c_long
_libc.strtol.argtypes = [ctypes.c_char_p, ctypes.c_void_p, ctypes.c_int]
_libc.atoi.restype = ctypes.c_int
_libc.atoi.argtypes = [ctypes.c_char_p]


def c_side(text: str) -> tuple[int, int, int]:
    raw = text.encode()
    return _libc.strtoul(raw, None, 10), _libc.strtol(raw, None, 10), _libc.atoi(raw)


def ours(text: str) -> tuple[int, int, int]:
    return cnum.strtoul(text), cnum.strtol(text), cnum.atoi(text)


EDGES = [
    "", " ", "abc", "12abc", " \t\n12", "+7", "-7", "--7", "+-7", "- 7", "0x10", "007",
    "4294967295", "4294967296", "-4294967296", "2147483647", "2147483648", "-2147483649",
    "9223372036854775807", "9223372036854775808", "-9223372036854775808",
    "-9223372036854775809", "18446744073709551615", "18446744073709551616",
    "-18446744073709551615", "-18446744073709551616", "99999999999",
    "9" * 5000, "-" + "9" * 5000, "0" * 5000 + "42", "0" * 5000, " " * 100 + "1" * 30,
    "\u0663", "1\u0663", "\u00a012",  # non-ASCII digits and space are no C digits/space
]  # fmt: skip


@pytest.mark.parametrize("text", EDGES, ids=lambda t: repr(t[:24]))
def test_edges_read_as_glibc_reads_them(text: str) -> None:
    assert ours(text) == c_side(text)


@settings(max_examples=400, deadline=None)
@given(
    st.text(alphabet=" \t+-0123456789x\u0663", max_size=40)
    | st.integers(min_value=-(1 << 70), max_value=1 << 70).map(str)
)
def test_any_text_reads_as_glibc_reads_it(text: str) -> None:
    assert ours(text) == c_side(text)


def test_a_digit_run_of_any_length_is_read_without_int_limits() -> None:
    huge = "1" + "0" * 100_000
    assert cnum.strtoul(huge) == cnum.ULONG_MAX
    assert cnum.strtol("-" + huge) == cnum.LONG_MIN
    assert cnum.atoi(huge) == -1
