"""What a login says: CHAP credentials, the ISID, the operational keys and timers.

Everything here is decided before a socket exists: :class:`Chap`, :func:`new_isid`,
the keys a Normal or Discovery session offers (their defaults come from the key
registry, the one place open-iscsi's compiled defaults are written), and
:func:`session_spec` / :func:`node_settings`, which turn API arguments or a node
record into the :class:`~iscsikit.plugin.transport.ConnectSpec` a driver logs in with.
No I/O.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Any

from iscsikit.config.initiatorname import check_iscsi_name, default_initiator_name
from iscsikit.config.registry import REGISTRY, RecordType
from iscsikit.errors import InvalidParameterError
from iscsikit.plugin.transport import ConnectSpec, Timeouts
from iscsikit.proto.address import Portal
from iscsikit.proto.chap import ChapAlgorithm, parse_chap_algs
from iscsikit.proto.ffp import Timers
from iscsikit.proto.login import ChapSecrets, LoginConfig

__all__ = [
    "DISCOVERY_MAX_RECV_DATA_SEGMENT_LENGTH",
    "NORMAL_SESSION_DEFAULTS",
    "Chap",
    "SessionSettings",
    "discovery_config",
    "initiator_name",
    "key_value",
    "new_isid",
    "normal_operational_keys",
]

# RFC 7143 key -> the node record key holding what open-iscsi offers for it.
_NODE_KEYS: Mapping[str, str] = {
    "MaxRecvDataSegmentLength": "node.conn[0].iscsi.MaxRecvDataSegmentLength",
    "InitialR2T": "node.session.iscsi.InitialR2T",
    "ImmediateData": "node.session.iscsi.ImmediateData",
    "FirstBurstLength": "node.session.iscsi.FirstBurstLength",
    "MaxBurstLength": "node.session.iscsi.MaxBurstLength",
    "DefaultTime2Wait": "node.session.iscsi.DefaultTime2Wait",
    "DefaultTime2Retain": "node.session.iscsi.DefaultTime2Retain",
    "MaxConnections": "node.session.iscsi.MaxConnections",
    "MaxOutstandingR2T": "node.session.iscsi.MaxOutstandingR2T",
    "ErrorRecoveryLevel": "node.session.iscsi.ERL",
}
# Keys iscsid always offers with one value (usr/initiator_common.c).
_FIXED = {"DataPDUInOrder": "Yes", "DataSequenceInOrder": "Yes"}


def _registry_defaults() -> dict[str, str]:
    node = REGISTRY.defaults(RecordType.NODE)
    out = {rfc: node[key] for rfc, key in _NODE_KEYS.items()}
    out.update(_FIXED)
    return out


#: What open-iscsi offers for a Normal session by default (RFC 7143 key names).
NORMAL_SESSION_DEFAULTS: Mapping[str, str] = MappingProxyType(_registry_defaults())

#: ``discovery.sendtargets.iscsi.MaxRecvDataSegmentLength`` by default.
DISCOVERY_MAX_RECV_DATA_SEGMENT_LENGTH = int(
    REGISTRY.defaults(RecordType.SENDTARGETS)[
        "discovery.sendtargets.iscsi.MaxRecvDataSegmentLength"
    ]
)


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

    @classmethod
    def from_record(cls, get: Callable[[str], str], prefix: str, algorithms: str) -> Chap | None:
        """The credentials a record's ``<prefix>username/password/username_in/password_in``
        keys give, by iscsid's rule (iscsi_setup_authentication): **a password means
        CHAP**, whatever ``authmethod`` says (open-iscsi validates that key and ignores
        it); incoming credentials without an outgoing password mean no CHAP at all.
        ``get`` returns ``""`` for an unset key."""
        password = get(prefix + "password")
        if not password:
            return None
        return cls(
            get(prefix + "username"),
            password,
            username_in=get(prefix + "username_in") or None,
            password_in=get(prefix + "password_in") or None,
            algorithms=algorithms or "MD5",
        )

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

    Every new session gets its own, so two sessions from this initiator to one target
    are two sessions; a session that logs in again after a failure keeps its ISID
    (session reinstatement, RFC 7143 §6.3.5).
    """
    return bytes([0x80]) + secrets.token_bytes(5)


def key_value(value: object) -> str:
    """An operational key's value as the text key carries it (``True`` -> ``Yes``)."""
    if isinstance(value, bool):
        return "Yes" if value else "No"
    return str(value)


def initiator_name(name: str | None) -> str:
    """``name``, checked, or this host's initiator name."""
    return check_iscsi_name(name or default_initiator_name())


def normal_operational_keys(
    header_digest: str = "None", data_digest: str = "None", **keys: Any
) -> dict[str, str]:
    """The defaults overlaid with digests and any RFC 7143 key given by name."""
    operational = dict(NORMAL_SESSION_DEFAULTS)
    operational["HeaderDigest"] = header_digest
    operational["DataDigest"] = data_digest
    for key, value in keys.items():
        operational[key] = key_value(value)
    return operational


def discovery_config(
    *,
    chap: Chap | None,
    initiator: str | None,
    header_digest: str = "None",
    max_recv_data_segment_length: int = DISCOVERY_MAX_RECV_DATA_SEGMENT_LENGTH,
) -> LoginConfig:
    """A Discovery session's login."""
    return LoginConfig(
        initiator_name=initiator_name(initiator),
        isid=new_isid(),
        chap=chap.secrets() if chap is not None else None,
        operational={
            "HeaderDigest": header_digest,
            "DataDigest": "None",
            "MaxRecvDataSegmentLength": str(max_recv_data_segment_length),
        },
    )


@dataclass(frozen=True, slots=True)
class SessionSettings:
    """Everything a Normal session's logins need, whatever asks for it (API, record).

    :meth:`spec` gives the driver's :class:`ConnectSpec` for one attempt at one portal;
    the ISID is fixed here, so every re-login of the session (recovery) reinstates it.
    """

    target: str
    portal: Portal
    config: LoginConfig
    timeouts: Timeouts = field(default_factory=Timeouts)
    timers: Timers = field(default_factory=Timers)
    queue_depth: int = 128
    transport: str = "usertcp"
    binding: Mapping[str, str] = field(default_factory=dict)
    #: Login attempts on a target error before the first login fails (retries).
    retries: int = 3
    retry_delay: float = 1.0
    #: Seconds a failed session may take to come back before queued I/O fails
    #: (``node.session.timeo.replacement_timeout``; 0: fail at once).
    replacement_timeout: float = 120.0
    #: Where a recovering session logs in again, in order (:mod:`.failover`); empty:
    #: ``portal`` only.
    failover: tuple[Portal, ...] = ()
    #: The node record the session was made from (empty: API arguments); see
    #: :attr:`ConnectSpec.record <iscsikit.plugin.ConnectSpec.record>`.
    record: Mapping[str, str] = field(default_factory=dict)

    @property
    def recovery_portals(self) -> tuple[Portal, ...]:
        return self.failover or (self.portal,)

    @property
    def isid(self) -> bytes:
        return self.config.isid

    def spec(self, portal: Portal | None = None) -> ConnectSpec:
        return ConnectSpec(
            portal or self.portal,
            self.config,
            self.timeouts,
            binding=self.binding,
            timers=self.timers,
            queue_depth=self.queue_depth,
            replacement_timeout=self.replacement_timeout,
            record=self.record,
        )

    def with_record(self, record: Mapping[str, str]) -> SessionSettings:
        return replace(self, record=dict(record))

    def with_isid(self, isid: bytes) -> SessionSettings:
        return replace(self, config=replace(self.config, isid=isid))


def session_settings(
    portal: Portal,
    target: str,
    *,
    chap: Chap | None = None,
    header_digest: str = "None",
    data_digest: str = "None",
    initiator_name: str | None = None,
    initiator_alias: str | None = None,
    timeout: float = 15.0,
    logout_timeout: float = 15.0,
    transport: str = "usertcp",
    retries: int = 3,
    retry_delay: float = 1.0,
    queue_depth: int = 128,
    timers: Timers | None = None,
    replacement_timeout: float = 120.0,
    **operational_keys: Any,
) -> SessionSettings:
    """The settings of :func:`iscsikit.login`'s arguments (see its docstring)."""
    if not target:
        raise InvalidParameterError("a target name is required")
    config = LoginConfig(
        initiator_name=_initiator(initiator_name),
        isid=new_isid(),
        target_name=target,
        initiator_alias=initiator_alias,
        chap=chap.secrets() if chap is not None else None,
        operational=normal_operational_keys(header_digest, data_digest, **operational_keys),
        # Always through the security stage, as open-iscsi logs in: tgtd reinstates a
        # session (terminating the old one's tasks, RFC 7143 §6.3.5) only on a login that
        # starts there; one that starts at the operational stage leaves the old session
        # and its held commands alive, to run late over a re-issued write.
        security_stage=True,
    )
    return SessionSettings(
        target=target,
        portal=portal,
        config=config,
        timeouts=Timeouts(login=timeout, logout=logout_timeout),
        timers=timers or Timers(),
        queue_depth=queue_depth,
        transport=transport,
        retries=retries,
        retry_delay=retry_delay,
        replacement_timeout=replacement_timeout,
    )


_initiator = initiator_name
