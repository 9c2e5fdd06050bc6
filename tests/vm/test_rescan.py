"""``-R`` (rescan) and ``-m host -P 0..4`` on a kernel session open-iscsi made, side by side
with the real iscsiadm on the same guest.

One login for the module (iscsid and iscsiadm of the host, a private tgtd in the guest);
iscsikit-adm runs without a daemon (the sysfs service).  The tests run in file order:
LUNs are added to the target and a LUN is grown while the session stays up, and the
last test logs out.  What iscsiadm 2.1.8 does for ``-R`` (usr/iscsiadm.c
``rescan_portal``): print ``Rescanning session [sid: N, target: T, portal: A,P]``, write
``1`` to each LUN's ``rescan`` (size changes), then ``- - -`` to the host's ``scan`` (new
LUNs); no session to act on is "No session found." and 21.
"""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from iscsikit.sysfs import IscsiSession, SysfsContext
from iscsikit.testing.plugin import require_tgt
from iscsikit.testing.tgtd import Tgtd
from iscsikit.testing.vmguest.checks import (
    WAIT,
    by_path,
    disk_of,
    session_of,
    wait_for,
    wait_for_disk,
)
from iscsikit.testing.vmguest.compare import IPC_ONLY, adm, assert_same_lines, run

IQN = "iqn.2024-01.test.iscsikit.vm:rescan"
INITIATOR = "iqn.2024-01.test.iscsikit.vm:rescan-initiator"
MiB = 1 << 20


def assert_same(*argv: str, may_differ: bool = False) -> subprocess.CompletedProcess[str]:
    """``iscsiadm ARGV`` and ``iscsikit-adm ARGV`` give the same exit code, stdout and
    stderr (each program naming itself); iscsikit-adm runs first, so what it changes
    (a rescan) is its own doing.  Returns iscsikit-adm's result."""
    ours = adm(*argv)
    theirs = run("iscsiadm", *argv)
    skip = IPC_ONLY if may_differ else ()
    what = f"iscsiadm {' '.join(argv)}"
    assert_same_lines(theirs.stdout, ours.stdout, skip=skip, what=f"{what}: stdout of")
    their_err = theirs.stderr.replace("iscsiadm: ", "iscsikit-adm: ")
    assert_same_lines(their_err, ours.stderr, what=f"{what}: stderr of")
    assert ours.returncode == theirs.returncode, (argv, ours.returncode, theirs.returncode)
    return ours


@dataclass(frozen=True)
class Login:
    target: Tgtd
    tid: int
    sid: int

    def by_path(self, lun: int) -> Path:
        return by_path(self.target.portal, IQN, lun)

    def session(self) -> IscsiSession:
        found = SysfsContext().session(self.sid)
        assert found is not None
        return found

    def disk(self, lun: int) -> str | None:
        """The disk the kernel has for ``lun`` (None: no such LUN or no disk yet)."""
        return disk_of(IQN, lun)

    def add_lun(self, lun: int, size: int) -> None:
        path = self.target.workdir / f"rescan-lun{lun}.img"
        with path.open("wb") as f:
            f.truncate(size)
        self.target.tgtadm(
            "--op", "new", "--mode", "logicalunit", "--tid", str(self.tid), "--lun", str(lun),
            "--backing-store", str(path),
        )  # fmt: skip


@pytest.fixture(scope="module")
def login(iscsid: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Login]:
    require_tgt()
    with Tgtd(tmp_path_factory.mktemp("tgtd"), start_timeout=WAIT) as tgtd:
        tid = tgtd.add_target(IQN, luns=1, lun_size=16 * MiB)
        portal = tgtd.portal
        found = run("iscsiadm", "-m", "discovery", "-t", "st", "-p", portal)
        assert found.returncode == 0, found.stderr
        done = run("iscsiadm", "-m", "node", "-T", IQN, "-p", portal, "--login")
        assert done.returncode == 0, done.stderr
        wait_for_disk(IQN)
        session = session_of(IQN)
        assert session is not None
        yield Login(tgtd, tid, session.sid)
        if session_of(IQN) is not None:
            run("iscsiadm", "-m", "node", "-T", IQN, "-p", portal, "--logout")


def _rescanning(login: Login) -> str:
    portal = f"{login.target.host},{login.target.port}"
    return f"Rescanning session [sid: {login.sid}, target: {IQN}, portal: {portal}]\n"


def test_session_R_finds_a_new_lun(login: Login) -> None:
    assert login.disk(1) is not None
    login.add_lun(2, 8 * MiB)
    assert login.disk(2) is None  # the kernel does not scan by itself
    ours = adm("-m", "session", "-R")
    assert (ours.returncode, ours.stdout, ours.stderr) == (0, _rescanning(login), "")
    disk = wait_for_disk(IQN, 2, link=login.by_path(2))
    assert int(Path(f"/sys/block/{disk}/size").read_text()) * 512 == 8 * MiB


def test_session_R_output_equals_iscsiadm(login: Login) -> None:
    assert_same("-m", "session", "-R")
    assert_same("-m", "session", "-r", str(login.sid), "-R")


def test_node_R_finds_a_new_lun(login: Login) -> None:
    login.add_lun(3, 4 * MiB)
    assert login.disk(3) is None
    node = ("-m", "node", "-T", IQN, "-p", login.target.portal)
    ours = adm(*node, "-R")
    assert (ours.returncode, ours.stdout, ours.stderr) == (0, _rescanning(login), "")
    wait_for_disk(IQN, 3, link=login.by_path(3))
    assert_same(*node, "-R")
    assert_same("-m", "node", "-R")


def test_session_r_sid_R_picks_up_an_online_resize(login: Login) -> None:
    disk = login.disk(1)
    assert disk is not None
    size = Path(f"/sys/block/{disk}/size")
    assert int(size.read_text()) * 512 == 16 * MiB
    # tgt reads a file's size when it opens it: grow the file, then reopen it in place
    # (usr/target.c tgt_device_path_update needs the LUN offline; it brings it back).
    backing = login.target.backing_path(login.tid, 1)
    os.truncate(backing, 48 * MiB)
    login.target.tgtadm(
        "--op", "update", "--mode", "logicalunit", "--tid", str(login.tid), "--lun", "1",
        "--params", f"online=0,path={backing}",
    )  # fmt: skip
    assert int(size.read_text()) * 512 == 16 * MiB  # nothing told the kernel yet
    ours = adm("-m", "session", "-r", str(login.sid), "-R")
    assert (ours.returncode, ours.stdout, ours.stderr) == (0, _rescanning(login), "")
    wait_for("the new size", lambda: int(size.read_text()) * 512 == 48 * MiB)
    assert login.disk(1) == disk  # resized in place, not a new disk


def test_R_with_nothing_to_rescan_equals_iscsiadm(login: Login) -> None:
    missing = assert_same("-m", "session", "-r", "999", "-R")
    assert missing.returncode != 0
    other = assert_same("-m", "node", "-T", f"{IQN}-nope", "-p", login.target.portal, "-R")
    assert (other.returncode, other.stdout) == (21, "")


@pytest.mark.parametrize("level", ["0", "1", "2", "3", "4"])
def test_host_P_equals_iscsiadm(login: Login, level: str) -> None:
    ours = assert_same("-m", "host", "-P", level, may_differ=True)
    assert ours.returncode == 0
    if level == "4":
        for lun in (1, 2, 3):
            disk = login.disk(lun)
            assert re.search(rf"\tAttached scsi disk {disk}\t\tState: running\n", ours.stdout)


def test_R_without_sessions_equals_iscsiadm(login: Login) -> None:
    done = run("iscsiadm", "-m", "node", "-T", IQN, "-p", login.target.portal, "--logout")
    assert done.returncode == 0, done.stderr
    wait_for("the session to go", lambda: session_of(IQN) is None)
    for argv in (("-m", "session", "-R"), ("-m", "node", "-R")):
        result = assert_same(*argv)
        assert (result.returncode, result.stdout) == (21, "")
