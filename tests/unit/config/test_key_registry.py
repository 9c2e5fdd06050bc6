"""The key registry against iscsiadm 2.1.8's own output (golden files) and the reference TSV."""

from __future__ import annotations

import csv
import dataclasses
from pathlib import Path

import pytest

from iscsikit.config import keytable
from iscsikit.config.registry import (
    REGISTRY,
    Family,
    RecordType,
    Registry,
    ValueType,
    c_strtoul,
    iface_family,
    iface_family_for_read,
)
from iscsikit.errors import InvalidParameterError, IscsiErr
from iscsikit.testing.peers import shared_dir

GOLDEN = Path(__file__).parent / "golden"
CAPTURES = GOLDEN / "shared-captures"


def keys_of(path: Path) -> list[str]:
    return [line.split(" = ", 1)[0] for line in path.read_text().splitlines() if " = " in line]


def values_of(path: Path) -> dict[str, str]:
    return dict(line.split(" = ", 1) for line in path.read_text().splitlines() if " = " in line)


# -- orders ----------------------------------------------------------------------------

DISK = [
    ("node_ipv4_full_disk.txt", RecordType.NODE, "ipv4"),
    ("node_ipv6_full_disk.txt", RecordType.NODE, "ipv6"),
    ("node_ipv6_rewritten_disk.txt", RecordType.NODE, "ipv6"),
    ("node_default_disk.txt", RecordType.NODE, "ipv4"),
    ("types_node_disk.txt", RecordType.NODE, "ipv4"),
    ("iface_ipv4_full_disk.txt", RecordType.IFACE, "ipv4"),
    ("iface_ipv6_full_disk.txt", RecordType.IFACE, "ipv6"),
    ("types_iface_ipv4_disk.txt", RecordType.IFACE, "ipv4"),
    ("types_iface_ipv6_disk.txt", RecordType.IFACE, "ipv6"),
    ("st_full_disk.txt", RecordType.SENDTARGETS, None),
    ("types_st_disk.txt", RecordType.SENDTARGETS, None),
    ("isns_full_disk.txt", RecordType.ISNS, None),
    ("types_isns_disk.txt", RecordType.ISNS, None),
    ("shared-captures/node_ipv6iface_disk.txt", RecordType.NODE, "ipv6"),
    ("shared-captures/iface_ipv6_disk.txt", RecordType.IFACE, "ipv6"),
]

SHOW = [
    ("node_ipv4_full_show.txt", RecordType.NODE, "ipv4"),
    ("node_ipv6_full_show.txt", RecordType.NODE, "ipv6"),
    ("node_default_show.txt", RecordType.NODE, "ipv4"),
    ("types_node_show.txt", RecordType.NODE, "ipv4"),
    ("iface_ipv4_full_show.txt", RecordType.IFACE, "ipv4"),
    ("iface_ipv6_full_show.txt", RecordType.IFACE, "ipv6"),
    ("iface_default_show.txt", RecordType.IFACE, "ipv4"),
    ("iface_ipv6_default_show.txt", RecordType.IFACE, "ipv6"),
    ("types_iface_ipv4_show.txt", RecordType.IFACE, "ipv4"),
    ("types_iface_ipv6_show.txt", RecordType.IFACE, "ipv6"),
    ("st_full_show.txt", RecordType.SENDTARGETS, None),
    ("st_default_show.txt", RecordType.SENDTARGETS, None),
    ("isns_full_show.txt", RecordType.ISNS, None),
    ("isns_default_show.txt", RecordType.ISNS, None),
    ("shared-captures/node_show_218.txt", RecordType.NODE, "ipv4"),
    ("shared-captures/node_ipv6iface_show.txt", RecordType.NODE, "ipv6"),
    ("shared-captures/iface_ipv4_show.txt", RecordType.IFACE, "ipv4"),
    ("shared-captures/iface_ipv6_show.txt", RecordType.IFACE, "ipv6"),
    ("shared-captures/disc_show_218.txt", RecordType.SENDTARGETS, None),
]


@pytest.mark.parametrize(("name", "record", "family"), DISK)
def test_disk_order(name: str, record: RecordType, family: Family | None) -> None:
    """Keys iscsiadm wrote appear in registry order, and only registry keys appear."""
    got = keys_of(GOLDEN / name)
    expected = [k.name for k in REGISTRY.keys(record, family)]
    assert got == [n for n in expected if n in got]
    assert set(got) <= set(expected)


@pytest.mark.parametrize(("name", "record", "family"), SHOW)
def test_show_order(name: str, record: RecordType, family: Family | None) -> None:
    assert keys_of(GOLDEN / name) == [k.name for k in REGISTRY.show_order(record, family)]


@pytest.mark.parametrize(
    ("name", "record", "family", "absent"),
    [
        ("node_ipv4_full_disk.txt", RecordType.NODE, "ipv4", set()),
        ("iface_ipv4_full_disk.txt", RecordType.IFACE, "ipv4", {"iface.hwaddress"}),
        ("iface_ipv6_full_disk.txt", RecordType.IFACE, "ipv6", {"iface.hwaddress"}),
        ("st_full_disk.txt", RecordType.SENDTARGETS, None, set()),
        ("isns_full_disk.txt", RecordType.ISNS, None, set()),
    ],
)
def test_full_records_hold_every_key(
    name: str, record: RecordType, family: Family | None, absent: set[str]
) -> None:
    expected = {k.name for k in REGISTRY.keys(record, family)} - absent
    assert set(keys_of(GOLDEN / name)) == expected


def test_node_iface_block_order_differs_from_iface_record() -> None:
    disk = [k.name for k in REGISTRY.keys(RecordType.NODE) if k.name.startswith("iface.")]
    show = [k.name for k in REGISTRY.show_order(RecordType.NODE) if k.name.startswith("iface.")]
    assert disk[:4] == ["iface.hwaddress", "iface.ipaddress", "iface.iscsi_ifacename",
                        "iface.net_ifacename"]  # fmt: skip
    assert show == [k.name for k in REGISTRY.keys(RecordType.IFACE)]
    assert [k.name for k in REGISTRY.show_order(RecordType.IFACE)] == show


def test_counts() -> None:
    """notes §2.3/§2.4: 124 node keys in 2.1.8, 70 iface; one IP block per record."""
    assert len(REGISTRY.all_keys(RecordType.NODE)) == 124
    assert len(REGISTRY.all_keys(RecordType.IFACE)) == 70
    node4 = {k.name for k in REGISTRY.keys(RecordType.NODE, "ipv4")}
    node6 = {k.name for k in REGISTRY.keys(RecordType.NODE, "ipv6")}
    assert len(node4 - node6) == 15 and len(node6 - node4) == 15
    iface4 = {k.name for k in REGISTRY.keys(RecordType.IFACE, "ipv4")}
    iface6 = {k.name for k in REGISTRY.keys(RecordType.IFACE, "ipv6")}
    assert len(iface4 - iface6) == 17 and len(iface6 - iface4) == 15
    # a full IPv4 node show is 107 keys (109 lines with BEGIN/END); IPv6 105
    assert len(REGISTRY.show_order(RecordType.NODE, "ipv4")) == 107
    assert len(REGISTRY.show_order(RecordType.NODE, "ipv6")) == 105


# -- defaults and types ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "record", "family"),
    [
        ("node_default_show.txt", RecordType.NODE, "ipv4"),
        ("iface_default_show.txt", RecordType.IFACE, "ipv4"),
        ("iface_ipv6_default_show.txt", RecordType.IFACE, "ipv6"),
        ("st_default_show.txt", RecordType.SENDTARGETS, None),
        ("isns_default_show.txt", RecordType.ISNS, None),
        ("shared-captures/disc_show_218.txt", RecordType.SENDTARGETS, None),
    ],
)
def test_defaults_as_shown(name: str, record: RecordType, family: Family | None) -> None:
    shown = values_of(GOLDEN / name)
    for key in REGISTRY.show_order(record, family):
        if key.record_id or key.name == "iface.iscsi_ifacename":
            continue
        assert shown[key.name] == (key.default or "<empty>"), key.name


def test_default_node_record_on_disk() -> None:
    """A fresh node record holds exactly the non-empty defaults (2.1.8: priority -20)."""
    stored = values_of(GOLDEN / "node_default_disk.txt")
    defaults = REGISTRY.defaults(RecordType.NODE)
    ids = {"node.name": "iqn.2026-11.ex:n4", "node.tpgt": "1", "node.conn[0].address": "127.0.0.1"}
    expected = {
        k.name: ids.get(k.name, defaults[k.name])
        for k in REGISTRY.keys(RecordType.NODE, "ipv4")
        if k.on_disk(ids.get(k.name, defaults[k.name]))
    }
    assert stored == expected
    assert defaults["node.session.xmit_thread_priority"] == "-20"
    assert defaults["node.conn[0].timeo.login_timeout"] == "30"
    assert defaults["node.session.initial_login_retry_max"] == "4"


@pytest.mark.parametrize(
    ("name", "record"),
    [
        ("types_iface_ipv4_disk.txt", RecordType.IFACE),
        ("types_iface_ipv6_disk.txt", RecordType.IFACE),
        ("types_node_disk.txt", RecordType.NODE),
        ("types_st_disk.txt", RecordType.SENDTARGETS),
        ("types_isns_disk.txt", RecordType.ISNS),
    ],
)
def test_numeric_types_on_disk(name: str, record: RecordType) -> None:
    checked = 0
    for key_name, value in values_of(GOLDEN / name).items():
        key = REGISTRY.get(record, key_name)
        if key.value_type.is_numeric and key.modifiable:
            assert REGISTRY.parse_value(key, "-1") == value, key_name
            checked += 1
    assert checked >= 1


@pytest.mark.parametrize(
    ("name", "record", "prefix"),
    [
        ("types_iface_ipv4_show.txt", RecordType.IFACE, "iface."),
        ("types_iface_ipv6_show.txt", RecordType.IFACE, "iface."),
        ("types_node_show.txt", RecordType.NODE, "node."),
    ],
)
def test_numeric_types_as_shown(name: str, record: RecordType, prefix: str) -> None:
    """libopeniscsiusr prints some fields with another C type (e.g. iface_num uint32)."""
    for key_name, value in values_of(GOLDEN / name).items():
        key = REGISTRY.get(record, key_name)
        if not (key.value_type.is_numeric and key.modifiable and key_name.startswith(prefix)):
            continue
        assert key.show_value_type is not None
        as_shown = dataclasses.replace(key, value_type=key.show_value_type)
        assert REGISTRY.parse_value(as_shown, "-1") == value, key_name
    shown = {k.name: k.show_value_type for k in REGISTRY.keys(RecordType.NODE)}
    assert shown["iface.iface_num"] is ValueType.UINT32
    assert shown["node.session.cmds_max"] is ValueType.UINT16


def test_flags() -> None:
    node = {k.name: k for k in REGISTRY.all_keys(RecordType.NODE)}
    ids = {n for n, k in node.items() if k.record_id}
    assert ids == {
        "node.name",
        "node.tpgt",
        "node.discovery_address",
        "node.discovery_port",
        "node.discovery_type",
        "node.conn[0].address",
        "node.conn[0].port",
    }
    readonly = {n for n, k in node.items() if not k.modifiable} - ids
    assert readonly == {n for n in node if n.startswith("iface.")} - {"iface.transport_name"}
    assert {n for n, k in node.items() if k.masked} == {
        "node.session.auth.password",
        "node.session.auth.password_in",
    }
    assert {n for n, k in node.items() if k.hidden} == {
        "node.session.auth.password_length",
        "node.session.auth.password_in_length",
    }
    assert node["iface.gateway"].family is None  # written for IPv6 node records too
    assert node["iface.gateway"].show_family == "ipv4"
    iface = {k.name: k for k in REGISTRY.all_keys(RecordType.IFACE)}
    assert iface["iface.gateway"].family == "ipv4"
    assert [n for n, k in iface.items() if not k.modifiable] == ["iface.iscsi_ifacename"]
    st = {k.name for k in REGISTRY.all_keys(RecordType.SENDTARGETS) if k.record_id}
    assert st == {"discovery.type", "discovery.sendtargets.address", "discovery.sendtargets.port"}


def test_on_disk() -> None:
    key = REGISTRY.get(RecordType.NODE, "node.session.auth.username")
    assert key.on_disk("x") and not key.on_disk("")
    assert not REGISTRY.get(RecordType.NODE, "node.session.auth.password_length").on_disk("3")


# -- lookup and validation -------------------------------------------------------------


def test_get_and_find() -> None:
    assert REGISTRY.find(RecordType.NODE, "node.foo") is None
    with pytest.raises(InvalidParameterError) as exc:
        REGISTRY.get(RecordType.NODE, "node.foo")
    assert exc.value.code == IscsiErr.INVAL
    # discovery records reuse the node chap_algs name; iSNS reuses sendtargets.address
    assert REGISTRY.get(RecordType.SENDTARGETS, "node.session.auth.chap_algs").default == "MD5"
    assert REGISTRY.get(RecordType.ISNS, "discovery.sendtargets.port").default == "3205"
    assert REGISTRY.find(RecordType.ISNS, "node.session.auth.chap_algs") is None


@pytest.mark.parametrize(
    ("record", "name", "message"),
    [
        (RecordType.NODE, "node.foo", "Cannot modify node.foo. Invalid param name."),
        (
            RecordType.NODE,
            "node.name",
            "Cannot modify node.name. It is used to look up the record and cannot be changed.",
        ),
        (
            RecordType.NODE,
            "iface.vlan_id",
            "Cannot modify iface.vlan_id. Use iface mode to update this value.",
        ),
        (
            RecordType.IFACE,
            "iface.iscsi_ifacename",
            "Can not update iface.iscsi_ifacename. Delete it, and then create a new one.",
        ),
        (
            RecordType.SENDTARGETS,
            "discovery.type",
            "Cannot modify discovery.type. It is used to look up the record and cannot be changed.",
        ),
        (
            RecordType.NODE,
            "node.session.sess_reopen_log_freq",
            "Cannot modify node.session.sess_reopen_log_freq. Invalid param name.",
        ),
    ],
)
def test_check_modifiable_refusals(record: RecordType, name: str, message: str) -> None:
    with pytest.raises(InvalidParameterError) as exc:
        REGISTRY.check_modifiable(record, name)
    assert str(exc.value) == message


def test_check_modifiable_accepts() -> None:
    assert REGISTRY.check_modifiable(RecordType.NODE, "iface.transport_name").name == (
        "iface.transport_name"
    )
    # iscsiadm's node-mode alias, only for updates
    key = REGISTRY.check_modifiable(RecordType.NODE, "node.transport_name")
    assert key.name == "iface.transport_name"
    assert REGISTRY.find(RecordType.NODE, "node.transport_name") is None
    assert REGISTRY.check_modifiable(RecordType.NODE, "node.session.auth.password_length")


@pytest.mark.parametrize(
    ("name", "value", "normalized"),
    [
        ("node.startup", "automatic", "automatic"),
        ("node.conn[0].iscsi.HeaderDigest", "CRC32C,None", "CRC32C,None"),
        ("node.session.cmds_max", " 64 ", "64"),
        ("node.session.cmds_max", "+7", "7"),
        ("node.session.timeo.replacement_timeout", "-1", "-1"),
        ("node.session.auth.chap_algs", "SHA256 MD5,SHA256", "SHA256,MD5"),
        ("node.session.auth.chap_algs", "", ""),
        ("node.session.auth.password", "  pa#ss, word  ", "pa#ss, word"),
        ("node.session.auth.username", "", ""),
        ("node.transport_name", "iser", "iser"),
        ("iface.prefix_len", "128", "128"),
    ],
)
def test_validate_strict(name: str, value: str, normalized: str) -> None:
    assert REGISTRY.validate(RecordType.NODE if name.startswith("node.") else RecordType.IFACE,
                             name, value) == normalized  # fmt: skip


@pytest.mark.parametrize(
    ("record", "name", "value", "message"),
    [
        (RecordType.NODE, "node.startup", "bogus",
         "unknown value format 'bogus' for parameter name 'node.startup'"),
        (RecordType.NODE, "node.startup", "Automatic",
         "unknown value format 'Automatic' for parameter name 'node.startup'"),
        (RecordType.NODE, "node.session.iscsi.InitialR2T", "yes",
         "unknown value format 'yes' for parameter name 'node.session.iscsi.InitialR2T'"),
        (RecordType.NODE, "node.startup", "",
         "unknown value format '' for parameter name 'node.startup'"),
        (RecordType.NODE, "node.session.cmds_max", "abc",
         "unknown value format 'abc' for parameter name 'node.session.cmds_max'"),
        (RecordType.NODE, "node.session.cmds_max", "0x10",
         "unknown value format '0x10' for parameter name 'node.session.cmds_max'"),
        (RecordType.NODE, "node.session.cmds_max", "4294967297",
         "value '4294967297' for parameter name 'node.session.cmds_max' is out of range"),
        (RecordType.IFACE, "iface.prefix_len", "300",
         "value '300' for parameter name 'iface.prefix_len' is out of range 0..255"),
        (RecordType.IFACE, "iface.vlan_id", "-1",
         "value '-1' for parameter name 'iface.vlan_id' is out of range 0..65535"),
        (RecordType.NODE, "node.session.auth.chap_algs", "MD5,bogus",
         "unknown value format 'MD5,bogus' for parameter name 'node.session.auth.chap_algs'"),
        (RecordType.NODE, "node.session.auth.username", "a\nb",
         "must be a single line"),
        (RecordType.NODE, "node.session.auth.password", "x" * 256,
         "is longer than 255 bytes"),
        (RecordType.IFACE, "iface.net_ifacename", "eth0.1234567890a",
         "is longer than 15 bytes"),
        (RecordType.NODE, "node.foo", "1", "Cannot modify node.foo. Invalid param name."),
    ],
)  # fmt: skip
def test_validate_strict_refusals(record: RecordType, name: str, value: str, message: str) -> None:
    with pytest.raises(InvalidParameterError) as exc:
        REGISTRY.validate(record, name, value)
    assert message in str(exc.value)
    assert exc.value.code == IscsiErr.INVAL


@pytest.mark.parametrize(
    ("record", "name", "value", "stored"),
    [  # what iscsiadm 2.1.8 -o update stored (oracle)
        (RecordType.NODE, "node.session.cmds_max", "abc", "0"),
        (RecordType.NODE, "node.session.cmds_max", "-5", "-5"),
        (RecordType.NODE, "node.session.cmds_max", "12abc", "12"),
        (RecordType.NODE, "node.session.cmds_max", " 42", "42"),
        (RecordType.NODE, "node.session.cmds_max", "4294967297", "1"),
        (RecordType.NODE, "node.session.cmds_max", "99999999999999999999", "-1"),
        (RecordType.NODE, "node.session.cmds_max", "0x10", "0"),
        (RecordType.NODE, "node.session.cmds_max", "+7", "7"),
        (RecordType.NODE, "node.session.cmds_max", "", "0"),
        (RecordType.IFACE, "iface.prefix_len", "300", "44"),
        (RecordType.IFACE, "iface.prefix_len", "-1", "255"),
        (RecordType.IFACE, "iface.vlan_id", "70000", "4464"),
        (RecordType.IFACE, "iface.iface_num", "4294967295", "-1"),
        (RecordType.IFACE, "iface.max_burst_len", "4294967296", "0"),
        (RecordType.IFACE, "iface.state", "bogus", "bogus"),
        (RecordType.NODE, "node.session.auth.chap_algs", "bogus", ""),
        (RecordType.NODE, "node.session.auth.chap_algs", "MD5 SHA1", "MD5,SHA1"),
        (RecordType.NODE, "node.session.auth.username", "u" * 300, "u" * 255),
    ],
)
def test_validate_lenient_is_iscsiadm(
    record: RecordType, name: str, value: str, stored: str
) -> None:
    assert REGISTRY.validate(record, name, value, lenient=True) == stored


def test_validate_lenient_still_refuses_bad_enums() -> None:
    with pytest.raises(InvalidParameterError, match="unknown value format 'bogus'"):
        REGISTRY.validate(RecordType.NODE, "node.startup", "bogus", lenient=True)


def test_parse_value_reader_semantics() -> None:
    startup = REGISTRY.get(RecordType.NODE, "node.startup")
    assert REGISTRY.parse_value(startup, "onboot") == "onboot"
    assert REGISTRY.parse_value(startup, "bogus") is None
    algs = REGISTRY.get(RecordType.NODE, "node.session.auth.chap_algs")
    warnings: list[str] = []
    assert REGISTRY.parse_value(algs, "MD5,MD5,x,SHA1", warnings=warnings) == "MD5,SHA1"
    assert warnings == [
        "Ignoring repeated value 'MD5' for 'node.session.auth.chap_algs'",
        "Ignoring unknown value 'x' for 'node.session.auth.chap_algs'",
    ]
    hw = REGISTRY.get(RecordType.IFACE, "iface.hwaddress")
    assert REGISTRY.parse_value(hw, "00:11:22:33:44:55:66") == "00:11:22:33:44:55"
    name = REGISTRY.get(RecordType.NODE, "node.session.auth.username")
    assert REGISTRY.parse_value(name, "é" * 200) == "é" * 127 + "\udcc3"  # bytes, like C


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("", 0),
        ("abc", 0),
        ("  12", 12),
        ("+5", 5),
        ("-1", (1 << 64) - 1),
        ("12abc", 12),
        ("0x1f", 0),
        ("99999999999999999999", (1 << 64) - 1),
        ("-99999999999999999999", (1 << 64) - 1),
        ("\t\n7", 7),
        ("- 7", 0),
        ("٣", 0),  # only ASCII digits
    ],
)
def test_c_strtoul(text: str, value: int) -> None:
    assert c_strtoul(text) == value


# -- iface family ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "values", "family"),
    [  # each verified against iscsiadm 2.1.8 (tests/integration/test_config_oracle.py)
        ("plain", {}, "ipv4"),
        ("ipv4ipv6", {}, "ipv6"),
        ("ipv6ipv4", {}, "ipv6"),
        ("X_IPV6", {}, "ipv4"),
        ("c_ipv6", {"iface.bootproto": "dhcp"}, "ipv6"),
        ("ifd", {"iface.bootproto": "dhcp", "iface.ipaddress": "fe80::1"}, "ipv4"),
        ("ifi", {"iface.bootproto": "DHCP", "iface.ipaddress": "fe80::1"}, "ipv6"),
        ("ife", {"iface.ipaddress": "default"}, "ipv6"),
        ("iff", {"iface.ipaddress": "<empty>"}, "ipv4"),
        ("ifg_ipv6", {"iface.ipaddress": "<empty>"}, "ipv6"),
        ("b_ipv6", {"iface.ipaddress": "x.y"}, "ipv4"),
        ("a_ipv4", {"iface.ipaddress": "fe80::1"}, "ipv6"),
    ],
)
def test_iface_family_disk_rule(name: str, values: dict[str, str], family: Family) -> None:
    assert iface_family(values, name) == family


def test_iface_family_show_rule_is_name_only() -> None:
    assert iface_family({"iface.ipaddress": "fe80::1"}, "eth0", show=True) == "ipv4"
    assert iface_family({"iface.ipaddress": "10.0.0.1"}, "x_ipv6", show=True) == "ipv6"
    assert iface_family_for_read(RecordType.NODE, "x_ipv6") == "ipv4"
    assert iface_family_for_read(RecordType.IFACE, "x_ipv6") == "ipv6"


def test_ipv6_node_rewrite_loses_ipv6_values() -> None:
    """What iscsiadm's read-modify-write does to an IPv6 node (why for_read exists)."""
    before = values_of(GOLDEN / "node_ipv6_full_disk.txt")
    after = values_of(GOLDEN / "node_ipv6_rewritten_disk.txt")
    assert before["iface.hop_limit"] == "7" and after["iface.hop_limit"] == "0"
    assert "iface.ipv6_autocfg" in before and "iface.ipv6_autocfg" not in after
    assert after["iface.gateway"] == "s_gw"  # common on disk
    assert "iface.bootproto" not in after  # IPv4 block


# -- versions and the reference TSV ------------------------------------------------------


def test_later_versions() -> None:
    later = REGISTRY.for_version("2.1.11")
    assert later.get(RecordType.NODE, "node.session.sess_reopen_log_freq").default == "1"
    assert later.find(RecordType.NODE, "node.conn[0].tcp.congestion_control") is None
    assert later.get(RecordType.NODE, "node.session.xmit_thread_priority").default == "0"
    assert "slp" not in later.get(RecordType.NODE, "node.discovery_type").allowed
    assert "slp" in REGISTRY.get(RecordType.NODE, "node.discovery_type").allowed
    assert REGISTRY.introduced_in(RecordType.NODE, "node.session.sess_reopen_log_freq") == "2.1.11"
    head = Registry("2.1.12")
    order = [k.name for k in head.keys(RecordType.NODE)]
    assert order.index("node.session.sess_reopen_log_freq") == (
        order.index("node.session.reopen_max") + 1
    )
    assert REGISTRY.for_version(REGISTRY.version) is REGISTRY


def _tsv() -> Path | None:
    base = shared_dir()
    path = base / "reference" / "open-iscsi-record-keys.tsv" if base is not None else None
    return path if path is not None and path.is_file() else None


_TSV_RECORDS = {
    "node": RecordType.NODE,
    "iface": RecordType.IFACE,
    "discovery(sendtargets)": RecordType.SENDTARGETS,
    "discovery(isns)": RecordType.ISNS,
    "host_chap": RecordType.HOST_CHAP,
    "flashnode": RecordType.FLASHNODE,
}
#: Where 2.1.8 (what REGISTRY emulates) differs from the TSV (upstream HEAD).
_TSV_218_DELTAS = {
    ("node.session.xmit_thread_priority", "default"): "-20",
    ("node.session.xmit_thread_priority", "iscsid_conf_default"): "-20",
}


def _tsv_default(text: str) -> str | None:
    """The TSV's default column as a value; None where it names no fixed value."""
    if text.startswith("(empty)"):
        return ""
    if text.startswith("("):
        return None  # record id, file name, read from HBA/sysfs
    return text.split(" (", 1)[0]


def test_registry_matches_reference_tsv() -> None:
    path = _tsv()
    if path is None:
        pytest.skip("shared/reference/open-iscsi-record-keys.tsv not found (set ISCSIKIT_SHARED)")
    head = Registry("2.1.12")  # the TSV describes upstream HEAD
    rows = list(csv.DictReader(path.open(), delimiter="\t"))
    assert len(rows) == 285
    seen: dict[RecordType, list[str]] = {r: [] for r in RecordType}
    for row in rows:
        name, kind = row["key"], row["record_type"]
        records = (
            [RecordType.SENDTARGETS, RecordType.ISNS]
            if kind == "discovery(common)"
            else [_TSV_RECORDS[kind]]
        )
        for record in records:
            seen[record].append(name)
            key = head.get(record, name)
            assert key.value_type.value == row["value_type"], name
            default = _tsv_default(row["default"])
            if default is not None and key.name != "discovery.type":
                assert key.default == default, name
            if key.value_type in (ValueType.ENUM, ValueType.LIST) and "|" in row["allowed_values"]:
                assert "|".join(key.allowed) == row["allowed_values"], name
            conf = row["iscsid_conf_default(repo etc/iscsid.conf)"] or None
            assert key.iscsid_conf_default == conf, name
            ours = REGISTRY.find(record, name)
            if ours is None:
                assert REGISTRY.introduced_in(record, name), name
                continue
            for field in ("default", "iscsid_conf_default"):
                expected = _TSV_218_DELTAS.get((name, field), getattr(key, field))
                assert getattr(ours, field) == expected, (name, field)
    for record, names in seen.items():
        assert sorted(names) == sorted(k.name for k in head.all_keys(record)), record
    # the TSV lists node, iface, discovery, host_chap and flashnode keys in idbm order
    for record in (RecordType.NODE, RecordType.IFACE, RecordType.HOST_CHAP, RecordType.FLASHNODE):
        assert seen[record] == [k.name for k in head.all_keys(record)], record


def test_keytable_is_consistent() -> None:
    assert len(set(keytable.NODE_DISK_ORDER)) == len(keytable.NODE_DISK_ORDER)
    assert set(keytable.NODE_DISK_ORDER) == set(keytable.NODE_SHOW_ORDER)
    for record in RecordType:
        for key in REGISTRY.all_keys(record):
            assert key.default == "" or REGISTRY.validate(record, key.name, key.default) == (
                key.default
            ) or key.record_id, key.name  # fmt: skip
            assert key.description


_TEXTS = ["", "0", "-0", "00", "7", "-1", "+7", " 42", "12abc", "abc", "255", "256", "65535",
          "65536", "2147483647", "2147483648", "-2147483648", "-2147483649", "4294967295",
          "4294967296", "9223372036854775807", "99999999999999999999", "٣", "Yes", "No",
          "manual", "MD5, SHA1", "x" * 300, "é" * 70]  # fmt: skip


@pytest.mark.parametrize("record", list(RecordType))
def test_precompiled_parsers_equal_parse_value(record: RecordType) -> None:
    parsers = REGISTRY.parsers(record)
    assert set(parsers) == {k.name for k in REGISTRY.all_keys(record)}
    for key in REGISTRY.all_keys(record):
        other = dataclasses.replace(key, description="copy")  # not the registry's object
        for text in _TEXTS:
            expected = REGISTRY.parse_value(key, text)
            assert parsers[key.name](text) == expected == REGISTRY.parse_value(other, text)
            if key.value_type.is_numeric:
                width = {ValueType.INT32: 32, ValueType.UINT8: 8, ValueType.UINT16: 16,
                         ValueType.UINT32: 32}[key.value_type]  # fmt: skip
                n = c_strtoul(text) & ((1 << width) - 1)
                if key.value_type is ValueType.INT32 and n >= 1 << 31:
                    n -= 1 << 32
                assert expected == str(n), (key.name, text)
