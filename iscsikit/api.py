"""The Python API: discover targets, log in, log out — no iscsiadm output to parse.

    >>> import iscsikit
    >>> targets = iscsikit.discover("127.0.0.1:3260")
    >>> with iscsikit.login(targets[0].portal, targets[0].name) as session:
    ...     print(session.params["MaxRecvDataSegmentLength"])

Every error is an :class:`iscsikit.IscsiError` whose ``.code`` is the iscsiadm exit
code for the same failure.  The functions never print and never exit.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType, TracebackType
from typing import Any

from iscsikit.config.initiatorname import check_iscsi_name, default_initiator_name
from iscsikit.errors import InvalidParameterError, IscsiError
from iscsikit.manager.login import attempt_login
from iscsikit.plugin import ConnectSpec, SessionEvent, SessionEventKind, Timeouts
from iscsikit.plugin import manager as plugins
from iscsikit.plugin.transport import Transport, TransportSession
from iscsikit.proto.address import Portal, parse_portal
from iscsikit.proto.chap import ChapAlgorithm, parse_chap_algs
from iscsikit.proto.ffp import Timers
from iscsikit.proto.login import ChapSecrets, LoginConfig, TargetRedirected
from iscsikit.proto.sendtargets import DiscoveredTarget

#: The transport the API uses unless told otherwise: iSCSI in this process.
DEFAULT_TRANSPORT = "usertcp"

#: What open-iscsi's iscsid.conf offers for a Normal session (RFC 7143 key names).
NORMAL_SESSION_DEFAULTS: Mapping[str, str] = MappingProxyType(
    {
        "MaxRecvDataSegmentLength": "262144",
        "InitialR2T": "No",
        "ImmediateData": "Yes",
        "FirstBurstLength": "262144",
        "MaxBurstLength": "16776192",
        "DefaultTime2Wait": "2",
        "DefaultTime2Retain": "0",
        "MaxConnections": "1",
        "MaxOutstandingR2T": "1",
        "DataPDUInOrder": "Yes",
        "DataSequenceInOrder": "Yes",
        "ErrorRecoveryLevel": "0",
    }
)

#: ``discovery.sendtargets.iscsi.MaxRecvDataSegmentLength`` in iscsid.conf.
DISCOVERY_MAX_RECV_DATA_SEGMENT_LENGTH = 32768


@dataclass(frozen=True, slots=True)
class Chap:
    """CHAP credentials; ``username_in``/``password_in`` make it mutual.

    ``algorithms`` is open-iscsi's ``node.session.auth.chap_algs`` (an ordered list of
    ``MD5``, ``SHA1``, ``SHA256``, ``SHA3-256``; as a sequence or a comma string).
    """

    username: str
    password: str = field(repr=False)
    username_in: str | None = None
    password_in: str | None = field(default=None, repr=False)
    algorithms: tuple[str, ...] | str = ("MD5",)

    def secrets(self) -> ChapSecrets:
        algs = self.algorithms
        text = algs if isinstance(algs, str) else ",".join(algs)
        parsed: tuple[ChapAlgorithm, ...] = parse_chap_algs(text, warn=_refuse_algorithm)
        return ChapSecrets(
            username=self.username,
            password=self.password,
            username_in=self.username_in,
            password_in=self.password_in,
            algorithms=parsed,
        )


def _refuse_algorithm(problem: str) -> None:
    # iscsid.conf parsing warns and skips, as open-iscsi does; an API caller gets an error.
    raise InvalidParameterError(f"CHAP algorithms: {problem}")


def new_isid() -> bytes:
    """A random-format ISID (RFC 7143 §11.12.5: T=10b, B and C random, D qualifier).

    Every login gets its own, so two sessions from this initiator to one target are
    two sessions, not a reinstatement of the first.
    """
    return bytes([0x80]) + secrets.token_bytes(5)


def _portal_and_transport(portal: str | Portal, transport: str) -> tuple[Portal, Transport]:
    return parse_portal(portal), plugins.transports().create(transport)


def _emit(
    kind: SessionEventKind, transport: str, target: str | None, portal: Portal, detail: str = ""
) -> None:
    plugins.plugin_manager().hook.iscsikit_session_event(
        event=SessionEvent(kind, transport, target, str(portal), detail)
    )


def _key_value(value: object) -> str:
    if isinstance(value, bool):
        return "Yes" if value else "No"
    return str(value)


def _initiator(initiator_name: str | None) -> str:
    return check_iscsi_name(initiator_name or default_initiator_name())


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
    where, driver = _portal_and_transport(portal, transport)
    config = LoginConfig(
        initiator_name=_initiator(initiator_name),
        isid=new_isid(),
        chap=chap.secrets() if chap is not None else None,
        operational={
            "HeaderDigest": header_digest,
            "DataDigest": "None",
            "MaxRecvDataSegmentLength": str(max_recv_data_segment_length),
        },
    )
    timeouts = Timeouts(
        login=login_timeout or timeout, logout=timeout, response=response_timeout or timeout
    )

    def attempt(at: Portal) -> list[DiscoveredTarget] | TargetRedirected:
        return driver.discover_sendtargets(ConnectSpec(at, config, timeouts), query)

    return attempt_login(attempt, where, retries=0)


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
        _emit(SessionEventKind.LOGGED_OUT, self.transport, self.target, self._inner.portal)

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
    where, driver = _portal_and_transport(portal, transport)
    if not target:
        raise InvalidParameterError("a target name is required")
    operational = dict(NORMAL_SESSION_DEFAULTS)
    operational["HeaderDigest"] = header_digest
    operational["DataDigest"] = data_digest
    for key, value in operational_keys.items():
        operational[key] = _key_value(value)
    config = LoginConfig(
        initiator_name=_initiator(initiator_name),
        isid=new_isid(),
        target_name=target,
        initiator_alias=initiator_alias,
        chap=chap.secrets() if chap is not None else None,
        operational=operational,
    )
    timeouts = Timeouts(login=timeout, logout=logout_timeout)

    def attempt(at: Portal) -> TransportSession | TargetRedirected:
        return driver.login(
            ConnectSpec(at, config, timeouts, timers=timers or Timers(), queue_depth=queue_depth)
        )

    def redirected(at: Portal, redirect: TargetRedirected) -> None:
        _emit(SessionEventKind.REDIRECTED, transport, target, at, str(redirect.portal))

    try:
        inner = attempt_login(
            attempt, where, retries=retries, retry_delay=retry_delay, on_redirect=redirected
        )
    except IscsiError as exc:
        _emit(SessionEventKind.LOGIN_FAILED, transport, target, where, str(exc))
        raise
    _emit(SessionEventKind.LOGGED_IN, transport, target, inner.portal)
    return Session(inner, transport=transport, target=target)
