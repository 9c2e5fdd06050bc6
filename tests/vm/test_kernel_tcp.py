"""iscsikit's own kernel driver (drivers/kerneltcp) on the guest's kernel, against a tgtd
in the guest: iscsid's netlink sequence with a userspace login, proven by what the kernel
makes of it -- a disk, its by-path link, data in tgtd's backing file, sysfs parameters
equal to what login negotiated, statistics, CONN_ERROR, logout.

The tests run in file order: the first session is logged out by the last test of its
group; the connection-drop test has a session of its own.
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
from iscsikit.proto.login import LoginConfig
from iscsikit.sysfs import IscsiSession, SysfsContext
from iscsikit.testing.plugin import require_tgt
from iscsikit.testing.tgtd import Tgtd
from iscsikit.testing.vmguest.checks import WAIT, assert_by_path_link, assert_dd_lands, wait_for
from iscsikit_drivers.kerneltcp import KernelSession, KernelSettings

IQN = "iqn.2024-01.test.iscsikit.vm:kernel"
INITIATOR = "iqn.2024-01.test.iscsikit.vm:initiator"


def _session(sid: int) -> IscsiSession | None:
    return SysfsContext().session(sid)


@dataclass(frozen=True)
class Login:
    target: Tgtd
    tid: int
    session: KernelSession
    disk: str

    @property
    def by_path(self) -> Path:
        return Path(f"/dev/disk/by-path/ip-{self.target.portal}-iscsi-{IQN}-lun-1")


def _spec(tgtd: Tgtd, isid: str, **operational: str) -> ConnectSpec:
    login = LoginConfig(INITIATOR, bytes.fromhex(isid), target_name=IQN, operational=operational)
    return ConnectSpec(parse_portal(tgtd.portal), login)


def _log_in(tgtd: Tgtd, spec: ConnectSpec, settings: KernelSettings) -> tuple[KernelSession, str]:
    session = KernelSession.login(spec, settings)
    assert isinstance(session, KernelSession)
    session.scan()

    def disk() -> bool:
        s = _session(session.sid)
        return bool(s and s.block_devices())

    wait_for("the session's disk", disk)
    s = _session(session.sid)
    assert s is not None
    return session, s.block_devices()[0].path.name


@pytest.fixture(scope="module")
def tgtd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Tgtd, int]]:
    for module in ("iscsi_tcp", "sd_mod"):
        subprocess.run(["modprobe", module], check=True, timeout=WAIT)
    require_tgt()
    with Tgtd(tmp_path_factory.mktemp("tgtd"), start_timeout=WAIT) as target:
        tid = target.add_target(IQN, luns=1, lun_size=32 << 20)
        yield target, tid


@pytest.fixture(scope="module")
def login(tgtd: tuple[Tgtd, int]) -> Iterator[Login]:
    target, tid = tgtd
    spec = _spec(
        target,
        "400001370001",
        HeaderDigest="CRC32C,None",
        MaxRecvDataSegmentLength="65536",
        FirstBurstLength="65536",
    )
    session, disk = _log_in(target, spec, KernelSettings())
    yield Login(target, tid, session, disk)
    if _session(session.sid) is not None:
        session.destroy()


def test_login_gives_a_disk_and_its_by_path_link(login: Login) -> None:
    assert_by_path_link(login.disk, login.by_path)


def test_data_written_to_the_disk_lands_in_the_backing_file(login: Login) -> None:
    assert_dd_lands(login.disk, login.target.backing_path(login.tid), 5 << 20)


def test_sysfs_shows_the_negotiated_parameters(login: Login) -> None:
    accepted = login.session.accepted
    assert accepted is not None
    p = accepted.params
    s = _session(login.session.sid)
    assert s is not None
    assert (s.targetname, s.state, s.initiatorname) == (IQN, "LOGGED_IN", INITIATOR)
    assert s.tpgt == accepted.target_portal_group_tag
    yes = {"Yes": "1", "No": "0"}
    assert s.attr("first_burst_len") == p["FirstBurstLength"]
    assert s.attr("max_burst_len") == p["MaxBurstLength"]
    assert s.attr("initial_r2t") == yes[p["InitialR2T"]]
    assert s.attr("immediate_data") == yes[p["ImmediateData"]]
    assert s.attr("recovery_tmo") == "120"
    conn = s.connection()
    assert conn is not None
    assert (conn.address, conn.port) == ("127.0.0.1", login.target.port)
    assert conn.attr("max_recv_dlength") == p["MaxRecvDataSegmentLength"] == "65536"
    assert conn.attr("max_xmit_dlength") == p["MaxXmitDataSegmentLength"]
    digest = {"None": "0", "CRC32C": "1"}  # sysfs shows the kernel's hdrdgst_en flag
    assert conn.attr("header_digest") == digest[p.get("HeaderDigest", "None")]
    assert conn.attr("data_digest") == digest[p.get("DataDigest", "None")]


def test_get_stats_counts_the_io(login: Login) -> None:
    before = login.session.stats()
    dd = subprocess.run(
        ["dd", f"if=/dev/{login.disk}", "of=/dev/null", "bs=64k", "count=16", "iflag=direct"],
        capture_output=True,
        timeout=WAIT,
        check=False,
    )
    assert dd.returncode == 0, dd.stderr
    after = login.session.stats()
    assert after["scsicmd_pdus"] >= before["scsicmd_pdus"] + 16
    assert after["rxdata_octets"] >= before["rxdata_octets"] + (1 << 20)


def test_logout_removes_the_device(login: Login) -> None:
    login.session.logout()
    wait_for("the session to go", lambda: _session(login.session.sid) is None)
    wait_for(f"/dev/{login.disk} to go", lambda: not Path("/dev", login.disk).exists())
    wait_for(f"{login.by_path} to go", lambda: not login.by_path.exists())
    assert login.target.sessions(login.tid) == []


def test_a_dropped_connection_is_a_conn_error_event(tgtd: tuple[Tgtd, int]) -> None:
    target, tid = tgtd
    session, disk = _log_in(target, _spec(target, "400001370002"), KernelSettings(recovery_tmo=5))
    try:
        assert target.drop_connections(tid) == 1
        event = session.wait_conn_error(WAIT)
        assert event is not None, "no CONN_ERROR"
        assert (event.sid, event.cid) == (session.sid, session.cid)
        assert event.error in set(ConnError)
    finally:
        session.destroy()
    wait_for("the session to go", lambda: _session(session.sid) is None)
    wait_for(f"/dev/{disk} to go", lambda: not Path("/dev", disk).exists())
