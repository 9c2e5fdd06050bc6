"""Which logins and logouts a command means: iscsiadm's pure decisions, no I/O.

Every mode that logs in or out (node, discovery ``-l``, fw ``-l``, session ``-o new``,
and the daemon) asks these functions what to do and then calls the session service;
they look only at records and at the sessions the service lists, so they are
unit-tested with fake sessions.  The rules are open-iscsi 2.1.8's (usr/iscsiadm.c,
usr/session_mgmt.c, usr/iface.c), checked against the real iscsiadm.

Two rules decide whether an existing session is "a login of" a node record; they differ
on purpose, and each mode uses the one its behaviour was verified with:

* :func:`session_counts_for_node` -- **node mode** (``-l``'s nr_sessions count; checked
  with the oracle): target and persistent portal agree and the ifaces match as
  :func:`iface_matches` says (a record on a built-in iface such as ``default`` counts the
  sessions of every iface of its transport); the tpgt is not compared.
* :func:`session_matches_node` -- **strict** (discovery ``-l``, fw ``-l``, session
  ``-o new``; not yet compared with the oracle): target, persistent portal, iface name
  and transport agree, and the record's tpgt is -1 (old style) or the session's.

And one rule finds the record a session was made from, :func:`record_of_session`
(``-U``; checked with the oracle): the record with the session's tpgt whose iface
matches, else the old-style record of its portal, whatever its iface.

On top of them:

* ``node.session.nr_sessions``: with M matching sessions already, N requested gives
  N - M logins, each marked "(multiple)" once a session exists; M >= N refuses with
  "<iface>: N session(s) requested, but M already present." (SESS_EXISTS, 15);
* ``-m session -r SID -o new`` is exactly one more login, marked "(multiple)";
* ``-L automatic|manual|all|onboot`` selects records by ``node.startup`` (or
  ``node.conn[0].startup``); ``all`` takes every record (onboot included);
* ``-U automatic|manual|all`` selects sessions through their records, always skipping
  ``onboot`` and firmware (``discovery_type = fw``) records and sessions without a
  record; ``-U onboot`` is refused;
* ``node.leading_login = Yes``: log in only while no session to that *target* exists.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeAlias

from iscsikit.errors import InvalidParameterError, SessionExistsError

if TYPE_CHECKING:
    from iscsikit.manager.sessions import SessionInfo
    from iscsikit.records import NodeRecord

__all__ = [
    "LOGINALL_MODES",
    "LOGOUTALL_MODES",
    "LoginRequest",
    "SessionRule",
    "iface_matches",
    "leading_login_pending",
    "plan_login",
    "record_of_session",
    "select_login_all",
    "select_logout_all",
    "session_counts_for_node",
    "session_matches",
    "session_matches_node",
    "sessions_for_node",
]

LOGINALL_MODES = ("automatic", "manual", "all", "onboot")
LOGOUTALL_MODES = ("automatic", "manual", "all")


@dataclass(frozen=True, slots=True)
class LoginRequest:
    """One login to ask the session service for."""

    node: NodeRecord
    multiple: bool = False

    @property
    def description(self) -> str:
        """``[iface: I, target: T, portal: P,port]`` as iscsiadm prints it."""
        n = self.node
        return f"[iface: {n.iface}, target: {n.target}, portal: {n.address},{n.port}]"


def session_matches(
    session: SessionInfo,
    *,
    target: str | None = None,
    address: str | None = None,
    port: int | None = None,
    tpgt: int | None = None,
    iface: str | None = None,
    transport: str | None = None,
) -> bool:
    """iscsiadm's ``iscsi_match_session``: every given (non-empty) field must agree.
    A ``port`` or ``tpgt`` of -1 matches any; addresses compare without brackets."""
    if target and target != session.target:
        return False
    if address and address.strip("[]") != session.persistent_address:
        return False
    if port is not None and port not in (-1, session.persistent_port):
        return False
    if tpgt is not None and tpgt not in (-1, session.tpgt):
        return False
    if iface and iface != session.iface:
        return False
    return not (transport and session.transport and transport != session.transport)


def iface_matches(iface: str, transport: str | None, session: SessionInfo) -> bool:
    """open-iscsi's ``iface_match``: the same iface, or a built-in iface (``default``,
    ``iser``) of the session's transport."""
    from iscsikit.records.layout import BUILTIN_IFACES  # the records package loads lazily

    if iface == session.iface:
        return True
    return iface in BUILTIN_IFACES and transport == session.transport


def session_counts_for_node(session: SessionInfo, node: NodeRecord) -> bool:
    """Node mode's rule (oracle-verified): ``session`` is a login of ``node`` when target
    and persistent portal agree and :func:`iface_matches`; the tpgt is not compared."""
    return (
        session.target == node.target
        and session.persistent_address == node.address
        and session.persistent_port == node.port
        and iface_matches(node.iface, node.get("iface.transport_name"), session)
    )


def session_matches_node(session: SessionInfo, node: NodeRecord) -> bool:
    """The strict rule (discovery ``-l``, fw ``-l``, session ``-o new``): every field of
    the record agrees, as :func:`session_matches` with the record's values."""
    return session_matches(
        session,
        target=node.target,
        address=node.address,
        port=node.port,
        tpgt=node.tpgt,
        iface=node.iface,
        transport=node.get("iface.transport_name"),
    )


#: A rule deciding whether a session is a login of a node record.
SessionRule: TypeAlias = Callable[["SessionInfo", "NodeRecord"], bool]


def sessions_for_node(
    sessions: Iterable[SessionInfo],
    node: NodeRecord,
    rule: SessionRule = session_matches_node,
) -> list[SessionInfo]:
    """The sessions ``rule`` counts as logins of ``node``."""
    return [s for s in sessions if rule(s, node)]


def _nr_sessions(node: NodeRecord) -> int:
    try:
        return max(int(node.get("node.session.nr_sessions")), 1)
    except ValueError:
        return 1


def plan_login(
    node: NodeRecord,
    sessions: Sequence[SessionInfo],
    *,
    multiple: bool = False,
    rule: SessionRule = session_matches_node,
) -> list[LoginRequest]:
    """The logins ``node`` needs given the existing ``sessions``, counted with ``rule``
    (node mode passes :func:`session_counts_for_node`; see the module docstring).

    ``multiple`` is ``-m session -o new``: one more session whatever exists.  Raises
    :class:`SessionExistsError` (15) when ``nr_sessions`` are already there.
    """
    if multiple:
        return [LoginRequest(node, multiple=True)]
    wanted = _nr_sessions(node)
    present = len(sessions_for_node(sessions, node, rule))
    if present >= wanted:
        plural = "" if wanted == 1 else "s"
        raise SessionExistsError(
            f"{node.iface}: {wanted} session{plural} requested, but {present} already present."
        )
    return [LoginRequest(node, multiple=present + i > 0) for i in range(wanted - present)]


def _startup_matches(node: NodeRecord, mode: str) -> bool:
    if mode == "all":
        return True
    return mode in (node.get("node.startup"), node.get("node.conn[0].startup"))


def select_login_all(nodes: Iterable[NodeRecord], mode: str) -> list[NodeRecord]:
    """The records ``-L mode`` logs in to, in record order.  An unknown mode raises
    InvalidParameterError with iscsiadm's "Invalid loginall option" (7)."""
    if mode not in LOGINALL_MODES:
        raise InvalidParameterError(f"Invalid loginall option {mode}.")
    return [n for n in nodes if _startup_matches(n, mode)]


def record_of_session(session: SessionInfo, nodes: Iterable[NodeRecord]) -> NodeRecord | None:
    """The record ``session`` was made from (usr/idbm.c ``idbm_rec_read``, checked with
    the oracle): among the records of its target and persistent portal, in ``nodes``
    order, the first with the session's tpgt whose iface :func:`iface_matches`, else the
    first old-style (tpgt -1) one whatever its iface; None when there is none."""
    found = [
        n
        for n in nodes
        if n.target == session.target
        and n.address == session.persistent_address
        and n.port == session.persistent_port
    ]
    for node in found:
        if node.tpgt == session.tpgt and iface_matches(
            node.iface, node.get("iface.transport_name"), session
        ):
            return node
    return next((n for n in found if n.tpgt == -1), None)


def select_logout_all(
    sessions: Iterable[SessionInfo], nodes: Sequence[NodeRecord], mode: str
) -> list[SessionInfo]:
    """The sessions ``-U mode`` logs out of, in ``sessions`` order, each judged by its
    :func:`record_of_session` in ``nodes`` (see the module docstring); ``onboot`` and
    unknown modes raise "Invalid logoutall option" (7)."""
    if mode not in LOGOUTALL_MODES:
        raise InvalidParameterError(f"Invalid logoutall option {mode}.")
    out = []
    for session in sessions:
        node = record_of_session(session, nodes)
        if node is None:  # a session iscsikit did not make (an HBA's, another tool's)
            continue
        if node.get("node.startup") == "onboot" or node.discovery_type == "fw":
            continue  # never logged out by -U (the boot disk and its firmware records)
        if _startup_matches(node, mode):
            out.append(session)
    return out


def leading_login_pending(node: NodeRecord, sessions: Iterable[SessionInfo]) -> bool:
    """For a ``node.leading_login = Yes`` record: True while no session to its target
    exists (so this iface should try); a record with leading_login off is always due."""
    if node.get("node.leading_login") != "Yes":
        return True
    return not any(s.target == node.target for s in sessions)
