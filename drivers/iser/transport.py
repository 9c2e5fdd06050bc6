"""The ``iser`` transport: ib_iser driven as iscsid drives it (usr/iser.c, usr/login.c).

Login, per connection::

    EP_CONNECT(destination sockaddr, non_blocking=1)      -> endpoint handle
    EP_POLL(handle) until connected (within the login timeout)
    CREATE_BOUND_SESSION(handle, initial CmdSN, cmds_max, queue_depth) -> sid, host_no
    CREATE_CONN(sid, 0)
    BIND_CONN(transport_eph = the endpoint handle, is_leading = 1)
    Login PDUs through the kernel (SEND_PDU / RECV_PDU), with the iSER keys
    SET_PARAM x N, START_CONN

Recovery reconnects the same kernel session: EP_DISCONNECT, STOP_CONN(RECOVER) (in
iscsid's order: the other frees no endpoint the kernel cleaned up after a connection
error), then a new endpoint (EP_CONNECT, EP_POLL) bound to the same connection.
Teardown disconnects the endpoint first, then STOP_CONN(TERM), DESTROY_CONN,
DESTROY_SESSION.  All of it is
:class:`~iscsikit_drivers.kerneltcp.KernelSession` with an :class:`IserConnector`.
"""

from __future__ import annotations

import dataclasses

from iscsikit.plugin import Capability
from iscsikit.proto.iser import iser_operational, require_rdma
from iscsikit.proto.login import LoginAccepted, LoginConfig

# Relative: mypy checks drivers/ under its directory name (pyproject.toml), where
# ``iscsikit_drivers`` does not exist; at run time both name the same modules.
from ..kerneltcp.endpoint import KernelEndpointConnector  # noqa: TID252
from ..kerneltcp.transport import KernelTransport  # noqa: TID252

__all__ = ["IserConnector", "IserTransport"]


class IserConnector(KernelEndpointConnector):
    """A kernel RDMA endpoint; the login offers iSER's keys instead of TCP's."""

    def login_config(self, config: LoginConfig) -> LoginConfig:
        if config.target_name is None:  # a Discovery session stays TCP's (iscsid)
            return config
        return dataclasses.replace(config, operational=iser_operational(config.operational))

    def check_login(self, accepted: LoginAccepted) -> None:
        require_rdma(accepted.params)


class IserTransport(KernelTransport):
    name = "iser"
    description = "the kernel's ib_iser over NETLINK_ISCSI (RDMA; sessions are SCSI hosts)"
    kernel_name = "iser"
    module = "ib_iser"
    # No digests: iSER has none (RFC 7145 §5.1).  SendTargets is a userspace TCP
    # exchange, as iscsiadm's for iser.
    capabilities = frozenset(
        {Capability.SENDTARGETS, Capability.LOGIN, Capability.IPV6, Capability.BLOCK_DEVICE}
    )

    def connector(self) -> IserConnector:
        return IserConnector()
