"""The two session-matching rules of login_plan and where they differ, and the record of
a session (-U): pure functions on fake sessions."""

from __future__ import annotations

from dataclasses import replace

import pytest

from iscsikit.errors import SessionExistsError
from iscsikit.manager.login_plan import (
    iface_matches,
    plan_login,
    record_of_session,
    select_logout_all,
    session_counts_for_node,
    session_matches_node,
    sessions_for_node,
)
from iscsikit.manager.sessions import SessionInfo
from iscsikit.records import IfaceRecord, NodeRecord

T = "iqn.2003-01.org.example:disk1"


def session(sid: int = 1, **kw: object) -> SessionInfo:
    base = SessionInfo(
        sid=sid, transport="tcp", target=T, address="10.0.0.1", port=3260, tpgt=1,
        persistent_address="10.0.0.1", persistent_port=3260, iface="default",
        initiator_name="iqn.x:i", state="LOGGED_IN", conn_state="Unknown",
        internal_state="Unknown", host_no=sid + 1, params={}, username="", password="",
        username_in="", password_in="", timeouts={},
    )  # fmt: skip
    return replace(base, **kw)  # type: ignore[arg-type]


def node(tpgt: int = 1, iface: str = "default", startup: str = "manual") -> NodeRecord:
    n = NodeRecord.new(T, "10.0.0.1", tpgt=tpgt, iface=IfaceRecord.new(iface))
    n.values["node.startup"] = n.values["node.conn[0].startup"] = startup
    return n


def test_iface_matches() -> None:
    assert iface_matches("ifx", "tcp", session(iface="ifx"))
    assert iface_matches("default", "tcp", session(iface="ifx"))  # built-in: any tcp iface
    assert not iface_matches("default", "tcp", session(iface="ifx", transport="iser"))
    assert not iface_matches("ify", "tcp", session(iface="ifx"))


@pytest.mark.parametrize(
    ("s", "n", "node_mode", "strict"),
    [
        (session(), node(), True, True),
        (session(iface="ifx"), node(), True, False),  # default counts another tcp iface
        (session(tpgt=2), node(tpgt=1), True, False),  # node mode ignores the tpgt
        (session(tpgt=2), node(tpgt=-1), True, True),  # old style: any tpgt
        (session(iface="ifx"), node(iface="ify"), False, False),
        (session(persistent_port=3261), node(), False, False),
        (session(target=T + "x"), node(), False, False),
    ],
)
def test_the_two_rules(s: SessionInfo, n: NodeRecord, node_mode: bool, strict: bool) -> None:
    assert session_counts_for_node(s, n) is node_mode
    assert session_matches_node(s, n) is strict


def test_plan_login_counts_with_the_rule_it_is_given() -> None:
    other_iface = [session(iface="ifx")]
    assert [r.multiple for r in plan_login(node(), other_iface)] == [False]
    with pytest.raises(SessionExistsError, match="1 session requested, but 1 already present"):
        plan_login(node(), other_iface, rule=session_counts_for_node)
    assert sessions_for_node(other_iface, node(), session_counts_for_node) == other_iface
    assert sessions_for_node(other_iface, node()) == []


def test_record_of_session() -> None:
    portal_group = node(tpgt=1, iface="ifx")
    old_style = node(tpgt=-1, iface="ify")
    other_group = node(tpgt=2, iface="ifx")
    s = session(iface="ifx")
    assert record_of_session(s, [other_group, old_style, portal_group]) is portal_group
    # No record with its tpgt and iface: the old-style record of the portal, any iface.
    assert record_of_session(s, [other_group, old_style]) is old_style
    assert record_of_session(s, [other_group]) is None
    # A record on the built-in default iface is the record of a session on any tcp iface.
    on_default = node(tpgt=1)
    assert record_of_session(s, [on_default]) is on_default


def test_logout_all_judges_a_session_by_its_record() -> None:
    s = session(iface="ifx", tpgt=5)
    auto_old_style = node(tpgt=-1, iface="ify", startup="automatic")
    assert select_logout_all([s], [auto_old_style], "automatic") == [s]
    assert select_logout_all([s], [auto_old_style], "manual") == []
    boot = node(tpgt=5, startup="onboot")
    assert select_logout_all([s], [boot, auto_old_style], "all") == []  # onboot wins
