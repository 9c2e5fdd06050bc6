"""Checks the VM tier's guest tests share (tests/vm): bounded waits and what must hold of
a kernel iSCSI disk, whoever logged it in (open-iscsi or iscsikit's kernel driver)."""

from __future__ import annotations

import os
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import pytest

from iscsikit.sysfs import IscsiSession, SysfsContext

__all__ = [
    "ISCSI_CLASSES",
    "WAIT",
    "assert_by_path_link",
    "assert_dd_lands",
    "bounded",
    "by_path",
    "disk_of",
    "iscsi_objects",
    "kernel_initiator",
    "session_of",
    "wait_for",
    "wait_for_disk",
]

T = TypeVar("T")

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


def disk_of(target: str, lun: int | None = None) -> str | None:
    """The kernel name (``sdb``) of the disk of LUN ``lun`` (None: the first disk) of the
    session to ``target``, if there is one yet."""
    session = session_of(target)
    if session is None:
        return None
    if lun is None:
        disks = session.block_devices()
        return disks[0].path.name if disks else None
    return next((d.block_device for d in session.scsi_devices() if d.lun == lun), None)


def by_path(portal: str, target: str, lun: int) -> Path:
    """udev's by-path link of a LUN (``portal`` is ``host:port``); udev's path_id names
    iSCSI disks ``-iscsi-`` whatever the transport (iser too)."""
    return Path(f"/dev/disk/by-path/ip-{portal}-iscsi-{target}-lun-{lun}")


def wait_for_disk(
    target: str, lun: int | None = None, *, link: Path | None = None, timeout: float = WAIT
) -> str:
    """The disk of ``lun`` (None: the first disk) of the session to ``target`` once the
    kernel has it; with ``link``, udev's by-path link to it is checked too."""
    what = "the session's disk" if lun is None else f"a disk for LUN {lun}"
    wait_for(what, lambda: disk_of(target, lun) is not None, timeout)
    disk = disk_of(target, lun)
    assert disk is not None
    if link is not None:
        assert_by_path_link(disk, link)
    return disk


#: The kernel's iSCSI transport-class objects a login makes and a logout removes.
ISCSI_CLASSES = ("iscsi_session", "iscsi_connection", "iscsi_endpoint")


def iscsi_objects(sysfs: Path = Path("/sys")) -> dict[str, list[str]]:
    """What exists now under ``/sys/class/<c>`` for each of :data:`ISCSI_CLASSES`
    (``session3``, ``connection3:0``, ``ep-1``): empty lists when nothing is left."""
    found: dict[str, list[str]] = {}
    for cls in ISCSI_CLASSES:
        base = sysfs / "class" / cls
        found[cls] = sorted(p.name for p in base.iterdir()) if base.is_dir() else []
    return found


def bounded(what: str, call: Callable[[], T], timeout: float = WAIT) -> T:
    """``call()``, failing the test if it has not returned within ``timeout`` seconds.

    It runs in a daemon thread: a call that hangs becomes this test's failure (naming
    ``what``) instead of the guest's timeout.  Its exception, if any, is re-raised here.
    """
    result: list[T] = []
    error: list[BaseException] = []

    def run() -> None:
        try:
            result.append(call())
        except BaseException as exc:  # handed to the caller's thread
            error.append(exc)

    worker = threading.Thread(target=run, name=f"bounded: {what}", daemon=True)
    worker.start()
    worker.join(timeout)
    if worker.is_alive():
        pytest.fail(f"{what} did not return within {timeout:.0f} s")
    if error:
        raise error[0]
    return result[0]
