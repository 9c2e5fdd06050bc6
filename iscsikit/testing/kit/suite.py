"""The transport conformance suite: what every driver must do, checked against a real peer.

:class:`TransportConformance` is a pytest test class a driver package subclasses (see
:mod:`iscsikit.testing.kit` for the few lines it takes).  Its tests are written against
the :class:`~iscsikit.plugin.Transport` interface and the :class:`~iscsikit.testing.kit.
KitTarget` peer only, never against one driver's internals; what a driver may or may not
do is decided by the capabilities it declares (:class:`~iscsikit.plugin.Capability`),
so every test runs for every driver and none skips.
"""

from __future__ import annotations

import importlib.metadata
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any, ClassVar

import pytest

from iscsikit.errors import IscsiErr, IscsiError
from iscsikit.plugin import (
    Capability,
    CommandChannel,
    ConnectSpec,
    KernelTransportSession,
    Timeouts,
    Transport,
    TransportSession,
    manager,
)
from iscsikit.proto.address import Portal
from iscsikit.proto.ffp import ConnectionFailed
from iscsikit.proto.login import ChapSecrets, TargetRedirected
from iscsikit.proto.task import ScsiTask
from iscsikit.scsi import cdb
from iscsikit.testing.tgtd import free_port

from .spec import CONNECTION_CODES, KIT_TIMEOUTS, SpecFactory, new_isid
from .target import KIT_IQN, KitTarget, TgtdKitTarget, wait_for

__all__ = ["TransportConformance"]


def _session(result: TransportSession | TargetRedirected) -> TransportSession:
    assert isinstance(result, TransportSession), f"login returned {result!r}, not a session"
    return result


def _inquiry() -> ScsiTask:
    return ScsiTask(cdb.inquiry(allocation_length=96), lun=1, read_buffer=bytearray(96))


def _code(info: pytest.ExceptionInfo[IscsiError]) -> IscsiErr:
    return info.value.code


class TransportConformance:
    """Subclass in a driver package and set the class attributes (or override the fixtures).

    ``TRANSPORT``       the name the driver registers (fixture ``transport_name``).
    ``CAPABILITIES``    exactly the capabilities it declares (``expected_capabilities``).
    ``IFACE_BINDING``   ``ConnectSpec.binding`` keys the driver honours, used by every kit
                        login (``iface_binding``); ``ipaddress`` is checked as the source
                        address the target sees (``expected_source_address``).
    ``TIMEOUTS``        the :class:`Timeouts` of every kit login (longer under emulation);
                        the kit's own waits are bounded by ``TIMEOUTS.response``.
    ``SIMULATED``       True for a driver only ever tested against a simulated host (no
                        hardware): its ``description`` must then say "simulated", and
                        must not otherwise (docs/driver-guide.md, "Simulated support").

    Other fixtures a package may override: ``transport`` (the instance under test; by
    default created through the plugin manager, entry points included), ``kit_target``
    (a :class:`KitTarget`; by default a private tgtd from the ``tgtd_factory`` fixture of
    the ``iscsikit`` pytest plugin), ``refused_portal`` (a portal nothing listens on).
    """

    TRANSPORT: ClassVar[str] = ""
    CAPABILITIES: ClassVar[frozenset[Capability]] = frozenset()
    IFACE_BINDING: ClassVar[Mapping[str, str]] = {}
    SIMULATED: ClassVar[bool] = False
    TIMEOUTS: ClassVar[Timeouts] = KIT_TIMEOUTS

    # -- helpers ------------------------------------------------------------------------

    @staticmethod
    def _ping(session: TransportSession, timeout: float | None = None) -> float | None:
        """``session.ping(timeout)``; None when a kernel session refuses with 27 (the
        kernel sends its NOP-Outs: ``noop_out_interval`` is a SET_PARAM of the session)."""
        if not isinstance(session, KernelTransportSession):
            return session.ping(timeout)
        try:
            return session.ping(timeout)
        except IscsiError as exc:
            if exc.code is not IscsiErr.OP_NOT_SUPP:
                raise
            return None

    def _settles(self, kit_target: KitTarget, count: int, name: str | None = None) -> bool:
        """Whether target ``name`` (the open one) comes to have ``count`` connections in
        time (a peer notices a closed connection when it next reads)."""
        name = name or kit_target.open_target
        return wait_for(lambda: len(kit_target.connections(name)) == count, self.TIMEOUTS.response)

    # -- fixtures a driver package may override ----------------------------------------

    @pytest.fixture
    def transport_name(self) -> str:
        if not self.TRANSPORT:
            pytest.fail(f"{type(self).__name__} sets neither TRANSPORT nor transport_name")
        return self.TRANSPORT

    @pytest.fixture
    def expected_capabilities(self) -> frozenset[Capability]:
        return self.CAPABILITIES

    @pytest.fixture
    def iface_binding(self) -> Mapping[str, str]:
        return dict(self.IFACE_BINDING)

    @pytest.fixture
    def expected_source_address(
        self, iface_binding: Mapping[str, str], kit_target: KitTarget
    ) -> str:
        # Unbound, a loopback connection leaves from the address it goes to.
        return iface_binding.get("ipaddress", kit_target.portal.host)

    @pytest.fixture
    def transport(self, transport_name: str) -> Transport:
        return manager.build()[1].create(transport_name)

    @pytest.fixture
    def kit_target(self, tgtd_factory: Callable[..., Any]) -> KitTarget:
        return TgtdKitTarget.on(tgtd_factory())

    @pytest.fixture
    def refused_portal(self, kit_target: KitTarget) -> Portal:
        return Portal(kit_target.portal.host, free_port(kit_target.portal.host))

    @pytest.fixture
    def spec(self, kit_target: KitTarget, iface_binding: Mapping[str, str]) -> SpecFactory:
        return SpecFactory(kit_target, iface_binding, self.TIMEOUTS)

    # -- registration and capabilities -------------------------------------------------

    def test_registered_through_the_entry_point(
        self, transport_name: str, transport: Transport
    ) -> None:
        pm, registry = manager.build()
        assert transport_name in registry.names()
        cls = registry.get(transport_name)
        assert cls.name == transport_name
        assert type(transport) is cls
        assert isinstance(cls.description, str) and cls.description
        # The class comes from a module an ``iscsikit`` entry point names, and the plugin
        # manager holds that entry point's plugin under its entry-point name.
        points = importlib.metadata.entry_points(group="iscsikit")
        owners = [
            ep.name
            for ep in points
            if cls.__module__ == ep.module or cls.__module__.startswith(f"{ep.module}.")
        ]
        assert owners, f"{cls.__module__} is not under any 'iscsikit' entry point"
        plugin_names = {name for name, _ in pm.list_name_plugin()}
        assert set(owners) <= plugin_names

    def test_labels_simulated_support(self, transport: Transport) -> None:
        description = type(transport).description.lower()
        assert ("simulated" in description) is self.SIMULATED, type(transport).description

    def test_declares_its_capabilities(
        self, transport: Transport, expected_capabilities: frozenset[Capability]
    ) -> None:
        caps = type(transport).capabilities
        assert isinstance(caps, frozenset)
        assert all(isinstance(cap, Capability) for cap in caps)
        assert caps == expected_capabilities
        # Everything below logs in: the kit is for drivers that do.
        assert Capability.LOGIN in caps

    # -- login, logout, ping, close -----------------------------------------------------

    def test_login_and_logout(
        self, transport: Transport, kit_target: KitTarget, spec: SpecFactory
    ) -> None:
        connect = spec(kit_target.open_target)
        session = _session(transport.login(connect))
        try:
            assert not session.closed
            assert session.target == kit_target.open_target
            assert session.portal == kit_target.portal
            assert session.isid == connect.login.isid
            assert session.tsih != 0
            assert session.tpgt == kit_target.tpgt
            assert session.params["HeaderDigest"] == "None"
            assert session.params["ErrorRecoveryLevel"] == "0"
            assert len(kit_target.connections(kit_target.open_target)) == 1
        finally:
            session.logout()
        assert session.closed
        assert self._settles(kit_target, 0)
        session.logout()  # idempotent
        session.close()
        assert session.closed

    def test_ping(self, transport: Transport, kit_target: KitTarget, spec: SpecFactory) -> None:
        session = _session(transport.login(spec(kit_target.open_target)))
        try:
            rtt = self._ping(session)
            if rtt is not None:
                assert isinstance(rtt, float)
                assert 0 <= rtt < self.TIMEOUTS.response
                second = self._ping(session, timeout=self.TIMEOUTS.response / 2)
                assert second is not None and second < self.TIMEOUTS.response / 2
        finally:
            session.logout()

    def test_data_path_matches_capability(
        self, transport: Transport, kit_target: KitTarget, spec: SpecFactory
    ) -> None:
        session = _session(transport.login(spec(kit_target.open_target)))
        try:
            if Capability.DATA not in type(transport).capabilities:
                with pytest.raises(IscsiError) as info:
                    session.command_channel()
                assert _code(info) is IscsiErr.OP_NOT_SUPP
                return
            channel = session.command_channel()
            assert isinstance(channel, CommandChannel)
            assert not channel.closed
            # INQUIRY: the one command a unit attention never holds up (SPC-4 §5.6).
            task = channel.execute(_inquiry())
            assert task.error is None
            assert task.status == 0  # GOOD
            assert task.read_view is not None and any(task.read_view)
        finally:
            session.logout()
        assert session.closed

    def test_close_drops_without_logout(
        self, transport: Transport, kit_target: KitTarget, spec: SpecFactory
    ) -> None:
        session = _session(transport.login(spec(kit_target.open_target)))
        session.close()
        assert session.closed
        session.close()  # idempotent
        assert self._settles(kit_target, 0)
        with pytest.raises(IscsiError) as info:
            session.ping()
        kernel = isinstance(session, KernelTransportSession)
        assert _code(info) in CONNECTION_CODES | ({IscsiErr.OP_NOT_SUPP} if kernel else set())
        session.logout()  # a closed session has nothing left to log out

    def test_iface_binding(
        self,
        transport: Transport,
        kit_target: KitTarget,
        spec: SpecFactory,
        iface_binding: Mapping[str, str],
        expected_source_address: str,
    ) -> None:
        connect = spec(kit_target.open_target)
        assert dict(connect.binding) == dict(iface_binding)
        session = _session(transport.login(connect))
        try:
            assert kit_target.connections(kit_target.open_target) == [expected_source_address]
        finally:
            session.logout()

    # -- discovery ------------------------------------------------------------------------

    def test_sendtargets(
        self, transport: Transport, kit_target: KitTarget, spec: SpecFactory
    ) -> None:
        if Capability.SENDTARGETS not in type(transport).capabilities:
            with pytest.raises(IscsiError) as info:
                transport.discover_sendtargets(spec(None))
            assert _code(info) is IscsiErr.OP_NOT_SUPP
            return
        found = transport.discover_sendtargets(spec(None))
        assert isinstance(found, list)
        portal = kit_target.portal
        assert {(t.name, t.host, t.port, t.tpgt) for t in found} >= {
            (kit_target.open_target, portal.host, portal.port, kit_target.tpgt),
            (kit_target.chap_target, portal.host, portal.port, kit_target.tpgt),
        }
        assert self._settles(kit_target, 0)

    # -- errors as iscsiadm's codes ----------------------------------------------------

    def test_unknown_target_is_fatal_login_19(
        self, transport: Transport, kit_target: KitTarget, spec: SpecFactory
    ) -> None:
        with pytest.raises(IscsiError) as info:
            transport.login(spec(f"{KIT_IQN}:no-such-target"))
        assert _code(info) is IscsiErr.FATAL_LOGIN

    def test_chap_login(
        self, transport: Transport, kit_target: KitTarget, spec: SpecFactory
    ) -> None:
        session = _session(transport.login(spec(kit_target.chap_target, chap=kit_target.chap)))
        try:
            assert session.params["AuthMethod"] == "CHAP"
            self._ping(session)
        finally:
            session.logout()

    def test_bad_chap_is_auth_failure_24(
        self, transport: Transport, kit_target: KitTarget, spec: SpecFactory
    ) -> None:
        wrong = ChapSecrets(kit_target.chap.username, "not-the-secret")
        with pytest.raises(IscsiError) as info:
            transport.login(spec(kit_target.chap_target, chap=wrong))
        assert _code(info) is IscsiErr.LOGIN_AUTH_FAILED
        with pytest.raises(IscsiError) as info:  # no credentials at all
            transport.login(spec(kit_target.chap_target))
        assert _code(info) is IscsiErr.LOGIN_AUTH_FAILED
        assert self._settles(kit_target, 0, kit_target.chap_target)

    def test_refused_connection_is_4(
        self, transport: Transport, spec: SpecFactory, refused_portal: Portal
    ) -> None:
        with pytest.raises(IscsiError) as info:
            transport.login(spec(f"{KIT_IQN}:open", portal=refused_portal))
        assert _code(info) is IscsiErr.TRANS
        with pytest.raises(IscsiError) as info:
            transport.discover_sendtargets(spec(None, portal=refused_portal))
        offered = Capability.SENDTARGETS in type(transport).capabilities
        assert _code(info) is (IscsiErr.TRANS if offered else IscsiErr.OP_NOT_SUPP)

    # -- a connection the target drops ---------------------------------------------------

    def test_dropped_connection_is_reported(
        self, transport: Transport, kit_target: KitTarget, spec: SpecFactory
    ) -> None:
        connect = spec(kit_target.open_target)
        session = _session(transport.login(connect))
        try:
            if isinstance(session, KernelTransportSession):
                self._kernel_drop(session, kit_target, connect)
            elif Capability.DATA in type(transport).capabilities:
                self._channel_drop(session, kit_target)
            else:
                assert kit_target.drop(kit_target.open_target) == 1
                with pytest.raises(IscsiError) as info:
                    session.ping()
                assert _code(info) in CONNECTION_CODES
        finally:
            session.close()
        assert session.closed

    def _channel_drop(self, session: TransportSession, kit_target: KitTarget) -> None:
        """A userspace data path: failed commands carry code 4 and the channel's owner
        hears :class:`ConnectionFailed` (the session manager recovers on it)."""
        events: list[object] = []
        channel = session.command_channel()
        channel.on_event = events.append
        assert channel.execute(_inquiry()).error is None
        assert kit_target.drop(kit_target.open_target) == 1
        task = channel.execute(_inquiry())
        assert isinstance(task.error, IscsiError)
        assert task.error.code in CONNECTION_CODES
        assert channel.closed
        failed = [e for e in events if isinstance(e, ConnectionFailed)]
        assert len(failed) == 1
        assert failed[0].error.code in CONNECTION_CODES

    def _kernel_drop(
        self, session: KernelTransportSession, kit_target: KitTarget, connect: ConnectSpec
    ) -> None:
        """A kernel data path: watch() reports the failure once; suspend() and
        reconnect() bring a new connection of the same kernel session."""
        heard: list[object] = []
        done = threading.Event()

        def failed(event: object) -> None:
            heard.append(event)
            done.set()

        session.watch(failed)
        sid = session.kernel_sid
        assert kit_target.drop(kit_target.open_target) == 1
        assert done.wait(self.TIMEOUTS.response)
        assert isinstance(heard[0], ConnectionFailed)
        session.suspend()
        again = self._recover(session, connect, heard[0].time2wait)
        assert isinstance(again, KernelTransportSession)
        assert again.kernel_sid == sid
        assert self._settles(kit_target, 1)
        assert len(heard) == 1  # once: the old connection's failure is not heard again
        again.watch(None)
        again.logout()

    def _recover(
        self, session: KernelTransportSession, connect: ConnectSpec, time2wait: int
    ) -> KernelTransportSession | TargetRedirected:
        """Reconnect as the session manager's policy does: after Time2Wait (2 s unless
        the target hinted), then every retry delay (1 s) while attempts fail, for at
        most ``TIMEOUTS.login``."""
        time.sleep(time2wait or 2.0)
        deadline = time.monotonic() + self.TIMEOUTS.login
        while True:
            try:
                return session.reconnect(connect)
            except IscsiError:
                if time.monotonic() >= deadline:
                    raise
            time.sleep(1.0)

    def test_same_isid_logs_in_again_after_a_drop(
        self, transport: Transport, kit_target: KitTarget, spec: SpecFactory
    ) -> None:
        """The session manager's recovery for sessions without a kernel: the same ISID
        logs in again (session reinstatement, RFC 7143 §6.3.5) and works."""
        isid = new_isid()
        first = _session(transport.login(spec(kit_target.open_target, isid=isid)))
        assert kit_target.drop(kit_target.open_target) == 1
        first.close()
        second = _session(transport.login(spec(kit_target.open_target, isid=isid)))
        try:
            assert second.isid == isid
            self._ping(second)
            assert self._settles(kit_target, 1)
        finally:
            second.logout()
