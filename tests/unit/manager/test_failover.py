"""Portal failover order (pure)."""

from __future__ import annotations

import pytest

from iscsikit.errors import InvalidParameterError
from iscsikit.manager.failover import FailoverPreferences, failover_order
from iscsikit.proto.address import parse_portal

A, B, C, D = (parse_portal(p) for p in ("10.0.0.1:3260", "10.0.1.1:3260", "[fd00::1]:3260",
                                         "192.168.5.5:3261"))  # fmt: skip


def test_no_preferences_keeps_the_record_first_then_record_order() -> None:
    assert failover_order(A, [B, C, D]) == (A, B, C, D)


def test_duplicates_and_the_primary_are_listed_once() -> None:
    assert failover_order(A, [A, B, parse_portal("10.0.1.1:3260")]) == (A, B)


def test_preferred_portal_then_preferred_subnet() -> None:
    prefs = FailoverPreferences.from_settings(
        {
            "failover.preferred_portal": "192.168.5.5:3261",
            "failover.preferred_subnet": "10.0.1.0/24",
        }
    )
    assert failover_order(A, [B, C, D], prefs) == (D, B, A, C)


def test_ipv6_subnet() -> None:
    prefs = FailoverPreferences.from_settings({"failover.preferred_subnet": "fd00::/64"})
    assert failover_order(A, [B, C], prefs)[0] == C


def test_failover_off() -> None:
    prefs = FailoverPreferences.from_settings({"failover": "no"})
    assert failover_order(A, [B, C], prefs) == (A,)


@pytest.mark.parametrize(
    "values",
    [{"failover": "maybe"}, {"failover.preferred_subnet": "10.0.0.0/99"},
     {"failover.preferred_portal": "[::1"}],
)  # fmt: skip
def test_bad_preferences_are_refused(values: dict[str, str]) -> None:
    with pytest.raises(InvalidParameterError):
        FailoverPreferences.from_settings(values)
