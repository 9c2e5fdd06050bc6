"""``-m discovery`` and ``-m discoverydb``: discovery records, and discovery itself.

Every branch below was compared with the real iscsiadm 2.1.8 (tests/integration/
test_cli_discovery_oracle.py and the golden battery); what is iscsiadm's, quirks
included:

* **discovery** ``-t st -p P``: SendTargets with a *fresh* record from iscsid.conf
  (an existing record is overwritten, unless ``-o nonpersistent``), once per iface;
  the result is printed iface by iface (``%s:%d,%d %s``, tpgt -1 as ``-1``) or as the
  ``-P 1`` tree (``-P 2`` and above print nothing); ``-o new|delete|update|
  nonpersistent`` choose what happens to node records (no ``-o``: new, delete and
  update; ``-o show`` alone: none).  Without ``-t``: ``-p`` shows (``-o show``),
  deletes (``-o delete``) or discovers and logs in (``-l``) a stored record, ``-o
  new|update`` are refused ("Use discoverydb mode"); no ``-p`` lists the records in
  directory order (``-P 1``: SENDTARGETS / iSNS / STATIC / FIRMWARE trees); nothing
  found exits 21 without a word.
* **discoverydb** ``-t st|isns -p P``: ``-o new`` (which wins over any other op),
  ``update`` (needs ``-n/-v``; values read as iscsiadm reads them), ``delete`` (with
  the nodes it found), ``show``/none; ``-D`` discovers with the *stored* record
  (created when missing, unless nonpersistent), ignoring ``-n/-v``; ``-t fw`` needs
  ``-D``.  A record that is not there exits 6 here, 7 in discovery mode.
* Failures of SendTargets exit as iscsiadm's do: no connection 11 (PDU timeout, after
  iscsiadm's reopen retries), the target closing the connection during login 243 (a
  negative return code of iscsiadm's, reproduced because scripts see it),
  authentication 24, nothing reported 21 ("No portals found", nothing written).

Deliberate differences (docs/json-output.md, appendix): iSNS discovery itself is not
implemented, so ``-t isns`` discovery exits 17 ("iSNS service not supported") where
iscsiadm, finding no server, exits 25; iscsikit does not retry a refused connection
``discovery.sendtargets.reopen_max`` times.
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
    from iscsikit.discovery.db import DiscoveryOp
    from iscsikit.proto.sendtargets import DiscoveredTarget
    from iscsikit.records import DiscoveryRecord, IfaceRecord, NodeRecord, Records

__all__ = ["idbm_tree", "run", "split_portal"]

ST_PORTAL_HELP = "Please specify portal as <ipaddr>[:<ipport>]"
ISNS_PORTAL_HELP = "Please specify portal as <ipaddr>:[<ipport>]"
#: iscsiadm's exit code when a target closes the connection during discovery login.
EXIT_CONNECTION_CLOSED = 243
_TYPES = {"st": "sendtargets", "sendtargets": "sendtargets", "isns": "isns", "fw": "fw"}
_DEFAULT_PORT = {"sendtargets": 3260, "isns": 3205}
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


class _Cmd:
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


def _listdir(path: str) -> list[str]:
    """Directory entries in readdir order, as iscsiadm walks them (no sorting)."""
    from iscsikit.records.layout import is_temp_name

    try:
        return [n for n in os.listdir(path) if not is_temp_name(n)]
    except (FileNotFoundError, NotADirectoryError):
        return []


def _discovery_dirs(records: Records, kind: str) -> list[tuple[str, int]]:
    from iscsikit.records.layout import parse_discovery_dir_name

    root = records.layout.discovery_root(kind)
    return [p for n in _listdir(root) if (p := parse_discovery_dir_name(n)) is not None]


def _nodes_in_readdir_order(records: Records) -> list[NodeRecord]:
    """Every node record in usr/idbm.c ``idbm_for_each_rec`` order (directory order)."""
    from iscsikit.records.layout import parse_portal_name

    by_id = {(n.target, n.address, n.port, n.tpgt, n.iface): n for n in records.nodes()}
    out: list[NodeRecord] = []
    root = records.layout.nodes
    for target in _listdir(root):
        for entry in _listdir(f"{root}/{target}"):
            parsed = parse_portal_name(entry)
            if parsed is None:
                continue
            address, port, tpgt = parsed
            ifaces = ["default"] if tpgt is None else _listdir(f"{root}/{target}/{entry}")
            for iface in ifaces:
                node = by_id.pop((target, address, port, -1 if tpgt is None else tpgt, iface), None)
                if node is not None:
                    out.append(node)
    return out + list(by_id.values())


# -- listing ------------------------------------------------------------------------------


def _list(cmd: _Cmd) -> int:
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


def _stored(
    cmd: _Cmd, kind: str, ip: str, port: int, missing: str, code: IscsiErr
) -> DiscoveryRecord:
    try:
        return cmd.env.records().discovery(kind, ip, port)
    except NoObjectsFoundError:
        raise IscsiError(missing.format(ip=ip, port=port), code=code) from None


def _show(cmd: _Cmd, drec: DiscoveryRecord) -> int:
    cmd.doc["op"] = "show"
    cmd.out(discovery_text(drec, show_secrets=cmd.args.show))
    cmd.doc["discoveries"] = [jsonout.discovery_json(drec, record=True, show_secrets=cmd.args.show)]
    return 0


def _delete(cmd: _Cmd, drec: DiscoveryRecord) -> int:
    records = cmd.env.records()
    cmd.doc["op"] = "delete"
    nodes = records.discovery_nodes(drec)
    records.delete_discovery(drec)
    cmd.doc["discoveries"] = [jsonout.discovery_json(drec, nodes=nodes)]
    return 0


def _new(cmd: _Cmd, kind: str, ip: str, port: int) -> int:
    from iscsikit.config.registry import RecordType
    from iscsikit.records import DiscoveryRecord

    rtype = RecordType.ISNS if kind == "isns" else RecordType.SENDTARGETS
    drec = DiscoveryRecord.new(kind, ip, port, template=cmd.env.iscsid_conf().template(rtype))
    cmd.env.records().add_discovery(drec)
    line = f"New discovery record for [{ip},{port}] added."
    cmd.out(line + "\n")
    cmd.doc.update(op="new", messages=[line], discoveries=[jsonout.discovery_json(drec)])
    return 0


def _update(cmd: _Cmd, kind: str, ip: str, port: int) -> int:
    from iscsikit.config.registry import REGISTRY

    if not cmd.args.params:
        raise IscsiError("Update requires name and value.", code=IscsiErr.INVAL)
    drec = _stored(cmd, kind, ip, port, "Discovery record [{ip},{port}] not found.", IscsiErr.IDBM)
    changes: dict[str, str] = {}
    for name, value in cmd.args.params:  # all checked before anything is written
        key = REGISTRY.check_modifiable(drec.record_type, name)
        changes[key.name] = REGISTRY.validate(drec.record_type, key.name, value, lenient=True)
    drec.values.update(changes)
    cmd.env.records().update_discovery(drec)
    cmd.doc.update(op="update", discoveries=[jsonout.discovery_json(drec)])
    return 0


# -- performing discovery -----------------------------------------------------------------


def _ops(args: ParsedArgs) -> DiscoveryOp:
    from iscsikit.discovery.db import DiscoveryOp

    if not args.ops:
        return DiscoveryOp.default()
    ops = DiscoveryOp(0)
    for name in args.ops:
        if name in ("new", "delete", "update", "nonpersistent"):
            ops |= DiscoveryOp[name.upper()]
    return ops


def _binding_ifaces(cmd: _Cmd, records: Records) -> list[IfaceRecord]:
    """The -I ifaces that can be read (the others reported), or every tcp iface file in
    directory order, or ``default``."""
    if cmd.args.ifaces:
        found = []
        for name in dict.fromkeys(cmd.args.ifaces):
            try:
                found.append(records.iface(name))
            except IscsiError:
                cmd.err(
                    f"Could not read iface info for {name}. Make sure an iface config with "
                    f"the file name and iface.iscsi_ifacename {name} is in "
                    f"{records.layout.ifaces}."
                )
        return found
    from iscsikit.manager.ifaces import ensure_offload_ifaces

    ensure_offload_ifaces(records)  # open-iscsi makes them whenever it lists ifaces
    tcp = []
    for name in _listdir(records.layout.ifaces):
        try:
            iface = records.iface(name)
        except IscsiError:
            continue
        if not iface.is_builtin and iface.transport == "tcp":
            tcp.append(iface)
    return tcp or [records.iface("default")]


def _sendtargets_once(
    cmd: _Cmd, drec: DiscoveryRecord, initiator: str | None
) -> list[DiscoveredTarget]:
    from iscsikit import api
    from iscsikit.discovery.sendtargets import chap_of
    from iscsikit.errors import AuthenticationError, TransportError
    from iscsikit.proto.address import Portal

    timeo = "discovery.sendtargets.timeo."
    try:
        return api.discover(
            Portal(drec.address, drec.port),
            chap=chap_of(drec),
            initiator_name=initiator,
            login_timeout=float(drec.get(timeo + "login_timeout") or 15),
            response_timeout=float(drec.get(timeo + "active_timeout") or 30),
            max_recv_data_segment_length=int(
                drec.get("discovery.sendtargets.iscsi.MaxRecvDataSegmentLength") or 32768
            ),
        )
    except IscsiError as exc:
        text = str(exc)
        cmd.err(text)
        code = int(exc.code)
        connect = ("cannot make connection", "cannot resolve", "connect to ")
        if isinstance(exc, TransportError) and text.startswith(connect):
            code = int(IscsiErr.PDU_TIMEOUT)  # iscsiadm: reopen_max retries, then this
        elif type(exc) is TransportError:  # closed or reset during the login
            cmd.err(f"Connection to Discovery Address {drec.address} failed")
            raise _Exit(EXIT_CONNECTION_CLOSED) from exc
        elif isinstance(exc, AuthenticationError):
            cmd.err("Login failed to authenticate with target ")
        what = jsonout.error_json(code)["message"]
        raise IscsiError(
            f"Could not perform SendTargets discovery: {what}", code=IscsiErr(code)
        ) from exc


class _Exit(Exception):
    """Exit with a code that is not an iscsi_err number (the 243 quirk)."""

    def __init__(self, code: int) -> None:
        super().__init__(code)
        self.code = code


def _sendtargets(cmd: _Cmd, ip: str, port: int, *, fresh: bool) -> int:
    """SendTargets at ip:port; ``fresh`` (discovery mode) starts from iscsid.conf's
    template instead of the stored record."""
    from iscsikit.config.initiatorname import read_initiator_name
    from iscsikit.config.registry import RecordType
    from iscsikit.discovery.db import DiscoveryOp, apply_discovery
    from iscsikit.records import DiscoveryRecord

    env, records, conf = cmd.env, cmd.env.records(), cmd.env.iscsid_conf()
    ops = _ops(cmd.args)
    persistent = DiscoveryOp.NONPERSISTENT not in ops
    drec: DiscoveryRecord | None = None
    if not fresh:
        try:
            drec = records.discovery("sendtargets", ip, port)
        except NoObjectsFoundError:
            drec = None
    ifaces = _binding_ifaces(cmd, records)
    if not ifaces:
        return int(IscsiErr.NO_OBJS_FOUND)
    if drec is None:
        template = conf.template(RecordType.SENDTARGETS)
        drec = DiscoveryRecord.new("sendtargets", ip, port, template=template)
        if persistent:
            records.add_discovery(drec)
    cmd.doc.update(op="discover", discovery=jsonout.discovery_json(drec))
    default_name = read_initiator_name(env.paths.initiatorname_file)
    by_name: dict[str | None, list[DiscoveredTarget]] = {}
    results: list[tuple[IfaceRecord, list[DiscoveredTarget]]] = []
    for iface in ifaces:
        name = iface.get("iface.initiatorname") or default_name
        if name not in by_name:
            found = _sendtargets_once(cmd, drec, name)
            by_name[name] = list({(t.name, t.host, t.port, t.tpgt): t for t in found}.values())
        results.append((iface, by_name[name]))
    if not any(found for _, found in results):
        raise IscsiError("No portals found", code=IscsiErr.NO_OBJS_FOUND)
    template = conf.template(RecordType.NODE)
    union = list({(t.name, t.host, t.port, t.tpgt): t for _, f in results for t in f}.values())
    outcomes = []
    if all(found == union for _, found in results):
        outcomes.append(apply_discovery(records, drec, union, ifaces, ops=ops, template=template))
    else:  # ifaces with different initiator names saw different targets (ACLs)
        for iface, found in results:
            outcomes.append(
                apply_discovery(
                    records, drec, found, [iface], ops=ops & ~DiscoveryOp.DELETE, template=template
                )
            )
        if DiscoveryOp.DELETE in ops:
            outcomes.append(
                apply_discovery(
                    records, drec, union, ifaces, ops=DiscoveryOp.DELETE, template=template
                )
            )
    from iscsikit.records import NodeRecord

    nodes = [
        NodeRecord.new(
            t.name, t.host, t.port, t.tpgt, iface=iface, discovery=drec, template=template
        )
        for iface, found in results
        for t in found
    ]
    cmd.doc["targets"] = jsonout.node_list_json(nodes)
    cmd.doc["changes"] = {
        what: [jsonout.node_json(n) for o in outcomes for n in getattr(o, what)]
        for what in ("added", "updated", "deleted")
    }
    _print_found(cmd, nodes)
    return _login(cmd, nodes) if cmd.args.login else 0


def _print_found(cmd: _Cmd, nodes: list[NodeRecord]) -> None:
    level = cmd.args.print_level
    if level in (-1, 0):
        cmd.out("".join(f"{portal_text(n.address, n.port)},{n.tpgt} {n.target}\n" for n in nodes))
    elif level == 1:
        cmd.out(idbm_tree(nodes))


def _firmware(cmd: _Cmd) -> int:
    """``-t fw``: the boot firmware's targets (iBFT), as node records of type fw."""
    from iscsikit.cli.modes.fw import boot_node
    from iscsikit.discovery.db import DiscoveryOp
    from iscsikit.records import DiscoveryRecord
    from iscsikit.sysfs import SysfsContext

    ibft = SysfsContext.from_paths(cmd.env.paths).ibft()
    targets = ibft.targets()
    if not targets:
        code = IscsiErr.NO_OBJS_FOUND if ibft.readable else IscsiErr.SYSFS_LOOKUP
        raise IscsiError(
            f"Could not get list of targets from firmware. (err {int(code)})", code=code
        )
    nodes = [boot_node(t) for t in targets]
    ops, records = _ops(cmd.args), cmd.env.records()
    if DiscoveryOp.NONPERSISTENT not in ops:
        stored = set(records.node_ids())
        wanted = [
            n for n in nodes if (DiscoveryOp.UPDATE if n.id in stored else DiscoveryOp.NEW) in ops
        ]
        if wanted:
            records.add_nodes(wanted, discovery=DiscoveryRecord.new("fw"))
    cmd.doc.update(
        op="discover",
        discovery={"type": "fw", "address": None, "port": None},
        targets=jsonout.node_list_json(nodes),
    )
    _print_found(cmd, nodes)
    return _login(cmd, nodes) if cmd.args.login else 0


def _login(cmd: _Cmd, nodes: list[NodeRecord]) -> int:
    """``-l``: log in to every node found, iscsiadm's way (all "Logging in" lines first)."""
    from iscsikit.cli.progress import progress
    from iscsikit.manager.login_plan import plan_login
    from iscsikit.manager.sessions import session_service

    service = session_service(cmd.env)
    sessions = service.sessions()
    first = 0
    requests = []
    for node in nodes:
        try:
            requests += plan_login(node, sessions)
        except IscsiError as exc:
            cmd.err(str(exc))
            first = first or int(exc.code)
    for req in requests:
        cmd.out(f"Logging in to {req.description}{' (multiple)' if req.multiple else ''}\n")
    logins: list[dict[str, Any]] = cmd.doc.setdefault("logins", [])
    with progress(cmd.env, cmd.args, len(requests), "Logging in") as bar:
        for req in requests:
            entry = jsonout.node_json(req.node)
            try:
                service.login(req.node, wait=not cmd.args.no_wait)
            except IscsiError as exc:
                bar.clear()
                cmd.err(f"Could not login to {req.description}.")
                cmd.err(
                    f"initiator reported error ({int(exc.code)} - "
                    f"{jsonout.error_json(int(exc.code))['message']}): {exc}"
                )
                first = first or int(exc.code)
                entry["error"] = jsonout.error_json(int(exc.code), str(exc))
            else:
                cmd.out(f"Login to {req.description} successful.\n")
            logins.append(entry)
            bar.advance()
    return first


# -- the two modes ------------------------------------------------------------------------


def _portal(cmd: _Cmd, kind: str, help_text: str = ST_PORTAL_HELP) -> tuple[str, int]:
    parsed = split_portal(cmd.args.portal, _DEFAULT_PORT[kind]) if cmd.args.portal else None
    if parsed is None:
        raise IscsiError(help_text, code=IscsiErr.INVAL)
    return parsed


def _isns_refused() -> IscsiError:
    return IscsiError(
        "Could not perform iSNS discovery: iSNS discovery is not implemented "
        "in iscsikit yet (iSNS service not supported)",
        code=IscsiErr.ISNS_UNAVAILABLE,
    )


def _discovery(cmd: _Cmd) -> int:
    args = cmd.args
    kind = "slp" if args.type == "slp" else _TYPES.get(args.type or "")
    if kind == "sendtargets":
        ip, port = _portal(cmd, kind)
        return _sendtargets(cmd, ip, port, fresh=True)
    if kind == "slp":
        raise IscsiError("SLP discovery is not fully implemented yet.", code=IscsiErr.INVAL)
    if kind == "isns":
        _portal(cmd, kind, ISNS_PORTAL_HELP)
        raise _isns_refused()
    if kind == "fw":
        return _firmware(cmd)
    op = args.op_mask
    if args.portal:
        ip, port = split_portal(args.portal, 3260) or (args.portal, 3260)
        drec = _stored(
            cmd,
            "sendtargets",
            ip,
            port,
            "Discovery record [{ip},{port}] not found!",
            IscsiErr.INVAL,
        )
        if args.login:
            return _sendtargets(cmd, ip, port, fresh=False)
        if op in (0, 0x8):
            return _show(cmd, drec)
        if op == 0x2:
            return _delete(cmd, drec)
        if op in (0x1, 0x4):
            raise IscsiError(
                "Operations new and update for discovery mode is not supported. "
                "Use discoverydb mode.",
                code=IscsiErr.INVAL,
            )
    elif op in (0, 0x8):
        return _list(cmd)
    raise IscsiError("Invalid operation.", code=IscsiErr.INVAL)


def _discoverydb(cmd: _Cmd) -> int:
    args = cmd.args
    kind = _TYPES.get(args.type or "")
    if args.type == "slp":
        raise IscsiError("SLP discovery is not fully implemented yet.", code=IscsiErr.INVAL)
    if kind is None:
        if args.portal or args.type:
            raise IscsiError(
                "Invalid command. Possibly missing discovery --type.", code=IscsiErr.INVAL
            )
        if args.op_mask in (0, 0x8):
            return _list(cmd)
        raise IscsiError("Invalid operation. Operation not supported.", code=IscsiErr.INVAL)
    if kind == "fw":
        if not args.discover:
            raise IscsiError(
                "Invalid command. Possibly missing --discover argument.", code=IscsiErr.INVAL
            )
        return _firmware(cmd)
    ip, port = _portal(cmd, kind)
    op = args.op_mask
    if args.discover:
        if kind == "isns":
            raise _isns_refused()
        return _sendtargets(cmd, ip, port, fresh=False)
    if op & 0x1:
        return _new(cmd, kind, ip, port)
    if op == 0x4:
        return _update(cmd, kind, ip, port)
    if op in (0, 0x2, 0x8):
        drec = _stored(
            cmd, kind, ip, port, "Discovery record [{ip},{port}] not found.", IscsiErr.IDBM
        )
        return _delete(cmd, drec) if op == 0x2 else _show(cmd, drec)
    raise IscsiError("Operation is not supported.", code=IscsiErr.INVAL)


def run(args: ParsedArgs, env: CliEnv) -> int:
    """``-m discovery`` / ``-m discoverydb`` (see the module docstring)."""
    cmd = _Cmd(args, env)
    mode = args.mode or "discovery"
    try:
        code = _discoverydb(cmd) if mode == "discoverydb" else _discovery(cmd)
    except _Exit as exc:
        code = exc.code
    except IscsiError as exc:
        if cmd.json:
            jsonout.emit_error(env, mode, int(exc.code), str(exc), cmd.doc)
        raise
    if cmd.json and not jsonout.emitted(env):
        if code:
            cmd.doc["error"] = jsonout.error_json(code)
        jsonout.emit(env, mode, cmd.doc)
    return code
