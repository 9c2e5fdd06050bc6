"""NBD export: ``iscsikit-nbd`` (and iscsikitd's export) vs ``qemu-nbd`` over libiscsi, and
seq write 64 KiB QD32: ``iscsikit-perf -w`` vs ``qemu-img bench -w`` over libiscsi.

    flock /work/tmp/bench.lock python3 bench/nbd_bench.py              # 3 interleaved runs
    flock /work/tmp/bench.lock python3 bench/nbd_bench.py --quick      # 1 run, short fio
    python3 bench/nbd_bench.py --json out.json --only read,fio

Set-up: bench/datapath_bench.py's environment (a private tgtd on loopback, target
``iqn.2024-01.test.iscsikit:perf`` with LUN 1 = a 1 GiB file of random bytes, page cache
warm).  Three NBD servers of that same LUN run side by side, each on a unix socket:

* **qemu** - ``qemu-nbd -f raw --cache=none -t -e 8 -k SOCK iscsi://PORTAL/IQN/1``
  (qemu-block-extra's libiscsi driver);
* **kit** - ``iscsikit-nbd iscsi://PORTAL/IQN/1 --socket SOCK`` (an in-process session);
* **daemon** - a private ``iscsikitd`` logged in to the target (``iscsikit-adm -m node
  -l``); its export ``<run_dir>/nbd/ip-…-lun-1`` (the session is the daemon's).

Workloads, per run in rotating order of the servers (each run starts with a different one):

* **read**: ``nbdcopy URI null:`` - the whole 1 GiB (wall time);
* **write**: ``nbdcopy --flush SRC URI`` - 1 GiB of random bytes from a file in /dev/shm,
  flushed at the end (wall time);
* **fio**: fio's nbd engine, 4 KiB random reads, QD32, time based (IOPS).

Per run the server's CPU time (``/proc/PID/stat`` utime + stime, all threads) is taken
around the workload: CPU µs per I/O uses the request size the client used (nbdcopy's
default 256 KiB, fio's 4 KiB).

Then the writer peers (``--only write64``): ``qemu-img bench -w -f raw -t none -d 32
-s 65536 -c N iscsi://…`` against ``iscsikit-perf -w -m 32 -b 128 -t S`` on the same LUN
(IOPS; CPU µs per I/O of the whole process from ``getrusage(RUSAGE_CHILDREN)``, start-up
and login included for both), and ``qemu-img bench -w … nbd+unix:///?socket=DAEMON`` for the
daemon-owned session (CPU: the daemon's and qemu-img's together).

Nothing here is asserted by a test.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from datapath_bench import IQN, LUN_SIZE, environment, process_cpu

from iscsikit.testing.daemon import RunningDaemon
from iscsikit.testing.tgtd import Tgtd

NBDCOPY_REQUEST = 256 * 1024
SERVERS = ("qemu", "kit", "daemon")
_QEMU_IMG_TIME = re.compile(r"Run completed in ([0-9.]+) seconds")


@dataclass
class Sample:
    """One workload run against one server."""

    seconds: float
    ios: float
    server_cpu: float
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def iops(self) -> float:
        return self.ios / self.seconds if self.seconds else float("nan")

    @property
    def cpu_us_per_io(self) -> float:
        return self.server_cpu / self.ios * 1e6 if self.ios else float("nan")


@dataclass
class Server:
    name: str
    uri: str
    pid: int
    proc: subprocess.Popen[bytes] | None = None


# -- servers ---------------------------------------------------------------------------------


def _wait_for(path: Path, proc: subprocess.Popen[bytes] | None, what: str, log: Path) -> None:
    deadline = time.monotonic() + 60
    while not _accepts(path):
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"{what} exited {proc.returncode}: {log.read_text()[-2000:]}")
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: no socket {path}: {log.read_text()[-2000:]}")
        time.sleep(0.05)


def _accepts(path: Path) -> bool:
    with socket.socket(socket.AF_UNIX) as probe:
        try:
            probe.connect(str(path))
        except OSError:
            return False
        return True


@contextlib.contextmanager
def _process(argv: list[str], sock: Path, name: str, log: Path) -> Iterator[Server]:
    """``argv`` running until the end of the block, once it accepts on ``sock``."""
    with log.open("ab") as out:
        proc = subprocess.Popen(argv, stdout=out, stderr=out)
    try:
        _wait_for(sock, proc, name, log)
        yield Server(
            name.removesuffix("-nbd").replace("iscsikit", "kit"),
            f"nbd+unix:///?socket={sock}",
            proc.pid,
            proc,
        )
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(30)


def qemu_nbd(url: str, work: Path) -> contextlib.AbstractContextManager[Server]:
    sock = work / "qemu.sock"
    argv = ["qemu-nbd", "-f", "raw", "--cache=none", "-t", "-e", "8", "-k", str(sock), url]
    return _process(argv, sock, "qemu-nbd", work / "qemu-nbd.log")


def kit_nbd(url: str, work: Path) -> contextlib.AbstractContextManager[Server]:
    sock = work / "kit.sock"
    argv = [sys.executable, "-m", "iscsikit.tools.nbd", url, "--socket", str(sock)]
    return _process(argv, sock, "iscsikit-nbd", work / "iscsikit-nbd.log")


@contextlib.contextmanager
def daemon_nbd(tgtd: Tgtd) -> Iterator[Server]:
    with RunningDaemon() as d:
        for args in (
            ("-m", "discovery", "-t", "st", "-p", tgtd.portal),
            ("-m", "node", "-T", IQN, "-p", tgtd.portal, "-l"),
        ):
            done = d.adm(*args)
            if done.returncode != 0:
                raise RuntimeError(f"iscsikit-adm {' '.join(args)}: {done.stderr}\n{d.log}")
        sock = next((d.run_dir / "nbd").glob(f"*{IQN}-lun-1"), None)
        if sock is None:
            raise RuntimeError(f"iscsikitd exports no LUN 1 of {IQN}:\n{d.log}")
        assert d.pid is not None
        try:
            yield Server("daemon", f"nbd+unix:///?socket={sock}", d.pid)
        finally:
            d.adm("-m", "node", "-u")


# -- workloads -------------------------------------------------------------------------------


def _run(argv: list[str], limit: float) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(argv, capture_output=True, text=True, timeout=limit, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} exited {done.returncode}: {done.stderr[-2000:]}")
    return done


def _timed(server: Server, argv: list[str], ios: float) -> Sample:
    cpu0 = process_cpu(server.pid)
    start = time.perf_counter()
    _run(argv, 600)
    seconds = time.perf_counter() - start
    return Sample(seconds, ios, process_cpu(server.pid) - cpu0)


def nbdcopy_read(server: Server, source: Path, fio_seconds: int) -> Sample:
    return _timed(server, ["nbdcopy", server.uri, "null:"], LUN_SIZE / NBDCOPY_REQUEST)


def nbdcopy_write(server: Server, source: Path, fio_seconds: int) -> Sample:
    argv = ["nbdcopy", "--flush", str(source), server.uri]
    return _timed(server, argv, LUN_SIZE / NBDCOPY_REQUEST)


def fio_randread(server: Server, source: Path, fio_seconds: int) -> Sample:
    argv = [
        "fio", "--name=randread", "--ioengine=nbd", f"--uri={server.uri}", "--rw=randread",
        "--bs=4k", "--iodepth=32", f"--size={LUN_SIZE}", "--time_based",
        f"--runtime={fio_seconds}", "--ramp_time=1", "--output-format=json",
    ]  # fmt: skip
    cpu0 = process_cpu(server.pid)
    done = _run(argv, fio_seconds + 120)
    cpu = process_cpu(server.pid) - cpu0
    job = json.loads(done.stdout[done.stdout.index("{") :])["jobs"][0]["read"]
    ios = float(job["total_ios"])
    seconds = job["runtime"] / 1000
    # The server's CPU covers the ramp-up too: charge it to the I/Os done then as well.
    total = ios * (fio_seconds + 1) / fio_seconds
    return Sample(seconds, ios, cpu * ios / total, {"lat_p50_us": _p50(job)})


def _p50(job: dict[str, Any]) -> float:
    pct = job.get("clat_ns", {}).get("percentile", {})
    return float(pct.get("50.000000", 0)) / 1000


WORKLOADS = {
    "read": ("nbdcopy read 1 GiB", nbdcopy_read),
    "write": ("nbdcopy write 1 GiB (--flush)", nbdcopy_write),
    "fio": ("fio nbd randread 4 KiB QD32", fio_randread),
}


def run_nbd(
    servers: list[Server], names: list[str], runs: int, source: Path, fio_seconds: int, log: Any
) -> dict[str, dict[str, list[Sample]]]:
    results: dict[str, dict[str, list[Sample]]] = {w: {s.name: [] for s in servers} for w in names}
    for run in range(runs):
        for name in names:
            title, workload = WORKLOADS[name]
            k = run % len(servers)
            for server in servers[k:] + servers[:k]:
                sample = workload(server, source, fio_seconds)
                results[name][server.name].append(sample)
                print(
                    f"run {run + 1}/{runs} {title:32s} {server.name:6s} {sample.seconds:7.2f} s "
                    f"{sample.iops:9.0f} IOPS  server {sample.cpu_us_per_io:7.1f} CPU µs/IO  "
                    f"load {os.getloadavg()[0]:.2f}",
                    file=log,
                    flush=True,
                )
    return results


# -- seq write 64 KiB QD32 ---------------------------------------------------------------------


def _child_cpu(argv: list[str], limit: float) -> tuple[str, float, float]:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = _run(argv, limit)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return done.stdout, cpu, wall


def qemu_img_bench(target: str, count: int, server_pid: int | None = None) -> Sample:
    argv = ["qemu-img", "bench", "-w", "-f", "raw", "-t", "none", "-d", "32", "-s", "65536",
            "-c", str(count), target]  # fmt: skip
    cpu0 = process_cpu(server_pid)
    out, cpu, wall = _child_cpu(argv, 600)
    found = _QEMU_IMG_TIME.search(out)
    seconds = float(found.group(1)) if found else wall
    server = process_cpu(server_pid) - cpu0
    return Sample(seconds, count, cpu + server, {"client_cpu": cpu, "server_cpu": server})


def kit_perf_write(url: str, seconds: int) -> Sample:
    argv = [sys.executable, "-m", "iscsikit.tools.perf", "-w", "-m", "32", "-b", "128", "-n",
            "--json", "-t", str(seconds), url]  # fmt: skip
    out, cpu, _ = _child_cpu(argv, seconds + 120)
    data = json.loads(out)
    return Sample(float(data["seconds"]), float(data["ios"]), cpu)


def run_write64(
    url: str, daemon: Server | None, runs: int, seconds: int, log: Any
) -> dict[str, list[Sample]]:
    out: dict[str, list[Sample]] = {"qemu-img": [], "kit": [], "daemon": []}
    count = 0
    for run in range(runs):
        order = ["qemu-img", "kit", "daemon"]
        k = run % 3
        for who in order[k:] + order[:k]:
            if who == "kit":
                sample = kit_perf_write(url, seconds)
                # qemu-img bench counts requests: give it about as many as iscsikit did.
                count = count or int(sample.ios)
            elif who == "qemu-img":
                sample = qemu_img_bench(url, count or 4000 * seconds)
            elif daemon is not None:
                sample = qemu_img_bench(daemon.uri, count or 4000 * seconds, daemon.pid)
            else:
                continue
            out[who].append(sample)
            print(
                f"run {run + 1}/{runs} seq write 64 KiB QD32 {who:8s} {sample.iops:9.0f} IOPS "
                f"{sample.cpu_us_per_io:7.1f} CPU µs/IO  load {os.getloadavg()[0]:.2f}",
                file=log,
                flush=True,
            )
    return out


# -- report ----------------------------------------------------------------------------------


def _med(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def _span(values: list[float], fmt: str) -> str:
    if not values:
        return "-"
    return f"{_med(values):{fmt}} ({min(values):{fmt}}-{max(values):{fmt}})"


def report(
    nbd: dict[str, dict[str, list[Sample]]], write64: dict[str, list[Sample]] | None
) -> tuple[str, dict[str, Any]]:
    lines = [
        "| workload | qemu-nbd (libiscsi) | iscsikit-nbd | iscsikitd export | kit / qemu |"
        " daemon / kit |",
        "|---|---|---|---|---|---|",
    ]
    doc: dict[str, Any] = {}
    for name, per in nbd.items():
        title = WORKLOADS[name][0]
        timed = name != "fio"
        cells = []
        values: dict[str, float] = {}
        for server in SERVERS:
            samples = per.get(server, [])
            if timed:
                vals = [s.seconds for s in samples]
                cells.append(_span(vals, ".2f") + " s" if vals else "-")
            else:
                vals = [s.iops for s in samples]
                cells.append(_span(vals, ",.0f") + " IOPS" if vals else "-")
            values[server] = _med(vals)
        # A ratio ≥ 1 is iscsikit ahead: time peer / time kit, IOPS kit / IOPS peer.
        if timed:
            r_kit = values["qemu"] / values["kit"]
            r_daemon = values["kit"] / values["daemon"]
        else:
            r_kit = values["kit"] / values["qemu"]
            r_daemon = values["daemon"] / values["kit"]
        lines.append(f"| {title} | {' | '.join(cells)} | {r_kit:.2f}x | {r_daemon:.2f}x |")
        doc[name] = {
            server: {
                "seconds": [s.seconds for s in per.get(server, [])],
                "iops": [s.iops for s in per.get(server, [])],
                "server_cpu_us_per_io": [s.cpu_us_per_io for s in per.get(server, [])],
            }
            for server in SERVERS
        }
        doc[name]["ratio_kit_qemu"] = r_kit
        doc[name]["ratio_daemon_kit"] = r_daemon
    lines += ["", "Server CPU µs per request (median, min-max):", ""]
    lines += ["| workload | qemu-nbd | iscsikit-nbd | iscsikitd |", "|---|---|---|---|"]
    for name, per in nbd.items():
        cells = [_span([s.cpu_us_per_io for s in per.get(srv, [])], ".1f") for srv in SERVERS]
        lines.append(f"| {WORKLOADS[name][0]} | {' | '.join(cells)} |")
    if write64:
        lines += ["", "| seq write 64 KiB QD32 | IOPS | CPU µs/IO | IOPS ratio | CPU ratio |"]
        lines += ["|---|---|---|---|---|"]
        base = write64["qemu-img"]
        b_iops = _med([s.iops for s in base])
        b_cpu = _med([s.cpu_us_per_io for s in base])
        labels = {
            "qemu-img": "`qemu-img bench -w` (libiscsi)",
            "kit": "`iscsikit-perf -w` (in-process)",
            "daemon": "`qemu-img bench -w` over iscsikitd's NBD export",
        }
        for who, samples in write64.items():
            if not samples:
                continue
            iops = [s.iops for s in samples]
            cpu = [s.cpu_us_per_io for s in samples]
            lines.append(
                f"| {labels[who]} | {_span(iops, ',.0f')} | {_span(cpu, '.1f')} | "
                f"{_med(iops) / b_iops:.2f}x | {_med(cpu) / b_cpu:.2f}x |"
            )
        doc["write64"] = {
            who: {"iops": [s.iops for s in v], "cpu_us_per_io": [s.cpu_us_per_io for s in v]}
            for who, v in write64.items()
        }
    return "\n".join(lines), doc


def _exit_on_signal(signum: int, _frame: object) -> None:
    raise SystemExit(128 + signum)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--fio-seconds", type=int, default=10)
    parser.add_argument("--write-seconds", type=int, default=10)
    parser.add_argument("--quick", action="store_true", help="1 run, 3 s fio / write64")
    parser.add_argument("--only", default="read,write,fio,write64", help="workloads, comma list")
    parser.add_argument("--servers", default=",".join(SERVERS), help="NBD servers, comma list")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args(argv)
    if args.quick:
        args.runs, args.fio_seconds, args.write_seconds = 1, 3, 3
    tools = ("tgtd", "qemu-nbd", "qemu-img", "nbdcopy", "fio")
    missing = [t for t in tools if not shutil.which(t)]
    if missing:
        print(f"nbd_bench: missing {', '.join(missing)}", file=sys.stderr)
        return 1
    signal.signal(signal.SIGTERM, _exit_on_signal)
    only = [w for w in args.only.split(",") if w]
    wanted = [s for s in args.servers.split(",") if s]
    started, load0 = time.time(), os.getloadavg()
    with contextlib.ExitStack() as stack:
        work = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="nbdb", dir="/tmp")))
        tgtd = stack.enter_context(environment(work / "tgtd"))
        url = f"iscsi://{tgtd.portal}/{IQN}/1"
        source = Path(stack.enter_context(tempfile.TemporaryDirectory(dir="/dev/shm"))) / "src"
        if "write" in only:
            with open("/dev/urandom", "rb") as rnd, source.open("wb") as dst:
                for _ in range(LUN_SIZE >> 20):
                    dst.write(rnd.read(1 << 20))
        servers: list[Server] = []
        if "qemu" in wanted:
            servers.append(stack.enter_context(qemu_nbd(url, work)))
        if "kit" in wanted:
            servers.append(stack.enter_context(kit_nbd(url, work)))
        daemon = stack.enter_context(daemon_nbd(tgtd)) if "daemon" in wanted else None
        if daemon is not None:
            servers.append(daemon)
        nbd_names = [w for w in only if w in WORKLOADS]
        nbd = run_nbd(servers, nbd_names, args.runs, source, args.fio_seconds, sys.stderr)
        write64 = None
        if "write64" in only:
            write64 = run_write64(url, daemon, args.runs, args.write_seconds, sys.stderr)
    text, doc = report(nbd, write64)
    load1 = os.getloadavg()
    print(text)
    print(
        f"\n{args.runs} interleaved run(s); medians (min-max); load {load0[0]:.2f} -> "
        f"{load1[0]:.2f}; {time.time() - started:.0f} s"
    )
    if args.json:
        args.json.write_text(json.dumps({"runs": args.runs, "load": [load0, load1], **doc}) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
