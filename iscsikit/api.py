"""The Python API: discover targets, log in, log out — no iscsiadm output to parse.

    >>> import iscsikit
    >>> targets = iscsikit.discover("127.0.0.1:3260")
    >>> with iscsikit.login(targets[0].portal, targets[0].name) as session:
    ...     print(session.params["MaxRecvDataSegmentLength"])

Every error is an :class:`iscsikit.IscsiError` whose ``.code`` is the iscsiadm exit
code for the same failure.  The functions never print and never exit.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType, TracebackType
from typing import Any

from iscsikit.errors import IscsiError
from iscsikit.manager.connect import DEFAULT_TRANSPORT, connect, discover, emit
from iscsikit.manager.spec import (
    DISCOVERY_MAX_RECV_DATA_SEGMENT_LENGTH,
    NORMAL_SESSION_DEFAULTS,
    Chap,
    new_isid,
    session_settings,
)
from iscsikit.plugin import SessionEventKind
from iscsikit.plugin.transport import TransportSession
from iscsikit.proto.address import Portal, parse_portal
from iscsikit.proto.ffp import Timers

__all__ = [
    "DEFAULT_TRANSPORT",
    "DISCOVERY_MAX_RECV_DATA_SEGMENT_LENGTH",
    "NORMAL_SESSION_DEFAULTS",
    "Chap",
    "Session",
    "discover",
    "login",
    "new_isid",
]


class Session:
    """A logged-in session.  Use as a context manager, or call :meth:`logout`."""

    def __init__(self, inner: TransportSession, *, transport: str, target: str) -> None:
        self._inner = inner
        self.transport = transport
        self.target = target
        #: Every negotiated key (RFC 7143 names) with its string value.
        self.params: Mapping[str, str] = MappingProxyType(dict(inner.params))

    @property
    def portal(self) -> str:
        """Where the session is (after redirects): ``ip:port`` / ``[ipv6]:port``."""
        return str(self._inner.portal)

    @property
    def tpgt(self) -> int | None:
        return self._inner.tpgt

    @property
    def tsih(self) -> int:
        return self._inner.tsih

    @property
    def isid(self) -> str:
        return self._inner.isid.hex()

    @property
    def closed(self) -> bool:
        return self._inner.closed

    @property
    def transport_session(self) -> TransportSession:
        """The driver's session object (data path, statistics)."""
        return self._inner

    def ping(self, timeout: float | None = None) -> float:
        """A NOP-Out/NOP-In round trip, in seconds."""
        return self._inner.ping(timeout)

    def logout(self, timeout: float | None = None) -> None:
        """Log out; idempotent.  The connection is closed even if the logout fails."""
        if self._inner.closed:
            return
        self._inner.logout(timeout)
        emit(SessionEventKind.LOGGED_OUT, self.transport, self.target, self._inner.portal)

    def __enter__(self) -> Session:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc is None:
            self.logout()
        else:
            # Don't mask the caller's exception with a logout failure.
            try:
                self.logout()
            except IscsiError:
                self._inner.close()

    def __repr__(self) -> str:
        state = "closed" if self.closed else "logged in"
        return f"<Session {self.target} at {self.portal} ({self.transport}, {state})>"


def login(
    portal: str | Portal,
    target: str,
    *,
    chap: Chap | None = None,
    header_digest: str = "None",
    data_digest: str = "None",
    initiator_name: str | None = None,
    initiator_alias: str | None = None,
    timeout: float = 15.0,
    logout_timeout: float = 15.0,
    transport: str = DEFAULT_TRANSPORT,
    retries: int = 3,
    retry_delay: float = 1.0,
    queue_depth: int = 128,
    timers: Timers | None = None,
    **operational_keys: Any,
) -> Session:
    """Log in to ``target`` at ``portal`` and return the :class:`Session`.

    ``header_digest``/``data_digest`` take open-iscsi's values (``None``, ``CRC32C``,
    ``CRC32C,None``, ``None,CRC32C``).  Any other RFC 7143 operational key may be given
    by name (``MaxRecvDataSegmentLength=4096``, ``ImmediateData=False``); unknown keys
    or bad values raise :class:`~iscsikit.errors.InvalidParameterError` (code 7).
    Redirects are followed; target errors (status class 3) are retried ``retries``
    times.  ``timeout`` bounds each attempt (connect + login).
    """
    settings = session_settings(
        parse_portal(portal),
        target,
        chap=chap,
        header_digest=header_digest,
        data_digest=data_digest,
        initiator_name=initiator_name,
        initiator_alias=initiator_alias,
        timeout=timeout,
        logout_timeout=logout_timeout,
        transport=transport,
        retries=retries,
        retry_delay=retry_delay,
        queue_depth=queue_depth,
        timers=timers,
        **operational_keys,
    )
    return Session(connect(settings), transport=transport, target=target)
