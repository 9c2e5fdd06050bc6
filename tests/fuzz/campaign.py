"""The fuzz campaign: every harness (or the ones named) for 1,000,000 inputs, one at a time.

    nice -n 19 python3 tests/fuzz/campaign.py [--runs N] [--merge] [parser ...]

Each harness starts from its committed corpus (tests/fuzz/corpus/<parser>/) and writes
what it learns into a work directory (``$ISCSIKIT_FUZZ_WORK``, default
/tmp/iscsikit-fuzz/<parser>/), never into the committed corpus; a finding is written
there as ``crash-*`` / ``timeout-*`` / ``oom-*``.  The log of each run is
``<work>/<parser>.log``; the summary line printed per parser (inputs, exec/s, cov, ft,
findings) is what bench/README.md records.  ``--merge`` then adds to the committed corpus
the inputs of the work directory that reach new coverage (libFuzzer ``-merge=1``), which
keeps it minimal.  Exit status 1 when any harness found something.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import fuzzlib

HERE = Path(__file__).resolve().parent
_STATS = re.compile(r"^#(\d+)\s+(?:DONE|pulse|NEW|REDUCE|INITED).*?cov: (\d+) ft: (\d+)")


def run(parser: str, runs: int, work: Path, seed: int) -> tuple[str, bool]:
    """Fuzz one harness; returns its summary line and whether it found something."""
    out = work / parser
    out.mkdir(parents=True, exist_ok=True)
    log = work / f"{parser}.log"
    cmd = [
        sys.executable,
        str(HERE / f"fuzz_{parser}.py"),
        str(out),
        str(fuzzlib.CORPUS / parser),
        f"-runs={runs}",
        f"-seed={seed}",
        "-timeout=10",
        "-rss_limit_mb=2048",
        "-max_len=65536",
        "-print_final_stats=1",
        f"-artifact_prefix={work}/{parser}-",
    ]
    start = time.monotonic()
    with log.open("w") as f:
        f.write(" ".join(cmd) + "\n")
        f.flush()
        code = subprocess.call(cmd, stdout=f, stderr=subprocess.STDOUT)
    elapsed = time.monotonic() - start
    text = log.read_text(errors="replace")
    last = [m for m in map(_STATS.match, text.splitlines()) if m]
    inputs, cov, ft = last[-1].groups() if last else ("0", "?", "?")
    findings = sorted(p.name for p in work.glob(f"{parser}-*"))
    line = (
        f"{parser}: {int(inputs):,} inputs in {elapsed:.0f} s ({int(inputs) / elapsed:.0f}/s), "
        f"cov {cov} ft {ft}, exit {code}, findings: {', '.join(findings) or 'none'}"
    )
    return line, bool(code or findings)


def merge(parser: str, work: Path) -> None:
    """Add the work directory's inputs with new coverage to the committed corpus."""
    cmd = [
        sys.executable,
        str(HERE / f"fuzz_{parser}.py"),
        "-merge=1",
        "-max_len=65536",
        str(fuzzlib.CORPUS / parser),
        str(work / parser),
    ]
    subprocess.call(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("parsers", nargs="*", default=list(fuzzlib.HARNESSES))
    ap.add_argument("--runs", type=int, default=1_000_000)
    ap.add_argument("--seed", type=int, default=14)
    ap.add_argument("--merge", action="store_true")
    args = ap.parse_args()
    work = Path(os.environ.get("ISCSIKIT_FUZZ_WORK", "/tmp/iscsikit-fuzz"))
    work.mkdir(parents=True, exist_ok=True)
    failed = False
    for parser in args.parsers:
        line, found = run(parser, args.runs, work, args.seed)
        print(line, flush=True)
        failed |= found
        if args.merge and not found:
            merge(parser, work)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
