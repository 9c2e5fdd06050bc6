"""Plugin system: pluggy hook specifications, the plugin manager, the transport registry."""

from __future__ import annotations

from iscsikit.plugin.events import SessionEvent, SessionEventKind
from iscsikit.plugin.hookspecs import hookimpl
from iscsikit.plugin.manager import plugin_manager, transports
from iscsikit.plugin.transport import (
    AsyncCommandChannel,
    Capability,
    CommandChannel,
    ConnectSpec,
    KernelTransportSession,
    OffloadPort,
    Timeouts,
    Transport,
    TransportRegistry,
    TransportSession,
)

__all__ = [
    "AsyncCommandChannel",
    "Capability",
    "CommandChannel",
    "ConnectSpec",
    "KernelTransportSession",
    "OffloadPort",
    "SessionEvent",
    "SessionEventKind",
    "Timeouts",
    "Transport",
    "TransportRegistry",
    "TransportSession",
    "hookimpl",
    "plugin_manager",
    "transports",
]
