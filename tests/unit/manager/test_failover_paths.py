"""Portal failover leaves alone the portals other sessions of the target are logged in
at: with dm-multipath (or any second path) there, failing over would put two paths on
one portal."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from iscsikit.manager.blocking import BlockingManagedSession
from iscsikit.manager.policy import State
from iscsikit.manager.service import SessionManager
from iscsikit.manager.spec import session_settings
from iscsikit.proto.address import parse_portal
from iscsikit.sysfs import SysfsContext

TARGET = "iqn.2024-01.test:mp"
INITIATOR = "iqn.2024-01.test:initiator"
A, B, C = (parse_portal(p) for p in ("127.0.0.1:3260", "127.0.0.2:3260", "127.0.0.3:3260"))


def shell(own: str, failover: tuple[str, ...], *, target: str = TARGET) -> BlockingManagedSession:
    settings = session_settings(parse_portal(own), target, initiator_name=INITIATOR)
    settings = dataclasses.replace(settings, failover=tuple(map(parse_portal, failover)))
    return BlockingManagedSession(settings)


def recovery_portals(s: BlockingManagedSession, tries: int) -> list[str]:
    """The portal of each of ``tries`` failed recovery logins."""
    s.policy.state = State.RECONNECTING
    seen = []
    for _ in range(tries):
        seen.append(str(s._next_portal()))
        s._failover_index += 1  # what a failed attempt does
    return seen


def test_recovery_skips_a_portal_another_path_uses() -> None:
    s = shell("127.0.0.2:3260", ("127.0.0.2:3260", "127.0.0.1:3260", "127.0.0.3:3260"))
    assert recovery_portals(s, 3) == ["127.0.0.2:3260", "127.0.0.1:3260", "127.0.0.3:3260"]
    s._failover_index = 0
    s.portal_taken = lambda portal: portal == A
    assert recovery_portals(s, 4) == [
        "127.0.0.2:3260", "127.0.0.3:3260", "127.0.0.3:3260", "127.0.0.2:3260",
    ]  # fmt: skip


def test_own_portal_is_never_skipped_and_all_taken_leaves_it() -> None:
    s = shell("127.0.0.2:3260", ("127.0.0.1:3260", "127.0.0.2:3260"))
    s.portal_taken = lambda portal: True
    assert recovery_portals(s, 3) == ["127.0.0.2:3260"] * 3


def test_first_login_uses_the_record_portal() -> None:
    s = shell("127.0.0.2:3260", ("127.0.0.1:3260", "127.0.0.2:3260"))
    s.portal_taken = lambda portal: True
    assert s._next_portal() == B


def test_manager_knows_which_portals_other_sessions_hold(tmp_path: Path) -> None:
    manager = SessionManager(sysfs=SysfsContext(tmp_path))
    one = shell("127.0.0.1:3260", ())
    two = shell("127.0.0.2:3260", ("127.0.0.2:3260", "127.0.0.1:3260"))
    other_target = shell("127.0.0.3:3260", (), target="iqn.2024-01.test:other")
    for sid, s in enumerate((one, two, other_target), 1):
        s.sid = sid
        manager._sessions[sid] = s  # type: ignore[assignment]  # the shell is what counts
    one.current_portal, two.current_portal, other_target.current_portal = A, B, C
    one.policy.state = State.LOGGED_IN
    other_target.policy.state = State.LOGGED_IN
    taken = manager._portal_taken
    assert taken(two, A) is True
    assert taken(two, C) is False  # another target's session
    assert taken(one, B) is False  # two is not logged in now
    one.policy.state = State.RECONNECTING
    assert taken(two, A) is False  # a failed path holds nothing
