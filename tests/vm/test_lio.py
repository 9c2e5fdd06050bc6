"""The kernel initiators against LIO, the kernel's own iSCSI target, in the guest
(iscsikit.testing.lio): the second target beside tgtd that issue 10 asks for.

Two groups, each with its own target and login, in file order (each group's last test
logs out or destroys):

* open-iscsi (iscsid + iscsiadm) against a demo-mode target: disk and by-path link, data
  byte-exact in LIO's backing file, a session LIO drops is recovered by iscsid on a new
  TCP connection and carries data again, logout removes disk, link and LIO's session.
* iscsikit's kernel driver (drivers/kerneltcp) against a target with an ACL and CHAP:
  disk and by-path link, data byte-exact, sysfs equal to what LIO negotiated, a session
  LIO drops is a CONN_ERROR event for it.

iscsid runs only during the first group: at start-up it adopts every kernel session it
finds, and it must not take the kernel driver's.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from iscsikit.netlink import ConnError
from iscsikit.plugin import ConnectSpec
from iscsikit.proto.address import parse_portal
from iscsikit.proto.login import ChapSecrets, LoginConfig
from iscsikit.sysfs import IscsiSession, SysfsContext
from iscsikit.testing.lio import Lio, LioChap, lio_missing
from iscsikit.testing.vmguest.checks import WAIT, assert_by_path_link, assert_dd_lands, wait_for
from iscsikit_drivers.kerneltcp import KernelSession, KernelSettings

OPEN_ISCSI_IQN = "iqn.2024-01.test.iscsikit.vm:lio-open-iscsi"
KERNEL_IQN = "iqn.2024-01.test.iscsikit.vm:lio-kernel"
INITIATOR = "iqn.2024-01.test.iscsikit.vm:lio-initiator"
CHAP = LioChap("lio-user", "lio-secret-1234")


def run(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, timeout=WAIT, check=False)


def session_of(iqn: str) -> IscsiSession | None:
    return next((s for s in SysfsContext().sessions() if s.targetname == iqn), None)


def by_path(lio: Lio) -> Path:
    return Path(f"/dev/disk/by-path/ip-{lio.portal}-iscsi-{lio.iqn}-lun-0")


def wait_for_disk(iqn: str) -> str:
    """The name (``sda``) of the disk of the session with target ``iqn``, once it exists."""
    wait_for("the session's disk", lambda: bool((s := session_of(iqn)) and s.block_devices()))
    session = session_of(iqn)
    assert session is not None
    return session.block_devices()[0].path.name


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
    log = tmp_path_factory.mktemp("iscsid") / "iscsid.log"
    with open(log, "wb") as out:
        # Its own session: iscsid signals its whole process group when it stops.
        proc = subprocess.Popen(
            ["iscsid", "-f"], stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    wait_for(
        "iscsid's socket",
        lambda: "@ISCSIADM_ABSTRACT_NAMESPACE" in Path("/proc/net/unix").read_text(),
    )
    yield
    proc.terminate()
    proc.wait(timeout=WAIT)


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
        assert_by_path_link(open_iscsi.disk, by_path(open_iscsi.lio))
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
        wait_for(f"{by_path(lio)} to go", lambda: not by_path(lio).exists())
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
        assert_by_path_link(kernel.disk, by_path(kernel.lio))
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
