"""``iscsikit.proto`` is sans-I/O: no sockets, asyncio, threads, subprocesses or clocks.

Two checks.  Statically, no module of the package imports an I/O or clock module
(AST walk, so a lazy import inside a function is caught too).  At run time, importing
every proto module in a fresh interpreter loads no I/O module beyond what the ``crc32c``
dependency loads on its own (its ``__init__`` imports ``importlib.metadata``, which
pulls in ``email`` and through it ``socket``; that baseline is measured, not assumed).
"""

from __future__ import annotations

import ast
import json
import pkgutil
import subprocess
import sys
from pathlib import Path

import iscsikit.proto

FORBIDDEN = {
    "socket", "ssl", "select", "selectors", "asyncio", "threading", "_thread",
    "multiprocessing", "concurrent", "subprocess", "signal", "time", "datetime",
    "logging", "os", "io", "pathlib", "shutil", "tempfile", "random",
}  # fmt: skip

PROTO_DIR = Path(iscsikit.proto.__file__).parent
MODULES = sorted(f"iscsikit.proto.{m.name}" for m in pkgutil.iter_modules([str(PROTO_DIR)]))


def imported_names(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def test_there_are_proto_modules() -> None:
    assert {"iscsikit.proto.pdu", "iscsikit.proto.login", "iscsikit.proto.chap"} <= set(MODULES)


def test_no_proto_module_imports_io_or_clocks() -> None:
    offenders = {
        path.name: sorted(imported_names(path) & FORBIDDEN) for path in PROTO_DIR.glob("*.py")
    }
    assert {k: v for k, v in offenders.items() if v} == {}


def _loaded_after(imports: list[str]) -> set[str]:
    code = (
        "import sys, json\n"
        "before = set(sys.modules)\n"
        f"for name in {imports!r}:\n"
        "    __import__(name)\n"
        "print(json.dumps(sorted(set(sys.modules) - before)))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return set(json.loads(out.stdout))


def test_importing_proto_loads_no_io_module_beyond_the_crc32c_baseline() -> None:
    baseline = _loaded_after(["crc32c"])
    loaded = _loaded_after(MODULES)
    extra = {m.split(".")[0] for m in loaded - baseline}
    assert extra & (FORBIDDEN - {"os", "io"}) == set()
    # And nothing outside the standard library's pure modules, crc32c and iscsikit itself.
    assert not {m for m in extra if m.startswith("iscsikit_drivers")}
