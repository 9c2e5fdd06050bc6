"""Plugin system: pluggy hook specifications, the plugin manager, the transport registry.

The names below are imported from their modules on first use (PEP 562): a command that
only asks :func:`iscsikit.plugin.manager.offload_ports_possible` must not pay for pluggy
and the transport interface, and a driver importing ``hookimpl`` loads only what it uses.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
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

#: Each public name -> the submodule that defines it.
_HOME = {
    "SessionEvent": "events",
    "SessionEventKind": "events",
    "hookimpl": "hookspecs",
    "plugin_manager": "manager",
    "transports": "manager",
    **dict.fromkeys(
        (
            "AsyncCommandChannel",
            "Capability",
            "CommandChannel",
            "ConnectSpec",
            "KernelTransportSession",
            "OffloadPort",
            "Timeouts",
            "Transport",
            "TransportRegistry",
            "TransportSession",
        ),
        "transport",
    ),
}


def __getattr__(name: str) -> Any:
    home = _HOME.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{home}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
