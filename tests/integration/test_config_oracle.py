"""The config registry and readers agree with the real iscsiadm 2.1.8 (the oracle).

Runs ``shared/tools/iscsiadm-oracle`` on scratch databases and checks, against the live
binary, every fact :mod:`iscsikit.config` encodes: on-disk and ``-o show`` key orders for
node (IPv4 and IPv6 ifaces), iface, SendTargets and iSNS records; compiled defaults of
new records; the numeric type of every key; the longest value of every string key;
``-o update`` validation messages and iscsiadm's lenient number parsing; the iface IP
family rule; and the record-file line reader.

The same recipe produces the golden files the unit tests use
(``tests/unit/config/golden/``): ``ISCSIKIT_REGEN_GOLDEN=1 pytest -m integration
tests/integration/test_config_oracle.py`` rewrites them; otherwise the live output must
equal them.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from iscsikit.config.recparse import parse_lines
from iscsikit.config.registry import (
    REGISTRY,
    Family,
    RecordKey,
    RecordType,
    ValueType,
    iface_family,
    unknown_value_message,
)
from iscsikit.errors import InvalidParameterError
from iscsikit.testing import peers

pytestmark = pytest.mark.integration

GOLDEN = Path(__file__).resolve().parents[1] / "unit" / "config" / "golden"
REGEN = os.environ.get("ISCSIKIT_REGEN_GOLDEN") == "1"

T4 = "iqn.2026-11.ex:n4"
T6 = "iqn.2026-11.ex:n6"
P4 = "127.0.0.1:3260,1"
P6 = "[fe80::2]:3260,2"
ST = "127.0.0.1:3260"
ISNS = "127.0.0.1"


@pytest.fixture(scope="module", autouse=True)
def _need_oracle() -> None:
    reason = peers.iscsiadm_unavailable()
    if reason:
        pytest.skip(reason)


@dataclass
class Oracle:
    """One scratch database driven by the real iscsiadm."""

    db: Path

    def run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        oracle = peers.iscsiadm_oracle()
        assert oracle is not None
        proc = subprocess.run(
            ["bash", str(oracle), "--db", str(self.db), "--", *args],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        if check and proc.returncode != 0:
            raise AssertionError(f"iscsiadm {' '.join(args)} -> {proc.returncode}: {proc.stderr}")
        return proc

    def stderr(self, *args: str) -> tuple[int, list[str]]:
        proc = self.run(*args, check=False)
        lines = [
            line
            for line in proc.stderr.splitlines()
            if line and "can not connect to iSCSI daemon" not in line
        ]
        return proc.returncode, lines

    @property
    def etc(self) -> Path:
        return self.db / "etc-iscsi"

    def node_file(self, target: str) -> Path:
        (path,) = [p for p in (self.etc / "nodes" / target).rglob("*") if p.is_file()]
        return path


def _sample(key: RecordKey) -> str:
    """A non-empty, valid value for every kind of key."""
    if key.value_type is ValueType.ENUM:
        return key.allowed[-1]
    if key.value_type is ValueType.LIST:
        return "SHA256,MD5"
    if key.value_type.is_numeric:
        return "7"
    return "s_" + key.name.rsplit(".", 1)[1]


IFACE_SPECIAL = {"iface.transport_name": "tcp", "iface.bootproto": "static"}


def _fill_iface(o: Oracle, name: str, family: Family, address: str) -> None:
    o.run("-m", "iface", "-I", name, "-o", "new")
    for key in REGISTRY.keys(RecordType.IFACE, family):
        if key.name in ("iface.iscsi_ifacename", "iface.hwaddress"):
            continue  # the id; hwaddress and net_ifacename exclude each other
        value = address if key.name == "iface.ipaddress" else IFACE_SPECIAL.get(key.name)
        o.run(
            "-m", "iface", "-I", name, "-o", "update", "-n", key.name, "-v", value or _sample(key)
        )


def _fill(o: Oracle, record: RecordType, select: list[str]) -> None:
    for key in REGISTRY.keys(record):
        if key.modifiable and not key.name.startswith("iface."):
            o.run(*select, "-o", "update", "-n", key.name, "-v", _sample(key))


def _append(path: Path, lines: list[str]) -> None:
    text = path.read_text().replace("# END RECORD\n", "")
    path.write_text(text + "".join(f"{line}\n" for line in lines) + "# END RECORD\n")


@pytest.fixture(scope="module")
def full(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """Records whose every key holds a non-empty value, on disk and as shown."""
    o = Oracle(tmp_path_factory.mktemp("full"))
    _fill_iface(o, "ifx", "ipv4", "10.1.2.3")
    _fill_iface(o, "ifx_ipv6", "ipv6", "fe80::1")
    o.run("-m", "node", "-o", "new", "-T", T4, "-p", P4, "-I", "ifx")
    _fill(o, RecordType.NODE, ["-m", "node", "-T", T4])
    # hwaddress (exclusive with net_ifacename) and discovery_address (set only by
    # discovery) cannot be set through iscsiadm: append them, let iscsiadm rewrite.
    _append(o.node_file(T4), ["iface.hwaddress = s_hw", "node.discovery_address = s_da"])
    o.run("-m", "node", "-T", T4, "-o", "update", "-n", "node.startup", "-v", "manual")
    # An IPv6 node keeps its IPv6 iface values only until iscsiadm rewrites it (the
    # reader uses the IPv4 key set), so take it as created.
    o.run("-m", "node", "-o", "new", "-T", T6, "-p", P6, "-I", "ifx_ipv6")
    o.run("-m", "discoverydb", "-t", "st", "-p", ST, "-o", "new")
    _fill(o, RecordType.SENDTARGETS, ["-m", "discoverydb", "-t", "st", "-p", ST])
    o.run("-m", "discoverydb", "-t", "isns", "-p", ISNS, "-o", "new")
    _fill(o, RecordType.ISNS, ["-m", "discoverydb", "-t", "isns", "-p", ISNS])
    out = {
        "node_ipv4_full_disk.txt": o.node_file(T4).read_text(),
        "node_ipv4_full_show.txt": o.run("-m", "node", "-T", T4, "-o", "show", "-S").stdout,
        "node_ipv6_full_disk.txt": o.node_file(T6).read_text(),
        "node_ipv6_full_show.txt": o.run("-m", "node", "-T", T6, "-o", "show", "-S").stdout,
        "iface_ipv4_full_disk.txt": (o.etc / "ifaces" / "ifx").read_text(),
        "iface_ipv4_full_show.txt": o.run("-m", "iface", "-I", "ifx").stdout,
        "iface_ipv6_full_disk.txt": (o.etc / "ifaces" / "ifx_ipv6").read_text(),
        "iface_ipv6_full_show.txt": o.run("-m", "iface", "-I", "ifx_ipv6").stdout,
        "st_full_disk.txt": (o.etc / "send_targets" / "127.0.0.1,3260" / "st_config").read_text(),
        "st_full_show.txt": o.run("-m", "discoverydb", "-t", "st", "-p", ST, "-o", "show").stdout,
        "isns_full_disk.txt": (o.etc / "isns" / "127.0.0.1,3205" / "isns_config").read_text(),
        "isns_full_show.txt": o.run(
            "-m", "discoverydb", "-t", "isns", "-p", ISNS, "-o", "show"
        ).stdout,
    }
    # What a read-modify-write does to an IPv6 node record (own DB: libopeniscsiusr
    # rejects the result, which would break every other -m node here).
    o2 = Oracle(tmp_path_factory.mktemp("rewrite"))
    _fill_iface(o2, "ifx_ipv6", "ipv6", "fe80::1")
    o2.run("-m", "node", "-o", "new", "-T", T6, "-p", P6, "-I", "ifx_ipv6")
    _append(
        o2.node_file(T6),
        ["iface.gateway = s_gw", "iface.bootproto = s_bp", "node.session.auth.username = s_u"],
    )
    o2.run("-m", "node", "-T", T6, "-o", "update", "-n", "node.startup", "-v", "manual")
    out["node_ipv6_rewritten_disk.txt"] = o2.node_file(T6).read_text()
    yield out


@pytest.fixture(scope="module")
def defaults(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """New records with compiled defaults (no iscsid, so no iscsid.conf)."""
    o = Oracle(tmp_path_factory.mktemp("defaults"))
    o.run("-m", "iface", "-I", "plain", "-o", "new")
    o.run("-m", "iface", "-I", "plain_ipv6", "-o", "new")
    o.run("-m", "node", "-o", "new", "-T", T4, "-p", P4)
    o.run("-m", "discoverydb", "-t", "st", "-p", ST, "-o", "new")
    o.run("-m", "discoverydb", "-t", "isns", "-p", ISNS, "-o", "new")
    return {
        "node_default_show.txt": o.run("-m", "node", "-T", T4, "-o", "show").stdout,
        "node_default_disk.txt": o.node_file(T4).read_text(),
        "iface_default_show.txt": o.run("-m", "iface", "-I", "plain").stdout,
        "iface_ipv6_default_show.txt": o.run("-m", "iface", "-I", "plain_ipv6").stdout,
        "st_default_show.txt": o.run(
            "-m", "discoverydb", "-t", "st", "-p", ST, "-o", "show"
        ).stdout,
        "isns_default_show.txt": o.run(
            "-m", "discoverydb", "-t", "isns", "-p", ISNS, "-o", "show"
        ).stdout,
    }


@pytest.fixture(scope="module")
def minus_one(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Every numeric key set to -1: how each field's C type stores and prints it."""
    o = Oracle(tmp_path_factory.mktemp("types"))
    families: tuple[tuple[str, Family], ...] = (("tyv4", "ipv4"), ("ty_ipv6", "ipv6"))
    for name, family in families:
        o.run("-m", "iface", "-I", name, "-o", "new")
        for key in REGISTRY.keys(RecordType.IFACE, family):
            if key.value_type.is_numeric:
                o.run("-m", "iface", "-I", name, "-o", "update", "-n", key.name, "-v", "-1")
    o.run("-m", "node", "-o", "new", "-T", T4, "-p", P4, "-I", "tyv4")
    for key in REGISTRY.keys(RecordType.NODE):
        if key.value_type.is_numeric and key.modifiable:
            o.run("-m", "node", "-T", T4, "-o", "update", "-n", key.name, "-v", "-1")
    for t, p, record in (("st", ST, RecordType.SENDTARGETS), ("isns", ISNS, RecordType.ISNS)):
        o.run("-m", "discoverydb", "-t", t, "-p", p, "-o", "new")
        for key in REGISTRY.keys(record):
            if key.value_type.is_numeric and key.modifiable:
                o.run(
                    "-m",
                    "discoverydb",
                    "-t",
                    t,
                    "-p",
                    p,
                    "-o",
                    "update",
                    "-n",
                    key.name,
                    "-v",
                    "-1",
                )
    return {
        "types_iface_ipv4_disk.txt": (o.etc / "ifaces" / "tyv4").read_text(),
        "types_iface_ipv4_show.txt": o.run("-m", "iface", "-I", "tyv4").stdout,
        "types_iface_ipv6_disk.txt": (o.etc / "ifaces" / "ty_ipv6").read_text(),
        "types_iface_ipv6_show.txt": o.run("-m", "iface", "-I", "ty_ipv6").stdout,
        "types_node_disk.txt": o.node_file(T4).read_text(),
        "types_node_show.txt": o.run("-m", "node", "-T", T4, "-o", "show").stdout,
        "types_st_disk.txt": (o.etc / "send_targets" / "127.0.0.1,3260" / "st_config").read_text(),
        "types_isns_disk.txt": (o.etc / "isns" / "127.0.0.1,3205" / "isns_config").read_text(),
    }


def _check_golden(outputs: dict[str, str]) -> None:
    for name, text in outputs.items():
        path = GOLDEN / name
        if REGEN:
            path.write_text(text)
        else:
            assert path.read_text() == text, f"{name}: iscsiadm's output changed; see golden/README"


def test_goldens_full(full: dict[str, str]) -> None:
    _check_golden(full)


def test_goldens_defaults(defaults: dict[str, str]) -> None:
    _check_golden(defaults)


def test_goldens_types(minus_one: dict[str, str]) -> None:
    _check_golden(minus_one)


def _keys(text: str) -> list[str]:
    return [line.split(" = ", 1)[0] for line in text.splitlines() if " = " in line]


@pytest.mark.parametrize(
    ("golden", "record", "family", "show"),
    [
        ("node_ipv4_full_disk.txt", RecordType.NODE, "ipv4", False),
        ("node_ipv4_full_show.txt", RecordType.NODE, "ipv4", True),
        ("node_ipv6_full_disk.txt", RecordType.NODE, "ipv6", False),
        ("node_ipv6_full_show.txt", RecordType.NODE, "ipv6", True),
        ("iface_ipv4_full_disk.txt", RecordType.IFACE, "ipv4", False),
        ("iface_ipv4_full_show.txt", RecordType.IFACE, "ipv4", True),
        ("iface_ipv6_full_disk.txt", RecordType.IFACE, "ipv6", False),
        ("iface_ipv6_full_show.txt", RecordType.IFACE, "ipv6", True),
        ("st_full_disk.txt", RecordType.SENDTARGETS, None, False),
        ("st_full_show.txt", RecordType.SENDTARGETS, None, True),
        ("isns_full_disk.txt", RecordType.ISNS, None, False),
        ("isns_full_show.txt", RecordType.ISNS, None, True),
    ],
)
def test_live_order(
    full: dict[str, str], golden: str, record: RecordType, family: Family | None, show: bool
) -> None:
    listed = REGISTRY.show_order if show else REGISTRY.keys
    expected = [k.name for k in listed(record, family)]
    got = _keys(full[golden])
    assert got == [n for n in expected if n in got]  # same relative order, nothing unknown
    if show:
        assert got == expected  # show prints every key


def test_live_defaults(defaults: dict[str, str]) -> None:
    cases: tuple[tuple[str, RecordType, Family | None], ...] = (
        ("node_default_show.txt", RecordType.NODE, "ipv4"),
        ("iface_default_show.txt", RecordType.IFACE, "ipv4"),
        ("iface_ipv6_default_show.txt", RecordType.IFACE, "ipv6"),
        ("st_default_show.txt", RecordType.SENDTARGETS, None),
        ("isns_default_show.txt", RecordType.ISNS, None),
    )
    for golden, record, family in cases:
        shown = dict(
            line.split(" = ", 1) for line in defaults[golden].splitlines() if " = " in line
        )
        for key in REGISTRY.show_order(record, family):
            if key.record_id or key.name == "iface.iscsi_ifacename":
                continue
            assert shown[key.name] == (key.default or "<empty>"), (golden, key.name)


def test_live_numeric_types(minus_one: dict[str, str]) -> None:
    """-1 read back tells the C type: int32 keeps -1, uintN prints 2**N-1."""
    for golden, record in (
        ("types_iface_ipv4_disk.txt", RecordType.IFACE),
        ("types_iface_ipv6_disk.txt", RecordType.IFACE),
        ("types_node_disk.txt", RecordType.NODE),
        ("types_st_disk.txt", RecordType.SENDTARGETS),
        ("types_isns_disk.txt", RecordType.ISNS),
    ):
        stored = dict(
            line.split(" = ", 1) for line in minus_one[golden].splitlines() if " = " in line
        )
        for name, value in stored.items():
            key = REGISTRY.get(record, name)
            if key.value_type.is_numeric and key.modifiable:
                assert REGISTRY.parse_value(key, "-1") == value, (golden, name)


def test_live_string_lengths(tmp_path: Path) -> None:
    o = Oracle(tmp_path)
    long = "".join(chr(97 + i % 26) for i in range(400))
    o.run("-m", "iface", "-I", "len4", "-o", "new")
    o.run("-m", "iface", "-I", "len_ipv6", "-o", "new")
    checked = 0
    families: tuple[tuple[str, Family], ...] = (("len4", "ipv4"), ("len_ipv6", "ipv6"))
    for name, family in families:
        for key in REGISTRY.keys(RecordType.IFACE, family):
            if key.value_type is not ValueType.STRING or not key.modifiable:
                continue
            if key.name in ("iface.ipaddress", "iface.hwaddress", "iface.transport_name"):
                continue  # would change the family / binding / break later updates
            o.run("-m", "iface", "-I", name, "-o", "update", "-n", key.name, "-v", long)
        stored = dict(
            line.split(" = ", 1)
            for line in (o.etc / "ifaces" / name).read_text().splitlines()
            if " = " in line
        )
        for key_name, value in stored.items():
            key = REGISTRY.get(RecordType.IFACE, key_name)
            if value.startswith("abc"):
                assert len(value) == key.max_length, key_name
                assert REGISTRY.parse_value(key, long) == value
                checked += 1
    assert checked > 40


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("node.startup", "bogus"),
        ("node.startup", "Automatic"),
        ("node.session.iscsi.InitialR2T", "yes"),
        ("node.foo", "1"),
        ("node.name", "x"),
        ("node.conn[0].port", "5"),
        ("iface.vlan_id", "5"),
        ("iface.iscsi_ifacename", "x"),
        ("node.session.sess_reopen_log_freq", "1"),
    ],
)
def test_live_update_refusals(tmp_path: Path, name: str, value: str) -> None:
    o = Oracle(tmp_path)
    o.run("-m", "node", "-o", "new", "-T", T4, "-p", P4)
    rc, err = o.stderr("-m", "node", "-T", T4, "-o", "update", "-n", name, "-v", value)
    assert rc == 7
    try:
        REGISTRY.check_modifiable(RecordType.NODE, name)
        REGISTRY.validate(RecordType.NODE, name, value)
    except InvalidParameterError as exc:
        assert err[0] == f"iscsiadm: {exc}"
    else:
        pytest.fail(f"{name}={value} accepted")


NUMBERS = ["abc", "-5", "12abc", " 42", "4294967297", "99999999999999999999", "0x10", "+7", ""]


def test_live_lenient_numbers(tmp_path: Path) -> None:
    o = Oracle(tmp_path)
    o.run("-m", "iface", "-I", "ifn", "-o", "new")
    o.run("-m", "node", "-o", "new", "-T", T4, "-p", P4)
    cases = [
        (RecordType.NODE, "node.session.cmds_max"),
        (RecordType.IFACE, "iface.prefix_len"),
        (RecordType.IFACE, "iface.vlan_id"),
        (RecordType.IFACE, "iface.max_burst_len"),
    ]
    for record, name in cases:
        for text in NUMBERS:
            if record is RecordType.NODE:
                o.run("-m", "node", "-T", T4, "-o", "update", "-n", name, "-v", text)
                path = o.node_file(T4)
            else:
                o.run("-m", "iface", "-I", "ifn", "-o", "update", "-n", name, "-v", text)
                path = o.etc / "ifaces" / "ifn"
            (line,) = [x for x in path.read_text().splitlines() if x.startswith(f"{name} = ")]
            assert line.split(" = ", 1)[1] == REGISTRY.validate(record, name, text, lenient=True)


def test_live_chap_algs(tmp_path: Path) -> None:
    o = Oracle(tmp_path)
    o.run("-m", "node", "-o", "new", "-T", T4, "-p", P4)
    key = REGISTRY.get(RecordType.NODE, "node.session.auth.chap_algs")
    for text in (
        "MD5 SHA1",
        "bogus",
        "MD5,MD5,SHA256",
        "SHA3-256",
        "MD5,SHA1,SHA256,SHA3-256,SHA1",
    ):
        rc, err = o.stderr("-m", "node", "-T", T4, "-o", "update", "-n", key.name, "-v", text)
        assert rc == 0
        warnings: list[str] = []
        expected = REGISTRY.parse_value(key, text, warnings=warnings)
        assert err == [f"iscsiadm: {w}" for w in warnings]
        lines = [x for x in o.node_file(T4).read_text().splitlines() if x.startswith(key.name)]
        assert lines == ([f"{key.name} = {expected}"] if expected else [])


@pytest.mark.parametrize(
    ("iface", "settings"),
    [
        ("plain", {}),
        ("ipv4ipv6", {}),
        ("ipv6ipv4", {}),
        ("X_IPV6", {}),
        ("c_ipv6", {"iface.bootproto": "dhcp"}),
        ("ifd", {"iface.bootproto": "dhcp", "iface.ipaddress": "fe80::1"}),
        ("ifi", {"iface.bootproto": "DHCP", "iface.ipaddress": "fe80::1"}),
        ("ife", {"iface.ipaddress": "default"}),
        ("iff", {"iface.ipaddress": "<empty>"}),
        ("ifg_ipv6", {"iface.ipaddress": "<empty>"}),
        ("b_ipv6", {"iface.ipaddress": "x.y"}),
        ("a_ipv4", {"iface.ipaddress": "fe80::1"}),
    ],
)
def test_live_iface_family(tmp_path: Path, iface: str, settings: dict[str, str]) -> None:
    o = Oracle(tmp_path)
    o.run("-m", "iface", "-I", iface, "-o", "new")
    for name, value in settings.items():
        o.run("-m", "iface", "-I", iface, "-o", "update", "-n", name, "-v", value)
    written = set(_keys((o.etc / "ifaces" / iface).read_text()))
    family = "ipv6" if "iface.hop_limit" in written else "ipv4"
    assert "iface.ttl" in written or family == "ipv6"
    assert iface_family(settings, iface) == family


LINES = [
    "foo bar",
    "foo =",
    "   =   ",
    "foo",
    "node.startup = bogus",
    "node.leading_login=Yes",
    "node.session.auth.username_in=",
    "[section]",
    "node.session.queue_depth==12",
    'node.session.auth.username = a#b, c "q" ',
    "\tnode.session.auth.password\t=\tp w\t",
    "node.conn[0].timeo.noop_out_interval= 9",
    "node.conn[0].timeo.noop_out_timeout =9",
    "node.session.cmds_max = 0x20",
    "x" * 2100,
    "node.session.nr_sessions = 5",
]


def test_live_line_reader(tmp_path: Path) -> None:
    """A node file with hand-written lines: iscsiadm's warnings and values equal ours."""
    o = Oracle(tmp_path)
    o.run("-m", "node", "-o", "new", "-T", T4, "-p", P4)
    path = o.node_file(T4)
    base = [x for x in path.read_text().splitlines() if not x.startswith("# END")]
    text = "\n".join([*base, *LINES]) + "\nnode.session.scan = manual"  # no final newline
    path.write_text(text)
    rc, err = o.stderr("-m", "node", "-T", T4, "-o", "update", "-n", "node.startup", "-v", "manual")
    assert rc == 0
    assignments, problems = parse_lines(text, path)
    ours = [p.message for p in problems]
    values = REGISTRY.defaults(RecordType.NODE)
    for a in assignments:
        key = REGISTRY.find(RecordType.NODE, a.name)
        if key is None:
            continue
        parsed = REGISTRY.parse_value(key, a.value)
        if parsed is None:
            ours.append(unknown_value_message(a.name, a.value, a.line))
        else:
            values[key.name] = parsed
    assert sorted(e.removeprefix("iscsiadm: ") for e in err) == sorted(ours)
    stored = dict(x.split(" = ", 1) for x in path.read_text().splitlines() if " = " in x)
    values["node.startup"] = "manual"
    for key in REGISTRY.keys(RecordType.NODE, "ipv4"):
        if key.on_disk(values[key.name]):
            assert stored.pop(key.name) == values[key.name], key.name
    assert stored == {}


def test_live_iscsi_iname_shape() -> None:
    """Our generator's output has iscsi-iname's shape (ours: always 12 hex digits)."""
    if shutil.which("iscsi-iname") is None:
        pytest.skip("iscsi-iname not installed (Debian package open-iscsi)")
    theirs = subprocess.run(
        ["iscsi-iname", "-g", "-p", "iqn.2004-10.com.example"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    from iscsikit.tools.iname import main

    assert re.fullmatch(r"InitiatorName=iqn\.2004-10\.com\.example:[0-9a-f]{1,12}\n", theirs)
    import contextlib
    import io

    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        assert main(["-g", "-p", "iqn.2004-10.com.example"]) == 0
    assert re.fullmatch(r"InitiatorName=iqn\.2004-10\.com\.example:[0-9a-f]{12}\n", buf.getvalue())
