"""Every file and socket iscsikitd creates has the narrowest mode that works, and a
symbolic link or directory another user planted in its place is refused, never followed.

The daemon runs as root here (as in production); "another user" is uid 65534.
"""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from iscsikit.testing.daemon import RunningDaemon, short_root
from iscsikit.testing.tgtd import Tgtd

pytestmark = pytest.mark.integration

NOBODY = 65534
IQN = "iqn.2024-01.test.files:disk"
EXPORT = re.compile(r"nbd\+unix:///\?socket=(\S+)")


def mode(path: Path) -> int:
    return stat.S_IMODE(path.lstat().st_mode)


@pytest.fixture
def root() -> Iterator[Path]:
    path = short_root()
    yield path
    import shutil

    shutil.rmtree(path, ignore_errors=True)


def refused(root: Path, *extra: str) -> str:
    """Start the daemon, expect it to exit with an error; its log."""
    daemon = RunningDaemon(root, extra=extra, start=False)
    with pytest.raises(RuntimeError, match="iscsikitd exited") as info:
        daemon.start(timeout=20)
    daemon.stop()
    return str(info.value)


def test_modes_of_everything_the_daemon_creates(root: Path, tmp_path: Path) -> None:
    run = root / "run" / "iscsikit"
    run.mkdir(parents=True, mode=0o777)
    run.chmod(0o777)  # an existing directory of ours that is too wide gets narrowed
    with Tgtd(tmp_path / "tgtd") as tgtd, RunningDaemon(root) as daemon:
        tgtd.add_target(IQN, lun_size=4 << 20)
        assert daemon.adm("-m", "discovery", "-t", "st", "-p", tgtd.portal).returncode == 0
        assert daemon.adm("-m", "node", "-T", IQN, "-p", tgtd.portal, "-l").returncode == 0
        p3 = daemon.adm("-m", "session", "-P", "3").stdout
        [export] = EXPORT.findall(p3)
        assert mode(run) == 0o700
        assert mode(daemon.socket) == 0o600 and stat.S_ISSOCK(daemon.socket.lstat().st_mode)
        assert mode(run / "iscsikitd.sock.lock") == 0o600
        assert mode(run / "iscsikitd.pid") == 0o644
        assert (run / "iscsikitd.pid").read_text() == f"{daemon.pid}\n"
        assert mode(run / "nbd") == 0o700
        assert mode(Path(export)) == 0o600
        records = [p for p in (root / "etc/iscsi").rglob("*") if "nodes" in p.parts]
        assert records and all(mode(p) == (0o700 if p.is_dir() else 0o600) for p in records), {
            str(p): oct(mode(p)) for p in records
        }
        assert daemon.adm("-m", "node", "-T", IQN, "-p", tgtd.portal, "-u").returncode == 0


def test_planted_run_directory_link_is_refused(root: Path, tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    elsewhere.chmod(0o777)
    (root / "run").mkdir()
    (root / "run" / "iscsikit").symlink_to(elsewhere)
    log = refused(root)
    assert "symbolic link" in log, log
    assert list(elsewhere.iterdir()) == []  # nothing was created through the link
    assert mode(elsewhere) == 0o777  # nor its mode changed


def test_run_directory_of_another_user_is_refused(root: Path) -> None:
    run = root / "run" / "iscsikit"
    run.mkdir(parents=True)
    os.chown(run, NOBODY, NOBODY)
    run.chmod(0o777)
    log = refused(root)
    assert f"owned by uid {NOBODY}" in log, log
    assert list(run.iterdir()) == []
    assert mode(run) == 0o777


def test_planted_export_directory_link_is_refused(root: Path, tmp_path: Path) -> None:
    elsewhere = tmp_path / "exports"
    elsewhere.mkdir()
    run = root / "run" / "iscsikit"
    run.mkdir(parents=True)
    (run / "nbd").symlink_to(elsewhere)
    log = refused(root)
    assert "symbolic link" in log, log
    assert list(elsewhere.iterdir()) == []


def test_planted_pid_file_link_is_refused(root: Path, tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    victim.write_text("precious\n")
    pidfile = tmp_path / "iscsikitd.pid"
    pidfile.symlink_to(victim)
    log = refused(root, "-p", str(pidfile))
    assert "symbolic link" in log, log
    assert victim.read_text() == "precious\n"
