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


# A client that writes one request per daemon operation in a single burst (shutdown
# last) and prints every reply it gets before the end of the stream.
BURST_CLIENT = """
import json, os, socket, struct, sys
from iscsikit.daemon.service import OPERATIONS
from iscsikit.ipc.protocol import encode_request
uid = int(sys.argv[2])
if uid:
    os.setgroups([]); os.setgid(uid); os.setuid(uid)
sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
sock.settimeout(20)
sock.connect(sys.argv[1])
ops = sorted(OPERATIONS, key=lambda op: op == "shutdown")
try:
    sock.sendall(b"".join(encode_request(i + 1, op, {}) for i, op in enumerate(ops)))
except (BrokenPipeError, ConnectionResetError):
    pass  # the daemon hung up before taking it all: fine, read what it said
data = b""
while True:
    try:
        chunk = sock.recv(65536)
    except ConnectionResetError:
        break
    if not chunk:
        break
    data += chunk
    if len(data) >= 4 and uid == 0 and data.count(b'"id":') >= len(ops):
        break
replies = []
while len(data) >= 4:
    (n,) = struct.unpack(">I", data[:4])
    replies.append(json.loads(data[4 : 4 + n]))
    data = data[4 + n :]
print(json.dumps(replies))
"""


def burst(socket_path: Path, uid: int) -> list[dict[str, object]]:
    import json
    import subprocess
    import sys

    done = subprocess.run(
        [sys.executable, "-c", BURST_CLIENT, str(socket_path), str(uid)],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    replies: list[dict[str, object]] = json.loads(done.stdout)
    return replies


def test_the_credential_check_covers_every_request(root: Path) -> None:
    """Even with the socket and directory opened up (a misconfiguration), another user's
    requests are never run: one ACCESS reply, end of stream, the daemon still serving."""
    with RunningDaemon(root) as daemon:
        for path in (root, root / "run", daemon.run_dir):
            path.chmod(0o711)
        daemon.socket.chmod(0o666)
        replies = burst(daemon.socket, NOBODY)
        assert len(replies) == 1, replies
        [reply] = replies
        assert reply["id"] is None and reply["error"]["code"] == 13, reply  # type: ignore[index]
        assert "refused IPC client" in daemon.log
        assert daemon.pid is not None  # "shutdown" was not run
        assert daemon.adm("-m", "session").returncode == 21
        # Control: the same burst from root is answered request by request.
        answered = burst(daemon.socket, 0)
        assert [r["id"] for r in answered] == list(range(1, len(answered) + 1))
        assert len(answered) >= 8
