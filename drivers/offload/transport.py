"""The offload transports' shared implementation: hosts, ports, endpoint, login.

An offload HBA is a SCSI host whose driver (qla4xxx, cxgb3i, cxgb4i, bnx2i, be2iscsi,
qedi) carries the connection: iscsid asks the kernel for an endpoint *through that host*
(EP_CONNECT_THROUGH_HOST, then EP_POLL), makes the session on it (CREATE_BOUND_SESSION)
and logs in through the kernel as for iser (:class:`~iscsikit_drivers.kerneltcp.
KernelSession`).  Each driver is a thin subclass of :class:`OffloadTransport` naming its
kernel transport, its ``proc_name`` and the ``caps`` its kernel driver reports.

The hosts a driver serves are the SCSI hosts whose ``proc_name`` is the driver's, under
the root (``ISCSIKIT_ROOT``: a simulated tree in tests); the iface a record is bound to
names its host by ``iface.hwaddress`` (open-iscsi's ``iscsi_sysfs_get_host_no_from_hwinfo``).
NETLINK_ISCSI is reached through a channel factory (:mod:`.channel`).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import ClassVar

from iscsikit import net
from iscsikit.config.paths import resolve_root
from iscsikit.errors import (
    ConnectionFailedError,
    InvalidParameterError,
    NotSupportedError,
)
from iscsikit.netlink.constants import Capability as KernelCap
from iscsikit.netlink.wire import ParamAttr
from iscsikit.plugin import Capability, ConnectSpec, TransportRegistry, hookimpl
from iscsikit.plugin.transport import OffloadDriver, OffloadPort
from iscsikit.proto.login import TargetRedirected
from iscsikit.proto.sendtargets import DiscoveredTarget
from iscsikit.sysfs import IscsiHost, SysfsContext

from ..kerneltcp.endpoint import Connector  # noqa: TID252
from ..kerneltcp.events import KernelEvents, shared_events  # noqa: TID252
from ..kerneltcp.kernel import KernelSession, transport_handle  # noqa: TID252
from ..kerneltcp.transport import (  # noqa: TID252
    KernelTcpSession,
    KernelTransport,
    kernel_settings,
)
from .channel import SEAM_VARIABLE, ChannelFactory, default_channel, uip_channel
from .connector import PathAnsweringConnector, ThroughHostConnector
from .discovery import DiscoverySession, KernelPduConnection
from .host import OffloadHost
from .ifacecfg import net_config_attrs
from .session import HbaKernelSession

__all__ = ["OffloadTransport", "offload_capabilities", "plugin_hooks"]

#: One EP_POLL waits at most this long in the kernel (as kerneltcp's connector).
_POLL_SLICE_MS = 100


def offload_capabilities(kernel_caps: int, *, ipv6: bool = True) -> frozenset[Capability]:
    """What a driver whose kernel ``caps`` are ``kernel_caps`` offers iscsikit: login
    through the kernel to a block device, SendTargets through the HBA when it has
    CAP_TEXT_NEGO, the digests its caps name, IPv6 if it has it."""
    caps = {Capability.LOGIN, Capability.BLOCK_DEVICE}
    if kernel_caps & KernelCap.TEXT_NEGO:
        caps.add(Capability.SENDTARGETS)
    if kernel_caps & KernelCap.HDRDGST:
        caps.add(Capability.HEADER_DIGEST)
    if kernel_caps & KernelCap.DATADGST:
        caps.add(Capability.DATA_DIGEST)
    if ipv6:
        caps.add(Capability.IPV6)
    return frozenset(caps)


class OffloadTransport(KernelTransport, OffloadDriver):
    """An offload HBA driver; subclasses set the names and :attr:`kernel_caps`.

    It implements :class:`~iscsikit.plugin.transport.OffloadDriver` (the seam the CLI's
    host and iface modes use), its hosts :class:`~iscsikit.plugin.transport.OffloadHostOps`.
    """

    #: ``scsi_host/hostH/proc_name`` of the driver's hosts.
    proc_name: ClassVar[str] = ""
    #: The ``caps`` the kernel driver reports in ``class/iscsi_transport/<name>/caps``.
    kernel_caps: ClassVar[int] = 0
    #: The driver asks iscsiuio for the next hop (PATH_REQ) and pings through it
    #: (bnx2i, qedi: :mod:`.connector`).
    uses_iscsiuio: ClassVar[bool] = False

    def __init__(
        self,
        *,
        channel_factory: ChannelFactory = default_channel,
        root: Path | None = None,
        events: KernelEvents | None = None,
    ) -> None:
        self.channel_factory = channel_factory
        self._root = root
        self._events = events

    def at_root(self, root: Path) -> OffloadTransport:
        """The same driver reading the tree under ``root`` (the CLI's ``ISCSIKIT_ROOT``)."""
        return type(self)(channel_factory=self.channel_factory, root=root, events=self._events)

    def net_config(self, record: Mapping[str, str]) -> tuple[ParamAttr, ...]:
        """SET_IFACE_PARAMS attributes for an iface record (:mod:`.ifacecfg`)."""
        return net_config_attrs(record)

    @property
    def root(self) -> Path:
        """The filesystem root (``ISCSIKIT_ROOT`` unless given)."""
        return resolve_root() if self._root is None else self._root

    # -- hosts and ports -----------------------------------------------------------------

    def hosts(self) -> list[IscsiHost]:
        """This driver's SCSI hosts, by host number."""
        found = SysfsContext(self.root).hosts()
        return [h for h in found if h.proc_name == self.proc_name]

    def ports(self) -> list[OffloadPort]:
        """One port per host with a MAC address (``iscsikit_offload_ports``)."""
        out = []
        for host in self.hosts():
            mac = host.hwaddress
            if not mac or mac == "(null)":
                continue
            netdev = host.netdev if host.netdev not in (None, "(null)") else ""
            ip = host.ipaddress if host.ipaddress not in (None, "(null)") else ""
            out.append(OffloadPort(self.name, mac, netdev or "", ip or ""))
        return out

    def host_by_hwaddress(self, hwaddress: str) -> IscsiHost | None:
        """The host whose ``hwaddress`` is ``hwaddress`` (any case)."""
        wanted = hwaddress.lower()
        return next((h for h in self.hosts() if (h.hwaddress or "").lower() == wanted), None)

    def host(self, host_no: int) -> OffloadHost:
        """The NETLINK_ISCSI operations of host ``host_no``."""
        return OffloadHost(
            host_no, self.transport_handle(), self.channel_factory, via_iscsiuio=self.uses_iscsiuio
        )

    def transport_handle(self) -> int:
        root = self.root
        return transport_handle(
            self.kernel_name, sysfs=root / "sys", load=root == Path("/"), module=self.module
        )

    # -- sessions ------------------------------------------------------------------------

    def _host_no(self, record: Mapping[str, str]) -> int:
        mac = record.get("iface.hwaddress", "")
        host = self.host_by_hwaddress(mac) if mac and mac != "<empty>" else None
        if host is None:
            hosts = self.hosts()
            if mac or len(hosts) != 1:
                raise InvalidParameterError(
                    f"{self.name}: no host for iface hwaddress {mac or '(unset)'}"
                )
            host = hosts[0]
        return host.host_no

    def _event_reader(self) -> KernelEvents:
        """The process's kernel event reader, or one on the injected channels."""
        if self._events is None:
            real = self.channel_factory is default_channel and not os.environ.get(SEAM_VARIABLE)
            self._events = (
                shared_events() if real else KernelEvents(self.channel_factory(events=True))
            )
        return self._events

    def _connector(self, host_no: int) -> ThroughHostConnector:
        """The endpoint maker for host ``host_no`` (answering PATH_REQ for iscsiuio's
        drivers when iscsiuio is not there)."""
        if not self.uses_iscsiuio:
            return ThroughHostConnector(host_no)
        host = next((h for h in self.hosts() if h.host_no == host_no), None)
        source = (host.ipaddress if host is not None else None) or ""
        return PathAnsweringConnector(
            host_no,
            root=self.root,
            source=source,
            events=lambda **_: uip_channel(self.channel_factory),
            requests=self.channel_factory,
        )

    def connector(self) -> Connector:
        raise NotSupportedError(f"{self.name}: the endpoint is made through the iface's host")

    def login(self, spec: ConnectSpec) -> KernelTcpSession | TargetRedirected:
        """kerneltcp's login, on an endpoint made through the iface's host, with this
        driver's channels and event reader."""
        kernel = self._login(spec, HbaKernelSession)
        if isinstance(kernel, TargetRedirected):
            return kernel
        assert isinstance(kernel, HbaKernelSession)
        kernel.channels = self.channel_factory
        return KernelTcpSession(kernel, spec)

    def _login(
        self, spec: ConnectSpec, cls: type[KernelSession]
    ) -> KernelSession | TargetRedirected:
        """``cls.login`` (kerneltcp's) through the iface's host: a started session or
        its redirect; nothing left in the kernel on a failure or a redirect."""
        connector = self._connector(self._host_no(spec.record))
        handle = self.transport_handle()
        events = self._event_reader()
        return cls.login(
            spec,
            kernel_settings(spec),
            channel=self.channel_factory(),  # the session's from here on
            handle=handle,
            connector=connector,
            events=events,
        )

    def adopt(self, sid: int, spec: ConnectSpec) -> KernelTcpSession:
        """Take over kernel session ``sid`` on one of this driver's hosts (a daemon's
        restart): found under the root as the transport class shows it, its
        reconnections made through that host (kerneltcp's ``adopt``, on this driver's
        channel factory)."""
        found = SysfsContext(self.root).session(sid)
        host = None if found is None or found.host_no is None else found.host_no
        if host is None or host not in {h.host_no for h in self.hosts()}:
            raise ConnectionFailedError(f"{self.name}: no kernel session {sid} on its hosts")
        conn = found.connection() if found is not None else None
        handle = self.transport_handle()
        events = self._event_reader()
        connector = self._connector(host)
        kernel = HbaKernelSession.adopt(
            sid,
            host,
            conn.cid if conn is not None else 0,
            kernel_settings(spec),
            channel=self.channel_factory(),
            handle=handle,
            events=events,
            connector=connector,
        )
        assert isinstance(kernel, HbaKernelSession)
        kernel.channels = self.channel_factory
        return KernelTcpSession(kernel, spec)

    def discover_sendtargets(
        self, spec: ConnectSpec, query: str = "All"
    ) -> list[DiscoveredTarget] | TargetRedirected:
        """SendTargets over a kernel discovery session through the iface's host, as
        usr/discovery.c does for a CAP_TEXT_NEGO driver (:mod:`.discovery`)."""
        if not self.kernel_caps & KernelCap.TEXT_NEGO:
            raise NotSupportedError(f"{self.name}: the driver cannot carry Text PDUs")
        kernel = self._login(spec, DiscoverySession)
        if isinstance(kernel, TargetRedirected):
            return kernel
        assert isinstance(kernel, DiscoverySession) and kernel.accepted is not None
        try:
            conn = KernelPduConnection(kernel, spec.portal)
            state = net.session_state(spec, kernel.accepted)
            deadline = net.deadline_after(spec.timeouts.response)
            targets = net.sendtargets(conn, state, deadline, query)
        except BaseException:
            kernel.destroy()
            raise
        # The logout's failure costs no targets (as net.discover_sendtargets).
        with contextlib.suppress(Exception):
            kernel.logout(spec.timeouts.logout)
        return targets


def plugin_hooks(
    cls: type[OffloadTransport],
) -> tuple[Callable[[TransportRegistry], None], Callable[[Path], list[OffloadPort]]]:
    """The two hook implementations of the plugin module of driver ``cls``: register it,
    and report the ports of its hosts under the root the core passes.  A plugin module
    binds them to the hook names::

        iscsikit_register_transports, iscsikit_offload_ports = plugin_hooks(MyTransport)
    """

    @hookimpl
    def iscsikit_register_transports(registry: TransportRegistry) -> None:
        registry.register(cls)

    @hookimpl
    def iscsikit_offload_ports(root: Path) -> list[OffloadPort]:
        return cls(root=root).ports()

    return iscsikit_register_transports, iscsikit_offload_ports
