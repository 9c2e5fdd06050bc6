"""A session whose data path the kernel carries, kept by the same policy as every other.

:class:`KernelManagedSession` is a :class:`~iscsikit.manager.managed.ManagedSession`
whose driver returns a :class:`~iscsikit.plugin.KernelTransportSession` (the kernel's
iscsi_tcp, iser, offload HBAs): the kernel owns the SCSI host and its disks, and the
session keeps the kernel's session id for its whole life.  What differs from a
userspace session is only what the policy's actions mean:

=============  ==========================================================================
action         for a kernel session
=============  ==========================================================================
LOGIN          first: the driver creates the kernel session and logs in; later
               (recovery): a new connection of the *same* kernel session
               (:meth:`~iscsikit.plugin.KernelTransportSession.reconnect`)
DROP           stop the failed connection for recovery (``suspend``: the kernel holds
               the SCSI commands for recovery_tmo = ``replacement_timeout`` and fails
               them after it, as the policy's FAIL_IO says)
LOGOUT         the driver's logout (the kernel removes the disks, sends the Logout)
CLOSE          destroy the kernel session, unless it was logged out already
=============  ==========================================================================

The driver reports a failed connection from its own thread; it is handed to the loop
and fed to the policy as CONN_FAILED, like a userspace connection's event.  I/O is the
kernel's: the session's :attr:`io` router stays empty.

:meth:`KernelManagedSession.adopt` takes over a kernel session a previous daemon made
(iscsid does the same after a restart); :meth:`~KernelManagedSession.release` lets go of
one without ending it, for the daemon's stop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping
from typing import Any

from iscsikit.errors import IscsiError, NotSupportedError, TransportError
from iscsikit.manager.connect import connect
from iscsikit.manager.login import attempt_login
from iscsikit.manager.managed import ManagedSession
from iscsikit.manager.policy import Input, State
from iscsikit.plugin.transport import AsyncCommandChannel, KernelTransportSession
from iscsikit.proto.address import Portal
from iscsikit.proto.login import TargetRedirected
from iscsikit.proto.task import ScsiTask, TmfTask

__all__ = ["KernelConnection", "KernelManagedSession"]

log = logging.getLogger("iscsikit.manager")


class KernelConnection(AsyncCommandChannel):
    """One connection of a kernel session as the shell sees it: events, statistics,
    logout; SCSI commands go through the kernel's block layer, not here."""

    def __init__(self, inner: KernelTransportSession) -> None:
        self.inner = inner
        self.on_event = None
        self._closed = False

    def submit(self, task: ScsiTask) -> None:
        raise NotSupportedError("a kernel session's commands go through its block devices")

    async def execute(self, task: ScsiTask) -> ScsiTask:
        raise NotSupportedError("a kernel session's commands go through its block devices")

    async def task_management(self, task: TmfTask) -> TmfTask:
        raise NotSupportedError("the kernel sends a kernel session's task management")

    def statistics(self) -> Mapping[str, int]:
        return {}  # the kernel counts across connections: KernelManagedSession.statistics

    async def logout(self) -> None:
        await asyncio.to_thread(self.inner.logout)
        self._closed = True

    def close(self) -> None:
        self._closed = True

    @property
    def closed(self) -> bool:
        return self._closed or self.inner.closed


class KernelManagedSession(ManagedSession):
    """See the module docstring."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.kernel: KernelTransportSession | None = None
        self._released = False

    @property
    def host_no(self) -> int | None:
        return self.kernel.host_no if self.kernel is not None else None

    def statistics(self) -> dict[str, int]:
        kernel = self.kernel
        if kernel is None or kernel.closed:
            return {}
        try:
            return dict(kernel.statistics())
        except IscsiError as exc:
            log.debug("session %d: statistics: %s", self.sid, exc)
            return {}

    # -- taking over and letting go ----------------------------------------------------------

    def adopt(self, inner: KernelTransportSession, *, failed: bool = False) -> None:
        """Own a running kernel session (``failed``: its connection is down already)."""
        self.kernel = inner
        self.sid = inner.kernel_sid
        self.policy.state = State.LOGGING_IN
        self._connected(inner, self.settings.portal)
        if failed:
            self._feed(Input.CONN_FAILED)

    def release(self) -> None:
        """Stop owning the session and leave it in the kernel (the daemon stops)."""
        if self.policy.finished:
            return
        self._released = True
        kernel, self.kernel = self.kernel, None
        self.drop()
        if kernel is not None:
            kernel.release()

    # -- the policy's actions ----------------------------------------------------------------

    async def _login_attempt(self) -> None:
        portal = self._next_portal()
        kernel = self.kernel
        try:
            if kernel is None:
                first = await asyncio.to_thread(connect, self.settings, retries=0, portal=portal)
                if not isinstance(first, KernelTransportSession):
                    first.close()
                    raise TransportError(f"{self.settings.transport} made no kernel session")
                self.kernel = kernel = first
                self.sid = first.kernel_sid
            else:
                await asyncio.to_thread(self._reconnect, kernel, portal)
        except IscsiError as exc:
            self._login_failed(exc, portal)
            return
        if self.policy.finished:  # dropped meanwhile
            self._close_kernel()
            return
        self._connected(kernel, portal)

    def _reconnect(self, kernel: KernelTransportSession, portal: Portal) -> None:
        def attempt(at: Portal) -> KernelTransportSession | TargetRedirected:
            return kernel.reconnect(self.settings.spec(at))

        attempt_login(attempt, portal, retries=0)

    def _connected(self, kernel: KernelTransportSession, portal: Portal) -> None:
        channel = KernelConnection(kernel)
        loop = self.loop

        def failed(event: object) -> None:  # the driver's thread
            with contextlib.suppress(RuntimeError):  # the loop is gone: nobody to tell
                loop.call_soon_threadsafe(self._kernel_event, channel, event)

        self._logged_in(kernel, channel, portal)
        kernel.watch(failed)

    def _kernel_event(self, channel: KernelConnection, event: object) -> None:
        if channel.on_event is not None:
            channel.on_event(event)

    def _drop_connection(self) -> None:
        channel, _inner = self._retire_connection()
        if channel is not None:
            channel.close()
        kernel = self.kernel
        if kernel is not None and not kernel.closed and not self._released:
            try:
                kernel.suspend()
            except IscsiError as exc:
                log.warning("session %d: stopping the connection: %s", self.sid, exc)

    def _close(self) -> None:
        super()._close()
        self._close_kernel()

    def _close_kernel(self) -> None:
        kernel = self.kernel
        if kernel is not None and not kernel.closed and not self._released:
            kernel.watch(None)
            kernel.close()
