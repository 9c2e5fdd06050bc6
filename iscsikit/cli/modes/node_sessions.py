"""Node mode's session commands: ``-l``, ``-L``, ``-u``, ``-U``, ``-R`` and ``-s``.

The printing and looping of iscsiadm, through the session layer
(:meth:`CliEnv.session_service`): every request line first and then the results
(iscsiadm sends asynchronously), open-iscsi's session list order for logouts, a logout
that reached no daemon counted as not sent (21, as iscsiadm without iscsid), and the
first failure's code as the exit code.  What to log in to or out of is decided by
:mod:`iscsikit.manager.login_plan` (node mode's rules: :func:`session_counts_for_node`
for ``nr_sessions``, :func:`record_of_session` for ``-U``).  Checked with the oracle on
a fake kernel (tests/integration, the sessions engineer's sysfs tree).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from iscsikit.cli import printing
from iscsikit.cli.errors import ExitStatus
from iscsikit.cli.progress import NullProgress
from iscsikit.errors import MESSAGES, IscsiErr, IscsiError, SessionExistsError

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


def login_nodes(
    nodes: Sequence[NodeRecord],
    env: CliEnv,
    *,
    wait: bool = True,
    out: Output | None = None,
) -> int:
    """Log in to each node as iscsiadm's node mode does (``out`` None: text on
    ``env.stdout``).  A node with its ``node.session.nr_sessions`` sessions
    already is refused (15, no request); the others get one request per missing
    session, "(multiple)" when the node already has one; every "Logging in to" line
    comes first, then each result.  Records with ``node.leading_login = Yes`` come
    after, one at a time: each only while no session to its target exists yet, so the
    first iface that gets in leads and the others stay out.  The exit code is the first
    failure's."""
    from iscsikit.manager.login_plan import (
        leading_login_pending,
        plan_login,
        session_counts_for_node,
    )

    service = env.session_service()
    status = ExitStatus()
    existing = service.sessions()
    requests: list[tuple[NodeRecord, str]] = []
    for node in nodes:
        try:
            planned = plan_login(node, existing, rule=session_counts_for_node)
        except SessionExistsError as exc:  # nr_sessions already there: no request
            env.err(str(exc))
            status.note(int(exc.code))
            continue
        requests += [(r.node, " (multiple)" if r.multiple else "") for r in planned]
    leading = [r for r in requests if r[0].get("node.leading_login") == "Yes"]
    made = _send_logins(
        [r for r in requests if r not in leading], service, env, status, wait=wait, out=out
    )
    for request in leading:
        if leading_login_pending(request[0], [*existing, *made]):
            made += _send_logins([request], service, env, status, wait=wait, out=out)
    if status.code:
        env.err("Could not log into all portals")
    return status.code


def _send_logins(
    requests: Sequence[tuple[NodeRecord, str]],
    service: Any,
    env: CliEnv,
    status: ExitStatus,
    *,
    wait: bool,
    out: Output | None,
) -> list[Any]:
    """Send ``requests`` (all at once where the service can), print iscsiadm's lines;
    the sessions made."""
    from iscsikit.manager.sessions import login_each

    write = env.out if out is None else out.text
    for node, multiple in requests:
        write(f"Logging in to {_node_name(node)}{multiple}\n")
    bar = out.progress(len(requests), "Logging in") if out is not None else NullProgress()
    made: list[Any] = []
    outcomes = login_each(service, [node for node, _ in requests], wait=wait)
    with bar:
        for (node, _), outcome in zip(requests, outcomes, strict=True):
            failure = outcome if isinstance(outcome, IscsiError) else None
            if failure is not None:
                bar.clear()
                env.err(f"Could not login to {_node_name(node)}.")
                _initiator_error(env, failure)
                status.note(int(failure.code))
            else:
                if outcome is not None:
                    made.append(outcome)
                if wait:
                    bar.clear()
                    write(f"Login to {_node_name(node)} successful.\n")
            bar.advance()
            if out is not None and out.json:
                out.add(
                    "results",
                    {"node": out.node_doc(node), "error": out.error_doc(failure)},
                )
    return made


def _node_name(node: NodeRecord) -> str:
    return printing.login_target(node.iface, node.target, node.address, node.port)


def login_by_startup(mode: str, args: ParsedArgs, env: CliEnv, out: Output) -> int:
    """``-L all|manual|automatic|onboot``: node.startup or node.conn[0].startup
    matches (2.1.8 does not skip onboot records here; checked with the oracle)."""
    from iscsikit.manager.login_plan import select_login_all

    nodes = select_login_all(env.records().nodes(), mode)
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


def logout_by_startup(mode: str, env: CliEnv, out: Output) -> int:
    """``-U``: sessions whose node record has that startup mode (never onboot or
    firmware records, nor sessions without a record)."""
    from iscsikit.manager.login_plan import select_logout_all

    sessions = env.session_service().sessions()
    nodes = env.records().nodes() if sessions else []
    return logout_sessions(select_logout_all(sessions, nodes, mode), env, out)


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
