"""GNU ``getopt_long`` as glibc runs it, for a command line that must parse exactly
like a C program's (iscsiadm's).

What is reproduced: argument permutation (non-options are collected and options after
them still count), ``--`` ends the options, clusters of short options (``-lu``), an
attached argument (``-mnode``) or the next word as argument (even one starting with
``-``), ``--name=value`` and ``--name value``, exact long names before unambiguous
abbreviations, and glibc's complaints (without the program-name prefix) and ``optopt``
for each error.  Long options come in priority *tables*: a name or abbreviation found
in an earlier table wins, so extensions in a later table never make an iscsiadm
abbreviation ambiguous.

Also here: C's ``atoi`` and ``strtoull``, which iscsiadm uses on option arguments.
This module knows nothing about iscsiadm; it does no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import NamedTuple

from iscsikit.config.cnum import atoi, strtoul

__all__ = ["Event", "LongOption", "c_atoi", "c_strtoull", "getopt_long"]


class LongOption(NamedTuple):
    """``--name``; ``key`` is what getopt returns for it (a short letter, or any id)."""

    name: str
    takes_arg: bool
    key: str


class Event(NamedTuple):
    """One getopt result in order: ``key`` is the option's key or ``"?"`` for an error;
    ``long`` the long name used (if any); ``optopt`` what glibc leaves in optopt on an
    error ("" for 0); ``message`` glibc's complaint."""

    key: str
    arg: str | None = None
    long: str = ""
    optopt: str = ""
    message: str = ""


def _lookup(
    name: str, tables: Sequence[Mapping[str, LongOption]]
) -> tuple[LongOption | None, list[LongOption]]:
    """An exact name, else the unique abbreviation; (None, candidates) when ambiguous."""
    for table in tables:
        if name in table:
            return table[name], []
        found = [o for n, o in table.items() if n.startswith(name)]
        if len(found) == 1:
            return found[0], []
        if found:
            return None, found
    return None, []


def _long(
    arg: str, argv: Sequence[str], i: int, tables: Sequence[Mapping[str, LongOption]]
) -> tuple[Event, int]:
    name, eq, value = arg[2:].partition("=")
    option, candidates = _lookup(name, tables)
    if option is None:
        if candidates:
            names = " ".join(f"'--{c.name}'" for c in candidates)
            return Event("?", message=f"option '{arg}' is ambiguous; possibilities: {names}"), i
        return Event("?", message=f"unrecognized option '{arg}'"), i
    key = option.key
    optopt = key if len(key) == 1 else ""
    if not option.takes_arg:
        if eq:
            msg = f"option '--{option.name}' doesn't allow an argument"
            return Event("?", optopt=optopt, message=msg), i
        return Event(key, long=option.name), i
    if not eq:
        if i >= len(argv):
            msg = f"option '--{option.name}' requires an argument"
            return Event("?", optopt=optopt, message=msg), i
        value = argv[i]
        i += 1
    return Event(key, value, long=option.name), i


def getopt_long(
    argv: Sequence[str],
    short: Mapping[str, bool],
    long_tables: Sequence[Sequence[LongOption]],
) -> tuple[list[Event], list[str]]:
    """Every option of ``argv`` (without the program name) in order, and the operands.

    ``short`` maps each short letter to whether it takes an argument.
    """
    tables = [{o.name: o for o in table} for table in long_tables]
    events: list[Event] = []
    operands: list[str] = []
    i = 0
    while i < len(argv):
        arg = argv[i]
        i += 1
        if arg == "--":
            operands.extend(argv[i:])
            break
        if not arg.startswith("-") or arg == "-":
            operands.append(arg)
            continue
        if arg.startswith("--"):
            event, i = _long(arg, argv, i, tables)
            events.append(event)
            continue
        j = 1
        while j < len(arg):
            c = arg[j]
            j += 1
            takes = short.get(c)
            if takes is None:
                events.append(Event("?", optopt=c, message=f"invalid option -- '{c}'"))
            elif not takes:
                events.append(Event(c))
            elif j < len(arg):
                events.append(Event(c, arg[j:]))
                break
            elif i < len(argv):
                events.append(Event(c, argv[i]))
                i += 1
                break
            else:
                msg = f"option requires an argument -- '{c}'"
                events.append(Event("?", optopt=c, message=msg))
                break
    return events, operands


def c_atoi(text: str) -> int:
    """C ``atoi`` (:func:`iscsikit.config.cnum.atoi`)."""
    return atoi(text)


def c_strtoull(text: str) -> int:
    """C ``strtoull(text, NULL, 10)`` (:func:`iscsikit.config.cnum.strtoul`: 64 bits)."""
    return strtoul(text)
