"""BlockingManagedSession on a fake clock, with in-process connections.

The session under test is the real one; what is fake is below it: the connector (one
login attempt) returns :class:`FakeSession` objects whose :class:`FakeChannel` answers
or fails commands as each test scripts it, and the clock only moves when the session
sleeps.  So every wait the policy asks for (retry delay, Time2Wait, replacement_timeout)
is checked exactly, and no test sleeps.
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Mapping
from typing import Any

import pytest

from iscsikit.errors import (
    AuthenticationError,
    ConnectionFailedError,
    IscsiError,
    TargetError,
    TransportError,
)
from iscsikit.lun.lun import Lun, run_blocking
from iscsikit.manager.blocking import BlockingManagedSession
from iscsikit.manager.policy import State
from iscsikit.manager.spec import SessionSettings, session_settings
from iscsikit.plugin.transport import CommandChannel, TransportSession
from iscsikit.proto.address import Portal, parse_portal
from iscsikit.proto.ffp import ConnectionFailed, LogoutRequested
from iscsikit.proto.task import ScsiTask, TmfTask
from iscsikit.scsi import cdb as C

TARGET = "iqn.2024-01.test.iscsikit:blocking"
BLOCK = 512


def disk(offset: int, length: int) -> bytes:
    return bytes((offset + i) % 251 for i in range(length))


#: How a connection treats the commands it is given: called with the channel and the
#: commands pending on it when the caller waits.
Behaviour = Callable[["FakeChannel", list[ScsiTask]], None]


def answer(channel: FakeChannel, pending: list[ScsiTask]) -> None:
    """An honest disk: reads get :func:`disk` bytes, everything else GOOD."""
    for task in pending:
        if task.read_view is not None:
            lba = int.from_bytes(task.cdb[2:6], "big")
            task.read_view[: task.expected_length] = disk(lba * BLOCK, task.expected_length)
            task.received = task.expected_length
        channel.written.extend(bytes(task.write_view or b""))
        task.status = 0
        channel.finish(task)


def garbage_then_fail(channel: FakeChannel, pending: list[ScsiTask]) -> None:
    """Half of each read's data arrives, then the connection dies."""
    for task in pending:
        if task.read_view is not None:
            half = task.expected_length // 2
            task.read_view[:half] = b"\xee" * half
    channel.fail(TransportError("connection reset by peer"))


class FakeChannel(CommandChannel):
    """One connection's data path; ``behaviour`` decides what becomes of commands."""

    def __init__(self, behaviour: Behaviour) -> None:
        self.behaviour = behaviour
        self.pending: list[ScsiTask] = []
        self.seen: list[ScsiTask] = []
        self.written = bytearray()
        self.on_event: Callable[[Any], None] | None = None
        self._closed = False

    def submit(self, task: ScsiTask) -> None:
        if self._closed:
            raise ConnectionFailedError("closed")
        self.pending.append(task)
        self.seen.append(task)

    def wait(self, task: ScsiTask | None = None) -> None:
        if self.pending:
            self.behaviour(self, list(self.pending))
        self.pending = [t for t in self.pending if not t.done]

    def task_management(self, task: TmfTask) -> TmfTask:
        raise NotImplementedError

    def statistics(self) -> Mapping[str, int]:
        return {"scsicmd_pdus": len(self.seen)}

    @property
    def closed(self) -> bool:
        return self._closed

    def finish(self, task: ScsiTask) -> None:
        task.done = True
        if task.callback is not None:
            task.callback(task)

    def fail(self, cause: IscsiError, *, time2wait: int = 0) -> None:
        """The connection fails as the FFP machine fails: requests first, then the event."""
        self._closed = True
        error = ConnectionFailedError(f"connection failed: {cause}")
        pending, self.pending = self.pending, []
        for task in pending:
            task.error = error
            self.finish(task)
        if self.on_event is not None:
            self.on_event(ConnectionFailed(error, time2wait))

    def request_logout(self, within: int) -> None:
        if self.on_event is not None:
            self.on_event(LogoutRequested(within))


class FakeSession(TransportSession):
    def __init__(self, behaviour: Behaviour, params: dict[str, str], isid: bytes) -> None:
        self.params = params
        self.portal = parse_portal("127.0.0.1:3260")
        self.target = TARGET
        self.tsih = 1
        self.isid = isid
        self.tpgt = 1
        self.channel = FakeChannel(behaviour)
        self.logged_out = False
        self.dropped = False

    def command_channel(self) -> FakeChannel:
        return self.channel

    def logout(self, timeout: float | None = None) -> None:
        self.logged_out = True
        self.channel._closed = True

    def close(self) -> None:
        self.dropped = True
        self.channel._closed = True

    def ping(self, timeout: float | None = None) -> float:
        return 0.0

    @property
    def closed(self) -> bool:
        return self.channel.closed


class Harness:
    """A fake clock and a connector answering each login attempt from a script: an
    exception to raise, or the behaviour of the connection that logs in."""

    def __init__(self, *outcomes: Behaviour | IscsiError, time2wait: int = 2) -> None:
        self.outcomes = list(outcomes)
        self.now = 0.0
        self.sleeps: list[float] = []
        self.logins: list[tuple[float, bytes]] = []
        self.sessions: list[FakeSession] = []
        self.time2wait = time2wait

    def connector(self, settings: SessionSettings, portal: Portal) -> TransportSession:
        assert portal == settings.portal  # one portal: no failover here
        self.logins.append((self.now, settings.isid))
        outcome = self.outcomes.pop(0) if len(self.outcomes) > 1 else self.outcomes[0]
        if isinstance(outcome, IscsiError):
            raise outcome
        session = FakeSession(outcome, {"DefaultTime2Wait": str(self.time2wait)}, settings.isid)
        self.sessions.append(session)
        return session

    def sleep(self, seconds: float) -> None:
        assert seconds >= 0
        self.sleeps.append(seconds)
        self.now += seconds

    def session(self, **settings: Any) -> BlockingManagedSession:
        settings.setdefault("retry_delay", 1.0)
        limit = settings.pop("reissue_limit", 5)
        return BlockingManagedSession(
            session_settings(parse_portal("127.0.0.1:3260"), TARGET, **settings),
            reissue_limit=limit,
            connector=self.connector,
            clock=lambda: self.now,
            sleep=self.sleep,
        )


def read(lba: int = 0, blocks: int = 2) -> ScsiTask:
    return ScsiTask(C.read10(lba, blocks), read_buffer=bytearray(blocks * BLOCK))


# == login ================================================================================


def test_login_retries_retryable_failures_retry_delay_apart() -> None:
    h = Harness(TransportError("refused"), TargetError("busy", status_class=3), answer)
    s = h.session(retries=2, retry_delay=1.5)
    s.login()
    assert s.state is State.LOGGED_IN
    assert [at for at, _ in h.logins] == [0.0, 1.5, 3.0]
    assert len({isid for _, isid in h.logins}) == 1


def test_login_gives_up_after_its_retries_with_the_last_error() -> None:
    h = Harness(TransportError("refused"))
    s = h.session(retries=2)
    with pytest.raises(TransportError, match="refused"):
        s.login()
    assert len(h.logins) == 3 and s.closed and s.state is State.FAILED
    task = read()
    s.io.execute(task)
    assert isinstance(task.error, ConnectionFailedError) and "closed" in str(task.error)


def test_fatal_login_failure_is_not_retried() -> None:
    h = Harness(AuthenticationError("bad secret"), answer)
    s = h.session(retries=5)
    with pytest.raises(AuthenticationError):
        s.login()
    assert len(h.logins) == 1 and h.sleeps == []


def test_io_before_login_is_refused() -> None:
    s = Harness(answer).session()
    task = read()
    s.io.execute(task)
    assert isinstance(task.error, ConnectionFailedError) and "not logged in" in str(task.error)


# == recovery =============================================================================


def test_interrupted_read_is_reissued_whole_after_time2wait_as_the_same_session() -> None:
    h = Harness(garbage_then_fail, answer, time2wait=3)
    s = h.session()
    s.login()
    task = read(lba=4)
    s.io.execute(task)
    assert task.good and task.read_view is not None
    assert bytes(task.read_view) == disk(4 * BLOCK, 2 * BLOCK)  # no byte of the first try
    assert h.sleeps == [3.0]
    assert [at for at, _ in h.logins] == [0.0, 3.0]
    assert h.logins[0][1] == h.logins[1][1]  # same ISID: reinstatement
    first, second = (x.channel.seen[0] for x in h.sessions)
    assert first is not second and first is not task  # a fresh inner task per attempt
    assert s.recoveries == 1 and s.io.reissued == 1 and h.sessions[0].dropped


def test_target_time2wait_hint_overrides_the_negotiated_wait() -> None:
    def fail_with_hint(channel: FakeChannel, pending: list[ScsiTask]) -> None:
        channel.fail(TransportError("target dropping the connection"), time2wait=7)

    h = Harness(fail_with_hint, answer, time2wait=2)
    s = h.session()
    s.login()
    task = read()
    s.io.execute(task)
    assert task.good and h.sleeps == [7.0]


def test_writes_survive_many_failures_in_order() -> None:
    def flaky(channel: FakeChannel, pending: list[ScsiTask]) -> None:
        # Each connection answers three commands and dies under the fourth.
        if len(channel.seen) > 3:
            garbage_then_fail(channel, pending)
        else:
            answer(channel, pending)

    h = Harness(flaky)
    s = h.session()
    s.login()
    for i in range(20):
        task = ScsiTask(C.write10(i, 1), write_data=bytes([i]) * BLOCK)
        s.io.execute(task)
        assert task.good, task.error
    written = b"".join(bytes(x.channel.written) for x in h.sessions)
    assert written == b"".join(bytes([i]) * BLOCK for i in range(20))
    assert s.recoveries == 6 and s.io.reissued == 6


def test_a_command_that_breaks_every_connection_fails_after_its_reissues() -> None:
    h = Harness(garbage_then_fail, time2wait=0)
    s = h.session(reissue_limit=3)
    s.login()
    task = read()
    s.io.execute(task)
    assert isinstance(task.error, ConnectionFailedError) and "reset by peer" in str(task.error)
    assert len(h.logins) == 4 and s.recoveries == 3
    assert not s.closed  # the session itself is fine: the next command is tried again


def test_io_fails_after_replacement_timeout_then_fails_fast_then_comes_back() -> None:
    down = TransportError("connection refused")
    h = Harness(garbage_then_fail, down, time2wait=2)
    s = h.session(replacement_timeout=10, retry_delay=1)
    s.login()
    task = read()
    s.io.execute(task)
    assert isinstance(task.error, ConnectionFailedError)
    assert "replacement_timeout" in str(task.error)
    assert h.now == pytest.approx(10.0)
    sleeps = len(h.sleeps)
    fast = read()
    s.io.execute(fast)  # the session is down: no waiting
    assert isinstance(fast.error, ConnectionFailedError) and len(h.sleeps) == sleeps
    h.outcomes = [answer]  # the target is back
    h.now += 1.0  # the retry delay passed: the next command's poll logs in
    again = read()
    s.io.execute(again)
    assert again.good and s.state is State.LOGGED_IN and s.recoveries == 1


def test_commands_submitted_during_recovery_wait_and_go_in_order() -> None:
    h = Harness(garbage_then_fail, answer)
    s = h.session()
    s.login()
    first = read(lba=0)
    s.io.submit(first)
    h.sessions[0].channel.wait()  # the connection dies under it
    second = ScsiTask(C.write10(9, 1), write_data=b"w" * BLOCK)
    s.io.submit(second)  # the failure is noticed now: held
    assert s.state is State.RECOVERY_WAIT and s.io.held == 2
    s.io.wait(second)
    assert first.good and second.good
    assert [t.cdb for t in h.sessions[1].channel.seen] == [first.cdb, second.cdb]


def test_target_logout_request_drains_logs_out_and_comes_back() -> None:
    def asks_logout(channel: FakeChannel, pending: list[ScsiTask]) -> None:
        answer(channel, pending)
        if len(channel.seen) == 1:
            channel.request_logout(within=5)

    h = Harness(asks_logout, answer, time2wait=2)
    s = h.session()
    s.login()
    one, two = read(), read(lba=2)
    s.io.execute(one)
    s.io.execute(two)
    assert one.good and two.good
    assert h.sessions[0].logged_out and len(h.sessions) == 2
    assert h.sleeps == [2.0] and s.state is State.LOGGED_IN


# == logout ===============================================================================


def test_logout_ends_the_session_and_refuses_io() -> None:
    h = Harness(answer)
    s = h.session()
    s.login()
    s.logout()
    assert h.sessions[0].logged_out and s.closed
    s.logout()  # idempotent
    task = read()
    s.io.execute(task)
    assert isinstance(task.error, ConnectionFailedError) and "closed" in str(task.error)


def test_logout_while_reconnecting_needs_no_exchange_and_fails_held_io() -> None:
    h = Harness(garbage_then_fail, TransportError("refused"))
    s = h.session()
    s.login()
    task = read()
    s.io.submit(task)
    h.sessions[0].channel.wait()
    s.logout()
    assert task.done and isinstance(task.error, ConnectionFailedError)
    assert not h.sessions[0].logged_out and s.closed and len(h.logins) == 1


# == through a Lun ========================================================================


def test_lun_over_a_managed_session_recovers_and_reads_right() -> None:
    def disk_answers(channel: FakeChannel, pending: list[ScsiTask]) -> None:
        for task in pending:
            op = task.cdb[0]
            if op == 0x12 and not task.cdb[1] & 1:  # standard INQUIRY
                data = bytes([0, 0, 6, 2, 31, 0, 0, 2]) + b"ISCSIKIT" + b"FAKE" * 4 + b"0001"
            elif op == 0x9E:  # READ CAPACITY(16): 64 blocks
                data = (63).to_bytes(8, "big") + BLOCK.to_bytes(4, "big") + bytes(20)
            elif op in (0x28, 0x88):
                lba = int.from_bytes(task.cdb[2:6] if op == 0x28 else task.cdb[2:10], "big")
                data = disk(lba * BLOCK, task.expected_length)
            elif op in (0x00, 0x35, 0x2A, 0x8A):
                data = b""
            else:  # ILLEGAL REQUEST
                task.status = 2
                task.sense_data = bytes([0x70, 0, 5, 0, 0, 0, 0, 10] + [0] * 4 + [0x24] + [0] * 5)
                channel.finish(task)
                continue
            if task.read_view is not None:
                n = min(len(data), task.expected_length)
                task.read_view[:n] = data[:n]
                task.residual = task.expected_length - n
            task.status = 0
            channel.finish(task)

    def dies_on_reads(channel: FakeChannel, pending: list[ScsiTask]) -> None:
        if any(t.cdb[0] in (0x28, 0x88) for t in pending):
            garbage_then_fail(channel, pending)
        else:
            disk_answers(channel, pending)

    h = Harness(dies_on_reads, disk_answers, time2wait=1)
    s = h.session()
    s.login()
    lun = Lun.attach(s, 0, owns=True)
    assert lun.size == 64 * BLOCK
    assert lun.read(1000, 3000) == disk(1000, 3000)
    assert lun.recoveries == 1 and lun.session is s
    lun.close()
    assert s.closed and h.sessions[1].logged_out
    task = read()
    run_blocking(s.io, iter_once(task))
    assert isinstance(task.error, ConnectionFailedError)


def iter_once(task: ScsiTask) -> Generator[list[ScsiTask], None, None]:
    yield [task]


def test_close_fails_what_is_in_flight_without_a_logout() -> None:
    def never_answers(channel: FakeChannel, pending: list[ScsiTask]) -> None:
        pass

    h = Harness(never_answers)
    s = h.session()
    s.login()
    task = read()
    s.io.submit(task)
    s.close()
    assert task.done and isinstance(task.error, ConnectionFailedError)
    assert h.sessions[0].dropped and not h.sessions[0].logged_out and s.closed
