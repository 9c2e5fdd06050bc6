"""Node mode's session commands: ``-l``, ``-L``, ``-u``, ``-U``, ``-R`` and ``-s``.

iscsiadm's loops over node records and sessions, through the session layer
(:meth:`CliEnv.session_service`): the ``node.session.nr_sessions`` check before a login
(15, "N session requested, but M already present"), every request line first and then
the results (iscsiadm sends asynchronously), open-iscsi's session list order for
logouts, a logout that reached no daemon counted as not sent (21, as iscsiadm without
iscsid), and the first failure's code as the exit code.  Checked with the oracle on a
fake kernel (tests/integration, the sessions engineer's sysfs tree).

:func:`login_nodes` is shared with the other modes that log in to node records.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from iscsikit.cli import printing
from iscsikit.cli.errors import ExitStatus
from iscsikit.cli.progress import NullProgress
from iscsikit.errors import MESSAGES, IscsiErr, IscsiError

if TYPE_CHECKING:
    from iscsikit.cli.env import CliEnv
    from iscsikit.cli.modes.node import Output, Pattern
    from iscsikit.cli.options import ParsedArgs
    from iscsikit.records import NodeRecord

__all__ = [
    "each_session",
    "login_by_startup",
    "login_nodes",
    "logout_by_startup",
    "logout_sessions",
    "rescan",
    "stats",
]


def _initiator_error(env: CliEnv, exc: IscsiError) -> None:
    """iscsiadm's line for a failed request, plus what went wrong when we know more."""
    code = int(exc.code)
    try:
        generic = MESSAGES[IscsiErr(code)]
    except ValueError:
        generic = "unknown error"
    detail = str(exc)
    suffix = f": {detail}" if detail and detail != generic else ""
    env.err(f"initiator reported error ({code} - {generic}){suffix}")


def _present(node: NodeRecord, sessions: Sequence[Any]) -> int:
    """How many of ``sessions`` are logins of ``node`` (iscsi_match_session)."""
    transport = node.get("iface.transport_name")
    return sum(
        1
        for s in sessions
        if s.target == node.target
        and s.persistent_address == node.address
        and s.persistent_port == node.port
        and _iface_match(node.iface, transport, s)
    )


def login_nodes(
    nodes: Sequence[NodeRecord],
    env: CliEnv,
    *,
    wait: bool = True,
    out: Output | None = None,
) -> int:
    """Log in to each node as iscsiadm does (shared with discovery ``-l``; ``out`` None:
    text on ``env.stdout``).  A node with its ``node.session.nr_sessions`` sessions
    already is refused (15, no request); the others get one request per missing
    session, "(multiple)" when the node already has one; every "Logging in to" line
    comes first, then each result.  The exit code is the first failure's."""
    service = env.session_service()
    write = env.out if out is None else out.text
    status = ExitStatus()
    existing = service.sessions()
    requests: list[tuple[NodeRecord, str]] = []
    for node in nodes:
        wanted = max(1, int(node.get("node.session.nr_sessions") or 1))
        have = _present(node, existing)
        if have >= wanted:
            plural = "" if wanted == 1 else "s"
            env.err(
                f"{node.iface}: {wanted} session{plural} requested, but {have} already present."
            )
            status.note(int(IscsiErr.SESS_EXISTS))
            continue
        for i in range(have, wanted):
            requests.append((node, " (multiple)" if i else ""))
    for node, multiple in requests:
        write(f"Logging in to {_node_name(node)}{multiple}\n")
    bar = out.progress(len(requests), "Logging in") if out is not None else NullProgress()
    with bar:
        for node, _ in requests:
            failure: IscsiError | None = None
            try:
                service.login(node, wait=wait)
            except IscsiError as exc:
                bar.clear()
                env.err(f"Could not login to {_node_name(node)}.")
                _initiator_error(env, exc)
                failure = exc
                status.note(int(exc.code))
            else:
                if wait:
                    bar.clear()
                    write(f"Login to {_node_name(node)} successful.\n")
            bar.advance()
            if out is not None and out.json:
                out.add(
                    "results",
                    {"node": out.node_doc(node), "error": out.error_doc(failure)},
                )
    if status.code:
        env.err("Could not log into all portals")
    return status.code


def _node_name(node: NodeRecord) -> str:
    return printing.login_target(node.iface, node.target, node.address, node.port)


def login_by_startup(args: ParsedArgs, env: CliEnv, out: Output) -> int:
    """``-L all|manual|automatic|onboot``: node.startup or node.conn[0].startup
    matches (2.1.8 does not skip onboot records here; checked with the oracle)."""
    mode = args.loginall
    nodes = [
        n
        for n in env.records().nodes()
        if mode == "all" or mode in (n.get("node.startup"), n.get("node.conn[0].startup"))
    ]
    if not nodes:
        raise IscsiError("No records found", code=IscsiErr.NO_OBJS_FOUND)
    return login_nodes(nodes, env, wait=not args.no_wait, out=out)


def _session_name(info: Any) -> str:
    return printing.session_target(info.sid, info.target, info.persistent_address, info.port)


def logout_sessions(sessions: Sequence[Any], env: CliEnv, out: Output) -> int:
    """iscsiadm's ``iscsi_logout_portals``: sessions in open-iscsi's list order, every
    request then its result; a request that reached no daemon does not count, and
    when none did it is "No matching sessions found" (21), as iscsiadm without iscsid."""
    from iscsikit.manager.sessions import IscsidNotConnectedError, grouped

    service = env.session_service()
    status = ExitStatus()
    sent = 0
    ordered = grouped(sessions)
    for info in ordered:  # every request first, then the results (iscsiadm is async)
        out.text(f"Logging out of session {_session_name(info)}\n")
    with out.progress(len(ordered), "Logging out") as bar:
        for info in ordered:
            failure: IscsiError | None = None
            try:
                service.logout(info)
            except IscsiError as exc:
                bar.clear()
                env.err(f"Could not logout of {_session_name(info)}.")
                _initiator_error(env, exc)
                failure = exc
                if not isinstance(exc, IscsidNotConnectedError):
                    sent += 1
                    status.note(int(exc.code))
            else:
                sent += 1
                bar.clear()
                out.text(f"Logout of {_session_name(info)} successful.\n")
            bar.advance()
            if out.json:
                out.add(
                    "results",
                    {"session": out.session_doc(info), "error": out.error_doc(failure)},
                )
    if not sent:
        raise IscsiError("No matching sessions found", code=IscsiErr.NO_OBJS_FOUND)
    if status.code:
        env.err("Could not logout of all requested sessions")
    return status.code


def _iface_match(name: str, transport: str, info: Any) -> bool:
    """open-iscsi's ``iface_match``: the same iface, or a built-in iface (default, iser)
    and any session of its transport."""
    from iscsikit.records.layout import BUILTIN_IFACES

    if name == info.iface:
        return True
    return name in BUILTIN_IFACES and transport == info.transport


def _session_node(records: Any, info: Any) -> NodeRecord | None:
    """The node record of a session (usr/idbm.c ``idbm_rec_read``): the one with the
    session's tpgt and iface, else the old-style record of its portal."""
    found = records.nodes(info.target, info.persistent_address, info.persistent_port)
    for node in found:
        if node.tpgt == info.tpgt and _iface_match(
            node.iface, node.get("iface.transport_name"), info
        ):
            return node  # type: ignore[no-any-return]
    for node in found:
        if node.tpgt == -1:
            return node  # type: ignore[no-any-return]
    return None


def logout_by_startup(mode: str, env: CliEnv, out: Output) -> int:
    """``-U``: sessions whose node record has that startup mode (never onboot or
    firmware records, nor sessions without a record)."""
    records = env.records()
    chosen = []
    for info in env.session_service().sessions():
        node = _session_node(records, info)
        if node is None:  # no record (another driver's session): not ours to judge
            continue
        startup = (node.get("node.startup"), node.get("node.conn[0].startup"))
        if node.discovery_type == "fw" or startup[0] == "onboot":
            continue  # never logged out by -U (the boot disk and its firmware records)
        if mode == "all" or mode in startup:
            chosen.append(info)
    return logout_sessions(chosen, env, out)


def each_session(pattern: Pattern, env: CliEnv, out: Output, action: Any) -> int:
    service = env.session_service()
    sessions = [s for s in service.sessions() if pattern.matches_session(s)]
    if not sessions:
        raise IscsiError("No session found.", code=IscsiErr.NO_OBJS_FOUND)
    status = ExitStatus()
    for info in sessions:
        try:
            action(service, info, out)
        except IscsiError as exc:
            status.fail(exc, env)
    return status.code


def rescan(service: Any, info: Any, out: Output) -> None:
    out.text(f"Rescanning session {_session_name(info)}\n")
    service.rescan(info)
    out.add("sessions", out.session_doc(info))


def stats(service: Any, info: Any, out: Output) -> None:
    stats = service.stats(info)
    out.text(
        printing.session_stats_text(
            info.sid, info.target, info.persistent_address, info.port, stats
        )
    )
    if out.json:
        out.add("sessions", {"session": out.session_doc(info), "stats": dict(stats)})
