"""The NBD protocol modules are sans-I/O: no sockets, asyncio, threads or clocks."""

from __future__ import annotations

import ast
from pathlib import Path

import iscsikit.nbd

PURE = ("constants.py", "events.py", "wire.py", "protocol.py")
FORBIDDEN = {
    "socket", "ssl", "select", "selectors", "asyncio", "threading", "_thread",
    "multiprocessing", "concurrent", "subprocess", "signal", "time", "datetime",
    "logging", "os", "io", "pathlib", "shutil", "tempfile", "random",
}  # fmt: skip


def imported(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
            if node.module.startswith("iscsikit.nbd."):
                names.add(node.module)
    return names


def test_protocol_modules_import_no_io() -> None:
    root = Path(iscsikit.nbd.__file__).parent
    for name in PURE:
        names = imported(root / name)
        assert not names & FORBIDDEN, name
        assert not {"iscsikit.nbd.server", "iscsikit.nbd.align"} & names, name
