"""``iscsikit-perf``: libiscsi's ``iscsi-perf`` over iscsikit's data path.

Same command line and the same I/O pattern as iscsi-perf (libiscsi ``utils/iscsi-perf.c``),
so the two can be run side by side on the same LUN (``bench/datapath_bench.py`` does):

* READ(16) of ``-b`` blocks (default 8) with ``-m`` commands in flight (default 32);
* sequential: LBAs ascending from 0, wrapping at the end of the LUN, where the last
  command of a pass is shortened to fit;
* ``-r``: each command starts at a uniformly random LBA - at the LUN's block granularity
  (512 bytes on tgt), *not* aligned to the I/O size, exactly as iscsi-perf's
  ``rand() % num_blocks`` - and is shortened when it would run past the end;
* the rate is completions divided by the time from the first submission to the last
  completion (the in-flight tail is drained, not dropped), MB/s is MiB/s.

Additions: ``-w`` writes instead of reads (WRITE(16) of a per-slot random buffer, in
place: **destroys the LUN's data**), ``-n`` silences the once-a-second progress line,
``--json`` prints one JSON object with the figures plus the process CPU time.

This module owns the tool's argument parsing, its I/O loop and its report; it does not
own any protocol: the commands run over the session's
:class:`~iscsikit.plugin.transport.CommandChannel`.  Over the userspace TCP blocking
channel the loop reuses one :class:`~iscsikit.proto.task.ScsiTask` and one preallocated
buffer per slot and resubmits from the completion callback (no per-I/O generator, no
event loop); any other channel gets a new task per I/O.  Errors become exit codes in
:func:`iscsikit.cli.console.console_main`: bad arguments exit 7 (usage on stderr), an
:class:`~iscsikit.errors.IscsiError` exits with its ``.code``.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import os
import random
import resource
import signal
import struct
import sys
import time
from collections.abc import Callable, Sequence
from types import FrameType
from typing import IO, Any

import iscsikit
import iscsikit.proto
from iscsikit.cli.console import ArgumentParser, console_main
from iscsikit.errors import (
    ConnectionFailedError,
    InvalidParameterError,
    IscsiErr,
    IscsiError,
    LocalProtocolError,
)
from iscsikit.plugin.transport import CommandChannel
from iscsikit.proto.task import ScsiTask
from iscsikit.tools.latency import SUB_BITS, LatencyHistogram

PROG = "iscsikit-perf"
#: iscsi-perf's own initiator name, so tgt ACLs written for it admit us too.
DEFAULT_INITIATOR = "iqn.2010-11.libiscsi:iscsi-perf"
EXIT_USAGE = int(IscsiErr.INVAL)

# READ(16) / WRITE(16) (SBC-4 §5.14, §5.42): opcode, flags, LBA, blocks, group, control.
_RW16 = struct.Struct(">BBQIBB")
_READ16 = 0x88
_WRITE16 = 0x8A
_GOOD = 0
_TUR_ATTEMPTS = 8
_SECOND_NS = 1_000_000_000
#: The percentiles the report prints, and their JSON key suffixes.
PERCENTILES = ((50.0, "p50"), (99.0, "p99"), (99.9, "p999"))


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is no number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} must be at least 1")
    return value


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is no number of seconds") from None
    if not 0 <= value < 1e9:
        raise argparse.ArgumentTypeError(f"{text!r} must be 0 (until Ctrl-C) or more")
    return value


def _microseconds(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is no number of microseconds") from None
    if not 0 <= value <= 1_000_000:
        raise argparse.ArgumentTypeError(f"{text!r} must be 0 to 1000000")
    return value


def build_parser() -> ArgumentParser:
    parser = ArgumentParser(
        prog=PROG,
        description="Measure IOPS and throughput of one iSCSI LUN, like libiscsi's iscsi-perf.",
        epilog=(
            "URL: iscsi://[<user>[%<password>]@]<host>[:<port>]/<target-iqn>/<lun>"
            "[?header_digest=crc32c&data_digest=crc32c]. "
            "Unlike iscsi-perf, -n means no progress output (iscsi-perf: ignore errors)."
        ),
    )
    parser.add_argument(
        "-i", "--initiator-name", default=None, help=f"initiator IQN (default {DEFAULT_INITIATOR})"
    )
    parser.add_argument(
        "-m", "--max", dest="max_in_flight", type=_positive, default=32,
        help="commands in flight (queue depth; default 32)",
    )  # fmt: skip
    parser.add_argument(
        "-b", "--blocks", dest="blocks_per_io", type=_positive, default=8,
        help="logical blocks per command (default 8, i.e. 4 KiB on 512-byte blocks)",
    )  # fmt: skip
    parser.add_argument(
        "-t", "--runtime", type=_seconds, default=0.0,
        help="seconds to run (default 0: until Ctrl-C)",
    )  # fmt: skip
    parser.add_argument(
        "-r", "--random", action="store_true", help="random LBAs (at block granularity)"
    )
    parser.add_argument(
        "-w", "--write", action="store_true",
        help="WRITE instead of READ: overwrites the LUN with random data (DESTRUCTIVE)",
    )  # fmt: skip
    parser.add_argument(
        "-n", "--no-progress", action="store_true", help="no once-a-second progress line"
    )
    parser.add_argument(
        "--busy-poll", type=_microseconds, default=0, metavar="USEC",
        help="spin up to USEC µs on non-blocking receives before sleeping (default 0: never); "
        "trades CPU for latency at low queue depth (userspace TCP only)",
    )  # fmt: skip
    parser.add_argument("--json", action="store_true", help="print one JSON object, nothing else")
    parser.add_argument("--seed", type=int, default=None, help="random seed (default: from time)")
    parser.add_argument("url", help="iscsi:// URL of the LUN")
    return parser


# -- the I/O loop ----------------------------------------------------------------------------


class _Slot:
    """One command slot: its task, its buffer and when its current command was sent (ns)."""

    __slots__ = ("buffer", "sent", "task", "view")

    def __init__(self, size: int) -> None:
        self.buffer = bytearray(size)
        self.view = memoryview(self.buffer)
        self.sent = 0
        self.task: ScsiTask | None = None


class Workload:
    """The pattern and counters of one run; :meth:`run` drives a channel until done.

    Fast path (``reissue`` and ``turn`` present, as on the usertcp blocking channel):
    every slot's task is resubmitted from its own completion callback.  Otherwise a new
    :class:`ScsiTask` is made per command and ``channel.wait()`` drives the I/O.

    Times are integer nanoseconds from ``clock`` (:func:`time.perf_counter_ns`).  Each
    command's latency - from its submission to its completion callback - goes into
    ``latency`` (a :class:`~iscsikit.tools.latency.LatencyHistogram`) and its exact sum
    into ``latency_total``.  A resubmitted command's submission time is its slot's
    previous completion time: one clock read per I/O.
    """

    def __init__(
        self,
        *,
        lun: int,
        num_blocks: int,
        block_size: int,
        blocks_per_io: int,
        max_in_flight: int,
        random_lbas: bool,
        write: bool,
        runtime: float,
        rng: random.Random,
        clock: Callable[[], int] = time.perf_counter_ns,
        progress: Callable[[Workload, int], None] | None = None,
    ) -> None:
        self.lun = lun
        self.num_blocks = num_blocks
        self.block_size = block_size
        self.blocks_per_io = blocks_per_io
        self.max_in_flight = max_in_flight
        self.random = random_lbas
        self.write = write
        self.runtime = runtime
        self.clock = clock
        self.progress = progress
        self._rand = rng.random
        self._opcode = _WRITE16 if write else _READ16
        self.pos = 0
        self.ios = 0
        self.bytes = 0
        self.latency = LatencyHistogram()
        self.latency_total = 0
        self.in_flight = 0
        self.stopping = False
        self.failed: ScsiTask | None = None
        self.started = 0
        self.finished = 0
        self.end = 0
        self.next_progress = 0
        size = blocks_per_io * block_size
        self.slots = [_Slot(size) for _ in range(max_in_flight)]
        if write:
            for slot in self.slots:
                slot.buffer[:] = rng.randbytes(size)

    def _next(self) -> tuple[bytes, int]:
        """The next command's CDB and transfer length (iscsi-perf's fill_read_queue)."""
        num_blocks = self.num_blocks
        if self.random:
            pos = int(self._rand() * num_blocks)
        else:
            pos = self.pos
            if pos >= num_blocks:
                pos = 0
        blocks = min(num_blocks - pos, self.blocks_per_io)
        self.pos = pos + blocks
        return _RW16.pack(self._opcode, 0, pos, blocks, 0, 0), blocks * self.block_size

    def stop(self) -> None:
        """Submit nothing more; what is in flight still completes (SIGINT does this)."""
        self.stopping = True

    def run(self, channel: CommandChannel) -> None:
        """Run until the runtime is over (or :meth:`stop`) and nothing is in flight."""
        reissue = getattr(getattr(channel, "machine", None), "reissue", None)
        turn = getattr(channel, "turn", None)
        fast = reissue is not None and turn is not None
        clock = self.clock
        self.started = now = clock()
        self.end = now + round(self.runtime * _SECOND_NS) if self.runtime else 1 << 62
        self.next_progress = now + _SECOND_NS
        submit: Callable[[_Slot], None]
        if fast:
            assert reissue is not None
            submit = self._fast_submitter(reissue)
        else:
            submit = self._generic_submitter(channel)
        for slot in self.slots:
            if self.stopping:
                break
            self.in_flight += 1
            submit(slot)
        if fast:
            assert turn is not None
            while self.in_flight and not channel.closed:
                turn()
        else:
            while self.in_flight and not channel.closed:
                channel.wait()
        self.finished = clock()
        if self.in_flight and self.failed is None:
            raise ConnectionFailedError("the connection closed with commands in flight")

    def _failure(self, task: ScsiTask) -> None:
        if self.failed is None:
            self.failed = task
        self.stopping = True

    def _tick(self, now: int) -> None:
        self.next_progress = now + _SECOND_NS
        if self.progress is not None:
            self.progress(self, now)

    def _complete(self, slot: _Slot, task: ScsiTask) -> bool:
        """Account one completion; True when the slot should issue another command."""
        now = self.clock()
        self.in_flight -= 1
        if task.error is not None or task.status != _GOOD:
            self._failure(task)
            return False
        self.ios += 1
        self.bytes += task.expected_length
        latency = now - slot.sent
        self.latency_total += latency
        self.latency.record(latency)
        if now >= self.next_progress:
            self._tick(now)
        if now >= self.end:
            self.stopping = True
        if self.stopping:
            return False
        self.in_flight += 1
        slot.sent = now
        return True

    def _fast_submitter(self, reissue: Callable[..., None]) -> Callable[[_Slot], None]:
        # One closure per slot does _complete() and _next() inline: it runs once per I/O.
        lun = self.lun
        write = self.write
        clock = self.clock
        rand = self._rand
        pack = _RW16.pack
        opcode = self._opcode
        num_blocks = self.num_blocks
        blocks_per_io = self.blocks_per_io
        block_size = self.block_size
        random_lbas = self.random
        work = self
        counts = self.latency.counts
        sub_bits = SUB_BITS
        sub_shift = SUB_BITS + 1

        def first(slot: _Slot) -> None:
            def done(task: ScsiTask) -> None:
                now = clock()
                work.in_flight -= 1
                if task.error is not None or task.status:
                    work._failure(task)
                    return
                work.ios += 1
                work.bytes += task.expected_length
                latency = now - slot.sent
                work.latency_total += latency
                # LatencyHistogram.record, inlined: it runs once per I/O.
                shift = latency.bit_length() - sub_shift
                if shift > 0:
                    counts[(shift << sub_bits) + (latency >> shift)] += 1
                else:
                    counts[latency] += 1
                if now >= work.next_progress:
                    work._tick(now)
                if now >= work.end:
                    work.stopping = True
                if work.stopping:
                    return
                if random_lbas:
                    pos = int(rand() * num_blocks)
                else:
                    pos = work.pos
                    if pos >= num_blocks:
                        pos = 0
                blocks = num_blocks - pos
                blocks = min(blocks, blocks_per_io)
                work.pos = pos + blocks
                work.in_flight += 1
                slot.sent = now
                reissue(task, pack(opcode, 0, pos, blocks, 0, 0), blocks * block_size)

            cdb, length = self._next()
            if write:
                task = ScsiTask(cdb, lun=lun, write_data=slot.view, callback=done)
            else:
                task = ScsiTask(cdb, lun=lun, read_buffer=slot.view, callback=done)
            slot.task = task
            slot.sent = clock()
            reissue(task, cdb, length)

        return first

    def _generic_submitter(self, channel: CommandChannel) -> Callable[[_Slot], None]:
        lun = self.lun
        write = self.write
        next_command = self._next
        complete = self._complete

        def submit(slot: _Slot) -> None:
            cdb, length = next_command()
            view = slot.view[:length]

            def done(task: ScsiTask) -> None:
                if complete(slot, task):
                    submit(slot)

            if write:
                task = ScsiTask(cdb, lun=lun, write_data=view, callback=done)
            else:
                task = ScsiTask(cdb, lun=lun, read_buffer=view, callback=done)
            slot.task = task
            slot.sent = self.clock()
            channel.submit(task)

        return submit

    # -- figures -----------------------------------------------------------------------------

    @property
    def seconds(self) -> float:
        return max((self.finished - self.started) / _SECOND_NS, 1e-9)

    @property
    def iops(self) -> float:
        return self.ios / self.seconds

    def mib_per_s(self) -> float:
        return self.bytes / self.seconds / (1 << 20)


# -- set-up: login, unit attention, capacity ------------------------------------------------


def _run_command(channel: CommandChannel, task: ScsiTask) -> ScsiTask:
    channel.execute(task)
    if task.error is not None:
        raise task.error
    return task


def _clear_unit_attention(channel: CommandChannel, lun: int) -> None:
    """TEST UNIT READY until GOOD: the first command after login gets a UNIT ATTENTION."""
    for _ in range(_TUR_ATTEMPTS):
        task = _run_command(channel, ScsiTask(bytes(6), lun=lun))
        if task.status == _GOOD:
            return
    raise LocalProtocolError(f"LUN {lun} is not ready: TEST UNIT READY status {task.status}")


def _capacity(channel: CommandChannel, lun: int) -> tuple[int, int]:
    """(number of blocks, block size) from READ CAPACITY(16)."""
    from iscsikit.scsi.capacity import parse_read_capacity16

    buffer = bytearray(32)
    cdb = struct.pack(">BBQIBB", 0x9E, 0x10, 0, len(buffer), 0, 0)
    task = _run_command(channel, ScsiTask(cdb, lun=lun, read_buffer=buffer))
    if task.status != _GOOD:
        raise LocalProtocolError(f"READ CAPACITY(16) failed with status {task.status}")
    capacity = parse_read_capacity16(bytes(buffer[: task.received]))
    return capacity.last_lba + 1, capacity.block_size


# -- output ----------------------------------------------------------------------------------


def _mb(iops: float, io_bytes: int) -> int:
    return int(iops * io_bytes) >> 20


def _us(nanoseconds: float | None) -> float | None:
    return None if nanoseconds is None else round(nanoseconds / 1000, 2)


class _Progress:
    """iscsi-perf's ``\\r``-rewritten status line, once a second.

    ``live`` (stdout is a terminal) adds the p99 latency so far, pads each line to the
    width of the one before rather than by a fixed amount, and :meth:`clear` blanks the
    line at the end; otherwise (a pipe, a file) the lines are iscsi-perf's, left in place.
    """

    def __init__(self, out: IO[str], runtime: float, *, live: bool = False) -> None:
        self.out = out
        self.runtime = runtime
        self.live = live
        self.last_time = 0
        self.last_ios = 0
        self.width = 0

    def __call__(self, work: Workload, now: int) -> None:
        io_bytes = work.blocks_per_io * work.block_size
        elapsed = (now - work.started) / _SECOND_NS
        left = int(self.runtime - elapsed) if self.runtime else int(elapsed)
        last_time = self.last_time or work.started
        current = (work.ios - self.last_ios) / max((now - last_time) / _SECOND_NS, 1e-9)
        average = work.ios / max(elapsed, 1e-9)
        line = (
            f"{left // 3600:02d}:{left % 3600 // 60:02d}:{left % 60:02d} - "
            f"lba {work.pos}, iops current {int(current)} ({_mb(current, io_bytes)} MB/s), "
            f"iops average {int(average)} ({_mb(average, io_bytes)} MB/s)"
        )
        if self.live:
            p99 = _us(work.latency.percentile(99.0))
            line += f", p99 {p99:.1f} usec" if p99 is not None else ""
            self.out.write("\r" + line.ljust(self.width))
            self.width = len(line)
        else:
            self.out.write(f"\r{line}         ")
        self.out.flush()
        self.last_time = now
        self.last_ios = work.ios

    def clear(self) -> None:
        """End the progress output: blank the live line, or a bare ``\\r`` as before."""
        if self.live and self.width:
            self.out.write("\r" + " " * self.width + "\r")
        elif not self.live:
            self.out.write("\r")


def latency_figures(work: Workload) -> dict[str, float | None]:
    """p50 / p99 / p99.9 (within 1 %), max (within 1 %) and mean (exact) in µs."""
    values = work.latency.percentiles([p for p, _ in PERCENTILES])
    figures = {f"latency_us_{key}": _us(v) for (_, key), v in zip(PERCENTILES, values, strict=True)}
    figures["latency_us_max"] = _us(work.latency.max())
    figures["latency_us_avg"] = _us(work.latency_total / work.ios) if work.ios else None
    return figures


def latency_line(work: Workload) -> str:
    """The report's latency line (after iscsi-perf's own lines)."""
    f = latency_figures(work)
    if f["latency_us_avg"] is None:
        return "latency (usec): no command completed"
    return (
        f"latency (usec): p50 {f['latency_us_p50']:.1f}, p99 {f['latency_us_p99']:.1f}, "
        f"p99.9 {f['latency_us_p999']:.1f}, max {f['latency_us_max']:.1f}, "
        f"mean {f['latency_us_avg']:.1f}"
    )


def _cpu() -> tuple[float, float]:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime, usage.ru_stime


def report(
    work: Workload,
    *,
    cpu_user: float,
    cpu_sys: float,
    url: str,
    header_digest: bool,
    data_digest: bool,
    busy_poll_us: int = 0,
) -> dict[str, Any]:
    """The JSON object ``--json`` prints."""
    cpu = cpu_user + cpu_sys
    return {
        "version": iscsikit.__version__,
        "compiled": iscsikit.proto.compiled(),
        "tool": PROG,
        "url": url,
        "write": work.write,
        "random": work.random,
        "queue_depth": work.max_in_flight,
        "blocks_per_io": work.blocks_per_io,
        "lun_block_size": work.block_size,
        "block_size_bytes": work.blocks_per_io * work.block_size,
        "header_digest": header_digest,
        "data_digest": data_digest,
        "busy_poll_us": busy_poll_us,
        "seconds": round(work.seconds, 6),
        "ios": work.ios,
        "bytes": work.bytes,
        "iops": round(work.iops, 1),
        "mib_per_s": round(work.mib_per_s(), 2),
        **latency_figures(work),
        "cpu_seconds": round(cpu, 4),
        "cpu_user_seconds": round(cpu_user, 4),
        "cpu_sys_seconds": round(cpu_sys, 4),
        "cpu_us_per_io": round(cpu / work.ios * 1e6, 3) if work.ios else None,
    }


# -- main ------------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    """Run the tool; returns the exit code (0, 7 for bad arguments, else the error's code)."""
    return console_main(PROG, lambda: _run(build_parser().parse_args(argv), sys.stdout))


def _run(args: argparse.Namespace, out: IO[str]) -> int:
    from iscsikit.lun.lun import login_for_url
    from iscsikit.lun.url import parse_iscsi_url

    url = parse_iscsi_url(args.url)
    quiet = args.json
    say: Callable[[str], None] = (lambda _text: None) if quiet else (lambda t: print(t, file=out))
    say(f"{PROG} version {iscsikit.__version__}\n")
    session = login_for_url(
        url,
        initiator_name=args.initiator_name or url.initiator_name or DEFAULT_INITIATOR,
        queue_depth=args.max_in_flight,
    )
    try:
        say(f"connected to {url}")
        # The raw channel, not the session's recovering one: iscsi-perf measures a
        # session that does not reconnect, and the fast loop needs the driver's channel.
        transport = session.transport_session
        assert transport is not None  # set by a successful login
        channel = transport.command_channel()
        if args.busy_poll:
            if not hasattr(channel, "busy_poll"):
                raise InvalidParameterError(
                    f"--busy-poll: the {type(channel).__name__} data path cannot busy-poll"
                )
            channel.busy_poll = args.busy_poll / 1e6
        _clear_unit_attention(channel, url.lun)
        num_blocks, block_size = _capacity(channel, url.lun)
        say(
            f"capacity is {num_blocks} blocks or {num_blocks * block_size} byte "
            f"({(num_blocks * block_size) >> 20} MB)"
        )
        say(
            f"performing {'random' if args.random else 'sequential'} "
            f"{'WRITE' if args.write else 'READ'} with {args.max_in_flight} parallel requests\n"
            f"fixed transfer size of {args.blocks_per_io} blocks "
            f"({args.blocks_per_io * block_size} byte)"
        )
        say(
            f"will run for {args.runtime:g} seconds.\n"
            if args.runtime
            else "infinite runtime - press CTRL-C to abort.\n"
        )
        progress = None
        if not (quiet or args.no_progress):
            progress = _Progress(out, args.runtime, live=_is_tty(out))
        seed = args.seed if args.seed is not None else time.time_ns() ^ os.getpid()
        work = Workload(
            lun=url.lun,
            num_blocks=num_blocks,
            block_size=block_size,
            blocks_per_io=args.blocks_per_io,
            max_in_flight=args.max_in_flight,
            random_lbas=args.random,
            write=args.write,
            runtime=args.runtime,
            rng=random.Random(seed),
            progress=progress,
        )

        def stop(_signum: int, _frame: FrameType | None) -> None:
            work.stop()

        previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGINT, signal.SIGTERM)}
        # The loop allocates only short-lived, acyclic objects (header tuples, views):
        # the cyclic garbage collector has nothing to find and would only rescan.
        gc.collect()
        gc.freeze()
        gc.disable()
        user0, sys0 = _cpu()
        try:
            work.run(channel)
        finally:
            gc.enable()
            gc.unfreeze()
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        user1, sys1 = _cpu()
        if work.failed is not None:
            task = work.failed
            if task.error is not None:
                raise task.error
            sense = task.sense_data.hex()
            raise LocalProtocolError(
                f"command 0x{task.cdb[0]:02x} failed with SCSI status 0x{task.status:02x}"
                + (f" (sense {sense})" if sense else "")
            )
        io_bytes = args.blocks_per_io * block_size
        if quiet:
            params = getattr(session.transport_session, "params", {})
            figures = report(
                work,
                cpu_user=user1 - user0,
                cpu_sys=sys1 - sys0,
                url=str(url),
                header_digest=_param(params, "HeaderDigest") == "CRC32C",
                data_digest=_param(params, "DataDigest") == "CRC32C",
                busy_poll_us=args.busy_poll,
            )
            out.write(json.dumps(figures) + "\n")
        else:
            if progress is not None:
                progress.clear()
            out.write(
                f"iops average {int(work.iops)} ({_mb(work.iops, io_bytes)} MB/s)"
                f"{' ' * 56}\n\nfinished.\n{latency_line(work)}\n"
            )
        out.flush()
    except BaseException:
        with contextlib.suppress(IscsiError):
            session.logout()
        raise
    session.logout()
    return 0


def _is_tty(out: IO[str]) -> bool:
    try:
        return out.isatty()
    except (AttributeError, ValueError):  # no isatty, or closed
        return False


def _param(params: object, key: str) -> str | None:
    if isinstance(params, dict):
        value = params.get(key)
        return value if isinstance(value, str) else None
    return None


if __name__ == "__main__":
    sys.exit(main())
