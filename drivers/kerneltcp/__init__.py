"""``kerneltcp``: the kernel's iscsi_tcp driven over NETLINK_ISCSI, as iscsid drives it.

The kernel owns the data path (a session becomes a SCSI host, its LUNs ``/dev/sdX``);
userspace connects TCP and logs in (:func:`iscsikit.net.run_login`), then hands the
socket to the kernel and sets the negotiated parameters:

- :mod:`.netlink`: the NETLINK_ISCSI socket (request/reply, async events);
- :mod:`.params`: the SET_PARAM list built from a login's outcome (pure);
- :mod:`.kernel`: one kernel session's life (create, bind, start, stats, logout).

Not registered in the ``iscsikit`` entry-point group yet: the session manager drives
transports whose data path runs in userspace, and a kernel session needs a session
shell of its own (recovery on CONN_ERROR, adoption) before it can be offered there.
docs/kernel-driver.md describes what is here and what iscsid does differently.
"""

from __future__ import annotations

from .kernel import KernelSession, KernelSettings, transport_handle
from .netlink import NetlinkChannel
from .params import negotiated_params, session_params

__all__ = [
    "KernelSession",
    "KernelSettings",
    "NetlinkChannel",
    "negotiated_params",
    "session_params",
    "transport_handle",
]
