"""Build the pluggy plugin manager and the transport registry, once per process.

Plugins come from the ``iscsikit`` entry-point group (the bundled ``usertcp`` driver
registers there exactly as a vendor's driver would) and from explicit
:func:`plugin_manager` arguments in tests.  ``check_pending()`` runs at start-up so a
misspelled hook implementation fails loudly instead of being ignored.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable

import pluggy

from iscsikit.plugin import hookspecs
from iscsikit.plugin.transport import TransportRegistry

_lock = threading.Lock()
_cache: dict[str, tuple[pluggy.PluginManager, TransportRegistry]] = {}


def build(
    plugins: Iterable[object] = (), *, entry_points: bool = True
) -> tuple[pluggy.PluginManager, TransportRegistry]:
    """A fresh plugin manager (entry points + ``plugins``) and its filled registry."""
    pm = pluggy.PluginManager(hookspecs.PROJECT)
    pm.add_hookspecs(hookspecs)
    if entry_points:
        pm.load_setuptools_entrypoints(hookspecs.PROJECT)
    for plugin in plugins:
        pm.register(plugin)
    pm.check_pending()
    registry = TransportRegistry()
    pm.hook.iscsikit_register_transports(registry=registry)
    return pm, registry


def default() -> tuple[pluggy.PluginManager, TransportRegistry]:
    """The process-wide plugin manager and registry, built on first use."""
    with _lock:
        if "default" not in _cache:
            _cache["default"] = build()
        return _cache["default"]


def plugin_manager() -> pluggy.PluginManager:
    return default()[0]


def transports() -> TransportRegistry:
    return default()[1]
