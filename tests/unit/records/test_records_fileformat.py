"""The record codec: every reader rule, byte-exact writing, round trips, the update patch.

Golden files in ``golden/`` were written by the real iscsiadm 2.1.8 (``regenerate.py``
there); the reader is also checked against :mod:`iscsikit.config.recparse`, the line
reader of iscsid.conf, which implements the same usr/idbm.c routine.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from iscsikit.config.recparse import parse_lines
from iscsikit.config.registry import REGISTRY, RecordType
from iscsikit.errors import InvalidParameterError
from iscsikit.records.fileformat import (
    RECORD_VERSION,
    format_record,
    parse_record,
    patch_record,
)

GOLDEN = Path(__file__).parent / "golden"
NODE = RecordType.NODE
P = Path("nodes/t/a,1,1/default")

CASES = [
    ("node_v4.txt", RecordType.NODE),
    ("node_v6.txt", RecordType.NODE),
    ("node_oldstyle.txt", RecordType.NODE),
    ("iface_v4.txt", RecordType.IFACE),
    ("iface_v6.txt", RecordType.IFACE),
    ("st_config.txt", RecordType.SENDTARGETS),
    ("isns_config.txt", RecordType.ISNS),
]


def record(*lines: str, end: bool = True) -> str:
    body = [f"# BEGIN RECORD {RECORD_VERSION}", *lines]
    if end:
        body.append("# END RECORD")
    return "\n".join(body) + "\n"


def messages(text: str) -> list[str]:
    return [p.message for p in parse_record(text, NODE, path=P).problems]


# -- golden files written by iscsiadm 2.1.8 --------------------------------------------


@pytest.mark.parametrize(("name", "record_type"), CASES)
def test_golden_file_round_trips_byte_for_byte(name: str, record_type: RecordType) -> None:
    text = (GOLDEN / name).read_text()
    parsed = parse_record(text, record_type, path=GOLDEN / name)
    assert parsed.problems == []
    assert parsed.complete and parsed.version == "2.1.8"
    assert format_record(parsed.values, record_type) == text


def test_golden_values_with_spaces_and_hash_survive() -> None:
    values = parse_record((GOLDEN / "node_v4.txt").read_text(), NODE).values
    assert values["node.session.auth.password"] == "pa ss#word = x"
    assert values["node.session.auth.username"] == "user name"
    assert values["iface.initiatorname"] == "iqn.2004-10.com.example:host a"
    assert values["node.session.timeo.replacement_timeout"] == "-1"


def test_golden_ipv6_iface_block_only() -> None:
    text = (GOLDEN / "node_v6.txt").read_text()
    assert "iface.hop_limit = 64" in text and "iface.tos" not in text
    values = parse_record(text, NODE).values
    assert values["node.conn[0].address"] == "fd00::10"
    # Re-formatted as IPv4 (wrong family) the IPv6 block disappears and tos appears.
    v4 = format_record(values, NODE, family="ipv4")
    assert "iface.hop_limit" not in v4 and "iface.tos = 0" in v4


# -- writer -----------------------------------------------------------------------------


def test_format_defaults_omit_empty_strings_write_numbers() -> None:
    values = {k.name: k.default for k in REGISTRY.keys(NODE)}
    values.update({"node.name": "iqn.x:t", "node.conn[0].address": "10.0.0.1"})
    text = format_record(values, NODE)
    lines = text.splitlines()
    assert lines[0] == "# BEGIN RECORD 2.1.8" and lines[-1] == "# END RECORD"
    assert "node.discovery_address" not in text  # empty string: not written
    assert "node.discovery_port = 0" in lines  # number: always written
    assert "iface.tos = 0" in lines  # IPv4 block for the default iface
    assert "iface.hop_limit" not in text
    assert "node.session.auth.password_length" not in text  # hidden


def test_format_missing_keys_take_defaults() -> None:
    text = format_record({"node.name": "iqn.x:t"}, NODE)
    assert "node.session.cmds_max = 128\n" in text
    assert "node.startup = manual\n" in text


def test_format_refuses_newline_and_nul() -> None:
    for bad in ("a\nnode.startup = automatic", "a\0b"):
        with pytest.raises(InvalidParameterError):
            format_record({"node.name": "iqn.x:t", "node.session.auth.password": bad}, NODE)


def test_format_ipv6_family_from_values() -> None:
    values = {"iface.iscsi_ifacename": "eth0", "iface.ipaddress": "fe80::1"}
    assert "iface.hop_limit = 0" in format_record(values, RecordType.IFACE)
    named = {"iface.iscsi_ifacename": "my_ipv6"}
    assert "iface.hop_limit = 0" in format_record(named, RecordType.IFACE)
    assert "iface.tos = 0" in format_record({"iface.iscsi_ifacename": "x"}, RecordType.IFACE)


@settings(max_examples=200)
@given(
    st.text(
        alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\n\0\r"),
        min_size=1,
        max_size=60,
    ).map(lambda s: s.strip(" \t\v\f\r"))
)
def test_string_values_round_trip(value: str) -> None:
    """Any one-line value without surrounding whitespace (what validation keeps) survives."""
    if not value:
        return
    values = {"node.name": "iqn.x:t", "node.session.auth.password": value}
    back = parse_record(format_record(values, NODE), NODE).values
    assert back["node.session.auth.password"] == value


# -- reader rules (usr/idbm.c idbm_recinfo_config) --------------------------------------


@pytest.mark.parametrize(
    ("line", "value"),
    [
        ("node.session.auth.username = a b  c", "a b  c"),
        ("node.session.auth.username =x", "x"),
        ("node.session.auth.username==x", "x"),  # the 1st '=' ends the name and is skipped
        ("node.session.auth.username == x", "= x"),
        ("\t node.session.auth.username \t=\t x y \t", "x y"),
        ("node.session.auth.username = a # b", "a # b"),
        ('node.session.auth.username = "q"', '"q"'),
    ],
)
def test_reader_value_is_rest_of_line(line: str, value: str) -> None:
    parsed = parse_record(record(line), NODE)
    assert parsed.values == {"node.session.auth.username": value}
    assert parsed.problems == []


@pytest.mark.parametrize(
    ("line", "why"),
    [
        ("node.startup=automatic", "does not have '=' separator"),
        ("node.startup= automatic", "does not have '=' separator"),
        ("node.startup automatic", "does not have '=' separator"),
        ("garbage", "does not have value"),
        ("node.startup =", "does not have value"),
        ("node.startup = ", "does not have value"),
    ],
)
def test_reader_rejects_lines_like_open_iscsi(line: str, why: str) -> None:
    parsed = parse_record(record(line), NODE, path=P)
    assert parsed.values == {}
    (problem,) = parsed.problems
    assert problem.line == 2 and problem.path == P and why in problem.message


def test_reader_skips_comments_blank_lines_begin_end() -> None:
    text = "\n# BEGIN RECORD 9.9\n\n  # a comment = x\nnode.startup = onboot\n\n# END RECORD\n"
    parsed = parse_record(text, NODE)
    assert parsed.values == {"node.startup": "onboot"}
    assert parsed.problems == [] and parsed.complete
    assert parsed.version is None  # BEGIN is only a version when it is the first line


def test_reader_unknown_key_is_reported_and_ignored() -> None:
    parsed = parse_record(record("node.bogus = 3", "node.startup = onboot"), NODE, path=P)
    assert parsed.values == {"node.startup": "onboot"}
    assert [(p.line, "unknown key 'node.bogus'" in p.message) for p in parsed.problems] == [
        (2, True)
    ]


def test_reader_hidden_length_key_is_silently_dropped() -> None:
    parsed = parse_record(record("node.session.auth.password_length = 9"), NODE)
    assert parsed.values == {} and parsed.problems == []


def test_reader_last_duplicate_wins_and_is_reported() -> None:
    parsed = parse_record(
        record("node.session.auth.username = first", "node.session.auth.username = sec ond"),
        NODE,
        path=P,
    )
    assert parsed.values == {"node.session.auth.username": "sec ond"}
    assert [p.line for p in parsed.problems] == [3]


def test_reader_bad_numbers_read_leniently() -> None:
    parsed = parse_record(
        record("node.session.cmds_max = 12abc", "node.session.queue_depth = abc"), NODE, path=P
    )
    assert parsed.values == {"node.session.cmds_max": "12", "node.session.queue_depth": "0"}
    assert [p.line for p in parsed.problems] == [2, 3]


def test_reader_unknown_enum_keeps_previous_value() -> None:
    parsed = parse_record(record("node.startup = automatic", "node.startup = bogus"), NODE, path=P)
    assert parsed.values == {"node.startup": "automatic"}
    assert any("unknown value format 'bogus'" in m for m in (p.message for p in parsed.problems))
    alone = parse_record(record("node.startup = chap"), NODE)
    assert alone.values == {}


def test_reader_missing_end_is_reported_valid_part_loads() -> None:
    parsed = parse_record(record("node.startup = onboot", end=False), NODE, path=P)
    assert parsed.values == {"node.startup": "onboot"}
    assert not parsed.complete
    (problem,) = parsed.problems
    assert "END RECORD" in problem.message and problem.line == 3


def test_reader_last_line_without_newline_is_skipped() -> None:
    """fgets() returns it without '\\n': open-iscsi skips it (a truncated value is never used)."""
    text = record("node.startup = onboot", end=False) + "node.session.cmds_max = 3"
    parsed = parse_record(text, NODE, path=P)
    assert parsed.values == {"node.startup": "onboot"}
    assert any(p.line == 3 and "no newline" in p.message for p in parsed.problems)


def test_reader_long_line_skipped_and_its_tail_read_as_a_line() -> None:
    tail = "node.startup = onboot"
    long_line = "node.session.auth.username = " + "x" * (2047 - 29) + tail
    assert len(long_line.encode()) == 2047 + len(tail)
    parsed = parse_record(record(long_line), NODE, path=P)
    # The first 2047 bytes are one fgets() chunk without newline (skipped); the rest of
    # the line is the next chunk -- and it parses, exactly as in open-iscsi.
    assert parsed.values == {"node.startup": "onboot"}
    assert any(p.line == 2 and "2046 bytes" in p.message for p in parsed.problems)


def test_reader_line_of_2046_bytes_fits() -> None:
    value = "v" * (2046 - len("node.session.auth.username = "))
    parsed = parse_record(record("node.session.auth.username = " + value), NODE)
    assert parsed.problems == [] or all("reads as" in p.message for p in parsed.problems)
    assert parsed.values["node.session.auth.username"].startswith("vvv")


def test_reader_nul_byte_ends_the_line() -> None:
    parsed = parse_record(record("node.startup = onboot\0junk"), NODE, path=P)
    assert parsed.values == {}
    assert any("NUL" in p.message for p in parsed.problems)


def test_reader_string_truncated_to_field() -> None:
    value = "u" * 300
    parsed = parse_record(record(f"node.session.auth.username = {value}"), NODE, path=P)
    assert parsed.values["node.session.auth.username"] == "u" * 255
    assert parsed.problems and "reads as" in parsed.problems[0].message


def test_reader_undecodable_bytes_round_trip() -> None:
    raw = b"node.session.auth.username = caf\xe9\n"
    text = record(raw.decode("utf-8", "surrogateescape").rstrip("\n"))
    parsed = parse_record(text, NODE)
    again = format_record({"node.name": "iqn.x:t", **parsed.values}, NODE)
    assert raw in again.encode("utf-8", "surrogateescape")


def test_reader_empty_file() -> None:
    parsed = parse_record("", NODE, path=P)
    assert parsed.values == {} and not parsed.complete and len(parsed.problems) == 1


# -- agreement with the iscsid.conf reader ----------------------------------------------

_LINE = st.one_of(
    st.sampled_from(
        [
            "node.startup = onboot",
            "node.startup=onboot",
            "node.startup==automatic",
            "  node.session.cmds_max\t=  12abc ",
            "node.session.auth.username = a # b",
            "# END RECORD",
            "",
            "garbage",
            "node.bogus = 1",
            "node.conn[0].port = 3260",
        ]
    ),
    st.text(alphabet=" \t=#ab.\0" + "é", max_size=12),
    st.text(alphabet="ab= ", min_size=2040, max_size=2060),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(_LINE, max_size=8), st.booleans())
def test_reader_agrees_with_recparse(lines: list[str], final_newline: bool) -> None:
    text = "\n".join(lines) + ("\n" if final_newline else "")
    assignments, conf_problems = parse_lines(text, P)
    parsed = parse_record(text, NODE, path=P)
    expected: dict[str, str] = {}
    for a in assignments:
        key = REGISTRY.find(NODE, a.name)
        if key is None or key.hidden:
            continue
        value = REGISTRY.parse_value(key, a.value)
        if value is not None:
            expected[a.name] = value
    assert parsed.values == expected
    # Every line recparse complains about is one this reader reports too.
    assert {p.line for p in conf_problems} <= {p.line for p in parsed.problems}


# -- the update patch -------------------------------------------------------------------


def full_rewrite(text: str, changes: dict[str, str]) -> str:
    values = parse_record(text, NODE).values | changes
    return format_record({k: v for k, v in values.items() if v != ""}, NODE)


@pytest.mark.parametrize("name", ["node_v4.txt", "node_v6.txt", "node_oldstyle.txt"])
@pytest.mark.parametrize(
    "changes",
    [
        {"node.startup": "manual", "node.session.auth.password": "new # pw"},
        {"node.session.auth.username": ""},  # the line goes
        {"node.session.auth.username_in": "x y"},  # a line appears
        {"node.session.cmds_max": "128"},
    ],
)
def test_patch_equals_full_rewrite(name: str, changes: dict[str, str]) -> None:
    text = (GOLDEN / name).read_text()
    assert patch_record(text, NODE, changes) == full_rewrite(text, changes)


@pytest.mark.parametrize(
    "edit",
    [
        lambda t: t.replace("2.1.8", "6.2.1.9", 1),  # another writer's version line
        lambda t: t[:-13],  # no END line
        lambda t: t.replace("node.tpgt = 1\n", "node.tpgt = 1\n% junk\n"),
        lambda t: t.replace("node.startup = ", "node.startup =  "),  # odd spacing
        lambda t: t.replace("node.session.cmds_max = 64", "node.session.cmds_max = 64x"),
        lambda t: t.replace("node.startup = automatic\n", ""),  # an enum line missing
        lambda t: t.replace("node.leading_login = No\n", "").replace(
            "# END RECORD", "node.leading_login = No\n# END RECORD"
        ),  # out of order
        lambda t: t.replace("iface.tos = 3", "iface.tos = 3\niface.hop_limit = 1"),  # v6 key
    ],
)
def test_patch_declines_files_open_iscsi_would_rewrite(edit: object) -> None:
    text = edit((GOLDEN / "node_v4.txt").read_text())  # type: ignore[operator]
    assert patch_record(text, NODE, {"node.session.queue_depth": "8"}) is None


def test_patch_declines_family_changes() -> None:
    text = (GOLDEN / "node_v4.txt").read_text()
    assert patch_record(text, NODE, {"iface.ipaddress": "fd00::1"}) is None


@settings(max_examples=200, deadline=None)
@given(
    st.integers(min_value=0, max_value=70),
    st.sampled_from(["", " ", "x", "=", "# ", "\t", "node.startup = onboot", "9"]),
    st.sampled_from(
        [
            {"node.startup": "onboot"},
            {"node.session.auth.username": ""},
            {"node.session.auth.username_in": "u"},
            {"node.conn[0].timeo.login_timeout": "7"},
        ]
    ),
)
def test_patch_is_never_wrong(line: int, insert: str, changes: dict[str, str]) -> None:
    """Whatever a file looks like, the patch is either declined or the full rewrite."""
    lines = (GOLDEN / "node_v4.txt").read_text().split("\n")
    lines.insert(min(line, len(lines) - 1), insert)
    text = "\n".join(lines)
    patched = patch_record(text, NODE, changes)
    assert patched is None or patched == full_rewrite(text, changes)
