"""Login policy: follow redirects, retry target errors, give up with the right code.

A driver makes *one* attempt at *one* portal; this module decides what happens next,
the way iscsid does (usr/initiator.c): a redirect (status class 1) is followed to the
new portal, a target error (class 3) is retried up to ``retries`` times and then
reported as a login failure (exit 5), an initiator error (class 2) is final (19, or 24
for authentication).  Sleeping is injected so the policy is tested without a clock.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TypeVar

from iscsikit.errors import LoginError, TargetError, TooManyRedirectsError
from iscsikit.proto.address import Portal
from iscsikit.proto.login import TargetRedirected

log = logging.getLogger(__name__)

T = TypeVar("T")

#: open-iscsi follows a redirect chain without limit; a loop must end somewhere.
MAX_REDIRECTS = 8


def attempt_login(
    attempt: Callable[[Portal], T | TargetRedirected],
    portal: Portal,
    *,
    retries: int = 3,
    retry_delay: float = 1.0,
    max_redirects: int = MAX_REDIRECTS,
    sleep: Callable[[float], None] = time.sleep,
    on_redirect: Callable[[Portal, TargetRedirected], None] | None = None,
) -> T:
    """Run ``attempt(portal)`` under the redirect and retry policy; return its result."""
    redirects = 0
    failures = 0
    current = portal
    while True:
        try:
            result = attempt(current)
        except TargetError as exc:
            failures += 1
            if failures > retries:
                raise LoginError(
                    f"{exc} (gave up after {failures} attempts)",
                    status_class=exc.status_class,
                    status_detail=exc.status_detail,
                ) from exc
            log.info("login to %s: %s; retrying in %.1f s", current, exc, retry_delay)
            sleep(retry_delay)
            continue
        if not isinstance(result, TargetRedirected):
            return result
        redirects += 1
        if redirects > max_redirects:
            raise TooManyRedirectsError(
                f"login to {portal}: more than {max_redirects} redirects (last to {result.portal})"
            )
        kind = "permanently" if result.permanent else "temporarily"
        log.info("login to %s: target moved %s to %s", current, kind, result.portal)
        if on_redirect is not None:
            on_redirect(current, result)
        current = result.portal
