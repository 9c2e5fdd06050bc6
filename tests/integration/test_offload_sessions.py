"""Offload sessions as the kernel shows them: a login through a simulated qla4xxx host
to tgtd makes ``session<sid>``, ``connection<sid>:0`` and the SCSI target under the
HBA's host (iscsikit.testing.simhba.kernelview); ``iscsikit-adm -m session`` lists it
with the offload transport's name; a restarted driver adopts it."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from iscsikit.plugin import ConnectSpec
from iscsikit.proto.address import Portal
from iscsikit.proto.login import LoginConfig
from iscsikit.sysfs import SysfsContext
from iscsikit.testing.plugin import DISK_IQN
from iscsikit.testing.simhba import HbaServer, SimulatedHba
from iscsikit.testing.tgtd import Tgtd
from iscsikit_drivers.kerneltcp import NetlinkChannel
from iscsikit_drivers.offload.bnx2i import Bnx2iTransport
from iscsikit_drivers.offload.qla4xxx import Qla4xxxTransport

pytestmark = pytest.mark.integration

INITIATOR = "iqn.2024-01.test.iscsikit:offload"


@pytest.fixture
def hba(tmp_path: Path) -> Iterator[tuple[SimulatedHba, HbaServer]]:
    hba = SimulatedHba(tmp_path / "root", "qla4xxx")
    with HbaServer(hba) as server:
        yield hba, server


def _driver(hba: SimulatedHba, server: HbaServer) -> Qla4xxxTransport:
    def channel(*, events: bool = False) -> NetlinkChannel:
        return NetlinkChannel(sock=server.socketpair())

    return Qla4xxxTransport(channel_factory=channel, root=hba.root)


def _spec(tgtd: Tgtd) -> ConnectSpec:
    login = LoginConfig(initiator_name=INITIATOR, isid=b"\x80\x01\x02\x03\x04\x05",
                        target_name=DISK_IQN)  # fmt: skip
    return ConnectSpec(Portal(tgtd.host, tgtd.port), login)


def _adm(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "ISCSIKIT_ROOT": str(root)}
    return subprocess.run(
        [sys.executable, "-m", "iscsikit", *args],
        env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip


def test_offload_session_in_sysfs_and_listed(
    hba: tuple[SimulatedHba, HbaServer], tgtd: Tgtd
) -> None:
    sim, server = hba
    driver = _driver(sim, server)
    session = driver.login(_spec(tgtd))
    assert not isinstance(session, type(None)) and hasattr(session, "kernel_sid")
    sid = session.kernel_sid  # type: ignore[union-attr]
    try:
        found = SysfsContext(sim.root).session(sid)
        assert found is not None and found.host_no == sim.host_no  # the HBA's own host
        assert found.attr("targetname") == DISK_IQN
        assert found.attr("state") == "LOGGED_IN"
        conn = found.connection()
        assert conn is not None
        assert (conn.attr("address"), conn.attr("port")) == (tgtd.host, str(tgtd.port))
        assert conn.attr("persistent_address") == tgtd.host
        host_dir = sim.fake.host_dir(sim.host_no)
        assert (host_dir / f"session{sid}" / f"target{sim.host_no}:0:0").is_dir()
        listed = _adm(sim.root, "-m", "session")
        assert listed.returncode == 0, listed.stderr
        tpgt = found.attr("tpgt")
        assert listed.stdout == (
            f"qla4xxx: [{sid}] {tgtd.host}:{tgtd.port},{tpgt} {DISK_IQN} (non-flash)\n"
        )
        tree = _adm(sim.root, "-m", "session", "-P", "3")
        assert tree.returncode == 0, tree.stderr
        # -P 3 as libopeniscsiusr reads an offload session: the iface named
        # <transport>.<mac>.<ipv4|ipv6>.0 from the host, the session's own state.
        for line in (
            f"Target: {DISK_IQN} (non-flash)",
            f"\tCurrent Portal: {tgtd.host}:{tgtd.port},{tpgt}",
            f"\t\tIface Name: qla4xxx.{sim.hwaddress}.ipv4.0",
            "\t\tIface Transport: qla4xxx",
            f"\t\tIface HWaddress: {sim.hwaddress}",
            f"\t\tSID: {sid}",
            "\t\tiSCSI Session State: LOGGED_IN",
            f"\t\tHost Number: {sim.host_no}\tState: running",
        ):
            assert line + "\n" in tree.stdout, (line, tree.stdout)
    finally:
        session.logout()  # type: ignore[union-attr]
    assert SysfsContext(sim.root).session(sid) is None  # DESTROY_SESSION removed it
    assert not (sim.fake.host_dir(sim.host_no) / f"session{sid}").exists()


def test_restarted_driver_adopts_the_session(
    hba: tuple[SimulatedHba, HbaServer], tgtd: Tgtd
) -> None:
    sim, server = hba
    spec = _spec(tgtd)
    first = _driver(sim, server).login(spec)
    sid = first.kernel_sid  # type: ignore[union-attr]
    first.release()  # type: ignore[union-attr]  # the daemon stops; the session stays
    assert SysfsContext(sim.root).session(sid) is not None
    adopted = _driver(sim, server).adopt(sid, spec)
    assert (adopted.kernel_sid, adopted.host_no) == (sid, sim.host_no)
    with pytest.raises(Exception, match="no kernel session"):
        _driver(sim, server).adopt(sid + 5, spec)
    adopted.logout()
    assert SysfsContext(sim.root).session(sid) is None


def test_another_drivers_host_is_not_adopted(
    hba: tuple[SimulatedHba, HbaServer], tgtd: Tgtd
) -> None:
    sim, server = hba
    spec = _spec(tgtd)
    session = _driver(sim, server).login(spec)
    sid = session.kernel_sid  # type: ignore[union-attr]
    try:
        other = Bnx2iTransport(root=sim.root)
        with pytest.raises(Exception, match="no kernel session"):
            other.adopt(sid, spec)
    finally:
        session.logout()  # type: ignore[union-attr]


def test_iscsikitd_adopts_an_offload_session(tgtd: Tgtd) -> None:
    """A restarted iscsikitd takes over the offload session it finds in sysfs (through
    the plugin's adopt(), on the test seam), lists it, and leaves it when it stops; then
    ``-m session -r N -u`` logs it out (the session's iface, ``qla4xxx.<mac>.ipv4.0``,
    is the record iscsiadm makes for the host's kernel iface ``ipv4-iface-H-0``)."""
    from iscsikit.ipc.iscsid import iscsid_running
    from iscsikit.testing.daemon import RunningDaemon, short_root

    if iscsid_running():
        pytest.skip("open-iscsi's iscsid runs here: iscsikitd leaves kernel sessions to it")
    root = short_root("ikoff")
    try:
        sim = SimulatedHba(root, "qla4xxx")
        with HbaServer(sim) as server:
            sock = server.listen(root / "nl.sock")
            first = _driver(sim, server).login(_spec(tgtd))
            sid = first.kernel_sid  # type: ignore[union-attr]
            first.release()  # type: ignore[union-attr]  # as a daemon that stops
            env = {"ISCSIKIT_OFFLOAD_NETLINK": str(sock)}
            with RunningDaemon(root, env=env) as daemon:
                listed = daemon.adm("-m", "session")
                assert listed.returncode == 0, (listed.stderr, daemon.log)
                assert listed.stdout.startswith(f"qla4xxx: [{sid}] "), listed.stdout
                assert f"adopted kernel session {sid}" in daemon.log
                # SIGTERM: a kernel session is left for the next daemon, as iscsid leaves it.
                assert daemon.stop() == 0, daemon.log
            assert SysfsContext(root).session(sid) is not None, daemon.log
            with RunningDaemon(root, env=env) as daemon:
                # -s: GET_STATS on the driver's channel (every offload driver answers it;
                # the qla4xxx firmware counts the login PDUs, ql4_os.c:1849-1870).
                st = daemon.adm("-m", "session", "-r", str(sid), "-s")
                assert st.returncode == 0, (st.stdout, st.stderr, daemon.log)
                assert st.stdout.startswith(f"Stats for session [sid: {sid}, target: "), st.stdout
                assert "\tlogin_pdus: 1\n" in st.stdout, st.stdout
                out = daemon.adm("-m", "session", "-r", str(sid), "-u")
                assert out.returncode == 0, (out.stdout, out.stderr, daemon.log)
                assert "successful" in out.stdout, out.stdout
                assert SysfsContext(root).session(sid) is None, daemon.log
        assert SysfsContext(root).session(sid) is None
    finally:
        shutil.rmtree(root, ignore_errors=True)
