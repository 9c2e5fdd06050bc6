"""Logging in to many targets: ``iscsikit-adm -m node -L all`` through iscsikitd vs
libiscsi's ``iscsi-ls -s``, same tgtd, same run; and the CLI's start-up with the daemon.

    python bench/login_bench.py                  # 128 targets, 3 interleaved runs
    python bench/login_bench.py -n 32 --runs 1   # quicker
    python bench/login_bench.py --json out.json

Set-up: a private tgtd on a free loopback port with N targets of one 8 MiB LUN each, a
private iscsikitd (``--root`` a scratch directory) whose records come from one SendTargets
discovery.  Per run, in alternating order:

* **iscsikit**: ``iscsikit-adm -m node -L all`` (wall time of the command, start-up
  included).  It returns once every session is logged in, its LUNs are probed (REPORT
  LUNS, INQUIRY, capacity, VPD) and each block LUN is served over NBD.  Then ``-U all``
  (not timed) logs them out again.
* **libiscsi**: ``iscsi-ls -s iscsi://host:port`` (wall time): a discovery, then a login
  to each target in turn with REPORT LUNS / INQUIRY / READ CAPACITY of its LUNs, logout.

Then the start-up of ``iscsikit-adm -m session`` with the daemon running (no sessions)
against ``python3 -c pass``: 30 runs each, medians, byte code compiled first (as for an
installed command).  Nothing is asserted by a test.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from iscsikit.testing.daemon import RunningDaemon
from iscsikit.testing.tgtd import Tgtd

IQN = "iqn.2024-01.test.iscsikit:login"


def _timed(argv: list[str], env: dict[str, str] | None = None) -> tuple[float, str]:
    start = time.perf_counter()
    result = subprocess.run(argv, capture_output=True, text=True, env=env, check=False)
    elapsed = time.perf_counter() - start
    if result.returncode != 0:
        raise RuntimeError(f"{argv} exited {result.returncode}: {result.stderr[-2000:]}")
    return elapsed, result.stdout


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("-n", "--targets", type=int, default=128)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--json", metavar="FILE")
    args = parser.parse_args()
    if not shutil.which("iscsi-ls"):
        print("iscsi-ls (libiscsi-bin) is not installed", file=sys.stderr)
        return 1
    results: dict[str, Any] = {"targets": args.targets, "runs": args.runs}
    # Time what an installed command costs: byte code compiled (PYTHONDONTWRITEBYTECODE
    # would otherwise make every run recompile what was edited since the install).
    root = Path(__file__).resolve().parent.parent
    subprocess.run(
        [sys.executable, "-m", "compileall", "-q", str(root / "iscsikit"), str(root / "drivers")],
        check=True,
    )
    with tempfile.TemporaryDirectory(prefix="ikbench") as tmp:
        tgtd = Tgtd(Path(tmp) / "tgtd")
        try:
            for i in range(args.targets):
                tgtd.add_target(f"{IQN}{i:03d}", tid=i + 1, lun_size=8 << 20)
            with RunningDaemon() as daemon:
                found = daemon.adm("-m", "discovery", "-t", "st", "-p", tgtd.portal)
                assert found.returncode == 0, found.stderr
                adm = [sys.executable, "-m", "iscsikit"]
                ikit: list[float] = []
                libiscsi: list[float] = []
                for run in range(args.runs):
                    order = ("ikit", "lib") if run % 2 == 0 else ("lib", "ikit")
                    for who in order:
                        if who == "ikit":
                            t, out = _timed([*adm, "-m", "node", "-L", "all"], daemon.env)
                            assert out.count("successful") == args.targets, out[-500:]
                            ikit.append(t)
                            listing = daemon.adm("-m", "session", "-P", "3").stdout
                            exports = listing.count("nbd+unix://")
                            assert exports == args.targets, f"{exports} exports"
                            out_ = daemon.adm("-m", "node", "-U", "all")
                            assert out_.returncode == 0, out_.stderr
                        else:
                            t, out = _timed(["iscsi-ls", "-s", f"iscsi://{tgtd.portal}"])
                            assert out.count("Target:") == args.targets, out[-500:]
                            libiscsi.append(t)
                    print(
                        f"run {run + 1}: iscsikit {ikit[-1]:.3f} s, iscsi-ls {libiscsi[-1]:.3f} s"
                    )
                results["login"] = {
                    "iscsikit_s": statistics.median(ikit),
                    "iscsi_ls_s": statistics.median(libiscsi),
                    "ratio": statistics.median(libiscsi) / statistics.median(ikit),
                }
                # CLI start-up with the daemon running.
                base = [_timed([sys.executable, "-c", "pass"])[0] for _ in range(30)]
                cli: list[float] = []
                for _ in range(30):
                    start = time.perf_counter()
                    subprocess.run([*adm, "-m", "session"], env=daemon.env,
                                   capture_output=True, check=False)  # fmt: skip
                    cli.append(time.perf_counter() - start)
                results["startup"] = {
                    "python_pass_ms": statistics.median(base) * 1e3,
                    "session_ms": statistics.median(cli) * 1e3,
                    "over_ms": (statistics.median(cli) - statistics.median(base)) * 1e3,
                }
        finally:
            tgtd.stop()
    login = results["login"]
    startup = results["startup"]
    print(f"\nlog in to {args.targets} targets (median of {args.runs}):")
    print(f"  iscsikit-adm -m node -L all via iscsikitd  {login['iscsikit_s']:.3f} s")
    print(f"  iscsi-ls -s                                 {login['iscsi_ls_s']:.3f} s")
    print(f"  ratio (iscsi-ls / iscsikit, >1 = faster)    {login['ratio']:.2f}x")
    print(f"CLI start-up: iscsikit-adm -m session {startup['session_ms']:.1f} ms, "
          f"python3 -c pass {startup['python_pass_ms']:.1f} ms, "
          f"+{startup['over_ms']:.1f} ms")  # fmt: skip
    print(f"(cpus: {os.cpu_count()}, load {os.getloadavg()[0]:.2f})")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
