"""The layering contract: which package may import which, and how large a module may be.

Every module under ``iscsikit/`` and ``drivers/`` is parsed (AST only, nothing is
imported) and every import it makes of the project is checked - module-level,
function-local and ``if TYPE_CHECKING:`` imports alike - against :data:`LAYERS`: a
module may import from its own layer or below, never above.

``TYPE_CHECKING`` imports get no exemption.  They cost nothing at run time, but a
lower layer that names a higher layer's type still depends on it (it cannot be read,
typed or reused without it); the way out is a ``Protocol`` in the lower layer, which
the higher one satisfies.

Drivers (``drivers/``, installed as ``iscsikit_drivers``, and the out-of-tree example in
``examples/iscsikit-driver-example``) are plugins: they may import only
:data:`DRIVER_ALLOWED` of the core and their own package (never another driver
package), only public names (no ``_private`` module or name), and read no private
attribute of a core object (``obj._name`` where ``_name`` is not one of the drivers'
own).  The example is held to this so a vendor copying it copies only the public API.

Violations that others are fixing are listed in :data:`KNOWN_VIOLATIONS`; an entry
that no longer occurs fails the test too, so that the list only shrinks.  Each failure
names the file, the line, the imported module and both layers.
"""

from __future__ import annotations

import ast
import functools
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

#: Source trees and the top-level package each installs as.
TREES = {
    "iscsikit": ROOT / "iscsikit",
    "iscsikit_drivers": ROOT / "drivers",
    "iscsikit_example_driver": ROOT
    / "examples/iscsikit-driver-example/src/iscsikit_example_driver",
}
#: The trees that are driver packages (plugins), not the core.
DRIVER_PACKAGES = frozenset(TREES) - {"iscsikit"}

#: The core's layers, bottom (1) to top (8).  A key names a package or module and
#: covers what is below it; the longest key that matches wins.  A package that does
#: not exist yet only reserves its place.
LAYERS: dict[str, int] = {
    # 1 - the sans-I/O protocol core and the errors every layer raises.
    "iscsikit.errors": 1,
    "iscsikit.proto": 1,
    "iscsikit.netlink": 1,
    # 2 - pure SCSI codecs; configuration files and the key registry.
    "iscsikit.scsi": 2,
    "iscsikit.config": 2,
    # 3 - persistent and system state: records, /sys, the daemon's IPC protocol.
    "iscsikit.records": 3,
    "iscsikit.sysfs": 3,
    "iscsikit.ipc": 3,
    # 4 - the driver seam (Transport, registry, hooks) and the TCP plumbing drivers share.
    "iscsikit.plugin": 4,
    "iscsikit.net": 4,
    # 5 - the session manager; discovery.
    "iscsikit.manager": 5,
    "iscsikit.discovery": 5,
    # 6 - what a session gives: LUN I/O, NBD export.
    "iscsikit.lun": 6,
    "iscsikit.nbd": 6,
    # linux-iscsi's configuration turned into records and settings (iscsikit-migrate).
    "iscsikit.migrate": 6,
    # 7 - the Python API; the package itself re-exports it.
    "iscsikit.api": 7,
    "iscsikit": 7,
    # 8 - front ends: the command line, the daemon, console tools, the demo, the pytest
    # plugin and fixtures, ``python -m iscsikit``.
    "iscsikit.cli": 8,
    "iscsikit.daemon": 8,
    "iscsikit.tools": 8,
    "iscsikit.demo": 8,
    "iscsikit.demo_cli": 8,
    "iscsikit.testing": 8,
    "iscsikit.__main__": 8,
    # Per-module overrides: modules that really sit at another level than their package.
    # iscsikit-nbd's console script (argument parsing, exit codes): a front end.
    # ``python -m iscsikit.nbd``: runs that console script.
    "iscsikit.nbd.__main__": 8,
}

#: Names of layers, for messages.
LAYER_NAMES = {
    1: "errors/proto",
    2: "scsi/config",
    3: "records/sysfs/ipc",
    4: "plugin/net",
    5: "manager/discovery",
    6: "lun/nbd",
    7: "api",
    8: "cli/daemon/tools",
}

#: What of the core a driver may import (and their submodules).
DRIVER_ALLOWED = (
    "iscsikit.errors",
    "iscsikit.proto",
    "iscsikit.scsi",
    "iscsikit.config",
    "iscsikit.plugin",
    "iscsikit.net",
    "iscsikit.netlink",
    "iscsikit.sysfs",
)

#: (importing module, imported module) pairs that break the contract today and are
#: being fixed; remove an entry when its import goes (the test says when).
KNOWN_VIOLATIONS: set[tuple[str, str]] = set()

#: No module may be longer than this (lines).
MAX_LINES = 800


@dataclass(frozen=True)
class Module:
    name: str
    path: Path
    is_package: bool

    @property
    def rel(self) -> str:
        return str(self.path.relative_to(ROOT))


@dataclass(frozen=True)
class Import:
    source: Module
    line: int
    target: str  # the module imported (resolved, absolute)
    names: tuple[str, ...]  # names taken from it by ``from ... import``


def _modules() -> dict[str, Module]:
    found = {}
    for package, tree in TREES.items():
        for path in sorted(tree.rglob("*.py")):
            parts = [package, *path.relative_to(tree).with_suffix("").parts]
            is_package = parts[-1] == "__init__"
            if is_package:
                parts.pop()
            name = ".".join(parts)
            found[name] = Module(name, path, is_package)
    return found


MODULES = _modules()


def _resolve(module: Module, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    base = module.name.split(".")
    if not module.is_package:
        base.pop()
    if node.level > 1:
        base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def _imports(module: Module) -> Iterator[Import]:
    """Every import of the project by ``module``, wherever it stands in the file."""
    tree = ast.parse(module.path.read_text(), str(module.path))
    nodes = [n for n in ast.walk(tree) if isinstance(n, ast.Import | ast.ImportFrom)]
    for node in sorted(nodes, key=lambda n: n.lineno):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] in TREES:
                    yield Import(module, node.lineno, alias.name, ())
        elif isinstance(node, ast.ImportFrom):
            base = _resolve(module, node)
            if base.split(".")[0] not in TREES:
                continue
            taken = []
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                if sub in MODULES:  # ``from package import module``
                    yield Import(module, node.lineno, sub, ())
                else:
                    taken.append(alias.name)
            if taken:
                yield Import(module, node.lineno, base, tuple(taken))


def layer_of(name: str) -> int | None:
    """The layer of a core module (None when the table does not place it)."""
    parts = name.split(".")
    for end in range(len(parts), 0, -1):
        key = ".".join(parts[:end])
        if key in LAYERS and (key != "iscsikit" or name == "iscsikit"):
            return LAYERS[key]
    return None


def _describe(layer: int | None) -> str:
    return "no layer" if layer is None else f"layer {layer} ({LAYER_NAMES[layer]})"


def _core_problem(imp: Import) -> str | None:
    source = layer_of(imp.source.name)
    if imp.target.split(".")[0] in DRIVER_PACKAGES:
        return "the core imports a driver (drivers are plugins, loaded by entry point)"
    target = layer_of(imp.target)
    if target is None:
        return f"{imp.target} has no layer in LAYERS"
    if source is not None and target > source:
        return f"{_describe(source)} imports {imp.target}, {_describe(target)}"
    return None


def _driver_problem(imp: Import) -> str | None:
    target = imp.target
    own = imp.source.name.split(".")[0]
    if target.split(".")[0] == own:
        return None
    if target.split(".")[0] in DRIVER_PACKAGES:
        return f"a driver package imports another driver package ({target})"
    if not any(target == a or target.startswith(a + ".") for a in DRIVER_ALLOWED):
        return (
            f"a driver imports {target}, {_describe(layer_of(target))}; drivers may import "
            f"only {', '.join(DRIVER_ALLOWED)}"
        )
    private = [p for p in target.split(".") if p.startswith("_") and p != "__init__"]
    private += [n for n in imp.names if n.startswith("_")]
    if private:
        return f"a driver imports the private name(s) {', '.join(private)} from {target}"
    return None


@functools.cache
def _scan() -> tuple[dict[tuple[str, str], list[str]], list[str]]:
    """Violations by (source, target) with their messages; modules with no layer."""
    found: dict[tuple[str, str], list[str]] = {}
    unplaced = []
    for module in MODULES.values():
        is_driver = module.name.split(".")[0] in DRIVER_PACKAGES
        if not is_driver and layer_of(module.name) is None:
            unplaced.append(f"{module.rel}: module {module.name} has no layer in LAYERS")
        for imp in _imports(module):
            problem = _driver_problem(imp) if is_driver else _core_problem(imp)
            if problem is not None:
                message = f"{module.rel}:{imp.line}: {module.name} -> {imp.target}: {problem}"
                found.setdefault((module.name, imp.target), []).append(message)
    return found, unplaced


def test_every_core_module_has_a_layer() -> None:
    _, unplaced = _scan()
    assert not unplaced, "\n".join(unplaced)


def test_imports_follow_the_layers() -> None:
    found, _ = _scan()
    new = [m for key, messages in sorted(found.items()) if key not in KNOWN_VIOLATIONS
           for m in messages]  # fmt: skip
    assert not new, "layering violations:\n" + "\n".join(new)


def test_known_violations_still_exist() -> None:
    found, _ = _scan()
    stale = sorted(KNOWN_VIOLATIONS - set(found))
    assert not stale, "stale allowlist entries (fixed: remove them from KNOWN_VIOLATIONS):\n" + (
        "\n".join(f"{source} -> {target}" for source, target in stale)
    )


def _own_private_names() -> set[str]:
    """Every ``_name`` the drivers define: functions, classes, names and attributes of
    their own objects (``self._x``) they assign."""
    names = set()
    for module in MODULES.values():
        if module.name.split(".")[0] not in DRIVER_PACKAGES:
            continue
        for node in ast.walk(ast.parse(module.path.read_text())):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                names.add(node.name)
            elif (
                isinstance(node, ast.Attribute)
                and isinstance(node.ctx, ast.Store)
                and isinstance(node.value, ast.Name)
                and node.value.id in ("self", "cls")
            ):
                names.add(node.attr)  # ``self._x = ...``; not ``machine._x = ...``
            elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
                names.add(node.id)
            elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
                names.add(node.target.id)
    return {n for n in names if n.startswith("_")}


def _private_reads(source: str, own: set[str]) -> list[tuple[int, str]]:
    """(line, attribute) of every ``obj._name`` in ``source`` whose name is not in ``own``."""
    return sorted(
        (node.lineno, node.attr)
        for node in ast.walk(ast.parse(source))
        if isinstance(node, ast.Attribute)
        and node.attr.startswith("_")
        and not node.attr.startswith("__")
        and node.attr not in own
    )


def test_drivers_read_no_private_attribute_of_the_core() -> None:
    own = _own_private_names()
    problems = [
        f"{module.rel}:{line}: {module.name} uses .{attr}, a private attribute that no "
        "driver defines (a core object's: make what it needs public there)"
        for module in MODULES.values()
        if module.name.split(".")[0] in DRIVER_PACKAGES
        for line, attr in _private_reads(module.path.read_text(), own)
    ]
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("name", sorted(MODULES))
def test_module_size(name: str) -> None:
    module = MODULES[name]
    lines = len(module.path.read_text().splitlines())
    assert lines <= MAX_LINES, f"{module.rel}: {lines} lines, over {MAX_LINES}: split it by concern"


# -- the checker itself ----------------------------------------------------------------------


def _fake(name: str, source: str, tmp_path: Path, *, package: bool = False) -> list[str]:
    path = tmp_path / "m.py"
    path.write_text(source)
    module = Module(name, path, package)
    problems = []
    for imp in _imports(module):
        driver = name.partition(".")[0] in DRIVER_PACKAGES
        check = _driver_problem if driver else _core_problem
        problem = check(imp)
        if problem is not None:
            problems.append(f"{imp.line}: {imp.target}: {problem}")
    return problems


def test_checker_catches_upward_imports_everywhere(tmp_path: Path) -> None:
    source = (
        "from typing import TYPE_CHECKING\n"
        "import iscsikit.proto.pdu\n"
        "if TYPE_CHECKING:\n"
        "    from iscsikit.lun import Lun\n"
        "def f() -> None:\n"
        "    from iscsikit import api\n"
        "    import iscsikit.cli.main\n"
        "from ..manager import policy\n"
        "from iscsikit import login\n"
    )
    problems = _fake("iscsikit.records.store", source, tmp_path)
    assert [p.split(":")[0] for p in problems] == ["4", "6", "7", "8", "9"]
    assert "layer 3 (records/sysfs/ipc) imports iscsikit.lun, layer 6 (lun/nbd)" in problems[0]
    assert "-> iscsikit.manager" in problems[3] or "iscsikit.manager" in problems[3]
    assert "imports iscsikit, layer 7" in problems[4]  # a name of the package's __init__


def test_checker_allows_own_layer_and_below(tmp_path: Path) -> None:
    source = "from iscsikit.errors import IscsiError\nfrom . import framing\nimport os\n"
    assert _fake("iscsikit.proto.login", source, tmp_path) == []
    assert _fake("iscsikit.lun.lun", "from iscsikit.nbd import wire\n", tmp_path) == []


def test_checker_holds_drivers_to_public_core_names(tmp_path: Path) -> None:
    source = (
        "from iscsikit.proto.task import Request, _Request\n"
        "from iscsikit.records import NodeRecord\n"
        "from iscsikit.proto import _hidden\n"
        "from .connection import x\n"
    )
    problems = _fake("iscsikit_drivers.usertcp.aio", source, tmp_path)
    assert len(problems) == 3
    assert "_Request" in problems[0]
    assert "iscsikit.records" in problems[1]
    assert "_hidden" in problems[2]


def test_checker_keeps_the_example_driver_to_its_own_package(tmp_path: Path) -> None:
    source = (
        "from iscsikit.net import PduConnection\n"
        "from .session import ExampleSession\n"
        "from iscsikit_drivers.usertcp import UserTcpTransport\n"
    )
    problems = _fake("iscsikit_example_driver.connect", source, tmp_path)
    assert len(problems) == 1 and "another driver package" in problems[0]


def test_layer_table() -> None:
    assert layer_of("iscsikit") == 7
    assert layer_of("iscsikit.proto.ffp") == 1
    assert layer_of("iscsikit.nbd.__main__") == 8
    assert layer_of("iscsikit.nbd.wire") == 6
    assert layer_of("iscsikit.unknown") is None
    assert set(LAYERS.values()) == set(LAYER_NAMES)


def test_checker_catches_private_attribute_reads() -> None:
    source = (
        "class C:\n"
        "    def __init__(self, machine):\n"
        "        self._mine = machine._out\n"
        "        machine._events = []\n"
        "        self.__dict__\n"
    )
    assert _private_reads(source, {"_mine"}) == [(3, "_out"), (4, "_events")]
