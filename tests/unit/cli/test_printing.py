"""iscsikit.cli.printing against iscsiadm 2.1.8's own output (golden/printing/README.md)."""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

import pytest

from iscsikit.cli import printing
from iscsikit.config.registry import REGISTRY, RecordType
from iscsikit.records import DiscoveryRecord, IfaceRecord, NodeRecord, parse_record

GOLDEN = Path(__file__).parent / "golden" / "printing"


def _values(name: str, record: RecordType) -> dict[str, str]:
    values = {k.name: k.default for k in REGISTRY.all_keys(record)}
    values.update(parse_record((GOLDEN / name).read_text(), record).values)
    return values


@pytest.mark.parametrize(
    ("stem", "show_secrets"),
    [
        ("node_ipv4_full", True),
        ("node_ipv6_full", False),
        ("node_ipv6iface", False),
        ("types_node", False),
    ],
)
def test_node_show(stem: str, show_secrets: bool) -> None:
    node = NodeRecord(_values(f"{stem}_disk.txt", RecordType.NODE))
    text = printing.node_text(node, show_secrets=show_secrets)
    assert text == (GOLDEN / f"{stem}_show.txt").read_text()


@pytest.mark.parametrize("stem", ["iface_ipv4_full", "iface_ipv6_full", "types_iface_ipv4"])
def test_iface_show(stem: str) -> None:
    iface = IfaceRecord(_values(f"{stem}_disk.txt", RecordType.IFACE))
    assert (
        printing.iface_text(iface, show_secrets=True) == (GOLDEN / f"{stem}_show.txt").read_text()
    )


@pytest.mark.parametrize(
    ("stem", "record", "show_secrets"),
    [("st_full", RecordType.SENDTARGETS, False), ("isns_full", RecordType.ISNS, True)],
)
def test_discovery_show(stem: str, record: RecordType, show_secrets: bool) -> None:
    drec = DiscoveryRecord(record, _values(f"{stem}_disk.txt", record))
    text = printing.discovery_text(drec, show_secrets=show_secrets)
    assert text == (GOLDEN / f"{stem}_show.txt").read_text()


def test_masking() -> None:
    key = REGISTRY.get(RecordType.NODE, "node.session.auth.password")
    assert printing.display_value(key, "") == "<empty>"
    assert printing.display_value(key, "secret") == "********"
    assert printing.display_value(key, "secret", show_secrets=True) == "secret"
    num = REGISTRY.get(RecordType.NODE, "iface.iface_num")
    assert printing.display_value(num, "-1") == "4294967295"  # shown as uint32


class Id(NamedTuple):
    target: str
    address: str
    port: int
    tpgt: int
    iface: str


IDS = [
    Id("iqn.x:d0", "localhost", 3262, 3, "default"),
    Id("iqn.x:d0", "myhost.example.com", 3263, 4, "ifx_ipv6"),
    Id("iqn.x:d1", "127.0.0.2", 3260, -1, "default"),
    Id("iqn.x:d2", "fe80::1", 3261, 5, "default"),
    Id("iqn.x:d1", "10.0.0.1", 3260, 2, "ifx"),
]


def test_node_flat() -> None:
    """``%s,%u %s``: a dotless address is bracketed, tpgt -1 prints as 4294967295."""
    assert "".join(map(printing.node_flat, IDS)) == (
        "[localhost]:3262,3 iqn.x:d0\n"
        "myhost.example.com:3263,4 iqn.x:d0\n"
        "127.0.0.2:3260,4294967295 iqn.x:d1\n"
        "[fe80::1]:3261,5 iqn.x:d2\n"
        "10.0.0.1:3260,2 iqn.x:d1\n"
    )


def test_node_tree() -> None:
    """The Target line only when the target changes (not per target: d1 appears twice)."""
    assert printing.node_tree(IDS) == (
        "Target: iqn.x:d0\n"
        "\tPortal: [localhost]:3262,3\n"
        "\t\tIface Name: default\n"
        "\tPortal: myhost.example.com:3263,4\n"
        "\t\tIface Name: ifx_ipv6\n"
        "Target: iqn.x:d1\n"
        "\tPortal: 127.0.0.2:3260,-1\n"
        "\t\tIface Name: default\n"
        "Target: iqn.x:d2\n"
        "\tPortal: [fe80::1]:3261,5\n"
        "\t\tIface Name: default\n"
        "Target: iqn.x:d1\n"
        "\tPortal: 10.0.0.1:3260,2\n"
        "\t\tIface Name: ifx\n"
    )


def test_portal_text() -> None:
    assert printing.portal_text("10.0.0.1", 3260) == "10.0.0.1:3260"
    assert printing.portal_text("fe80::1", 3260) == "[fe80::1]:3260"
    assert printing.portal_text("host", "3260") == "[host]:3260"


def test_session_messages() -> None:
    assert printing.login_target("default", "iqn.x:t", "fe80::1", 3260) == (
        "[iface: default, target: iqn.x:t, portal: fe80::1,3260]"
    )
    assert printing.session_target(3, "iqn.x:t", "10.0.0.1", 3260) == (
        "[sid: 3, target: iqn.x:t, portal: 10.0.0.1,3260]"
    )
    text = printing.session_stats_text(1, "iqn.x:t", "10.0.0.1", 3260, {"txdata_octets": 5, "x": 1})
    lines = text.splitlines()
    assert lines[:3] == [
        "Stats for session [sid: 1, target: iqn.x:t, portal: 10.0.0.1,3260]",
        "iSCSI SNMP:",
        "\ttxdata_octets: 5",
    ]
    assert lines[-3:] == ["\ttimeout_err: 0", "iSCSI Extended:", "\tx: 1"]
    assert len(lines) == 2 + 21 + 2
