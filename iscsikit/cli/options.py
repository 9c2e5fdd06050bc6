"""iscsiadm 2.1.8's command line, parsed exactly as iscsiadm parses it.

This module owns the option table (:data:`OPTIONS`, which also drives ``--help``, the
bash completion and the man page) and iscsiadm's own checks made *while* it parses
(glibc's ``getopt_long`` itself is emulated in :mod:`iscsikit.cli.getopt`), in its
order:

* ``-V`` prints the version and ``-h`` the usage as soon as they are met;
* each ``-m`` re-checks the whole command line against that mode's allowed letters
  ("node mode: option '-x' is not allowed/supported", exit 7), an unknown mode exits 7;
* ``-o`` ORs the operation in; an unknown one is an error only while no known one was
  given ("can not recognize operation", exit 7) -- ``-o show -o bogus`` is ``show``;
* ``-n``/``-v`` pair up whenever both are pending (``-v x -n a`` is ``a=x``; a second
  ``-n`` before a ``-v`` replaces the first);
* ``-I`` must be 1..64 characters (the message goes to *stdout*, as iscsiadm's does);
* ``-k`` must not be negative;
* after the loop: an invalid option letter exits 7 ("unrecognized character"), and no
  mode exits 7 with the "Try `--help'" line.

iscsikit's extensions are long options only, so they never collide with an iscsiadm
flag, and they are matched only when no iscsiadm option matches, so every iscsiadm
abbreviation keeps its meaning: ``--output text|json``, ``--traceback``,
``--no-progress``.

Parsing never touches the system: no records, no sysfs, no I/O.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

from iscsikit.cli.getopt import Event, LongOption, c_atoi, c_strtoull, getopt_long
from iscsikit.errors import IscsiErr, IscsiError

__all__ = [
    "EXTENSION_OPTIONS",
    "LOGIN_ALL_MODES",
    "MODE_LETTERS",
    "MODE_NAMES",
    "OPS",
    "OPTIONS",
    "OptionSpec",
    "ParsedArgs",
    "UsageError",
    "Portal",
    "host_number",
    "json_requested",
    "option_for",
    "parse",
    "parse_portal",
]

PROG = "iscsikit-adm"

#: Modes in iscsiadm's order.
MODE_NAMES = ("discovery", "discoverydb", "node", "session", "host", "iface", "fw")

#: Option letters each mode accepts (iscsiadm 2.1.8, checked letter by letter with the
#: oracle).  ``discoverydb`` shares discovery's table and its messages say "discovery".
MODE_LETTERS: dict[str, str] = {
    "discovery": "lDmpPIdnvoSt",
    "discoverydb": "lDmpPIdnvoSt",
    "node": "RlmpPTIULdnvosSuW",
    "session": "RmPidrnvosSu",
    "host": "mCPHdnvotxA",
    "iface": "mabcCPHiIdnvo",
    "fw": "lmdnvW",
}
_MODE_LABEL = {"discoverydb": "discovery"}

#: ``-o`` operations and their bits (iscsiadm's ``enum iscsiadm_op``).
OPS: dict[str, int] = {
    "new": 0x1,
    "delete": 0x2,
    "update": 0x4,
    "show": 0x8,
    "nonpersistent": 0x10,
    "apply": 0x20,
    "applyall": 0x40,
    "login": 0x80,
    "logout": 0x100,
}

#: Values ``-L``/``-U`` accept (checked by the mode, as iscsiadm does).
LOGIN_ALL_MODES = ("all", "manual", "automatic", "onboot")

_IFACE_NAME_MAX = 64  # ISCSI_MAX_IFACE_LEN - 1


class OptionSpec(NamedTuple):
    """One option.  ``short`` is None for iscsikit's long-only extensions; ``modes``
    lists the modes that accept it (all modes for extensions and ``-m``)."""

    short: str | None
    long: str
    takes_arg: bool
    help: str
    modes: tuple[str, ...]
    metavar: str = ""

    @property
    def extension(self) -> bool:
        return self.short is None


def _modes(letter: str) -> tuple[str, ...]:
    return tuple(m for m in MODE_NAMES if letter in MODE_LETTERS[m])


def _opt(short: str, long: str, metavar: str, help: str) -> OptionSpec:
    return OptionSpec(short, long, bool(metavar), help, _modes(short), metavar)


#: iscsiadm's long options, in its ``long_options[]`` order (the order glibc lists
#: candidates of an ambiguous abbreviation in).
OPTIONS: tuple[OptionSpec, ...] = (
    _opt("m", "mode", "MODE", "discovery, discoverydb, node, session, iface, fw or host"),
    _opt("p", "portal", "IP[:PORT][,TPGT]", "target portal: ip, ip:port, [ipv6]:port, hostname"),
    _opt("T", "targetname", "TARGET", "target name (IQN)"),
    _opt("I", "interface", "IFACE", "iface name; repeatable"),
    _opt("o", "op", "OP", "new, delete, update, show, nonpersistent, apply, applyall"),
    _opt("t", "type", "TYPE", "discovery type: sendtargets (st), isns, fw; host: chap"),
    _opt("n", "name", "KEY", "record key to set; pairs with the next --value"),
    _opt("v", "value", "VALUE", "value for the --name it pairs with"),
    _opt("H", "host", "HOST", "SCSI host number or MAC address"),
    _opt("r", "sid", "SID|PATH", "session id or sysfs path"),
    _opt("R", "rescan", "", "rescan the session's SCSI devices"),
    _opt("P", "print", "LEVEL", "print level"),
    _opt("D", "discover", "", "run discovery (discoverydb)"),
    _opt("l", "login", "", "log in"),
    _opt("L", "loginall", "MODE", "log in to all, manual, automatic or onboot nodes"),
    _opt("u", "logout", "", "log out"),
    _opt("U", "logoutall", "MODE", "log out of all, manual, automatic or onboot sessions"),
    _opt("s", "stats", "", "print session statistics"),
    _opt("k", "killiscsid", "PRIORITY", "stop the daemon (priority 0 only)"),
    _opt("d", "debug", "LEVEL", "debug level 0-8"),
    _opt("S", "show", "", "show secrets (CHAP passwords) unmasked"),
    _opt("V", "version", "", "print the version and exit"),
    _opt("h", "help", "", "print this help and exit"),
    _opt("C", "submode", "SUBMODE", "ping (iface), chap, flashnode or stats (host)"),
    _opt("a", "ip", "IP", "address to ping"),
    _opt("b", "packetsize", "SIZE", "ping packet size"),
    _opt("c", "count", "COUNT", "number of pings"),
    _opt("i", "interval", "SECONDS", "interval between pings"),
    _opt("x", "index", "INDEX", "CHAP or flash node index"),
    _opt("A", "portal_type", "TYPE", "flash node portal type: ipv4 or ipv6"),
    _opt("W", "no_wait", "", "do not wait for logins to complete"),
)

#: iscsikit's extensions (long options only).
EXTENSION_OPTIONS: tuple[OptionSpec, ...] = (
    OptionSpec(None, "output", True, "text (default) or json", MODE_NAMES, "FORMAT"),
    OptionSpec(None, "traceback", False, "show a traceback for internal errors", MODE_NAMES),
    OptionSpec(None, "no-progress", False, "never draw a progress bar", MODE_NAMES),
)

_SHORT = {o.short: o for o in OPTIONS if o.short}
_SHORT_ARGS = {letter: o.takes_arg for letter, o in _SHORT.items()}
#: iscsiadm's long options first: an abbreviation of one of them never becomes ambiguous
#: because of an extension (``--o`` is still ``--op``, ``--no`` still ``--no_wait``).
_LONG_TABLES = (
    tuple(LongOption(o.long, o.takes_arg, o.short or o.long) for o in OPTIONS),
    tuple(LongOption(o.long, o.takes_arg, o.long) for o in EXTENSION_OPTIONS),
)
OUTPUT_FORMATS = ("text", "json")


def option_for(letter: str) -> OptionSpec | None:
    """The iscsiadm option of a short letter."""
    return _SHORT.get(letter)


class UsageError(IscsiError):
    """A command-line error, reported exactly like iscsiadm reports it.

    ``diagnostics`` are getopt's complaints printed before the error (each on its own
    stderr line); ``try_help`` adds the "Try `... --help'" line; ``stdout`` is text
    iscsiadm prints on *stdout* instead of an error (``-I`` name length); ``usage`` is
    printed on stderr before everything else (an argparse tool's usage line).  An empty
    message prints no error line of its own.
    """

    code = IscsiErr.INVAL

    def __init__(
        self,
        message: str = "",
        *,
        diagnostics: Sequence[str] = (),
        try_help: bool = False,
        stdout: str | None = None,
        usage: str | None = None,
        code: IscsiErr | None = None,
    ) -> None:
        super().__init__(message, code=code)
        self.message = message
        self.diagnostics = tuple(diagnostics)
        self.try_help = try_help
        self.stdout = stdout
        self.usage = usage


class ParsedArgs:
    """What the command line asked for (field meanings: docs/cli-contract.md).

    A plain class, not a dataclass: generating a dataclass's methods for these 40
    fields was a millisecond of every command's start-up.  The defaults are class
    attributes; the lists are made per instance."""

    mode: str | None = None
    submode: str | None = None
    ops: list[str]
    portal: str | None = None
    targetname: str | None = None
    ifaces: list[str]
    names: list[str]
    values: list[str]
    print_level: int = -1
    type: str | None = None
    login: bool = False
    logout: bool = False
    loginall: str | None = None
    logoutall: str | None = None
    session: str | None = None
    host: str | None = None
    show: bool = False
    stats: bool = False
    rescan: bool = False
    no_wait: bool = False
    discover: bool = False
    index: int | None = None
    ip: str | None = None
    packetsize: int | None = None
    count: int | None = None
    interval: int | None = None
    portal_type: str | None = None
    killiscsid: int | None = None
    debug_level: int | None = None
    version: bool = False
    help: bool = False
    output: str = "text"
    debug: bool = False  # --traceback
    no_progress: bool = False
    #: Arguments that are not options (iscsiadm ignores them).
    operands: list[str]
    #: getopt complaints that did not stop iscsiadm (printed on stderr first).
    diagnostics: list[str]

    def __init__(self, *, operands: list[str] | None = None) -> None:
        self.ops = []
        self.ifaces = []
        self.names = []
        self.values = []
        self.operands = [] if operands is None else operands
        self.diagnostics = []

    def replace(self, **changes: object) -> ParsedArgs:
        """A copy with ``changes`` (``dataclasses.replace``'s contract: fields only)."""
        fields = self._fields()
        unknown = set(changes) - set(fields)
        if unknown:
            raise TypeError(f"ParsedArgs has no field {', '.join(sorted(unknown))}")
        new = ParsedArgs()
        for name, value in {**fields, **changes}.items():
            setattr(new, name, value)
        return new

    def _fields(self) -> dict[str, object]:
        return {name: getattr(self, name) for name in type(self).__annotations__}

    def __repr__(self) -> str:
        fields = ", ".join(f"{k}={v!r}" for k, v in self._fields().items())
        return f"ParsedArgs({fields})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ParsedArgs):
            return NotImplemented
        return self._fields() == other._fields()

    __hash__ = None  # type: ignore[assignment]  # mutable, like the dataclass was

    @property
    def params(self) -> list[tuple[str, str]]:
        """The ``-n``/``-v`` pairs, in order."""
        return list(zip(self.names, self.values, strict=True))

    @property
    def op_mask(self) -> int:
        """The OR of the ``-o`` operations (iscsiadm's ``op``)."""
        mask = 0
        for op in self.ops:
            mask |= OPS[op]
        return mask


def json_requested(argv: Sequence[str]) -> tuple[bool, str | None]:
    """Whether ``argv`` asks for ``--output json``, and its last valid ``-m`` -- for
    reporting a command line that :func:`parse` rejected."""
    events, _ = getopt_long(argv, _SHORT_ARGS, _LONG_TABLES)
    wanted = any(e.key == "output" and e.arg == "json" for e in events)
    modes = [e.arg for e in events if e.key == "m" and e.arg in MODE_NAMES]
    return wanted, modes[-1] if modes else None


def _verify_mode(mode: str, events: list[Event], diagnostics: list[str]) -> None:
    """iscsiadm re-reads the whole command line when it meets ``-m``: the first option
    the mode does not accept (or getopt error, shown as '-?') is fatal."""
    allowed = MODE_LETTERS[mode]
    for ev in events:
        if ev.message:
            diagnostics.append(ev.message)
        if len(ev.key) > 1 or ev.key in allowed:  # extensions are allowed everywhere
            continue
        label = _MODE_LABEL.get(mode, mode)
        raise UsageError(
            f"{label} mode: option '-{ev.key}' is not allowed/supported", diagnostics=diagnostics
        )


def parse(argv: Sequence[str]) -> ParsedArgs:
    """Parse ``argv`` (without the program name) as iscsiadm 2.1.8 does.

    Raises :class:`UsageError` for every command-line error iscsiadm rejects while
    parsing.  ``-V``/``-h`` stop parsing (``version``/``help`` set); ``diagnostics``
    holds getopt complaints that were not fatal (printed by the caller on stderr).
    """
    events, operands = getopt_long(argv, _SHORT_ARGS, _LONG_TABLES)
    args = ParsedArgs(operands=operands)
    diagnostics = args.diagnostics
    optopt = ""
    name: str | None = None
    value: str | None = None
    mask = 0
    for ev in events:
        if ev.message:
            diagnostics.append(ev.message)
        ch, arg = ev.key, ev.arg or ""
        if ch == "?":
            optopt = ev.optopt
        elif len(ch) > 1:
            _extension(args, ev)
        elif ch == "V":
            args.version = True
            return args
        elif ch == "h":
            args.help = True
            return args
        elif ch == "m":
            if arg not in MODE_NAMES:
                raise UsageError(
                    f"mode '{arg}' is not supported (use one of {', '.join(MODE_NAMES)})",
                    diagnostics=diagnostics,
                )
            args.mode = arg
            _verify_mode(arg, events, [*diagnostics])
        elif ch == "o":
            bit = OPS.get(arg, 0)
            mask |= bit
            if not mask:
                raise UsageError(f"can not recognize operation: '{arg}'", diagnostics=diagnostics)
            if bit:
                args.ops.append(arg)
        elif ch in "nv":
            if ch == "n":
                name = arg
            else:
                value = arg
            if name is not None and value is not None:
                args.names.append(name)
                args.values.append(value)
                name = value = None
        elif ch == "I":
            if not 1 <= len(arg.encode("utf-8", "surrogateescape")) <= _IFACE_NAME_MAX:
                raise UsageError(
                    diagnostics=diagnostics,
                    stdout=f"Invalid iface name {arg}. "
                    f"Must be from 1 to {_IFACE_NAME_MAX} characters.\n",
                )
            args.ifaces.append(arg)
        elif ch == "k":
            args.killiscsid = c_atoi(arg)
            if args.killiscsid < 0:
                raise UsageError(
                    f"Invalid killiscsid priority {args.killiscsid}. "
                    "Priority must be greater than or equal to zero.",
                    diagnostics=diagnostics,
                )
        else:
            _simple(args, ch, arg)
    if optopt:
        raise UsageError(f"unrecognized character '{optopt}'", diagnostics=diagnostics)
    if args.mode is None and args.killiscsid is None:
        raise UsageError(diagnostics=diagnostics, try_help=True)
    return args


_FLAGS = {
    "R": "rescan",
    "l": "login",
    "D": "discover",
    "u": "logout",
    "s": "stats",
    "S": "show",
    "W": "no_wait",
}
_STRINGS = {
    "p": "portal",
    "T": "targetname",
    "t": "type",
    "H": "host",
    "r": "session",
    "L": "loginall",
    "U": "logoutall",
    "C": "submode",
    "a": "ip",
    "A": "portal_type",
}
_INTS = {"P": "print_level", "d": "debug_level", "b": "packetsize", "c": "count", "i": "interval"}


#: usr/host.h MAX_HOST_NO.
MAX_HOST_NO = 0xFFFFFFFF


def host_number(value: str) -> int | None:
    """``-H``: None for a MAC address (matched against the hosts later), else the host
    number as iscsiadm's ``parse_host_info`` reads it (``strtoull``; junk reads as 0,
    more than MAX_HOST_NO -- a negative number too -- is an error, exit 7)."""
    if ":" in value:
        return None
    n = c_strtoull(value)
    if n > MAX_HOST_NO:
        raise UsageError(f"Invalid host no {value}. Numerical result out of range.")
    return n


def _simple(args: ParsedArgs, ch: str, arg: str) -> None:
    if ch == "H":
        host_number(arg)
    if ch in _FLAGS:
        setattr(args, _FLAGS[ch], True)
    elif ch in _STRINGS:
        setattr(args, _STRINGS[ch], arg)
    elif ch in _INTS:
        setattr(args, _INTS[ch], c_atoi(arg))
    elif ch == "x":
        args.index = c_strtoull(arg)


def _extension(args: ParsedArgs, ev: Event) -> None:
    if ev.long == "output":
        if ev.arg not in OUTPUT_FORMATS:
            raise UsageError(
                f"invalid --output '{ev.arg}': use {' or '.join(OUTPUT_FORMATS)}",
                diagnostics=args.diagnostics,
            )
        args.output = ev.arg
    elif ev.long == "traceback":
        args.debug = True
    elif ev.long == "no-progress":
        args.no_progress = True


# -- portals ---------------------------------------------------------------------------


class Portal(NamedTuple):
    """``-p`` as iscsiadm reads it: ``port``/``tpgt`` are None when not given."""

    address: str
    port: int | None
    tpgt: int | None


def _c_int(n: int) -> int:
    """An unsigned long stored into a C int."""
    n &= 0xFFFFFFFF
    return n - (1 << 32) if n >= 1 << 31 else n


def parse_portal(text: str) -> Portal:
    """iscsiadm's ``str_to_ipport``: ``ip[:port][,tpgt]``, ``[ipv6][:port][,tpgt]``,
    ``ipv6[,tpgt]`` (several ':' and no '.': no port), ``hostname[:port][,tpgt]``.

    Reproduced with its quirks (checked with the oracle): the port is looked for after
    the first ':' whenever the text has a '.', so ``[::ffff:1.2.3.4]:3260`` is address
    ``[`` and port 0; numbers are ``strtoul`` (garbage is 0).
    """
    address, rest = text, text
    want_port = True
    if "." not in text:
        if text.startswith("["):
            close = text.find("]")
            if close >= 0:
                address, rest = text[1:close], text[close + 1 :]
        elif text.count(":") > 1:
            want_port = False
    port: int | None = None
    tpgt: int | None = None
    if want_port and ":" in rest:
        head, _, rest = rest.partition(":")
        if address is text:
            address = head
        port = _c_int(c_strtoull(rest))
    head, comma, tail = rest.partition(",")
    if comma:
        if address is text:
            address = head
        tpgt = _c_int(c_strtoull(tail))
    return Portal(address, port, tpgt)
