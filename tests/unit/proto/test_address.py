"""Portal and TargetAddress parsing (RFC 7143 §13.8) and iscsiadm's printing."""

from __future__ import annotations

import pytest

from iscsikit.errors import InvalidParameterError
from iscsikit.proto.address import Portal, format_portal, parse_address, parse_portal


@pytest.mark.parametrize(
    ("text", "host", "port", "tpgt"),
    [
        ("10.0.0.1", "10.0.0.1", 3260, None),
        ("10.0.0.1:3261", "10.0.0.1", 3261, None),
        ("10.0.0.1:3261,2", "10.0.0.1", 3261, 2),
        ("10.0.0.1,1", "10.0.0.1", 3260, 1),
        ("[fe80::1]:3260,1", "fe80::1", 3260, 1),
        ("[fe80::1%eth0]:860", "fe80::1%eth0", 860, None),
        ("[::1]", "::1", 3260, None),
        ("::1", "::1", 3260, None),
        ("2001:db8::5,3", "2001:db8::5", 3260, 3),
        ("target.example.com:3260,12", "target.example.com", 3260, 12),
        (" 127.0.0.2:32609 ", "127.0.0.2", 32609, None),
        ("127.0.0.1:3260,-1", "127.0.0.1", 3260, -1),
    ],
)
def test_parse_address(text: str, host: str, port: int, tpgt: int | None) -> None:
    portal, tag = parse_address(text)
    assert (portal.host, portal.port, tag) == (host, port, tpgt)


@pytest.mark.parametrize(
    "text",
    [
        "",
        ":3260",
        "[fe80::1",
        "[fe80::1]x",
        "[not-ipv6]:3260",
        "10.0.0.1:0",
        "10.0.0.1:65536",
        "10.0.0.1:port",
        "10.0.0.1:3260,x",
        "10.0.0.1:3260,70000",
        "bad host:3260",
        "gg::1::2",
    ],
)
def test_parse_address_rejects(text: str) -> None:
    with pytest.raises(InvalidParameterError):
        parse_address(text)


def test_format_portal_brackets_ipv6_only() -> None:
    assert format_portal("127.0.0.1", 3260) == "127.0.0.1:3260"
    assert format_portal("::1", 3261) == "[::1]:3261"
    assert str(Portal("fe80::1%eth0", 1)) == "[fe80::1%eth0]:1"
    assert Portal("::1").is_ipv6 and not Portal("host").is_ipv6


def test_parse_portal_refuses_tpgt_and_passes_portals_through() -> None:
    assert parse_portal("[::1]:99") == Portal("::1", 99)
    p = Portal("h", 1)
    assert parse_portal(p) is p
    with pytest.raises(InvalidParameterError, match="portal group tag"):
        parse_portal("1.2.3.4:3260,1")
