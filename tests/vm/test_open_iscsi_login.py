"""open-iscsi's own initiator on the guest's kernel, against a tgtd in the guest, seen by
iscsikit: the proof that the VM tier gives real kernel sessions, disks and udev links.

One login for the module (TCG is slow): iscsid and iscsiadm of the host log in through
the kernel's iscsi_tcp; the tests then check the disk, its by-path link, data landing
byte-exact in tgtd's backing file, what ``iscsikit.sysfs`` and ``iscsikit-adm -m session
-P 3`` (no daemon: the sysfs service) make of the session, and finally that logout
removes the device.  The tests run in file order; the last one logs out.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from iscsikit.sysfs import SysfsContext
from iscsikit.testing.plugin import require_tgt
from iscsikit.testing.tgtd import Tgtd
from iscsikit.testing.vmguest.checks import (
    WAIT,
    assert_by_path_link,
    assert_dd_lands,
    session_of,
    wait_for,
)
from iscsikit.testing.vmguest.compare import IPC_ONLY, adm, assert_same_lines, run

IQN = "iqn.2024-01.test.iscsikit.vm:disk"
INITIATOR = "iqn.2024-01.test.iscsikit.vm:disk-initiator"


@dataclass(frozen=True)
class Login:
    target: Tgtd
    sid: int
    disk: str  # "sda"

    @property
    def by_path(self) -> Path:
        return Path(f"/dev/disk/by-path/ip-{self.target.portal}-iscsi-{IQN}-lun-1")


@pytest.fixture(scope="module")
def login(iscsid: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Login]:
    require_tgt()
    with Tgtd(tmp_path_factory.mktemp("tgtd"), start_timeout=WAIT) as tgtd:
        tgtd.add_target(IQN, luns=1, lun_size=32 << 20)
        portal = tgtd.portal
        found = run("iscsiadm", "-m", "discovery", "-t", "st", "-p", portal)
        assert found.returncode == 0, found.stderr
        assert IQN in found.stdout
        done = run("iscsiadm", "-m", "node", "-T", IQN, "-p", portal, "--login")
        assert done.returncode == 0, done.stderr
        wait_for("the session's disk", lambda: bool((s := session_of(IQN)) and s.block_devices()))
        session = session_of(IQN)
        assert session is not None
        yield Login(tgtd, session.sid, session.block_devices()[0].path.name)
        if session_of(IQN) is not None:
            run("iscsiadm", "-m", "node", "-T", IQN, "-p", portal, "--logout")


def test_login_gives_a_disk_and_its_by_path_link(login: Login) -> None:
    assert_by_path_link(login.disk, login.by_path)


def test_data_written_to_the_disk_lands_in_the_backing_file(login: Login) -> None:
    assert_dd_lands(login.disk, login.target.backing_path(1), 3 << 20)


def test_iscsikit_sysfs_sees_the_kernel_session(login: Login) -> None:
    session = SysfsContext().session(login.sid)
    assert session is not None
    assert session.targetname == IQN
    assert session.state == "LOGGED_IN"
    conn = session.connection()
    assert conn is not None
    assert (conn.address, conn.port) == ("127.0.0.1", login.target.port)
    assert [b.path.name for b in session.block_devices()] == [login.disk]


def test_adm_session_P3_names_the_attached_disk(login: Login) -> None:
    result = adm("-m", "session", "-P", "3")
    assert result.returncode == 0, result.stderr
    assert re.search(rf"Attached scsi disk {login.disk}\s+State: running", result.stdout)


def test_adm_session_P3_equals_iscsiadm(login: Login) -> None:
    ours = adm("-m", "session", "-P", "3")
    theirs = run("iscsiadm", "-m", "session", "-P", "3")
    assert (ours.returncode, theirs.returncode) == (0, 0), (ours.stderr, theirs.stderr)
    # iscsiadm asks iscsid for two states (IPC_ONLY); iscsikit-adm without a daemon
    # prints "Unknown" there, as iscsiadm does when iscsid is down.
    compared = assert_same_lines(theirs.stdout, ours.stdout, skip=IPC_ONLY)
    assert len(compared) > 30  # the whole -P 3 tree was compared


def test_logout_removes_the_device(login: Login) -> None:
    done = run("iscsiadm", "-m", "node", "-T", IQN, "-p", login.target.portal, "--logout")
    assert done.returncode == 0, done.stderr
    wait_for("the session to go", lambda: session_of(IQN) is None)
    wait_for(f"/dev/{login.disk} to go", lambda: not Path("/dev", login.disk).exists())
    wait_for(f"{login.by_path} to go", lambda: not login.by_path.exists())
