"""Redirect and retry policy, driven by a scripted attempt function and a fake sleep."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from iscsikit.errors import (
    AuthenticationError,
    IscsiErr,
    LoginError,
    TargetError,
    TooManyRedirectsError,
)
from iscsikit.manager.login import attempt_login
from iscsikit.proto.address import Portal
from iscsikit.proto.login import TargetRedirected

A = Portal("127.0.0.1", 3260)
B = Portal("127.0.0.2", 3261)


def scripted(*outcomes: object) -> tuple[Callable[[Portal], object], list[Portal]]:
    calls: list[Portal] = []
    queue = list(outcomes)

    def attempt(portal: Portal) -> object:
        calls.append(portal)
        outcome = queue.pop(0)
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    return attempt, calls


def test_follows_redirect_to_new_portal() -> None:
    attempt, calls = scripted(TargetRedirected(B, 2, permanent=False), "session")
    seen: list[tuple[Portal, Portal]] = []
    result = attempt_login(attempt, A, on_redirect=lambda at, r: seen.append((at, r.portal)))
    assert result == "session"
    assert calls == [A, B]
    assert seen == [(A, B)]


def test_redirect_loop_is_bounded() -> None:
    attempt, calls = scripted(*[TargetRedirected(B, None, permanent=True)] * 10)
    with pytest.raises(TooManyRedirectsError) as info:
        attempt_login(attempt, A, max_redirects=3)
    assert len(calls) == 4
    assert info.value.code is IscsiErr.LOGIN


def test_target_errors_are_retried_then_reported_as_login_failure() -> None:
    err = TargetError("out of resources", status_class=3, status_detail=2)
    sleeps: list[float] = []
    attempt, calls = scripted(err, err, err)
    with pytest.raises(LoginError) as info:
        attempt_login(attempt, A, retries=2, retry_delay=0.5, sleep=sleeps.append)
    assert len(calls) == 3
    assert sleeps == [0.5, 0.5]
    assert info.value.code is IscsiErr.LOGIN
    assert (info.value.status_class, info.value.status_detail) == (3, 2)


def test_target_error_then_success() -> None:
    attempt, _ = scripted(TargetError("busy", status_class=3, status_detail=1), "ok")
    assert attempt_login(attempt, A, retries=1, sleep=lambda _: None) == "ok"


def test_initiator_errors_are_not_retried() -> None:
    attempt, calls = scripted(AuthenticationError("no"), "never")
    with pytest.raises(AuthenticationError):
        attempt_login(attempt, A, retries=5, sleep=lambda _: None)
    assert calls == [A]
