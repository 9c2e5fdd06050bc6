"""The guest's kernel loads the modules the kernel tier builds on."""

from __future__ import annotations

import platform
import subprocess
from pathlib import Path

import pytest

MODULES = ("scsi_transport_iscsi", "iscsi_tcp", "target_core_mod", "iscsi_target_mod")


def test_running_in_the_vm_guest() -> None:
    """The harness's guest, not the host: Debian's packaged kernel, no network device."""
    assert platform.release().endswith("-amd64")
    assert sorted(p.name for p in Path("/sys/class/net").iterdir()) == ["lo"]


@pytest.mark.parametrize("module", MODULES)
def test_module_loads(module: str) -> None:
    subprocess.run(["modprobe", module], check=True, timeout=60)
    assert Path("/sys/module", module).is_dir()


def test_iscsi_tcp_registers_its_transport() -> None:
    subprocess.run(["modprobe", "iscsi_tcp"], check=True, timeout=60)
    assert Path("/sys/class/iscsi_transport/tcp/handle").is_file()
