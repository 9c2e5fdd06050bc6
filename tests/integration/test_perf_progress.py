"""iscsikit-perf's output against a real tgtd: live progress on a terminal (a pty), iscsi-perf's
lines on a pipe, the latency line and the ``--json`` percentiles."""

from __future__ import annotations

import json
import os
import re
import select
import subprocess
import sys
import time

import pytest

from iscsikit.testing.plugin import TgtdFactory

pytestmark = pytest.mark.integration

IQN = "iqn.2024-01.test.iscsikit:perfprogress"
LATENCY = re.compile(
    r"latency \(usec\): p50 ([\d.]+), p99 ([\d.]+), p99\.9 ([\d.]+), max ([\d.]+), mean ([\d.]+)"
)
LIVE = re.compile(
    r"\d\d:\d\d:\d\d - lba \d+, iops current \d+ \(\d+ MB/s\), "
    r"iops average (\d+) \(\d+ MB/s\), p99 ([\d.]+) usec"
)


def perf_command(url: str, *args: str) -> list[str]:
    return [sys.executable, "-m", "iscsikit.tools.perf", "-m", "4", "-r", *args, url]


def run_on_pty(command: list[str], timeout: float = 60) -> tuple[int, str]:
    """Run ``command`` with stdout on a pseudo-terminal; its exit code and all it wrote."""
    master, slave = os.openpty()
    try:
        proc = subprocess.Popen(command, stdout=slave, stderr=subprocess.PIPE)
    finally:
        os.close(slave)
    chunks: list[bytes] = []
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.5)
            if not ready:
                if proc.poll() is not None:
                    break
                continue
            try:
                data = os.read(master, 65536)
            except OSError:  # EIO: the child closed its end
                break
            if not data:
                break
            chunks.append(data)
        code = proc.wait(timeout=max(1.0, deadline - time.monotonic()))
    finally:
        os.close(master)
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.stderr is not None
    err = proc.stderr.read().decode()
    proc.stderr.close()
    assert code == 0, err
    # The pty's line discipline turns "\n" into "\r\n": undo that, keep the lone "\r"s.
    return code, b"".join(chunks).decode().replace("\r\n", "\n")


def latencies(text: str) -> tuple[float, ...]:
    found = LATENCY.findall(text)
    assert len(found) == 1, text
    p50, p99, p999, top, mean = (float(v) for v in found[0])
    assert 0 < p50 <= p99 <= p999 <= top
    assert 0 < mean <= top
    return p50, p99, p999, top, mean


def test_live_progress_on_a_terminal(tgtd_factory: TgtdFactory) -> None:
    tgtd = tgtd_factory()
    tgtd.add_target(IQN, luns=1, lun_size=16 << 20)
    url = f"iscsi://{tgtd.portal}/{IQN}/1"

    _, text = run_on_pty(perf_command(url, "-t", "3.5"))
    head, _, tail = text.partition("will run for 3.5 seconds.\n\n")
    assert tail, text
    first, *updates, cleared, report = tail.split("\r")
    assert first == ""
    # once a second for 3.5 s: 3 updates (fewer when a loaded machine stalls the run
    # past a second), each rewritten in place with the p99 so far
    assert 1 <= len(updates) <= 3, updates
    for update in updates:
        match = LIVE.fullmatch(update.rstrip(" "))
        assert match is not None, update
        assert int(match[1]) > 0 and float(match[2]) > 0
    # cleared at the end: blanks over the whole of the last update, then \r
    assert cleared == " " * len(cleared) and len(cleared) >= len(updates[-1].rstrip(" "))
    # then iscsi-perf's own lines, unchanged, and the latency line after them
    assert re.match(r"iops average \d+ \(\d+ MB/s\) {56}\n\nfinished\.\n", report), report
    latencies(report.split("finished.\n", 1)[1])
    assert report.endswith("\n") and report.count("\n") == 4
    assert head.startswith("iscsikit-perf version ")

    # -n: no progress on a terminal either
    _, quiet = run_on_pty(perf_command(url, "-t", "1.5", "-n"))
    assert "\r" not in quiet and "p99 " not in quiet.split("finished.")[0]
    latencies(quiet)


def test_a_pipe_gets_iscsi_perfs_lines_and_json_gets_percentiles(
    tgtd_factory: TgtdFactory,
) -> None:
    tgtd = tgtd_factory()
    tgtd.add_target(IQN, luns=1, lun_size=16 << 20)
    url = f"iscsi://{tgtd.portal}/{IQN}/1"

    # bytes: text mode's universal newlines would turn the \r into \n
    piped = subprocess.run(perf_command(url, "-t", "2.5"), capture_output=True, check=False)
    assert piped.returncode == 0, piped.stderr
    before, _, report = piped.stdout.decode().rpartition("\r")
    updates = before.split("will run for 2.5 seconds.\n\n", 1)[1].split("\r")[1:]
    assert len(updates) in (1, 2), updates
    for update in updates:  # iscsi-perf's line: no p99, nine blanks after it
        assert update.endswith("         ") and "p99" not in update
        assert re.fullmatch(
            r"\d\d:\d\d:\d\d - lba \d+, iops current \d+ \(\d+ MB/s\), "
            r"iops average \d+ \(\d+ MB/s\)",
            update.rstrip(" "),
        ), update
    assert report.startswith("iops average ") and "\n\nfinished.\nlatency (usec): " in report
    latencies(report)

    proc = subprocess.run(
        perf_command(url, "-t", "1", "--json"), capture_output=True, text=True, timeout=60,
        check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    p50, p99, p999, top, mean = (
        data[f"latency_us_{key}"] for key in ("p50", "p99", "p999", "max", "avg")
    )
    assert 0 < p50 <= p99 <= p999 <= top and 0 < mean <= top
    # at QD4 Little's law ties the mean latency to the rate: 4 in flight / IOPS
    assert mean == pytest.approx(4 / data["iops"] * 1e6, rel=0.2)
