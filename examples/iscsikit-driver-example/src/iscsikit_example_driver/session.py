"""The example driver's logged-in session: control exchanges only, no SCSI data path.

:meth:`TransportSession.command_channel` is left to the base class, which refuses with
:class:`~iscsikit.errors.NotSupportedError` (27): the driver does not declare
:attr:`~iscsikit.plugin.Capability.DATA`.
"""

from __future__ import annotations

from iscsikit import net
from iscsikit.net import PduConnection
from iscsikit.plugin import ConnectSpec, TransportSession
from iscsikit.proto.login import LoginAccepted


class ExampleSession(TransportSession):
    """A Normal session in Full Feature Phase over one bound TCP connection."""

    def __init__(self, conn: PduConnection, accepted: LoginAccepted, spec: ConnectSpec) -> None:
        self.conn = conn
        self.spec = spec
        self.took_login(spec, accepted)
        self.state = net.session_state(spec, accepted)

    def ping(self, timeout: float | None = None) -> float:
        """NOP-Out / NOP-In round trip in seconds (a closed connection: code 4)."""
        deadline = net.deadline_after(timeout or self.spec.timeouts.response)
        return net.ping(self.conn, self.state, deadline)

    @property
    def closed(self) -> bool:
        return self.conn.closed

    def logout(self, timeout: float | None = None) -> None:
        """Log out and close; nothing to do once closed (idempotent)."""
        if self.conn.closed:
            return
        deadline = net.deadline_after(timeout or self.spec.timeouts.logout)
        net.logout(self.conn, self.state, deadline)

    def close(self) -> None:
        self.conn.close()
