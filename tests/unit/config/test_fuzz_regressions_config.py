"""Regression tests for what the fuzz harnesses found in iscsikit.config (tests/fuzz)."""

from __future__ import annotations

import pytest

from iscsikit.config.registry import REGISTRY, RecordType
from iscsikit.errors import InvalidParameterError

# tests/fuzz/fuzz_cli.py, seeded with the golden case iface_update_huge_number: the -v of
# `-m iface -I ifx -o update -n iface.mtu -v 999...9` (5000 digits) validated strictly (as
# -o new, the API's record setters and the records store do) raised Python's ValueError
# ("Exceeds the limit (4300 digits) for integer string conversion") from int().
HUGE = "9" * 5000


@pytest.mark.parametrize(
    ("record", "name"),
    [
        (RecordType.IFACE, "iface.mtu"),
        (RecordType.NODE, "node.session.cmds_max"),
        (RecordType.NODE, "node.conn[0].port"),
        (RecordType.SENDTARGETS, "discovery.sendtargets.timeo.login_timeout"),
    ],
)
@pytest.mark.parametrize("value", [HUGE, "-" + HUGE, "+" + HUGE, " 0000" + HUGE + " "])
def test_a_number_of_thousands_of_digits_is_out_of_range(
    record: RecordType, name: str, value: str
) -> None:
    with pytest.raises(InvalidParameterError, match="out of range"):
        REGISTRY.validate(record, name, value)


def test_leading_zeros_do_not_count_as_digits() -> None:
    # 20 significant digits after 5000 zeros: still a number, checked against the range.
    assert REGISTRY.validate(RecordType.IFACE, "iface.mtu", "0" * 5000 + "1500") == "1500"
    with pytest.raises(InvalidParameterError, match="out of range"):
        REGISTRY.validate(RecordType.IFACE, "iface.mtu", "0" * 5000 + "1" * 20)
