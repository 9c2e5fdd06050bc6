"""Which logins and logouts a node command means: iscsiadm's pure decisions, no I/O.

The node mode (and ``-m session -r SID -o new``) asks these functions what to do and
then calls the session service; they look only at records and at the sessions the
service lists, so they are unit-tested with fake sessions.  The rules are open-iscsi
2.1.8's (usr/iscsiadm.c, usr/session_mgmt.c), checked against the real iscsiadm:

* a session *matches* a node record when target, persistent portal, iface and
  transport agree and the record's tpgt is -1 (old style) or the session's;
* ``node.session.nr_sessions``: with M matching sessions already, N requested gives
  N - M logins, each marked "(multiple)" once a session exists; M >= N refuses with
  "<iface>: N session(s) requested, but M already present." (SESS_EXISTS, 15);
* ``-m session -r SID -o new`` is exactly one more login, marked "(multiple)";
* ``-L automatic|manual|all|onboot`` selects records by ``node.startup`` (or
  ``node.conn[0].startup``); ``all`` takes every record;
* ``-U automatic|manual|all`` selects sessions through their records, always skipping
  ``onboot`` and firmware (``discovery_type = fw``) records and sessions without a
  record; ``-U onboot`` is refused;
* ``node.leading_login = Yes``: log in only while no session to that *target* exists.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from iscsikit.errors import InvalidParameterError, SessionExistsError

if TYPE_CHECKING:
    from iscsikit.manager.sessions import SessionInfo
    from iscsikit.records import NodeRecord

__all__ = [
    "LOGINALL_MODES",
    "LOGOUTALL_MODES",
    "LoginRequest",
    "leading_login_pending",
    "plan_login",
    "select_login_all",
    "select_logout_all",
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


def session_matches_node(session: SessionInfo, node: NodeRecord) -> bool:
    return session_matches(
        session,
        target=node.target,
        address=node.address,
        port=node.port,
        tpgt=node.tpgt,
        iface=node.iface,
        transport=node.get("iface.transport_name"),
    )


def sessions_for_node(sessions: Iterable[SessionInfo], node: NodeRecord) -> list[SessionInfo]:
    return [s for s in sessions if session_matches_node(s, node)]


def _nr_sessions(node: NodeRecord) -> int:
    try:
        return max(int(node.get("node.session.nr_sessions")), 1)
    except ValueError:
        return 1


def plan_login(
    node: NodeRecord, sessions: Sequence[SessionInfo], *, multiple: bool = False
) -> list[LoginRequest]:
    """The logins ``node`` needs given the existing ``sessions``.

    ``multiple`` is ``-m session -o new``: one more session whatever exists.  Raises
    :class:`SessionExistsError` (15) when ``nr_sessions`` are already there.
    """
    if multiple:
        return [LoginRequest(node, multiple=True)]
    wanted = _nr_sessions(node)
    present = len(sessions_for_node(sessions, node))
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


def _record_of(session: SessionInfo, nodes: Sequence[NodeRecord]) -> NodeRecord | None:
    """The record a session was made from (idbm_rec_read: its tpgt, else old style)."""
    found = [
        n
        for n in nodes
        if n.target == session.target
        and n.address == session.persistent_address
        and n.port == session.persistent_port
        and n.iface == session.iface
        and n.tpgt in (session.tpgt, -1)
    ]
    found.sort(key=lambda n: n.tpgt == -1)  # the portal-group record wins
    return found[0] if found else None


def select_logout_all(
    sessions: Iterable[SessionInfo], nodes: Sequence[NodeRecord], mode: str
) -> list[SessionInfo]:
    """The sessions ``-U mode`` logs out of, in ``sessions`` order (see the module
    docstring); ``onboot`` and unknown modes raise "Invalid logoutall option" (7)."""
    if mode not in LOGOUTALL_MODES:
        raise InvalidParameterError(f"Invalid logoutall option {mode}.")
    out = []
    for session in sessions:
        node = _record_of(session, nodes)
        if node is None:  # a session iscsikit did not make (an HBA's, another tool's)
            continue
        transport = node.get("iface.transport_name")
        if transport and session.transport and transport != session.transport:
            continue
        if node.get("node.startup") == "onboot" or node.discovery_type == "fw":
            continue
        if _startup_matches(node, mode):
            out.append(session)
    return out


def leading_login_pending(node: NodeRecord, sessions: Iterable[SessionInfo]) -> bool:
    """For a ``node.leading_login = Yes`` record: True while no session to its target
    exists (so this iface should try); a record with leading_login off is always due."""
    if node.get("node.leading_login") != "Yes":
        return True
    return not any(s.target == node.target for s in sessions)
