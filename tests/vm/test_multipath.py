"""dm-multipath over iscsikit's kernel sessions (issue 13, item 1; peers.md §8).

One tgtd target with two portals (127.0.0.1 and 127.0.0.2, one port), discovered on each
with ``iscsikit-adm``, the node records given the short timers the multipath docs
recommend (``-o update``: replacement_timeout 10 s, NOP-Out 2/2 s), logged in: two kernel
sessions, two sd disks, one dm-multipath map with two active paths.  Then, each during a
verified write stream to the map (``O_DIRECT``; every acknowledged block read back):

(a) the target drops one path's connection (``tgtadm --op delete --mode conn``);
(b) the 127.0.0.2 portal is removed (its connection dropped too, so the path's recovery
    fails until the portal is back) and added again;
(c) the 127.0.0.2 session is logged out with ``iscsikit-adm`` and logged in again.

After each: no write failed, no block lost or corrupted, and both paths are active again
in ``multipathd show paths``; ``-m session -P 3`` and its JSON show each disk's map and
path state (the failed path as ``failed`` while its portal is gone).  The counts are
printed (and recorded as junit properties).
The tests run in file order and share one daemon, one tgtd and one multipathd.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from iscsikit.sysfs import IscsiSession, SysfsContext
from iscsikit.sysfs.dm import map_status
from iscsikit.testing.daemon import RunningDaemon
from iscsikit.testing.plugin import require_tgt
from iscsikit.testing.tgtd import Tgtd
from iscsikit.testing.vmguest.checks import WAIT, kernel_initiator, wait_for
from iscsikit.testing.vmguest.multipath import Multipathd, VerifiedWriter, settle

IQN = "iqn.2024-01.test.iscsikit.vm:mpath"
INITIATOR = "iqn.2024-01.test.iscsikit.vm:mpath-initiator"
HOSTS = ("127.0.0.1", "127.0.0.2")
#: The node settings for dm-multipath (docs/multipath.md), shortened for the test.
NODE_TIMERS = {
    "node.session.timeo.replacement_timeout": "10",
    "node.conn[0].timeo.noop_out_interval": "2",
    "node.conn[0].timeo.noop_out_timeout": "2",
}


@dataclass
class Setup:
    tgtd: Tgtd
    tid: int
    daemon: RunningDaemon
    multipathd: Multipathd
    name: str = ""
    dm: str = ""
    #: tgtd's session id of the 127.0.0.1 path.
    first_sid: int = 0

    def portal(self, host: str) -> str:
        return f"{host}:{self.tgtd.port}"

    def adm(self, *argv: str) -> subprocess.CompletedProcess[str]:
        result = self.daemon.adm(*argv)
        out = result.stdout.decode() if isinstance(result.stdout, bytes) else result.stdout
        err = result.stderr.decode() if isinstance(result.stderr, bytes) else result.stderr
        return subprocess.CompletedProcess(result.args, result.returncode, out, err)

    def node(self, host: str, *argv: str) -> None:
        done = self.adm("-m", "node", "-T", IQN, "-p", self.portal(host), *argv)
        assert done.returncode == 0, done.stderr + self.daemon.log[-4000:]

    def find(self, host: str) -> IscsiSession | None:
        """The kernel session through portal ``host`` (sysfs; the persistent address,
        which stays while the connection is down), if there is one."""
        for session in SysfsContext().sessions():
            conn = session.connection()
            if session.targetname != IQN or conn is None:
                continue
            if host in (conn.persistent_address, conn.address):
                return session
        return None

    def session(self, host: str) -> IscsiSession:
        found = self.find(host)
        assert found is not None, f"no kernel session through {host}"
        return found

    def logged_in(self, host: str) -> bool:
        found = self.find(host)
        return found is not None and found.state == "LOGGED_IN"

    def drop_second_path(self) -> None:
        """The target drops the connection of the session through 127.0.0.2.  tgtd shows
        every connection from 127.0.0.1 (the kernel's source for any 127/8 address) and
        keeps a session's id until it ends: the 127.0.0.1 path, never faulted, keeps the
        id it got at login, so the other id is the 127.0.0.2 path's."""
        conns = [c for c in self.tgtd.sessions(self.tid) if c.sid != self.first_sid]
        assert len(conns) == 1, f"not one second path at tgtd: {conns}"
        (c,) = conns
        self.tgtd.tgtadm(
            "--op", "delete", "--mode", "conn", "--tid", str(self.tid),
            "--sid", str(c.sid), "--cid", str(c.cid),
        )  # fmt: skip

    @property
    def device(self) -> Path:
        return Path("/dev", self.dm)


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    kernel_initiator(INITIATOR)
    require_tgt()
    if shutil.which("multipathd") is None:
        pytest.fail("multipathd missing: .ci/vm-deps installs multipath-tools on the host")
    work = tmp_path_factory.mktemp("mpath")
    with Tgtd(work / "tgtd", host=HOSTS[0], start_timeout=WAIT) as tgtd:
        tgtd.add_portal(HOSTS[1], tgtd.port)
        tid = tgtd.add_target(IQN, luns=1, lun_size=32 << 20)
        with Multipathd(work / "multipathd.log") as multipathd:
            daemon = RunningDaemon(Path("/"))
            try:
                yield Setup(tgtd, tid, daemon, multipathd)
            finally:
                for host in HOSTS:
                    node = ("-m", "node", "-T", IQN, "-p", f"{host}:{tgtd.port}")
                    daemon.adm(*node, "-u")
                    daemon.adm(*node, "-o", "delete")
                daemon.stop()
                print(daemon.log[-20000:])
                print(multipathd.log[-8000:])


def _report(record_property: Callable[[str, object], None], what: str, w: VerifiedWriter) -> None:
    counts = w.verify()
    record_property(f"{what}_blocks_written", counts.written)
    record_property(f"{what}_blocks_verified", counts.verified)
    record_property(f"{what}_blocks_bad", len(counts.bad))
    line = (
        f"\n[multipath {what}] blocks written {counts.written}, verified {counts.verified}, "
        f"lost/corrupted {len(counts.bad)}, write errors {len(counts.errors)}"
    )
    _print_uncaptured(line)  # shown without -s too: the counts belong in the run's output
    assert not counts.errors, f"a write failed: {counts.errors}"
    assert not counts.bad, f"lost or corrupted blocks: {counts.bad[:20]}"
    assert counts.written > 0 and counts.verified == w.blocks


_config: list[pytest.Config] = []


@pytest.fixture(autouse=True)
def _uncaptured(request: pytest.FixtureRequest) -> None:
    _config[:] = [request.config]


def _print_uncaptured(line: str) -> None:
    """Print past pytest's capture (the run's output shows it without ``-s``)."""
    config = _config[0]
    capture = config.pluginmanager.get_plugin("capturemanager")
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    if capture is None or reporter is None:
        print(line)
        return
    with capture.global_and_fixture_disabled():
        reporter.write_line(line)


def test_two_sessions_give_one_map_with_two_active_paths(setup: Setup) -> None:
    for host in HOSTS:
        found = setup.adm("-m", "discovery", "-t", "st", "-p", setup.portal(host))
        assert found.returncode == 0, found.stderr
        assert IQN in found.stdout
        for key, value in NODE_TIMERS.items():
            setup.node(host, "-o", "update", "-n", key, "-v", value)
    setup.node(HOSTS[0], "-l")
    (first,) = setup.tgtd.sessions(setup.tid)
    setup.first_sid = first.sid
    setup.node(HOSTS[1], "-l")
    assert len(setup.tgtd.sessions(setup.tid)) == 2
    sessions = [setup.session(host) for host in HOSTS]
    assert len({s.sid for s in sessions}) == 2
    shown = setup.adm("-m", "node", "-T", IQN, "-p", setup.portal(HOSTS[1]), "-o", "show")
    assert "node.session.timeo.replacement_timeout = 10\n" in shown.stdout
    for s in sessions:  # the node's value; multipathd's fast_io_fail_tmo is the same
        assert s.attr("recovery_tmo") == "10"
    wait_for("two disks", lambda: all(s.block_devices() for s in sessions))
    setup.name, setup.dm = setup.multipathd.wait_map()
    paths = setup.multipathd.wait_usable(setup.name, 2)
    disks = sorted(s.block_devices()[0].path.name for s in sessions)
    assert paths == disks
    listed = setup.multipathd.query("show", "paths").stdout
    print(listed)
    # iscsikit reads the map's status through the device-mapper ioctl as dmsetup does
    dmsetup = subprocess.run(
        ["dmsetup", "status", setup.name], capture_output=True, text=True, timeout=30, check=True
    ).stdout
    print(dmsetup)
    assert (map_status(setup.name) or "").split() == dmsetup.split(" multipath ", 1)[1].split()
    _assert_path_states(setup, dict.fromkeys(HOSTS, "active"))


def _assert_path_states(setup: Setup, wanted: dict[str, str]) -> None:
    """``-m session -r SID -P 3`` names the map and says each host's path state, and the
    JSON output carries the same."""
    for host, state in wanted.items():
        sid = str(setup.session(host).sid)
        text = setup.adm("-m", "session", "-r", sid, "-P", "3").stdout
        line = f"Multipath: {setup.name} ({setup.dm})\tPath State: {state}\t"
        assert line in text, text
        as_json = setup.adm("-m", "session", "-r", sid, "-P", "3", "--output", "json")
        doc = json.loads(as_json.stdout)
        (found,) = [d for d in doc["sessions"] if str(d["sid"]) == sid]
        (lun,) = [d for d in found["devices"] if d["disk"]]  # LUN 0: the controller
        assert (lun["multipath"], lun["path_state"]) == (setup.name, state)


def test_connection_dropped_by_the_target(
    setup: Setup, record_property: Callable[[str, object], None]
) -> None:
    assert setup.dm, "no multipath map (the first test failed)"
    before = setup.session(HOSTS[1]).sid
    writer = VerifiedWriter(setup.device)
    writer.prime()
    with writer:
        writer.wait_written(64)
        setup.drop_second_path()
        writer.wait_written(256)
        wait_for(
            "the dropped path's session to be logged in again",
            lambda: setup.logged_in(HOSTS[1]),
        )
        settle()
        setup.multipathd.wait_usable(setup.name, 2)
        writer.wait_written(64)
    assert setup.session(HOSTS[1]).sid == before, "recovery made a new session"
    _report(record_property, "conn-drop", writer)


def test_portal_removed_and_added_again(
    setup: Setup, record_property: Callable[[str, object], None]
) -> None:
    assert setup.dm, "no multipath map (the first test failed)"
    portal = setup.portal(HOSTS[1])
    writer = VerifiedWriter(setup.device)
    writer.prime()
    with writer:
        writer.wait_written(64)
        setup.tgtd.delete_portal(portal)
        setup.drop_second_path()
        # The path fails once replacement_timeout (10 s) passes without a connection;
        # the writes go on over the other path meanwhile.
        setup.multipathd.wait_usable(setup.name, 1)
        _assert_path_states(setup, {HOSTS[0]: "active", HOSTS[1]: "failed"})
        writer.wait_written(128)
        setup.tgtd.tgtadm("--op", "new", "--mode", "portal", "--param", f"portal={portal}")
        wait_for("the session through the re-added portal", lambda: setup.logged_in(HOSTS[1]))
        settle()
        setup.multipathd.wait_usable(setup.name, 2)
        writer.wait_written(64)
    _assert_path_states(setup, dict.fromkeys(HOSTS, "active"))
    _report(record_property, "portal-readd", writer)


def test_session_logged_out_and_in_again(
    setup: Setup, record_property: Callable[[str, object], None]
) -> None:
    assert setup.dm, "no multipath map (the first test failed)"
    writer = VerifiedWriter(setup.device)
    writer.prime()
    with writer:
        writer.wait_written(64)
        setup.node(HOSTS[1], "-u")
        settle()
        setup.multipathd.wait_usable(setup.name, 1)
        writer.wait_written(128)
        setup.node(HOSTS[1], "-l")
        wait_for(
            "the new session's disk",
            lambda: (found := setup.find(HOSTS[1])) is not None and bool(found.block_devices()),
        )
        settle()
        setup.multipathd.wait_usable(setup.name, 2)
        writer.wait_written(64)
    _report(record_property, "logout-login", writer)
