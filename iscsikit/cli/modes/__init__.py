"""The mode table: ``-m <mode>`` -> the module that runs it, imported only when used.

Each module has ``run(args: ParsedArgs, env: CliEnv) -> int``.  Keeping this a table of
names (not imports) is what lets ``iscsikit-adm -m node`` start without loading the
protocol stack, the plugin manager or sysfs code.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from iscsikit.cli.env import CliEnv
    from iscsikit.cli.options import ParsedArgs

__all__ = ["MODES", "ModeModule", "load"]

MODES: dict[str, str] = {
    "discovery": "iscsikit.cli.modes.discovery",
    "discoverydb": "iscsikit.cli.modes.discovery",
    "node": "iscsikit.cli.modes.node",
    "session": "iscsikit.cli.modes.session",
    "iface": "iscsikit.cli.modes.iface",
    "fw": "iscsikit.cli.modes.fw",
    "host": "iscsikit.cli.modes.host",
}


class ModeModule(Protocol):
    def run(self, args: ParsedArgs, env: CliEnv) -> int: ...


def load(mode: str) -> ModeModule:
    """The module of ``mode`` (a key of :data:`MODES`)."""
    module: ModeModule = importlib.import_module(MODES[mode])
    return module
