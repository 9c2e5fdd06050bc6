"""The command line parses exactly as iscsiadm 2.1.8's (each expectation checked with the
oracle; the per-mode table letter by letter)."""

from __future__ import annotations

import pytest

from iscsikit.cli.getopt import c_atoi, c_strtoull
from iscsikit.cli.options import (
    MODE_LETTERS,
    MODE_NAMES,
    OPTIONS,
    Portal,
    UsageError,
    json_requested,
    option_for,
    parse,
    parse_portal,
)

SHORT = "RlDVhm:a:b:c:C:p:P:T:H:i:I:U:k:L:d:r:n:v:o:sSt:ux:A:W"  # iscsiadm 2.1.8's optstring


def error(argv: list[str]) -> UsageError:
    with pytest.raises(UsageError) as info:
        parse(argv)
    return info.value


def test_table_matches_iscsiadm_optstring() -> None:
    letters = [c for c in SHORT if c != ":"]
    assert sorted(o.short for o in OPTIONS if o.short) == sorted(letters)
    for o in OPTIONS:
        assert o.short is not None
        assert o.takes_arg == (SHORT[SHORT.index(o.short) + 1 : SHORT.index(o.short) + 2] == ":")
    assert option_for("T") is not None and option_for("T").long == "targetname"  # type: ignore[union-attr]


# What `iscsiadm -m <mode> -<letter> [1]` accepts (the oracle, letter by letter).
ORACLE_TABLE = {
    "discovery": "lDmpPIdnvoSt",
    "discoverydb": "lDmpPIdnvoSt",
    "node": "RlmpPTIULdnvosSuW",
    "session": "RmPidrnvosSu",
    "iface": "mabcCPHiIdnvo",
    "fw": "lmdnvW",
    "host": "mCPHdnvotxA",
}


@pytest.mark.parametrize("mode", MODE_NAMES)
def test_mode_letters(mode: str) -> None:
    assert set(MODE_LETTERS[mode]) == set(ORACLE_TABLE[mode])
    for o in OPTIONS:
        assert o.short is not None
        argv = ["-m", mode, f"-{o.short}"] + (["1"] if o.takes_arg else [])
        allowed = o.short in ORACLE_TABLE[mode]
        assert (mode in o.modes) == allowed
        if o.short in "Vhm" or allowed:
            continue
        label = "discovery" if mode == "discoverydb" else mode
        assert error(argv).message == f"{label} mode: option '-{o.short}' is not allowed/supported"


def test_basic_fields() -> None:
    args = parse(
        ["-m", "node", "-T", "iqn.x:y", "-p", "1.2.3.4:3261,2", "-I", "a", "-I", "b", "-l", "-W"]
    )
    assert (args.mode, args.targetname, args.portal) == ("node", "iqn.x:y", "1.2.3.4:3261,2")
    assert args.ifaces == ["a", "b"]
    assert args.login and args.no_wait and not args.logout
    assert args.print_level == -1 and args.output == "text" and not args.debug


def test_getopt_forms() -> None:
    assert parse(["-mnode"]).mode == "node"
    assert parse(["-lm", "node"]).login
    assert parse(["--mode=node", "--print", "1"]).print_level == 1
    assert parse(["--mod", "node"]).mode == "node"  # unique abbreviation
    args = parse(["foo", "-m", "node", "bar", "-P", "1", "--", "-x"])
    assert args.operands == ["foo", "bar", "-x"] and args.print_level == 1  # permutation
    assert parse(["-m", "node", "-T", "-p"]).targetname == "-p"  # the next word, whatever
    assert parse(["-m", "node", "--no"]).no_wait  # --no is --no_wait, not --no-progress


def test_numbers_are_atoi() -> None:
    assert parse(["-m", "node", "-P", "1x"]).print_level == 1
    assert parse(["-m", "node", "-P", "abc"]).print_level == 0
    assert parse(["-m", "node", "-P", "1", "-P", "0"]).print_level == 0
    assert parse(["-m", "host", "-x", "18446744073709551617"]).index == (1 << 64) - 1
    assert c_atoi(" -12z") == -12 and c_atoi("4294967297") == 1
    assert c_strtoull("-1") == (1 << 64) - 1 and c_strtoull("") == 0


def test_version_and_help_stop_parsing() -> None:
    assert parse(["-V", "-m", "bogus"]).version
    assert parse(["-h", "-m", "node", "-x", "1"]).help
    assert error(["-m", "bogus", "-V"]).message.startswith("mode 'bogus' is not supported")
    assert error(["-m", "node", "-V"]).message == (
        "node mode: option '-V' is not allowed/supported"
    )


def test_mode_check_rereads_everything() -> None:
    """iscsiadm checks the whole command line when it meets -m, options before it too."""
    e = error(["-x", "1", "-m", "node"])
    assert e.message == "node mode: option '-x' is not allowed/supported"
    e = error(["-Z", "-m", "node"])
    assert e.diagnostics == ("invalid option -- 'Z'", "invalid option -- 'Z'")
    assert e.message == "node mode: option '-?' is not allowed/supported"
    assert parse(["-m", "session", "-m", "node"]).mode == "node"
    assert error(["-m", "node", "-m", "session", "-T", "x"]).message.startswith("session mode")


def test_getopt_errors() -> None:
    e = error(["-m"])
    assert e.diagnostics == ("option requires an argument -- 'm'",)
    assert e.message == "unrecognized character 'm'"
    assert error(["-Z"]).message == "unrecognized character 'Z'"
    e = error(["--bogus"])
    assert (e.message, e.try_help) == ("", True)
    assert e.diagnostics == ("unrecognized option '--bogus'",)
    e = error(["--mode=node", "--inter=x"])
    assert e.diagnostics == (
        "option '--inter=x' is ambiguous; possibilities: '--interface' '--interval'",
    )
    e = error(["--login=x", "-m", "node"])
    assert e.diagnostics[0] == "option '--login' doesn't allow an argument"
    assert error(["--mode"]).message == "unrecognized character 'm'"
    assert error(["-m", "node", "-T"]).message == "node mode: option '-?' is not allowed/supported"


def test_no_mode() -> None:
    for argv in ([], ["-d", "1"], ["-o", "show"], ["-P", "1"]):
        e = error(argv)
        assert (e.message, e.try_help, e.code) == ("", True, 7)
    assert parse(["-k", "0"]).killiscsid == 0  # -k needs no mode
    assert parse(["-k", "abc"]).killiscsid == 0
    assert error(["-k", "-1"]).message.startswith("Invalid killiscsid priority -1")


def test_ops() -> None:
    assert parse(["-m", "node", "-o", "show", "-o", "bogus"]).ops == ["show"]  # OR-ed in
    assert error(["-m", "node", "-o", "bogus", "-o", "show"]).message == (
        "can not recognize operation: 'bogus'"
    )
    args = parse(["-m", "node", "-o", "new", "-o", "delete"])
    assert args.ops == ["new", "delete"] and args.op_mask == 0x3


def test_name_value_pairing() -> None:
    """A pair is made whenever both a name and a value are pending."""
    assert parse(["-m", "node", "-n", "a", "-v", "1", "-n", "b", "-v", "2"]).params == [
        ("a", "1"),
        ("b", "2"),
    ]
    assert parse(["-m", "node", "-v", "x", "-n", "a"]).params == [("a", "x")]
    assert parse(["-m", "node", "-n", "a", "-n", "b", "-v", "x"]).params == [("b", "x")]
    assert parse(["-m", "node", "-v", "x", "-n", "a", "-v", "y"]).params == [("a", "x")]
    assert parse(["-m", "node", "-n", "a"]).params == []


def test_iface_name_length_goes_to_stdout() -> None:
    for name in ("", "a" * 65):
        e = error(["-m", "node", "-I", name])
        assert e.stdout == f"Invalid iface name {name}. Must be from 1 to 64 characters.\n"
        assert e.code == 7 and e.message == ""
    assert parse(["-m", "node", "-I", "a" * 64]).ifaces == ["a" * 64]


def test_extensions() -> None:
    args = parse(["--output", "json", "-m", "node", "--traceback", "--no-progress"])
    assert (args.output, args.debug, args.no_progress) == ("json", True, True)
    assert parse(["--ou=json", "-m", "fw"]).output == "json"  # abbreviation, every mode
    assert parse(["-m", "node", "--o", "show"]).ops == ["show"]  # --o is still --op
    assert error(["--output", "yaml", "-m", "node"]).message.startswith("invalid --output")
    assert json_requested(["--output=json", "-m", "bogus", "-m", "node"]) == (True, "node")
    assert json_requested(["-m", "node"]) == (False, "node")


@pytest.mark.parametrize(
    ("text", "portal"),
    [
        ("1.2.3.4", Portal("1.2.3.4", None, None)),
        ("1.2.3.4:3261", Portal("1.2.3.4", 3261, None)),
        ("1.2.3.4:3261,2", Portal("1.2.3.4", 3261, 2)),
        ("1.2.3.4,2", Portal("1.2.3.4", None, 2)),
        ("[fe80::1]:3261,5", Portal("fe80::1", 3261, 5)),
        ("[fe80::1]", Portal("fe80::1", None, None)),
        ("fe80::2,7", Portal("fe80::2", None, 7)),  # bare IPv6: no port
        ("localhost:3262,3", Portal("localhost", 3262, 3)),
        ("host.example.com:3263", Portal("host.example.com", 3263, None)),
        ("1.2.3.4:abc", Portal("1.2.3.4", 0, None)),
        ("[::ffff:1.2.3.4]:3260,1", Portal("[", 0, 1)),  # iscsiadm's own quirk
    ],
)
def test_parse_portal(text: str, portal: Portal) -> None:
    assert parse_portal(text) == portal
