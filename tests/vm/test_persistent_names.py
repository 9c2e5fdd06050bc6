"""The opt-in persistent names (docs/persistent-names.md) on a real kernel and udev.

conf/61-iscsikit-persistent.rules is installed as a user would (its PROGRAM pointed at
this checkout's ``iscsikit-persistent-name``), iscsikitd logs two targets in through the
kernel, and udev makes ``/dev/iscsi/bus<B>/target<T>/lun<L>/{disk,partN}`` from the
bindings file.  Logged out and back in the other order, each target keeps its name: the
kernel's sdX letters swap, the /dev/iscsi links do not.
"""

from __future__ import annotations

import os
import struct
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from iscsikit.records.bindings import Bindings
from iscsikit.testing.daemon import RunningDaemon
from iscsikit.testing.plugin import require_tgt
from iscsikit.testing.tgtd import Tgtd
from iscsikit.testing.vmguest.checks import (
    WAIT,
    assert_dd_lands,
    disk_of,
    kernel_initiator,
    wait_for,
)

INITIATOR = "iqn.2024-01.test.iscsikit.vm:names-initiator"
FIRST = "iqn.2024-01.test.iscsikit.vm:names-first"
SECOND = "iqn.2024-01.test.iscsikit.vm:names-second"
RULE = Path(__file__).parents[2] / "conf" / "61-iscsikit-persistent.rules"
INSTALLED = Path("/etc/udev/rules.d/61-iscsikit-persistent.rules")
HELPER = "/usr/bin/iscsikit-persistent-name"


@dataclass
class Setup:
    tgtd: Tgtd
    tids: dict[str, int]
    daemon: RunningDaemon

    def adm(self, *argv: str) -> subprocess.CompletedProcess[bytes]:
        return self.daemon.adm(*argv)

    def login(self, target: str) -> str:
        done = self.adm("-m", "node", "-T", target, "-p", self.tgtd.portal, "-l")
        assert done.returncode == 0, done.stderr
        wait_for(f"the disk of {target}", lambda: disk_of(target) is not None)
        disk = disk_of(target)
        assert disk is not None
        return disk

    def logout(self, target: str) -> None:
        done = self.adm("-m", "node", "-T", target, "-p", self.tgtd.portal, "-u")
        assert done.returncode == 0, done.stderr
        wait_for(f"the session to {target} to go", lambda: disk_of(target) is None)


def _udevadm(*argv: str) -> None:
    subprocess.run(["udevadm", *argv], check=True, timeout=WAIT)


def _install_rule(bin_dir: Path) -> None:
    """The rule as shipped, with its helper path pointed at this checkout's helper."""
    helper = bin_dir / "iscsikit-persistent-name"
    helper.write_text(f'#!/bin/sh\nexec {sys.executable} -m iscsikit.tools.persistent_name "$@"\n')
    helper.chmod(0o755)
    text = RULE.read_text()
    assert HELPER in text
    INSTALLED.parent.mkdir(parents=True, exist_ok=True)
    INSTALLED.write_text(text.replace(HELPER, str(helper)))
    _udevadm("control", "--reload")


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    kernel_initiator(INITIATOR)
    require_tgt()
    Bindings.under(Path("/")).path.unlink(missing_ok=True)
    _install_rule(tmp_path_factory.mktemp("bin"))
    try:
        with Tgtd(tmp_path_factory.mktemp("tgtd"), start_timeout=WAIT) as tgtd:
            tids = {t: tgtd.add_target(t, luns=1, lun_size=16 << 20) for t in (FIRST, SECOND)}
            daemon = RunningDaemon(Path("/"))
            try:
                found = daemon.adm("-m", "discovery", "-t", "st", "-p", tgtd.portal)
                assert found.returncode == 0, found.stderr
                yield Setup(tgtd, tids, daemon)
            finally:
                for target in (FIRST, SECOND):
                    daemon.adm("-m", "node", "-T", target, "-p", tgtd.portal, "-u")
                daemon.stop()
    finally:
        INSTALLED.unlink(missing_ok=True)
        _udevadm("control", "--reload")


def _link(target_id: int, leaf: str = "disk") -> Path:
    return Path(f"/dev/iscsi/bus0/target{target_id}/lun1/{leaf}")


def _assert_link(link: Path, disk: str) -> None:
    wait_for(f"udev's {link}", link.exists)
    assert link.resolve() == Path("/dev", disk)


def test_links_follow_the_bindings_file(setup: Setup) -> None:
    first = setup.login(FIRST)
    second = setup.login(SECOND)
    _assert_link(_link(0), first)
    _assert_link(_link(1), second)
    bindings = Bindings.under(Path("/")).path.read_text().split("\n")
    assert bindings[:2] == [f"0 0 {FIRST}", f"0 1 {SECOND}"]
    # Data written through the persistent name lands in that target's backing file.
    assert_dd_lands(_link(1).resolve().name, setup.tgtd.backing_path(setup.tids[SECOND]), 1 << 20)


def _write_one_partition(device: Path) -> None:
    """An MBR with one Linux partition from sector 2048 to the end."""
    sectors = int(Path(f"/sys/block/{device.name}/size").read_text())
    entry = struct.pack("<B3sB3sII", 0, b"\0\0\0", 0x83, b"\0\0\0", 2048, sectors - 2048)
    mbr = bytearray(512)
    mbr[446:462] = entry
    mbr[510:512] = b"\x55\xaa"
    fd = os.open(device, os.O_WRONLY | os.O_SYNC)
    try:
        os.write(fd, mbr)
    finally:
        os.close(fd)
    subprocess.run(["blockdev", "--rereadpt", str(device)], check=True, timeout=WAIT)


def test_partitions_get_part_links(setup: Setup) -> None:
    disk = disk_of(FIRST)
    assert disk is not None
    _write_one_partition(Path("/dev", disk))
    _assert_link(_link(0, "part1"), f"{disk}1")


def test_names_survive_logging_in_the_other_way_round(setup: Setup) -> None:
    before = {FIRST: disk_of(FIRST), SECOND: disk_of(SECOND)}
    setup.logout(FIRST)
    setup.logout(SECOND)
    wait_for("the links to go", lambda: not _link(0).exists() and not _link(1).exists())
    second = setup.login(SECOND)
    first = setup.login(FIRST)
    assert (first, second) == (before[SECOND], before[FIRST])  # the kernel's names swapped
    _assert_link(_link(0), first)
    _assert_link(_link(1), second)
    _assert_link(_link(0, "part1"), f"{first}1")
