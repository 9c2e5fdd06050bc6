"""Session events passed to the ``iscsikit_session_event`` hook."""

from __future__ import annotations

import enum
from dataclasses import dataclass


class SessionEventKind(enum.Enum):
    LOGGED_IN = "logged in"
    LOGGED_OUT = "logged out"
    LOGIN_FAILED = "login failed"
    REDIRECTED = "redirected"
    #: A disk of a kernel session appeared / went (detail: ``/dev/sdX [by-path link]``).
    DEVICE_ADDED = "device added"
    DEVICE_REMOVED = "device removed"


@dataclass(frozen=True, slots=True)
class SessionEvent:
    """What happened, to which target, at which portal, over which transport."""

    kind: SessionEventKind
    transport: str
    target: str | None
    portal: str
    detail: str = ""
