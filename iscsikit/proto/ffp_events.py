"""What a Full Feature Phase connection reports that is not the answer to a request.

:meth:`FullFeatureConnection.next_event <iscsikit.proto.ffp.FullFeatureConnection.next_event>`
returns these, oldest first: frozen, slotted dataclasses, named after what happened.
Requests (:mod:`iscsikit.proto.task`) learn their own outcome from their fields instead.
"""

from __future__ import annotations

from dataclasses import dataclass

from iscsikit.errors import IscsiError


@dataclass(frozen=True, slots=True)
class AsyncEventReceived:
    """An Async Message the caller may care about: a SCSI event with its sense data
    (e.g. REPORTED LUNS DATA HAS CHANGED) or a vendor event (RFC 7143 §11.9)."""

    event: int
    lun: int
    parameters: tuple[int, int, int]
    sense_data: bytes


@dataclass(frozen=True, slots=True)
class LogoutRequested:
    """The target asked us to log out within ``within`` seconds (AsyncEvent 1)."""

    within: int


@dataclass(frozen=True, slots=True)
class ParametersRenegotiated:
    """A renegotiation the target asked for (AsyncEvent 4) finished; new values."""

    max_xmit_data_segment_length: int


@dataclass(frozen=True, slots=True)
class ConnectionFailed:
    """The connection is finished; every outstanding request failed with ``error``.

    ``time2wait``/``time2retain`` are the target's hints when it announced the drop.
    """

    error: IscsiError
    time2wait: int = 0
    time2retain: int = 0


Event = AsyncEventReceived | LogoutRequested | ParametersRenegotiated | ConnectionFailed


__all__ = [
    "AsyncEventReceived",
    "ConnectionFailed",
    "Event",
    "LogoutRequested",
    "ParametersRenegotiated",
]
