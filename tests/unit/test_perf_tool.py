"""iscsikit-perf without a target: argument parsing, exit codes, the I/O pattern, the JSON."""

from __future__ import annotations

import io
import json
import random
import struct
from collections.abc import Callable

import pytest

from iscsikit.plugin.transport import CommandChannel
from iscsikit.proto.task import ScsiTask, TmfTask
from iscsikit.tools import perf

URL = "iscsi://127.0.0.1:3260/iqn.2024-01.test:t/1"


@pytest.mark.parametrize(
    "argv",
    [
        [],
        ["-m", "0", URL],
        ["-b", "x", URL],
        ["-t", "-1", URL],
        ["--bogus", URL],
        [URL, "extra"],
    ],
)
def test_bad_arguments_exit_7_with_usage_on_stderr(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert perf.main(argv) == 7
    captured = capsys.readouterr()
    assert captured.err.startswith("usage: iscsikit-perf")
    assert captured.out == ""


def test_bad_url_exits_7(capsys: pytest.CaptureFixture[str]) -> None:
    assert perf.main(["http://example.com/x"]) == 7
    assert "invalid iSCSI URL" in capsys.readouterr().err


def test_defaults_are_iscsi_perfs() -> None:
    args = perf.build_parser().parse_args([URL])
    assert (args.max_in_flight, args.blocks_per_io, args.runtime) == (32, 8, 0.0)
    assert not args.random and not args.write and not args.json


def test_help_warns_that_writes_destroy_data() -> None:
    assert "DESTRUCTIVE" in perf.build_parser().format_help()


class FakeChannel(CommandChannel):
    """Completes every command at once with GOOD status; reads get their LBA's pattern."""

    def __init__(self, status: int = 0) -> None:
        self.status = status
        self.pending: list[ScsiTask] = []
        self.commands: list[tuple[int, int, int]] = []

    def submit(self, task: ScsiTask) -> None:
        opcode, _, lba, blocks = struct.unpack_from(">BBQI", task.cdb)
        self.commands.append((opcode, lba, blocks))
        self.pending.append(task)

    def wait(self, task: ScsiTask | None = None) -> None:
        pending, self.pending = self.pending, []
        for t in pending:
            t.status = self.status
            t.received = t.expected_length
            t.done = True
            if t.callback is not None:
                t.callback(t)

    def task_management(self, task: TmfTask) -> TmfTask:
        raise NotImplementedError

    @property
    def closed(self) -> bool:
        return False


def workload(**kw: object) -> perf.Workload:
    options: dict[str, object] = {
        "lun": 1,
        "num_blocks": 100,
        "block_size": 512,
        "blocks_per_io": 8,
        "max_in_flight": 4,
        "random_lbas": False,
        "write": False,
        "rng": random.Random(1),
    }
    options.update(kw)
    ios = [0]
    limit = int(options.pop("limit", 40))  # type: ignore[call-overload]

    def clock() -> int:  # nanoseconds, as time.perf_counter_ns
        ios[0] += 1
        return 0 if ios[0] < limit else 1000 * 10**9

    return perf.Workload(clock=clock, runtime=1.0, **options)  # type: ignore[arg-type]


def test_sequential_wraps_and_shortens_the_last_command_like_iscsi_perf() -> None:
    channel = FakeChannel()
    work = workload()
    work.run(channel)
    lbas = [(lba, blocks) for _, lba, blocks in channel.commands]
    assert lbas[:14] == [(i * 8, 8) for i in range(12)] + [(96, 4), (0, 8)]
    assert all(op == 0x88 for op, _, _ in channel.commands)
    assert work.ios == len(channel.commands) and work.in_flight == 0


def test_random_lbas_are_at_block_granularity_and_stay_inside_the_lun() -> None:
    channel = FakeChannel()
    work = workload(random_lbas=True, num_blocks=1000, limit=400)
    work.run(channel)
    lbas = [lba for _, lba, _ in channel.commands]
    assert any(lba % 8 for lba in lbas)  # not aligned to the I/O size
    assert all(lba + blocks <= 1000 for _, lba, blocks in channel.commands)


def test_writes_use_write16_and_random_data() -> None:
    channel = FakeChannel()
    work = workload(write=True)
    work.run(channel)
    assert {op for op, _, _ in channel.commands} == {0x8A}
    assert len({bytes(slot.buffer) for slot in work.slots}) == len(work.slots)


def test_a_failed_command_stops_the_run() -> None:
    work = workload()
    work.run(FakeChannel(status=2))  # CHECK CONDITION
    assert work.failed is not None and work.ios == 0


def test_report_has_the_json_fields() -> None:
    work = workload()
    work.run(FakeChannel())
    figures = perf.report(
        work, cpu_user=0.5, cpu_sys=0.25, url=URL, header_digest=False, data_digest=False
    )
    text = json.dumps(figures)
    data = json.loads(text)
    for key in (
        "iops", "mib_per_s", "cpu_seconds", "seconds", "ios", "bytes", "queue_depth",
        "block_size_bytes", "random", "write", "latency_us_avg", "version",
        "latency_us_p50", "latency_us_p99", "latency_us_p999", "latency_us_max",
    ):  # fmt: skip
        assert key in data, key
    assert data["cpu_seconds"] == 0.75
    assert data["ios"] == work.ios and data["bytes"] == work.bytes
    assert data["block_size_bytes"] == 4096 and data["queue_depth"] == 4
    assert data["iops"] == round(work.ios / work.seconds, 1)


class FastFakeChannel(FakeChannel):
    """The usertcp channel's fast-path surface: ``machine.reissue`` and ``turn``."""

    def __init__(self) -> None:
        super().__init__()
        self.machine = self

    def reissue(self, task: ScsiTask, cdb: bytes, length: int) -> None:
        task.cdb = cdb
        task.expected_length = length
        self.submit(task)

    def turn(self) -> None:
        self.wait()


def stepping_clock(step: int, stop_after: int) -> Callable[[], int]:
    """A nanosecond clock that advances ``step`` per read, jumping far ahead at the end."""
    reads = [0]

    def clock() -> int:
        reads[0] += 1
        return reads[0] * step + (10**15 if reads[0] >= stop_after else 0)

    return clock


def assert_histogram_matches(work: perf.Workload) -> None:
    from iscsikit.tools.latency import bucket_bounds

    histogram = work.latency
    assert histogram.total == work.ios > 0
    used = [(bucket_bounds(i), n) for i, n in enumerate(histogram.counts) if n]
    low = sum(lo * n for (lo, _), n in used)
    high = sum(hi * n for (_, hi), n in used)
    assert low <= work.latency_total <= high


@pytest.mark.parametrize("channel_type", [FakeChannel, FastFakeChannel])
def test_every_completion_lands_in_the_latency_histogram(
    channel_type: type[FakeChannel],
) -> None:
    channel = channel_type()
    work = perf.Workload(
        lun=1, num_blocks=1000, block_size=512, blocks_per_io=8, max_in_flight=4,
        random_lbas=True, write=False, rng=random.Random(3), runtime=1.0,
        clock=stepping_clock(37_000, 500),
    )  # fmt: skip
    work.run(channel)
    assert_histogram_matches(work)
    figures = perf.latency_figures(work)
    p50, p99, p999 = (figures[k] for k in ("latency_us_p50", "latency_us_p99", "latency_us_p999"))
    top, mean = figures["latency_us_max"], figures["latency_us_avg"]
    assert p50 is not None and p99 is not None and p999 is not None and top is not None
    assert mean is not None and 37.0 <= p50 <= p99 <= p999 <= top
    assert mean == pytest.approx(work.latency_total / work.ios / 1000, abs=0.01)
    line = perf.latency_line(work)
    assert line.startswith("latency (usec): p50 ") and f"max {top:.1f}" in line


def test_no_completion_means_no_latency_figures() -> None:
    work = workload()
    work.run(FakeChannel(status=2))
    assert perf.latency_figures(work)["latency_us_p99"] is None
    assert perf.latency_line(work) == "latency (usec): no command completed"


def test_live_progress_shows_p99_and_is_cleared_pipe_progress_is_iscsi_perfs() -> None:
    work = workload()
    work.run(FakeChannel())
    live_out, pipe_out = io.StringIO(), io.StringIO()
    live = perf._Progress(live_out, 10.0, live=True)
    pipe = perf._Progress(pipe_out, 10.0)
    for progress in (live, pipe):
        progress(work, work.started + 10**9)
        progress(work, work.started + 2 * 10**9)
        progress.clear()
    text = live_out.getvalue()
    lines = text.split("\r")[1:-1]  # the text starts and ends with a \r
    assert len(lines) == 3 and all(", p99 " in line for line in lines[:2])
    assert lines[0].startswith("00:00:09 - lba ") and lines[1].startswith("00:00:08 - lba ")
    assert lines[2] == " " * len(lines[1].rstrip()) and text.endswith("\r")
    piped = pipe_out.getvalue()
    assert "p99" not in piped and piped.endswith("         \r")
    assert piped.count("\r") == 3


def test_login_failure_exits_with_the_errors_code(capsys: pytest.CaptureFixture[str]) -> None:
    # Nothing listens on port 1: a transport error (code 4), one line on stderr.
    code = perf.main(["-t", "1", "iscsi://127.0.0.1:1/iqn.2024-01.test:none/1"])
    err = capsys.readouterr().err
    assert code not in (0, 7)
    assert err.startswith("iscsikit-perf: ") and err.count("\n") == 1


# -- the data path the fast loop relies on: reissue() and get_buffers() -------------------------

_DATA_IN = struct.Struct(">BBBBIQIIIIIIII")


def _data_in(itt: int, statsn: int, cmdsn: int, payload: bytes, digests: bool) -> bytes:
    from iscsikit.proto.digest import digest_bytes

    fields = (0x25, 0x81, 0, 0, len(payload), 0, itt, 0xFFFFFFFF, statsn, cmdsn, cmdsn + 64)
    header = _DATA_IN.pack(*fields, 0, 0, 0)
    padded = payload + bytes(-len(payload) & 3)
    if not digests:
        return header + padded
    return header + digest_bytes(header) + padded + digest_bytes(padded)


@pytest.mark.parametrize("digests", [False, True])
@pytest.mark.parametrize("size", [4096, 65536, 65536 + 2])
@pytest.mark.parametrize("chunk", [7, 4096, 65590, 70000, 1 << 20])
def test_reissued_reads_land_byte_exact_through_scatter_receives(
    size: int, chunk: int, digests: bool
) -> None:
    from iscsikit.proto.ffp import ConnectionParams, FullFeatureConnection
    from iscsikit.proto.session import SessionState

    params = ConnectionParams(
        max_recv_data_segment_length=1 << 20, header_digest=digests, data_digest=digests
    )
    state = SessionState(cmdsn=1, expcmdsn=1, maxcmdsn=64, expstatsn=1)
    conn = FullFeatureConnection(params, state, queue_depth=4)
    rng = random.Random(size ^ chunk ^ digests)
    seen: list[bytes] = []
    expected: dict[int, bytes] = {}

    def done(task: ScsiTask) -> None:
        assert task.good, (task.error, task.status)
        view = task.read_view
        assert view is not None
        seen.append(bytes(view[: task.expected_length]))
        if len(seen) <= 8:
            conn.reissue(task, bytes(16), size)

    tasks = [ScsiTask(bytes(16), read_buffer=bytearray(size + 8), callback=done) for _ in range(4)]
    for task in tasks:
        conn.reissue(task, bytes(16), size)
    statsn = 0
    while conn.outstanding:
        conn.data_to_send()
        stream = bytearray()
        for itt in sorted(conn._tasks):
            statsn += 1
            payload = rng.randbytes(size)
            expected[len(expected)] = payload
            stream += _data_in(itt, statsn, state.cmdsn, payload, digests)
        view = memoryview(stream)
        while view:
            buffers = conn.get_buffers()
            n = 0
            for buf in buffers:  # a readv of at most `chunk` bytes
                take = min(len(buf), len(view) - n, chunk - n)
                buf[:take] = view[n : n + take]
                n += take
                if take < len(buf):
                    break
            view = view[n:]
            conn.buffer_updated(n)
    assert sorted(seen) == sorted(expected.values())
    assert len(seen) == 12
