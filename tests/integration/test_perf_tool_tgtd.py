"""iscsikit-perf against a real tgtd LUN: a short read run and a short write run."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys

import pytest

from iscsikit.testing.plugin import TgtdFactory

pytestmark = pytest.mark.integration

IQN = "iqn.2024-01.test.iscsikit:perftool"
LUN_SIZE = 16 << 20


def run_perf(*args: str) -> dict[str, object]:
    proc = subprocess.run(
        [sys.executable, "-m", "iscsikit.tools.perf", "-t", "1", "--json", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert isinstance(data, dict)
    return data


def sane(data: dict[str, object], *, write: bool, random: bool, qd: int, size: int) -> None:
    assert data["write"] is write and data["random"] is random
    assert data["queue_depth"] == qd and data["block_size_bytes"] == size
    ios = data["ios"]
    seconds = data["seconds"]
    assert isinstance(ios, int) and ios > 0
    assert isinstance(seconds, float) and 0.9 < seconds < 30
    if random:  # a command that would run past the end is shortened, as in iscsi-perf
        assert 0 < data["bytes"] <= ios * size  # type: ignore[operator]
    else:  # the 16 MiB LUN is a multiple of every size here
        assert data["bytes"] == ios * size
    iops = data["iops"]
    assert isinstance(iops, float) and iops == pytest.approx(ios / seconds, rel=0.01)
    cpu = data["cpu_seconds"]
    assert isinstance(cpu, float) and 0 < cpu < 60
    latency = data["latency_us_avg"]
    assert isinstance(latency, float) and latency > 0
    assert isinstance(data["version"], str)


def test_read_and_write_runs(tgtd_factory: TgtdFactory) -> None:
    tgtd = tgtd_factory()
    tid = tgtd.add_target(IQN, luns=1, lun_size=LUN_SIZE)
    url = f"iscsi://{tgtd.portal}/{IQN}/1"
    backing = tgtd.backing_path(tid, 1)
    before = hashlib.sha256(backing.read_bytes()).digest()

    sane(run_perf("-r", url), write=False, random=True, qd=32, size=4096)
    sane(run_perf("-m", "4", "-b", "128", url), write=False, random=False, qd=4, size=65536)
    assert hashlib.sha256(backing.read_bytes()).digest() == before  # reads change nothing

    sane(run_perf("-w", "-m", "8", "-b", "16", url), write=True, random=False, qd=8, size=8192)
    after = backing.read_bytes()
    assert hashlib.sha256(after).digest() != before
    assert after[:8192] != bytes(8192)  # random data landed at LBA 0 (sequential start)


def test_digests_and_a_missing_target(tgtd_factory: TgtdFactory) -> None:
    tgtd = tgtd_factory()
    tid = tgtd.add_target(IQN, luns=1, lun_size=LUN_SIZE)
    tgtd.set_target_param(tid, "HeaderDigest", "CRC32C")
    tgtd.set_target_param(tid, "DataDigest", "CRC32C")
    data = run_perf(
        "-b", "64", f"iscsi://{tgtd.portal}/{IQN}/1?header_digest=crc32c&data_digest=crc32c"
    )
    assert data["header_digest"] is True and data["data_digest"] is True
    sane(data, write=False, random=False, qd=32, size=32768)

    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "iscsikit.tools.perf",
            "-t",
            "1",
            f"iscsi://{tgtd.portal}/iqn.2024-01.none:x/1",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode not in (0, 7)
    assert proc.stderr.startswith("iscsikit-perf: ") and proc.stderr.count("\n") == 1


def test_busy_poll_runs_and_bad_values(tgtd_factory: TgtdFactory) -> None:
    """``--busy-poll`` at queue depth 1 (the spinning receive path) and with writes;
    a value out of range is a usage error (7)."""
    tgtd = tgtd_factory()
    tgtd.add_target(IQN, luns=1, lun_size=LUN_SIZE)
    url = f"iscsi://{tgtd.portal}/{IQN}/1"
    data = run_perf("--busy-poll", "200", "-m", "1", "-r", url)
    sane(data, write=False, random=True, qd=1, size=4096)
    assert data["busy_poll_us"] == 200
    sane(run_perf("--busy-poll", "50", "-w", "-m", "2", url), write=True, random=False, qd=2,
         size=4096)  # fmt: skip
    assert run_perf("-m", "1", url)["busy_poll_us"] == 0
    for bad in ("-1", "x", "2000000"):
        proc = subprocess.run(
            [sys.executable, "-m", "iscsikit.tools.perf", "--busy-poll", bad, url],
            capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        assert proc.returncode == 7, (bad, proc.stderr)
        assert "--busy-poll" in proc.stderr
