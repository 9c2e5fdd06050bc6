"""A kernel session on an offload host: kerneltcp's, asking on the driver's channels.

:class:`HbaKernelSession` is :class:`~iscsikit_drivers.kerneltcp.kernel.KernelSession`
with one difference: GET_STATS (``iscsiadm -m session -r SID -s``) is asked on a
channel of the driver's own factory (the real NETLINK_ISCSI socket, the test seam or an
injected simulator) instead of a fresh NETLINK_ISCSI socket.  All six offload drivers
answer it (``.get_stats``: cxgb4i.c:144, cxgb3i.c:127, be_main.c:5821,
qedi_iscsi.c:1490, bnx2i_iscsi.c:2296, ql4_os.c:273).
"""

from __future__ import annotations

import time

from iscsikit.errors import TransportTimeoutError
from iscsikit.netlink import RequestFailed
from iscsikit.netlink.events import StatsReceived
from iscsikit.netlink.messages import GetStats

from ..kerneltcp.kernel import KernelSession  # noqa: TID252
from .channel import ChannelFactory, default_channel

__all__ = ["HbaKernelSession"]


class HbaKernelSession(KernelSession):
    """A kernel session on an offload host (module docstring)."""

    #: Makes the channel GET_STATS is asked on (set by the driver).
    channels: ChannelFactory | None = None

    def stats(self, timeout: float = 10.0) -> dict[str, int]:
        """GET_STATS: the connection's counters.  The kernel multicasts the answer to
        the events group (scsi_transport_iscsi.c:2814-2870, no unicast reply: :4114), so
        it is asked on an events channel and picked from what arrives there."""
        factory = self.channels or default_channel
        with factory(events=True) as channel:
            request = GetStats(transport_handle=self.handle, sid=self.sid, cid=self.cid)
            channel.sock.send(request.encode(pid=channel.pid, seq=0))
            deadline = time.monotonic() + timeout
            while (remaining := deadline - time.monotonic()) > 0:
                item = channel.next_message(remaining)
                if isinstance(item, StatsReceived) and (item.sid, item.cid) == (
                    self.sid,
                    self.cid,
                ):
                    return dict(item.counters)
                if isinstance(item, RequestFailed) and item.request_type == GetStats.TYPE:
                    raise item.exception()
        raise TransportTimeoutError(f"no statistics from the kernel for session {self.sid}")
