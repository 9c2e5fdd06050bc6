"""iscsiadm's login/logout decisions (nr_sessions, -L, -U, leading_login, -o new) on fake
sessions -- pure functions, no I/O."""

from __future__ import annotations

from dataclasses import replace

import pytest

from iscsikit.errors import InvalidParameterError, SessionExistsError
from iscsikit.manager.login_plan import (
    leading_login_pending,
    plan_login,
    select_login_all,
    select_logout_all,
    session_matches,
    sessions_for_node,
)
from iscsikit.manager.sessions import SessionInfo, grouped
from iscsikit.records import NodeRecord

T1, T2 = "iqn.2003-01.org.example:disk1", "iqn.2003-01.org.example:disk2"


def session(sid: int, target: str = T1, address: str = "10.0.0.1", **kw: object) -> SessionInfo:
    base = SessionInfo(
        sid=sid, transport="tcp", target=target, address=address, port=3260, tpgt=1,
        persistent_address=address, persistent_port=3260, iface="default",
        initiator_name="iqn.x:i", state="LOGGED_IN", conn_state="Unknown",
        internal_state="Unknown", host_no=sid + 1, params={}, username="", password="",
        username_in="", password_in="", timeouts={},
    )  # fmt: skip
    return replace(base, **kw)  # type: ignore[arg-type]


def node(target: str = T1, address: str = "10.0.0.1", tpgt: int = -1, **values: str) -> NodeRecord:
    n = NodeRecord.new(target, address, tpgt=tpgt)
    for k, v in values.items():
        n.values[k.replace("__", ".")] = v
    return n


def test_matching() -> None:
    s = session(1)
    assert session_matches(s)
    assert session_matches(s, target=T1, address="[10.0.0.1]", port=-1, tpgt=-1)
    assert not session_matches(s, tpgt=2) and not session_matches(s, port=3261)
    assert not session_matches(s, iface="ifx") and not session_matches(s, transport="iser")
    assert sessions_for_node([s, session(2, T2)], node()) == [s]
    assert sessions_for_node([s], node(tpgt=1)) == [s]
    assert sessions_for_node([s], node(tpgt=2)) == []


def test_nr_sessions() -> None:
    n = node()
    assert [r.multiple for r in plan_login(n, [])] == [False]
    with pytest.raises(
        SessionExistsError, match=r"^default: 1 session requested, but 1 already present\.$"
    ):
        plan_login(n, [session(1)])
    n3 = node(node__session__nr_sessions="3")
    reqs = plan_login(n3, [session(1)])
    assert [r.multiple for r in reqs] == [True, True]
    assert reqs[0].description == f"[iface: default, target: {T1}, portal: 10.0.0.1,3260]"
    assert [r.multiple for r in plan_login(n3, [])] == [False, True, True]
    with pytest.raises(SessionExistsError, match="3 sessions requested, but 3"):
        plan_login(n3, [session(1), session(2), session(3)])
    # -m session -r SID -o new: one more, whatever exists.
    assert [r.multiple for r in plan_login(n, [session(1)], multiple=True)] == [True]


def test_login_all() -> None:
    manual = node(address="10.0.0.1")
    auto = node(
        address="10.0.0.2", **{"node__startup": "automatic", "node__conn[0]__startup": "automatic"}
    )
    conn_auto = node(address="10.0.0.3", **{"node__conn[0]__startup": "automatic"})
    boot = node(
        address="10.0.0.4", **{"node__startup": "onboot", "node__conn[0]__startup": "onboot"}
    )
    nodes = [manual, auto, conn_auto, boot]
    assert select_login_all(nodes, "all") == nodes
    assert select_login_all(nodes, "automatic") == [auto, conn_auto]
    # Either startup key selects (match_startup_mode): conn_auto's node.startup is manual.
    assert select_login_all(nodes, "manual") == [manual, conn_auto]
    assert select_login_all(nodes, "onboot") == [boot]
    with pytest.raises(InvalidParameterError, match="Invalid loginall option bogus"):
        select_login_all(nodes, "bogus")


def test_logout_all() -> None:
    s1, s2, s3, s4 = (
        session(1),
        session(2, address="10.0.0.2"),
        session(3, address="10.0.0.3"),
        session(4, address="10.0.0.4"),
    )
    nodes = [
        node(address="10.0.0.1"),
        node(
            address="10.0.0.2",
            **{"node__startup": "automatic", "node__conn[0]__startup": "automatic"},
        ),
        node(address="10.0.0.3", node__startup="onboot"),
        node(address="10.0.0.4", node__discovery_type="fw"),
    ]
    orphan = session(5, address="10.9.9.9")
    sessions = [s1, s2, s3, s4, orphan]
    assert select_logout_all(sessions, nodes, "all") == [s1, s2]
    assert select_logout_all(sessions, nodes, "manual") == [s1]
    assert select_logout_all(sessions, nodes, "automatic") == [s2]
    for bad in ("onboot", "x"):
        with pytest.raises(InvalidParameterError, match=f"Invalid logoutall option {bad}"):
            select_logout_all(sessions, nodes, bad)


def test_leading_login() -> None:
    lead = node(node__leading_login="Yes")
    assert leading_login_pending(lead, [])
    assert not leading_login_pending(lead, [session(7, address="10.0.0.9")])  # same target
    assert leading_login_pending(lead, [session(7, target=T2)])
    assert leading_login_pending(node(), [session(1)])


def test_grouped_order() -> None:
    a, b, c = session(1, T1, "10.0.0.1"), session(10, T2), session(2, T1, "10.0.0.2")
    assert [s.sid for s in grouped([a, b, c])] == [1, 2, 10]
