"""One login, under the core's policy: the driver makes one attempt at one portal;
redirects are followed and target errors retried here (:mod:`iscsikit.manager.login`),
and every outcome is announced through the ``iscsikit_session_event`` hook.

:func:`discover` runs a SendTargets discovery; :func:`connect` logs a Normal session in
and returns the driver's :class:`~iscsikit.plugin.transport.TransportSession`.  The
Python API (:mod:`iscsikit.api`) and the session manager both log in through here.
"""

from __future__ import annotations

from iscsikit.errors import IscsiError
from iscsikit.manager.login import attempt_login
from iscsikit.manager.spec import (
    DISCOVERY_MAX_RECV_DATA_SEGMENT_LENGTH,
    Chap,
    SessionSettings,
    discovery_config,
)
from iscsikit.plugin import ConnectSpec, SessionEvent, SessionEventKind, Timeouts
from iscsikit.plugin import manager as plugins
from iscsikit.plugin.transport import Transport, TransportSession
from iscsikit.proto.address import Portal, parse_portal
from iscsikit.proto.login import TargetRedirected
from iscsikit.proto.sendtargets import DiscoveredTarget

__all__ = ["DEFAULT_TRANSPORT", "connect", "discover", "emit", "transport"]

#: The transport used unless told otherwise: iSCSI in this process.
DEFAULT_TRANSPORT = "usertcp"


def transport(name: str) -> Transport:
    """A driver instance by transport name (TransportNotFoundError, 12, if none)."""
    return plugins.transports().create(name)


def emit(
    kind: SessionEventKind, transport: str, target: str | None, portal: Portal, detail: str = ""
) -> None:
    """Announce a session event to every plugin's ``iscsikit_session_event``."""
    plugins.plugin_manager().hook.iscsikit_session_event(
        event=SessionEvent(kind, transport, target, str(portal), detail)
    )


def discover(
    portal: str | Portal,
    *,
    chap: Chap | None = None,
    initiator_name: str | None = None,
    timeout: float = 30.0,
    transport: str = DEFAULT_TRANSPORT,
    header_digest: str = "None",
    query: str = "All",
    max_recv_data_segment_length: int = DISCOVERY_MAX_RECV_DATA_SEGMENT_LENGTH,
    login_timeout: float | None = None,
    response_timeout: float | None = None,
) -> list[DiscoveredTarget]:
    """SendTargets discovery at ``portal`` (``host[:port]``, ``[ipv6]:port``).

    Returns one :class:`DiscoveredTarget` per (target, portal) the target reported,
    with ``.name``, ``.portal`` and ``.tpgt``.  ``timeout`` bounds the login and the
    wait for the answer (``login_timeout`` / ``response_timeout`` set them apart, as
    open-iscsi's ``discovery.sendtargets.timeo.login_timeout`` / ``active_timeout``).
    Redirects are followed.
    """
    where = parse_portal(portal)
    driver = plugins.transports().create(transport)
    config = discovery_config(
        chap=chap,
        initiator=initiator_name,
        header_digest=header_digest,
        max_recv_data_segment_length=max_recv_data_segment_length,
    )
    timeouts = Timeouts(
        login=login_timeout or timeout, logout=timeout, response=response_timeout or timeout
    )

    def attempt(at: Portal) -> list[DiscoveredTarget] | TargetRedirected:
        return driver.discover_sendtargets(ConnectSpec(at, config, timeouts), query)

    return attempt_login(attempt, where, retries=0)


def connect(
    settings: SessionSettings, *, retries: int | None = None, portal: Portal | None = None
) -> TransportSession:
    """Log a Normal session in as ``settings`` say (at ``portal`` instead of
    ``settings.portal`` when given: failover); redirects followed, target errors retried
    ``settings.retries`` times (or ``retries``), events announced."""
    driver = transport(settings.transport)
    name = settings.transport

    def attempt(at: Portal) -> TransportSession | TargetRedirected:
        return driver.login(settings.spec(at))

    def redirected(at: Portal, redirect: TargetRedirected) -> None:
        emit(SessionEventKind.REDIRECTED, name, settings.target, at, str(redirect.portal))

    try:
        inner = attempt_login(
            attempt,
            portal or settings.portal,
            retries=settings.retries if retries is None else retries,
            retry_delay=settings.retry_delay,
            on_redirect=redirected,
        )
    except IscsiError as exc:
        emit(SessionEventKind.LOGIN_FAILED, name, settings.target, settings.portal, str(exc))
        raise
    emit(SessionEventKind.LOGGED_IN, name, settings.target, inner.portal)
    return inner
