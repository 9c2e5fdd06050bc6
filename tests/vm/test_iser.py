"""iser for real: iscsikit logs in over iSER to LIO's isert on soft-RoCE inside the guest
(iscsikit.testing.vmguest.rdma: a veth pair with an rxe device on each end, 10.99.0.x).

Two groups, in file order, each with its own LIO target (demo mode) on the one fabric:

* the driver alone (drivers/iser through its transport, as the session manager calls
  it): EP_CONNECT / EP_POLL / CREATE_BOUND_SESSION / login through the kernel gives a
  SCSI host of transport ``iser``, a disk and its by-path link; 1 MiB written with
  ``dd oflag=direct`` is byte-exact in LIO's backing file; sysfs shows the iSER lengths;
  a session LIO drops is a CONN_ERROR, and a new endpoint rebinds the same kernel
  session; logout removes session, disk, link and LIO's session.
* iscsikitd + ``iscsikit-adm ... -I iser -l``, as a user types it (the built-in ``iser``
  iface): ``-m session -P 3`` equals real iscsiadm's for that session (sysfs only, as
  iscsiadm without iscsid; the IPC-only lines aside), a session LIO drops is recovered
  by the daemon with the same sid, ``-u`` removes everything.
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from iscsikit.manager.spec import normal_operational_keys
from iscsikit.netlink import ConnError
from iscsikit.plugin import ConnectSpec
from iscsikit.proto.address import parse_portal
from iscsikit.proto.login import LoginConfig
from iscsikit.sysfs import SysfsContext
from iscsikit.testing.daemon import RunningDaemon
from iscsikit.testing.lio import Lio, lio_missing
from iscsikit.testing.vmguest.checks import (
    WAIT,
    assert_by_path_link,
    assert_dd_lands,
    kernel_initiator,
    session_of,
    wait_for,
)
from iscsikit.testing.vmguest.compare import IPC_ONLY, assert_same_lines, run
from iscsikit.testing.vmguest.rdma import SoftRoce, rdma_missing
from iscsikit_drivers.iser import IserTransport
from iscsikit_drivers.kerneltcp import KernelTcpSession

DRIVER_IQN = "iqn.2024-01.test.iscsikit.vm:iser-driver"
DAEMON_IQN = "iqn.2024-01.test.iscsikit.vm:iser-daemon"
INITIATOR = "iqn.2024-01.test.iscsikit.vm:iser-initiator"


def by_path(lio: Lio) -> Path:
    # udev's path_id names iSCSI disks "-iscsi-" whatever the transport.
    return Path(f"/dev/disk/by-path/ip-{lio.portal}-iscsi-{lio.iqn}-lun-0")


def wait_for_disk(iqn: str) -> str:
    wait_for("the session's disk", lambda: bool((s := session_of(iqn)) and s.block_devices()))
    session = session_of(iqn)
    assert session is not None
    return session.block_devices()[0].path.name


def dmesg_tail() -> str:
    done = run("dmesg")
    return "\n".join(done.stdout.splitlines()[-40:])


@pytest.fixture(scope="module")
def fabric() -> Iterator[SoftRoce]:
    for missing in (lio_missing(), rdma_missing()):
        if missing:
            pytest.skip(missing)
    kernel_initiator(INITIATOR)
    with SoftRoce() as roce:
        yield roce


# -- the driver alone ------------------------------------------------------------------------


@dataclass(frozen=True)
class DriverLogin:
    lio: Lio
    spec: ConnectSpec
    session: KernelTcpSession
    disk: str


@pytest.fixture(scope="class")
def driver(fabric: SoftRoce, tmp_path_factory: pytest.TempPathFactory) -> Iterator[DriverLogin]:
    workdir = tmp_path_factory.mktemp("lio")
    with Lio(
        DRIVER_IQN, workdir=workdir, size=32 << 20, host=fabric.target_address, iser=True
    ) as lio:
        login = LoginConfig(
            INITIATOR,
            bytes.fromhex("400001370011"),
            target_name=DRIVER_IQN,
            operational=normal_operational_keys(MaxRecvDataSegmentLength="262144"),
        )
        spec = ConnectSpec(
            parse_portal(lio.portal),
            login,
            replacement_timeout=30,
            record={"iface.iscsi_ifacename": "iser"},
        )
        try:
            session = IserTransport().login(spec)
        except Exception:
            print(dmesg_tail())
            raise
        assert isinstance(session, KernelTcpSession)
        try:
            session.scan()
            yield DriverLogin(lio, spec, session, wait_for_disk(DRIVER_IQN))
        finally:
            if SysfsContext().session(session.kernel_sid) is not None:
                session.close()


class TestIserDriver:
    def test_login_gives_an_iser_host_a_disk_and_its_by_path_link(
        self, driver: DriverLogin
    ) -> None:
        s = SysfsContext().session(driver.session.kernel_sid)
        assert s is not None
        host = s.host()
        assert host is not None and host.transport_name == "iser"
        assert (s.targetname, s.state, s.initiatorname) == (DRIVER_IQN, "LOGGED_IN", INITIATOR)
        assert s.ifacename == "iser"
        assert_by_path_link(driver.disk, by_path(driver.lio))
        assert driver.lio.sessions() == [INITIATOR]

    def test_data_lands_in_the_backing_file(self, driver: DriverLogin) -> None:
        assert_dd_lands(driver.disk, driver.lio.backing_path, 5 << 20)

    def test_login_negotiated_iser_and_sysfs_shows_its_lengths(self, driver: DriverLogin) -> None:
        p = driver.session.params
        assert p["RDMAExtensions"] == "Yes"
        # LIO declares its own MaxRecvDataSegmentLength even so: not what the kernel uses.
        assert (p.get("HeaderDigest", "None"), p.get("DataDigest", "None")) == ("None", "None")
        s = SysfsContext().session(driver.session.kernel_sid)
        assert s is not None
        conn = s.connection()
        assert conn is not None
        # ib_iser ignores SET_PARAM MAX_RECV_DLENGTH ("TBD" in iscsi_iser_set_param): sysfs
        # keeps the kernel's own value there, for iscsiadm's sessions too.
        assert conn.attr("max_xmit_dlength") == p["TargetRecvDataSegmentLength"]
        assert (conn.attr("header_digest"), conn.attr("data_digest")) == ("0", "0")
        assert (conn.persistent_address, conn.persistent_port) == (
            driver.lio.host,
            driver.lio.port,
        )

    def test_a_dropped_session_is_reconnected_on_a_new_endpoint(self, driver: DriverLogin) -> None:
        session = driver.session
        sid = session.kernel_sid
        driver.lio.drop_sessions()
        event = session.kernel.wait_conn_error(WAIT)
        assert event is not None, "no CONN_ERROR"
        assert event.sid == sid and event.error in set(ConnError)
        session.suspend()
        again = session.reconnect(driver.spec)
        assert again is session and session.kernel_sid == sid
        wait_for(
            "the session to be LOGGED_IN again",
            lambda: (s := SysfsContext().session(sid)) is not None and s.state == "LOGGED_IN",
        )
        assert driver.lio.sessions() == [INITIATOR]
        assert wait_for_disk(DRIVER_IQN) == driver.disk
        assert_dd_lands(driver.disk, driver.lio.backing_path, 9 << 20)

    def test_logout_removes_session_disk_link_and_lios_session(self, driver: DriverLogin) -> None:
        sid = driver.session.kernel_sid
        driver.session.logout()
        wait_for("the session to go", lambda: SysfsContext().session(sid) is None)
        disk = Path("/dev", driver.disk)
        wait_for(f"{disk} to go", lambda: not disk.exists())
        wait_for(f"{by_path(driver.lio)} to go", lambda: not by_path(driver.lio).exists())
        wait_for("LIO's session to go", lambda: driver.lio.sessions() == [])


# -- iscsikitd + iscsikit-adm -I iser --------------------------------------------------------


@dataclass(frozen=True)
class DaemonSetup:
    lio: Lio
    daemon: RunningDaemon

    def adm(self, *argv: str) -> subprocess.CompletedProcess[str]:
        return self.daemon.adm(*argv, timeout=WAIT * 2)

    def node(self, *argv: str) -> subprocess.CompletedProcess[str]:
        """``iscsikit-adm -m node -T <target> -p <portal> -I iser ARGV``."""
        return self.adm("-m", "node", "-T", DAEMON_IQN, "-p", self.lio.portal, "-I", "iser", *argv)


@pytest.fixture(scope="class")
def daemon(fabric: SoftRoce, tmp_path_factory: pytest.TempPathFactory) -> Iterator[DaemonSetup]:
    workdir = tmp_path_factory.mktemp("lio")
    with Lio(
        DAEMON_IQN, workdir=workdir, size=32 << 20, host=fabric.target_address, iser=True
    ) as lio:
        running = RunningDaemon(Path("/"))
        try:
            yield DaemonSetup(lio, running)
        finally:
            running.adm("-m", "node", "-T", DAEMON_IQN, "-p", lio.portal, "-u")
            running.stop()
            print(running.log[-20000:])


class TestIserDaemon:
    def test_login_with_the_iser_iface_gives_an_iser_session_and_a_disk(
        self, daemon: DaemonSetup
    ) -> None:
        lio = daemon.lio
        # SendTargets over TCP, the records bound to the built-in iser iface (as iscsiadm).
        found = daemon.adm("-m", "discovery", "-t", "st", "-p", lio.portal, "-I", "iser")
        assert found.returncode == 0, found.stderr
        assert found.stdout == f"{lio.portal},1 {DAEMON_IQN}\n"
        done = daemon.node("-l")
        assert done.returncode == 0, done.stderr + daemon.daemon.log[-4000:] + dmesg_tail()
        where = f"[iface: iser, target: {DAEMON_IQN}, portal: {lio.host},{lio.port}]"
        assert done.stdout == f"Logging in to {where}\nLogin to {where} successful.\n"
        session = session_of(DAEMON_IQN)
        assert session is not None, "no kernel session"
        host = session.host()
        assert host is not None and host.transport_name == "iser"
        assert_by_path_link(wait_for_disk(DAEMON_IQN), by_path(lio))
        assert lio.sessions() == [INITIATOR]

    def test_data_lands_in_the_backing_file(self, daemon: DaemonSetup) -> None:
        assert_dd_lands(wait_for_disk(DAEMON_IQN), daemon.lio.backing_path, 3 << 20)

    def test_session_list_and_P3_equal_iscsiadm(self, daemon: DaemonSetup) -> None:
        session = session_of(DAEMON_IQN)
        assert session is not None
        listed = daemon.adm("-m", "session")
        assert listed.returncode == 0, listed.stderr
        line = f"iser: [{session.sid}] {daemon.lio.portal},1 {DAEMON_IQN} (non-flash)\n"
        assert listed.stdout == line
        theirs_flat = run("iscsiadm", "-m", "session")
        assert theirs_flat.stdout == listed.stdout
        ours = daemon.adm("-m", "session", "-P", "3")
        theirs = run("iscsiadm", "-m", "session", "-P", "3")  # no iscsid: sysfs only
        assert (ours.returncode, theirs.returncode) == (0, 0), (ours.stderr, theirs.stderr)
        disk = wait_for_disk(DAEMON_IQN)
        assert re.search(rf"Attached scsi disk {disk}\s+State: running", ours.stdout)
        assert "Iface Transport: iser" in ours.stdout
        assert "Iface Name: iser" in ours.stdout
        assert "iSCSI Connection State: LOGGED IN" in ours.stdout
        compared = assert_same_lines(theirs.stdout, ours.stdout, skip=IPC_ONLY)
        assert len(compared) > 30  # the whole -P 3 tree was compared

    def test_a_dropped_session_recovers_the_same_sid_on_a_new_endpoint(
        self, daemon: DaemonSetup, request: pytest.FixtureRequest
    ) -> None:
        before = session_of(DAEMON_IQN)
        assert before is not None
        disk = wait_for_disk(DAEMON_IQN)
        daemon.lio.drop_sessions()
        request.addfinalizer(lambda: print(daemon.daemon.log[-6000:], dmesg_tail()))
        wait_for(
            "the daemon to see the connection fail",
            lambda: "connection failed" in daemon.daemon.log,
        )
        wait_for(
            "the session to be LOGGED_IN again",
            lambda: (s := session_of(DAEMON_IQN)) is not None and s.state == "LOGGED_IN",
        )
        after = session_of(DAEMON_IQN)
        assert after is not None and after.sid == before.sid
        assert daemon.lio.sessions() == [INITIATOR]
        assert wait_for_disk(DAEMON_IQN) == disk
        assert_dd_lands(disk, daemon.lio.backing_path, 11 << 20)

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
        wait_for(f"{by_path(lio)} to go", lambda: not by_path(lio).exists())
        wait_for("LIO's session to go", lambda: lio.sessions() == [])
