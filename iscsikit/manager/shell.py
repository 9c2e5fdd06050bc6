"""What the two session shells share beyond the command routing: the asyncio
:class:`~iscsikit.manager.managed.ManagedSession` and the blocking
:class:`~iscsikit.manager.blocking.BlockingManagedSession` carry out the same
:class:`~iscsikit.manager.policy.SessionPolicy` and differ only in how they wait (an
event loop, or the caller's thread).  :class:`SessionShell` holds the state both keep and
the steps both take the same way: which portal a login tries (failover), what a failed
or a successful login attempt means for the policy, what a connection's event means,
the I/O actions, and the counters kept across connections.  No I/O here.
"""

from __future__ import annotations

import abc
import contextlib
import logging
from collections.abc import Callable
from typing import Any, Generic, Protocol, TypeVar

from iscsikit.errors import ConnectionFailedError, IscsiError
from iscsikit.manager.policy import Action, Input, SessionPolicy, State
from iscsikit.manager.recovery import CommandRouter, is_fatal, refusal_of
from iscsikit.manager.spec import SessionSettings
from iscsikit.plugin.transport import TransportSession
from iscsikit.proto.address import Portal
from iscsikit.proto.ffp import ConnectionFailed, LogoutRequested

__all__ = ["SessionShell"]

log = logging.getLogger("iscsikit.manager")


class _Channel(Protocol):
    """What a shell needs of a connection's command channel (either kind)."""

    on_event: Any

    def statistics(self) -> Any: ...

    def submit(self, task: Any) -> None: ...

    @property
    def closed(self) -> bool: ...


_C = TypeVar("_C", bound=_Channel)


class SessionShell(abc.ABC, Generic[_C]):
    """One session's settings, policy and current connection (see the module doc)."""

    io: CommandRouter[Any]

    def __init__(self, settings: SessionSettings, sid: int) -> None:
        self.settings = settings
        self.sid = sid
        self.policy = SessionPolicy(
            login_retries=max(settings.retries, 0),
            retry_delay=max(settings.retry_delay, 0.0),
            replacement_timeout=settings.replacement_timeout,
        )
        self.transport_session: TransportSession | None = None
        self.channel: _C | None = None
        #: The negotiated keys of the current (or last) connection.
        self.params: dict[str, str] = {}
        self.last_error: IscsiError | None = None
        self._logout_error: IscsiError | None = None
        self._drain_within = 0.0
        self._past_stats: dict[str, int] = {}
        self._failover_index = 0
        #: The portal of the current (or last) connection.
        self.current_portal: Portal | None = None
        #: Whether another session of this target is logged in at a portal now (set by
        #: the manager that lists the sessions): a recovery does not fail over there.
        self.portal_taken: Callable[[Portal], bool] = lambda portal: False

    @abc.abstractmethod
    def _feed(self, event: Input, *, time2wait: float | None = None) -> None:
        """Hand ``event`` to the policy and carry out what it says."""

    # -- reading -------------------------------------------------------------------------

    @property
    def state(self) -> State:
        return self.policy.state

    def statistics(self) -> dict[str, int]:
        """The connection counters (``struct iscsi_stats`` names) over every connection
        this session had."""
        totals = dict(self._past_stats)
        if self.channel is not None:
            for key, value in self.channel.statistics().items():
                totals[key] = totals.get(key, 0) + value
        return totals

    def refusal(self) -> IscsiError | None:
        """Why a new command fails at once, or None when it may be sent or held."""
        return refusal_of(self.policy, self.sid, self.settings.replacement_timeout)

    def recovers(self) -> bool:
        """Whether a command interrupted now is held for re-issue (else it fails)."""
        return self.refusal() is None

    # -- login attempts ------------------------------------------------------------------

    def _next_portal(self) -> Portal:
        """The first login uses the record's portal; a recovery starts at the preferred
        one and moves along :mod:`~iscsikit.manager.failover`'s order per failed try."""
        if self.policy.state is State.LOGGING_IN:
            return self.settings.portal
        portals = self.settings.recovery_portals
        for step in range(len(portals)):
            portal = portals[(self._failover_index + step) % len(portals)]
            # Another session of the target on that portal is another path to the same
            # LUNs (multipath): failing over there would leave two paths on one portal.
            if portal == self.settings.portal or not self.portal_taken(portal):
                return portal
        return self.settings.portal

    def _login_failed(self, exc: IscsiError, portal: Portal | None = None) -> None:
        """A login attempt (at ``portal``; None: after the login, opening the data path)
        failed."""
        self.last_error = exc
        if portal is None:
            self._feed(Input.LOGIN_FAILED)
            return
        log.info("session %d: login to %s failed: %s", self.sid, portal, exc)
        if self.policy.state is State.RECONNECTING:
            self._failover_index += 1
        self._feed(Input.LOGIN_FATAL if is_fatal(exc) else Input.LOGIN_FAILED)

    def _logged_in(self, inner: TransportSession, channel: _C, portal: Portal) -> None:
        """A login attempt at ``portal`` succeeded and its data path is open."""
        self.transport_session = inner
        self.channel = channel
        self.params = dict(inner.params)
        with contextlib.suppress(ValueError):
            self.policy.time2wait = float(self.params.get("DefaultTime2Wait", "2"))
        channel.on_event = lambda event: self._on_event(channel, event)
        self._failover_index = 0  # the next recovery starts at the preferred portal again
        self.current_portal = portal
        if portal != self.settings.portal:
            log.warning("session %d: failed over to %s", self.sid, portal)
        self._feed(Input.LOGIN_OK)

    # -- the connection's events -----------------------------------------------------------

    def _on_event(self, channel: _C, event: object) -> None:
        """The connection's event, as the driver reports it (from inside its I/O)."""
        if channel is self.channel:
            self._target_event(event)

    def _target_event(self, event: object) -> None:
        if isinstance(event, ConnectionFailed):
            self.last_error = event.error
            log.warning("session %d: %s", self.sid, event.error)
            self._feed(Input.CONN_FAILED, time2wait=event.time2wait or None)
        elif isinstance(event, LogoutRequested):
            self._drain_within = max(float(event.within) - 1.0, 1.0)
            log.info("session %d: the target asks for a logout within %d s", self.sid,
                     event.within)  # fmt: skip
            self._feed(Input.TARGET_LOGOUT)

    # -- actions both shells carry out alike ------------------------------------------------

    def _apply_io(self, action: Action) -> bool:
        """HOLD_IO / RESUME_IO / FAIL_IO; False for any other action."""
        if action is Action.HOLD_IO:
            self.io.attach(None)
        elif action is Action.RESUME_IO:
            self.io.attach(self.channel)
            self.io.resume()
        elif action is Action.FAIL_IO:
            refused = self.refusal() or ConnectionFailedError(f"session {self.sid} is down")
            self.io.fail_held(refused)
        else:
            return False
        return True

    def _retire_connection(self) -> tuple[_C | None, TransportSession | None]:
        """Take the current connection out of service (its counters kept); the caller
        closes what is returned."""
        channel, self.channel = self.channel, None
        self.io.attach(None)
        inner, self.transport_session = self.transport_session, None
        if channel is not None:
            for key, value in channel.statistics().items():
                self._past_stats[key] = self._past_stats.get(key, 0) + value
            channel.on_event = None
        return channel, inner
