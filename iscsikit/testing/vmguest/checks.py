"""Checks the VM tier's guest tests share (tests/vm): bounded waits and what must hold of
a kernel iSCSI disk, whoever logged it in (open-iscsi or iscsikit's kernel driver)."""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from iscsikit.sysfs import IscsiSession, SysfsContext

__all__ = [
    "WAIT",
    "assert_by_path_link",
    "assert_dd_lands",
    "disk_of",
    "kernel_initiator",
    "session_of",
    "wait_for",
]

#: Seconds; generous, the guest runs under software emulation.
WAIT = 90.0


def wait_for(what: str, check: Callable[[], bool], timeout: float = WAIT) -> None:
    """Poll ``check`` until it holds; fail the test after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.2)


def kernel_initiator(name: str) -> None:
    """Ready the guest's kernel initiator: iscsi_tcp and sd_mod loaded (busybox's modprobe
    has no modules.alias to autoload sd_mod) and ``name`` in /etc/iscsi/initiatorname.iscsi,
    which iscsikit-adm and iscsiadm both read."""
    for module in ("iscsi_tcp", "sd_mod"):
        subprocess.run(["modprobe", module], check=True, timeout=WAIT)
    Path("/etc/iscsi").mkdir(parents=True, exist_ok=True)
    Path("/etc/iscsi/initiatorname.iscsi").write_text(f"InitiatorName={name}\n")


def assert_by_path_link(disk: str, by_path: Path) -> None:
    """``/dev/<disk>`` is a block device and udev's by-path link points at it."""
    assert Path("/dev", disk).is_block_device()
    wait_for(f"udev's {by_path}", by_path.exists)
    assert by_path.resolve() == Path("/dev", disk)


def assert_dd_lands(disk: str, backing: Path, offset: int) -> None:
    """1 MiB written with ``dd oflag=direct`` at ``offset`` is byte-exact in ``backing``."""
    data = os.urandom(1 << 20)
    dd = subprocess.run(
        ["dd", f"of=/dev/{disk}", "bs=64k", f"seek={offset}", "oflag=direct,seek_bytes"],
        input=data,
        capture_output=True,
        timeout=WAIT,
        check=False,
    )
    assert dd.returncode == 0, dd.stderr
    with open(backing, "rb") as f:
        f.seek(offset)
        assert f.read(len(data)) == data


def session_of(target: str) -> IscsiSession | None:
    """The kernel session to ``target`` (sysfs), whoever made it; None when there is none."""
    return next((s for s in SysfsContext().sessions() if s.targetname == target), None)


def disk_of(target: str) -> str | None:
    """The kernel name (``sdb``) of the first disk of the session to ``target``, if any."""
    session = session_of(target)
    disks = session.block_devices() if session is not None else []
    return disks[0].path.name if disks else None
