"""Faults under a stream of verified writes through iscsikitd's NBD export.

Writers (one NBD connection each, disjoint regions) write random data continuously
while the target misbehaves: ≥100 connection drops (``tgtadm --op delete --mode conn``),
tgtd frozen (SIGSTOP) for longer than the NOP-Out timeout, tgtd killed (SIGKILL) and
restarted on the same backing file, and one outage longer than replacement_timeout.
Afterwards every acknowledged write must be in the backing file: a write the export
acknowledged is never lost, a write that failed is reported (EIO) and only that range
is uncertain.  The test prints its counts.
"""

from __future__ import annotations

import os
import random
import signal
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from iscsikit.testing.daemon import RunningDaemon
from iscsikit.testing.nbdclient import NbdClient, NbdError
from iscsikit.testing.tgtd import Tgtd

pytestmark = pytest.mark.integration

IQN = "iqn.2024-01.test.faults:disk"
BLOCK = 4096
LUN_SIZE = 16 << 20
WRITERS = 4
DROPS = int(os.environ.get("ISCSIKIT_FAULT_DROPS", "100"))
REPLACEMENT_TIMEOUT = 6
SEED = int(os.environ.get("ISCSIKIT_SEED", random.randrange(1 << 32)))


@dataclass
class Model:
    """What each 4 KiB block must hold: known bytes, or None once a failed write made it
    uncertain (a failed write may or may not have reached the disk)."""

    blocks: dict[int, bytes | None] = field(default_factory=dict)
    acked: int = 0
    failed: int = 0
    failed_reads: int = 0
    verified_reads: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)


class Writer(threading.Thread):
    def __init__(self, sock: Path, region: range, model: Model, seed: int) -> None:
        super().__init__(daemon=True)
        self.sock, self.region, self.model = sock, region, model
        self.rng = random.Random(seed)
        self.stop = threading.Event()
        self.progress = threading.Event()
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            nbd = NbdClient(str(self.sock), timeout=120)
            while not self.stop.is_set():
                first = self.rng.randrange(self.region.start, self.region.stop - 16)
                count = self.rng.randint(1, 16)
                data = self.rng.randbytes(count * BLOCK)
                try:
                    nbd.write(first * BLOCK, data)
                except NbdError:
                    with self.model.lock:
                        self.model.failed += 1
                        for i in range(count):
                            self.model.blocks[first + i] = None
                    time.sleep(0.05)
                    continue
                with self.model.lock:
                    self.model.acked += 1
                    for i in range(count):
                        self.model.blocks[first + i] = data[i * BLOCK : (i + 1) * BLOCK]
                self.progress.set()
                if self.rng.random() < 0.1:  # and reads return what was written
                    try:
                        got = nbd.read(first * BLOCK, len(data))
                    except NbdError:  # an outage: failed, not wrong
                        with self.model.lock:
                            self.model.failed_reads += 1
                        continue
                    with self.model.lock:
                        expect = [self.model.blocks.get(first + i) for i in range(count)]
                    for i, want in enumerate(expect):
                        if want is not None:
                            assert got[i * BLOCK : (i + 1) * BLOCK] == want, "read mismatch"
                    with self.model.lock:
                        self.model.verified_reads += 1
            nbd.flush()
            nbd.close()
        except BaseException as exc:  # reported by the test
            self.error = exc


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    return tmp_path


def start_tgtd(workdir: Path, port: int | None, backing: Path | None) -> Tgtd:
    t = Tgtd(workdir, port=port, keep=True)
    t.add_target(IQN, tid=1, lun_size=LUN_SIZE, backing=[backing] if backing else None)
    t.set_target_param(1, "DefaultTime2Wait", 0)
    return t


def wait_for(predicate: object, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


def progress_after(writers: list[Writer], timeout: float = 60) -> None:
    for w in writers:
        w.progress.clear()
    for w in writers:
        ok = w.progress.wait(timeout)
        assert w.error is None, f"writer failed: {w.error!r}"
        assert ok, "no write completed after the fault"


def test_faults_lose_no_acknowledged_write(
    workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rng = random.Random(SEED)
    tgtd = start_tgtd(workdir, None, None)
    backing = tgtd.backing_path(1)
    port = tgtd.port
    counts = {"drops": 0, "freezes": 0, "kills": 0, "long outages": 0}
    with RunningDaemon() as d:
        assert d.adm("-m", "discovery", "-t", "st", "-p", tgtd.portal).returncode == 0
        for key, value in {
            "node.conn[0].timeo.noop_out_interval": "1",
            "node.conn[0].timeo.noop_out_timeout": "2",
            "node.conn[0].timeo.login_timeout": "3",
            "node.session.timeo.replacement_timeout": str(REPLACEMENT_TIMEOUT),
            "node.session.iscsi.DefaultTime2Wait": "0",
        }.items():
            assert d.adm("-m", "node", "-o", "update", "-n", key, "-v", value).returncode == 0
        login = d.adm("-m", "node", "-l")
        assert login.returncode == 0, login.stderr + d.log
        sock = d.run_dir / "nbd" / f"ip-127.0.0.1:{port}-iscsi-{IQN}-lun-1"
        model = Model()
        per = LUN_SIZE // BLOCK // WRITERS
        writers = [
            Writer(sock, range(i * per, (i + 1) * per), model, rng.randrange(1 << 32))
            for i in range(WRITERS)
        ]
        for w in writers:
            w.start()
        try:
            progress_after(writers)
            # 1. Connection drops, each while writes are in flight.
            while counts["drops"] < DROPS:
                wait_for(lambda: tgtd.sessions(1), 30, "the session to come back")
                counts["drops"] += tgtd.drop_connections(1)
                time.sleep(rng.uniform(0, 0.05))
                progress_after(writers)
            # 2. tgtd frozen longer than the NOP-Out interval + timeout.
            for _ in range(2):
                os.kill(tgtd.pid or 0, signal.SIGSTOP)
                time.sleep(4)
                os.kill(tgtd.pid or 0, signal.SIGCONT)
                counts["freezes"] += 1
                progress_after(writers)
            # 3. tgtd killed and restarted on the same backing file, within replacement_timeout.
            for _ in range(2):
                os.kill(tgtd.pid or 0, signal.SIGKILL)
                tgtd.stop()
                time.sleep(0.5)
                tgtd = start_tgtd(workdir, port, backing)
                counts["kills"] += 1
                progress_after(writers)
            # 4. An outage longer than replacement_timeout: I/O fails (EIO), then works again.
            failed_before = model.failed
            os.kill(tgtd.pid or 0, signal.SIGKILL)
            tgtd.stop()
            time.sleep(REPLACEMENT_TIMEOUT + 3)
            assert model.failed > failed_before, "I/O during a long outage must fail"
            tgtd = start_tgtd(workdir, port, backing)
            counts["long outages"] += 1
            progress_after(writers, timeout=90)
        finally:
            for w in writers:
                w.stop.set()
            for w in writers:
                w.join(120)
        for w in writers:
            assert w.error is None, f"writer failed: {w.error!r}\n{d.log[-3000:]}"
        assert d.adm("-m", "node", "-u").returncode == 0
    image = backing.read_bytes()
    verified = uncertain = 0
    for block, want in sorted(model.blocks.items()):
        if want is None:
            uncertain += 1
            continue
        assert image[block * BLOCK : (block + 1) * BLOCK] == want, (
            f"acknowledged write lost at block {block} (seed {SEED})"
        )
        verified += 1
    tgtd.stop()
    with capsys.disabled():
        print(
            f"\nfault injection (seed {SEED}): {counts['drops']} connection drops, "
            f"{counts['freezes']} tgtd freezes, {counts['kills']} tgtd kills + restarts, "
            f"{counts['long outages']} outage > replacement_timeout; "
            f"{model.acked} writes acknowledged, {verified} blocks verified in the backing "
            f"file, {model.verified_reads} reads verified; {model.failed} writes and "
            f"{model.failed_reads} reads failed as expected ({uncertain} blocks uncertain)"
        )
    assert counts["drops"] >= DROPS and verified > 0
