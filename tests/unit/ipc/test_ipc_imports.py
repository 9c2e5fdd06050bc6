"""The protocol module is sans-I/O, and the client (imported by every daemon-bound command)
loads no asyncio and no threads."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

_CHECK = (
    "import sys, json\n"
    "before = set(sys.modules)\n"
    "import {module}\n"
    "print(json.dumps(sorted(set(sys.modules) - before)))\n"
)


def loaded_by(module: str) -> set[str]:
    out = subprocess.run(
        [sys.executable, "-c", _CHECK.format(module=module)],
        check=True, capture_output=True, text=True,
    ).stdout  # fmt: skip
    return set(json.loads(out))


@pytest.mark.parametrize("module", ["iscsikit.ipc.protocol", "iscsikit.ipc.errors"])
def test_protocol_is_sans_io(module: str) -> None:
    io = {"socket", "select", "selectors", "asyncio", "threading", "subprocess", "ssl", "time"}
    assert not io & loaded_by(module)


def test_client_is_light() -> None:
    loaded = loaded_by("iscsikit.ipc.client")
    assert not {"asyncio", "threading", "concurrent", "subprocess"} & loaded
