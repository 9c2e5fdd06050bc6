"""iscsikitd serves one NBD export over every session that reaches an LU.

tgtd listens on two portals (127.0.0.1 and 127.0.0.2); iscsikitd discovers the target on
both and logs both node records in: two userspace sessions to one LU.  Besides the two
per-session exports, the daemon serves ``<run_dir>/nbd/mpath-<identity hex>`` over an
AsyncMultipathLun of both sessions.  An NBD client writes a verified stream (4 KiB
blocks, random data) to that export while:

1. tgtd drops one session's connection;
2. one node is logged out (the export goes on over the other session), then logged in
   again (its path comes back: two paths again).

No write may fail and every acknowledged block must be in tgtd's backing file.
"""

from __future__ import annotations

import json
import random
import threading
import time
from pathlib import Path

import pytest

from iscsikit.testing.daemon import RunningDaemon
from iscsikit.testing.nbdclient import NbdClient
from iscsikit.testing.tgtd import Tgtd

pytestmark = pytest.mark.integration

IQN = "iqn.2024-01.test.mpnbd:disk"
BLOCK = 4096
LUN_SIZE = 16 << 20
BLOCKS = LUN_SIZE // BLOCK


class Writer(threading.Thread):
    """Random 4 KiB writes through the export; what each block must hold."""

    def __init__(self, sock: Path, seed: int) -> None:
        super().__init__(daemon=True)
        self.sock = sock
        self.rng = random.Random(seed)
        self.blocks: dict[int, bytes] = {}
        self.acked = 0
        self.stop = threading.Event()
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            nbd = NbdClient(str(self.sock), timeout=120)
            while not self.stop.is_set():
                block = self.rng.randrange(BLOCKS)
                data = self.rng.randbytes(BLOCK)
                nbd.write(block * BLOCK, data)  # must not fail: another path is there
                self.blocks[block] = data
                self.acked += 1
            nbd.flush()
            nbd.close()
        except BaseException as exc:  # reported by the test
            self.error = exc

    def more(self, n: int, timeout: float = 60) -> None:
        """Wait for ``n`` more acknowledged writes."""
        target = self.acked + n
        deadline = time.monotonic() + timeout
        while self.acked < target:
            assert self.error is None, f"writer failed: {self.error!r}"
            assert time.monotonic() < deadline, "no progress"
            time.sleep(0.02)


def _wait(what: str, until: object, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not until():  # type: ignore[operator]
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def _paths_shown(d: RunningDaemon, sock: Path) -> int:
    """How many sessions ``-m session -P 3`` shows as active paths of ``sock``."""
    text = d.adm("-m", "session", "-P", "3").stdout
    return text.count(f"\t\t\tMultipath: nbd+unix:///?socket={sock}\tPath State: active\n")


def _assert_paths_shown(d: RunningDaemon, sock: Path, count: int) -> None:
    _wait(f"{count} active paths in -m session -P 3", lambda: _paths_shown(d, sock) == count)
    doc = json.loads(d.adm("-m", "session", "--output", "json").stdout)
    states = [e["path_state"] for s in doc["sessions"] for e in s["exports"]]
    assert states.count("active") == count, doc


def test_multipath_export_survives_a_dropped_path_and_a_session_leaving(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with Tgtd(tmp_path) as tgtd, RunningDaemon() as d:
        tgtd.add_target(IQN, tid=1, lun_size=LUN_SIZE)
        tgtd.set_target_param(1, "DefaultTime2Wait", 0)
        second = tgtd.add_portal("127.0.0.2")
        for portal in (tgtd.portal, second):
            assert d.adm("-m", "discovery", "-t", "st", "-p", portal).returncode == 0
        for key, value in {
            "node.conn[0].timeo.noop_out_interval": "1",
            "node.conn[0].timeo.noop_out_timeout": "2",
            "node.conn[0].timeo.login_timeout": "3",
            "node.session.timeo.replacement_timeout": "0",
            "node.session.iscsi.DefaultTime2Wait": "0",
        }.items():
            assert d.adm("-m", "node", "-o", "update", "-n", key, "-v", value).returncode == 0
        login = d.adm("-m", "node", "-l")
        assert login.returncode == 0, login.stderr + d.log
        nbd_dir = d.run_dir / "nbd"
        _wait("the multipath export", lambda: list(nbd_dir.glob("mpath-*")))
        (sock,) = nbd_dir.glob("mpath-*")
        per_session = sorted(p.name for p in nbd_dir.iterdir() if not p.name.startswith("mpath"))
        assert len(per_session) == 2, per_session  # the per-session exports stay
        _assert_paths_shown(d, sock, 2)
        writer = Writer(sock, random.randrange(1 << 32))
        writer.start()
        try:
            writer.more(200)
            # 1. tgtd drops one session's connection.
            conns = tgtd.sessions(1)
            assert len(conns) == 2, conns
            tgtd.tgtadm(
                "--op", "delete", "--mode", "conn", "--tid", "1",
                "--sid", str(conns[0].sid), "--cid", str(conns[0].cid),
            )  # fmt: skip
            writer.more(300)
            _wait("both sessions again", lambda: len(tgtd.sessions(1)) == 2)
            writer.more(100)
            # 2. One node logged out: the export goes on over the other session.
            out = d.adm("-m", "node", "-T", IQN, "-p", second, "-u")
            assert out.returncode == 0, out.stderr + d.log
            _wait("one session", lambda: len(tgtd.sessions(1)) == 1)
            assert sock.exists()
            writer.more(300)
            # ... and logged in again: two paths again.
            back = d.adm("-m", "node", "-T", IQN, "-p", second, "-l")
            assert back.returncode == 0, back.stderr + d.log
            _wait("two sessions", lambda: len(tgtd.sessions(1)) == 2)
            writer.more(300)
            _wait("both paths shown active", lambda: _paths_shown(d, sock) == 2)
        finally:
            writer.stop.set()
            writer.join(120)
        assert writer.error is None, f"writer failed: {writer.error!r}\n{d.log[-3000:]}"
        # The export followed the session: its path left and came back.
        assert "over 2 paths" in d.log, d.log[-3000:]
        assert f"{sock.name}: path" in d.log and "removed" in d.log and "added" in d.log
        assert d.adm("-m", "node", "-u").returncode == 0
        _wait("the multipath export gone", lambda: not list(nbd_dir.glob("mpath-*")))
        image = tgtd.backing_path(1).read_bytes()
        bad = sum(image[b * BLOCK : (b + 1) * BLOCK] != data for b, data in writer.blocks.items())
        with capsys.disabled():
            print(
                f"\nmultipath NBD export {sock.name}: {writer.acked} writes acknowledged, "
                f"0 failed, {len(writer.blocks)} blocks verified in the backing file, "
                f"{bad} bad; a connection dropped, a session logged out and in again"
            )
        assert bad == 0
