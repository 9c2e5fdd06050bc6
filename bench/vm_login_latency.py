"""Login and logout latency through the kernel's iscsi_tcp: ``iscsikit-adm`` + iscsikitd
against open-iscsi's ``iscsiadm`` + iscsid, same kernel, same tgtd, same run.

Runs only inside the VM tier's guest (it loads kernel modules and logs the kernel in)::

    python3 -m iscsikit.testing.vm --timeout 1200 --results bench/out \\
        --run "python bench/vm_login_latency.py --rounds 5"

What is timed, per side and round (``time.perf_counter``, polled every 5 ms, bounded):

* **login**: from starting ``-m node -T IQN -p PORTAL -l`` until udev's
  ``/dev/disk/by-path/ip-PORTAL-iscsi-IQN-lun-1`` link exists (the command's exit code
  must be 0; if it returns after the link, the later of the two counts);
* **logout**: from starting ``... -u`` until the command has returned *and* the link
  is gone.

Milestones seen on the way are kept too (how long until the kernel session shows in
sysfs, the command returns, the SCSI disk shows in sysfs) to show where the time goes.

Set-up, not timed: ``modprobe iscsi_tcp sd_mod``; a private tgtd with one target and one
LUN (LUN 1, 32 MiB); the initiator name; byte code of iscsikit compiled (as for an
installed command).  iscsikitd (the console script of this interpreter's environment,
``iscsikitd -f``, no debug logging) is started first, while iscsid is not running (a
starting iscsikitd adopts kernel sessions unless iscsid runs; there are none), then
``iscsid -f``; each side discovers the target once with its own tool (both write the
same open-iscsi record).  Both daemons then stay up for the whole run and never own a
session at the same time: every operation waits until the previous side's session, disk
and link are gone.  One untimed warm-up login/logout per side, then ``--rounds`` rounds,
the side that goes first alternating per round so drift hits both.  Last, the start-up
of each CLI with its daemon up and no session (``-m session``, exit 21) against
``python3 -c pass``.

A third side, **iscsikit API**, does the same login and logout through iscsikitd from a
long-lived Python process (``session_service(...).login(node)`` / ``.logout(session)``,
what ``iscsikit-adm`` calls after its start-up): it separates the daemon's own work from
starting a Python interpreter for every command.

Prints a table (median, min, max per side; ratio iscsikit / open-iscsi of the medians)
and writes JSON (``--json``, default ``$ISCSIKIT_VM_OUT/vm_login_latency.json``).
Nothing is asserted by a test: the figures go to bench/README.md.
"""

from __future__ import annotations

import argparse
import compileall
import glob
import json
import os
import platform
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from iscsikit.testing.tgtd import Tgtd
from iscsikit.testing.vmguest.iscsid import IscsidError, iscsid_listening, iscsid_process

IQN = "iqn.2024-01.test.iscsikit.bench:latency"
INITIATOR = "iqn.2024-01.test.iscsikit.bench:latency-initiator"
POLL = 0.005  # seconds between two looks at /dev and /sys
LIMIT = 180.0  # seconds one operation may take before the run is abandoned
SIDES = ("open-iscsi", "iscsikit", "iscsikit API")


class BenchError(RuntimeError):
    """An operation failed or did not finish in time: the run is void."""


@dataclass
class Op:
    """One timed operation: ``total`` is the figure; ``marks`` its milestones (s)."""

    side: str
    kind: str  # "login" | "logout"
    round: int  # -1: warm-up
    total: float = 0.0
    marks: dict[str, float] = field(default_factory=dict)


# -- what the kernel and udev show ---------------------------------------------------


def _sessions() -> list[str]:
    try:
        return os.listdir("/sys/class/iscsi_session")
    except FileNotFoundError:
        return []


def _disks() -> list[str]:
    return glob.glob("/sys/class/iscsi_session/session*/device/target*/*/block/*")


def _link(portal: str) -> Path:
    return Path(f"/dev/disk/by-path/ip-{portal}-iscsi-{IQN}-lun-1")


def _wait(what: str, check: Callable[[], bool], limit: float = LIMIT) -> None:
    deadline = time.monotonic() + limit
    while not check():
        if time.monotonic() > deadline:
            raise BenchError(f"timed out waiting for {what}")
        time.sleep(POLL)


def _timed(
    op: Op, action: Callable[[], None], marks: dict[str, Callable[[], bool]], done: str
) -> Op:
    """Run ``action`` in a thread; poll ``marks`` (name -> predicate, each recorded the
    first time it holds) until the mark ``done`` and the action's return are both
    recorded."""
    failed: list[BaseException] = []

    def run() -> None:
        try:
            action()
        except BaseException as exc:  # re-raised below as a BenchError
            failed.append(exc)

    start = time.perf_counter()
    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    while True:
        now = time.perf_counter() - start
        if "returned" not in op.marks and not worker.is_alive():
            op.marks["returned"] = now
            if failed:
                raise BenchError(f"{op.side} {op.kind}: {failed[0]}")
        for name, check in marks.items():
            if name not in op.marks and check():
                op.marks[name] = now
        if done in op.marks and "returned" in op.marks:
            break
        if now > LIMIT:
            raise BenchError(f"{op.side} {op.kind}: not done after {LIMIT:.0f} s ({op.marks})")
        time.sleep(POLL)
    op.total = max(op.marks["returned"], op.marks[done])
    return op


def command(argv: Sequence[str]) -> Callable[[], None]:
    """An action that runs ``argv`` and fails unless it exits 0."""

    def action() -> None:
        done = subprocess.run(argv, capture_output=True, timeout=LIMIT, check=False)
        if done.returncode != 0:
            text = (done.stdout + done.stderr).decode(errors="replace")
            raise BenchError(f"{' '.join(argv)} exited {done.returncode}:\n{text[-3000:]}")

    return action


class ApiSide:
    """Login and logout through iscsikitd from this process, as a script would."""

    def __init__(self, portal: str) -> None:
        from iscsikit.config.paths import resolve_paths
        from iscsikit.manager.sessions import SessionInfo, session_service
        from iscsikit.records import Records

        self.paths = resolve_paths()
        self.service = session_service(self)
        address, port = portal.rsplit(":", 1)
        self.node = Records(self.paths).nodes(target=IQN, address=address, port=int(port))[0]
        self.session: SessionInfo | None = None

    def login(self) -> None:
        self.session = self.service.login(self.node)

    def logout(self) -> None:
        assert self.session is not None
        self.service.logout(self.session)
        self.session = None


def login(side: str, action: Callable[[], None], portal: str, rnd: int) -> Op:
    link = _link(portal)
    marks = {"session": lambda: bool(_sessions()), "disk": lambda: bool(_disks()),
             "link": link.exists}  # fmt: skip
    return _timed(Op(side, "login", rnd), action, marks, "link")


def logout(side: str, action: Callable[[], None], portal: str, rnd: int) -> Op:
    link = _link(portal)
    marks = {"link_gone": lambda: not link.exists(), "disk_gone": lambda: not _disks(),
             "session_gone": lambda: not _sessions()}  # fmt: skip
    op = _timed(Op(side, "logout", rnd), action, marks, "link_gone")
    # Not timed: nothing of this side may be left when the other side starts.
    _wait("the session and its disk to go", lambda: not _sessions() and not _disks())
    return op


# -- the two sides ---------------------------------------------------------------------


def _console_script(name: str) -> list[str]:
    """``name`` as installed next to this interpreter (how a user runs it)."""
    script = Path(sys.executable).parent / name
    if script.is_file():
        return [str(script)]
    module = {"iscsikit-adm": "iscsikit", "iscsikitd": "iscsikit.daemon"}[name]
    return [sys.executable, "-m", module]


def _run(argv: Sequence[str], ok: Sequence[int] = (0,)) -> str:
    done = subprocess.run(argv, capture_output=True, text=True, timeout=LIMIT, check=False)
    if done.returncode not in ok:
        raise BenchError(f"{' '.join(argv)} exited {done.returncode}:\n{done.stderr[-3000:]}")
    return done.stdout


@contextmanager
def daemon(argv: Sequence[str], log: Path, ready: Callable[[], bool]) -> Iterator[None]:
    """A daemon in the foreground in its own session, its output in ``log``."""
    with open(log, "wb") as out:
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        _wait(f"{argv[0]} to answer", lambda: proc.poll() is None and ready(), 60)
        yield
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(30)


def _stats(values: Sequence[float]) -> dict[str, float]:
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def _startup(argv: Sequence[str], runs: int, ok: Sequence[int]) -> list[float]:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        _run(argv, ok)
        times.append(time.perf_counter() - start)
    return times


# -- the run ---------------------------------------------------------------------------


def prepare(work: Path) -> None:
    for module in ("iscsi_tcp", "sd_mod"):  # busybox modprobe: no autoload of sd_mod
        _run(["modprobe", module])
    Path("/etc/iscsi").mkdir(parents=True, exist_ok=True)
    Path("/etc/iscsi/initiatorname.iscsi").write_text(f"InitiatorName={INITIATOR}\n")
    for name in ("nodes", "send_targets"):
        subprocess.run(["rm", "-rf", f"/etc/iscsi/{name}"], check=True, timeout=LIMIT)
    repo = Path(__file__).resolve().parents[1]
    for package in ("iscsikit", "drivers"):  # written into the guest's overlay only
        compileall.compile_dir(repo / package, quiet=1)
    if _sessions():
        raise BenchError(f"kernel sessions exist before the run: {_sessions()}")


def bench(rounds: int, startup_runs: int, work: Path) -> dict[str, Any]:
    prepare(work)
    adm = _console_script("iscsikit-adm")
    with Tgtd(work / "tgtd", start_timeout=60) as tgtd:
        tgtd.add_target(IQN, luns=1, lun_size=32 << 20)
        portal = tgtd.portal
        node = ["-m", "node", "-T", IQN, "-p", portal]
        commands = {
            "open-iscsi": (["iscsiadm", *node, "-l"], ["iscsiadm", *node, "-u"]),
            "iscsikit": ([*adm, *node, "-l"], [*adm, *node, "-u"]),
        }
        session_cmd = {"open-iscsi": ["iscsiadm", "-m", "session"],
                       "iscsikit": [*adm, "-m", "session"]}  # fmt: skip
        ops: list[Op] = []
        if iscsid_listening():
            raise BenchError("iscsid is running already; iscsikitd must start without it")

        def iscsikitd_answers() -> bool:
            if not Path("/run/iscsikit/iscsikitd.sock").exists():
                return False
            return subprocess.run(
                [*adm, "-m", "session"], capture_output=True, check=False, timeout=LIMIT
            ).returncode in (0, 21)

        iscsikitd = daemon(
            [*_console_script("iscsikitd"), "-f"], work / "iscsikitd.log", iscsikitd_answers
        )
        with iscsikitd:
            _run([*adm, "-m", "discovery", "-t", "st", "-p", portal])
            api = ApiSide(portal)
            actions = {side: (command(up), command(down)) for side, (up, down) in commands.items()}
            actions["iscsikit API"] = (api.login, api.logout)
            with iscsid_process(work / "iscsid.log", timeout=LIMIT):
                _run(["iscsiadm", "-m", "discovery", "-t", "st", "-p", portal])
                for rnd in range(-1, rounds):
                    order = SIDES[rnd % len(SIDES) :] + SIDES[: rnd % len(SIDES)]
                    for side in order:
                        up, down = actions[side]
                        ops.append(login(side, up, portal, rnd))
                        ops.append(logout(side, down, portal, rnd))
                        shown = ops[-2], ops[-1]
                        print(f"round {rnd:2}: {side:12} login {shown[0].total:7.3f} s  "
                              f"logout {shown[1].total:7.3f} s", flush=True)  # fmt: skip
                startup: dict[str, list[float]] = {
                    "python3 -c pass": [],
                    **{s: [] for s in session_cmd},
                }
                for _ in range(startup_runs):
                    startup["python3 -c pass"] += _startup([sys.executable, "-c", "pass"], 1, (0,))
                    for side, argv in session_cmd.items():
                        startup[side] += _startup(argv, 1, (0, 21))
    return {
        "kernel": platform.release(),
        "python": platform.python_version(),
        "date": time.strftime("%Y-%m-%d"),
        "rounds": rounds,
        "poll_s": POLL,
        "commands": {side: {"login": up, "logout": down} for side, (up, down) in commands.items()}
        | {"iscsikit API": "session_service(paths).login(node) / .logout(session)"},
        "ops": [asdict(op) for op in ops],
        "startup_s": startup,
    }


def summary(result: dict[str, Any]) -> dict[str, Any]:
    """Median / min / max per side, operation and milestone over the timed rounds."""
    timed = [op for op in result["ops"] if op["round"] >= 0]
    out: dict[str, Any] = {}
    for kind in ("login", "logout"):
        out[kind] = {}
        for side in SIDES:
            mine = [op for op in timed if op["side"] == side and op["kind"] == kind]
            entry = {"total": _stats([op["total"] for op in mine])}
            for mark in mine[0]["marks"]:
                entry[mark] = _stats([op["marks"][mark] for op in mine])
            out[kind][side] = entry
        theirs = out[kind]["open-iscsi"]["total"]["median"]
        out[kind]["ratio"] = {s: out[kind][s]["total"]["median"] / theirs for s in SIDES[1:]}
    out["startup"] = {k: _stats(v) for k, v in result["startup_s"].items()}
    return out


def table(result: dict[str, Any], summ: dict[str, Any]) -> str:
    def fmt(s: dict[str, float]) -> str:
        return f"{s['median']:.3f} ({s['min']:.3f}-{s['max']:.3f})"

    lines = [
        f"kernel {result['kernel']}, Python {result['python']}, {result['rounds']} rounds, "
        f"{result['date']}; seconds, median (min-max)",
        "",
        "| operation | open-iscsi | iscsikit (CLI) | iscsikit API | ratio CLI | ratio API |",
        "|---|---|---|---|---|---|",
    ]
    for kind, what in (("login", "login (to by-path link)"),
                       ("logout", "logout (returned and link gone)")):  # fmt: skip
        s = summ[kind]
        cells = " | ".join(fmt(s[side]["total"]) for side in SIDES)
        ratios = " | ".join(f"{s['ratio'][side]:.2f}x" for side in SIDES[1:])
        lines.append(f"| {what} | {cells} | {ratios} |")
    lines += ["", "Milestones (median s after the command started):", ""]
    lines += ["| operation | milestone | " + " | ".join(SIDES) + " |", "|---|---|---|---|---|"]
    for kind in ("login", "logout"):
        marks = sorted(set(summ[kind]["iscsikit"]) - {"total"},
                       key=lambda m: summ[kind]["open-iscsi"][m]["median"])  # fmt: skip
        for mark in marks:
            row = " | ".join(f"{summ[kind][side][mark]['median']:.3f}" for side in SIDES)
            lines.append(f"| {kind} | {mark} | {row} |")
    lines += ["", "CLI start-up with its daemon up, no session (`-m session`), median (min-max):"]
    lines += [f"  {k}: {fmt(v)}" for k, v in summ["startup"].items()]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--startup-runs", type=int, default=10)
    parser.add_argument("--json", type=Path, help="default: $ISCSIKIT_VM_OUT/vm_login_latency.json")
    args = parser.parse_args(argv)
    if os.environ.get("ISCSIKIT_VM_GUEST") != "1":
        parser.error("runs only in the VM tier's guest: python3 -m iscsikit.testing.vm --run ...")
    target = args.json
    if target is None and os.environ.get("ISCSIKIT_VM_OUT"):
        target = Path(os.environ["ISCSIKIT_VM_OUT"]) / "vm_login_latency.json"
    with tempfile.TemporaryDirectory(prefix="latency-") as tmp:
        work = Path(tmp)
        try:
            result = bench(args.rounds, args.startup_runs, work)
        except (BenchError, IscsidError):
            for log in ("iscsikitd.log", "iscsid.log"):
                if (work / log).exists():
                    print(f"--- {log} (tail)\n{(work / log).read_text(errors='replace')[-3000:]}")
            raise
    summ = summary(result)
    result["summary"] = summ
    print(table(result, summ), flush=True)
    if target is not None:
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(json.dumps(result, indent=2) + "\n")
        print(f"wrote {target}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
