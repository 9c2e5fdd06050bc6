"""Queue-depth sweep, ``iscsikit-perf`` vs libiscsi's ``iscsi-perf``, drawn as PNG plots.

Both tools read 4 KiB at random LBAs (``-b 8 -r``) with ``-m`` 1, 2, 4, ..., 64 commands in
flight from the same private tgtd as ``datapath_bench.py`` (its :func:`environment`: a 1 GiB
file LUN, page cache warm, and a ``--bstype null`` LUN), through its runners, so a point here
is measured exactly as a cell there.  Each point runs ``--runs`` times (default 3),
interleaved: run by run, LUN by LUN, QD by QD, the tool that goes first alternates; the plots
show medians.  By default every tgtd thread is pinned to CPU 0 and the initiator to CPU 1
(peers.md §6.5), at every QD, so the initiators never compete with the target for a CPU::

    python bench/plots.py                          # sweep (3 x 8 s per point, ~15 min) + PNGs
    python bench/plots.py --json sweep.json        # also keep the measurements
    python bench/plots.py --from-json sweep.json   # redraw from them, no target needed

Writes ``bench/plots/iops_vs_qd.png``, ``cpu_vs_qd.png`` and ``latency_qd1.png`` (``--out``)
and prints the table of medians behind them (Markdown).  CPU µs per I/O is user + system
time of the whole initiator process (start-up and login included, as in datapath_bench.py)
divided by its I/Os; iscsikit's own figure for its I/O loop alone (its ``--json``
``cpu_us_per_io``) is drawn dashed.  iscsi-perf prints no latency percentiles: the latency
plot draws its mean latency at QD1 (1 / IOPS) as a reference line.

Nothing here is asserted by a test.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from iscsikit.testing.tgtd import Tgtd

# This file runs as a script from bench/: its neighbour is importable as a top-level module.
sys.path.insert(0, str(Path(__file__).resolve().parent))

from datapath_bench import (
    IQN,
    Result,
    bench_target,
    machine,
    missing_tools,
    pin_tgtd,
    process_cpu,
    run_iscsi_perf,
    run_iscsikit_perf,
)

QDS = (1, 2, 4, 8, 16, 32, 64)
LUNS = {"null": "null LUN (--bstype null)", "file": "file LUN (1 GiB, page cache)"}
TOOLS = ("iscsi-perf", "iscsikit-perf")
ARGS = ["-b", "8", "-r"]
OUT = Path(__file__).resolve().parent / "plots"


# -- measuring -------------------------------------------------------------------------------


def measure(
    tgtd: Tgtd, *, runs: int, seconds: int, pinned: bool, log: Callable[[str], None]
) -> list[dict[str, Any]]:
    """Every (run, LUN, QD, tool) point of the sweep, in the order it ran."""
    points: list[dict[str, Any]] = []
    prefix = ["taskset", "-c", "1"] if pinned else []
    if pinned:
        pin_tgtd(tgtd, "0")
    try:
        for run in range(runs):
            for lun in LUNS:
                url = f"iscsi://{tgtd.portal}/{IQN}{'null' if lun == 'null' else ''}/1"
                for i, qd in enumerate(QDS):
                    order = TOOLS if (run + i) % 2 == 0 else TOOLS[::-1]
                    for tool in order:
                        args = ["-m", str(qd), *ARGS]
                        target0 = process_cpu(tgtd.pid)
                        if tool == "iscsi-perf":
                            result = run_iscsi_perf(url, args, seconds, prefix)
                        else:
                            result = run_iscsikit_perf(url, args, seconds, prefix)
                        result.target_cpu_seconds = process_cpu(tgtd.pid) - target0
                        point = _point(result, run=run, lun=lun, qd=qd, tool=tool)
                        points.append(point)
                        log(
                            f"run {run + 1}/{runs} {lun:4s} QD{qd:<2d} {tool:13s} "
                            f"{point['iops']:9.0f} IOPS {point['cpu_us_per_io']:7.2f} CPU µs/IO "
                            f"tgtd {point['tgtd_cpu']:.2f} CPU  load {point['loadavg'][0]:.2f}"
                        )
    finally:
        if pinned:
            pin_tgtd(tgtd, f"0-{(os.cpu_count() or 1) - 1}")
    return points


def _point(result: Result, *, run: int, lun: str, qd: int, tool: str) -> dict[str, Any]:
    extra = result.extra
    return {
        "run": run,
        "lun": lun,
        "qd": qd,
        "tool": tool,
        "iops": result.iops,
        "cpu_us_per_io": result.cpu_us_per_io,
        "tgtd_cpu": result.target_cpu_share,
        # iscsikit-perf's own figures: the I/O loop's CPU and the latency distribution
        "loop_cpu_us_per_io": extra.get("cpu_us_per_io"),
        "latency_us": {
            key: extra.get(f"latency_us_{key}") for key in ("p50", "p99", "p999", "max", "avg")
        }
        if extra
        else None,
        "loadavg": list(os.getloadavg()),
    }


# -- summarising -----------------------------------------------------------------------------


def _median(values: list[float | None]) -> float:
    present = [v for v in values if v is not None]
    return statistics.median(present) if present else float("nan")


def medians(points: list[dict[str, Any]]) -> dict[tuple[str, int, str], dict[str, float]]:
    """Per (LUN, QD, tool): the median of each figure over the runs."""
    groups: dict[tuple[str, int, str], list[dict[str, Any]]] = {}
    for p in points:
        groups.setdefault((p["lun"], p["qd"], p["tool"]), []).append(p)
    summary: dict[tuple[str, int, str], dict[str, float]] = {}
    for key, group in groups.items():
        row = {
            "iops": _median([p["iops"] for p in group]),
            "cpu_us_per_io": _median([p["cpu_us_per_io"] for p in group]),
            "loop_cpu_us_per_io": _median([p["loop_cpu_us_per_io"] for p in group]),
            "tgtd_cpu": _median([p["tgtd_cpu"] for p in group]),
            "runs": float(len(group)),
        }
        for name in ("p50", "p99", "p999", "max", "avg"):
            row[name] = _median([(p["latency_us"] or {}).get(name) for p in group])
        summary[key] = row
    return summary


def table(summary: dict[tuple[str, int, str], dict[str, float]]) -> str:
    """The numbers behind the plots, as Markdown."""
    lines = [
        "| LUN | QD | iscsi-perf IOPS | iscsikit IOPS | ratio | iscsi-perf CPU µs/IO "
        "| iscsikit CPU µs/IO (loop) | ratio | iscsikit p50 / p99 / p99.9 µs |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for lun in LUNS:
        for qd in QDS:
            peer = summary.get((lun, qd, "iscsi-perf"))
            kit = summary.get((lun, qd, "iscsikit-perf"))
            if peer is None or kit is None:
                continue
            lines.append(
                f"| {lun} | {qd} | {peer['iops']:,.0f} | {kit['iops']:,.0f} "
                f"| {kit['iops'] / peer['iops']:.2f}x | {peer['cpu_us_per_io']:.1f} "
                f"| {kit['cpu_us_per_io']:.1f} ({kit['loop_cpu_us_per_io']:.1f}) "
                f"| {kit['cpu_us_per_io'] / peer['cpu_us_per_io']:.2f}x "
                f"| {kit['p50']:.0f} / {kit['p99']:.0f} / {kit['p999']:.0f} |"
            )
    return "\n".join(lines)


# -- drawing ---------------------------------------------------------------------------------


def draw(data: dict[str, Any], out: Path) -> list[Path]:
    """The three PNGs from a sweep's JSON; returns their paths."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    summary = medians(data["points"])
    runs, seconds = data["runs"], data["seconds"]
    pinned = "tgtd on CPU 0, initiator on CPU 1" if data["pinned"] else "not pinned"
    load = data["machine"].get("loadavg", [float("nan")])[0]
    setting = (
        f"4 KiB random reads, tgtd {data['machine'].get('tgtd', '')}, "
        f"{data['machine'].get('cpus')} CPUs ({pinned}); "
        f"medians of {runs} interleaved runs x {seconds} s; load {load:.2f} at start"
    )
    plt.rcParams.update({"font.size": 9})
    out.mkdir(parents=True, exist_ok=True)
    colours = {"iscsi-perf": "tab:blue", "iscsikit-perf": "tab:orange"}
    written = []

    def per_qd(metric: str, ylabel: str, title: str, name: str, dashed: str | None) -> None:
        fig, axes = plt.subplots(1, 2, figsize=(10, 4), sharey=False)
        for ax, (lun, label) in zip(axes, LUNS.items(), strict=True):
            for tool in TOOLS:
                ys = [summary[(lun, qd, tool)][metric] for qd in QDS]
                ax.plot(QDS, ys, marker="o", color=colours[tool], label=tool)
            if dashed is not None:
                ys = [summary[(lun, qd, "iscsikit-perf")][dashed] for qd in QDS]
                ax.plot(
                    QDS, ys, marker=".", linestyle="--", color=colours["iscsikit-perf"],
                    label="iscsikit-perf, I/O loop only",
                )  # fmt: skip
            for qd in QDS:
                peer = summary[(lun, qd, "iscsi-perf")][metric]
                kit = summary[(lun, qd, "iscsikit-perf")][metric]
                ax.annotate(
                    f"{kit / peer:.2f}x", (qd, kit), textcoords="offset points",
                    xytext=(0, 7), ha="center", fontsize=7, color=colours["iscsikit-perf"],
                )  # fmt: skip
            ax.set_xscale("log", base=2)
            ax.set_xticks(QDS, [str(q) for q in QDS])
            ax.set_xlabel("queue depth (-m)")
            ax.set_ylabel(ylabel)
            ax.set_ylim(bottom=0, top=ax.get_ylim()[1] * 1.08)  # room for the labels
            ax.set_title(label)
            ax.grid(True, alpha=0.3)
            ax.legend(loc="best", fontsize=8)
        fig.suptitle(f"{title} (labels: iscsikit / iscsi-perf)")
        fig.text(0.5, 0.01, setting, ha="center", fontsize=7)
        fig.tight_layout(rect=(0, 0.04, 1, 1))
        path = out / name
        fig.savefig(path, dpi=90)
        plt.close(fig)
        written.append(path)

    per_qd("iops", "I/Os per second", "IOPS against queue depth", "iops_vs_qd.png", None)
    per_qd(
        "cpu_us_per_io",
        "initiator CPU µs per I/O (user + sys)",
        "Initiator CPU per I/O against queue depth, whole process",
        "cpu_vs_qd.png",
        "loop_cpu_us_per_io",
    )

    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for ax, (lun, label) in zip(axes, LUNS.items(), strict=True):
        kit = summary[(lun, 1, "iscsikit-perf")]
        peer = summary[(lun, 1, "iscsi-perf")]
        names = ["p50", "p99", "p99.9", "mean"]
        values = [kit["p50"], kit["p99"], kit["p999"], kit["avg"]]
        bars = ax.bar(names, values, color=colours["iscsikit-perf"], label="iscsikit-perf")
        ax.bar_label(bars, fmt="%.0f", fontsize=8)
        reference = 1e6 / peer["iops"]
        ax.axhline(
            reference, color=colours["iscsi-perf"], linestyle="--",
            label=f"iscsi-perf mean (1 / IOPS) {reference:.0f} µs",
        )  # fmt: skip
        ax.set_yscale("log")  # the tail is tens of times the median
        ax.set_ylabel("latency, µs (submission to completion), log scale")
        ax.set_title(label)
        ax.grid(True, axis="y", alpha=0.3)
        ax.legend(loc="upper left", fontsize=8)
    fig.suptitle("Latency at QD1: iscsikit-perf percentiles; iscsi-perf prints none")
    fig.text(
        0.5,
        0.01,
        "iscsi-perf reports no percentiles: its dashed line is its mean latency at QD1, "
        "1 / IOPS.\n" + setting,
        ha="center",
        fontsize=7,
    )
    fig.tight_layout(rect=(0, 0.06, 1, 1))
    path = out / "latency_qd1.png"
    fig.savefig(path, dpi=90)
    plt.close(fig)
    written.append(path)
    return written


# -- main ------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--seconds", type=int, default=8)
    parser.add_argument("--no-pin", dest="pinned", action="store_false", help="no taskset")
    parser.add_argument("--json", type=Path, help="also write the measurements here")
    parser.add_argument("--from-json", type=Path, help="draw from these measurements")
    parser.add_argument("--out", type=Path, default=OUT, help=f"PNG directory (default {OUT})")
    parser.add_argument("--workdir", type=Path, help="scratch directory (default: a temp dir)")
    args = parser.parse_args(argv)
    if args.from_json:
        data = json.loads(args.from_json.read_text())
    else:
        missing = missing_tools()
        if missing:
            print(f"plots: missing {', '.join(missing)}", file=sys.stderr)
            return 1
        started = time.time()
        info = machine()
        with bench_target(args.workdir) as tgtd:
            points = measure(
                tgtd,
                runs=args.runs,
                seconds=args.seconds,
                pinned=args.pinned,
                log=lambda line: print(line, file=sys.stderr, flush=True),
            )
        info["loadavg_after"] = os.getloadavg()
        info["wall_seconds"] = round(time.time() - started)
        data = {
            "machine": info,
            "runs": args.runs,
            "seconds": args.seconds,
            "pinned": args.pinned,
            "args": ARGS,
            "points": points,
        }
        if args.json:
            args.json.write_text(json.dumps(data, indent=1) + "\n")
    print(table(medians(data["points"])))
    info = data["machine"]
    print(
        f"\n{data['runs']} run(s) x {data['seconds']} s per point, medians; {info['cpus']} CPUs "
        f"({info['cpu_model']}), Python {info['python']}, tgtd {info['tgtd']}, load "
        f"{info['loadavg'][0]:.2f} -> {info.get('loadavg_after', [float('nan')])[0]:.2f}"
    )
    for path in draw(data, args.out):
        print(f"wrote {path} ({path.stat().st_size // 1024} KiB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
