"""The ``tcp`` transport: what the session manager sees of the kernel's iscsi_tcp.

:class:`KernelTransport` is any kernel transport driven over NETLINK_ISCSI as iscsid
drives it; a subclass names the kernel transport, its module and its connect step (a
:class:`~.endpoint.Connector`).  :class:`KernelTcpTransport` is iscsi_tcp, registered
under the kernel's own transport name, so a record whose ``iface.transport_name`` is
``tcp`` (the ``default`` iface) logs in through the kernel when the kernel offers it
(the rule in :mod:`iscsikit.manager.transports`); ``iscsikit_drivers.iser`` is another.
SendTargets discovery is a userspace TCP exchange, as in iscsid (:mod:`iscsikit.net`).

:class:`KernelTcpSession` is the manager's handle on one :class:`~.kernel.KernelSession`
of any kernel transport: login, recovery in place (:meth:`~KernelTcpSession.suspend`,
:meth:`~KernelTcpSession.reconnect`), logout, statistics, adoption.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from typing import Any

from iscsikit import net
from iscsikit.errors import ConnectionFailedError, NotSupportedError
from iscsikit.netlink import ConnError
from iscsikit.netlink.events import ConnFailed
from iscsikit.plugin import (
    Capability,
    ConnectSpec,
    KernelTransportSession,
    Transport,
)
from iscsikit.proto.ffp import ConnectionFailed
from iscsikit.proto.login import TargetRedirected
from iscsikit.proto.sendtargets import DiscoveredTarget

from .endpoint import Connector, TcpConnector
from .kernel import KernelSession, transport_handle
from .params import KernelSettings

__all__ = ["KernelTcpSession", "KernelTcpTransport", "KernelTransport", "kernel_settings"]


def _int(record: Mapping[str, str], key: str, default: int) -> int:
    try:
        return int(record.get(key, "") or default)
    except ValueError:
        return default


def kernel_settings(spec: ConnectSpec) -> KernelSettings:
    """What the kernel session needs beyond the login, from the record as iscsid reads
    it (``node.session.cmds_max``, ``queue_depth``, ``iscsi.FastAbort``, the iface)."""
    record = spec.record
    return KernelSettings(
        recovery_tmo=max(int(spec.replacement_timeout), 0),
        cmds_max=_int(record, "node.session.cmds_max", spec.queue_depth),
        queue_depth=_int(record, "node.session.queue_depth", 32),
        fast_abort=record.get("node.session.iscsi.FastAbort", "Yes").lower() != "no",
        iface_name=record.get("iface.iscsi_ifacename", "") or "default",
    )


class KernelTcpSession(KernelTransportSession):
    """One kernel session as a :class:`~iscsikit.plugin.KernelTransportSession`."""

    def __init__(self, kernel: KernelSession, spec: ConnectSpec) -> None:
        self.kernel = kernel
        self.kernel_sid = kernel.sid
        self.host_no = kernel.host_no
        self._callback: Callable[[Any], None] | None = None
        self._missed: ConnectionFailed | None = None
        self._lock = threading.Lock()
        self._closed = False
        self.took_login(spec, kernel.accepted)
        kernel.on_conn_error = self._conn_failed

    def _conn_failed(self, event: ConnFailed) -> None:
        """From the event reader: the current connection failed."""
        try:
            reason = ConnError(event.error).name
        except ValueError:
            reason = str(event.error)
        error = ConnectionFailedError(
            f"kernel session {self.kernel_sid}: connection failed ({reason})"
        )
        failure = ConnectionFailed(error=error, time2wait=0)
        with self._lock:
            callback = self._callback
            if callback is None:
                self._missed = failure
                return
        callback(failure)

    # -- KernelTransportSession --------------------------------------------------------------

    def watch(self, callback: Callable[[Any], None] | None) -> None:
        with self._lock:
            self._callback = callback
            missed, self._missed = self._missed, None
        if callback is not None and missed is not None:
            callback(missed)

    def suspend(self) -> None:
        self.kernel.suspend()

    def reconnect(self, spec: ConnectSpec) -> KernelTcpSession | TargetRedirected:
        with self._lock:
            self._missed = None  # about the connection being replaced
        result = self.kernel.connect(spec)
        if isinstance(result, TargetRedirected):
            return result
        self.took_login(spec, result)
        return self

    def scan(self) -> None:
        self.kernel.scan()

    def statistics(self) -> Mapping[str, int]:
        if self._closed:
            return {}
        return self.kernel.stats()

    def release(self) -> None:
        self._closed = True
        self.kernel.release()

    # -- TransportSession ----------------------------------------------------------------

    def logout(self, timeout: float | None = None) -> None:
        if self._closed:
            return
        self._closed = True
        self.kernel.logout(timeout or 15.0)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self.kernel.destroy()

    def ping(self, timeout: float | None = None) -> float:
        raise NotSupportedError("the kernel sends the NOP-Outs of a kernel session")

    @property
    def closed(self) -> bool:
        return self._closed


class KernelTransport(Transport):
    """A kernel transport (``/sys/class/iscsi_transport/<kernel_name>``) driven as iscsid
    drives it; subclasses set the names and :meth:`connector`."""

    #: The kernel's name of the transport.
    kernel_name = "tcp"
    #: The module that registers it (None: ``iscsi_<kernel_name>``).
    module: str | None = None

    def connector(self) -> Connector:
        """The connect step of this transport's connections."""
        return TcpConnector()

    def transport_handle(self) -> int:
        """The kernel's handle of the transport (its module loaded first if need be)."""
        return transport_handle(self.kernel_name, module=self.module)

    def login(self, spec: ConnectSpec) -> KernelTcpSession | TargetRedirected:
        kernel = KernelSession.login(
            spec,
            kernel_settings(spec),
            handle=self.transport_handle(),
            connector=self.connector().bound(spec.binding),
        )
        if isinstance(kernel, TargetRedirected):
            return kernel
        return KernelTcpSession(kernel, spec)

    def adopt(self, sid: int, spec: ConnectSpec) -> KernelTcpSession:
        from iscsikit.sysfs import SysfsContext

        found = SysfsContext().session(sid)
        if found is None or found.host_no is None:
            raise ConnectionFailedError(f"kernel session {sid} is gone")
        conn = found.connection()
        cid = conn.cid if conn is not None else 0
        kernel = KernelSession.adopt(
            sid,
            found.host_no,
            cid,
            kernel_settings(spec),
            handle=self.transport_handle(),
            connector=self.connector().bound(spec.binding),
        )
        return KernelTcpSession(kernel, spec)

    def discover_sendtargets(
        self, spec: ConnectSpec, query: str = "All"
    ) -> list[DiscoveredTarget] | TargetRedirected:
        return net.discover_sendtargets(spec, query)


class KernelTcpTransport(KernelTransport):
    name = "tcp"
    description = "the kernel's iscsi_tcp over NETLINK_ISCSI (sessions are SCSI hosts)"
    capabilities = frozenset(
        {
            Capability.SENDTARGETS,
            Capability.LOGIN,
            Capability.HEADER_DIGEST,
            Capability.DATA_DIGEST,
            Capability.IPV6,
            Capability.BLOCK_DEVICE,
        }
    )
