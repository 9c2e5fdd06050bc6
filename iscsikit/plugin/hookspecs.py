"""The hooks a plugin may implement (pluggy project name and entry-point group: ``iscsikit``).

Hooks are few on purpose: they are called at start-up or on rare events.  The hot path
(login, discovery, I/O) goes through the typed :class:`~iscsikit.plugin.transport.Transport`
interface that a plugin registers, never through a hook call.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:
    from pathlib import Path

    from iscsikit.plugin.events import SessionEvent
    from iscsikit.plugin.transport import OffloadPort, TransportRegistry

PROJECT = "iscsikit"

hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


@hookspec
def iscsikit_register_transports(registry: TransportRegistry) -> None:
    """Register transport drivers: call ``registry.register(MyTransport)`` for each.

    Called once, when the plugin manager is first built.  The return value is ignored.
    Registering a name twice is an error (two drivers cannot both be ``tcp``).
    """


@hookspec
def iscsikit_session_event(event: SessionEvent) -> None:
    """Observe a session event (logged in, logged out, login failed, redirected).

    Called after the fact, synchronously, from the thread that caused the event; keep
    it quick.  Exceptions propagate to the caller, so a plugin must not raise.
    """


@hookspec
def iscsikit_offload_ports(root: Path) -> list[OffloadPort]:
    """Report the iSCSI offload ports of this driver's hardware (one per MAC address).

    ``root`` is the filesystem root to read (``/``, or a simulated tree in tests: the
    CLI's ``ISCSIKIT_ROOT``); a driver reads ``root / "sys"`` and nothing else, never
    the environment.  Called when ifaces are listed or chosen for binding (``-m
    iface``, discovery), and only when ``root`` has an iSCSI host of a transport other
    than ``tcp`` and ``iser`` (see ``iscsikit.plugin.manager.offload_ports_possible``:
    every offload port is an iSCSI host, and a listing with none imports no driver).  For
    each port without an iface the core creates ``ifaces/<transport>.<mac>``, as
    open-iscsi's ``iscsi_default_iface_setup`` does.  Return ``[]`` when the hardware
    is absent; every implementation's list is used.
    """
    raise NotImplementedError  # a specification: plugins implement it
