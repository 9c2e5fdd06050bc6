"""From linux-iscsi's settings to open-iscsi / iscsikit ones: one table, one plan.

:data:`NODE_KEYS` and :data:`DISCOVERY_KEYS` say what each linux-iscsi key becomes;
:data:`NOT_MIGRATED` says why the others cannot be (docs/migration.md prints both).
:func:`build_plan` turns a parsed iscsi.conf into a :class:`MigrationPlan`:

* one SendTargets :class:`~iscsikit.records.DiscoveryRecord` per DiscoveryAddress, with
  that section's CHAP and connection timeouts, ``Continuous=yes`` as discoveryd;
* ``template``: the node keys of the *final* global settings, for iscsid.conf -- where
  open-iscsi keeps what every node found by a later discovery starts with, as
  linux-iscsi applied its globals to every target a discovery found.  ``node.startup``
  is ``automatic`` there (linux-iscsi logged in to every discovered, enabled target);
* :meth:`MigrationPlan.node_values`: what one node record gets, resolved in linux-iscsi's
  order (globals, the CHAP of the discovery that found it, then every TargetName /
  Subnet section that matches it in file order, each with the globals it captured);
* ``failover``: PortalFailover / PreferredPortal / PreferredSubnet for iscsikit.conf;
* ``unmapped``: every setting that has no equivalent, with ``file:line`` and why.

Pure: no I/O (:mod:`iscsikit.migrate.apply` writes).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from iscsikit.config.registry import REGISTRY, RecordType
from iscsikit.errors import InvalidParameterError
from iscsikit.migrate.conf import (
    KEYS,
    ConfProblem,
    LinuxIscsiConf,
    Section,
    Setting,
    Value,
    _parse_subnet,
)
from iscsikit.migrate.legacy_files import FstabEntry, LegacyBinding
from iscsikit.records import DiscoveryRecord, NodeRecord

__all__ = [
    "DISCOVERY_KEYS",
    "LINUX_ISCSI_DEFAULTS",
    "NODE_KEYS",
    "NOT_MIGRATED",
    "MigrationPlan",
    "Unmapped",
    "build_plan",
    "section_matches",
]


def _digest(value: Value) -> str:
    # CONFIG_DIGEST_*: prefer-on offers CRC32C first, prefer-off None first.
    return {
        "never": "None",
        "always": "CRC32C",
        "prefer-on": "CRC32C,None",
        "prefer-off": "None,CRC32C",
    }[str(value)]


def _yes_no(value: Value) -> str:
    return "Yes" if value else "No"


def _number(value: Value) -> str:
    return str(value)


#: linux-iscsi key -> (open-iscsi node keys, value converter).
NODE_KEYS: dict[str, tuple[tuple[str, ...], Callable[[Value], str]]] = {
    "OutgoingUsername": (("node.session.auth.username",), str),
    "OutgoingPassword": (("node.session.auth.password",), str),
    "IncomingUsername": (("node.session.auth.username_in",), str),
    "IncomingPassword": (("node.session.auth.password_in",), str),
    "HeaderDigest": (("node.conn[0].iscsi.HeaderDigest",), _digest),
    "DataDigest": (("node.conn[0].iscsi.DataDigest",), _digest),
    "InitialR2T": (("node.session.iscsi.InitialR2T",), _yes_no),
    "ImmediateData": (("node.session.iscsi.ImmediateData",), _yes_no),
    "MaxRecvDataSegmentLength": (("node.conn[0].iscsi.MaxRecvDataSegmentLength",), _number),
    "FirstBurstLength": (("node.session.iscsi.FirstBurstLength",), _number),
    "MaxBurstLength": (("node.session.iscsi.MaxBurstLength",), _number),
    "LoginTimeout": (("node.conn[0].timeo.login_timeout",), _number),
    "AuthTimeout": (("node.conn[0].timeo.auth_timeout",), _number),
    "IdleTimeout": (("node.conn[0].timeo.noop_out_interval",), _number),
    "PingTimeout": (("node.conn[0].timeo.noop_out_timeout",), _number),
    "ConnFailTimeout": (("node.session.timeo.replacement_timeout",), _number),
    "AbortTimeout": (("node.session.err_timeo.abort_timeout",), _number),
    "ResetTimeout": (
        ("node.session.err_timeo.lu_reset_timeout", "node.session.err_timeo.tgt_reset_timeout"),
        _number,
    ),
    "TCPWindowSize": (("node.conn[0].tcp.window_size",), _number),
    "Enabled": (("node.startup",), lambda v: "automatic" if v else "manual"),
}

#: linux-iscsi key in a DiscoveryAddress section -> (discovery keys, converter).
DISCOVERY_KEYS: dict[str, tuple[tuple[str, ...], Callable[[Value], str]]] = {
    "OutgoingUsername": (("discovery.sendtargets.auth.username",), str),
    "OutgoingPassword": (("discovery.sendtargets.auth.password",), str),
    "IncomingUsername": (("discovery.sendtargets.auth.username_in",), str),
    "IncomingPassword": (("discovery.sendtargets.auth.password_in",), str),
    "LoginTimeout": (("discovery.sendtargets.timeo.login_timeout",), _number),
    "AuthTimeout": (("discovery.sendtargets.timeo.auth_timeout",), _number),
    "ActiveTimeout": (("discovery.sendtargets.timeo.active_timeout",), _number),
    "Continuous": (
        ("discovery.sendtargets.use_discoveryd", "discovery.sendtargets.discoveryd_poll_inval"),
        _yes_no,  # the poll interval is set beside it (build_plan)
    ),
}
#: discoveryd's poll interval for Continuous=yes: open-iscsi's default (linux-iscsi kept
#: the session open and took the target's asynchronous events; there is no interval).
CONTINUOUS_POLL_SECONDS = 30

#: iscsikit.conf keys (iscsikit.manager.failover).
FAILOVER_KEYS = {
    "PortalFailover": "failover",
    "PreferredPortal": "failover.preferred_portal",
    "PreferredSubnet": "failover.preferred_subnet",
}

_NO_SLP = "open-iscsi has no SLP discovery (iscsiadm -t slp: not implemented)"
#: Why a key is not migrated (in the context where it has no equivalent).
NOT_MIGRATED: dict[str, str] = {
    "ActiveTimeout": "open-iscsi has one NOP-Out interval (IdleTimeout ->"
    " node.conn[0].timeo.noop_out_interval), none for connections with I/O outstanding",
    "IdleTimeout": "a discovery session is not kept alive with NOP-Outs in open-iscsi",
    "PingTimeout": "a discovery session is not kept alive with NOP-Outs in open-iscsi",
    "SendAsyncText": "open-iscsi never asks for SendTargets async events; discoveryd polls",
    "Multipath": "open-iscsi makes one session per node record (= per portal); keep"
    " node.startup=automatic on the portals to use and run dm-multipath over them",
    "SLPMulticast": _NO_SLP,
    "SLPUnicast": _NO_SLP,
    "SLPScopes": _NO_SLP,
    "PollInterval": "the SLP poll interval; open-iscsi has no SLP discovery",
    "DiscoveryFile": "open-iscsi has no file-based discovery; add static records"
    " (iscsikit-adm -m node -o new) for its targets",
    "Target,Lun": "obsolete: ignored by linux-iscsi's own reader already",
}

#: linux-iscsi's compiled defaults (iscsi_init_config_defaults), for the settings a
#: section captured before a global line changed them.
LINUX_ISCSI_DEFAULTS: dict[str, Value] = {
    "LoginTimeout": 15,
    "AuthTimeout": 45,
    "ActiveTimeout": 5,
    "IdleTimeout": 60,
    "PingTimeout": 5,
    "AbortTimeout": 10,
    "ResetTimeout": 30,
    "TCPWindowSize": 256 * 1024,
    "InitialR2T": 0,
    "ImmediateData": 1,
    "MaxRecvDataSegmentLength": 128 * 1024,
    "FirstBurstLength": 256 * 1024,
    "MaxBurstLength": 16 * 1024 * 1024 - 1024,
    "HeaderDigest": "prefer-off",
    "DataDigest": "prefer-off",
}
_AUTH = ("OutgoingUsername", "OutgoingPassword", "IncomingUsername", "IncomingPassword")
_TARGET_CATEGORIES = frozenset({"conn", "session", "error", "tcp", "iscsi", "enabled"})
_SUBNET_CATEGORIES = frozenset({"conn", "error", "tcp"})


@dataclass(frozen=True, slots=True)
class Unmapped:
    """A setting written in linux-iscsi's file that is not (fully) migrated."""

    where: str  # file:line
    text: str
    why: str

    def __str__(self) -> str:
        return f"{self.where}: {self.text}: {self.why}"


@dataclass(slots=True)
class MigrationPlan:
    """What a migration writes (see the module docstring)."""

    conf: LinuxIscsiConf | None = None
    discoveries: list[tuple[Section, DiscoveryRecord]] = field(default_factory=list)
    template: dict[str, str] = field(default_factory=dict)
    failover: dict[str, str] = field(default_factory=dict)
    bindings: list[LegacyBinding] = field(default_factory=list)
    bindings_path: str = ""
    fstab: list[FstabEntry] = field(default_factory=list)
    fstab_path: str = ""
    initiator_name: str = ""  # linux-iscsi's /etc/initiatorname.iscsi
    initiator_path: str = ""
    unmapped: list[Unmapped] = field(default_factory=list)
    problems: list[ConfProblem] = field(default_factory=list)

    def node_values(self, node: NodeRecord) -> dict[str, str] | None:
        """The values ``node`` gets, or None when no migrated setting concerns it (it
        was not found by a migrated discovery and no section names its target or
        portal)."""
        conf = self.conf
        if conf is None:
            return None
        found_by = next(
            (
                section
                for section, record in self.discoveries
                if node.discovery_type == "send_targets"
                and (node.discovery_address, node.discovery_port) == (record.address, record.port)
            ),
            None,
        )
        matching = [s for s in conf.sections if section_matches(s, node)]
        if found_by is None and not matching:
            return None
        # The template (globals, startup) only for what a migrated discovery found:
        # a record made otherwise was never linux-iscsi's target.
        values = dict(self.template) if found_by is not None else {}
        if found_by is not None:
            values.update(_node_auth(found_by.effective()))
        for section in matching:
            categories = _TARGET_CATEGORIES if section.kind == "target" else _SUBNET_CATEGORIES
            effective = section.effective()
            # The section copied the globals of its time: a key set globally only
            # later still has linux-iscsi's default for it.
            for key in conf.globals:
                if (
                    key not in effective
                    and KEYS[key.lower()].category in categories
                    and key in LINUX_ISCSI_DEFAULTS
                ):
                    values.update(_node_keys(key, LINUX_ISCSI_DEFAULTS[key]) or {})
            for key, setting in effective.items():
                if KEYS[key.lower()].category in categories:
                    values.update(_node_keys(key, setting.value) or {})
            if section.kind == "target":
                own_auth = {s.key: s for s in section.own if s.key in _AUTH}
                if own_auth:
                    values.update(_node_auth(own_auth))
        return values


def section_matches(section: Section, node: NodeRecord) -> bool:
    """Whether a TargetName / Subnet section applies to ``node`` (IPv4 subnets only,
    as linux-iscsi matched them)."""
    if section.kind == "target":
        return section.target == node.target
    if section.kind == "subnet" and section.network is not None:
        try:
            return ipaddress.IPv4Address(node.address) in section.network
        except ValueError:  # IPv6 or a name: linux-iscsi matched IPv4 only
            return False
    return False


def _node_keys(key: str, value: Value) -> dict[str, str] | None:
    """``key=value`` as validated node keys, or None (no equivalent / invalid)."""
    entry = NODE_KEYS.get(key)
    if entry is None:
        return None
    names, convert = entry
    if key == "ConnFailTimeout" and value == 0:
        return None  # see _why_node
    out = {}
    for name in names:
        try:
            out[name] = REGISTRY.validate(RecordType.NODE, name, convert(value))
        except InvalidParameterError:
            return None
    return out


def _node_auth(settings: Mapping[str, Setting]) -> dict[str, str]:
    out: dict[str, str] = {}
    for key in _AUTH:
        if key in settings:
            out.update(_node_keys(key, settings[key].value) or {})
    if out.get("node.session.auth.username") or out.get("node.session.auth.password"):
        out["node.session.auth.authmethod"] = "CHAP"
    return out


def _why_node(key: str, value: Value) -> str | None:
    """Why ``key=value`` cannot become node keys (None: it can)."""
    if key == "ConnFailTimeout" and value == 0:
        return (
            "0 kept I/O queued until the session came back in linux-iscsi; open-iscsi's 0"
            " fails it at once: set node.session.timeo.replacement_timeout yourself"
        )
    if key in NODE_KEYS and _node_keys(key, value) is None:
        names, convert = NODE_KEYS[key]
        try:
            for name in names:
                REGISTRY.validate(RecordType.NODE, name, convert(value))
        except InvalidParameterError as exc:
            return f"invalid for {names[0]}: {exc}"
    if key not in NODE_KEYS:
        return NOT_MIGRATED.get(key, "no open-iscsi equivalent")
    return None


def _discovery_values(section: Section) -> dict[str, str]:
    """A DiscoveryAddress section's discovery keys (the rest is reported by build_plan)."""
    values: dict[str, str] = {}
    for key, setting in section.effective().items():
        if key == "Continuous":
            values["discovery.sendtargets.use_discoveryd"] = _yes_no(setting.value)
            if setting.value:
                values["discovery.sendtargets.discoveryd_poll_inval"] = str(CONTINUOUS_POLL_SECONDS)
            continue
        entry = DISCOVERY_KEYS.get(key)
        if entry is None:
            continue  # reported once where it is written (build_plan)
        names, convert = entry
        for name in names:
            values[name] = convert(setting.value)
    if values.get("discovery.sendtargets.auth.username") or values.get(
        "discovery.sendtargets.auth.password"
    ):
        values["discovery.sendtargets.auth.authmethod"] = "CHAP"
    return values


def build_plan(conf: LinuxIscsiConf | None) -> MigrationPlan:
    """The plan for ``conf`` (bindings and fstab are added by the caller)."""
    plan = MigrationPlan(conf=conf)
    if conf is None:
        return plan
    plan.problems.extend(conf.problems)
    path = conf.path
    glob = conf.globals
    # Continuous in the global part changes the default of sections after it only.
    for section in conf.discoveries():
        values = _discovery_values(section)
        try:
            record = DiscoveryRecord.new("sendtargets", section.address, section.port)
            for name, value in values.items():
                record.set(name, value)
        except InvalidParameterError as exc:  # an address or value records refuse
            plan.problems.append(ConfProblem(path, section.line, section.text, str(exc)))
            continue
        plan.discoveries.append((section, record))
    # Template: the final globals' node keys, node.startup automatic unless Enabled.
    plan.template["node.startup"] = "automatic"
    for key, setting in glob.items():
        if key in _AUTH:
            continue
        plan.template.update(_node_keys(key, setting.value) or {})
    auths = {tuple(sorted(_node_auth(s.effective()).items())) for s, _ in plan.discoveries}
    if len(auths) == 1:
        plan.template.update(dict(next(iter(auths))))
    # iscsikit.conf failover preferences.
    seen_path: dict[str, Setting] = {}
    for setting in [*glob.values(), *(s for sec in conf.sections for s in sec.own)]:
        if setting.key not in FAILOVER_KEYS:
            continue
        where = f"{path}:{setting.line}"
        name = FAILOVER_KEYS[setting.key]
        if setting.key == "PortalFailover":
            value = "yes" if setting.value else "no"
        elif setting.key == "PreferredSubnet":
            network = _parse_subnet(str(setting.value))
            if network is None:
                plan.unmapped.append(Unmapped(where, setting.text, "not an IPv4 subnet"))
                continue
            value = str(network)
        else:
            value = str(setting.value)
        earlier = seen_path.get(name)
        if earlier is not None and plan.failover.get(name) != value:
            plan.unmapped.append(
                Unmapped(
                    where,
                    setting.text,
                    f"iscsikit.conf's {name} is host-wide and already"
                    f" {plan.failover[name]!r} (line {earlier.line})",
                )
            )
            continue
        seen_path[name] = setting
        plan.failover[name] = value
    # Report every written setting that has no equivalent where it is written.
    reported: set[int] = set()
    contexts: list[tuple[str, Setting]] = [("global", s) for s in glob.values()]
    for section in conf.sections:
        contexts += [(section.kind, s) for s in section.own]
    for context, setting in contexts:
        if setting.line in reported:
            continue
        why = _why(context, setting)
        if why is not None:
            reported.add(setting.line)
            plan.unmapped.append(Unmapped(f"{path}:{setting.line}", setting.text, why))
    for section in conf.sections:
        if section.kind != "subnet":
            # update_target_config: incoming credentials without outgoing ones refuse
            # the target (a discovery's credentials are those of the targets it finds).
            auth = (
                section.effective()
                if section.kind == "discovery"
                else {s.key: s for s in section.own}
            )
            incoming = any(k.startswith("Incoming") for k in auth)
            outgoing = "OutgoingUsername" in auth and "OutgoingPassword" in auth
            if incoming and not outgoing:
                plan.problems.append(
                    ConfProblem(
                        path,
                        section.line,
                        section.text,
                        "incoming CHAP credentials need outgoing ones (linux-iscsi refuses"
                        " the target)",
                    )
                )
    return plan


def _why(context: str, setting: Setting) -> str | None:
    key = setting.key
    if key in FAILOVER_KEYS:
        return None
    if context == "discovery":
        if key in DISCOVERY_KEYS:
            return None
        return NOT_MIGRATED.get(key, "no discovery-record equivalent")
    if key in ("Continuous", "SendAsyncText"):
        return None if key == "Continuous" else NOT_MIGRATED[key]
    if context == "global" and key in DISCOVERY_KEYS and key not in NODE_KEYS:
        # ActiveTimeout: only the discovery sections after it took it.
        return NOT_MIGRATED.get(key)
    return _why_node(key, setting.value)
