"""Names on disk: portal dirs, old-style files, discovery links and their targets."""

from __future__ import annotations

from pathlib import Path

import pytest

from iscsikit.errors import InvalidParameterError
from iscsikit.records.layout import (
    Layout,
    NodeId,
    check_name,
    is_temp_name,
    parse_discovery_dir_name,
    parse_link_name,
    parse_portal_name,
    strip_brackets,
)

T = "iqn.2001-04.com.example:disk1"


def test_node_paths_new_and_old_style(tmp_path: Path) -> None:
    layout = Layout(tmp_path)
    new = NodeId(T, "10.0.0.1", 3260, 1, "ifx")
    assert layout.node_file(new) == f"{tmp_path}/nodes/{T}/10.0.0.1,3260,1/ifx"
    old = NodeId(T, "10.0.0.1", 3260, -1, "default")
    assert old.old_style
    assert layout.node_file(old) == f"{tmp_path}/nodes/{T}/10.0.0.1,3260"
    v6 = NodeId(T, "fe80::1", 3260, 5, "default")
    assert layout.node_file(v6) == f"{tmp_path}/nodes/{T}/fe80::1,3260,5/default"
    assert v6.portal == "[fe80::1]:3260" and new.portal == "10.0.0.1:3260"


def test_link_names_and_targets(tmp_path: Path) -> None:
    node = NodeId(T, "::1", 3260, 1, "ifx")
    assert node.link_name == f"{T},::1,3260,1,ifx"
    assert parse_link_name(node.link_name) == node
    ours = Layout(tmp_path)
    assert ours.link_target(node) == f"{tmp_path}/nodes/{T}/::1,3260,1"
    # Written for a database that iscsiadm will see at /etc/iscsi:
    as_iscsiadm = Layout(tmp_path, link_root="/etc/iscsi")
    assert as_iscsiadm.link_target(node) == f"/etc/iscsi/nodes/{T}/::1,3260,1"


def test_resolve_link_maps_foreign_prefix_into_our_db(tmp_path: Path) -> None:
    layout = Layout(tmp_path)
    expected = tmp_path / "nodes" / T / "10.0.0.1,3260,1"
    assert layout.resolve_link(f"/etc/iscsi/nodes/{T}/10.0.0.1,3260,1") == expected
    assert layout.resolve_link(f"/var/lib/iscsi/nodes/{T}/10.0.0.1,3260,1") == expected
    assert layout.resolve_link(f"{tmp_path}/nodes/{T}/10.0.0.1,3260,1") == expected


def test_link_dirs(tmp_path: Path) -> None:
    layout = Layout(tmp_path)
    assert (
        layout.link_dir("send_targets", "10.0.0.9", 3260)
        == f"{tmp_path}/send_targets/10.0.0.9,3260"
    )
    assert layout.link_dir("isns", "10.0.0.9", 3205) == f"{tmp_path}/isns/10.0.0.9,3205"
    assert layout.link_dir("static", "", 0) == f"{tmp_path}/static"
    assert layout.link_dir("fw", "", 0) == f"{tmp_path}/fw"
    assert layout.link_dir("offload_send_targets", "", 0) is None
    assert layout.discovery_file("sendtargets", "fd00::1", 3260).endswith(
        "send_targets/fd00::1,3260/st_config"
    )
    assert layout.discovery_file("isns", "1.2.3.4", 3205).endswith("isns/1.2.3.4,3205/isns_config")


@pytest.mark.parametrize(
    ("name", "parsed"),
    [
        ("10.0.0.1,3260,1", ("10.0.0.1", 3260, 1)),
        ("fe80::1%eth0,3260,12", ("fe80::1%eth0", 3260, 12)),
        ("10.0.0.1,3260", ("10.0.0.1", 3260, None)),
        ("host.example.com,3260,1", ("host.example.com", 3260, 1)),
        ("10.0.0.1", None),
        ("10.0.0.1,x,1", None),
        ("10.0.0.1,3260,-1", None),
        (",3260,1", None),
        ("a,1,2,3", None),
    ],
)
def test_parse_portal_name(name: str, parsed: tuple[str, int, int | None] | None) -> None:
    assert parse_portal_name(name) == parsed


@pytest.mark.parametrize(
    ("name", "parsed"),
    [
        ("10.0.0.1,3260", ("10.0.0.1", 3260)),
        ("fd00::1,3261", ("fd00::1", 3261)),
        (f"{T},10.0.0.1,3260,1,default", None),  # pre-872 iSNS node link, not a server
        ("junk", None),
    ],
)
def test_parse_discovery_dir_name(name: str, parsed: tuple[str, int] | None) -> None:
    assert parse_discovery_dir_name(name) == parsed


def test_parse_link_name_rejects_malformed() -> None:
    assert parse_link_name("st_config") is None
    assert parse_link_name(f"{T},1.2.3.4,x,1,default") is None
    assert parse_link_name(f"{T},1.2.3.4,3260,1,if,with,commas") == NodeId(
        T, "1.2.3.4", 3260, 1, "if,with,commas"
    )


@pytest.mark.parametrize("bad", ["", ".", "..", "a/b", "a\0b", ".x.iscsikit-tmp.1.2"])
def test_check_name_refuses_path_tricks(bad: str) -> None:
    with pytest.raises(InvalidParameterError):
        check_name("target name", bad)


def test_small_helpers() -> None:
    assert strip_brackets("[fe80::1]") == "fe80::1" and strip_brackets("1.2.3.4") == "1.2.3.4"
    assert is_temp_name(".default.iscsikit-tmp.12.3") and not is_temp_name("default")
