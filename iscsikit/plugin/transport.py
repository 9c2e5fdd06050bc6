"""The typed interface every transport driver implements, and the registry of drivers.

A transport is how iscsikit reaches a target: ``usertcp`` (iSCSI over a Python socket,
no kernel needed), and later the kernel ``tcp``/``iser`` and offload HBAs over netlink.
The core asks a transport to run a SendTargets discovery or to log a session in; what
comes back is a :class:`TransportSession`.  Policy (redirects, retries, records) stays
in the core, so a driver only moves PDUs.
"""

from __future__ import annotations

import abc
import enum
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Protocol, runtime_checkable

from iscsikit.errors import InvalidParameterError, NotSupportedError, TransportNotFoundError

# The protocol types below are annotations only: importing iscsikit.plugin (every
# driver does, and the CLI for its registry) must not load the protocol machines, CHAP
# and the digest library (tens of ms of iscsikit-adm's start-up; bench/startup_bench.py).
if TYPE_CHECKING:
    from iscsikit.netlink.wire import ChapRecord, ParamAttr
    from iscsikit.proto.address import Portal
    from iscsikit.proto.ffp_params import Timers
    from iscsikit.proto.login import LoginAccepted, LoginConfig, TargetRedirected
    from iscsikit.proto.sendtargets import DiscoveredTarget
    from iscsikit.proto.task import PingTask, ScsiTask, TmfTask
    from iscsikit.sysfs import IscsiHost


class Capability(enum.Enum):
    """What a transport can do (mirrors the kernel's CAP_* bits where they exist)."""

    SENDTARGETS = "sendtargets"
    LOGIN = "login"
    DATA = "data"
    HEADER_DIGEST = "header-digest"
    DATA_DIGEST = "data-digest"
    IPV6 = "ipv6"
    #: The kernel carries the data path: a session is a SCSI host whose LUNs are block
    #: devices, and login returns a :class:`KernelTransportSession`.
    BLOCK_DEVICE = "block-device"


@dataclass(frozen=True, slots=True)
class Timeouts:
    """Bounds on every wait, in seconds (open-iscsi's ``node.conn[0].timeo.*`` defaults)."""

    login: float = 15.0
    logout: float = 15.0
    #: A Text / NOP response in Full Feature Phase (discovery answers, pings).
    response: float = 30.0

    def __post_init__(self) -> None:
        for name in ("login", "logout", "response"):
            if not getattr(self, name) > 0:
                raise InvalidParameterError(f"timeout {name} must be positive")


def _default_timers() -> Timers:
    from iscsikit.proto.ffp_params import Timers

    return Timers()


@dataclass(frozen=True, slots=True)
class ConnectSpec:
    """One login attempt: where to connect and what to say."""

    portal: Portal
    login: LoginConfig
    timeouts: Timeouts = field(default_factory=Timeouts)
    #: Transport-specific binding (network interface name, source address...), by key.
    binding: Mapping[str, str] = field(default_factory=dict)
    #: Full Feature Phase: keepalive, command and task management timeouts.
    timers: Timers = field(default_factory=_default_timers)
    #: Commands in flight at most (open-iscsi's ``node.session.cmds_max``).
    queue_depth: int = 128
    #: Seconds a failed session's commands wait for a new connection before they fail
    #: (``node.session.timeo.replacement_timeout``; the kernel's recovery_tmo).
    replacement_timeout: float = 120.0
    #: The node record the login is for, by open-iscsi key (empty for API logins): a
    #: driver reads the keys only it uses (the kernel's ``node.session.queue_depth``...).
    record: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class OffloadPort:
    """One port of an offload HBA, as a driver reports it (see ``iscsikit_offload_ports``)."""

    transport: str
    hwaddress: str
    net_ifacename: str = ""
    ipaddress: str = ""

    @property
    def iface_name(self) -> str:
        """open-iscsi's name for the port's default iface: ``<transport>.<mac>``."""
        return f"{self.transport}.{self.hwaddress.lower()}"


class OffloadHostOps(Protocol):
    """One offload host's NETLINK_ISCSI operations, as iscsiadm performs them.

    The seam between the CLI (``-m iface -o apply``, ``-C ping``, ``-m host -C
    chap|stats|flashnode``) and an offload driver (``iscsikit_drivers.offload.OffloadHost``
    implements it).  Each operation raises :class:`~iscsikit.netlink.NetlinkRequestError`
    when the kernel refuses (its ``errno``; ``not_supported`` for -ENOSYS), which the CLI
    maps to iscsiadm's message and exit code."""

    def set_iface_params(self, attrs: Iterable[ParamAttr]) -> None:
        """SET_IFACE_PARAMS with ``attrs`` (``-m iface -o apply``)."""

    def ping(
        self,
        address: str,
        *,
        iface_num: int = 0,
        iface_type: int = 1,
        size: int = 32,
        timeout: float = 30.0,
    ) -> int:
        """PING, then its PING_COMP's ``status`` (0: the ping came back)."""

    def chap_entries(self) -> list[ChapRecord]:
        """Every CHAP table entry (GET_CHAP, paged)."""

    def set_chap(self, index: int, chap_type: int, username: str, password: str) -> None:
        """SET_CHAP: add or replace entry ``index``."""

    def delete_chap(self, index: int) -> None:
        """DELETE_CHAP of entry ``index``."""

    def host_stats(self) -> dict[str, int]:
        """GET_HOST_STATS: the ``struct iscsi_offload_host_stats`` counters by name."""

    def new_flashnode(self, portal_type: str = "ipv4") -> int:
        """NEW_FLASHNODE: the new node's index."""

    def flashnode(self, op: str, index: int) -> None:
        """``delete``, ``login`` or ``logout`` of flash node ``index``."""

    def update_flashnode(
        self, index: int, params: Sequence[tuple[str, str]], portal_type: str
    ) -> None:
        """SET_FLASHNODE_PARAMS of flash node ``index`` (``-C flashnode -o update``) from
        ``flashnode.*`` (name, value) pairs, for a node whose ``portal_type`` is given.
        A name or value iscsiadm refuses raises :class:`~iscsikit.errors.IscsiError` with
        iscsiadm's message and code, before anything is sent."""


@runtime_checkable
class OffloadDriver(Protocol):
    """What the core needs of an offload driver plugin beyond :class:`Transport`.

    ``iscsikit_drivers.offload.OffloadTransport`` implements it; the CLI finds one by
    the host's transport name in the registry and uses it when the registered driver is
    an instance of this protocol."""

    def at_root(self, root: Path) -> OffloadDriver:
        """The same driver reading the sysfs tree under ``root``."""

    def host(self, host_no: int) -> OffloadHostOps:
        """The NETLINK_ISCSI operations of SCSI host ``host_no``."""

    def host_by_hwaddress(self, hwaddress: str) -> IscsiHost | None:
        """The driver's host whose MAC is ``hwaddress`` (any case), if any."""

    def hosts(self) -> list[IscsiHost]:
        """The driver's SCSI hosts, by host number."""

    def net_config(self, record: Mapping[str, str]) -> tuple[ParamAttr, ...]:
        """SET_IFACE_PARAMS attributes for an iface record (``key -> value``)."""


class TransportSession(abc.ABC):
    """A logged-in session as the transport sees it."""

    #: Every negotiated key by RFC name, values as strings.
    params: Mapping[str, str]
    portal: Portal
    target: str | None
    tsih: int
    isid: bytes
    tpgt: int | None

    def took_login(self, spec: ConnectSpec, accepted: LoginAccepted | None) -> None:
        """Set the attributes above from the login that made (or renewed) the session:
        ``spec`` as asked, ``accepted`` as the target's final Login Response answered
        (None for a session found already logged in, e.g. adopted from the kernel: then
        nothing negotiated is known)."""
        self.portal = spec.portal
        self.target = spec.login.target_name
        self.isid = spec.login.isid
        self.params = dict(accepted.params) if accepted else {}
        self.tsih = accepted.tsih if accepted else 0
        self.tpgt = accepted.target_portal_group_tag if accepted else None

    @abc.abstractmethod
    def logout(self, timeout: float | None = None) -> None:
        """Log out (close the session) and release the connection; idempotent."""

    @abc.abstractmethod
    def close(self) -> None:
        """Drop the connection without logging out (used after errors); idempotent."""

    @abc.abstractmethod
    def ping(self, timeout: float | None = None) -> float:
        """NOP-Out / NOP-In round trip; returns the round-trip time in seconds."""

    @property
    @abc.abstractmethod
    def closed(self) -> bool:
        """True once the session was logged out or closed."""

    def command_channel(self) -> CommandChannel:
        """The session's SCSI data path for blocking callers.

        Transports whose data path is the kernel's block layer do not offer one.
        """
        raise NotSupportedError(f"the {type(self).__name__} has no userspace data path")

    async def async_command_channel(self) -> AsyncCommandChannel:
        """The session's SCSI data path on the running asyncio event loop."""
        raise NotSupportedError(f"the {type(self).__name__} has no userspace data path")


class KernelTransportSession(TransportSession):
    """A session whose data path the kernel carries (:attr:`Capability.BLOCK_DEVICE`).

    The manager keeps such a session across connections, as iscsid does: when the
    driver reports a failed connection (to the callback given to :meth:`watch`), it
    calls :meth:`suspend` (the kernel
    holds the SCSI commands for the replacement timeout) and later :meth:`reconnect`
    (a new connection of the same kernel session: same sid, same SCSI host, same disks).
    """

    #: The kernel's session id (``/sys/class/iscsi_session/session<sid>``).
    kernel_sid: int
    #: The SCSI host the session is (``/sys/class/scsi_host/host<host_no>``).
    host_no: int

    @abc.abstractmethod
    def watch(self, callback: Callable[[Any], None] | None) -> None:
        """Report the current connection's failure to ``callback`` (from any thread,
        an :class:`iscsikit.proto.ffp.ConnectionFailed`), once; a failure that happened
        since the connection started and before the call is reported at once."""

    @abc.abstractmethod
    def suspend(self) -> None:
        """Stop the failed connection for recovery; the session stays."""

    @abc.abstractmethod
    def reconnect(self, spec: ConnectSpec) -> KernelTransportSession | TargetRedirected:
        """Log a new connection of this session in at ``spec.portal``; self, or the
        redirect the target answered with."""

    @abc.abstractmethod
    def scan(self) -> None:
        """Ask the kernel to scan the session's SCSI host for LUNs."""

    @abc.abstractmethod
    def statistics(self) -> Mapping[str, int]:
        """The connection's counters (``struct iscsi_stats`` names)."""

    @abc.abstractmethod
    def release(self) -> None:
        """Let go of the session without ending it (the daemon stops; the next one
        adopts it)."""


class CommandChannel(abc.ABC):
    """Runs SCSI commands over a logged-in session, blocking the calling thread.

    One thread at a time: a channel is not thread-safe (open one session per thread,
    or use the asyncio channel to keep many commands in flight from one thread).
    Every wait is bounded by the connection's timers (command timeout, task
    management escalation, keepalive).  The owner (the session manager) sets
    ``on_event`` to hear the connection's events, as for :class:`AsyncCommandChannel`;
    the driver calls it from inside :meth:`wait`.
    """

    on_event: Callable[[Any], None] | None = None

    @abc.abstractmethod
    def submit(self, task: ScsiTask) -> None:
        """Queue a command without waiting for it."""

    @abc.abstractmethod
    def wait(self, task: ScsiTask | None = None) -> None:
        """Run I/O until ``task`` is done (or, with None, until any request finishes)."""

    def execute(self, task: ScsiTask) -> ScsiTask:
        """Submit ``task`` and wait for it; check ``task.error`` / ``task.status``."""
        self.submit(task)
        self.wait(task)
        return task

    @abc.abstractmethod
    def task_management(self, task: TmfTask) -> TmfTask:
        """Send a task management function and wait for its response."""

    def statistics(self) -> Mapping[str, int]:
        """The connection's counters, as :meth:`AsyncCommandChannel.statistics` says."""
        return {}

    @property
    @abc.abstractmethod
    def closed(self) -> bool:
        """True once the connection failed or the session logged out."""


class AsyncCommandChannel(abc.ABC):
    """Runs SCSI commands over a logged-in session on an asyncio event loop.

    Any number of commands may be in flight; the target's queue depth (CmdSN window)
    and the session's ``queue_depth`` hold back the excess in order.  The owner (the
    session manager) sets ``on_event`` to hear the connection's events
    (:mod:`iscsikit.proto.ffp`'s ``ConnectionFailed``, ``LogoutRequested``, ...) and acts
    on them; a driver calls it from the loop, after the affected requests completed.
    """

    on_event: Callable[[Any], None] | None = None

    @abc.abstractmethod
    def submit(self, task: ScsiTask) -> None:
        """Queue a command; its ``callback`` runs when it is done (from the loop)."""

    @abc.abstractmethod
    async def execute(self, task: ScsiTask) -> ScsiTask:
        """Submit ``task`` and wait for it."""

    @abc.abstractmethod
    async def task_management(self, task: TmfTask) -> TmfTask:
        """Send a task management function and wait for its response."""

    async def ping(self, task: PingTask) -> PingTask:
        """A NOP-Out that wants its NOP-In; ``task.error`` tells a failure."""
        raise NotSupportedError(f"{type(self).__name__} cannot ping")

    def statistics(self) -> Mapping[str, int]:
        """The connection's counters, named as ``struct iscsi_stats`` names them
        (``txdata_octets``, ``scsicmd_pdus``, ... ``iscsiadm -m session -s``); a counter
        the driver does not keep is absent."""
        return {}

    @abc.abstractmethod
    async def logout(self) -> None:
        """Log the session out and close the connection."""

    @abc.abstractmethod
    def close(self) -> None:
        """Drop the connection without logging out."""

    @property
    @abc.abstractmethod
    def closed(self) -> bool:
        """True once the connection failed or the session logged out."""


class Transport(abc.ABC):
    """A transport driver.  Subclasses set ``name`` and implement the two operations."""

    name: ClassVar[str]
    description: ClassVar[str] = ""
    capabilities: ClassVar[frozenset[Capability]] = frozenset()

    @abc.abstractmethod
    def discover_sendtargets(
        self, spec: ConnectSpec, query: str = "All"
    ) -> list[DiscoveredTarget] | TargetRedirected:
        """Log in a Discovery session at ``spec.portal``, ask SendTargets, log out.

        A redirected discovery login returns the redirect; the core follows it.
        """

    @abc.abstractmethod
    def login(self, spec: ConnectSpec) -> TransportSession | TargetRedirected:
        """Log a Normal session in, or report the redirect the target answered with."""

    def adopt(self, sid: int, spec: ConnectSpec) -> KernelTransportSession:
        """Take over kernel session ``sid`` that another process logged in (a
        :attr:`Capability.BLOCK_DEVICE` driver; ``spec`` as a recovery would log in)."""
        raise NotSupportedError(f"the {self.name} transport has no kernel sessions to adopt")


class TransportRegistry:
    """Transport classes by name, filled by the ``iscsikit_register_transports`` hook."""

    def __init__(self) -> None:
        self._classes: dict[str, type[Transport]] = {}

    def register(self, cls: type[Transport]) -> type[Transport]:
        """Add a driver class (usable as a decorator).  Names are unique."""
        name = getattr(cls, "name", None)
        if not isinstance(name, str) or not name:
            raise InvalidParameterError(f"transport class {cls.__qualname__} has no name")
        if not (isinstance(cls, type) and issubclass(cls, Transport)):
            raise InvalidParameterError(f"{cls!r} is not a Transport subclass")
        existing = self._classes.get(name)
        if existing is not None and existing is not cls:
            raise InvalidParameterError(
                f"transport {name!r} registered twice ({existing.__module__} and {cls.__module__})"
            )
        self._classes[name] = cls
        return cls

    def get(self, name: str) -> type[Transport]:
        try:
            return self._classes[name]
        except KeyError:
            known = ", ".join(sorted(self._classes)) or "none"
            raise TransportNotFoundError(
                f"iSCSI transport {name!r} not found (registered: {known})"
            ) from None

    def create(self, name: str) -> Transport:
        return self.get(name)()

    def names(self) -> list[str]:
        return sorted(self._classes)

    def __contains__(self, name: object) -> bool:
        return name in self._classes

    def __iter__(self) -> Iterator[type[Transport]]:
        return iter(self._classes.values())
