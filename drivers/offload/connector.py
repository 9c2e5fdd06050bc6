"""Endpoints through an offload host, and the PATH_REQ that bnx2i and qedi send.

:class:`ThroughHostConnector`: EP_CONNECT_THROUGH_HOST on the iface's SCSI host, then
kerneltcp's EP_POLL loop within the login deadline.

**bnx2i, qedi and iscsiuio.** These drivers do not resolve the route's next hop
themselves: on EP_CONNECT, cnic (bnx2i) / qedi send ISCSI_KEVENT_PATH_REQ (``struct
iscsi_path``: the destination, VLAN, MTU; host number in the event) to the netlink
group of iscsiuio (ISCSI_NL_GRP_UIP), and the offload connection waits until iscsiuio
answers with ISCSI_UEVENT_PATH_UPDATE carrying the next hop's MAC (iscsiuio/src/unix/
nic_nl.c, libs/cnic.c, libs/qedi.c); EP_POLL answers 0 until then.  With iscsiuio
running, it answers and :class:`PathAnsweringConnector` is a plain
:class:`ThroughHostConnector`.  Without it, :class:`PathAnsweringConnector` answers in
its place from the kernel's IPv4 neighbour table (``/proc/net/arp`` under the root): it
does not ARP, as iscsiuio does on the NIC.  A destination it finds no MAC for gets no
answer, so EP_POLL stays 0 and the login fails at its deadline, as iscsid's does when
nothing answers (ISCSI_ERR_TRANS_TIMEOUT, 8: "connection timed out").  Tested against
simulated hosts only (docs/offload.md).
"""

from __future__ import annotations

import contextlib
import ipaddress
import socket
import threading
from pathlib import Path

from iscsikit import net
from iscsikit.netlink.events import PathRequested
from iscsikit.netlink.messages import EpConnectThroughHost, PathUpdate, Request
from iscsikit.netlink.wire import IscsiPath
from iscsikit.proto.address import Portal

from ..kerneltcp.endpoint import KernelEndpoint, KernelEndpointConnector  # noqa: TID252
from ..kerneltcp.netlink import NetlinkChannel  # noqa: TID252
from .channel import ChannelFactory

__all__ = [
    "UIP_NAMESPACE",
    "PathAnsweringConnector",
    "ThroughHostConnector",
    "iscsiuio_running",
    "neighbour_mac",
]

#: iscsiuio's abstract AF_UNIX socket (open-iscsi's ISCSID_UIP_NAMESPACE).
UIP_NAMESPACE = "ISCSID_UIP_ABSTRACT_NAMESPACE"


def iscsiuio_running() -> bool:
    """Whether iscsiuio listens (iscsid's ``uip_connect``: a refused connect = not up)."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.connect("\0" + UIP_NAMESPACE)
    except OSError:
        return False
    finally:
        sock.close()
    return True


def neighbour_mac(root: Path, address: str) -> bytes | None:
    """The MAC the kernel's neighbour table has for IPv4 ``address`` (complete entries
    of ``<root>/proc/net/arp``), or None."""
    try:
        lines = (root / "proc/net/arp").read_text().splitlines()[1:]
    except OSError:
        return None
    for line in lines:
        fields = line.split()
        if len(fields) >= 4 and fields[0] == address and int(fields[2], 16) & 0x2:
            with contextlib.suppress(ValueError):
                mac = bytes.fromhex(fields[3].replace(":", ""))
                if len(mac) == 6 and mac != bytes(6):
                    return mac
    return None


class ThroughHostConnector(KernelEndpointConnector):
    """EP_CONNECT_THROUGH_HOST on SCSI host ``host_no`` (non-blocking), then EP_POLL
    until the endpoint is up, within the login deadline; the session is bound to it."""

    def __init__(self, host_no: int) -> None:
        self.host_no = host_no

    def endpoint_request(self, transport: int, portal: Portal) -> Request:
        return EpConnectThroughHost(
            transport_handle=transport, host_no=self.host_no, address=(portal.host, portal.port)
        )


class PathAnsweringConnector(ThroughHostConnector):
    """:class:`ThroughHostConnector` that answers the host's PATH_REQ when iscsiuio does
    not run (module docstring).  ``events`` makes a channel that hears iscsiuio's group
    (:func:`~.channel.uip_channel`); ``requests`` the one the answer is sent on."""

    def __init__(
        self,
        host_no: int,
        *,
        root: Path,
        source: str,
        events: ChannelFactory,
        requests: ChannelFactory,
    ) -> None:
        super().__init__(host_no)
        self.root = root
        self.source = source
        self.events = events
        self.requests = requests

    def connect(
        self, channel: NetlinkChannel, transport: int, portal: Portal, deadline: net.Deadline
    ) -> KernelEndpoint:
        if iscsiuio_running():
            return super().connect(channel, transport, portal, deadline)
        listener = self.events()
        done = threading.Event()
        answerer = threading.Thread(
            target=self._answer, args=(listener, transport, deadline, done), daemon=True,
            name=f"path-req-host{self.host_no}",
        )  # fmt: skip
        answerer.start()
        try:
            return super().connect(channel, transport, portal, deadline)
        finally:
            done.set()
            answerer.join(timeout=2.0)
            with contextlib.suppress(OSError):
                listener.close()

    def _answer(
        self,
        listener: NetlinkChannel,
        transport: int,
        deadline: net.Deadline,
        done: threading.Event,
    ) -> None:
        """Answer each PATH_REQ of this host until ``done`` (from its thread)."""
        while not done.is_set() and deadline.remaining() > 0:
            event = listener.wait_event(
                lambda e: isinstance(e, PathRequested) and e.host_no == self.host_no,
                min(0.2, max(0.0, deadline.remaining())),
            )
            if not isinstance(event, PathRequested):
                continue
            reply = self.path_for(event.path)
            if reply is None:
                continue  # nothing answers: EP_POLL stays 0 until the deadline
            with contextlib.suppress(Exception), self.requests() as requests:
                requests.request(
                    PathUpdate(transport_handle=transport, host_no=self.host_no, path=reply)
                )

    def path_for(self, asked: IscsiPath) -> IscsiPath | None:
        """The PATH_UPDATE for ``asked``: its handle, the next hop's MAC, this host's
        source address; None without a MAC (IPv6: no neighbour table read)."""
        if asked.ip_addr_len != 4:
            return None
        mac = neighbour_mac(self.root, str(ipaddress.IPv4Address(asked.dst)))
        if mac is None:
            return None
        try:
            src = ipaddress.IPv4Address(self.source).packed
        except ValueError:
            src = bytes(4)
        return IscsiPath(
            handle=asked.handle, mac_addr=mac, ip_addr_len=4, src=src, dst=asked.dst,
            vlan_id=asked.vlan_id, pmtu=asked.pmtu,
        )  # fmt: skip
