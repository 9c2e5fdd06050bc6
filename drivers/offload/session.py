"""A kernel session on an offload host: kerneltcp's, asking on the driver's channels.

:class:`HbaKernelSession` is :class:`~iscsikit_drivers.kerneltcp.kernel.KernelSession`
with one difference: GET_STATS (``iscsiadm -m session -r SID -s``) is asked on an
events channel of the driver's own factory (the real NETLINK_ISCSI socket, the test
seam or an injected simulator) instead of a fresh NETLINK_ISCSI socket.  All six
offload drivers answer it (``.get_stats``: cxgb4i.c:144, cxgb3i.c:127, be_main.c:5821,
qedi_iscsi.c:1490, bnx2i_iscsi.c:2296, ql4_os.c:273).
"""

from __future__ import annotations

from ..kerneltcp.kernel import KernelSession  # noqa: TID252
from ..kerneltcp.netlink import NetlinkChannel  # noqa: TID252
from .channel import ChannelFactory, default_channel

__all__ = ["HbaKernelSession"]


class HbaKernelSession(KernelSession):
    """A kernel session on an offload host (module docstring)."""

    #: Makes the channels the session opens for itself (set by the driver).
    channels: ChannelFactory | None = None

    def stats_channel(self) -> NetlinkChannel:
        """An events channel of the driver's factory (GET_STATS' answer is multicast)."""
        return (self.channels or default_channel)(events=True)
