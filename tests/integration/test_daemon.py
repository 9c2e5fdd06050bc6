"""iscsikitd end to end: the command line logs in through the daemon, the session's LUNs
are served over NBD, the session is listed with iscsiadm's formats, logged out; the
daemon's life (automatic logins at start, SIGHUP, SIGTERM, ``-k 0``); many clients."""

from __future__ import annotations

import concurrent.futures
import os
import re
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from iscsikit.testing.daemon import RunningDaemon
from iscsikit.testing.nbdclient import NbdClient
from iscsikit.testing.tgtd import Tgtd

pytestmark = pytest.mark.integration

IQN = "iqn.2024-01.test.daemon:disk"
LUN_SIZE = 8 << 20


@pytest.fixture(scope="module")
def target(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Tgtd]:
    with Tgtd(tmp_path_factory.mktemp("daemon")) as tgtd:
        tgtd.add_target(f"{IQN}1", tid=1, lun_size=LUN_SIZE)
        tgtd.add_target(f"{IQN}2", tid=2, luns=2, lun_size=LUN_SIZE)
        yield tgtd


@pytest.fixture
def daemon() -> Iterator[RunningDaemon]:
    with RunningDaemon() as d:
        yield d


def ok(result: object) -> str:
    code = result.returncode
    out = result.stdout
    assert code == 0, f"exit {code}: {out}{result.stderr}"
    return str(out)


def discover(d: RunningDaemon, t: Tgtd) -> None:
    ok(d.adm("-m", "discovery", "-t", "st", "-p", t.portal))


def test_login_session_nbd_logout(daemon: RunningDaemon, target: Tgtd) -> None:
    discover(daemon, target)
    out = ok(daemon.adm("-m", "node", "-T", f"{IQN}1", "-p", target.portal, "-l"))
    name = f"[iface: default, target: {IQN}1, portal: {target.host},{target.port}]"
    assert out == f"Logging in to {name}\nLogin to {name} successful.\n"
    listing = ok(daemon.adm("-m", "session"))
    assert re.fullmatch(
        rf"tcp: \[1\] {target.host}:{target.port},1 {IQN}1 \(non-flash\)\n", listing
    )
    p3 = ok(daemon.adm("-m", "session", "-P", "3"))
    assert "iSCSI Session State: LOGGED_IN" in p3
    assert "HeaderDigest: None" in p3
    sock = daemon.run_dir / "nbd" / f"ip-{target.host}:{target.port}-iscsi-{IQN}1-lun-1"
    assert f"nbd+unix:///?socket={sock}" in p3
    data = os.urandom(256 << 10)
    with NbdClient(str(sock)) as nbd:
        assert nbd.size == LUN_SIZE
        nbd.write(4096 * 3 + 17, data)  # unaligned: the export merges partial blocks
        nbd.flush()
        assert nbd.read(4096 * 3 + 17, len(data)) == data
    backing = target.backing_path(1).read_bytes()
    assert backing[4096 * 3 + 17 : 4096 * 3 + 17 + len(data)] == data
    stats = ok(daemon.adm("-m", "session", "-r", "1", "-s"))
    assert stats.startswith(f"Stats for session [sid: 1, target: {IQN}1, portal: ")
    out = ok(daemon.adm("-m", "node", "-T", f"{IQN}1", "-p", target.portal, "-u"))
    assert out.endswith("successful.\n")
    assert not sock.exists()
    assert daemon.adm("-m", "session").returncode == 21
    assert target.sessions(1) == []  # logged out at the target too


def test_every_lun_is_exported_and_rescan(daemon: RunningDaemon, target: Tgtd) -> None:
    discover(daemon, target)
    ok(daemon.adm("-m", "node", "-T", f"{IQN}2", "-l"))
    nbd = daemon.run_dir / "nbd"
    names = sorted(p.name for p in nbd.iterdir())
    assert names == [
        f"ip-{target.host}:{target.port}-iscsi-{IQN}2-lun-1",
        f"ip-{target.host}:{target.port}-iscsi-{IQN}2-lun-2",
    ]
    ok(daemon.adm("-m", "session", "-r", "1", "-R"))
    assert sorted(p.name for p in nbd.iterdir()) == names
    ok(daemon.adm("-m", "node", "-u"))


def test_nr_sessions_gives_two_sessions_two_exports(daemon: RunningDaemon, target: Tgtd) -> None:
    discover(daemon, target)
    ok(daemon.adm("-m", "node", "-T", f"{IQN}1", "-o", "update", "-n",
                  "node.session.nr_sessions", "-v", "2"))  # fmt: skip
    out = ok(daemon.adm("-m", "node", "-T", f"{IQN}1", "-l"))
    assert out.count("successful") == 2 and "(multiple)" in out
    assert len(target.sessions(1)) == 2
    again = daemon.adm("-m", "node", "-T", f"{IQN}1", "-l")
    assert again.returncode == 15
    assert "2 sessions requested, but 2 already present." in again.stderr
    exports = sorted(p.name for p in (daemon.run_dir / "nbd").iterdir())
    # Both logins run at once: whichever session is exported first gets the plain name.
    assert len(exports) == 2 and exports[0].endswith("-lun-1")
    assert re.fullmatch(re.escape(exports[0]) + r"-session-[12]", exports[1])
    ok(daemon.adm("-m", "node", "-u"))
    assert target.sessions(1) == []


def test_login_errors_have_iscsiadm_codes(daemon: RunningDaemon, target: Tgtd) -> None:
    ok(daemon.adm("-m", "node", "-o", "new", "-T", "iqn.2024-01.test.daemon:nope",
                  "-p", target.portal))  # fmt: skip
    failed = daemon.adm("-m", "node", "-T", "iqn.2024-01.test.daemon:nope", "-l")
    assert failed.returncode == 19, failed
    assert "Could not login to [iface: default, target: iqn.2024-01.test.daemon:nope" in (
        failed.stderr
    )
    assert "Could not log into all portals" in failed.stderr
    assert daemon.adm("-m", "session").returncode == 21  # nothing left behind
    # No such sid: iscsiadm's "Could not get session info for sid 7" (22).
    assert daemon.adm("-m", "session", "-r", "7", "-u").returncode == 22


def test_automatic_records_log_in_at_start(target: Tgtd) -> None:
    with RunningDaemon() as d:
        discover(d, target)
        ok(d.adm("-m", "node", "-T", f"{IQN}1", "-o", "update", "-n", "node.startup",
                 "-v", "automatic"))  # fmt: skip
        assert d.adm("-m", "session").returncode == 21
        assert d.stop() == 0
        d.start()
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and d.adm("-m", "session").returncode != 0:
            time.sleep(0.1)
        assert f"{IQN}1" in ok(d.adm("-m", "session"))
        assert len(target.sessions(1)) == 1
        # SIGTERM logs every session out before the daemon exits.
        assert d.stop() == 0
        assert target.sessions(1) == []
        assert "logging out 1 session(s)" in d.log


def test_kill_and_hup(target: Tgtd) -> None:
    with RunningDaemon() as d:
        pid = d.pid
        assert pid is not None
        d.signal(signal.SIGHUP)
        time.sleep(0.3)
        assert d.adm("-m", "session").returncode == 21  # still serving
        assert "reloaded" in d.log
        assert d.adm("-k", "0").returncode == 0
        assert d.wait() == 0
        assert not d.socket.exists()
        # No daemon: login fails as iscsiadm without iscsid (20); -k 0 still exits 0.
        discover(d, target)
        assert d.adm("-m", "node", "-T", f"{IQN}1", "-l").returncode == 20
        assert d.adm("-k", "0").returncode == 0


def test_64_concurrent_clients(daemon: RunningDaemon, target: Tgtd) -> None:
    discover(daemon, target)
    ok(daemon.adm("-m", "node", "-T", f"{IQN}1", "-l"))
    expected = ok(daemon.adm("-m", "session", "-P", "1"))

    def ask(_: int) -> str:
        return ok(daemon.adm("-m", "session", "-P", "1"))

    with concurrent.futures.ThreadPoolExecutor(64) as pool:
        answers = list(pool.map(ask, range(64)))
    assert answers == [expected] * 64
    ok(daemon.adm("-m", "node", "-u"))


def test_records_only_modes_work_without_the_daemon(target: Tgtd, tmp_path: Path) -> None:
    d = RunningDaemon(start=False)
    try:
        discover(d, target)
        assert f"{IQN}1" in ok(d.adm("-m", "node"))
        assert d.adm("-m", "session").returncode == 21
    finally:
        d.cleanup()


def test_safe_logout_refuses_a_session_in_use(target: Tgtd) -> None:
    d = RunningDaemon(start=False)
    try:
        conf = d.root / "etc/iscsi/iscsid.conf"
        conf.parent.mkdir(parents=True, exist_ok=True)
        conf.write_text("iscsid.safe_logout = Yes\n")
        d.start()
        discover(d, target)
        ok(d.adm("-m", "node", "-T", f"{IQN}1", "-l"))
        sock = next((d.run_dir / "nbd").iterdir())
        with NbdClient(str(sock)) as nbd:
            nbd.write(0, b"\x01" * 4096)
            time.sleep(0.1)
            busy = d.adm("-m", "node", "-T", f"{IQN}1", "-u")
            assert busy.returncode == 28, busy
            assert "initiator reported error (28 - device or resource in use)" in busy.stderr
            assert len(target.sessions(1)) == 1  # still logged in, still serving
            assert nbd.read(0, 4096) == b"\x01" * 4096
        time.sleep(0.2)
        ok(d.adm("-m", "node", "-T", f"{IQN}1", "-u"))
        assert target.sessions(1) == []
    finally:
        d.cleanup()


def test_recovery_fails_over_to_the_other_portal_and_back(tmp_path: Path) -> None:
    with Tgtd(tmp_path / "tgtd") as t, RunningDaemon() as d:
        t.add_target(f"{IQN}fo", tid=1, lun_size=LUN_SIZE)
        t.set_target_param(1, "DefaultTime2Wait", 0)
        second = t.add_portal("127.0.0.2")
        discover(d, t)
        ok(d.adm("-m", "discovery", "-t", "st", "-p", second))
        assert second in ok(d.adm("-m", "node"))  # both portals of the portal group
        ok(d.adm("-m", "node", "-o", "update", "-n", "node.session.iscsi.DefaultTime2Wait",
                 "-v", "0"))  # fmt: skip
        ok(d.adm("-m", "node", "-T", f"{IQN}fo", "-p", t.portal, "-l"))
        sock = next((d.run_dir / "nbd").iterdir())
        with NbdClient(str(sock)) as nbd:
            nbd.write(0, b"A" * 4096)
            # The first portal goes away: the session comes back through the second.
            t.delete_portal(t.portal)
            t.drop_connections(1)
            nbd.write(4096, b"B" * 4096)  # held, then re-issued on the new connection
            p1 = ok(d.adm("-m", "session", "-P", "1"))
            assert f"Current Portal: {second},1" in p1
            assert f"Persistent Portal: {t.portal},1" in p1
            # It comes back: the next recovery returns to the record's portal.
            t.add_portal(t.host, t.port)
            t.drop_connections(1)
            nbd.write(8192, b"C" * 4096)
            assert f"Current Portal: {t.portal},1" in ok(d.adm("-m", "session", "-P", "1"))
            nbd.flush()
        image = t.backing_path(1).read_bytes()
        assert image[:12288] == b"A" * 4096 + b"B" * 4096 + b"C" * 4096
        ok(d.adm("-m", "node", "-u"))


def test_leading_login_no_wait_and_one_more_session(daemon: RunningDaemon, target: Tgtd) -> None:
    for iface in ("ika", "ikb"):
        ok(daemon.adm("-m", "iface", "-I", iface, "-o", "new"))
    ok(daemon.adm("-m", "discovery", "-t", "st", "-p", target.portal, "-I", "ika", "-I", "ikb"))
    ok(daemon.adm("-m", "node", "-T", f"{IQN}1", "-o", "update", "-n", "node.leading_login",
                  "-v", "Yes"))  # fmt: skip
    # leading_login: the first iface gets in, the second stays out (its target has one).
    out = ok(daemon.adm("-m", "node", "-T", f"{IQN}1", "-l"))
    assert out.count("Logging in to") == 1 and "iface: ika" in out
    assert len(target.sessions(1)) == 1
    # -m session -r SID -o new: one more session of the same record.
    more = ok(daemon.adm("-m", "session", "-r", "1", "-o", "new"))
    assert "(multiple)" in more and "successful" in more
    assert len(target.sessions(1)) == 2
    ok(daemon.adm("-m", "node", "-u"))
    # -W: the request is sent, not waited for; the session appears by itself.
    out = ok(daemon.adm("-m", "node", "-T", f"{IQN}2", "-I", "ika", "-l", "-W"))
    assert "Logging in to" in out and "successful" not in out
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and len(target.sessions(2)) < 1:
        time.sleep(0.05)
    assert len(target.sessions(2)) == 1
    ok(daemon.adm("-m", "node", "-u"))
