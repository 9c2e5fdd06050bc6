"""The guest's kernel loads the modules the kernel tier builds on."""

from __future__ import annotations

import platform
import subprocess
from pathlib import Path

import pytest

from iscsikit.testing.ibft import VM_NIC_MAC

MODULES = ("scsi_transport_iscsi", "iscsi_tcp", "target_core_mod", "iscsi_target_mod")


def test_running_in_the_vm_guest() -> None:
    """The harness's guest, not the host: Debian's packaged kernel, no way out -- only
    loopback, and the iBFT's NIC (qemu gives it no backend) once virtio_net is loaded."""
    assert platform.release().endswith("-amd64")
    for net in Path("/sys/class/net").iterdir():
        if net.name != "lo":
            assert (net / "address").read_text().strip() == VM_NIC_MAC, net.name


@pytest.mark.parametrize("module", MODULES)
def test_module_loads(module: str) -> None:
    subprocess.run(["modprobe", module], check=True, timeout=60)
    assert Path("/sys/module", module).is_dir()


def test_iscsi_tcp_registers_its_transport() -> None:
    subprocess.run(["modprobe", "iscsi_tcp"], check=True, timeout=60)
    assert Path("/sys/class/iscsi_transport/tcp/handle").is_file()
