"""A hostile target in the middle of I/O: every misbehaviour fails the command, in time.

Each case runs a :class:`~iscsikit.testing.hostile.ScriptedTarget` that logs in properly
and then breaks the protocol while a read is in flight: Data-In for the wrong task, past
the buffer, out of sequence, a bad data digest, a residual that does not add up, a reset
in the middle of a PDU, or silence.  The initiator is the real one: ``iscsikit.login``
and the session's :class:`BlockingChannel`, and ``iscsikit.open_lun`` where the SCSI
probe can be faked.  Every case asserts the error type and text, a bound on the time it
took, what became of the session (dropped, or still good for the next command), and
that the read was never reported good.

Every case runs twice: with the channel sleeping in ``recv`` as usual, and with
``busy_poll`` on (non-blocking receives spun before sleeping), so the spinning receive
path meets the same hostile peers.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest

import iscsikit
from iscsikit.errors import (
    ConnectionFailedError,
    IscsiError,
    PduTimeoutError,
    RemoteProtocolError,
)

# The initiator's own API (timers, the task it runs), not the codec: the target's PDUs
# are rawpdu's.
from iscsikit.proto.ffp import Timers
from iscsikit.proto.task import ScsiTask
from iscsikit.scsi import cdb as C
from iscsikit.testing.hostile import (
    PeerClosed,
    ScriptedTarget,
    reset_connection,
    silent,
)
from iscsikit.testing.rawpdu import TMF_FUNCTION_COMPLETE, ScsiCommand, TaskMgmtRequest
from iscsikit.testing.scripted import BLOCK, BLOCKS, Peer, Script, disk_bytes, logged_in

pytestmark = pytest.mark.integration

INITIATOR = "iqn.2024-01.test.iscsikit:hostile-io"
TARGET = "iqn.2024-01.test.iscsikit:disk"
TIMERS = Timers(
    noop_out_interval=0.5,
    noop_out_timeout=0.5,
    command_timeout=1,
    abort_timeout=0.5,
    lu_reset_timeout=0.5,
    tgt_reset_timeout=0.5,
    tick=0.1,
)
#: Upper bound for a failure that needs no timer (the target said something wrong).
QUICK = 2.0
#: Upper bound for failures found by keepalive / command timeout + TMF escalation.
SLOW = 5.0
FILL = 0xEE


#: ``BlockingChannel.busy_poll`` for the current test (see the ``receive_mode`` fixture).
_busy_poll = [0.0]


@pytest.fixture(autouse=True, params=[0.0, 0.002], ids=["sleeping", "busy-poll"])
def receive_mode(request: pytest.FixtureRequest) -> Iterator[None]:
    _busy_poll[0] = request.param
    yield
    _busy_poll[0] = 0.0


def is_read(cmd: ScsiCommand) -> bool:
    return cmd.cdb[0] in (0x28, 0x88)


# == the initiator side ====================================================================


@contextmanager
def session(script: Script, *, digests: bool = False) -> Iterator[Any]:
    with ScriptedTarget(logged_in(script, digests=digests)) as target:
        digest = "CRC32C" if digests else "None"
        s = iscsikit.login(
            target.portal, TARGET, initiator_name=INITIATOR, timeout=5, retries=0,
            timers=TIMERS, header_digest=digest, data_digest=digest,
        )  # fmt: skip
        s.transport_session.command_channel().busy_poll = _busy_poll[0]
        try:
            yield s
        finally:
            s.transport_session.close()
        assert target.errors == []


def read10(blocks: int = 8) -> ScsiTask:
    return ScsiTask(C.read10(0, blocks), lun=0, read_buffer=bytearray([FILL]) * (blocks * BLOCK))


def run(channel: Any, task: ScsiTask) -> float:
    started = time.monotonic()
    channel.execute(task)
    return time.monotonic() - started


def assert_failed(task: ScsiTask, cls: type[IscsiError], *words: str) -> None:
    assert task.done
    assert isinstance(task.error, cls), repr(task.error)
    for word in words:
        assert word in str(task.error), (word, str(task.error))
    assert not task.good


def hostile_read(respond: Callable[[Peer, ScsiCommand], None]) -> Script:
    """Answer the first READ with ``respond``, then keep serving honestly."""

    def script(peer: Peer) -> None:
        cmd = peer.command()
        respond(peer, cmd)
        peer.serve()

    return script


# == protocol violations: the connection is dropped at once ================================


def both_residuals(raw: bytes) -> bytes:
    """The Data-In with both O and U set (the codec refuses to encode that)."""
    return raw[:1] + bytes([raw[1] | 0x06]) + raw[2:]


VIOLATIONS: dict[str, tuple[Callable[[Peer, ScsiCommand], None], str]] = {
    "wrong-itt": (
        lambda p, c: p.send(p.data_in(c.itt ^ 0x100, disk_bytes(0, 4096), status=0)),
        "which is no outstanding read",
    ),
    "first-pdu-mid-buffer": (
        lambda p, c: p.send(p.data_in(c.itt, disk_bytes(0, 8192)[:4096], offset=2048)),
        "offset 2048 where 0 was due",
    ),
    "past-the-end": (
        lambda p, c: p.send(
            p.data_in(c.itt, disk_bytes(0, 4096)),
            p.data_in(c.itt, disk_bytes(4096, 1024), offset=4096, datasn=1, status=0),
        ),
        "runs beyond the 4096-byte buffer",
    ),
    "datasn-gap": (
        lambda p, c: p.send(
            p.data_in(c.itt, disk_bytes(0, 2048)),
            p.data_in(c.itt, disk_bytes(2048, 2048), offset=2048, datasn=2, status=0),
        ),
        "DataSN 2 where 1 was due",
    ),
    "offset-gap": (
        lambda p, c: p.send(
            p.data_in(c.itt, disk_bytes(0, 1024)),
            p.data_in(c.itt, disk_bytes(2048, 2048), offset=2048, datasn=1, status=0),
        ),
        "offset 2048 where 1024 was due",
    ),
    "both-residuals": (
        lambda p, c: p.send(
            both_residuals(p.encode(p.data_in(c.itt, disk_bytes(0, 4096), status=0)))
        ),
        "both residual overflow and underflow",
    ),
}


@pytest.mark.parametrize("case", list(VIOLATIONS))
def test_protocol_violation_mid_read_drops_the_session(case: str) -> None:
    respond, message = VIOLATIONS[case]
    with session(hostile_read(respond)) as s:
        channel = s.transport_session.command_channel()
        task = read10()
        elapsed = run(channel, task)
        if case == "both-residuals":
            # A bad status for one task: that task fails, the connection lives on.
            assert_failed(task, RemoteProtocolError, message)
            assert not channel.closed
        else:
            assert_failed(task, ConnectionFailedError, message)
            assert channel.closed
            with pytest.raises(ConnectionFailedError):
                channel.execute(read10())
        assert elapsed < QUICK, f"took {elapsed:.2f} s"
        assert task.read_view is not None


# == inconsistent status: the task fails, the session stays usable ========================

RESIDUALS: dict[str, tuple[Callable[[Peer, ScsiCommand], None], str]] = {
    "short-without-underflow": (
        lambda p, c: p.send(p.data_in(c.itt, disk_bytes(0, 1024), status=0)),
        "the target reported 4096 bytes read but sent 1024",
    ),
    "underflow-too-small": (
        lambda p, c: p.send(
            p.data_in(c.itt, disk_bytes(0, 1024), status=0, underflow=True, residual_count=512)
        ),
        "the target reported 3584 bytes read but sent 1024",
    ),
    "underflow-beyond-length": (
        lambda p, c: p.send(p.response(c.itt, underflow=True, residual_count=8192)),
        "residual underflow 8192 exceeds the expected length 4096",
    ),
    "target-failure": (
        lambda p, c: p.send(p.response(c.itt, response=1)),
        "target failure (iSCSI response 0x01)",
    ),
}


@pytest.mark.parametrize("case", list(RESIDUALS))
def test_inconsistent_status_fails_the_read_and_the_session_lives_on(case: str) -> None:
    respond, message = RESIDUALS[case]
    with session(hostile_read(respond)) as s:
        channel = s.transport_session.command_channel()
        task = read10()
        elapsed = run(channel, task)
        assert_failed(task, RemoteProtocolError, message)
        assert elapsed < QUICK
        assert not channel.closed
        good = read10()
        channel.execute(good)
        assert good.good and bytes(good.read_view or b"") == disk_bytes(0, 4096)


def test_residual_overflow_is_reported_not_an_error() -> None:
    def overflow(p: Peer, c: ScsiCommand) -> None:
        p.send(p.data_in(c.itt, disk_bytes(0, 4096), status=0, overflow=True, residual_count=512))

    with session(hostile_read(overflow)) as s:
        channel = s.transport_session.command_channel()
        task = read10()
        run(channel, task)
        assert task.good and task.residual == -512 and task.transferred == 4096
        assert bytes(task.read_view or b"") == disk_bytes(0, 4096)


# == digests, resets, silence ==============================================================


def test_bad_data_digest_in_data_in_drops_the_session() -> None:
    def corrupt(p: Peer, c: ScsiCommand) -> None:
        raw = bytearray(p.encode(p.data_in(c.itt, disk_bytes(0, 4096), status=0)))
        raw[-1] ^= 0x80  # the data digest
        p.send(bytes(raw))

    with session(hostile_read(corrupt), digests=True) as s:
        assert s.params["DataDigest"] == "CRC32C" and s.params["HeaderDigest"] == "CRC32C"
        channel = s.transport_session.command_channel()
        task = read10()
        elapsed = run(channel, task)
        assert_failed(task, ConnectionFailedError, "data digest error in Data-In")
        assert elapsed < QUICK and channel.closed


def serve_all(peer: Peer) -> None:
    peer.serve()


def test_good_reads_with_digests() -> None:
    with session(serve_all, digests=True) as s:
        channel = s.transport_session.command_channel()
        for _ in range(3):
            task = read10()
            channel.execute(task)
            assert task.good and bytes(task.read_view or b"") == disk_bytes(0, 4096)


def test_connection_reset_mid_transfer() -> None:
    def half_then_reset(p: Peer, c: ScsiCommand) -> None:
        raw = p.encode(p.data_in(c.itt, disk_bytes(0, 4096), status=0))
        reset_connection(p.conn, raw[:2000])
        raise PeerClosed("reset sent")

    with session(hostile_read(half_then_reset)) as s:
        channel = s.transport_session.command_channel()
        task = read10()
        elapsed = run(channel, task)
        assert_failed(task, ConnectionFailedError, "Connection reset by peer")
        assert elapsed < QUICK and channel.closed
        assert bytes(task.read_view or b"")[-1] == FILL  # the rest never arrived


def test_target_closing_mid_transfer() -> None:
    def half_then_close(p: Peer, c: ScsiCommand) -> None:
        raw = p.encode(p.data_in(c.itt, disk_bytes(0, 4096), status=0))
        p.send(raw[:100])
        p.conn.shutdown(socket.SHUT_RDWR)
        raise PeerClosed("closed")

    with session(hostile_read(half_then_close)) as s:
        channel = s.transport_session.command_channel()
        task = read10()
        elapsed = run(channel, task)
        assert_failed(task, ConnectionFailedError, "connection closed by")
        assert elapsed < QUICK and channel.closed


def test_target_going_silent_mid_read_is_caught_by_keepalive() -> None:
    def half_then_silence(p: Peer, c: ScsiCommand) -> None:
        p.send(p.encode(p.data_in(c.itt, disk_bytes(0, 4096), status=0))[:1000])
        silent()(p.conn)  # read everything, answer nothing (pings included)

    with session(hostile_read(half_then_silence)) as s:
        channel = s.transport_session.command_channel()
        task = read10()
        elapsed = run(channel, task)
        assert_failed(task, ConnectionFailedError, "ping timeout of 0.5 s expired")
        assert isinstance(task.error.__cause__, PduTimeoutError)  # type: ignore[union-attr]
        assert elapsed < SLOW and channel.closed
        # The part of the buffer that arrived is not passed off as a read.
        assert bytes(task.read_view or b"")[-1] == FILL


def test_target_that_ignores_a_command_and_every_tmf_is_bounded() -> None:
    """Pings are answered (keepalive is happy), the READ and every TMF are not:
    command timeout → ABORT TASK → LUN RESET → TARGET WARM RESET → connection dropped."""
    tmfs: list[int] = []

    def ignore(p: Peer, c: ScsiCommand) -> None:
        try:
            while True:
                pdu = p.recv(timeout=None)
                if isinstance(pdu, TaskMgmtRequest):
                    tmfs.append(pdu.function)
        except PeerClosed:
            pass

    with session(hostile_read(ignore)) as s:
        channel = s.transport_session.command_channel()
        task = read10()
        elapsed = run(channel, task)
        assert_failed(task, ConnectionFailedError, "TARGET WARM RESET timed out")
        assert 1 + 0.5 * 3 - 0.3 < elapsed < SLOW
        assert channel.closed
    assert tmfs[:3] == [1, 5, 6]  # ABORT TASK, LOGICAL UNIT RESET, TARGET WARM RESET


def _run_bounded(channel: Any, task: ScsiTask, bound: float) -> bool:
    """Run ``task`` in a helper thread; True if it finished within ``bound`` seconds."""
    thread = threading.Thread(target=channel.execute, args=(task,), daemon=True)
    thread.start()
    thread.join(bound)
    return not thread.is_alive()


def test_target_that_aborts_the_timed_out_read_ends_it() -> None:
    def abort_ok(p: Peer, c: ScsiCommand) -> None:
        try:
            while True:
                pdu = p.recv(timeout=None)
                if isinstance(pdu, TaskMgmtRequest):
                    p.send(p.tmf_response(pdu.itt, TMF_FUNCTION_COMPLETE))
        except PeerClosed:
            pass

    with session(hostile_read(abort_ok)) as s:
        channel = s.transport_session.command_channel()
        task = read10()
        finished = _run_bounded(channel, task, SLOW)
        s.transport_session.close()  # unblocks the helper thread if it is still waiting
        assert finished
        assert_failed(task, IscsiError, "ABORT TASK")


# == through iscsikit.open_lun =============================================================


def _url(target: ScriptedTarget) -> str:
    return f"iscsi://{target.portal}/{TARGET}/0"


def _open(target: ScriptedTarget) -> Any:
    # One re-issue per command (the default is the kernel's 5), so that the counts below
    # are the first connection and one recovery; no Time2Wait before it (both sides say 0).
    return iscsikit.open_lun(
        _url(target), initiator_name=INITIATOR, timeout=5, retries=0, timers=TIMERS,
        reissue_limit=1, DefaultTime2Wait=0,
    )  # fmt: skip


def lun_target(script: Script) -> ScriptedTarget:
    """A target for the Lun that answers DefaultTime2Wait=0 (Maximum of both offers)."""
    return ScriptedTarget(logged_in(script, time2wait=0))


def test_lun_read_with_inconsistent_residual_raises() -> None:
    def script(p: Peer) -> None:
        cmd = p.serve(until=is_read)
        if cmd is not None:
            p.send(p.data_in(cmd.itt, disk_bytes(0, 512), status=0))  # 512 of 4096, GOOD
            p.serve()

    with lun_target(script) as target:
        lun = _open(target)
        assert lun.size == BLOCK * BLOCKS and lun.block_size == BLOCK
        started = time.monotonic()
        with pytest.raises(RemoteProtocolError, match="reported 4096 bytes read but sent 512"):
            lun.read(0, 4096)
        assert time.monotonic() - started < QUICK
        assert lun.recoveries == 0 and not lun.session.closed
        assert lun.read(4096, 1024) == disk_bytes(4096, 1024)  # still works
        lun.close()
    assert target.errors == []


def test_lun_recovers_from_one_hostile_connection() -> None:
    connections: list[int] = []

    def script(p: Peer) -> None:
        connections.append(1)
        if len(connections) == 1:
            cmd = p.serve(until=is_read)
            if cmd is not None:  # Data-In for a task that does not exist
                p.send(p.data_in(cmd.itt + 99, disk_bytes(0, 4096), status=0))
        p.serve()

    with lun_target(script) as target:
        lun = _open(target)
        started = time.monotonic()
        assert lun.read(0, 4096) == disk_bytes(0, 4096)
        assert time.monotonic() - started < QUICK
        assert lun.recoveries == 1 and target.connections == 2
        lun.close()
    assert target.errors == []


def test_lun_read_from_a_target_hostile_every_time_fails_bounded() -> None:
    def script(p: Peer) -> None:
        cmd = p.serve(until=is_read)
        if cmd is not None:
            p.send(p.data_in(cmd.itt, disk_bytes(0, 4096), datasn=5))
            p.serve()

    with lun_target(script) as target:
        lun = _open(target)
        buf = bytearray([FILL]) * 4096
        started = time.monotonic()
        with pytest.raises(ConnectionFailedError, match="DataSN 5 where 0 was due"):
            lun.readinto(0, buf)
        assert time.monotonic() - started < QUICK
        assert lun.recoveries == 1 and target.connections == 2
        assert buf == bytearray([FILL]) * 4096
        lun.close()
    assert target.errors == []


def test_lun_read_from_a_target_that_hangs_fails_bounded() -> None:
    def script(p: Peer) -> None:
        if p.serve(until=is_read) is not None:
            silent()(p.conn)

    with lun_target(script) as target:
        lun = _open(target)
        started = time.monotonic()
        with pytest.raises(ConnectionFailedError, match="ping timeout"):
            lun.read(0, 4096)
        # Two connections (the first and the recovery), each found dead by keepalive.
        assert time.monotonic() - started < 2 * SLOW
        lun.close()
