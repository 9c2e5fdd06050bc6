"""C's decimal number readers, as glibc on a 64-bit host runs them: one implementation.

open-iscsi reads every number of a record, an iscsid.conf line, a sysfs attribute or a
command-line option with ``strtoul``, ``strtol``/``strtoll`` or ``atoi``; iscsikit reads
the same text the same way with these functions.  Each skips leading C white space and
one sign, then reads ASCII decimal digits (no digits: 0).  On overflow ``strtoul``
gives ULONG_MAX and ``strtol`` LONG_MAX (LONG_MIN for a negative number); ``atoi`` is
``(int) strtol``.  A digit run of any length is read in time linear in its length and
never turned into a Python ``int`` of more digits than a C long has (Python refuses
``int()`` of over 4300 digits: a value of five thousand nines once crashed
``iscsikit-adm -o update``).

Pure functions, no I/O.
"""

from __future__ import annotations

__all__ = ["C_SPACE", "LONG_MAX", "LONG_MIN", "ULONG_MAX", "atoi", "strtol", "strtoul"]

#: C's isspace() in the C locale.
C_SPACE = " \t\n\v\f\r"
ULONG_MAX = (1 << 64) - 1
LONG_MAX = (1 << 63) - 1
LONG_MIN = -(1 << 63)
#: More significant digits than any 64-bit number has: the value is over ULONG_MAX.
_MAX_DIGITS = len(str(ULONG_MAX))


def _scan(text: str) -> tuple[bool, int | None]:
    """(negative, magnitude) of the number at the start of ``text``; the magnitude is
    None without digits and ULONG_MAX + 1 for anything larger than ULONG_MAX."""
    s = text.lstrip(C_SPACE)
    negative = s[:1] == "-"
    if s[:1] in ("+", "-"):
        s = s[1:]
    end = 0
    while end < len(s) and "0" <= s[end] <= "9":
        end += 1
    if end == 0:
        return negative, None
    digits = s[:end].lstrip("0")
    if len(digits) > _MAX_DIGITS:
        return negative, ULONG_MAX + 1
    return negative, min(int(digits or "0"), ULONG_MAX + 1)


def strtoul(text: str) -> int:
    """``strtoul(text, NULL, 10)``: 0..ULONG_MAX; a minus sign negates modulo 2**64."""
    negative, n = _scan(text)
    if n is None:
        return 0
    if n > ULONG_MAX:
        return ULONG_MAX
    return (-n) & ULONG_MAX if negative else n


def strtol(text: str) -> int:
    """``strtol(text, NULL, 10)`` (``strtoll`` too): LONG_MIN..LONG_MAX, saturated."""
    negative, n = _scan(text)
    if n is None:
        return 0
    if negative:
        return max(-n, LONG_MIN)
    return min(n, LONG_MAX)


def atoi(text: str) -> int:
    """``atoi(text)``: ``strtol``'s value stored in a 32-bit int."""
    n = strtol(text) & 0xFFFFFFFF
    return n - (1 << 32) if n >= 1 << 31 else n
