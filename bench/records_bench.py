"""Node-record benchmark: iscsikit vs real iscsiadm 2.1.8 on the same data, same run.

    sudo python3 bench/records_bench.py [-n 10000] [--runs 3]

Five operations on N node records (``iqn.2024-01.bench:tI`` at 127.0.0.1:3260,1):
create, list (``iscsiadm -m node``) twice -- the second listing is where iscsikit's
name cache (records/namecache.py) answers --, update one key on all (``-o update -n
node.startup -v automatic``), delete all (``-o delete``).  iscsiadm runs as it runs on a
host: one process per ``-o new``, one for each of the others, with an iscsid answering
its config queries (the fake one of iscsikit.testing, so no IPC back-off is timed).
iscsikit runs through its Python API (``Records``), which is what a caller that
replaces iscsiadm uses.  The same iscsid.conf feeds both; the first record of each
database is compared byte for byte, so both tools did the same work.

Everything happens in private mount + network namespaces over scratch directories:
the host's /etc/iscsi is never touched.  Needs root, unshare and Debian's open-iscsi.
"""

from __future__ import annotations

import argparse
import functools
import math
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

OPS = ("create", "list", "list again", "update", "delete")
PORTAL = ("127.0.0.1", 3260, 1)


def target(i: int) -> str:
    return f"iqn.2024-01.bench:t{i:05d}"


def _timed(fn: Callable[[], object]) -> float:
    # Flush what the previous step left dirty, so no tool pays for another's writes.
    os.sync()
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def _run(args: list[str]) -> None:
    proc = subprocess.run(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, check=False)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(args)}: exit {proc.returncode}: {proc.stderr.decode()}")


def copy_db(source: Path, etc: Path) -> None:
    """iscsiadm's database made from iscsikit's: the same files, byte for byte, and the
    same link names, pointing where iscsiadm's own links point (/etc/iscsi/nodes/...)."""
    for sub in ("nodes", "static"):
        shutil.rmtree(etc / sub, ignore_errors=True)
        shutil.copytree(source / sub, etc / sub, symlinks=True)
    for link in (etc / "static").iterdir():
        target = os.readlink(link)
        link.unlink()
        link.symlink_to("/etc/iscsi/nodes/" + target.split("/nodes/", 1)[1])


def bench_iscsiadm(n: int, *, copy_from: Path | None = None) -> dict[str, float]:
    """iscsiadm's times; ``copy_from``: its database is a copy of that one (create
    is not timed)."""
    iscsiadm = shutil.which("iscsiadm") or "/usr/sbin/iscsiadm"
    host, port, tpgt = PORTAL

    def create() -> None:
        for i in range(n):
            _run(
                [
                    iscsiadm,
                    "-m",
                    "node",
                    "-o",
                    "new",
                    "-T",
                    target(i),
                    "-p",
                    f"{host}:{port},{tpgt}",
                ]
            )

    def listing() -> None:
        out = subprocess.run([iscsiadm, "-m", "node"], capture_output=True, check=True).stdout
        assert out.count(b"\n") == n, out[:200]

    if copy_from is not None:
        copy_db(copy_from, Path("/etc/iscsi"))
    return {
        "create": _timed(create) if copy_from is None else float("nan"),
        "list": _timed(listing),
        "list again": _timed(listing),
        "update": _timed(
            lambda: _run(
                [iscsiadm, "-m", "node", "-o", "update", "-n", "node.startup", "-v", "automatic"]
            )
        ),
        "delete": _timed(lambda: _run([iscsiadm, "-m", "node", "-o", "delete"])),
    }


def _on_copy(into: dict[str, float], n: int, source: Path) -> None:
    into.update(bench_iscsiadm(n, copy_from=source))


def bench_iscsikit(
    n: int, db: Path, conf_path: Path, *, before_list: Callable[[], object] = lambda: None
) -> tuple[dict[str, float], str]:
    """iscsikit's times; ``before_list`` runs (untimed) after create."""
    from iscsikit.config.iscsid_conf import IscsidConf
    from iscsikit.config.registry import RecordType
    from iscsikit.proto.address import format_portal
    from iscsikit.records.model import NodeRecord
    from iscsikit.records.store import Records

    records = Records.at(db, lock_dir=db.parent / "ours-lock")
    host, port, tpgt = PORTAL
    sample: list[str] = []

    def create() -> None:
        template = IscsidConf.load(conf_path).template(RecordType.NODE)
        records.add_nodes(
            NodeRecord.new(target(i), host, port, tpgt, template=template) for i in range(n)
        )

    def listing() -> None:
        # What `iscsiadm -m node` prints: "ip:port,tpgt target" per record.
        lines = [
            f"{format_portal(i.address, i.port)},{i.tpgt} {i.target}" for i in records.node_ids()
        ]
        assert len(lines) == n
        sys.stdout.flush()

    def update() -> None:
        assert records.update_node_values({"node.startup": "automatic"}) == n

    def delete() -> None:
        records.delete_nodes(records.node_ids())
        assert not records.node_ids()

    times = {"create": _timed(create)}
    sample.append(records.nodes(target=target(0))[0].to_text())
    before_list()
    times["list"] = _timed(listing)
    times["list again"] = _timed(listing)  # the name cache, where directories are settled
    times["update"] = _timed(update)
    times["delete"] = _timed(delete)
    return times, sample[0]


def inside(work: Path, n: int, runs: int, copy: bool) -> int:
    from iscsikit.testing.fake_iscsid import FakeIscsid

    etc, lock = work / "etc-iscsi", work / "lock"
    for src, dst in ((etc, "/etc/iscsi"), (lock, "/run/lock/iscsi")):
        subprocess.run(["mount", "--bind", str(src), dst], check=True)
    results: dict[str, dict[str, list[float]]] = {"iscsiadm": {}, "iscsikit": {}}
    with FakeIscsid(initiator_name="iqn.2024-01.bench:initiator"):
        for run in range(runs):
            # Keep one iscsiadm-written record to compare with ours.
            _run(["iscsiadm", "-m", "node", "-o", "new", "-T", target(0), "-p", "127.0.0.1:3260,1"])
            their_text = (etc / "nodes" / target(0) / "127.0.0.1,3260,1" / "default").read_text()
            _run(["iscsiadm", "-m", "node", "-o", "delete"])
            ours_db = work / f"ours-{run}"
            if copy:
                # iscsikit creates first; iscsiadm works on a copy of what it wrote,
                # made while iscsikit's database is intact (before its list).
                theirs: dict[str, float] = {}
                ours, our_text = bench_iscsikit(
                    n,
                    ours_db,
                    etc / "iscsid.conf",
                    before_list=functools.partial(_on_copy, theirs, n, ours_db),
                )
            else:
                theirs = bench_iscsiadm(n)
                ours, our_text = bench_iscsikit(n, ours_db, etc / "iscsid.conf")
            shutil.rmtree(ours_db, ignore_errors=True)
            if our_text != their_text:
                print("records differ:\n--- iscsiadm\n" + their_text + "--- iscsikit\n" + our_text)
                return 1
            for tool, times in (("iscsiadm", theirs), ("iscsikit", ours)):
                for op, t in times.items():
                    results[tool].setdefault(op, []).append(t)
            print(
                f"run {run + 1}/{runs}: "
                + ", ".join(f"{op} {theirs[op]:.3f}s vs {ours[op]:.3f}s" for op in OPS),
                file=sys.stderr,
            )
    print(f"\nN = {n} node records, {runs} runs, median seconds (min-max);", end=" ")
    print("ratio = iscsiadm / iscsikit\n")
    print("| operation | iscsiadm 2.1.8 | iscsikit (API) | ratio |")
    print("|---|---|---|---|")
    for op in OPS:
        a, k = results["iscsiadm"][op], results["iscsikit"][op]
        ma, mk = statistics.median(a), statistics.median(k)
        spread_a = f"{ma:.3f} ({min(a):.3f}-{max(a):.3f})"
        spread_k = f"{mk:.3f} ({min(k):.3f}-{max(k):.3f})"
        if math.isnan(ma):  # create not timed (--copy-create)
            print(f"| {op} | (copied) | {spread_k} | - |")
            continue
        print(f"| {op} | {spread_a} | {spread_k} | {ma / mk:.1f}x |")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("-n", type=int, default=10000, help="node records (default 10000)")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument(
        "--tmpfs", action="store_true", help="put both databases on a tmpfs (CPU-bound view)"
    )
    parser.add_argument(
        "--copy-create",
        action="store_true",
        help="do not time iscsiadm's create (~80 s per run): give it a copy of the "
        "database iscsikit created (same files, same link names)",
    )
    parser.add_argument("--inside", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.inside:
        return inside(args.inside, args.n, args.runs, args.copy_create)
    if os.geteuid() != 0:
        print("records_bench: needs root (mount and network namespaces)", file=sys.stderr)
        return 1
    with tempfile.TemporaryDirectory(prefix="iscsikit-bench-") as tmp:
        work = Path(tmp)
        if args.tmpfs:
            subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2g", "tmpfs", tmp], check=True)
        from iscsikit.testing.oracle import Oracle

        Oracle(work)  # scratch etc-iscsi with Debian's iscsid.conf + initiatorname, lock dir
        Path("/run/lock/iscsi").mkdir(parents=True, exist_ok=True)
        cmd = ["unshare", "-m", "-n", sys.executable, __file__, "-n", str(args.n),
               "--runs", str(args.runs), "--inside", str(work)]  # fmt: skip
        if args.copy_create:
            cmd.append("--copy-create")
        try:
            return subprocess.run(cmd, check=False).returncode
        finally:
            if args.tmpfs:
                subprocess.run(["umount", tmp], check=False)


if __name__ == "__main__":
    sys.exit(main())
