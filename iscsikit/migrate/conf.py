"""linux-iscsi's ``/etc/iscsi.conf`` (iscsi.conf(5), SLES9 / RHEL4 era) read as its iscsid did.

The format is the one the driver's own reader (``iscsi-config.c``,
``update_iscsi_config``) accepts, which is stricter and odder than the man page reads:

* one ``Key=value`` per line; keys are matched case-insensitively as a *prefix*
  ``Key=`` (no blanks around ``=``: ``HeaderDigest = always`` is an unrecognized line);
* a line whose first non-blank character is ``#`` is a comment; a ``#`` later in a line
  is part of the value (numbers and names stop at the first blank, so ``15 # s`` is 15,
  but a digest value is compared whole, so ``always # x`` is an invalid digest);
* ``DiscoveryAddress=`` / ``TargetIpAddr=`` (synonyms), ``TargetName=`` and ``Subnet=`` /
  ``Address=`` (synonyms) open a section; every following line indented *further* than
  that line (a tab counts 8) belongs to it; the first line indented no further ends it;
* a section starts from a copy of the global settings seen *so far* (in the categories
  it keeps), so a global setting placed after a section does not reach it;
* each kind of section keeps only some categories (a setting of another category in it
  is an error line and is ignored): a DiscoveryAddress section keeps CHAP, the
  connection timeouts and Continuous; a Subnet section the connection, error and TCP
  settings; a TargetName section everything but Continuous (``Continuous=`` under a
  TargetName or Subnet changes the *global* value: the driver's fall-through, kept);
* times take an ``s``, ``m`` or ``h`` suffix; numbers are C ``strtol`` base 0 (``0x10``,
  ``010`` octal); booleans are ``yes``/``no`` prefixes or numbers; user names and
  passwords may be double-quoted (else they end at the first blank).

Every line that the driver would reject or ignore becomes a :class:`ConfProblem` with
``file:line``; nothing is dropped silently.  Pure: :func:`parse_conf` takes text.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

__all__ = [
    "KEYS",
    "ConfProblem",
    "KeySpec",
    "LinuxIscsiConf",
    "Section",
    "Setting",
    "Value",
    "parse_conf",
]

Value = int | str
SectionKind = Literal["discovery", "target", "subnet"]
#: Categories of settings (which section kinds keep which: ``_KEEPS``).
Category = Literal[
    "auth", "conn", "session", "error", "tcp", "iscsi", "discovery", "enabled", "path", "other"
]


@dataclass(frozen=True, slots=True)
class KeySpec:
    """One linux-iscsi key: its canonical name, synonyms, category and value parser."""

    name: str
    category: Category
    parse: Callable[[str], Value | None]  # None: invalid value
    synonyms: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Setting:
    """``key=value`` as read at ``line``: ``key`` canonical, ``value`` typed."""

    key: str
    value: Value
    text: str  # the line as written (stripped)
    line: int


@dataclass(frozen=True, slots=True)
class ConfProblem:
    """A line linux-iscsi rejected or ignored (``kind``: ``error`` or ``unknown``)."""

    path: str
    line: int
    text: str
    message: str
    kind: Literal["error", "unknown"] = "error"

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.message}: {self.text}"


@dataclass(slots=True)
class Section:
    """A DiscoveryAddress, TargetName or Subnet section.

    ``inherited``: the global settings in force when it began (only its categories);
    ``own``: its indented settings, in order.  ``effective()`` is what it applies.
    """

    kind: SectionKind
    line: int
    text: str
    address: str = ""  # discovery: host; subnet: network address
    port: int = 3260  # discovery
    target: str = ""  # target
    network: ipaddress.IPv4Network | None = None  # subnet
    indent: int = 0
    inherited: dict[str, Setting] = field(default_factory=dict)
    own: list[Setting] = field(default_factory=list)

    def effective(self) -> dict[str, Setting]:
        out = dict(self.inherited)
        for s in self.own:
            out[s.key] = s
        return out

    @property
    def label(self) -> str:
        if self.kind == "discovery":
            return f"DiscoveryAddress={self.address}:{self.port}"
        if self.kind == "target":
            return f"TargetName={self.target}"
        return f"Subnet={self.network}"


@dataclass(slots=True)
class LinuxIscsiConf:
    """A parsed iscsi.conf: final ``globals``, the ``sections`` in file order, and the
    ``problems`` (every rejected or unrecognized line)."""

    path: str
    globals: dict[str, Setting] = field(default_factory=dict)
    sections: list[Section] = field(default_factory=list)
    problems: list[ConfProblem] = field(default_factory=list)

    def discoveries(self) -> list[Section]:
        return [s for s in self.sections if s.kind == "discovery"]


# -- value parsers (iscsi-config.c parse_number / parse_time / parse_boolean) ---------


def _first_word(text: str) -> str:
    return text.split(None, 1)[0] if text.strip() else ""


def _strtol0(word: str) -> int | None:
    """C ``strtol(word, &end, 0)`` requiring the whole word: sign, 0x hex, 0 octal."""
    if not word:
        return None
    sign = -1 if word[0] == "-" else 1
    body = word[1:] if word[0] in "+-" else word
    try:
        if body[:2].lower() == "0x":
            value = int(body[2:], 16)
        elif len(body) > 1 and body[0] == "0":
            value = int(body[1:], 8)
        else:
            value = int(body, 10) if body.isdigit() else None  # type: ignore[assignment]
    except ValueError:
        return None
    return None if value is None else sign * value


def parse_number(text: str) -> Value | None:
    value = _strtol0(_first_word(text))
    return value if value is not None and value >= 0 else None


_UNITS = {"s": 1, "m": 60, "h": 3600}


def parse_time(text: str) -> Value | None:
    """Seconds; ``300s``, ``5m``, ``1h`` or a bare number (parse_time)."""
    word = _first_word(text)
    units = _UNITS.get(word[-1:], 1)
    if word[-1:] in _UNITS:
        word = word[:-1]
    value = _strtol0(word)
    return value * units if value is not None and value >= 0 else None


def parse_boolean(text: str) -> Value | None:
    """1 or 0: a ``yes`` / ``no`` prefix (any case) or a number (parse_boolean)."""
    word = _first_word(text)
    if word.lower().startswith("yes"):
        return 1
    if word.lower().startswith("no"):
        return 0
    value = _strtol0(word)
    return value if value is not None and value >= 0 else None


_DIGESTS = {
    "never": "never",
    "no": "never",
    "none": "never",
    "always": "always",
    "yes": "always",
    "crc32c": "always",
    "prefer-on": "prefer-on",
    "prefer-off": "prefer-off",
}


def parse_digest(text: str) -> Value | None:
    """``never``/``always``/``prefer-on``/``prefer-off`` (the whole value, any case)."""
    return _DIGESTS.get(text.lower())


def parse_quoted(text: str) -> Value | None:
    """parse_quoted_string: up to the closing quote, else up to the first blank."""
    if text.startswith('"'):
        return text[1:].split('"', 1)[0]
    return _first_word(text)


def parse_rest(text: str) -> Value | None:
    return text if text else None


def parse_word(text: str) -> Value | None:
    return _first_word(text) or None


_SPECS = (
    KeySpec("OutgoingUsername", "auth", parse_quoted, ("Username", "UsernameOut")),
    KeySpec("OutgoingPassword", "auth", parse_quoted, ("Password", "PasswordOut")),
    KeySpec("IncomingUsername", "auth", parse_quoted, ("UsernameIn",)),
    KeySpec("IncomingPassword", "auth", parse_quoted, ("PasswordIn",)),
    KeySpec("HeaderDigest", "iscsi", parse_digest),
    KeySpec("DataDigest", "iscsi", parse_digest),
    KeySpec("InitialR2T", "iscsi", parse_boolean),
    KeySpec("ImmediateData", "iscsi", parse_boolean),
    KeySpec("MaxRecvDataSegmentLength", "iscsi", parse_number),
    KeySpec("FirstBurstLength", "iscsi", parse_number),
    KeySpec("MaxBurstLength", "iscsi", parse_number),
    KeySpec("LoginTimeout", "conn", parse_time),
    KeySpec("AuthTimeout", "conn", parse_time),
    KeySpec("ActiveTimeout", "conn", parse_time),
    KeySpec("IdleTimeout", "conn", parse_time),
    KeySpec("PingTimeout", "conn", parse_time),
    KeySpec("ConnFailTimeout", "session", parse_time),
    KeySpec("AbortTimeout", "error", parse_time),
    KeySpec("ResetTimeout", "error", parse_time),
    KeySpec("TCPWindowSize", "tcp", parse_number),
    KeySpec("Continuous", "discovery", parse_boolean),
    KeySpec("SendAsyncText", "discovery", parse_boolean),
    KeySpec("Enabled", "enabled", parse_boolean),
    # iscsi.conf(5) categories E, F, G (SLES9 4.0.x): no reader in the 3.x/4.0.3 source,
    # accepted globally and in TargetName sections as the man page describes them.
    KeySpec("PreferredPortal", "path", parse_word),
    KeySpec("PreferredSubnet", "path", parse_word),
    KeySpec("PortalFailover", "path", parse_boolean),
    KeySpec("Multipath", "path", parse_word),
    # Recognized and reported (no open-iscsi equivalent).
    KeySpec("SLPMulticast", "other", parse_quoted),
    KeySpec("SLPUnicast", "other", parse_word),
    KeySpec("SLPScopes", "other", parse_quoted),
    KeySpec("PollInterval", "other", parse_time),
    KeySpec("DiscoveryFile", "other", parse_rest),
    KeySpec("ReadSize", "other", parse_number),
    KeySpec("DefaultAddress", "other", parse_word),
    KeySpec("Target,Lun", "other", parse_rest),
)
#: Every key (and synonym), lower-cased, -> its spec.
KEYS: dict[str, KeySpec] = {}
for _spec in _SPECS:
    for _name in (_spec.name, *_spec.synonyms):
        KEYS[_name.lower()] = _spec

#: The categories each section kind keeps (iscsi-config.c entry_*_options).
_KEEPS: dict[SectionKind, frozenset[str]] = {
    "discovery": frozenset({"auth", "conn", "discovery"}),
    "target": frozenset({"auth", "conn", "session", "error", "tcp", "iscsi", "enabled", "path"}),
    "subnet": frozenset({"conn", "error", "tcp"}),
}
_SECTION_KEYS = {
    "discoveryaddress": "discovery",
    "targetipaddr": "discovery",
    "targetname": "target",
    "subnet": "subnet",
    "address": "subnet",
}


def _indent(raw: str) -> tuple[int, str]:
    width = 0
    for i, ch in enumerate(raw):
        if ch == "\t":
            width += 8
        elif ch.isspace():
            width += 1
        else:
            return width, raw[i:]
    return width, ""


def _parse_subnet(value: str) -> ipaddress.IPv4Network | None:
    """``a.b.c.d[/bits]`` or ``a.b.c.d&hexmask`` (mask default /32)."""
    address, mask = value, 32
    try:
        if "/" in value:
            address, bits = value.rsplit("/", 1)
            mask = int(bits) if bits.isdigit() and int(bits) < 32 else 32
        elif "&" in value:
            address, hexmask = value.rsplit("&", 1)
            mask = bin(int(hexmask, 16) & 0xFFFFFFFF).count("1")
        return ipaddress.IPv4Network(f"{ipaddress.IPv4Address(address)}/{mask}", strict=False)
    except ValueError:
        return None


def _split_portal(value: str) -> tuple[str, int]:
    """DiscoveryAddress's ``host[:port]`` (the driver splits at the first ``:``; a
    bracketed IPv6 ``[addr]:port``, which it could not read, is taken as RFC 3720 writes
    it)."""
    if value.startswith("[") and "]" in value:
        host, _, rest = value[1:].partition("]")
        port = rest.removeprefix(":")
        return host, int(port) if port.isdigit() and int(port) > 0 else 3260
    host, _, port = value.partition(":")
    digits = ""
    for ch in port:
        if not ch.isdigit():
            break
        digits += ch
    return host, int(digits) if digits and int(digits) > 0 else 3260


def parse_conf(text: str, path: str = "/etc/iscsi.conf") -> LinuxIscsiConf:
    """Parse iscsi.conf ``text`` (see the module docstring for the rules)."""
    conf = LinuxIscsiConf(path)
    current: Section | None = None
    for number, raw in enumerate(text.splitlines(), start=1):
        indent, line = _indent(raw)
        line = line.rstrip()
        if not line or line.startswith("#"):
            continue
        if current is not None and indent <= current.indent:
            current = None

        def problem(message: str, kind: Literal["error", "unknown"] = "error") -> None:
            conf.problems.append(ConfProblem(path, number, line, message, kind))  # noqa: B023

        name, eq, rest = line.partition("=")
        lname = name.lower()
        if not eq or (lname not in KEYS and lname not in _SECTION_KEYS):
            hint = " (no blanks are allowed around '=')" if name != name.rstrip() else ""
            problem(f"unrecognized line, linux-iscsi ignores it{hint}", "unknown")
            continue
        if lname in _SECTION_KEYS:
            kind: SectionKind = _SECTION_KEYS[lname]  # type: ignore[assignment]
            section = Section(kind, number, line, indent=indent)
            if kind == "discovery":
                word = _first_word(rest)
                if not word:
                    problem("an address is required")
                    continue
                section.address, section.port = _split_portal(word)
            elif kind == "target":
                target = parse_quoted(rest)
                if not target:
                    problem("a target name is required")
                    continue
                section.target = str(target)
            else:
                network = _parse_subnet(rest)
                if network is None:
                    problem("bogus Subnet address")
                    continue
                section.network = network
                section.address = str(network.network_address)
            keeps = _KEEPS[kind]
            section.inherited = {
                k: s for k, s in conf.globals.items() if KEYS[k.lower()].category in keeps
            }
            conf.sections.append(section)
            current = section
            continue
        spec = KEYS[lname]
        value = spec.parse(rest)
        if value is None:
            problem(f"invalid {spec.name} value {rest!r}")
            continue
        setting = Setting(spec.name, value, line, number)
        if current is None or (
            spec.category in ("discovery", "other") and current.kind != "discovery"
        ):
            # Global; also the driver's fall-through for Continuous / SendAsyncText /
            # PollInterval inside a TargetName or Subnet section.
            if spec.name in {"ReadSize", "DefaultAddress"}:
                problem(f"{spec.name} applies only to a DiscoveryFile entry")
                continue
            conf.globals[spec.name] = setting
            continue
        if spec.category == "other" and current.kind == "discovery":
            conf.globals[spec.name] = setting  # SLP/PollInterval: global in the driver
            continue
        if spec.category not in _KEEPS[current.kind]:
            problem(f"{spec.name} does not apply to a {current.label} section")
            continue
        current.own.append(setting)
    return conf
