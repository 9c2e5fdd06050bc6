"""The plugin manager loads the bundled driver through the entry point; the registry is strict."""

from __future__ import annotations

import pytest

from iscsikit.errors import InvalidParameterError, IscsiErr, TransportNotFoundError
from iscsikit.plugin import Transport, TransportRegistry, hookimpl, manager
from iscsikit.plugin.events import SessionEvent, SessionEventKind


def test_usertcp_comes_from_the_entry_point() -> None:
    pm, registry = manager.build()
    assert "usertcp" in registry
    cls = registry.get("usertcp")
    assert cls.__module__.startswith("iscsikit_drivers.usertcp")
    names = {name for name, _ in pm.list_name_plugin()}
    assert "usertcp" in names  # registered under its entry-point name


def test_unknown_transport_is_code_12() -> None:
    with pytest.raises(TransportNotFoundError) as info:
        TransportRegistry().get("qla4xxx")
    assert info.value.code is IscsiErr.TRANS_NOT_FOUND


def test_third_party_plugin_registers_a_transport_and_sees_events() -> None:
    events: list[SessionEvent] = []

    class Fake(Transport):
        name = "fake"

        def discover_sendtargets(self, spec, query="All"):  # type: ignore[no-untyped-def]
            return []

        def login(self, spec):  # type: ignore[no-untyped-def]
            raise NotImplementedError

    class Plugin:
        @hookimpl
        def iscsikit_register_transports(self, registry: TransportRegistry) -> None:
            registry.register(Fake)

        @hookimpl
        def iscsikit_session_event(self, event: SessionEvent) -> None:
            events.append(event)

    pm, registry = manager.build([Plugin()], entry_points=False)
    assert registry.names() == ["fake"]
    assert isinstance(registry.create("fake"), Fake)
    event = SessionEvent(SessionEventKind.LOGGED_IN, "fake", "iqn.x", "1.2.3.4:3260")
    pm.hook.iscsikit_session_event(event=event)
    assert events == [event]


def test_misspelled_hook_fails_loudly() -> None:
    class Typo:
        @hookimpl
        def iscsikit_register_transport(self, registry: TransportRegistry) -> None:
            """One letter short of the real hook name."""

    with pytest.raises(Exception, match="unknown hook"):
        manager.build([Typo()], entry_points=False)


def test_registry_refuses_duplicates_and_non_transports() -> None:
    registry = TransportRegistry()

    class One(Transport):
        name = "dup"

        def discover_sendtargets(self, spec, query="All"):  # type: ignore[no-untyped-def]
            return []

        def login(self, spec):  # type: ignore[no-untyped-def]
            raise NotImplementedError

    class Two(One):
        pass

    registry.register(One)
    registry.register(One)  # same class again is harmless
    with pytest.raises(InvalidParameterError, match="twice"):
        registry.register(Two)
    with pytest.raises(InvalidParameterError):
        registry.register(object)  # type: ignore[arg-type]
