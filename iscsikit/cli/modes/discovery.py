"""``-m discovery`` and ``-m discoverydb``: discovery itself, and the dispatch of both
modes (the record operations and listings are in
:mod:`~iscsikit.cli.modes.discovery_records`; SendTargets runs in
:func:`iscsikit.discovery.sendtargets.send_targets`, the one runner).

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

* **iSNS** (``-t isns``, default port 3205): the query of
  :func:`iscsikit.discovery.isns.isns_targets` as each iface's initiator name, then the
  same node-record ops, printing and ``-l`` as SendTargets.  ``-m discovery -t isns``
  stores no ``isns/<ip>,<port>`` record (iscsiadm does not), so its nodes are linked
  old-style from ``isns/<target>,<ip>,<port>,<tpgt>,<iface>`` and found again (stale
  ones deleted) by their ``node.discovery_*``; ``-m discoverydb -t isns -D`` stores it
  (unless nonpersistent) and links the nodes into it.  An unreachable,
  silent or broken server exits 25 ("iSNS query failed"), a refused registration 26.

Deliberate differences (docs/json-output.md, appendix): iscsikit does not retry a
refused SendTargets connection ``discovery.sendtargets.reopen_max`` times.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from iscsikit.cli import jsonout
from iscsikit.cli.modes.discovery_records import (
    Command,
    delete,
    idbm_tree,
    list_records,
    listdir,
    new,
    show,
    split_portal,
    stored,
    update,
)
from iscsikit.cli.printing import node_iface_label, portal_text
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


def _binding_ifaces(cmd: Command, records: Records) -> list[IfaceRecord]:
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

    # open-iscsi makes them whenever it lists ifaces (the drivers are asked only when
    # an offload host is there: the others need not be imported)
    root = cmd.env.paths.root
    ensure_offload_ifaces(records, root=root)
    tcp = []
    for name in listdir(records.layout.ifaces):
        try:
            iface = records.iface(name)
        except IscsiError:
            continue
        if not iface.is_builtin and iface.transport == "tcp":
            tcp.append(iface)
    return tcp or [records.iface("default")]


def _sendtargets_once(
    cmd: Command, drec: DiscoveryRecord, initiator: str | None
) -> list[DiscoveredTarget]:
    from iscsikit.discovery.sendtargets import send_targets
    from iscsikit.errors import AuthenticationError, TransportError

    try:
        return send_targets(drec, initiator_name=initiator)
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


def _isns_once(
    cmd: Command, drec: DiscoveryRecord, initiator: str | None
) -> list[DiscoveredTarget]:
    """The iSNS query as ``initiator``, iscsiadm's messages and exit codes on failure
    (usr/discovery.c ``discovery_isns``, usr/iscsiadm.c ``do_isns``)."""
    from iscsikit.discovery.isns import isns_targets
    from iscsikit.manager.spec import initiator_name

    try:
        # No name configured: this host's, as the SendTargets runner does.
        return isns_targets(drec, initiator_name(initiator))
    except IscsiError as exc:
        cmd.err(str(exc))
        what = jsonout.error_json(int(exc.code))["message"]
        raise IscsiError(f"Could not perform iSNS discovery: {what}", code=exc.code) from exc


def _sendtargets(cmd: Command, ip: str, port: int, *, fresh: bool) -> int:
    """SendTargets at ip:port (see :func:`_discover`)."""
    return _discover(cmd, "sendtargets", ip, port, fresh=fresh)


def _discover(cmd: Command, kind: str, ip: str, port: int, *, fresh: bool) -> int:
    """SendTargets or iSNS discovery at ip:port; ``fresh`` (discovery mode) starts from
    iscsid.conf's template instead of the stored record.  A fresh iSNS record is never
    stored (iscsiadm's ``-m discovery -t isns`` writes only node records; they link into
    ``isns/<ip>,<port>/`` when that directory exists)."""
    from iscsikit.config.initiatorname import read_initiator_name
    from iscsikit.config.registry import RecordType
    from iscsikit.discovery.db import DiscoveryOp, apply_discovery
    from iscsikit.records import DiscoveryRecord

    env, records, conf = cmd.env, cmd.env.records(), cmd.env.iscsid_conf()
    isns = kind == "isns"
    ops = _ops(cmd.args)
    persistent = DiscoveryOp.NONPERSISTENT not in ops
    drec: DiscoveryRecord | None = None
    if not fresh or isns:
        try:
            drec = records.discovery(kind, ip, port)
        except NoObjectsFoundError:
            drec = None
    if fresh and drec is not None and not isns:
        drec = None
    ifaces = _binding_ifaces(cmd, records)
    if not ifaces:
        return int(IscsiErr.NO_OBJS_FOUND)
    if drec is None:
        rtype = RecordType.ISNS if isns else RecordType.SENDTARGETS
        drec = DiscoveryRecord.new(kind, ip, port, template=conf.template(rtype))
        if persistent and not (isns and fresh):
            records.add_discovery(drec)
    cmd.doc.update(op="discover", discovery=jsonout.discovery_json(drec))
    default_name = read_initiator_name(env.paths.initiatorname_file)
    by_name: dict[str | None, list[DiscoveredTarget]] = {}
    results: list[tuple[IfaceRecord, list[DiscoveredTarget]]] = []
    for iface in ifaces:
        name = iface.get("iface.initiatorname") or default_name
        if name not in by_name:
            found = _isns_once(cmd, drec, name) if isns else _sendtargets_once(cmd, drec, name)
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
    for outcome in outcomes:  # iscsiadm reports each and goes on (exec_disc_op_on_recs)
        for node, reason in outcome.not_written:
            env.err(reason)
            env.err(f"Could not add/update [{node_iface_label(node)}]")
    cmd.doc["targets"] = jsonout.node_list_json(nodes)
    cmd.doc["changes"] = {
        what: [jsonout.node_json(n) for o in outcomes for n in getattr(o, what)]
        for what in ("added", "updated", "deleted")
    }
    _print_found(cmd, nodes)
    return _login(cmd, nodes) if cmd.args.login else 0


def _print_found(cmd: Command, nodes: list[NodeRecord]) -> None:
    level = cmd.args.print_level
    if level in (-1, 0):
        cmd.out("".join(f"{portal_text(n.address, n.port)},{n.tpgt} {n.target}\n" for n in nodes))
    elif level == 1:
        cmd.out(idbm_tree(nodes))


def _firmware(cmd: Command) -> int:
    """``-t fw``: the boot firmware's targets (iBFT), as node records of type fw."""
    from iscsikit.cli.modes.fw import boot_node
    from iscsikit.config.registry import RecordType
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
    template = cmd.env.iscsid_conf().template(RecordType.NODE)
    nodes = [boot_node(t, template=template) for t in targets]
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


def _login(cmd: Command, nodes: list[NodeRecord]) -> int:
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


def _portal(cmd: Command, kind: str, help_text: str = ST_PORTAL_HELP) -> tuple[str, int]:
    parsed = split_portal(cmd.args.portal, _DEFAULT_PORT[kind]) if cmd.args.portal else None
    if parsed is None:
        raise IscsiError(help_text, code=IscsiErr.INVAL)
    return parsed


def _discovery(cmd: Command) -> int:
    args = cmd.args
    kind = "slp" if args.type == "slp" else _TYPES.get(args.type or "")
    if kind == "sendtargets":
        ip, port = _portal(cmd, kind)
        return _sendtargets(cmd, ip, port, fresh=True)
    if kind == "slp":
        raise IscsiError("SLP discovery is not fully implemented yet.", code=IscsiErr.INVAL)
    if kind == "isns":
        ip, port = _portal(cmd, kind, ISNS_PORTAL_HELP)
        return _discover(cmd, kind, ip, port, fresh=True)
    if kind == "fw":
        return _firmware(cmd)
    op = args.op_mask
    if args.portal:
        ip, port = split_portal(args.portal, 3260) or (args.portal, 3260)
        drec = stored(
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
            return show(cmd, drec)
        if op == 0x2:
            return delete(cmd, drec)
        if op in (0x1, 0x4):
            raise IscsiError(
                "Operations new and update for discovery mode is not supported. "
                "Use discoverydb mode.",
                code=IscsiErr.INVAL,
            )
    elif op in (0, 0x8):
        return list_records(cmd)
    raise IscsiError("Invalid operation.", code=IscsiErr.INVAL)


def _discoverydb(cmd: Command) -> int:
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
            return list_records(cmd)
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
        return _discover(cmd, kind, ip, port, fresh=False)
    if op & 0x1:
        return new(cmd, kind, ip, port)
    if op == 0x4:
        return update(cmd, kind, ip, port)
    if op in (0, 0x2, 0x8):
        drec = stored(
            cmd, kind, ip, port, "Discovery record [{ip},{port}] not found.", IscsiErr.IDBM
        )
        return delete(cmd, drec) if op == 0x2 else show(cmd, drec)
    raise IscsiError("Operation is not supported.", code=IscsiErr.INVAL)


def run(args: ParsedArgs, env: CliEnv) -> int:
    """``-m discovery`` / ``-m discoverydb`` (see the module docstring)."""
    cmd = Command(args, env)
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
