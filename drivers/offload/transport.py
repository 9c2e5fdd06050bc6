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

import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import ClassVar

from iscsikit import net
from iscsikit.config.paths import resolve_root
from iscsikit.errors import (
    InvalidParameterError,
    NotSupportedError,
)
from iscsikit.netlink.constants import Capability as KernelCap
from iscsikit.netlink.messages import EpConnectThroughHost, Request
from iscsikit.netlink.wire import ParamAttr
from iscsikit.plugin import Capability, ConnectSpec, TransportRegistry, hookimpl
from iscsikit.plugin.transport import OffloadDriver, OffloadPort
from iscsikit.proto.address import Portal
from iscsikit.proto.login import TargetRedirected
from iscsikit.proto.sendtargets import DiscoveredTarget
from iscsikit.sysfs import IscsiHost, SysfsContext

from ..kerneltcp.endpoint import Connector, KernelEndpointConnector  # noqa: TID252
from ..kerneltcp.events import KernelEvents, shared_events  # noqa: TID252
from ..kerneltcp.kernel import KernelSession, transport_handle  # noqa: TID252
from ..kerneltcp.transport import (  # noqa: TID252
    KernelTcpSession,
    KernelTransport,
    kernel_settings,
)
from .channel import SEAM_VARIABLE, ChannelFactory, default_channel
from .host import OffloadHost
from .ifacecfg import net_config_attrs

__all__ = ["OffloadTransport", "ThroughHostConnector", "offload_capabilities", "plugin_hooks"]

#: One EP_POLL waits at most this long in the kernel (as kerneltcp's connector).
_POLL_SLICE_MS = 100


def offload_capabilities(kernel_caps: int, *, ipv6: bool = True) -> frozenset[Capability]:
    """What a driver whose kernel ``caps`` are ``kernel_caps`` offers iscsikit: login
    through the kernel to a block device, the digests its caps name, IPv6 if it has it.
    (SendTargets through the HBA, CAP_TEXT_NEGO's way, is not implemented.)"""
    caps = {Capability.LOGIN, Capability.BLOCK_DEVICE}
    if kernel_caps & KernelCap.HDRDGST:
        caps.add(Capability.HEADER_DIGEST)
    if kernel_caps & KernelCap.DATADGST:
        caps.add(Capability.DATA_DIGEST)
    if ipv6:
        caps.add(Capability.IPV6)
    return frozenset(caps)


class ThroughHostConnector(KernelEndpointConnector):
    """EP_CONNECT_THROUGH_HOST on SCSI host ``host_no`` (non-blocking), then EP_POLL
    until the endpoint is up, within the login deadline; the session is bound to it."""

    def __init__(self, host_no: int) -> None:
        self.host_no = host_no

    def endpoint_request(self, transport: int, portal: Portal) -> Request:
        return EpConnectThroughHost(
            transport_handle=transport, host_no=self.host_no, address=(portal.host, portal.port)
        )


class OffloadTransport(KernelTransport, OffloadDriver):
    """An offload HBA driver; subclasses set the names and :attr:`kernel_caps`.

    It implements :class:`~iscsikit.plugin.transport.OffloadDriver` (the seam the CLI's
    host and iface modes use), its hosts :class:`~iscsikit.plugin.transport.OffloadHostOps`.
    """

    #: ``scsi_host/hostH/proc_name`` of the driver's hosts.
    proc_name: ClassVar[str] = ""
    #: The ``caps`` the kernel driver reports in ``class/iscsi_transport/<name>/caps``.
    kernel_caps: ClassVar[int] = 0

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
        return OffloadHost(host_no, self.transport_handle(), self.channel_factory)

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

    def connector(self) -> Connector:
        raise NotSupportedError(f"{self.name}: the endpoint is made through the iface's host")

    def login(self, spec: ConnectSpec) -> KernelTcpSession | TargetRedirected:
        connector = ThroughHostConnector(self._host_no(spec.record))
        handle = self.transport_handle()
        channel = self.channel_factory()
        try:
            deadline = net.deadline_after(spec.timeouts.login)
            endpoint = connector.connect(channel, handle, spec.portal, deadline)
        except BaseException:
            channel.close()
            raise
        try:
            kernel = KernelSession.create(
                spec.login.cmdsn,
                kernel_settings(spec),
                channel=channel,
                handle=handle,
                events=self._event_reader(),
                connector=connector,
                endpoint=endpoint,
            )
        except BaseException:
            endpoint.close(clean=False)
            channel.close()
            raise
        try:
            result = kernel.connect(spec, endpoint)
        except BaseException:
            kernel.destroy()
            raise
        if isinstance(result, TargetRedirected):
            kernel.destroy()
            return result
        return KernelTcpSession(kernel, spec)

    def discover_sendtargets(
        self, spec: ConnectSpec, query: str = "All"
    ) -> list[DiscoveredTarget] | TargetRedirected:
        raise NotSupportedError(
            f"{self.name}: SendTargets through the HBA (CAP_TEXT_NEGO) is not implemented"
        )


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
