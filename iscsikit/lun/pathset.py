"""The paths of a multipath LUN and the choice among them, with no I/O and no clock.

:class:`PathState` is one path's bookkeeping (ALUA state, health, back-off, counters);
:class:`Selector` carries out a policy (``failover``, ``round-robin``, ``queue-depth``)
over the usable paths of the best ALUA rank (:func:`candidates`); :func:`check_same_lu`
refuses paths that do not provably reach one LU.  The asyncio
:class:`~iscsikit.lun.aio_multipath.AsyncMultipathLun` runs on these; times are passed
in (``now``).  What may be re-issued when is :mod:`iscsikit.lun.fence`'s.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, Protocol, TypeVar

from iscsikit.errors import (
    ConnectionFailedError,
    InvalidParameterError,
    LocalProtocolError,
    ProtocolError,
    TaskManagementError,
    TransportError,
)
from iscsikit.proto.task import ScsiTask
from iscsikit.scsi.alua import AccessState, PortGroups, is_alua_state_change
from iscsikit.scsi.sense import decode_sense
from iscsikit.scsi.vpd import Designator

Policy = Literal["failover", "round-robin", "queue-depth"]
POLICIES: tuple[Policy, ...] = ("failover", "round-robin", "queue-depth")

__all__ = [
    "ALUA_POLL_INTERVAL",
    "POLICIES",
    "PathInfo",
    "PathState",
    "Policy",
    "Selector",
    "alua_poll_due",
    "apply_alua",
    "candidates",
    "check_same_lu",
    "due",
    "is_path_failure",
    "no_path_error",
    "reports_alua_change",
    "wait_step",
]

#: Seconds between unasked REPORT TARGET PORT GROUPS while a path is not
#: active/optimized (see :func:`alua_poll_due`).
ALUA_POLL_INTERVAL = 5.0


def is_path_failure(exc: BaseException) -> bool:
    """Whether ``exc`` says the path failed (worth the call on another path) rather than
    the command (the LU's answer, or the caller's mistake)."""
    if isinstance(exc, LocalProtocolError):
        return False
    return isinstance(exc, (TransportError, ProtocolError, TaskManagementError))


@dataclass(frozen=True, slots=True)
class PathInfo:
    """A path as ``-m session -P 3`` / JSON show it.

    ``state``: ``active`` (healthy and usable for I/O), ``standby`` (healthy, but its
    ALUA state forbids I/O: standby, unavailable, offline, transitioning) or ``failed``
    (resting after a failure).  An active/non-optimized path is ``active`` even while
    an optimized one carries the I/O: ``alua`` says which it is, and the selection uses
    non-optimized paths only when no optimized one is up.
    """

    index: int
    name: str
    state: str
    alua: str | None
    group_id: int | None
    relative_port: int | None
    commands: int
    failures: int
    last_error: str | None


class _Geometry(Protocol):
    @property
    def block_size(self) -> int: ...

    @property
    def size(self) -> int: ...


class PathState:
    """One path's bookkeeping: what VPD 0x83 said, its ALUA state, health and counters."""

    def __init__(
        self,
        *,
        index: int,
        name: str,
        identity: Designator | None,
        relative_port: int | None = None,
        group_id: int | None = None,
        alua_capable: bool = False,
    ) -> None:
        self.index = index
        self.name = name
        self.identity = identity
        self.relative_port = relative_port
        self.group_id = group_id
        self.alua_capable = alua_capable
        self.alua: AccessState | int | None = None
        self.healthy = True
        self.outstanding = 0
        self.commands = 0
        self.failures = 0
        self.last_error: str | None = None
        self.retry_at = 0.0
        self.backoff = 0.0

    @property
    def identity_key(self) -> tuple[int, int, bytes] | None:
        """What two paths of one LU have equal: designator type, code set, bytes."""
        d = self.identity
        return None if d is None else (d.designator_type, d.code_set, d.designator)

    @property
    def rank(self) -> int:
        """ALUA preference, lower first (0 without ALUA)."""
        if self.alua is None:
            return 0
        return AccessState(self.alua).rank if self.alua in AccessState._value2member_map_ else 2

    @property
    def usable(self) -> bool:
        return self.alua is None or (
            self.alua in AccessState._value2member_map_ and AccessState(self.alua).usable
        )

    @property
    def state(self) -> str:
        if not self.healthy:
            return "failed"
        if self.alua is not None and self.rank > 1:
            return "standby"
        return "active"

    def info(self) -> PathInfo:
        alua = None
        if self.alua is not None:
            known = self.alua in AccessState._value2member_map_
            alua = AccessState(self.alua).text if known else f"0x{int(self.alua):x}"
        return PathInfo(
            self.index, self.name, self.state, alua, self.group_id, self.relative_port,
            self.commands, self.failures, self.last_error,
        )  # fmt: skip

    def fail(self, exc: BaseException, now: float, first: float, cap: float) -> None:
        """Take the path out of use for a back-off (``first``, doubling up to ``cap``)."""
        self.healthy = False
        self.failures += 1
        self.last_error = str(exc)
        self.backoff = first if self.backoff == 0 else min(self.backoff * 2, cap)
        self.retry_at = now + self.backoff

    def revived(self, back: bool, now: float, first: float, cap: float) -> bool:
        """Record a look at a failed path's session: ``back`` (logged in again) brings the
        path back, else it rests for a longer back-off."""
        if back:
            self.healthy = True
            self.backoff = 0.0
            return True
        self.backoff = min(max(self.backoff, first) * 2, cap)
        self.retry_at = now + self.backoff
        return False


_P = TypeVar("_P", bound=PathState)


def candidates(paths: Sequence[_P], *, alua: bool = True) -> list[_P]:
    """The healthy paths of the best ALUA rank present (all healthy ones without ALUA,
    or with ``alua`` False), in the order given."""
    healthy = [p for p in paths if p.healthy]
    if not alua:
        return healthy
    usable = [p for p in healthy if p.usable]
    if not usable:
        return []
    best = min(p.rank for p in usable)
    return [p for p in usable if p.rank == best]


class Selector:
    """A policy's cursor: which path the next call takes."""

    def __init__(self, policy: Policy) -> None:
        if policy not in POLICIES:
            raise InvalidParameterError(f"unknown multipath policy {policy!r} ({POLICIES})")
        self.policy: Policy = policy
        self._next = 0
        self._current: int | None = None

    def pick(self, paths: Sequence[_P], exclude: set[int]) -> _P | None:
        """The policy's choice among the candidates not in ``exclude`` (by index); its
        ``outstanding`` is counted up (the caller counts it down when the call ends)."""
        ready = [p for p in candidates(paths) if p.index not in exclude]
        if not ready:
            return None
        if self.policy == "failover":
            current = [p for p in ready if p.index == self._current]
            choice = current[0] if current else ready[0]
            self._current = choice.index
        elif self.policy == "queue-depth":
            low = min(p.outstanding for p in ready)
            choice = self._rotate([p for p in ready if p.outstanding == low])
        else:
            choice = self._rotate(ready)
        choice.outstanding += 1
        return choice

    def forget(self, index: int) -> None:
        """Path ``index`` failed: failover moves on."""
        if self._current == index:
            self._current = None

    def _rotate(self, ready: list[_P]) -> _P:
        """The ready path with the lowest index at or after the cursor, else the lowest
        (indices may have gaps: paths come and go)."""
        later = [p for p in ready if p.index >= self._next]
        choice = min(later or ready, key=lambda p: p.index)
        self._next = choice.index + 1
        return choice


class _LuPath(Protocol):
    name: str
    identity: Designator | None

    @property
    def identity_key(self) -> tuple[int, int, bytes] | None: ...

    @property
    def geometry(self) -> _Geometry: ...


def check_same_lu(paths: Sequence[_LuPath]) -> None:
    """Refuse paths that do not provably reach one LU: a path without an LU designator
    in VPD 0x83, different identities, or different block size / capacity."""
    first = paths[0]
    for path in paths:
        if path.identity is None:
            raise InvalidParameterError(
                f"{path.name}: the LU reports no identifier in VPD page 0x83; "
                "its paths cannot be proven to reach one LU"
            )
        if path.identity_key != first.identity_key:
            raise InvalidParameterError(
                f"{path.name} reaches LU {path.identity.value}, {first.name} reaches "
                f"{first.identity.value if first.identity else '?'}: not paths of one LU"
            )
        mine, theirs = path.geometry, first.geometry
        if (mine.block_size, mine.size) != (theirs.block_size, theirs.size):
            raise InvalidParameterError(
                f"{path.name}: {mine.size} bytes in {mine.block_size}-byte blocks, "
                f"{first.name}: {theirs.size} in {theirs.block_size}: not one LU"
            )


def due(paths: Sequence[_P], now: float) -> list[_P]:
    """The failed paths whose back-off is over (their sessions are worth a look)."""
    return [p for p in paths if not p.healthy and p.retry_at <= now]


def wait_step(paths: Sequence[PathState], now: float) -> float:
    """How long a call with no usable path sleeps before it looks again: until the
    next failed path's back-off ends, within 0.01-0.5 s."""
    waits = [p.retry_at - now for p in paths if not p.healthy]
    return min(max(min(waits, default=0.1), 0.01), 0.5)


def no_path_error(paths: Sequence[PathState], timeout: float) -> ConnectionFailedError:
    """What a call raises after ``no_path_timeout`` without a usable path."""
    states = "; ".join(f"{p.name}: {p.state}" for p in paths)
    return ConnectionFailedError(f"no usable path within {timeout:g} s: {states}")


def apply_alua(paths: Sequence[PathState], groups: PortGroups) -> None:
    """Set each path's ALUA state from REPORT TARGET PORT GROUPS' answer: by its target
    port group (VPD 0x83), else by its relative target port."""
    for p in paths:
        group = None
        if p.group_id is not None:
            group = groups.group(p.group_id)
        elif p.relative_port is not None:
            group = groups.group_of_port(p.relative_port)
        p.alua = None if group is None else group.state


def alua_poll_due(
    paths: Sequence[PathState], now: float, read_at: float, interval: float = ALUA_POLL_INTERVAL
) -> bool:
    """Whether to read the ALUA states unasked (they were read at ``read_at``): at every
    wait while no path is usable, else every ``interval`` while a healthy path is not
    active/optimized.  LIO tells a group's change only to that group's I_T nexuses, so a
    path without I/O never hears it."""
    if all(p.rank == 0 for p in paths if p.healthy and p.alua_capable):
        return False
    due_every = interval if candidates(paths) else 0.0
    return now - read_at >= due_every


def reports_alua_change(task: ScsiTask) -> bool:
    """Whether ``task`` ended with UNIT ATTENTION 2A/06-07 (asymmetric access state
    changed): the port groups' states are to be read again."""
    if not (task.done and task.sense_data):
        return False
    try:
        return is_alua_state_change(decode_sense(task.sense_data))
    except ValueError:
        return False
