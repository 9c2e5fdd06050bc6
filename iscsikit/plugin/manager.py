"""Build the pluggy plugin manager and the transport registry, once per process.

Plugins come from the ``iscsikit`` entry-point group (the bundled ``usertcp`` driver
registers there exactly as a vendor's driver would) and from explicit
:func:`plugin_manager` arguments in tests.  ``check_pending()`` runs at start-up so a
misspelled hook implementation fails loudly instead of being ignored.

Importing every installed driver costs more than anything else ``iscsikit-adm`` does at
start-up (bench/startup_bench.py), so the process-wide manager loads them on demand:

* :func:`transports` is a registry that imports, for a transport asked for by name, the
  plugin of the entry point of that name first (``tcp``, ``qla4xxx``: the bundled
  drivers and the convention for others), and every plugin when that does not register
  it, or when all names are asked for (``names()``, iteration);
* :func:`plugin_manager` loads every plugin (a hook call goes to all of them);
* :func:`offload_ports_possible` tells when the ``iscsikit_offload_ports`` hook cannot
  answer anything, so its callers (``iscsikit.manager.ifaces``) skip the drivers.

:func:`build` makes a fresh manager with every plugin loaded, as before.  Nothing here
runs at import; pluggy itself is imported when a manager is made.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from iscsikit.plugin.transport import Transport, TransportRegistry

if TYPE_CHECKING:
    from importlib.metadata import EntryPoint

    import pluggy

_lock = threading.RLock()
_cache: dict[str, _LazyPlugins] = {}


def _new_manager() -> pluggy.PluginManager:
    import pluggy

    from iscsikit.plugin import hookspecs

    pm = pluggy.PluginManager(hookspecs.PROJECT)
    pm.add_hookspecs(hookspecs)
    return pm


def build(
    plugins: Iterable[object] = (), *, entry_points: bool = True
) -> tuple[pluggy.PluginManager, TransportRegistry]:
    """A fresh plugin manager (entry points + ``plugins``) and its filled registry."""
    from iscsikit.plugin import hookspecs

    pm = _new_manager()
    if entry_points:
        pm.load_setuptools_entrypoints(hookspecs.PROJECT)
    for plugin in plugins:
        pm.register(plugin)
    pm.check_pending()
    registry = TransportRegistry()
    pm.hook.iscsikit_register_transports(registry=registry)
    return pm, registry


class _LazyPlugins:
    """The process-wide manager, its entry-point plugins registered as they are needed.

    A plugin is registered under its entry-point name, the first entry point of a name
    winning, as pluggy's ``load_setuptools_entrypoints`` does; its
    ``iscsikit_register_transports`` runs when it is registered."""

    def __init__(self) -> None:
        self.pm = _new_manager()
        self.registry = _LazyRegistry(self)
        self._pending: dict[str, EntryPoint] | None = None

    def _entry_points(self) -> dict[str, EntryPoint]:
        if self._pending is None:
            from importlib.metadata import entry_points

            from iscsikit.plugin.hookspecs import PROJECT

            self._pending = {}
            for ep in entry_points(group=PROJECT):
                self._pending.setdefault(ep.name, ep)
        return self._pending

    def load(self, name: str | None = None) -> None:
        """Register the plugin of entry point ``name`` (None: every one not yet loaded)."""
        with _lock:
            pending = self._entry_points()
            for ep_name in list(pending) if name is None else [name]:
                ep = pending.get(ep_name)
                if ep is None:
                    continue
                if not (self.pm.get_plugin(ep_name) or self.pm.is_blocked(ep_name)):
                    self._register(ep_name, ep.load())
                # Only now: a plugin that failed to load fails again on the next use.
                del pending[ep_name]

    def _register(self, name: str, plugin: object) -> None:
        self.pm.register(plugin, name=name)
        try:
            self.pm.check_pending()
            others = [p for p in self.pm.get_plugins() if p is not plugin]
            register = self.pm.subset_hook_caller("iscsikit_register_transports", others)
            register(registry=self.registry)
        except BaseException:
            self.pm.unregister(plugin)
            raise

    def everything(self) -> pluggy.PluginManager:
        self.load()
        return self.pm


class _LazyRegistry(TransportRegistry):
    """:class:`TransportRegistry` whose lookups load the plugins they need first."""

    def __init__(self, plugins: _LazyPlugins) -> None:
        super().__init__()
        self._plugins = plugins

    def _want(self, name: str) -> None:
        if name not in self._classes:
            self._plugins.load(name)
        if name not in self._classes:
            self._plugins.load()

    def get(self, name: str) -> type[Transport]:
        self._want(name)
        return super().get(name)

    def names(self) -> list[str]:
        self._plugins.load()
        return super().names()

    def __contains__(self, name: object) -> bool:
        if isinstance(name, str):
            self._want(name)
        return super().__contains__(name)

    def __iter__(self) -> Iterator[type[Transport]]:
        self._plugins.load()
        return super().__iter__()


def _plugins() -> _LazyPlugins:
    with _lock:
        if "default" not in _cache:
            _cache["default"] = _LazyPlugins()
        return _cache["default"]


def default() -> tuple[pluggy.PluginManager, TransportRegistry]:
    """The process-wide plugin manager and registry, every plugin loaded."""
    plugins = _plugins()
    return plugins.everything(), plugins.registry


def plugin_manager() -> pluggy.PluginManager:
    """The process-wide plugin manager, every plugin loaded."""
    return _plugins().everything()


def transports() -> TransportRegistry:
    """The process-wide transport registry; a driver is imported when first needed."""
    return _plugins().registry


#: Transports whose kernel drivers make one SCSI host per *session*, not per port
#: (iscsi_tcp, ib_iser): their hosts are never offload ports.
SOFTWARE_TRANSPORTS = frozenset({"tcp", "iser"})


def offload_ports_possible(root: Path) -> bool:
    """Whether ``iscsikit_offload_ports`` can report a port under ``root``: only when
    ``root/sys`` has an iSCSI host of a transport other than :data:`SOFTWARE_TRANSPORTS`.
    An offload port is an iSCSI host of its HBA's driver (scsi_transport_iscsi makes
    one per port), so with none no driver has a port and the hook need not be called --
    nor every driver imported to call it."""
    from iscsikit.sysfs import SysfsContext

    return any(
        host.transport_name not in SOFTWARE_TRANSPORTS for host in SysfsContext(root).hosts()
    )
