"""``iscsikit-adm -m node -l`` on a real kernel: iscsikitd logs the node in through the
kernel's iscsi_tcp (the ``tcp`` driver, chosen because the kernel offers it), and the
session is an ordinary kernel session -- a disk, its by-path link, data in tgtd's
backing file, ``-m session -P 3`` as iscsiadm prints it, recovery after the target drops
the connection (same sid, a running ``dd`` completes with the right data), I/O failing
once ``replacement_timeout`` passes, adoption by a restarted daemon, logout.

No iscsid runs here: the daemon is iscsikitd (the real /, /sys and /etc/iscsi of the
guest).  The tests run in file order and share one daemon.
"""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from iscsikit.testing.daemon import RunningDaemon
from iscsikit.testing.plugin import require_tgt
from iscsikit.testing.tgtd import Tgtd
from iscsikit.testing.vmguest.checks import (
    WAIT,
    assert_by_path_link,
    assert_dd_lands,
    disk_of,
    kernel_initiator,
    session_of,
    wait_for,
)
from iscsikit.testing.vmguest.compare import IPC_ONLY, assert_same_lines, run

IQN = "iqn.2024-01.test.iscsikit.vm:adm"
IQN_SHORT = "iqn.2024-01.test.iscsikit.vm:adm-short"
INITIATOR = "iqn.2024-01.test.iscsikit.vm:adm-initiator"


@dataclass
class Setup:
    tgtd: Tgtd
    tid: int
    short_tid: int
    daemon: RunningDaemon

    def adm(self, *argv: str) -> subprocess.CompletedProcess[str]:
        result = self.daemon.adm(*argv)
        return subprocess.CompletedProcess(
            result.args, result.returncode, _text(result.stdout), _text(result.stderr)
        )

    def by_path(self, target: str) -> Path:
        return Path(f"/dev/disk/by-path/ip-{self.tgtd.portal}-iscsi-{target}-lun-1")


def _text(value: str | bytes) -> str:
    return value.decode() if isinstance(value, bytes) else value


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    kernel_initiator(INITIATOR)
    require_tgt()
    with Tgtd(tmp_path_factory.mktemp("tgtd"), start_timeout=WAIT) as tgtd:
        tid = tgtd.add_target(IQN, luns=1, lun_size=32 << 20)
        short_tid = tgtd.add_target(IQN_SHORT, luns=1, lun_size=8 << 20)
        daemon = RunningDaemon(Path("/"))
        try:
            yield Setup(tgtd, tid, short_tid, daemon)
        finally:
            for target in (IQN, IQN_SHORT):
                daemon.adm("-m", "node", "-T", target, "-p", tgtd.portal, "-u")
            daemon.stop()
            print(daemon.log[-20000:])


def test_discovery_and_login_through_the_kernel(setup: Setup) -> None:
    found = setup.adm("-m", "discovery", "-t", "st", "-p", setup.tgtd.portal)
    assert found.returncode == 0, found.stderr
    assert IQN in found.stdout
    done = setup.adm("-m", "node", "-T", IQN, "-p", setup.tgtd.portal, "-l")
    assert done.returncode == 0, done.stderr + setup.daemon.log[-4000:]
    portal = f"{setup.tgtd.host},{setup.tgtd.port}"
    assert done.stdout == (
        f"Logging in to [iface: default, target: {IQN}, portal: {portal}]\n"
        f"Login to [iface: default, target: {IQN}, portal: {portal}] successful.\n"
    )
    session = session_of(IQN)
    assert session is not None, "no kernel session: the daemon did not use the kernel"
    assert session.state == "LOGGED_IN"
    wait_for("the session's disk", lambda: disk_of(IQN) is not None)
    disk = disk_of(IQN)
    assert disk is not None
    assert_by_path_link(disk, setup.by_path(IQN))
    assert_dd_lands(disk, setup.tgtd.backing_path(setup.tid), 7 << 20)


def test_session_list_shows_the_kernel_sid_once(setup: Setup) -> None:
    session = session_of(IQN)
    assert session is not None
    listed = setup.adm("-m", "session")
    assert listed.returncode == 0, listed.stderr
    assert listed.stdout == f"tcp: [{session.sid}] {setup.tgtd.portal},1 {IQN} (non-flash)\n"


def test_session_stats_are_the_kernels(setup: Setup) -> None:
    session = session_of(IQN)
    assert session is not None
    stats = setup.adm("-m", "session", "-r", str(session.sid), "-s")
    assert stats.returncode == 0, stats.stderr
    counters = dict(re.findall(r"^\s+(\w+): (\d+)$", stats.stdout, re.M))
    assert int(counters["scsicmd_pdus"]) > 0, stats.stdout
    assert int(counters["txdata_octets"]) >= 1 << 20  # the 1 MiB dd above, at least


def test_session_P3_equals_iscsiadm(setup: Setup) -> None:
    ours = setup.adm("-m", "session", "-P", "3")
    theirs = run("iscsiadm", "-m", "session", "-P", "3")
    assert (ours.returncode, theirs.returncode) == (0, 0), (ours.stderr, theirs.stderr)
    disk = disk_of(IQN)
    assert re.search(rf"Attached scsi disk {disk}\s+State: running", ours.stdout)
    assert "iSCSI Connection State: LOGGED IN" in ours.stdout
    assert "Internal iscsid Session State: NO CHANGE" in ours.stdout
    assert_same_lines(theirs.stdout, ours.stdout, skip=IPC_ONLY)


def _pattern(seed: int, size: int) -> bytes:
    block = hashlib.sha256(seed.to_bytes(8, "big")).digest()
    return (block * (size // len(block) + 1))[:size]


def test_dropped_connection_recovers_the_same_sid_and_dd_completes(setup: Setup) -> None:
    before = session_of(IQN)
    disk = disk_of(IQN)
    assert before is not None and disk is not None
    size = 4 << 20
    offset = 12 << 20
    data = _pattern(1, size)
    result: dict[str, int | bytes] = {}

    def write() -> None:
        fd = os.open(f"/dev/{disk}", os.O_WRONLY | os.O_DIRECT)
        try:
            import mmap

            buf = mmap.mmap(-1, 64 << 10)
            for pos in range(0, size, 64 << 10):
                buf[:] = data[pos : pos + (64 << 10)]
                os.pwrite(fd, buf, offset + pos)
            os.fsync(fd)
        finally:
            os.close(fd)
        result["done"] = 1

    writer = threading.Thread(target=write)
    writer.start()
    dropped = setup.tgtd.drop_connections(setup.tid)
    assert dropped >= 1
    writer.join(WAIT * 2)
    assert not writer.is_alive(), "the write never completed"
    assert result.get("done") == 1
    after = session_of(IQN)
    assert after is not None and after.sid == before.sid
    wait_for("the session to be logged in again", lambda: _state(IQN) == "LOGGED_IN")
    with setup.tgtd.backing_path(setup.tid).open("rb") as backing:
        backing.seek(offset)
        assert backing.read(size) == data, "data written across the recovery is wrong"
    log = setup.daemon.log
    assert "connection failed" in log


def _state(target: str) -> str | None:
    s = session_of(target)
    return s.state if s is not None else None


def test_outage_longer_than_replacement_timeout_fails_io(setup: Setup) -> None:
    portal = setup.tgtd.portal
    new = setup.adm("-m", "discovery", "-t", "st", "-p", portal)
    assert new.returncode == 0, new.stderr
    update = setup.adm(
        "-m", "node", "-T", IQN_SHORT, "-p", portal, "-o", "update",
        "-n", "node.session.timeo.replacement_timeout", "-v", "5",
    )  # fmt: skip
    assert update.returncode == 0, update.stderr
    done = setup.adm("-m", "node", "-T", IQN_SHORT, "-p", portal, "-l")
    assert done.returncode == 0, done.stderr
    wait_for("the short session's disk", lambda: disk_of(IQN_SHORT) is not None)
    disk = disk_of(IQN_SHORT)
    session = session_of(IQN_SHORT)
    assert session is not None and session.attr("recovery_tmo") == "5"
    # The target refuses this initiator from now on, then drops the connection.
    setup.tgtd.unbind_address(setup.short_tid, "ALL")
    setup.tgtd.drop_connections(setup.short_tid)
    dd = run(
        "dd", f"if=/dev/{disk}", "of=/dev/null", "bs=4k", "count=1", "skip=100",
        "iflag=direct", timeout=60,
    )  # fmt: skip
    assert dd.returncode != 0, "I/O succeeded with the target gone for longer than 5 s"
    assert "Input/output error" in dd.stderr
    # Back: the daemon kept trying; the same session returns and I/O works again.
    setup.tgtd.bind_address(setup.short_tid, "ALL")
    wait_for("the short session to come back", lambda: _state(IQN_SHORT) == "LOGGED_IN")
    again = session_of(IQN_SHORT)
    assert again is not None and again.sid == session.sid
    ok = run("dd", f"if=/dev/{disk}", "of=/dev/null", "bs=4k", "count=1", "iflag=direct")
    assert ok.returncode == 0, ok.stderr


def test_restarted_daemon_adopts_the_kernel_session(setup: Setup) -> None:
    session = session_of(IQN)
    assert session is not None
    stop = setup.adm("-k", "0")
    assert stop.returncode == 0, stop.stderr
    setup.daemon.wait()
    assert _state(IQN) == "LOGGED_IN", "stopping the daemon ended the kernel session"
    setup.daemon.start()
    listed = setup.adm("-m", "session", "-P", "1")
    assert listed.returncode == 0, listed.stderr
    assert "iSCSI Connection State: LOGGED IN" in listed.stdout, listed.stdout
    # It is the daemon's again: a dropped connection is recovered by it.
    setup.tgtd.drop_connections(setup.tid)
    wait_for(
        "a new connection after the drop",
        lambda: _state(IQN) == "LOGGED_IN" and len(setup.tgtd.sessions(setup.tid)) == 1,
    )
    disk = disk_of(IQN)
    assert disk is not None
    assert_dd_lands(disk, setup.tgtd.backing_path(setup.tid), 20 << 20)


def test_logout_removes_session_disk_and_link(setup: Setup) -> None:
    disk = disk_of(IQN)
    assert disk is not None
    done = setup.adm("-m", "node", "-T", IQN, "-p", setup.tgtd.portal, "-u")
    assert done.returncode == 0, done.stderr
    assert "successful" in done.stdout
    assert session_of(IQN) is None
    wait_for("the disk to go", lambda: not Path(f"/sys/block/{disk}").exists())
    wait_for("the by-path link to go", lambda: not setup.by_path(IQN).exists())
    assert setup.tgtd.sessions(setup.tid) == []
