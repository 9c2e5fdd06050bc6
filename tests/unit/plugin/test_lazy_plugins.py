"""The process-wide plugin manager imports a driver when it is first needed.

Each check runs in a fresh interpreter (the manager is built once per process) and
reports which driver modules it imported; :func:`manager.build` (every plugin at once)
is the reference the lazily filled registry must agree with.
"""

from __future__ import annotations

import json
import subprocess
import sys
from importlib.metadata import entry_points
from typing import Any

import pytest

from iscsikit.errors import TransportNotFoundError
from iscsikit.plugin import manager

_PREFIX = """
import json, sys
from iscsikit.plugin import manager
result = {}
"""
_SUFFIX = """
result["drivers"] = sorted(m for m in sys.modules if m.startswith("iscsikit_drivers."))
print(json.dumps(result))
"""


def run(body: str) -> dict[str, Any]:
    """Run ``body`` (which fills ``result``) in a fresh interpreter."""
    done = subprocess.run(
        [sys.executable, "-c", _PREFIX + body + _SUFFIX],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    doc: dict[str, Any] = json.loads(done.stdout)
    return doc


def _drivers_of(*names: str) -> set[str]:
    """The top modules of the entry points ``names`` and the packages above them."""
    values = {ep.name: ep.value for ep in entry_points(group="iscsikit")}
    out: set[str] = set()
    for name in names:
        parts = values[name].split(".")
        out |= {".".join(parts[:i]) for i in range(2, len(parts) + 1)}
    return out


def test_a_transport_by_name_imports_its_own_driver_only() -> None:
    got = run('result["cls"] = manager.transports().get("usertcp").__module__')
    assert got["cls"].startswith("iscsikit_drivers.usertcp")
    assert not any(m.startswith(("iscsikit_drivers.offload", "iscsikit_drivers.kerneltcp"))
                   for m in got["drivers"])  # fmt: skip
    assert _drivers_of("usertcp") <= set(got["drivers"])


def test_an_offload_driver_by_name_leaves_the_other_five_alone() -> None:
    got = run('result["in"] = "qla4xxx" in manager.transports()')
    assert got["in"] is True
    values = {ep.name: ep.value for ep in entry_points(group="iscsikit")}
    assert values["qla4xxx"] in got["drivers"]
    others = {values[n] for n in ("cxgb3i", "cxgb4i", "bnx2i", "be2iscsi", "qedi", "usertcp")}
    assert others.isdisjoint(got["drivers"])


def test_names_and_the_plugin_manager_see_every_plugin_as_build_does() -> None:
    pm, registry = manager.build()
    got = run(
        'result["first"] = manager.transports().get("tcp").name\n'
        'result["names"] = manager.transports().names()\n'
        'result["plugins"] = sorted(n for n, _ in manager.plugin_manager().list_name_plugin())\n'
    )
    assert got["first"] == "tcp"
    assert got["names"] == registry.names()
    assert got["plugins"] == sorted(name for name, _ in pm.list_name_plugin())
    assert _drivers_of(*(ep.name for ep in entry_points(group="iscsikit"))) <= set(got["drivers"])


def test_an_unknown_name_loads_everything_and_names_what_is_there() -> None:
    _, registry = manager.build()
    with pytest.raises(TransportNotFoundError) as expected:
        registry.get("nosuch")
    got = run(
        "try:\n"
        '    manager.transports().get("nosuch")\n'
        "except Exception as exc:\n"
        '    result["error"] = [type(exc).__name__, str(exc)]\n'
        'result["iser"] = "iser" in manager.transports()\n'
    )
    assert got["error"] == ["TransportNotFoundError", str(expected.value)]
    assert got["iser"] is True


def test_nothing_is_imported_until_asked() -> None:
    got = run('result["registry"] = type(manager.transports()).__name__')
    assert got["drivers"] == []
