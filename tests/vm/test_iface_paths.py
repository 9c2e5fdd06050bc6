"""Two NICs, one portal: a session per iface, each leaving by its own NIC (issue 13, item 1).

The target (tgtd) lives in a network namespace of its own, reachable at one address,
10.99.0.9, over two veth pairs: ``ikA`` (10.99.1.1 <-> 10.99.1.2) and ``ikB``
(10.99.2.1 <-> 10.99.2.2).  The root namespace routes 10.99.0.9 over both (``ikA``
preferred).  Two iface records bind to the NICs the two ways open-iscsi binds
software iSCSI: ``ifa`` by ``iface.net_ifacename`` and ``ifb`` by ``iface.hwaddress``.
Discovery through both ifaces gives two node records; ``-l`` gives two kernel sessions
to the same portal, each with its own disk.  Writing to one disk must move the bytes
over that session's NIC and (almost) none over the other: the binding is real, not a
route that happens to fit.  Also: a session of an iface whose NIC is down fails over to
nothing (its connection stays on its NIC), and an iface naming a missing NIC fails the
login with exit 4 as iscsid does.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from iscsikit.sysfs import IscsiSession, SysfsContext
from iscsikit.testing.daemon import RunningDaemon
from iscsikit.testing.plugin import require_tgt
from iscsikit.testing.tgtd import Tgtd
from iscsikit.testing.vmguest.checks import WAIT, kernel_initiator, wait_for

IQN = "iqn.2024-01.test.iscsikit.vm:ifpaths"
INITIATOR = "iqn.2024-01.test.iscsikit.vm:ifpaths-initiator"
NETNS = "iktgt"
TARGET_ADDRESS = "10.99.0.9"
PORT = 3260
#: NIC -> (its address, the target namespace's end), and the iface bound to it.
NICS = {"ikA": ("10.99.1.1", "10.99.1.2"), "ikB": ("10.99.2.1", "10.99.2.2")}
IFACES = {"ifa": "ikA", "ifb": "ikB"}
WRITE = 16 << 20


def ip(*argv: str) -> None:
    subprocess.run(["ip", *argv], check=True, capture_output=True, timeout=30)


def tx_bytes(nic: str) -> int:
    return int(Path(f"/sys/class/net/{nic}/statistics/tx_bytes").read_text())


def mac_of(nic: str) -> str:
    return Path(f"/sys/class/net/{nic}/address").read_text().strip()


@contextlib.contextmanager
def two_nic_network() -> Iterator[None]:
    """The namespace, the two veth pairs and the routes; all removed afterwards."""
    ip("netns", "add", NETNS)
    try:
        inside = ("netns", "exec", NETNS, "ip")
        ip(*inside, "link", "set", "lo", "up")
        ip(*inside, "addr", "add", f"{TARGET_ADDRESS}/32", "dev", "lo")
        for nic, (mine, theirs) in NICS.items():
            peer = f"{nic}t"
            ip("link", "add", nic, "type", "veth", "peer", "name", peer, "netns", NETNS)
            ip("addr", "add", f"{mine}/24", "dev", nic)
            ip("link", "set", nic, "up")
            ip(*inside, "addr", "add", f"{theirs}/24", "dev", peer)
            ip(*inside, "link", "set", peer, "up")
        for metric, (nic, (_, theirs)) in enumerate(NICS.items(), 1):
            ip("route", "add", f"{TARGET_ADDRESS}/32", "via", theirs, "dev", nic,
               "metric", str(metric))  # fmt: skip
        yield
    finally:
        for nic in NICS:
            subprocess.run(["ip", "link", "del", nic], check=False, capture_output=True, timeout=30)
        subprocess.run(["ip", "netns", "del", NETNS], check=False, capture_output=True, timeout=30)


@dataclass
class Setup:
    tgtd: Tgtd
    tid: int
    daemon: RunningDaemon

    def adm(self, *argv: str) -> subprocess.CompletedProcess[str]:
        result = self.daemon.adm(*argv)
        out = result.stdout.decode() if isinstance(result.stdout, bytes) else result.stdout
        err = result.stderr.decode() if isinstance(result.stderr, bytes) else result.stderr
        return subprocess.CompletedProcess(result.args, result.returncode, out, err)

    def ok(self, *argv: str) -> str:
        done = self.adm(*argv)
        assert done.returncode == 0, f"{argv}: {done.stderr}{self.daemon.log[-3000:]}"
        return done.stdout


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    kernel_initiator(INITIATOR)
    require_tgt()
    work = tmp_path_factory.mktemp("ifpaths")
    with (
        two_nic_network(),
        Tgtd(
            work / "tgtd", host=TARGET_ADDRESS, port=PORT, netns=NETNS, start_timeout=WAIT
        ) as tgtd,
    ):
        tid = tgtd.add_target(IQN, luns=1, lun_size=64 << 20)
        daemon = RunningDaemon(Path("/"))
        s = Setup(tgtd, tid, daemon)
        try:
            yield s
        finally:
            daemon.adm("-m", "node", "-T", IQN, "-u")
            daemon.adm("-m", "node", "-T", IQN, "-o", "delete")
            for iface in (*IFACES, "ifgone"):
                daemon.adm("-m", "iface", "-I", iface, "-o", "delete")
            daemon.stop()
            print(daemon.log[-20000:])


def _sessions() -> dict[str, IscsiSession]:
    """This target's kernel sessions by iface name."""
    found = [s for s in SysfsContext().sessions() if s.targetname == IQN]
    return {s.ifacename or "": s for s in found}


def _disk(session: IscsiSession) -> Path:
    (block,) = session.block_devices()
    return Path("/dev") / block.name


def _write_direct(disk: Path, length: int) -> None:
    block = os.urandom(1 << 20)
    fd = os.open(disk, os.O_WRONLY | os.O_DIRECT)
    try:
        buf = memoryview(bytearray(len(block)))
        buf[:] = block
        for offset in range(0, length, len(block)):
            assert os.pwrite(fd, buf, offset) == len(block)
        os.fsync(fd)
    finally:
        os.close(fd)


def test_one_session_per_iface_over_its_own_nic(setup: Setup) -> None:
    setup.ok("-m", "iface", "-I", "ifa", "-o", "new")
    setup.ok("-m", "iface", "-I", "ifa", "-o", "update", "-n", "iface.net_ifacename",
             "-v", IFACES["ifa"])  # fmt: skip
    setup.ok("-m", "iface", "-I", "ifb", "-o", "new")
    setup.ok("-m", "iface", "-I", "ifb", "-o", "update", "-n", "iface.hwaddress",
             "-v", mac_of(IFACES["ifb"]))  # fmt: skip
    portal = f"{TARGET_ADDRESS}:{PORT}"
    found = setup.ok("-m", "discovery", "-t", "st", "-p", portal, "-I", "ifa", "-I", "ifb")
    assert found.count(IQN) == 2, found
    listed = setup.ok("-m", "node")
    assert listed.count(IQN) == 2, listed
    setup.ok("-m", "node", "-T", IQN, "-l")
    wait_for("two sessions with disks", lambda: len(_sessions()) == 2
             and all(s.block_devices() for s in _sessions().values()))  # fmt: skip
    sessions = _sessions()
    assert set(sessions) == set(IFACES)
    assert len(setup.tgtd.sessions(setup.tid)) == 2
    for iface, session in sessions.items():
        nic = IFACES[iface]
        other = next(n for n in NICS if n != nic)
        before = tx_bytes(nic), tx_bytes(other)
        _write_direct(_disk(session), WRITE)
        moved, stray = tx_bytes(nic) - before[0], tx_bytes(other) - before[1]
        print(f"[iface {iface}] {WRITE} bytes written: {moved} out of {nic}, {stray} of {other}")
        assert moved >= WRITE, (iface, moved, stray)
        assert stray < WRITE // 8, (iface, moved, stray)


def test_p1_shows_each_session_on_its_iface(setup: Setup) -> None:
    text = setup.ok("-m", "session", "-P", "1")
    assert "Iface Name: ifa" in text and "Iface Name: ifb" in text, text


def test_iface_naming_a_missing_nic_fails_with_4(setup: Setup) -> None:
    setup.ok("-m", "iface", "-I", "ifgone", "-o", "new")
    setup.ok("-m", "iface", "-I", "ifgone", "-o", "update", "-n", "iface.net_ifacename",
             "-v", "nosuchnic0")  # fmt: skip
    portal = f"{TARGET_ADDRESS}:{PORT}"
    setup.ok("-m", "node", "-T", IQN, "-p", portal, "-I", "ifgone", "-o", "new")
    done = setup.adm("-m", "node", "-T", IQN, "-p", portal, "-I", "ifgone", "-l")
    assert done.returncode == 4, (done.returncode, done.stdout, done.stderr)
    assert "Could not bind connection 0 to nosuchnic0" in done.stderr + done.stdout
    assert set(_sessions()) == set(IFACES)  # the two good paths are untouched
