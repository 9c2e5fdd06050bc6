"""A session the manager owns on an asyncio loop: login, keep, recover, logout.

:class:`ManagedSession` carries out what :class:`~iscsikit.manager.policy.SessionPolicy`
decides: it runs login attempts (the driver's blocking login in a worker thread, then
the connection moves onto the loop), listens to the connection's events, and arms the
policy's timers on the loop's clock.

Its :attr:`~ManagedSession.io` is a :class:`RecoveringChannel`: the command channel
every user of the session (AsyncLun, NBD exports) holds for the session's whole life.
A command interrupted by a failed connection is never completed with partial data:
it is held and re-issued, whole, on the next connection; commands submitted during
recovery wait with it; when ``replacement_timeout`` passes first, all of them fail
with :class:`~iscsikit.errors.ConnectionFailedError`, and so does new I/O until the
session is back.  A command interrupted more than ``reissue_limit`` times (one that
breaks every connection it is sent on) fails with its last error, as the kernel's sd
gives up after its retries.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Mapping
from typing import Any

from iscsikit.errors import ConnectionFailedError, IscsiError, LoginError, LogoutError
from iscsikit.manager.connect import connect
from iscsikit.manager.policy import Action, Input, State
from iscsikit.manager.recovery import (
    REISSUE_LIMIT,
    CommandRouter,
)
from iscsikit.manager.sessions import LunExport
from iscsikit.manager.shell import SessionShell
from iscsikit.manager.spec import SessionSettings
from iscsikit.plugin.transport import AsyncCommandChannel
from iscsikit.proto.task import PingTask, ScsiTask, TmfTask
from iscsikit.records.model import NodeRecord

__all__ = ["ManagedSession", "RecoveringChannel"]

log = logging.getLogger(__name__)


class RecoveringChannel(CommandRouter[AsyncCommandChannel], AsyncCommandChannel):
    """The session's commands, across its connections (see the module docstring and
    :class:`~iscsikit.manager.recovery.CommandRouter`)."""

    def __init__(self, session: ManagedSession) -> None:
        super().__init__(session, session.reissue_limit)
        self._managed = session
        self._idle = asyncio.Event()
        self._idle.set()

    def _inflight_changed(self) -> None:
        if self._inner:
            self._idle.clear()
        else:
            self._idle.set()

    async def drained(self, timeout: float) -> bool:
        """Wait until no command is in flight on the connection (at most ``timeout``)."""
        try:
            await asyncio.wait_for(self._idle.wait(), timeout)
        except TimeoutError:
            return False
        return True

    # -- AsyncCommandChannel --------------------------------------------------------------

    def submit(self, task: ScsiTask) -> None:
        self._send(task)

    async def execute(self, task: ScsiTask) -> ScsiTask:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        chained = task.callback

        def done(finished: ScsiTask) -> None:
            if chained is not None:
                chained(finished)
            if not future.done():
                future.set_result(None)

        task.callback = done
        self.submit(task)
        await future
        return task

    async def task_management(self, task: TmfTask) -> TmfTask:
        channel = self._channel
        if channel is None:
            raise ConnectionFailedError("the session is reconnecting")
        return await channel.task_management(task)

    async def ping(self, task: PingTask) -> PingTask:
        channel = self._channel
        if channel is None:
            raise ConnectionFailedError("the session is reconnecting")
        return await channel.ping(task)

    async def logout(self) -> None:
        await self._managed.logout()

    def statistics(self) -> Mapping[str, int]:
        return self._managed.statistics()

    def close(self) -> None:
        self._managed.drop()

    @property
    def closed(self) -> bool:
        return self._managed.policy.finished


class ManagedSession(SessionShell[AsyncCommandChannel]):
    """One session on the running event loop: its settings, policy, connection."""

    io: RecoveringChannel

    def __init__(
        self,
        settings: SessionSettings,
        *,
        sid: int = 0,
        on_change: Callable[[ManagedSession], None] | None = None,
        reissue_limit: int | None = REISSUE_LIMIT,
    ) -> None:
        super().__init__(settings, sid)
        #: How often one command is re-issued before its last error is reported.
        self.reissue_limit = reissue_limit
        self.on_change = on_change
        self.loop = asyncio.get_running_loop()
        self.io = RecoveringChannel(self)
        self._login_waiter: asyncio.Future[None] | None = None
        self._closed = asyncio.Event()
        self._timer: asyncio.TimerHandle | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._logout_task: asyncio.Task[None] | None = None
        #: The record the session was made from (None: made from API arguments).
        self.node: NodeRecord | None = None
        #: Its LUNs as the daemon serves them over NBD.
        self.exports: tuple[LunExport, ...] = ()

    # -- what users call ---------------------------------------------------------------------

    async def login(self) -> None:
        """Log in (retrying as the settings say); raises the last error on failure."""
        self._login_waiter = self.loop.create_future()
        self._feed(Input.START)
        await self._login_waiter

    async def logout(self) -> None:
        """Log out and end the session; idempotent.  Held I/O fails."""
        if not self.policy.finished:
            self._feed(Input.LOGOUT)
        await self._closed.wait()
        exchange = self._logout_task
        if exchange is not None and not exchange.done():
            # The session can close while the exchange is still unwinding (a timed-out
            # logout closes the connection, which fails it, before wait_for raises): its
            # error is known only once it ends (bounded by the logout timeout).
            await asyncio.wait([exchange])
        if self._logout_error is not None:
            error, self._logout_error = self._logout_error, None
            raise error

    def drop(self) -> None:
        """End the session without a logout (the connection is closed)."""
        if not self.policy.finished:
            self._apply([Action.FAIL_IO, Action.DROP, Action.CLOSE])
            self.policy.state = State.CLOSED

    async def wait_closed(self) -> None:
        await self._closed.wait()

    # -- the policy's actions -------------------------------------------------------------------

    def _feed(self, event: Input, *, time2wait: float | None = None) -> None:
        before = self.policy.state
        actions = self.policy.handle(event, self.loop.time(), time2wait=time2wait)
        if self.policy.state is not before or actions:
            log.debug("session %d: %s: %s -> %s", self.sid, event.value, before.value,
                      self.policy.state.value)  # fmt: skip
        self._apply(actions)
        self._arm()
        if self.on_change is not None and self.policy.state is not before:
            self.on_change(self)

    def _apply(self, actions: list[Action]) -> None:
        for action in actions:
            if action is Action.LOGIN:
                self._spawn(self._login_attempt())
            elif action is Action.REPORT_LOGGED_IN:
                if self._login_waiter is not None and not self._login_waiter.done():
                    self._login_waiter.set_result(None)
            elif action is Action.REPORT_FAILED:
                if self._login_waiter is not None and not self._login_waiter.done():
                    self._login_waiter.set_exception(
                        self.last_error or LoginError("the login was cancelled")
                    )
            elif self._apply_io(action):
                pass
            elif action is Action.DRAIN:
                self._spawn(self._drain())
            elif action is Action.LOGOUT:
                self._logout_task = self._spawn(self._logout_exchange())
            elif action is Action.DROP:
                self._drop_connection()
            elif action is Action.CLOSE:
                self._close()

    def _arm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        when = self.policy.deadline()
        if when is not None:
            self._timer = self.loop.call_at(when, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        before = self.policy.state
        self._apply(self.policy.handle_timer(self.loop.time()))
        self._arm()
        if self.on_change is not None and self.policy.state is not before:
            self.on_change(self)

    def _spawn(self, coro: Any) -> asyncio.Task[Any]:
        task = self.loop.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def _login_attempt(self) -> None:
        portal = self._next_portal()
        try:
            # One attempt (redirects followed); retries are the policy's.
            inner = await asyncio.to_thread(connect, self.settings, retries=0, portal=portal)
        except IscsiError as exc:
            self._login_failed(exc, portal)
            return
        try:
            channel = await inner.async_command_channel()
        except IscsiError as exc:
            inner.close()
            self._login_failed(exc)
            return
        self._logged_in(inner, channel, portal)

    async def _drain(self) -> None:
        await self.io.drained(self._drain_within or self.settings.timeouts.logout)
        self._feed(Input.DRAINED)

    async def _logout_exchange(self) -> None:
        channel = self.channel
        if channel is None:
            self._feed(Input.LOGOUT_DONE)
            return
        # Asked before the exchange, as the blocking twin does: a logout that times out in
        # the machine fails the connection first (CONN_FAILED moves the state on), and its
        # error must still reach the caller.
        user = self.policy.state is State.LOGGING_OUT
        try:
            await asyncio.wait_for(channel.logout(), self.settings.timeouts.logout)
        except (IscsiError, TimeoutError) as exc:
            if user:
                # A LogoutError (10) whatever failed under it, as the blocking twin's.
                if isinstance(exc, LogoutError):
                    self._logout_error = exc
                elif isinstance(exc, IscsiError):
                    self._logout_error = LogoutError(f"logout failed: {exc}")
                else:
                    self._logout_error = LogoutError(
                        f"logout timed out after {self.settings.timeouts.logout:g} s"
                    )
            self._feed(Input.CONN_FAILED)
            return
        self._feed(Input.LOGOUT_DONE)

    def _drop_connection(self) -> None:
        channel, inner = self._retire_connection()
        if channel is not None and not channel.closed:
            channel.close()
        if inner is not None:
            with contextlib.suppress(Exception):
                inner.close()

    def _close(self) -> None:
        self._drop_connection()
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self.io.fail_held(ConnectionFailedError(f"session {self.sid} is closed"))
        if self._login_waiter is not None and not self._login_waiter.done():
            self._login_waiter.set_exception(self.last_error or LoginError("logged out"))
        self._closed.set()
