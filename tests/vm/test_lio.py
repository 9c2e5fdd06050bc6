"""The kernel initiators against LIO, the kernel's own iSCSI target, in the guest
(iscsikit.testing.lio): the second target beside tgtd that issue 10 asks for.

Three groups, each with its own target and login, in file order (each group's last tests
log out or destroy):

* open-iscsi (iscsid + iscsiadm) against a demo-mode target: disk and by-path link, data
  byte-exact in LIO's backing file, a session LIO drops is recovered by iscsid on a new
  TCP connection and carries data again, logout removes disk, link and LIO's session.
* iscsikit's kernel driver (drivers/kerneltcp) against a target with an ACL and CHAP:
  disk and by-path link, data byte-exact, sysfs equal to what LIO negotiated, a session
  LIO drops is a CONN_ERROR event for it.
* iscsikitd + iscsikit-adm, as a user types them, against a target with an ACL and CHAP
  (set on the node record with ``-o update``): discovery, ``-l`` gives a kernel session,
  a disk and its by-path link, data byte-exact, ``-m session -P 3`` equal to iscsiadm's,
  a session LIO drops is recovered by the daemon with the same sid while a write runs
  through it, ``-u`` removes everything, a wrong secret fails with exit code 24 and
  leaves no kernel session.

iscsid (iscsikit.testing.vmguest.iscsid) runs only during the first group: at start-up it
adopts every kernel session it finds, and iscsikitd leaves kernel sessions alone while
iscsid answers.
"""

from __future__ import annotations

import hashlib
import mmap
import os
import re
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from iscsikit.netlink import ConnError
from iscsikit.plugin import ConnectSpec
from iscsikit.proto.address import parse_portal
from iscsikit.proto.login import ChapSecrets, LoginConfig
from iscsikit.sysfs import SysfsContext
from iscsikit.testing.daemon import RunningDaemon
from iscsikit.testing.lio import Lio, LioChap, lio_missing
from iscsikit.testing.vmguest.checks import (
    WAIT,
    assert_by_path_link,
    assert_dd_lands,
    by_path,
    session_of,
    wait_for,
    wait_for_disk,
)
from iscsikit.testing.vmguest.compare import IPC_ONLY, assert_same_lines, run
from iscsikit.testing.vmguest.iscsid import iscsid_listening, iscsid_running
from iscsikit_drivers.kerneltcp import KernelSession, KernelSettings

OPEN_ISCSI_IQN = "iqn.2024-01.test.iscsikit.vm:lio-open-iscsi"
KERNEL_IQN = "iqn.2024-01.test.iscsikit.vm:lio-kernel"
INITIATOR = "iqn.2024-01.test.iscsikit.vm:lio-initiator"
CHAP = LioChap("lio-user", "lio-secret-1234")


def lun0_link(lio: Lio) -> Path:
    return by_path(lio.portal, lio.iqn, 0)


def initiator_ports(lio: Lio) -> set[int]:
    """Local ports of the established TCP connections to ``lio``'s portal (/proc/net/tcp)."""
    ports = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        local, remote, state = line.split()[1:4]
        if state == "01" and int(remote.split(":")[1], 16) == lio.port:  # ESTABLISHED
            ports.add(int(local.split(":")[1], 16))
    return ports


def read_direct(disk: str, offset: int, n: int) -> bytes:
    """``n`` bytes of ``/dev/<disk>`` at ``offset``, read with ``dd iflag=direct``."""
    flags = "iflag=direct,skip_bytes,count_bytes"
    dd = subprocess.run(
        ["dd", f"if=/dev/{disk}", "bs=64k", f"skip={offset}", f"count={n}", flags],
        capture_output=True,
        timeout=WAIT,
        check=False,
    )
    assert dd.returncode == 0, dd.stderr
    return dd.stdout


@pytest.fixture(scope="module", autouse=True)
def kernel_modules() -> None:
    missing = lio_missing()
    if missing:
        pytest.skip(missing)
    # sd_mod by hand: the guest's busybox modprobe has no modules.alias to autoload it.
    for module in ("iscsi_tcp", "sd_mod"):
        subprocess.run(["modprobe", module], check=True, timeout=WAIT)


# -- open-iscsi ---------------------------------------------------------------------------


@dataclass(frozen=True)
class OpenIscsiLogin:
    lio: Lio
    sid: int
    disk: str


@pytest.fixture(scope="class")
def iscsid(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    with iscsid_running(tmp_path_factory.mktemp("iscsid") / "iscsid.log"):
        yield


@pytest.fixture(scope="class")
def open_iscsi(iscsid: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[OpenIscsiLogin]:
    workdir = tmp_path_factory.mktemp("lio")
    with Lio(OPEN_ISCSI_IQN, workdir=workdir, size=32 << 20) as lio:
        found = run("iscsiadm", "-m", "discovery", "-t", "st", "-p", lio.portal)
        assert found.returncode == 0, found.stderr
        assert OPEN_ISCSI_IQN in found.stdout
        done = run("iscsiadm", "-m", "node", "-T", OPEN_ISCSI_IQN, "-p", lio.portal, "--login")
        assert done.returncode == 0, done.stderr
        disk = wait_for_disk(OPEN_ISCSI_IQN)
        session = session_of(OPEN_ISCSI_IQN)
        assert session is not None
        yield OpenIscsiLogin(lio, session.sid, disk)
        if session_of(OPEN_ISCSI_IQN) is not None:
            run("iscsiadm", "-m", "node", "-T", OPEN_ISCSI_IQN, "-p", lio.portal, "--logout")


class TestOpenIscsi:
    def test_login_gives_a_disk_and_its_by_path_link(self, open_iscsi: OpenIscsiLogin) -> None:
        assert_by_path_link(open_iscsi.disk, lun0_link(open_iscsi.lio))
        assert open_iscsi.lio.sessions() != []

    def test_data_lands_in_the_backing_file(self, open_iscsi: OpenIscsiLogin) -> None:
        assert_dd_lands(open_iscsi.disk, open_iscsi.lio.backing_path, 3 << 20)

    def test_a_dropped_session_is_recovered_on_a_new_connection(
        self, open_iscsi: OpenIscsiLogin
    ) -> None:
        lio = open_iscsi.lio
        before = initiator_ports(lio)
        assert len(before) == 1
        lio.drop_sessions()
        # iscsid sees CONN_ERROR, reconnects and logs in again: a new TCP connection
        # (a new local port) for the same session, which returns to LOGGED_IN.
        wait_for("iscsid's re-login", lambda: initiator_ports(lio) - before != set())
        wait_for(
            "the session to be LOGGED_IN again",
            lambda: (s := session_of(OPEN_ISCSI_IQN)) is not None and s.state == "LOGGED_IN",
        )
        session = session_of(OPEN_ISCSI_IQN)
        assert session is not None and session.sid == open_iscsi.sid
        assert len(initiator_ports(lio)) == 1
        # The recovered session reads what LIO holds and writes where LIO keeps it.
        written = lio.read_backing(3 << 20, 1 << 20)  # test_data_lands_in_the_backing_file
        assert written != bytes(len(written))
        assert read_direct(open_iscsi.disk, 3 << 20, 1 << 20) == written
        assert_dd_lands(open_iscsi.disk, lio.backing_path, 7 << 20)

    def test_logout_removes_the_device(self, open_iscsi: OpenIscsiLogin) -> None:
        lio = open_iscsi.lio
        done = run("iscsiadm", "-m", "node", "-T", OPEN_ISCSI_IQN, "-p", lio.portal, "--logout")
        assert done.returncode == 0, done.stderr
        wait_for("the session to go", lambda: session_of(OPEN_ISCSI_IQN) is None)
        disk = Path("/dev", open_iscsi.disk)
        wait_for(f"{disk} to go", lambda: not disk.exists())
        wait_for(f"{lun0_link(lio)} to go", lambda: not lun0_link(lio).exists())
        wait_for("LIO's session to go", lambda: lio.sessions() == [])


# -- iscsikit's kernel driver -------------------------------------------------------------


@dataclass(frozen=True)
class KernelLogin:
    lio: Lio
    session: KernelSession
    disk: str


@pytest.fixture(scope="class")
def kernel(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KernelLogin]:
    workdir = tmp_path_factory.mktemp("lio")
    with Lio(KERNEL_IQN, workdir=workdir, size=32 << 20, initiator=INITIATOR, chap=CHAP) as lio:
        login = LoginConfig(
            INITIATOR,
            bytes.fromhex("400001370003"),
            target_name=KERNEL_IQN,
            chap=ChapSecrets(CHAP.user, CHAP.password),
            operational={
                "HeaderDigest": "CRC32C,None",
                "DataDigest": "CRC32C,None",
                "MaxRecvDataSegmentLength": "65536",
            },
        )
        session = KernelSession.login(
            ConnectSpec(parse_portal(lio.portal), login), KernelSettings(recovery_tmo=5)
        )
        assert isinstance(session, KernelSession)
        try:
            session.scan()
            yield KernelLogin(lio, session, wait_for_disk(KERNEL_IQN))
        finally:
            if SysfsContext().session(session.sid) is not None:
                session.destroy()


class TestKernelTcp:
    def test_login_gives_a_disk_and_its_by_path_link(self, kernel: KernelLogin) -> None:
        assert_by_path_link(kernel.disk, lun0_link(kernel.lio))
        assert kernel.lio.sessions() == [INITIATOR]

    def test_data_lands_in_the_backing_file(self, kernel: KernelLogin) -> None:
        assert_dd_lands(kernel.disk, kernel.lio.backing_path, 5 << 20)

    def test_sysfs_shows_what_lio_negotiated(self, kernel: KernelLogin) -> None:
        accepted = kernel.session.accepted
        assert accepted is not None
        p = accepted.params
        s = SysfsContext().session(kernel.session.sid)
        assert s is not None
        assert (s.targetname, s.state, s.initiatorname) == (KERNEL_IQN, "LOGGED_IN", INITIATOR)
        assert s.tpgt == accepted.target_portal_group_tag == 1
        assert s.attr("username") == CHAP.user
        yes = {"Yes": "1", "No": "0"}
        assert s.attr("first_burst_len") == p["FirstBurstLength"]
        assert s.attr("max_burst_len") == p["MaxBurstLength"]
        assert s.attr("initial_r2t") == yes[p["InitialR2T"]]
        assert s.attr("immediate_data") == yes[p["ImmediateData"]]
        assert s.attr("recovery_tmo") == "5"
        conn = s.connection()
        assert conn is not None
        assert (conn.address, conn.port) == ("127.0.0.1", kernel.lio.port)
        assert conn.attr("max_recv_dlength") == p["MaxRecvDataSegmentLength"] == "65536"
        assert conn.attr("max_xmit_dlength") == p["MaxXmitDataSegmentLength"]
        # LIO accepts the digests offered first; sysfs shows the kernel's enable flags.
        assert (p["HeaderDigest"], p["DataDigest"]) == ("CRC32C", "CRC32C")
        assert (conn.attr("header_digest"), conn.attr("data_digest")) == ("1", "1")

    def test_a_dropped_session_is_a_conn_error_event(self, kernel: KernelLogin) -> None:
        session = kernel.session
        kernel.lio.drop_sessions()
        event = session.wait_conn_error(WAIT)
        assert event is not None, "no CONN_ERROR"
        assert (event.sid, event.cid) == (session.sid, session.cid)
        assert event.error in set(ConnError)
        wait_for("LIO's session to go", lambda: kernel.lio.sessions() == [])
        session.destroy()
        wait_for("the session to go", lambda: SysfsContext().session(session.sid) is None)
        disk = Path("/dev", kernel.disk)
        wait_for(f"{disk} to go", lambda: not disk.exists())


# -- iscsikitd + iscsikit-adm -------------------------------------------------------------

DAEMON_IQN = "iqn.2024-01.test.iscsikit.vm:lio-daemon"
DAEMON_CHAP = LioChap("lio-daemon-user", "lio-daemon-secret-5678")


@dataclass(frozen=True)
class DaemonSetup:
    lio: Lio
    daemon: RunningDaemon

    def adm(self, *argv: str) -> subprocess.CompletedProcess[str]:
        return self.daemon.adm(*argv, timeout=WAIT * 2)

    def node(self, *argv: str) -> subprocess.CompletedProcess[str]:
        """``iscsikit-adm -m node -T <target> -p <portal> ARGV``."""
        return self.adm("-m", "node", "-T", DAEMON_IQN, "-p", self.lio.portal, *argv)

    def update(self, name: str, value: str) -> None:
        done = self.node("-o", "update", "-n", name, "-v", value)
        assert done.returncode == 0, done.stderr


@pytest.fixture(scope="class")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DaemonSetup]:
    # iscsikitd leaves kernel sessions to an iscsid that answers (docs/kernel-driver.md).
    assert not iscsid_listening(), "iscsid runs: the sessions would not be iscsikitd's"
    # The ACL admits one initiator name: the one iscsikitd reads from initiatorname.iscsi.
    iname = Path("/etc/iscsi/initiatorname.iscsi")
    saved = iname.read_text() if iname.exists() else None
    iname.parent.mkdir(parents=True, exist_ok=True)
    iname.write_text(f"InitiatorName={INITIATOR}\n")
    workdir = tmp_path_factory.mktemp("lio")
    try:
        lio = Lio(DAEMON_IQN, workdir=workdir, size=32 << 20, initiator=INITIATOR, chap=DAEMON_CHAP)
        with lio:
            running = RunningDaemon(Path("/"))
            try:
                yield DaemonSetup(lio, running)
            finally:
                running.adm("-m", "node", "-T", DAEMON_IQN, "-p", lio.portal, "-u")
                running.stop()
                print(running.log[-20000:])
    finally:
        if saved is None:
            iname.unlink(missing_ok=True)
        else:
            iname.write_text(saved)


def kernel_objects() -> tuple[set[int], set[str]]:
    """The sids of every kernel iSCSI session and the names of every iSCSI host."""
    hosts = Path("/sys/class/iscsi_host")
    names = {p.name for p in hosts.iterdir()} if hosts.is_dir() else set()
    return {s.sid for s in SysfsContext().sessions()}, names


def session_state() -> str | None:
    """The sysfs state of the daemon group's session (None: there is none)."""
    session = session_of(DAEMON_IQN)
    return session.state if session is not None else None


def pattern(seed: int, size: int) -> bytes:
    """``size`` bytes that differ from any earlier test's data (``seed`` picks them)."""
    block = hashlib.sha256(seed.to_bytes(8, "big")).digest()
    return (block * (size // len(block) + 1))[:size]


class TestDaemon:
    """What a user types: discovery, CHAP set on the node record, ``-l``, ``-P 3``, ``-u``,
    with iscsikitd driving the kernel's iscsi_tcp (drivers/kerneltcp) against LIO."""

    def test_chap_login_gives_a_kernel_session_a_disk_and_its_by_path_link(
        self, daemon: DaemonSetup
    ) -> None:
        lio = daemon.lio
        found = daemon.adm("-m", "discovery", "-t", "st", "-p", lio.portal)
        assert found.returncode == 0, found.stderr
        assert found.stdout == f"{lio.portal},1 {DAEMON_IQN}\n"
        daemon.update("node.session.auth.authmethod", "CHAP")
        daemon.update("node.session.auth.username", DAEMON_CHAP.user)
        daemon.update("node.session.auth.password", DAEMON_CHAP.password)
        done = daemon.node("-l")
        assert done.returncode == 0, done.stderr + daemon.daemon.log[-4000:]
        where = f"[iface: default, target: {DAEMON_IQN}, portal: {lio.host},{lio.port}]"
        assert done.stdout == f"Logging in to {where}\nLogin to {where} successful.\n"
        session = session_of(DAEMON_IQN)
        assert session is not None, "no kernel session: the daemon did not use the kernel"
        assert (session.state, session.initiatorname) == ("LOGGED_IN", INITIATOR)
        assert session.attr("username") == DAEMON_CHAP.user
        assert_by_path_link(wait_for_disk(DAEMON_IQN), lun0_link(lio))
        assert lio.sessions() == [INITIATOR]

    def test_data_lands_in_the_backing_file(self, daemon: DaemonSetup) -> None:
        assert_dd_lands(wait_for_disk(DAEMON_IQN), daemon.lio.backing_path, 5 << 20)

    def test_session_list_shows_the_kernel_sid(self, daemon: DaemonSetup) -> None:
        session = session_of(DAEMON_IQN)
        assert session is not None
        listed = daemon.adm("-m", "session")
        assert listed.returncode == 0, listed.stderr
        line = f"tcp: [{session.sid}] {daemon.lio.portal},1 {DAEMON_IQN} (non-flash)\n"
        assert listed.stdout == line

    def test_session_P3_equals_iscsiadm(self, daemon: DaemonSetup) -> None:
        ours = daemon.adm("-m", "session", "-P", "3")
        theirs = run("iscsiadm", "-m", "session", "-P", "3")  # no iscsid: sysfs only
        assert (ours.returncode, theirs.returncode) == (0, 0), (ours.stderr, theirs.stderr)
        disk = wait_for_disk(DAEMON_IQN)
        assert re.search(rf"Attached scsi disk {disk}\s+State: running", ours.stdout)
        assert "iSCSI Connection State: LOGGED IN" in ours.stdout
        assert "Internal iscsid Session State: NO CHANGE" in ours.stdout
        compared = assert_same_lines(theirs.stdout, ours.stdout, skip=IPC_ONLY)
        assert len(compared) > 30  # the whole -P 3 tree was compared

    def test_a_dropped_session_recovers_the_same_sid_and_a_running_write_completes(
        self, daemon: DaemonSetup
    ) -> None:
        lio = daemon.lio
        before = session_of(DAEMON_IQN)
        assert before is not None
        disk = wait_for_disk(DAEMON_IQN)
        ports = initiator_ports(lio)
        assert len(ports) == 1
        chunk, offset = 64 << 10, 12 << 20
        data = pattern(10, 4 << 20)
        half_written, dropped = threading.Event(), threading.Event()
        failure: list[BaseException] = []

        def write() -> None:
            # One O_DIRECT writer, as dd oflag=direct: the first half goes out on the old
            # connection, the rest is issued once LIO has dropped it (so it waits in the
            # kernel for the daemon's recovery) and only then is the file synced.
            buf = mmap.mmap(-1, chunk)  # page-aligned, as O_DIRECT wants
            fd = os.open(f"/dev/{disk}", os.O_WRONLY | os.O_DIRECT)
            try:
                for pos in range(0, len(data), chunk):
                    if pos == len(data) // 2:
                        half_written.set()
                        dropped.wait(WAIT)
                    buf[:] = data[pos : pos + chunk]
                    assert os.pwrite(fd, buf, offset + pos) == chunk
                os.fsync(fd)
            except BaseException as exc:
                failure.append(exc)
            finally:
                os.close(fd)
                buf.close()

        writer = threading.Thread(target=write)
        writer.start()
        try:
            assert half_written.wait(WAIT), "the write did not get going"
            lio.drop_sessions()
        finally:
            dropped.set()
        writer.join(WAIT * 2)
        assert not writer.is_alive(), "the write never completed"
        assert failure == [], f"the write failed across the recovery: {failure}"
        # The daemon saw CONN_ERROR and logged in again on a new TCP connection (a new local
        # port) into the same kernel session.
        wait_for("the session to be LOGGED_IN again", lambda: session_state() == "LOGGED_IN")
        after = session_of(DAEMON_IQN)
        assert after is not None and after.sid == before.sid
        new_ports = initiator_ports(lio)
        assert len(new_ports) == 1 and new_ports != ports, (ports, new_ports)
        assert lio.sessions() == [INITIATOR]
        assert "connection failed" in daemon.daemon.log
        assert lio.read_backing(offset, len(data)) == data, "data written across the drop"
        assert wait_for_disk(DAEMON_IQN) == disk

    def test_logout_removes_session_disk_link_and_lios_session(self, daemon: DaemonSetup) -> None:
        lio = daemon.lio
        disk = wait_for_disk(DAEMON_IQN)
        session = session_of(DAEMON_IQN)
        assert session is not None
        done = daemon.node("-u")
        assert done.returncode == 0, done.stderr
        where = f"[sid: {session.sid}, target: {DAEMON_IQN}, portal: {lio.host},{lio.port}]"
        assert done.stdout == f"Logging out of session {where}\nLogout of {where} successful.\n"
        assert session_of(DAEMON_IQN) is None
        wait_for(f"/dev/{disk} to go", lambda: not Path("/dev", disk).exists())
        wait_for(f"{lun0_link(lio)} to go", lambda: not lun0_link(lio).exists())
        wait_for("LIO's session to go", lambda: lio.sessions() == [])

    def test_a_wrong_chap_secret_fails_with_24_and_leaves_no_kernel_session(
        self, daemon: DaemonSetup
    ) -> None:
        before = kernel_objects()
        daemon.update("node.session.auth.password", "not-" + DAEMON_CHAP.password)
        done = daemon.node("-l")
        assert done.returncode == 24, (done.returncode, done.stdout, done.stderr)
        assert "24 - iSCSI login failed due to authorization failure" in done.stderr
        assert kernel_objects() == before, "the failed login left a kernel session or host"
        assert session_of(DAEMON_IQN) is None
        assert daemon.daemon.pid is not None, "iscsikitd died"
        listed = daemon.adm("-m", "session")
        assert DAEMON_IQN not in listed.stdout, listed.stdout
        assert daemon.lio.sessions() == []
