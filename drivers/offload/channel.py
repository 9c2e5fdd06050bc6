"""How an offload driver reaches NETLINK_ISCSI: a channel factory, injectable.

:data:`ChannelFactory` makes one :class:`~iscsikit_drivers.kerneltcp.NetlinkChannel`
per operation.  :func:`default_channel` is the real NETLINK_ISCSI socket, except when
the environment names a simulator:

**Test seam** -- ``ISCSIKIT_OFFLOAD_NETLINK=<path>`` makes every offload channel an
``AF_UNIX`` ``SOCK_SEQPACKET`` connection to ``<path>``, where a simulated kernel
(:meth:`iscsikit.testing.simhba.HbaServer.listen`) answers.  It exists so that tests can
run ``iscsikit-adm`` as a subprocess against a simulated HBA; nothing else sets it.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable, Mapping

from iscsikit.netlink.constants import ISCSI_NL_GRP_UIP, NETLINK_ISCSI

from ..kerneltcp.netlink import NetlinkChannel  # noqa: TID252

__all__ = ["SEAM_VARIABLE", "ChannelFactory", "default_channel", "seam_channel", "uip_channel"]

#: The environment variable of the test seam (see the module docstring).
SEAM_VARIABLE = "ISCSIKIT_OFFLOAD_NETLINK"

#: Makes a channel; ``events`` asks for the async events group as well (PING_COMP).
ChannelFactory = Callable[..., NetlinkChannel]


def seam_channel(path: str) -> NetlinkChannel:
    """A channel to the simulated kernel listening at ``path``."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    try:
        sock.connect(path)
    except BaseException:
        sock.close()
        raise
    return NetlinkChannel(sock=sock)


def default_channel(
    *, events: bool = False, env: Mapping[str, str] | None = None
) -> NetlinkChannel:
    """The real NETLINK_ISCSI socket, or the test seam's when ``SEAM_VARIABLE`` is set."""
    path = (os.environ if env is None else env).get(SEAM_VARIABLE, "")
    if path:
        return seam_channel(path)
    return NetlinkChannel(events=events)


def uip_channel(factory: ChannelFactory) -> NetlinkChannel:
    """A channel that hears iscsiuio's netlink group (PATH_REQ): a NETLINK_ISCSI socket
    bound to ISCSI_NL_GRP_UIP for the real kernel, else ``factory``'s events channel
    (the test seam and injected simulators send every event to every channel)."""
    if factory is not default_channel or os.environ.get(SEAM_VARIABLE):
        return factory(events=True)
    sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_ISCSI)
    try:
        sock.bind((0, 1 << (ISCSI_NL_GRP_UIP - 1)))
    except BaseException:
        sock.close()
        raise
    return NetlinkChannel(sock=sock)
