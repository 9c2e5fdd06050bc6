"""Data path: ``iscsikit-perf`` against libiscsi's ``iscsi-perf``, same tgtd, same run.

Sets up peers.md §6's environment - a private tgtd on a free loopback port, target
``iqn.2024-01.test.iscsikit:perf`` with LUN 1 = a 1 GiB file filled from /dev/urandom
(page cache warmed), ``…:perfnull`` (``--bstype null``) and ``…:perfdigest`` (the same
file, HeaderDigest/DataDigest CRC32C required) - then runs both initiators side by side,
interleaved (the order alternates per run so neither always goes first), and reports
the median of the runs of each cell::

    python bench/datapath_bench.py                 # 3 runs x 10 s per cell (~8 min)
    python bench/datapath_bench.py --quick         # 1 run x 3 s (smoke test)
    python bench/datapath_bench.py --json out.json

Cells (iscsi-perf's exact command lines from peers.md §6.1; iscsikit-perf takes the
same options):

* seq read 64 KiB QD32 (``-m 32 -b 128``), rand read 4 KiB QD32 (``-m 32 -b 8 -r``);
* rand read 4 KiB QD1 (``-m 1 -b 8 -r``) with CPUs pinned as peers.md §6.5 requires:
  every tgtd thread on CPU 0 (``taskset -a -p -c 0``), the initiator on CPU 1;
* seq write 64 KiB QD32: iscsi-perf 1.19 has no write mode, so iscsikit-perf ``-w`` is
  set against iscsi-perf's *read* of the same shape (a harder bar: tgt's write path is
  slower than its read path);
* null LUN rand read 4 KiB QD32: initiator CPU per I/O, user + sys of the whole
  initiator process (``getrusage(RUSAGE_CHILDREN)`` around each run, start-up and login
  included for both tools);
* digests: iscsikit seq read 64 KiB QD32 with header + data CRC32C over the same file
  vs the same without digests (from the first cell).

Nothing here is asserted by a test; the table it prints is what bench/README.md records.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import re
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from iscsikit.testing.tgtd import Tgtd

IQN = "iqn.2024-01.test.iscsikit:perf"
LUN_SIZE = 1 << 30
_IOPS = re.compile(r"iops average (\d+) \((\d+) MB/s\)")


@dataclass
class Result:
    iops: float
    cpu_seconds: float
    ios: float
    seconds: float
    extra: dict[str, Any] = field(default_factory=dict)
    #: tgtd's CPU time (all threads) during the run.
    target_cpu_seconds: float = 0.0

    @property
    def cpu_us_per_io(self) -> float:
        return self.cpu_seconds / self.ios * 1e6 if self.ios else float("nan")

    @property
    def target_cpu_share(self) -> float:
        """tgtd's CPU time per second of the run: 1.0 = one whole CPU."""
        return self.target_cpu_seconds / self.seconds if self.seconds else float("nan")


@dataclass
class Cell:
    name: str
    target: str
    args: list[str]
    goal: float
    #: "iops": ratio iscsikit / reference IOPS, ≥ goal; "cpu": CPU µs per I/O, ≤ goal.
    metric: str = "iops"
    pinned: bool = False
    #: Extra arguments for iscsikit-perf only (``-w``).
    kit_args: list[str] = field(default_factory=list)
    reference: str = "iscsi-perf"
    note: str = ""
    peer: list[Result] = field(default_factory=list)
    kit: list[Result] = field(default_factory=list)


def _cells() -> list[Cell]:
    """Issue 15's goals: IOPS at least 1.00x, CPU µs/IO at most 1.00x of iscsi-perf's."""
    return [
        Cell("seq read 64 KiB QD32", "perf", ["-m", "32", "-b", "128"], 1.00),
        Cell("rand read 4 KiB QD32", "perf", ["-m", "32", "-b", "8", "-r"], 1.00),
        Cell(
            "rand read 4 KiB QD1 (pinned)", "perf", ["-m", "1", "-b", "8", "-r"], 1.00, pinned=True
        ),
        Cell(
            "rand read 4 KiB QD1 (pinned), --busy-poll 200",
            "perf",
            ["-m", "1", "-b", "8", "-r"],
            1.00,
            pinned=True,
            kit_args=["--busy-poll", "200"],
            note="iscsikit spins up to 200 µs before sleeping; iscsi-perf sleeps in poll",
        ),
        Cell(
            "seq write 64 KiB QD32",
            "perf",
            ["-m", "32", "-b", "128"],
            1.00,
            kit_args=["-w"],
            note="iscsi-perf 1.19 cannot write: its seq *read* 64 KiB QD32 "
            "(bench/write_bench.py has a writing libiscsi peer)",
        ),
        Cell(
            "file LUN seq read 64 KiB QD32: CPU µs/IO",
            "perf",
            ["-m", "32", "-b", "128"],
            1.00,
            metric="cpu",
        ),
        Cell(
            "null LUN rand read 4 KiB QD32: CPU µs/IO",
            "perfnull",
            ["-m", "32", "-b", "8", "-r"],
            1.00,
            metric="cpu",
        ),
    ]


# -- environment -----------------------------------------------------------------------------


@contextlib.contextmanager
def environment(workdir: Path) -> Iterator[Tgtd]:
    """peers.md §6: private tgtd, 1 GiB urandom file LUN (cache warm), null LUN, digest target."""
    with Tgtd(workdir) as tgtd:
        tid = tgtd.add_target(IQN, luns=1, lun_size=LUN_SIZE)
        image = tgtd.backing_path(tid, 1)
        with open("/dev/urandom", "rb") as src, image.open("r+b") as dst:
            for _ in range(LUN_SIZE >> 20):
                dst.write(src.read(1 << 20))
        tgtd.add_target(IQN + "null", luns=1, null=True)
        digest = tgtd.add_target(IQN + "digest", luns=0)
        tgtd.tgtadm(
            "--op", "new", "--mode", "logicalunit", "--tid", str(digest), "--lun", "1",
            "--backing-store", str(image),
        )  # fmt: skip
        tgtd.set_target_param(digest, "HeaderDigest", "CRC32C")
        tgtd.set_target_param(digest, "DataDigest", "CRC32C")
        warm(image)
        yield tgtd


def warm(image: Path) -> None:
    with image.open("rb") as f:
        while f.read(1 << 24):
            pass


def process_cpu(pid: int | None) -> float:
    """User + system CPU seconds of a whole process (every thread), from /proc."""
    if pid is None:
        return 0.0
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def pin_tgtd(tgtd: Tgtd, cpus: str) -> None:
    subprocess.run(
        ["taskset", "-a", "-p", "-c", cpus, str(tgtd.pid)], check=True, stdout=subprocess.DEVNULL
    )


# -- running one initiator -----------------------------------------------------------------


def run_child(cmd: list[str], limit: float) -> tuple[str, float]:
    """Run ``cmd``; its stdout and its CPU time (user + sys) from RUSAGE_CHILDREN."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=limit, check=False)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} exited {proc.returncode}: {proc.stderr.strip()}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return proc.stdout, cpu


def run_iscsi_perf(url: str, args: list[str], seconds: int, prefix: list[str]) -> Result:
    out, cpu = run_child([*prefix, "iscsi-perf", *args, "-t", str(seconds), url], seconds + 30)
    found = _IOPS.findall(out.replace("\r", "\n"))
    if not found:
        raise RuntimeError(f"iscsi-perf printed no average: {out[-300:]!r}")
    iops = float(found[-1][0])
    return Result(iops=iops, cpu_seconds=cpu, ios=iops * seconds, seconds=seconds)


def run_iscsikit_perf(url: str, args: list[str], seconds: int, prefix: list[str]) -> Result:
    cmd = [*prefix, sys.executable, "-m", "iscsikit.tools.perf", *args]
    out, cpu = run_child([*cmd, "-t", str(seconds), "--json", url], seconds + 60)
    data = json.loads(out)
    return Result(
        iops=data["iops"], cpu_seconds=cpu, ios=data["ios"], seconds=data["seconds"], extra=data
    )


# -- the suite -------------------------------------------------------------------------------


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def run_suite(tgtd: Tgtd, runs: int, seconds: int, log: Any) -> tuple[list[Cell], Cell]:
    base = f"iscsi://{tgtd.portal}/"
    cells = _cells()
    digest = Cell(
        "iscsikit seq read 64 KiB QD32: digests on / off",
        "perfdigest",
        ["-m", "32", "-b", "128"],
        0.95,
        reference="iscsikit, no digests",
    )
    for run in range(runs):
        for cell in cells:
            url = f"{base}{IQN}{cell.target.removeprefix('perf')}/1"
            prefix: list[str] = []
            if cell.pinned:
                pin_tgtd(tgtd, "0")
                prefix = ["taskset", "-c", "1"]
            try:
                order = ("peer", "kit") if run % 2 == 0 else ("kit", "peer")
                for who in order:
                    target0 = process_cpu(tgtd.pid)
                    if who == "peer":
                        result = run_iscsi_perf(url, cell.args, seconds, prefix)
                        cell.peer.append(result)
                    else:
                        result = run_iscsikit_perf(url, cell.args + cell.kit_args, seconds, prefix)
                        cell.kit.append(result)
                    result.target_cpu_seconds = process_cpu(tgtd.pid) - target0
                    print(
                        f"run {run + 1}/{runs} {cell.name:45s} {who:4s} "
                        f"{result.iops:9.0f} IOPS  {result.cpu_us_per_io:6.2f} CPU µs/IO  "
                        f"tgtd {result.target_cpu_share:4.2f} CPU",
                        file=log,
                        flush=True,
                    )
            finally:
                if cell.pinned:
                    pin_tgtd(tgtd, f"0-{(os.cpu_count() or 1) - 1}")
        url = f"{base}{IQN}digest/1?header_digest=crc32c&data_digest=crc32c"
        target0 = process_cpu(tgtd.pid)
        result = run_iscsikit_perf(url, digest.args, seconds, [])
        result.target_cpu_seconds = process_cpu(tgtd.pid) - target0
        digest.kit.append(result)
        print(
            f"run {run + 1}/{runs} {digest.name:45s} kit  {result.iops:9.0f} IOPS  "
            f"{result.cpu_us_per_io:6.2f} CPU µs/IO  tgtd {result.target_cpu_share:4.2f} CPU "
            f"(digests: {result.extra.get('header_digest')}/{result.extra.get('data_digest')})",
            file=log,
            flush=True,
        )
    digest.peer = cells[0].kit  # the same runs, digests off
    return cells, digest


def row(cell: Cell) -> dict[str, Any]:
    if cell.metric == "cpu":
        peer = median([r.cpu_us_per_io for r in cell.peer])
        kit = median([r.cpu_us_per_io for r in cell.kit])
        ratio = kit / peer
        met = ratio <= cell.goal
        goal = f"≤ {cell.goal:.2f}x"
    else:
        peer = median([r.iops for r in cell.peer])
        kit = median([r.iops for r in cell.kit])
        ratio = kit / peer
        met = ratio >= cell.goal
        goal = f"≥ {cell.goal:.2f}x"
    return {
        "workload": cell.name,
        "metric": "CPU µs per I/O" if cell.metric == "cpu" else "IOPS",
        "reference": cell.reference,
        "reference_value": peer,
        "iscsikit_value": kit,
        "ratio": ratio,
        "goal": goal,
        "met": met,
        "note": cell.note,
        "reference_runs": [r.iops if cell.metric == "iops" else r.cpu_us_per_io for r in cell.peer],
        "iscsikit_runs": [r.iops if cell.metric == "iops" else r.cpu_us_per_io for r in cell.kit],
        "reference_cpu_us_per_io": median([r.cpu_us_per_io for r in cell.peer]),
        "iscsikit_cpu_us_per_io": median([r.cpu_us_per_io for r in cell.kit]),
        "reference_tgtd_cpu": median([r.target_cpu_share for r in cell.peer]),
        "iscsikit_tgtd_cpu": median([r.target_cpu_share for r in cell.kit]),
    }


def table(rows: list[dict[str, Any]]) -> str:
    lines = [
        "| workload | iscsi-perf | iscsikit | ratio | goal | met? |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        unit = " µs" if r["metric"].startswith("CPU") else ""
        ref = f"{r['reference_value']:,.1f}{unit}" if unit else f"{r['reference_value']:,.0f}"
        kit = f"{r['iscsikit_value']:,.1f}{unit}" if unit else f"{r['iscsikit_value']:,.0f}"
        if r["reference"] != "iscsi-perf":
            ref += f" ({r['reference']})"
        if r["note"]:
            ref += f" ({r['note']})"
        met = "met" if r["met"] else "missed"
        lines.append(
            f"| {r['workload']} | {ref} | {kit} | {r['ratio']:.2f}x | {r['goal']} | {met} |"
        )
    lines.append("")
    lines.append(
        "Initiator CPU µs per I/O (whole process) and tgtd CPU use (1.0 = one CPU), "
        "medians, reference / iscsikit:"
    )
    for r in rows:
        lines.append(
            f"* {r['workload']}: initiator {r['reference_cpu_us_per_io']:.1f} / "
            f"{r['iscsikit_cpu_us_per_io']:.1f} µs; tgtd {r['reference_tgtd_cpu']:.2f} / "
            f"{r['iscsikit_tgtd_cpu']:.2f}"
        )
    return "\n".join(lines)


def machine() -> dict[str, Any]:
    model = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    tgtd_version = subprocess.run(
        ["tgtd", "--version"], capture_output=True, text=True, check=False
    ).stdout.strip()
    return {
        "cpus": os.cpu_count(),
        "cpu_model": model,
        "kernel": platform.release(),
        "python": platform.python_version(),
        "tgtd": tgtd_version,
        "loadavg": os.getloadavg(),
    }


def _exit_on_signal(signum: int, _frame: object) -> None:
    raise SystemExit(128 + signum)


def missing_tools() -> list[str]:
    """The programs a run needs that are not on PATH."""
    return [tool for tool in ("iscsi-perf", "tgtd", "tgtadm", "taskset") if not shutil.which(tool)]


@contextlib.contextmanager
def bench_target(workdir: Path | None) -> Iterator[Tgtd]:
    """:func:`environment` in ``workdir`` (default: a temporary directory), stopped on SIGTERM."""
    # SIGTERM (and SIGINT, which a background job ignores) must still stop the tgtd.
    signal.signal(signal.SIGTERM, _exit_on_signal)
    with contextlib.ExitStack() as stack:
        directory = workdir or Path(stack.enter_context(tempfile.TemporaryDirectory()))
        yield stack.enter_context(environment(directory))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--quick", action="store_true", help="1 run of 3 s per cell")
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--workdir", type=Path, help="scratch directory (default: a temp dir)")
    args = parser.parse_args(argv)
    if args.quick:
        args.runs, args.seconds = 1, 3
    missing = missing_tools()
    if missing:
        print(f"datapath_bench: missing {', '.join(missing)}", file=sys.stderr)
        return 1
    started = time.time()
    info = machine()
    with bench_target(args.workdir) as tgtd:
        cells, digest = run_suite(tgtd, args.runs, args.seconds, sys.stderr)
    rows = [row(cell) for cell in [*cells, digest]]
    info["loadavg_after"] = os.getloadavg()
    text = table(rows)
    print(text)
    print(
        f"\n{args.runs} run(s) x {args.seconds} s per cell, medians; "
        f"{info['cpus']} CPUs ({info['cpu_model']}), Python {info['python']}, "
        f"tgtd {info['tgtd']}, load {info['loadavg'][0]:.2f} -> {info['loadavg_after'][0]:.2f}, "
        f"{time.time() - started:.0f} s"
    )
    if args.json:
        args.json.write_text(
            json.dumps({"machine": info, "runs": args.runs, "seconds": args.seconds, "rows": rows})
            + "\n"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
