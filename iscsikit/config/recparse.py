"""open-iscsi's ``key = value`` line reader, shared by record files and iscsid.conf.

usr/idbm.c reads both with one routine (``idbm_recinfo_config``); iscsikit reproduces
it exactly so that a file means the same to both tools.  Verified against iscsiadm
2.1.8:

* Lines come from ``fgets`` into a 2048-byte buffer.  A chunk that does not end in a
  newline -- a line of 2047 characters or more, *or a last line without a newline* --
  is skipped with "Config file line N too long."; the rest of a long line is read as
  the next line(s).  A NUL byte ends the line early the same way.
* Each line is stripped of C whitespace at both ends; empty lines and lines starting
  with ``#`` are skipped.
* The name runs up to whitespace or ``=``.  One character after it is skipped, then
  whitespace; what follows must be ``=``.  So ``key = v`` and ``key =v`` work, but
  ``key=v`` and ``key= v`` do not ("does not have '=' separator") -- the character
  skipped after the name was the ``=`` itself.
* After ``=`` and whitespace, the value is the rest of the line: spaces, ``#``, commas
  and quotes are all part of it.  No value: "does not have value".
* Later lines override earlier ones (the caller applies assignments in order).

This module turns text into :class:`Assignment` s and :class:`ConfProblem` s; it knows
nothing about keys (the registry does) and does no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

__all__ = ["Assignment", "ConfProblem", "parse_lines", "split_fgets"]

C_SPACE = " \t\n\v\f\r"
#: fgets() buffer of idbm_recinfo_config: at most 2047 characters per read.
FGETS_BUFFER = 2048


@dataclass(frozen=True, slots=True)
class ConfProblem:
    """A warning about one line of a file (open-iscsi's wording where it has one)."""

    path: Path
    line: int
    message: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.message}"


@dataclass(frozen=True, slots=True)
class Assignment:
    """One syntactically valid ``name = value`` line (value as open-iscsi keeps it)."""

    line: int
    name: str
    value: str


def split_fgets(text: str, buffer: int = FGETS_BUFFER) -> list[str]:
    """The successive results of ``fgets(buf, buffer, f)`` over ``text``.

    fgets counts bytes, so the split is done on the UTF-8 encoding (undecodable bytes
    round-trip through surrogateescape).
    """
    data = text.encode("utf-8", "surrogateescape")
    limit = buffer - 1
    chunks: list[str] = []
    start = 0
    while start < len(data):
        newline = data.find(b"\n", start, start + limit)
        end = newline + 1 if newline != -1 else min(start + limit, len(data))
        chunks.append(data[start:end].decode("utf-8", "surrogateescape"))
        start = end
    return chunks


def parse_lines(text: str, path: Path) -> tuple[list[Assignment], list[ConfProblem]]:
    """Split ``text`` into assignments and problems exactly as usr/idbm.c reads it."""
    assignments: list[Assignment] = []
    problems: list[ConfProblem] = []
    for number, chunk in enumerate(split_fgets(text), start=1):
        raw = chunk.split("\0", 1)[0]  # C strings end at NUL
        if not raw.endswith("\n"):
            problems.append(ConfProblem(path, number, f"Config file line {number} too long."))
            continue
        line = raw.strip(C_SPACE)
        if not line or line.startswith("#"):
            continue
        end = 0
        while end < len(line) and line[end] not in C_SPACE and line[end] != "=":
            end += 1
        name = line[:end]
        if end == len(line):
            problems.append(
                ConfProblem(path, number, f"Config file line {number} does not have value")
            )
            continue
        pos = end + 1  # the delimiter that ended the name, whatever it was
        while pos < len(line) and line[pos] in C_SPACE:
            pos += 1
        if pos < len(line) and line[pos] != "=":
            problems.append(
                ConfProblem(path, number, f"Config file line {number} does not have '=' separator")
            )
            continue
        pos += 1
        while pos < len(line) and line[pos] in C_SPACE:
            pos += 1
        if pos >= len(line):
            problems.append(
                ConfProblem(path, number, f"Config file line {number} does not have value")
            )
            continue
        assignments.append(Assignment(number, name, line[pos:]))
    return assignments, problems
