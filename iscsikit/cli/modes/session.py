"""``-m session``: list sessions (``-P 0..3``), and log out, rescan, show statistics of,
or add a session to them (``-r SID|PATH``, ``-u``, ``-R``, ``-s``, ``-o new``).

Every format is iscsiadm 2.1.8's (usr/session_info.c over libopeniscsiusr), compared
byte for byte with the real iscsiadm on kernel-shaped sysfs trees
(tests/integration/test_cli_sessions_oracle.py), quirks included: sessions listed in
``alphasort`` order of their sysfs names (``session10`` before ``session2``), a blank
line instead of the portal for a session on the same portal as the one before it, and
``-S`` labelling the incoming CHAP password ``password:``.  Sessions come from the
session service only (:func:`iscsikit.manager.sessions.session_service`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any

from iscsikit.errors import MESSAGES, IscsiErr, IscsiError

if TYPE_CHECKING:
    from iscsikit.cli.env import CliEnv
    from iscsikit.cli.options import ParsedArgs
    from iscsikit.manager.login_plan import LoginRequest
    from iscsikit.manager.sessions import SessionInfo, SessionService

__all__ = [
    "flat_line",
    "json_run",
    "logout_sessions",
    "parse_sid",
    "run",
    "run_logins",
    "session_tree",
]

EMPTY = "<empty>"
ISCSIADM_VERSION = "2.1.8"
_PARAM_ORDER = (
    "HeaderDigest", "DataDigest", "MaxRecvDataSegmentLength", "MaxXmitDataSegmentLength",
    "FirstBurstLength", "MaxBurstLength", "ImmediateData", "InitialR2T", "MaxOutstandingR2T",
)  # fmt: skip
#: What to print in a tree (usr/session_info.h SESSION_INFO_* flags).
IFACE, STATE, TIMEOUTS, CHAP, PARAMS, HOST_DEVS, SCSI_DEVS = (1 << i for i in range(7))
SESSION_LEVEL_FLAGS = {
    1: IFACE | STATE,
    2: IFACE | STATE | TIMEOUTS | CHAP | PARAMS,
    3: IFACE | STATE | TIMEOUTS | CHAP | PARAMS | HOST_DEVS | SCSI_DEVS,
}


def _portal(address: str, port: int) -> str:
    return f"{address}:{port}" if "." in address else f"[{address}]:{port}"


def _or_empty(value: str) -> str:
    return value if value else EMPTY


def _ip(value: str) -> str:
    if not value:
        return EMPTY
    return value if "." in value else f"[{value}]"


def node_type(info: SessionInfo) -> str:
    return "flash" if info.flash else "non-flash"


def flat_line(info: SessionInfo) -> str:
    """``-P 0``: ``tcp: [1] 10.0.0.1:3260,1 iqn.x (non-flash)``."""
    portal = _portal(info.persistent_address, info.persistent_port)
    transport = _or_empty(info.transport)
    return f"{transport}: [{info.sid}] {portal},{info.tpgt} {info.target} ({node_type(info)})\n"


def _iface_lines(info: SessionInfo, p: str) -> list[str]:
    return [
        f"{p}\t\t**********\n",
        f"{p}\t\tInterface:\n",
        f"{p}\t\t**********\n",
        f"{p}\t\tIface Name: {_or_empty(info.iface)}\n",
        f"{p}\t\tIface Transport: {_or_empty(info.transport)}\n",
        f"{p}\t\tIface Initiatorname: {_or_empty(info.initiator_name)}\n",
        f"{p}\t\tIface IPaddress: {_ip(info.iface_ipaddress)}\n",
        f"{p}\t\tIface HWaddress: {_or_empty(info.iface_hwaddress)}\n",
        f"{p}\t\tIface Netdev: {_or_empty(info.iface_netdev)}\n",
    ]


def _timeout_lines(info: SessionInfo, p: str) -> list[str]:
    def tmo(name: str) -> str:
        value = info.timeout(name)
        return str(value) if value >= 0 else EMPTY

    return [
        f"{p}\t\t*********\n",
        f"{p}\t\tTimeouts:\n",
        f"{p}\t\t*********\n",
        f"{p}\t\tRecovery Timeout: {info.timeout('recovery_tmo')}\n",
        f"{p}\t\tTarget Reset Timeout: {tmo('tgt_reset_tmo')}\n",
        f"{p}\t\tLUN Reset Timeout: {tmo('lu_reset_tmo')}\n",
        f"{p}\t\tAbort Timeout: {tmo('abort_tmo')}\n",
    ]


def _chap_lines(info: SessionInfo, p: str, show: bool) -> list[str]:
    secret = _or_empty(info.password) if show else "********"
    secret_in = _or_empty(info.password_in) if show else "********"
    # iscsiadm 2.1.8 labels the shown incoming secret "password" (a typo kept on purpose).
    label_in = "password" if show else "password_in"
    return [
        f"{p}\t\t*****\n",
        f"{p}\t\tCHAP:\n",
        f"{p}\t\t*****\n",
        f"{p}\t\tusername: {_or_empty(info.username)}\n",
        f"{p}\t\tpassword: {secret}\n",
        f"{p}\t\tusername_in: {_or_empty(info.username_in)}\n",
        f"{p}\t\t{label_in}: {secret_in}\n",
    ]


def _param_lines(info: SessionInfo, p: str) -> list[str]:
    lines = [
        f"{p}\t\t************************\n",
        f"{p}\t\tNegotiated iSCSI params:\n",
        f"{p}\t\t************************\n",
    ]
    lines += [f"{p}\t\t{k}: {info.params[k]}\n" for k in _PARAM_ORDER if k in info.params]
    return lines


def _device_lines(info: SessionInfo, p: str, flags: int) -> list[str]:
    lines = [
        f"{p}\t\t************************\n",
        f"{p}\t\tAttached SCSI devices:\n",
        f"{p}\t\t************************\n",
    ]
    if info.host_no is None:
        return [*lines, f"{p}\t\tUnavailable\n"]
    if flags & HOST_DEVS:
        lines.append(f"{p}\t\tHost Number: {info.host_no}\tState: {info.host_state}\n")
    if flags & SCSI_DEVS:
        for d in info.devices:
            lines.append(
                f"{p}\t\tscsi{d.host_no} Channel {d.channel:02d} Id {d.target} Lun: {d.lun}\n"
            )
            if d.disk is not None:
                state = d.state if d.state is not None else "Unknown"
                lines.append(f"{p}\t\t\tAttached scsi disk {d.disk}\t\tState: {state}\n")
                if d.multipath is not None:  # iscsikit's addition (docs/compatibility.md)
                    lines.append(
                        f"{p}\t\t\tMultipath: {d.multipath} ({d.multipath_dm})"
                        f"\tPath State: {d.path_state}\tGroup: {d.path_group}\n"
                    )
    return lines


def _export_lines(info: SessionInfo, p: str) -> list[str]:
    """iscsikit's addition after "Attached SCSI devices" (docs/compatibility.md): the
    LUNs the daemon serves over NBD for a userspace session, one line each, and for a
    LUN that is a path of the daemon's multipath export, that export and the path's
    state on the next line."""
    if not info.exports:
        return []
    lines = [
        f"{p}\t\t************************\n",
        f"{p}\t\tAttached NBD exports:\n",
        f"{p}\t\t************************\n",
    ]
    for e in info.exports:
        lines.append(f"{p}\t\tLun: {e.lun}\t{e.uri}\tSize: {e.size}\n")
        if e.multipath is not None:  # a path of the daemon's multipath export
            alua = f"\tALUA: {e.path_alua}" if e.path_alua is not None else ""
            lines.append(
                f"{p}\t\t\tMultipath: nbd+unix:///?socket={e.multipath}"
                f"\tPath State: {e.path_state}{alua}\n"
            )
    return lines


def session_tree(
    sessions: Iterable[SessionInfo], flags: int, *, prefix: str = "", show: bool = False
) -> str:
    """``-P 1..3`` (and host mode's session blocks): libopeniscsiusr's tree."""
    out: list[str] = []
    prev: SessionInfo | None = None
    for info in sessions:
        if prev is None or prev.target != info.target:
            out.append(f"{prefix}Target: {info.target} ({node_type(info)})\n")
            prev = None
        same_portal = (
            prev is not None
            and prev.port != 0
            and info.port != 0
            and (prev.address, prev.port) == (info.address, info.port)
        )
        if same_portal:
            out.append("\n")
        else:
            out.append(
                f"{prefix}\tCurrent Portal: {_portal(info.address, info.port)},{info.tpgt}\n"
            )
            persistent = _portal(info.persistent_address, info.persistent_port)
            out.append(f"{prefix}\tPersistent Portal: {persistent},{info.tpgt}\n")
        if flags & IFACE:
            out += _iface_lines(info, prefix)
        if flags & STATE:
            out.append(f"{prefix}\t\tSID: {info.sid}\n")
            out.append(f"{prefix}\t\tiSCSI Connection State: {info.conn_state}\n")
            out.append(f"{prefix}\t\tiSCSI Session State: {info.state}\n")
            out.append(f"{prefix}\t\tInternal iscsid Session State: {info.internal_state}\n")
        if flags & TIMEOUTS:
            out += _timeout_lines(info, prefix)
        if flags & CHAP:
            out += _chap_lines(info, prefix, show)
        if flags & PARAMS:
            out += _param_lines(info, prefix)
        if flags & (HOST_DEVS | SCSI_DEVS):
            out += _device_lines(info, prefix, flags)
        if flags & SCSI_DEVS:
            out += _export_lines(info, prefix)
        prev = info
    return "".join(out)


def version_header(env: CliEnv) -> str:
    """``iSCSI Transport Class version ...`` + ``version 2.1.8`` (when the kernel says)."""
    from iscsikit.sysfs import SysfsContext

    version = SysfsContext.from_paths(env.paths).transport_class_version
    if version is None:
        return ""
    return f"iSCSI Transport Class version {version}\nversion {ISCSIADM_VERSION}\n"


def _print_sessions(env: CliEnv, sessions: Sequence[SessionInfo], level: int, show: bool) -> int:
    if level in (-1, 0):
        env.out("".join(flat_line(s) for s in sessions))
        return 0
    if level not in SESSION_LEVEL_FLAGS:
        raise IscsiError(f"Invalid info level {level}. Try 0 - 3.", code=IscsiErr.INVAL)
    header = version_header(env) if level == 3 else ""
    env.out(header + session_tree(sessions, SESSION_LEVEL_FLAGS[level], show=show))
    return 0


def parse_sid(value: str, env: CliEnv) -> int:
    """``-r``: a positive number, or a sysfs path inside a session (iscsiadm's
    ``iscsi_sysfs_get_sid_from_path``, with its exit codes: 1 for no such path, 7 for a
    path outside any session).  ``/sys/...`` is looked up under iscsikit's root."""
    from pathlib import Path

    from iscsikit.sysfs import SysfsContext

    if value.isascii() and value.isdigit() and int(value) > 0:
        return int(value)
    ctx = SysfsContext.from_paths(env.paths)
    local = Path(str(ctx.sys_path) + value[4:] if value.startswith("/sys") else value)
    if not (local.exists() or local.is_symlink()):
        raise IscsiError(f"{value} is an invalid session ID or path", code=IscsiErr.ERR)
    sid = ctx.sid_from_path(value)
    if sid is None:
        raise IscsiError(
            f"Unable to find sid in path {value}; invalid sid '{value}'", code=IscsiErr.INVAL
        )
    return sid


def describe(info: SessionInfo) -> str:
    """``[sid: N, target: T, portal: P,port]`` (the persistent address, current port)."""
    return (
        f"[sid: {info.sid}, target: {info.target}, portal: {info.persistent_address},{info.port}]"
    )


def _initiator_error(exc: IscsiError) -> str:
    code = IscsiErr(int(exc.code))
    return f"initiator reported error ({int(code)} - {MESSAGES[code]})"


def logout_sessions(env: CliEnv, service: SessionService, sessions: Sequence[SessionInfo]) -> int:
    """iscsiadm's ``iscsi_logout_portals``: a request per session; a session whose request
    never reached a daemon does not count; none reached: "No matching sessions found"."""
    from iscsikit.manager.sessions import IscsidNotConnectedError

    sent, first = 0, 0
    for info in sessions:
        env.out(f"Logging out of session {describe(info)}\n")
        try:
            service.logout(info)
        except IscsiError as exc:
            env.err(f"Could not logout of {describe(info)}.")
            env.err(f"{_initiator_error(exc)}: {exc}")
            if not isinstance(exc, IscsidNotConnectedError):
                sent += 1
                first = first or int(exc.code)
            continue
        sent += 1
        env.out(f"Logout of {describe(info)} successful.\n")
    if not sent:
        raise IscsiError("No matching sessions found", code=IscsiErr.NO_OBJS_FOUND)
    if first:
        env.err("Could not logout of all requested sessions")
    return first


def _rescan(env: CliEnv, service: SessionService, sessions: Sequence[SessionInfo]) -> int:
    for info in sessions:
        env.out(f"Rescanning session {describe(info)}\n")
        try:
            service.rescan(info)
        except IscsiError:
            env.err(f"Could not rescan session sid {info.sid}.")
    return 0


def _stats(env: CliEnv, service: SessionService, sessions: Sequence[SessionInfo]) -> int:
    from iscsikit.manager.sessions import STATS_KEYS

    for info in sessions:
        try:
            counters = service.stats(info)
        except IscsiError as exc:
            what = MESSAGES.get(IscsiErr(int(exc.code)), str(exc))
            raise IscsiError(
                f"Could not execute operation on all sessions: {what} ({exc})", code=exc.code
            ) from exc
        lines = [f"Stats for session {describe(info)}\n", "iSCSI SNMP:\n"]
        lines += [f"\t{k}: {counters.get(k, 0)}\n" for k in STATS_KEYS]
        extra = [k for k in counters if k not in STATS_KEYS]
        if extra:
            lines.append("iSCSI Extended:\n")
            lines += [f"\t{k}: {counters[k]}\n" for k in extra]
        env.out("".join(lines))
    return 0


def run_logins(
    env: CliEnv,
    service: SessionService,
    requests: Sequence[LoginRequest],
    *,
    wait: bool = True,
    summary: bool = True,
) -> int:
    """Send ``requests`` as iscsiadm does (every "Logging in to" line first, then the
    results); returns the first failure's code (0: all logged in).  ``summary`` adds
    "Could not log into all portals" after a failure (not for firmware logins)."""
    for req in requests:
        env.out(f"Logging in to {req.description}{' (multiple)' if req.multiple else ''}\n")
    first = 0
    for req in requests:
        try:
            service.login(req.node, wait=wait)
        except IscsiError as exc:
            env.err(f"Could not login to {req.description}.")
            env.err(f"{_initiator_error(exc)}: {exc}")
            first = first or int(exc.code)
            continue
        env.out(f"Login to {req.description} successful.\n")
    if first and summary:
        env.err("Could not log into all portals")
    return first


def _check_iface(env: CliEnv, name: str) -> None:
    """iscsiadm builds a record from the session before acting on it; an iface it cannot
    read fails that (idbm_create_rec, reported as ISCSI_ERR_NOMEM).  Reading it sets up
    the offload ifaces first when it is missing, as ``iface_conf_read`` does."""
    from iscsikit.errors import NoObjectsFoundError
    from iscsikit.manager.ifaces import read_iface

    if name in ("default", "iser"):
        return
    try:
        read_iface(env.records(), name, root=env.paths.root)
    except NoObjectsFoundError:
        raise IscsiError(f"Could not read iface info for {name}.", code=IscsiErr.NOMEM) from None


def _run_one(args: ParsedArgs, env: CliEnv, service: SessionService, sid: int) -> int:
    """``-r SID``: print it (``-P 1..3``), act on it, or drop to node mode for its record
    (iscsiadm's ``exec_node_op`` with a record built from the session)."""
    info = next((s for s in service.sessions() if s.sid == sid), None)
    if info is None:
        # iscsiadm's sysfs lookup logs its failed read first (EIO from sysfs_get_str).
        env.err("could not read session targetname: 5")
        raise IscsiError(f"Could not get session info for sid {sid}", code=IscsiErr.SYSFS_LOOKUP)
    if not (args.logout or args.rescan or args.stats or args.ops) and args.print_level > 0:
        return _print_sessions(env, [info], args.print_level, args.show)
    _check_iface(env, info.iface)
    if args.logout:
        return logout_sessions(env, service, [info])
    if args.rescan:
        return _rescan(env, service, [info])
    if args.stats:
        return _stats(env, service, [info])
    nodes = env.records().nodes(
        info.target, info.persistent_address, info.persistent_port, iface=info.iface
    )
    if set(args.ops) <= {"new", "show"}:
        if not nodes:
            raise IscsiError("No records found", code=IscsiErr.NO_OBJS_FOUND)
        if "new" in args.ops:
            from iscsikit.manager.login_plan import plan_login

            requests = [r for n in nodes for r in plan_login(n, [info], multiple=True)]
            return run_logins(env, service, requests, wait=not args.no_wait)
        from iscsikit.cli.printing import node_text

        env.out("".join(node_text(n, show_secrets=args.show) for n in nodes))
        return 0
    from iscsikit.cli.modes import load

    portal = _portal(info.persistent_address, info.persistent_port)
    node_args = args.replace(
        mode="node", session=None, targetname=info.target, portal=portal, ifaces=[info.iface]
    )
    return load("node").run(node_args, env)


def json_run(
    mode: str,
    args: ParsedArgs,
    env: CliEnv,
    body: Callable[[ParsedArgs, CliEnv], int],
    payload: Callable[[], dict[str, Any]],
) -> int:
    """``--output json`` for session, host and fw modes: run the text command with its
    stdout captured, then write one document with ``payload()`` (the objects), the text
    lines as ``messages`` and, on failure, ``error`` (docs/iscsikit-adm.schema.json)."""
    if args.output != "json":  # jsonout.wants_json, without importing jsonout for text
        return body(args, env)
    import io

    from iscsikit.cli import jsonout

    real, buf = env.stdout, io.StringIO()
    env.stdout = buf
    doc: dict[str, Any] = {}
    try:
        code = body(args, env)
        doc.update(payload())
    except IscsiError as exc:
        env.stdout = real
        doc["messages"] = jsonout.messages_json(buf.getvalue().splitlines())
        jsonout.emit_error(env, mode, int(exc.code), str(exc), doc)
        raise
    finally:
        env.stdout = real
    doc["messages"] = jsonout.messages_json(buf.getvalue().splitlines())
    if code:
        doc["error"] = jsonout.error_json(code)
    jsonout.emit(env, mode, doc)
    return code


def run(args: ParsedArgs, env: CliEnv) -> int:
    def sessions() -> dict[str, Any]:
        from iscsikit.cli import jsonout

        found = env.session_service().sessions()
        if args.session is not None:  # -r SID: that session only (the body checked it)
            sid = parse_sid(args.session, env)
            found = [s for s in found if s.sid == sid]
        return {"sessions": [jsonout.session_json(s, show_secrets=args.show) for s in found]}

    return json_run("session", args, env, _run, sessions)


def _run(args: ParsedArgs, env: CliEnv) -> int:
    service: SessionService = env.session_service()
    if args.session is not None:
        return _run_one(args, env, service, parse_sid(args.session, env))
    if "new" in args.ops:
        raise IscsiError(
            "session mode: Operation 'new' only allowed with specific session IDs",
            code=IscsiErr.INVAL,
        )
    sessions = service.sessions()
    if args.logout or args.rescan or args.stats:
        if not sessions:
            no = "No matching sessions found" if args.logout else "No session found."
            raise IscsiError(no, code=IscsiErr.NO_OBJS_FOUND)
        if args.logout:
            from iscsikit.manager.sessions import grouped

            return logout_sessions(env, service, grouped(sessions))
        return (_rescan if args.rescan else _stats)(env, service, sessions)
    if not sessions:
        raise IscsiError("No active sessions.", code=IscsiErr.NO_OBJS_FOUND)
    return _print_sessions(env, sessions, args.print_level, args.show)
