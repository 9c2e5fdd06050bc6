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
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import pytest

from iscsikit.errors import IscsiErr, IscsiError
from iscsikit.manager.spec import normal_operational_keys
from iscsikit.netlink import ConnError
from iscsikit.plugin import ConnectSpec, Timeouts
from iscsikit.proto.address import parse_portal
from iscsikit.proto.login import ChapSecrets, LoginConfig
from iscsikit.sysfs import SysfsContext
from iscsikit.testing.daemon import RunningDaemon
from iscsikit.testing.lio import Lio, LioChap, lio_missing
from iscsikit.testing.tgtd import free_port
from iscsikit.testing.vmguest.checks import (
    ISCSI_CLASSES,
    WAIT,
    assert_by_path_link,
    assert_dd_lands,
    bounded,
    by_path,
    iscsi_objects,
    kernel_initiator,
    session_of,
    wait_for,
    wait_for_disk,
)
from iscsikit.testing.vmguest.compare import IPC_ONLY, assert_same_lines, run
from iscsikit.testing.vmguest.rdma import SoftRoce, rdma_missing
from iscsikit_drivers.iser import IserTransport
from iscsikit_drivers.kerneltcp import KernelTcpSession

DRIVER_IQN = "iqn.2024-01.test.iscsikit.vm:iser-driver"
DAEMON_IQN = "iqn.2024-01.test.iscsikit.vm:iser-daemon"
FAIL_IQN = "iqn.2024-01.test.iscsikit.vm:iser-failures"
FAIL_CHAP = LioChap("iser-user", "iser-secret-1234")
INITIATOR = "iqn.2024-01.test.iscsikit.vm:iser-initiator"


def lun0_link(lio: Lio) -> Path:
    return by_path(lio.portal, lio.iqn, 0)


def dmesg_tail(lines: int = 40) -> str:
    done = run("dmesg")
    return "\n".join(done.stdout.splitlines()[-lines:])


@pytest.fixture(scope="module")
def fabric() -> Iterator[SoftRoce]:
    for missing in (lio_missing(), rdma_missing()):
        if missing:
            pytest.skip(missing)
    kernel_initiator(INITIATOR)
    with SoftRoce() as roce:
        _kernel_debug()
        yield roce


def _kernel_debug() -> None:
    """Connection-level debug messages of the iSCSI class, libiscsi and ib_iser in dmesg
    (printed when a test fails): what the kernel did with each endpoint and connection."""
    for param, value in (
        ("scsi_transport_iscsi/parameters/debug_conn", "1"),
        ("libiscsi/parameters/debug_libiscsi_conn", "1"),
        ("ib_iser/parameters/debug_level", "2"),
    ):
        path = Path("/sys/module", param)
        if path.exists():
            path.write_text(value)


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
        assert_by_path_link(driver.disk, lun0_link(driver.lio))
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
        assert session.kernel.endpoint is not None
        handle = session.kernel.endpoint.handle
        driver.lio.drop_sessions()
        event = session.kernel.wait_conn_error(WAIT)
        assert event is not None, "no CONN_ERROR"
        assert event.sid == sid and event.error in set(ConnError)
        session.suspend()
        again = session.reconnect(driver.spec)
        assert again is session and session.kernel_sid == sid
        # The old endpoint was freed (its id released) before the new one was made.
        assert session.kernel.endpoint is not None
        assert session.kernel.endpoint.handle == handle, dmesg_tail(80)
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
        wait_for(f"{lun0_link(driver.lio)} to go", lambda: not lun0_link(driver.lio).exists())
        wait_for("LIO's session to go", lambda: driver.lio.sessions() == [])


# -- failed logins leave nothing behind --------------------------------------------------------


@pytest.fixture(scope="class")
def chap_lio(fabric: SoftRoce, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lio]:
    workdir = tmp_path_factory.mktemp("lio")
    with Lio(
        FAIL_IQN,
        workdir=workdir,
        size=32 << 20,
        host=fabric.target_address,
        iser=True,
        initiator=INITIATOR,
        chap=FAIL_CHAP,
    ) as lio:
        yield lio


def _spec(portal: str, target: str, secret: str, login_timeout: float) -> ConnectSpec:
    login = LoginConfig(
        INITIATOR,
        bytes.fromhex("400001370012"),
        target_name=target,
        chap=ChapSecrets(FAIL_CHAP.user, secret),
        operational=normal_operational_keys(MaxRecvDataSegmentLength="262144"),
    )
    return ConnectSpec(
        parse_portal(portal),
        login,
        timeouts=Timeouts(login=login_timeout),
        replacement_timeout=30,
        record={"iface.iscsi_ifacename": "iser"},
    )


def _assert_nothing_left(after: str) -> None:
    nothing: dict[str, list[str]] = {cls: [] for cls in ISCSI_CLASSES}
    try:
        wait_for(f"no iSCSI objects after {after}", lambda: iscsi_objects() == nothing, 15)
    except BaseException:
        print(iscsi_objects(), dmesg_tail())
        raise


#: Each failure: (portal, target name, CHAP secret) -> the exit codes the login's error
#: may carry.  An unknown target name is a *target* error for LIO ("Unable to locate
#: Target IQN": 0x0301 service unavailable, retryable: 5), not 0x0203.  A wrong CHAP
#: secret: LIO logs "Security negotiation failed", queues the 0x0201 answer (24) and
#: disconnects at once; over soft-RoCE that answer is usually lost with the queue pair
#: (no RECV_PDU comes, only the CONN_ERROR: 4).  ``nobody``: a port nothing listens on
#: (the RDMA CM connect is rejected); ``nohost``: an address on the fabric's subnet no
#: device has (no ARP answer); both fail the endpoint's connect (4).
#: (iscsid 2.1.8 here: the unknown name is retried, then 8; the wrong secret 11, a PDU timeout.)
FAILURES = {
    "wrong-target": ("lio", FAIL_IQN + "-nonexistent", FAIL_CHAP.password, {IscsiErr.LOGIN}),
    "wrong-secret": (
        "lio",
        FAIL_IQN,
        "not-" + FAIL_CHAP.password,
        {IscsiErr.LOGIN_AUTH_FAILED, IscsiErr.TRANS},
    ),
    "nobody-listens": ("nobody", FAIL_IQN, FAIL_CHAP.password, {IscsiErr.TRANS}),
    "no-such-host": ("nohost", FAIL_IQN, FAIL_CHAP.password, {IscsiErr.TRANS}),
}


class TestIserFailedLogins:
    """After each kind of failed login no kernel session, connection or endpoint is left,
    and a correct login right after works (the failure left nothing queued either)."""

    #: The endpoint handle of the first correct login: the kernel hands out the lowest
    #: free endpoint id (an IDR in 6.1), so a later login gets the same one unless a
    #: failed login left an endpoint referenced in the kernel (gone from sysfs, id held).
    first_handle: ClassVar[dict[str, int]] = {}

    @pytest.mark.parametrize("failure", list(FAILURES))
    def test_a_failed_login_leaves_nothing_and_the_next_one_works(
        self, chap_lio: Lio, fabric: SoftRoce, failure: str
    ) -> None:
        try:
            self._fail_then_log_in(chap_lio, fabric, failure)
        except BaseException:
            print(dmesg_tail(80))
            raise

    def _fail_then_log_in(self, chap_lio: Lio, fabric: SoftRoce, failure: str) -> None:
        where, target, secret, codes = FAILURES[failure]
        portals = {
            "lio": chap_lio.portal,
            "nobody": f"{chap_lio.host}:{free_port(chap_lio.host)}",
            "nohost": f"{_unused_address(fabric)}:{chap_lio.port}",
        }
        _assert_nothing_left("the previous test")
        login_timeout = 10.0
        bad = _spec(portals[where], target, secret, login_timeout)
        started = time.monotonic()
        with pytest.raises(IscsiError) as raised:
            bounded(f"the {failure} login", lambda: IserTransport().login(bad), WAIT)
        took = time.monotonic() - started
        print(f"{failure}: {type(raised.value).__name__} ({raised.value.code}) in {took:.1f} s")
        assert raised.value.code in codes, raised.value
        assert took < login_timeout + 15, f"the failure took {took:.0f} s"
        _assert_nothing_left(f"the {failure} login")

        good = _spec(chap_lio.portal, FAIL_IQN, FAIL_CHAP.password, 30.0)
        session = bounded("the correct login", lambda: IserTransport().login(good), WAIT)
        assert isinstance(session, KernelTcpSession)
        try:
            endpoint = session.kernel.endpoint
            assert endpoint is not None
            first = self.first_handle.setdefault("handle", endpoint.handle)
            assert endpoint.handle == first, f"endpoint ids leak: ep-{endpoint.handle}"
            session.scan()
            disk = wait_for_disk(FAIL_IQN)
            assert_dd_lands(disk, chap_lio.backing_path, 7 << 20)
        finally:
            bounded("the logout", session.logout, WAIT)
        _assert_nothing_left("the logout")


def _unused_address(fabric: SoftRoce) -> str:
    """An address on the fabric's /24 that neither end has."""
    prefix = fabric.target_address.rpartition(".")[0]
    return f"{prefix}.77"


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
    def test_a_failed_login_leaves_nothing_and_does_not_hang(self, daemon: DaemonSetup) -> None:
        """``-l`` to a target name LIO does not have (its 0x0301 is retried, as iscsid
        retries it) ends within its retries and leaves no kernel object; the next test
        logs in to the right name."""
        wrong = ["-m", "node", "-T", FAIL_IQN + "-unknown", "-p", daemon.lio.portal, "-I", "iser"]
        assert daemon.adm(*wrong, "-o", "new").returncode == 0
        for key, value in (
            ("node.session.initial_login_retry_max", "1"),
            ("node.conn[0].timeo.login_timeout", "5"),
        ):
            assert daemon.adm(*wrong, "-o", "update", "-n", key, "-v", value).returncode == 0
        started = time.monotonic()
        done = daemon.daemon.adm(*wrong, "-l", timeout=60)
        took = time.monotonic() - started
        print(f"-l of an unknown name: {done.returncode} in {took:.1f} s\n{done.stderr}")
        assert done.returncode != 0, done.stdout
        _assert_nothing_left("the failed -l")
        assert daemon.adm(*wrong, "-o", "delete").returncode == 0

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
        assert_by_path_link(wait_for_disk(DAEMON_IQN), lun0_link(lio))
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
        wait_for(f"{lun0_link(lio)} to go", lambda: not lun0_link(lio).exists())
        wait_for("LIO's session to go", lambda: lio.sessions() == [])
