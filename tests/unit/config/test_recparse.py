"""open-iscsi's line reader, case by case (each behaviour seen in iscsiadm 2.1.8)."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from iscsikit.config.recparse import Assignment, ConfProblem, parse_lines, split_fgets

P = Path("rec")


def one(line: str) -> Assignment | str:
    assignments, problems = parse_lines(line + "\n", P)
    if problems:
        (problem,) = problems
        return problem.message
    (assignment,) = assignments
    return assignment


@pytest.mark.parametrize(
    ("line", "name", "value"),
    [
        ("node.startup = manual", "node.startup", "manual"),
        ("node.leading_login =Yes", "node.leading_login", "Yes"),
        ("\tnode.a\t=\tp w\t", "node.a", "p w"),
        ("  k   =   two  spaces  ", "k", "two  spaces"),
        ('k = a#b, c "q" ', "k", 'a#b, c "q"'),
        ("k = x # not a comment", "k", "x # not a comment"),
        ("k = = x", "k", "= x"),
        ("k==v", "k", "v"),  # the name ends at '=', which is skipped; the second is the '='
        ("k = it's", "k", "it's"),
        ("node.conn[0].port = 3260", "node.conn[0].port", "3260"),
        ("[a] = b", "[a]", "b"),
    ],
)
def test_assignments(line: str, name: str, value: str) -> None:
    assert one(line) == Assignment(1, name, value)


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("node.startup=automatic", "does not have '=' separator"),
        ("k= v", "does not have '=' separator"),
        ("foo bar", "does not have '=' separator"),
        ("k   x", "does not have '=' separator"),
        ("foo =", "does not have value"),
        ("   =   ", "does not have value"),
        ("foo", "does not have value"),
        ("k=", "does not have value"),
        ("[section]", "does not have value"),
    ],
)
def test_problems(line: str, message: str) -> None:
    assert one(line) == f"Config file line 1 {message}"


def test_comments_blank_lines_and_numbering() -> None:
    text = "# c\n\n   # indented comment\nk = 1\n\t\nk = 2\n"
    assignments, problems = parse_lines(text, P)
    assert problems == []
    assert assignments == [Assignment(4, "k", "1"), Assignment(6, "k", "2")]


def test_last_line_without_newline_is_dropped() -> None:
    assignments, problems = parse_lines("a = 1\nb = 2", P)
    assert assignments == [Assignment(1, "a", "1")]
    assert problems == [ConfProblem(P, 2, "Config file line 2 too long.")]


def test_long_line_is_split_like_fgets() -> None:
    long = "x" * 2100
    assignments, problems = parse_lines(f"a = 1\n{long}\nb = 2\n", P)
    assert [p.message for p in problems] == [
        "Config file line 2 too long.",
        "Config file line 3 does not have value",  # the rest of the long line
    ]
    assert assignments == [Assignment(1, "a", "1"), Assignment(4, "b", "2")]


def test_long_value_tail_is_read_as_a_line() -> None:
    """A 2047-byte chunk is dropped; what follows is parsed on its own (as iscsiadm does)."""
    text = "k = " + "v" * 2043 + "injected = yes\n"
    assignments, problems = parse_lines(text, P)
    assert problems == [ConfProblem(P, 1, "Config file line 1 too long.")]
    assert assignments == [Assignment(2, "injected", "yes")]


def test_nul_ends_the_line() -> None:
    _, problems = parse_lines("k = a\0b\n", P)
    assert problems == [ConfProblem(P, 1, "Config file line 1 too long.")]


def test_non_ascii_whitespace_is_kept() -> None:
    assert one("k = \u00a0x\u00a0") == Assignment(1, "k", "\u00a0x\u00a0")


def test_split_fgets_counts_bytes() -> None:
    assert split_fgets("ab\ncd", 4) == ["ab\n", "cd"]
    assert split_fgets("abcdef\n", 4) == ["abc", "def", "\n"]
    assert split_fgets("éé\n", 4) == ["é\udcc3", "\udca9\n"]
    assert "".join(split_fgets("x\r\ny\x0bz\n")) == "x\r\ny\x0bz\n"


def test_problem_str() -> None:
    assert str(ConfProblem(Path("/etc/iscsi/iscsid.conf"), 3, "m")) == "/etc/iscsi/iscsid.conf:3: m"


@given(
    st.text(
        alphabet=st.characters(blacklist_characters="\n\0", blacklist_categories=("Cs",)),
        max_size=40,
    )
)
def test_values_round_trip(value: str) -> None:
    """Whatever a writer puts after "key = " comes back, minus surrounding blanks."""
    expected = value.strip(" \t\n\v\f\r")
    result = one(f"node.session.auth.password = {value}")
    if expected:
        assert result == Assignment(1, "node.session.auth.password", expected)
    else:
        assert result == "Config file line 1 does not have value"
