"""``iscsikit-adm -m node``: node records, and logins/logouts of the sessions they describe.

Follows iscsiadm 2.1.8's node mode step by step (``-L``, ``-U``, then ``exec_node_op``):
``-o new`` first, then ``-R``, ``-s``, the login/logout sanity checks, the listing (no
``-T``/``-p``/``-I``, no op), ``-l``, ``-u``, show (no op or ``-o show``), ``-o update``,
``-o delete``.  Stdout and exit codes match iscsiadm's (checked with the oracle);
stderr says the same things with an ``iscsikit-adm:`` prefix.

Records come from :meth:`CliEnv.records` (listing reads directory names only; show,
update, delete and login act only on files that are the record their path names, as
iscsiadm finds them: :meth:`~iscsikit.records.Records.found_node_ids`); the
session commands live in :mod:`~iscsikit.cli.modes.node_sessions`, and reach sessions
only through :meth:`CliEnv.session_service`.  ``--output json`` writes one document
(:class:`Output`) instead of the text.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from iscsikit.cli import printing
from iscsikit.cli.modes import node_sessions
from iscsikit.cli.modes.node_sessions import login_nodes
from iscsikit.cli.options import LOGIN_ALL_MODES, OPS, Portal, UsageError, parse_portal
from iscsikit.errors import MESSAGES, DatabaseError, IscsiErr, IscsiError

if TYPE_CHECKING:
    from iscsikit.cli.env import CliEnv
    from iscsikit.cli.options import ParsedArgs
    from iscsikit.records import NodeRecord

__all__ = ["Output", "Pattern", "login_nodes", "run"]

_LOGOUTALL_MODES = ("all", "manual", "automatic")


class Pattern:
    """What ``-T``/``-p``/``-I`` select (None: any), as iscsiadm matches records and
    sessions: exact strings, the port whenever ``-p`` is given, the tpgt never."""

    def __init__(self, args: ParsedArgs) -> None:
        portal = parse_portal(args.portal) if args.portal is not None else Portal("", None, None)
        self.target = args.targetname or None
        self.address = portal.address or None
        # A portal without a port means 3260, not any port (2.1.8, checked): only
        # without -p does every port match.
        self.port = portal.port
        if self.port is None and self.address is not None:
            self.port = 3260
        self.tpgt = portal.tpgt
        self.iface = args.ifaces[0] if args.ifaces else None

    @property
    def empty(self) -> bool:
        return self.target is None and self.address is None and self.iface is None

    def filters(self) -> dict[str, Any]:
        return {
            "target": self.target,
            "address": self.address,
            "port": self.port,
            "iface": self.iface,
        }

    def matches_session(self, info: Any) -> bool:
        return (
            (self.target is None or info.target == self.target)
            and (self.address is None or info.persistent_address == self.address)
            and (self.port is None or info.persistent_port == self.port)
            and (self.iface is None or info.iface == self.iface)
        )


class Output:
    """Where a node command's results go: text on stdout, or (``--output json``) one
    document ``{"version": 1, "mode": "node", "op": ..., ...}`` written at the end."""

    def __init__(self, args: ParsedArgs, env: CliEnv) -> None:
        self.env = env
        self.args = args
        self.json = args.output == "json"
        self.show_secrets = args.show
        self.op = "list"
        self.payload: dict[str, Any] = {}

    def text(self, text: str) -> None:
        if not self.json:
            self.env.out(text)

    def progress(self, total: int, label: str) -> Any:
        """A progress bar on stderr for a long loop (a TTY only; see cli/progress.py)."""
        from iscsikit.cli.progress import progress

        return progress(self.env, self.args, total, label)

    def node_doc(self, node: Any, record: NodeRecord | None = None) -> Any:
        """A node's JSON (None in text mode: nothing is built)."""
        if not self.json:
            return None
        from iscsikit.cli import jsonout

        return jsonout.node_json(node, record, show_secrets=self.show_secrets)

    def session_doc(self, info: Any) -> Any:
        if not self.json:
            return None
        from iscsikit.cli import jsonout

        return jsonout.session_json(info, show_secrets=self.show_secrets)

    def error_doc(self, exc: IscsiError | None) -> Any:
        if not self.json or exc is None:
            return None
        from iscsikit.cli import jsonout

        return jsonout.error_json(int(exc.code), str(exc))

    def add(self, key: str, item: Any) -> None:
        if self.json:
            self.payload.setdefault(key, []).append(item)

    def finish(self, code: int, message: str | None = None) -> None:
        if not self.json:
            return
        from iscsikit.cli import jsonout

        payload = {"op": self.op, **self.payload}
        if code:
            jsonout.emit_error(self.env, "node", code, message, payload)
        else:
            jsonout.emit(self.env, "node", payload)


def run(args: ParsedArgs, env: CliEnv) -> int:
    out = Output(args, env)
    try:
        code = _run(args, env, out)
    except IscsiError as exc:
        out.finish(int(exc.code), str(exc))
        raise
    out.finish(code)
    return code


def _run(args: ParsedArgs, env: CliEnv, out: Output) -> int:
    if args.loginall is not None:
        out.op = "login"
        if args.loginall not in LOGIN_ALL_MODES:
            raise UsageError(f"Invalid loginall option {args.loginall}.", try_help=True)
        return node_sessions.login_by_startup(args.loginall, args, env, out)
    if args.logoutall is not None:
        out.op = "logout"
        if args.logoutall not in _LOGOUTALL_MODES:
            raise UsageError(f"Invalid logoutall option {args.logoutall}.", try_help=True)
        return node_sessions.logout_by_startup(args.logoutall, env, out)
    if len(args.ifaces) > 1:
        env.err(f"node mode accepts one interface; using the first one, {args.ifaces[0]}.")
    pattern = Pattern(args)
    op = args.op_mask
    out.op = next((name for name, bit in OPS.items() if bit == op), "show")
    if op == OPS["new"]:
        return _add_static(pattern, env, out)
    if args.rescan:
        out.op = "rescan"
        return node_sessions.each_session(pattern, env, out, node_sessions.rescan)
    if args.stats:
        out.op = "stats"
        return node_sessions.each_session(pattern, env, out, node_sessions.stats)
    if args.login and args.logout:
        raise UsageError("Invalid parameters. Both login and logout passed in")
    if (args.login or args.logout) and op:
        raise UsageError("Invalid parameters. Login/logout and op passed in")
    if not (args.login or args.logout or op) and pattern.empty:
        out.op = "list"
        return _list(args, env, out)
    if args.login:
        out.op = "login"
        return node_sessions.login_nodes(_load(pattern, env), env, wait=not args.no_wait, out=out)
    if args.logout:
        out.op = "logout"
        sessions = [s for s in env.session_service().sessions() if pattern.matches_session(s)]
        return node_sessions.logout_sessions(sessions, env, out)
    if op in (0, OPS["show"]):
        for node in _load(pattern, env):
            out.text(printing.node_text(node, show_secrets=args.show))
            out.add("nodes", out.node_doc(node, node))
        return 0
    if op == OPS["update"]:
        return _update(args, pattern, env, out)
    if op == OPS["delete"]:
        records = env.records()
        ids = records.found_node_ids(**pattern.filters())
        if not ids:
            raise _no_records()
        records.delete_nodes(ids)
        for node_id in ids:
            out.add("nodes", out.node_doc(node_id))
        return 0
    raise UsageError("operation is not supported.")


def _no_records() -> IscsiError:
    return IscsiError("No records found", code=IscsiErr.NO_OBJS_FOUND)


def _load(pattern: Pattern, env: CliEnv) -> list[NodeRecord]:
    nodes = env.records().nodes(**pattern.filters())
    if not nodes:
        raise _no_records()
    return nodes


# -- records ----------------------------------------------------------------------------


def _list(args: ParsedArgs, env: CliEnv, out: Output) -> int:
    if args.print_level not in (-1, 0, 1):
        raise UsageError(f"Invalid info level {args.print_level}. Try 0 or 1.")
    ids = env.records().node_ids()
    if not ids:
        raise _no_records()
    if out.json:
        out.payload["nodes"] = [out.node_doc(i) for i in ids]
    elif args.print_level == 1:
        out.text(printing.node_tree(ids))
    else:
        out.text("".join(map(printing.node_flat, ids)))
    return 0


def _add_static(pattern: Pattern, env: CliEnv, out: Output) -> int:
    """``-o new``: one static record, bound to the first ``-I`` iface (or default).
    Like iscsiadm, a missing ``-T`` or ``-p`` is reported but exits 0."""
    from iscsikit.config.registry import RecordType
    from iscsikit.records import IfaceRecord, NodeRecord

    records = env.records()
    iface: IfaceRecord | None = None
    if pattern.iface is not None:
        try:
            iface = records.iface(pattern.iface)
        except IscsiError as exc:  # iscsiadm exits 3 (NOMEM) here
            message = f"Could not read iface info for {pattern.iface}."
            raise IscsiError(message, code=IscsiErr.NOMEM) from exc
    if pattern.target is None or pattern.address is None:
        # iscsiadm 2.1.8 then walks the records matching what was given and "adds" each
        # again: the database is unchanged, one "added" line per record, exit 0.
        matching = records.nodes(
            target=pattern.target,
            address=pattern.address,
            port=pattern.port if pattern.address is not None else None,
            tpgt=pattern.tpgt,
            iface=pattern.iface or "default",  # -o new binds to default without -I
        )
        if not matching:
            env.err("Error while adding record: a target name (-T) and a portal (-p) are needed")
        for existing in matching:
            _added(existing, out)
        return 0
    node = NodeRecord.new(
        pattern.target,
        pattern.address,
        3260 if pattern.port is None else pattern.port,
        -1 if pattern.tpgt is None else pattern.tpgt,
        iface=iface,
        template=env.iscsid_conf().template(RecordType.NODE),
    )
    try:
        records.add_node(node)
    except DatabaseError as exc:
        # The file there is not this node's record (usr/idbm.c idbm_add_node fails on
        # it): iscsiadm's two lines, exit 6, the file left as it is.
        for line in str(exc).splitlines():
            env.err(line)
        raise IscsiError(
            f"Error while adding record: {MESSAGES[IscsiErr.IDBM]}", code=IscsiErr.IDBM
        ) from exc
    _added(node, out)
    return 0


def _added(node: NodeRecord, out: Output) -> None:
    out.text(f"New iSCSI node [{printing.node_iface_label(node)}] added\n")
    out.add("nodes", out.node_doc(node, node))


def _update(args: ParsedArgs, pattern: Pattern, env: CliEnv, out: Output) -> int:
    """``-o update -n k -v v ...``: every pair on every matching record.  A pair
    iscsiadm refuses fails each record (its message once per record) and nothing is
    written; an iface value is refused once, before any record is looked at.  Values
    are read as iscsiadm reads them (``abc`` is 0 for a number)."""
    from iscsikit.config.registry import REGISTRY, RecordType, unknown_value_message

    if not args.params:
        raise UsageError("update requires name and value")
    for name, _ in args.params:
        canonical = REGISTRY.canonical_name(RecordType.NODE, name)
        if canonical.startswith("iface.") and canonical != "iface.transport_name":
            raise UsageError(f"Cannot modify {name}. Use iface mode to update this value.")
    records = env.records()
    ids = records.found_node_ids(**pattern.filters())
    if not ids:
        raise _no_records()
    changes: dict[str, str] = {}
    messages: list[str] = []
    for name, text in args.params:
        try:
            key = REGISTRY.check_modifiable(RecordType.NODE, name)
        except IscsiError as exc:
            messages.append(str(exc))
            break
        value = REGISTRY.parse_value(key, text, warnings=messages)
        if value is None:
            messages += [unknown_value_message(key.name, text), f"Unknown parameter {name}."]
            break
        changes[key.name] = value
    else:
        for message in messages:  # chap_algs warnings: the update goes on
            env.err(message)
        records.update_node_values(changes, **pattern.filters())
        out.payload["changes"] = changes
        for node_id in ids:
            out.add("nodes", out.node_doc(node_id))
        return 0
    for _ in ids:
        for message in messages:
            env.err(message)
    env.err(f"Could not execute operation on all records: {MESSAGES[IscsiErr.INVAL]}")
    return int(IscsiErr.INVAL)
