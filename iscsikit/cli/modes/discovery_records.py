"""The records side of ``-m discovery`` / ``-m discoverydb``: listing discovery sources
(``ip:port via type``, the ``-P 1`` trees), and showing, adding, updating and deleting
discovery records, as iscsiadm 2.1.8 does (see :mod:`iscsikit.cli.modes.discovery`,
which performs discoveries and dispatches the two modes).

:class:`Command` is one invocation: its arguments, environment and the JSON document
being built.  Directory order is iscsiadm's (``readdir``), never sorted.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from iscsikit.cli import jsonout
from iscsikit.cli.printing import discovery_text, portal_text
from iscsikit.errors import IscsiErr, IscsiError, NoObjectsFoundError

if TYPE_CHECKING:
    from iscsikit.cli.env import CliEnv
    from iscsikit.cli.options import ParsedArgs
    from iscsikit.records import DiscoveryRecord, NodeRecord, Records

__all__ = [
    "Command",
    "delete",
    "idbm_tree",
    "list_records",
    "listdir",
    "new",
    "show",
    "split_portal",
    "stored",
    "update",
]

_NODE_TYPE = {"sendtargets": "send_targets", "isns": "isns"}


def split_portal(text: str, default_port: int) -> tuple[str, int] | None:
    """iscsiadm's ``str_to_ipport``: ``ip[:port][,tpgt]``, ``[ipv6][:port]``, a bare
    IPv6 address or ``host[:port]``; the port read with strtoul (``abc`` is 0), the tpgt
    dropped.  None for ``[ipv6`` without ``]``."""
    from iscsikit.config.registry import c_strtoul

    ip, rest, ip_is_rest, port_allowed = text, text, True, True
    if "." not in text:
        if text.startswith("["):
            close = text.find("]")
            if close < 0:
                return None
            ip, rest, ip_is_rest = text[1:close], text[close + 1 :], False
        elif text.count(":") > 1:
            port_allowed = False  # a bare IPv6 address
    port = default_port
    colon = rest.find(":") if port_allowed else -1
    if colon >= 0:
        if ip_is_rest:
            ip = rest[:colon]
        port = c_strtoul(rest[colon + 1 :]) & 0xFFFFFFFF  # strtoul into a C int
        port = port - (1 << 32) if port >= 1 << 31 else port
        rest, ip_is_rest = rest[colon + 1 :], False
    comma = rest.find(",")
    if comma >= 0 and ip_is_rest:
        ip = rest[:comma]
    return ip, port


def idbm_tree(nodes: Any) -> str:
    """usr/idbm.c ``idbm_print_node_tree``: Target once per run of a target, Portal once
    per run of an address and port, then every Iface Name (unlike node ``-P 1``)."""
    out: list[str] = []
    last_target: str | None = None
    last_portal: tuple[str, int] | None = None
    for n in nodes:
        if n.target != last_target:
            out.append(f"Target: {n.target}\n")
            last_target, last_portal = n.target, None
        if (n.address, n.port) != last_portal:
            out.append(f"\tPortal: {portal_text(n.address, n.port)},{n.tpgt}\n")
            last_portal = (n.address, n.port)
        out.append(f"\t\tIface Name: {n.iface}\n")
    return "".join(out)


class Command:
    """One invocation: arguments, environment, and the JSON document being built."""

    def __init__(self, args: ParsedArgs, env: CliEnv) -> None:
        self.args, self.env = args, env
        self.json = jsonout.wants_json(args)
        self.doc: dict[str, Any] = {}

    def out(self, text: str) -> None:
        if not self.json:
            self.env.out(text)

    def err(self, message: str) -> None:
        self.env.err(message)
        if self.json:
            self.doc.setdefault("errors", []).append(message)


def listdir(path: str) -> list[str]:
    """Directory entries in readdir order, as iscsiadm walks them (no sorting)."""
    from iscsikit.records.layout import is_temp_name

    try:
        return [n for n in os.listdir(path) if not is_temp_name(n)]
    except (FileNotFoundError, NotADirectoryError):
        return []


def _discovery_dirs(records: Records, kind: str) -> list[tuple[str, int]]:
    from iscsikit.records.layout import parse_discovery_dir_name

    root = records.layout.discovery_root(kind)
    return [p for n in listdir(root) if (p := parse_discovery_dir_name(n)) is not None]


def _nodes_in_readdir_order(records: Records) -> list[NodeRecord]:
    """Every node record in usr/idbm.c ``idbm_for_each_rec`` order (directory order)."""
    from iscsikit.records.layout import parse_portal_name

    by_id = {(n.target, n.address, n.port, n.tpgt, n.iface): n for n in records.nodes()}
    out: list[NodeRecord] = []
    root = records.layout.nodes
    for target in listdir(root):
        for entry in listdir(f"{root}/{target}"):
            parsed = parse_portal_name(entry)
            if parsed is None:
                continue
            address, port, tpgt = parsed
            ifaces = ["default"] if tpgt is None else listdir(f"{root}/{target}/{entry}")
            for iface in ifaces:
                node = by_id.pop((target, address, port, -1 if tpgt is None else tpgt, iface), None)
                if node is not None:
                    out.append(node)
    return out + list(by_id.values())


# -- listing ------------------------------------------------------------------------------


def list_records(cmd: Command) -> int:
    """``-m discovery[db]`` without a record: ``ip:port via type`` or the -P 1 tree.
    Exit 21 (silently) when nothing is listed; static and fw nodes count at -P 1 only."""
    records = cmd.env.records()
    sources = [(k, a, p) for k in ("sendtargets", "isns") for a, p in _discovery_dirs(records, k)]
    cmd.doc["op"] = "list"
    listed: list[dict[str, Any]] = cmd.doc.setdefault("discoveries", [])
    if cmd.args.print_level < 1:
        for kind, address, port in sources:
            cmd.out(f"{address}:{port} via {kind}\n")
            listed.append({"type": kind, "address": address, "port": port})
        return 0 if sources else int(IscsiErr.NO_OBJS_FOUND)
    nodes = _nodes_in_readdir_order(records)
    found = 0
    sections = (("SENDTARGETS", "sendtargets"), ("iSNS", "isns"), ("STATIC", "static"))
    for title, kind in (*sections, ("FIRMWARE", "fw")):
        cmd.out(f"{title}:\n")
        groups: list[tuple[str | None, int | None, list[NodeRecord]]]
        if kind in ("static", "fw"):
            mine = [n for n in nodes if n.discovery_type == kind]
            groups = [(None, None, mine)] if mine else []
            shown = len(mine)
        else:
            groups = [
                (a, p, [n for n in nodes if (n.discovery_type, n.discovery_address,
                                             n.discovery_port) == (_NODE_TYPE[kind], a, p)])
                for k, a, p in sources
                if k == kind
            ]  # fmt: skip
            shown = len(groups)
            if kind == "isns" and not groups:  # usr/idbm.c: pre-872 records, no server dir
                mine = [n for n in nodes if n.discovery_type == kind]
                groups = [(None, None, mine)] if mine else []
                shown = len(mine)
        for at, at_port, group in groups:
            if at is not None:
                cmd.out(f"DiscoveryAddress: {at},{at_port}\n")
            cmd.out(idbm_tree(group))
            listed.append({"type": kind, "address": at, "port": at_port,
                           "nodes": jsonout.node_list_json(group)})  # fmt: skip
        if not shown:
            cmd.out("No targets found.\n")
        found += shown
    return 0 if found else int(IscsiErr.NO_OBJS_FOUND)


# -- records ------------------------------------------------------------------------------


def stored(
    cmd: Command, kind: str, ip: str, port: int, missing: str, code: IscsiErr
) -> DiscoveryRecord:
    try:
        return cmd.env.records().discovery(kind, ip, port)
    except NoObjectsFoundError:
        raise IscsiError(missing.format(ip=ip, port=port), code=code) from None


def show(cmd: Command, drec: DiscoveryRecord) -> int:
    cmd.doc["op"] = "show"
    cmd.out(discovery_text(drec, show_secrets=cmd.args.show))
    cmd.doc["discoveries"] = [jsonout.discovery_json(drec, record=True, show_secrets=cmd.args.show)]
    return 0


def delete(cmd: Command, drec: DiscoveryRecord) -> int:
    records = cmd.env.records()
    cmd.doc["op"] = "delete"
    nodes = records.discovery_nodes(drec)
    records.delete_discovery(drec)
    cmd.doc["discoveries"] = [jsonout.discovery_json(drec, nodes=nodes)]
    return 0


def new(cmd: Command, kind: str, ip: str, port: int) -> int:
    from iscsikit.config.registry import RecordType
    from iscsikit.records import DiscoveryRecord

    rtype = RecordType.ISNS if kind == "isns" else RecordType.SENDTARGETS
    drec = DiscoveryRecord.new(kind, ip, port, template=cmd.env.iscsid_conf().template(rtype))
    cmd.env.records().add_discovery(drec)
    line = f"New discovery record for [{ip},{port}] added."
    cmd.out(line + "\n")
    cmd.doc.update(op="new", messages=[line], discoveries=[jsonout.discovery_json(drec)])
    return 0


def update(cmd: Command, kind: str, ip: str, port: int) -> int:
    from iscsikit.config.registry import REGISTRY

    if not cmd.args.params:
        raise IscsiError("Update requires name and value.", code=IscsiErr.INVAL)
    drec = stored(cmd, kind, ip, port, "Discovery record [{ip},{port}] not found.", IscsiErr.IDBM)
    changes: dict[str, str] = {}
    for name, value in cmd.args.params:  # all checked before anything is written
        key = REGISTRY.check_modifiable(drec.record_type, name)
        changes[key.name] = REGISTRY.validate(drec.record_type, key.name, value, lenient=True)
    drec.values.update(changes)
    cmd.env.records().update_discovery(drec)
    cmd.doc.update(op="update", discoveries=[jsonout.discovery_json(drec)])
    return 0
