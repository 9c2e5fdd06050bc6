"""Start-up of ``iscsikit-adm`` in every mode against ``python3 -c pass``, same run.

    flock /work/tmp/bench.lock python3 bench/startup_bench.py              # 30 rounds
    flock /work/tmp/bench.lock python3 bench/startup_bench.py -n 10 --json out.json
    python3 bench/startup_bench.py --tree /path/to/other/checkout         # another tree
    python3 bench/startup_bench.py --case "-m iface" --case "-m node"      # some cases

What runs: the installed console script ``iscsikit-adm`` (the one next to this
interpreter, not a pyenv shim), with byte code compiled first (as for an installed
command) and ``ISCSIKIT_ROOT`` pointing at a private scratch root: an empty database
except one discovery record and one node record, made by the CLI itself.  The cases
are each mode and its common operations, including the error paths an idle host takes
(``-m session`` with no daemon, ``-m fw`` with no iBFT, ``-m host`` with no HBA); the
``-m session`` cases run again against a private iscsikitd
(:class:`iscsikit.testing.daemon.RunningDaemon`, as ``bench/login_bench.py`` starts it)
unless ``--no-daemon``.

Each round runs every case once, each paired with a ``python3 -c pass`` run next to it
(the pair's order alternates between rounds); a case's figure is the median and p90 of
its per-pair differences of wall time, in ms, and the median difference of CPU time
(user + system: steadier than wall time when other work shares the machine).
``--tree DIR`` runs the CLI from another checkout of the project (a ``git worktree``):
its ``iscsikit`` and ``drivers`` directories go first on ``PYTHONPATH``, for the CLI and
for its ``python3 -c pass`` alike.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import sysconfig
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

from iscsikit.testing.daemon import RunningDaemon

TARGET = "iqn.2024-01.test.iscsikit:startup"
PORTAL = "127.0.0.1:3260"

#: (label, arguments, needs the daemon).  The labels are the table's first column.
CASES: tuple[tuple[str, tuple[str, ...], bool], ...] = (
    ("--version", ("--version",), False),
    ("-h", ("-h",), False),
    ("-m discovery", ("-m", "discovery"), False),
    ("-m discoverydb", ("-m", "discoverydb"), False),
    ("-m node", ("-m", "node"), False),
    ("-m node -T X -p Y", ("-m", "node", "-T", TARGET, "-p", PORTAL), False),
    ("-m session (no daemon)", ("-m", "session"), False),
    ("-m session -P 3 (no daemon)", ("-m", "session", "-P", "3"), False),
    ("-m iface", ("-m", "iface"), False),
    ("-m iface -I default", ("-m", "iface", "-I", "default"), False),
    ("-m fw", ("-m", "fw"), False),
    ("-m host", ("-m", "host"), False),
    ("-m session (iscsikitd)", ("-m", "session"), True),
    ("-m session -P 3 (iscsikitd)", ("-m", "session", "-P", "3"), True),
)


def entry_point() -> Path:
    """The ``iscsikit-adm`` script installed for this interpreter."""
    script = Path(sysconfig.get_path("scripts")) / "iscsikit-adm"
    if not script.exists():
        raise SystemExit(f"{script} not found: pip install -e . first")
    return script


def source_env(tree: Path | None, scratch: Path) -> dict[str, str]:
    """The environment of every timed command: ``tree`` first on the path, if given."""
    env = dict(os.environ)
    for name in ("ISCSIKIT_ROOT", "ISCSIKIT_DB_ROOT", "PYTHONDONTWRITEBYTECODE"):
        env.pop(name, None)
    if tree is not None:
        # The packages by their import names (the checkout calls iscsikit_drivers
        # "drivers"), so that the editable install's finder is never asked.
        links = scratch / "pythonpath"
        links.mkdir()
        (links / "iscsikit").symlink_to(tree / "iscsikit")
        (links / "iscsikit_drivers").symlink_to(tree / "drivers")
        env["PYTHONPATH"] = str(links)
    return env


def compile_tree(env: dict[str, str]) -> None:
    """Byte-compile the packages the CLI will import (as an installed command has)."""
    code = (
        "import compileall, iscsikit, iscsikit_drivers, os\n"
        "for p in (iscsikit, iscsikit_drivers):\n"
        "    compileall.compile_dir(os.path.dirname(p.__file__), quiet=1)\n"
    )
    subprocess.run([sys.executable, "-c", code], env=env, check=True)


def make_root(adm: Path, env: dict[str, str], root: Path) -> None:
    """One discovery record and one node record, written by the CLI under ``root``."""
    env = {**env, "ISCSIKIT_ROOT": str(root)}
    for argv in (
        ("-m", "discoverydb", "-t", "st", "-p", PORTAL, "-o", "new"),
        ("-m", "node", "-o", "new", "-T", TARGET, "-p", PORTAL),
    ):
        done = subprocess.run(
            [str(adm), *argv], env=env, capture_output=True, text=True, check=False
        )
        if done.returncode != 0:
            raise RuntimeError(f"{argv} exited {done.returncode}: {done.stderr}")


def timed(argv: list[str], env: dict[str, str]) -> tuple[float, float, int]:
    """Wall time and CPU time (user + system) of one command in seconds, and its exit
    code.  CPU time is the steadier figure when other work shares the machine."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run(
        argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False
    )
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu, done.returncode


def p90(values: list[float]) -> float:
    return statistics.quantiles(values, n=10, method="inclusive")[-1]


@contextmanager
def daemon_env(env: dict[str, str], wanted: bool) -> Iterator[dict[str, str] | None]:
    """The environment of the CLI against a private iscsikitd, or None without one."""
    if not wanted:
        yield None
        return
    with RunningDaemon(env=env) as daemon:
        yield daemon.env


def measure(
    rounds: int, tree: Path | None, with_daemon: bool, only: list[str] | None = None
) -> dict[str, Any]:
    adm = entry_point()
    base_argv = [sys.executable, "-c", "pass"]
    results: dict[str, Any] = {"rounds": rounds, "tree": str(tree or "installed")}
    with ExitStack() as stack:
        scratch = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="ikstart")))
        env = source_env(tree, scratch)
        compile_tree(env)
        root = scratch / "root"
        make_root(adm, env, root)
        local = {**env, "ISCSIKIT_ROOT": str(root)}
        cases = [c for c in CASES if not only or c[0] in only]
        remote = stack.enter_context(daemon_env(env, with_daemon and any(c[2] for c in cases)))
        cases = [c for c in cases if not c[2] or remote is not None]
        diffs: dict[str, list[float]] = {label: [] for label, _, _ in cases}
        cpu_diffs: dict[str, list[float]] = {label: [] for label, _, _ in cases}
        bases: list[float] = []
        cpu_bases: list[float] = []
        codes: dict[str, set[int]] = {label: set() for label, _, _ in cases}
        for _ in range(2):  # warm the page cache for both commands
            for _, argv, needs in cases:
                timed([str(adm), *argv], remote if needs and remote else local)
        for n in range(rounds):
            for i, (label, argv, needs) in enumerate(cases):
                case_env = remote if needs and remote else local
                pair = [(base_argv, env), ([str(adm), *argv], case_env)]
                if (n + i) % 2:
                    pair.reverse()
                times: dict[bool, tuple[float, float]] = {}
                for cmd, cmd_env in pair:
                    wall, cpu, code = timed(cmd, cmd_env)
                    is_case = cmd is not base_argv
                    times[is_case] = (wall, cpu)
                    if is_case:
                        codes[label].add(code)
                bases.append(times[False][0])
                cpu_bases.append(times[False][1])
                diffs[label].append(times[True][0] - times[False][0])
                cpu_diffs[label].append(times[True][1] - times[False][1])
        results["python_pass_ms"] = statistics.median(bases) * 1e3
        results["python_pass_cpu_ms"] = statistics.median(cpu_bases) * 1e3
        results["cases"] = {
            label: {
                "median_ms": statistics.median(values) * 1e3,
                "p90_ms": p90(values) * 1e3,
                "cpu_median_ms": statistics.median(cpu_diffs[label]) * 1e3,
                "exit": sorted(codes[label]),
            }
            for label, values in diffs.items()
        }
    results["loadavg"] = Path("/proc/loadavg").read_text().split()[:3]
    return results


def table(results: dict[str, Any]) -> str:
    lines = [
        f"`python3 -c pass`: {results['python_pass_ms']:.1f} ms (median; CPU "
        f"{results['python_pass_cpu_ms']:.1f} ms); "
        f"{results['rounds']} rounds; tree: {results['tree']}; "
        f"load average {' '.join(results['loadavg'])}",
        "",
        "| `iscsikit-adm` | exit | over `python3 -c pass`, median (ms) | p90 (ms) | CPU (ms) |",
        "|---|---|---|---|---|",
    ]
    for label, row in results["cases"].items():
        code = ",".join(str(c) for c in row["exit"])
        lines.append(
            f"| `{label}` | {code} | {row['median_ms']:+.1f} | {row['p90_ms']:+.1f} "
            f"| {row['cpu_median_ms']:+.1f} |"
        )
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("-n", "--runs", type=int, default=30, help="rounds (default 30)")
    parser.add_argument("--tree", type=Path, help="run the CLI from this checkout")
    parser.add_argument("--no-daemon", action="store_true", help="skip the iscsikitd cases")
    parser.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    parser.add_argument(
        "--case", action="append", metavar="LABEL", help="only this case (repeatable)"
    )
    args = parser.parse_args()
    tree = args.tree.resolve() if args.tree else None
    results = measure(args.runs, tree, not args.no_daemon, args.case)
    print(table(results))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
