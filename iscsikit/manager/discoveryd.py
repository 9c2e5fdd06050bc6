"""discoveryd's decisions: when a discovery record is discovered again, and which
sessions a discovery logs in and out (open-iscsi usr/discoveryd.c).

Pure: no sockets, no threads, no clock reads (``now`` is passed in).  The daemon's
driver (:mod:`iscsikit.daemon.discoveryd`) runs what these objects ask for.

* :class:`Schedule` -- what ``discoveryd_poll_inval`` means for a record type, as
  iscsid reads it: SendTargets below 0 is 30 s, 0 is one discovery and no more;
  iSNS 0 is one registration and discovery (no SCNs), below 0 is SCNs only (the
  server's notifications drive it), above 0 is SCNs and a poll every that many seconds
  (the open-iscsi README: some servers never send SCNs).
* :class:`RecordPoller` -- one record's state machine, a table
  ``{(state, input): (effect, next state)}``: never two discoveries of one record at
  once; an SCN during a discovery runs one more right after it; a failure is retried
  at the next interval (after :data:`RETRY_INTERVAL` for an SCN-only record); a
  run-once record stops after its run.
* :func:`plan_sessions` -- iscsid's ``update_sessions``: log in to every returned
  portal that has no session, log out of the portals this record returned before and
  no longer does.  Records are not written here: discoveryd never writes the node
  database, it logs in with records made from the discovery.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass, field

__all__ = [
    "DEFAULT_POLL_INTERVAL",
    "Effect",
    "Input",
    "PortalKey",
    "RETRY_INTERVAL",
    "RecordPoller",
    "Schedule",
    "SessionPlan",
    "State",
    "TRANSITIONS",
    "plan_sessions",
]

#: iscsid's ``DISC_DEF_POLL_INVL``: a SendTargets ``discoveryd_poll_inval`` below 0.
DEFAULT_POLL_INTERVAL = 30.0
#: Seconds before a failed discovery (or login) of a record without a poll interval
#: (iSNS, SCNs only) is tried again (iscsid's registration retry is 5 s).
RETRY_INTERVAL = 5.0


@dataclass(frozen=True, slots=True)
class Schedule:
    """How a record is re-discovered: every ``interval`` seconds (None: never by
    timer), once only, and whether the iSNS server's SCNs are asked for."""

    interval: float | None
    once: bool = False
    scn: bool = False

    @classmethod
    def for_record(cls, kind: str, poll_inval: int) -> Schedule:
        """``kind`` is ``sendtargets`` or ``isns`` (usr/discoveryd.c
        ``do_st_disc_and_login``, ``isns_scn_recv``, ``isns_register_objs``)."""
        if kind == "isns":
            if poll_inval == 0:
                return cls(None, once=True)
            return cls(float(poll_inval) if poll_inval > 0 else None, scn=True)
        if poll_inval == 0:
            return cls(None, once=True)
        return cls(float(poll_inval) if poll_inval > 0 else DEFAULT_POLL_INTERVAL)

    def refreshing(self, period: int | None) -> Schedule:
        """This schedule, polling often enough to keep an iSNS registration of
        ``period`` seconds alive: every half period at most (any message refreshes
        it, RFC 4171 §6.2.6; usr/discoveryd.c ``isns_setup_registration_refresh``)."""
        if not period or self.once:
            return self
        half = float(period // 2 or period)
        interval = half if self.interval is None else min(self.interval, half)
        return Schedule(interval, once=self.once, scn=self.scn)


class State(enum.Enum):
    WAITING = "waiting"  # for the timer or an SCN
    RUNNING = "running"  # a discovery is in flight
    RUNNING_AGAIN = "running-again"  # in flight, and an SCN asked for another
    DONE = "done"  # a run-once record ran
    STOPPED = "stopped"


class Input(enum.Enum):
    DUE = "due"  # the poll interval elapsed (or the first run)
    SCN = "scn"  # the iSNS server announced a change
    FINISHED = "finished"  # the discovery and its logins/logouts ended well
    FAILED = "failed"  # the discovery, or a login it asked for, failed
    STOP = "stop"


class Effect(enum.Enum):
    NONE = "none"
    RUN = "run"  # start a discovery
    ARM = "arm"  # set the timer to now + interval (or finish a run-once record)
    RETRY = "retry"  # as ARM, but a record without interval retries after RETRY_INTERVAL


#: Every (state, input) pair; a pair not here cannot happen (a LookupError says so).
TRANSITIONS: dict[tuple[State, Input], tuple[Effect, State]] = {
    (State.WAITING, Input.DUE): (Effect.RUN, State.RUNNING),
    (State.WAITING, Input.SCN): (Effect.RUN, State.RUNNING),
    (State.WAITING, Input.STOP): (Effect.NONE, State.STOPPED),
    (State.RUNNING, Input.DUE): (Effect.NONE, State.RUNNING),
    (State.RUNNING, Input.SCN): (Effect.NONE, State.RUNNING_AGAIN),
    (State.RUNNING, Input.FINISHED): (Effect.ARM, State.WAITING),
    (State.RUNNING, Input.FAILED): (Effect.RETRY, State.WAITING),
    (State.RUNNING, Input.STOP): (Effect.NONE, State.STOPPED),
    (State.RUNNING_AGAIN, Input.DUE): (Effect.NONE, State.RUNNING_AGAIN),
    (State.RUNNING_AGAIN, Input.SCN): (Effect.NONE, State.RUNNING_AGAIN),
    (State.RUNNING_AGAIN, Input.FINISHED): (Effect.RUN, State.RUNNING),
    (State.RUNNING_AGAIN, Input.FAILED): (Effect.RUN, State.RUNNING),
    (State.RUNNING_AGAIN, Input.STOP): (Effect.NONE, State.STOPPED),
    (State.DONE, Input.DUE): (Effect.NONE, State.DONE),
    (State.DONE, Input.SCN): (Effect.NONE, State.DONE),
    (State.DONE, Input.STOP): (Effect.NONE, State.STOPPED),
    (State.STOPPED, Input.DUE): (Effect.NONE, State.STOPPED),
    (State.STOPPED, Input.SCN): (Effect.NONE, State.STOPPED),
    (State.STOPPED, Input.FINISHED): (Effect.NONE, State.STOPPED),
    (State.STOPPED, Input.FAILED): (Effect.NONE, State.STOPPED),
    (State.STOPPED, Input.STOP): (Effect.NONE, State.STOPPED),
}


@dataclass
class RecordPoller:
    """One discovery record's poll state on an injected clock (h11's timer shape:
    :meth:`get_timer` says when, :meth:`handle_timer` is called then).  Each method
    returns True when the caller must start a discovery now."""

    schedule: Schedule
    state: State = State.WAITING
    _due: float | None = 0.0  # the first discovery at once, as iscsid
    runs: int = 0

    def get_timer(self) -> float | None:
        """When :meth:`handle_timer` is next due (None: no timer)."""
        return self._due if self.state is State.WAITING else None

    def handle_timer(self, now: float) -> bool:
        if self._due is None or now < self._due:
            return False
        return self._feed(Input.DUE, now)

    def scn(self, now: float) -> bool:
        """The server announced a change: discover at once (or right after the run in
        flight)."""
        return self._feed(Input.SCN, now)

    def finished(self, now: float, *, failed: bool = False) -> bool:
        """The discovery ended; ``failed``: it, or a login it asked for, failed -- tried
        again at the next interval, or after :data:`RETRY_INTERVAL` when the record has
        none (SCN-only iSNS: the SCN that announced a target may come before the target
        accepts logins).  A run-once record is not retried (iscsid's neither)."""
        return self._feed(Input.FAILED if failed else Input.FINISHED, now)

    def stop(self) -> None:
        self._feed(Input.STOP, 0.0)

    def _feed(self, event: Input, now: float) -> bool:
        effect, self.state = TRANSITIONS[(self.state, event)]
        if effect is Effect.RUN:
            self._due = None
            self.runs += 1
            return True
        if effect in (Effect.ARM, Effect.RETRY):
            if self.schedule.once:
                self.state = State.DONE
            interval = self.schedule.interval
            if interval is None and effect is Effect.RETRY:
                interval = RETRY_INTERVAL
            self._due = None if interval is None or self.schedule.once else now + interval
        return False


# -- sessions -----------------------------------------------------------------------------

#: A portal as discoveryd compares them: (target, address, port, iface name).
PortalKey = tuple[str, str, int, str]


@dataclass(frozen=True)
class SessionPlan:
    """What one discovery does: log in to ``login``, log out of ``logout``; ``tracked``
    is the record's portal list afterwards (iscsid's ``iscsi_targets``)."""

    login: tuple[PortalKey, ...]
    logout: tuple[PortalKey, ...]
    tracked: frozenset[PortalKey] = field(default_factory=frozenset)


def plan_sessions(
    tracked: Iterable[PortalKey],
    returned: Iterable[PortalKey],
    with_session: Iterable[PortalKey],
) -> SessionPlan:
    """iscsid's ``update_sessions``: every returned portal without a session is logged
    in (whatever its record's ``node.startup``: discoveryd logs in what it finds); a
    portal returned by an earlier discovery of this record and not by this one is logged
    out if it has a session; the returned portals are tracked from now on."""
    before, now, running = frozenset(tracked), list(dict.fromkeys(returned)), set(with_session)
    now_set = frozenset(now)
    stale = sorted(k for k in before - now_set if k in running)
    return SessionPlan(
        login=tuple(k for k in now if k not in running),
        logout=tuple(stale),
        tracked=now_set,
    )
