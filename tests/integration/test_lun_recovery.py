"""Recovery through the session manager against a real tgtd: no acknowledged write lost.

A blocking :class:`~iscsikit.lun.Lun` (over a
:class:`~iscsikit.manager.blocking.BlockingManagedSession`) and an
:class:`~iscsikit.lun.AsyncLun` (over a :class:`~iscsikit.manager.managed.ManagedSession`)
keep writing random data while the test kills their connection again and again
(``tgtadm --op delete --mode conn``, as a network failure would).  Every write the Lun
acknowledged must be in tgtd's backing file byte for byte, and read back the same.  Then
tgtd is stopped (SIGSTOP) for longer than ``replacement_timeout``: the I/O issued
meanwhile fails with ConnectionFailedError in bounded time, and once tgtd runs again
the same Lun works again.  Each test prints its counts.
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

import iscsikit
from iscsikit.errors import ConnectionFailedError
from iscsikit.manager.blocking import BlockingManagedSession
from iscsikit.manager.managed import ManagedSession
from iscsikit.proto.ffp import Timers
from iscsikit.testing.tgtd import Tgtd

pytestmark = pytest.mark.integration

LUN_SIZE = 16 << 20
DROPS = 100
SEED = int(os.environ.get("ISCSIKIT_SEED", random.randrange(1 << 32)))
#: Quick failure detection: a silent target is found by keepalive within ~2 s.
TIMERS = Timers(noop_out_interval=1, noop_out_timeout=1, command_timeout=2, tick=0.1)
#: Both sides say DefaultTime2Wait=0 (Maximum), so a reconnect does not wait 2 s.
OPTIONS = {"DefaultTime2Wait": 0, "timers": TIMERS, "timeout": 2, "retry_delay": 0.5}
WRITE = 4096


@pytest.fixture(scope="module")
def tgtd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Tgtd]:
    with Tgtd(tmp_path_factory.mktemp("recovery")) as tgtd:
        for tid in (1, 2, 3):
            tgtd.add_target(f"iqn.2024-01.test.recovery:t{tid}", tid=tid, lun_size=LUN_SIZE)
            tgtd.set_target_param(tid, "DefaultTime2Wait", 0)
        yield tgtd


def _url(tgtd: Tgtd, tid: int) -> str:
    return f"iscsi://{tgtd.portal}/iqn.2024-01.test.recovery:t{tid}/1"


def _backing(tgtd: Tgtd, tid: int) -> bytes:
    return Path(tgtd.backing_path(tid, 1)).read_bytes()


def _drop_until_recovered(
    tgtd: Tgtd, tid: int, recoveries: Callable[[], int], deadline: float, what: Callable[[], str]
) -> int:
    """Kill the target's connection and wait until the session came back; returns the
    connections killed (tgtd may still list one already gone: then kill again)."""
    before = recoveries()
    killed = 0
    while True:
        killed += tgtd.drop_connections(tid)
        retry = time.monotonic() + 3
        while recoveries() == before:
            assert time.monotonic() < deadline, f"no recovery: {what()}"
            if time.monotonic() > retry:
                break
            time.sleep(0.002)
        else:
            return killed


def _state(session: object) -> str:
    assert isinstance(session, BlockingManagedSession)
    return f"{session!r}, {session.io.held} held, {session.io.inflight} in flight"


def _verify(tgtd: Tgtd, tid: int, acked: dict[int, bytes]) -> None:
    image = _backing(tgtd, tid)
    lost = [off for off, data in acked.items() if image[off : off + len(data)] != data]
    assert not lost, f"{len(lost)} acknowledged writes not in the backing file (seed {SEED})"


def test_blocking_lun_loses_no_acknowledged_write_across_connection_drops(tgtd: Tgtd) -> None:
    tid = 1
    rng = random.Random(f"{SEED}-blocking")
    acked: dict[int, bytes] = {}
    done = [0]  # writes acknowledged
    stop = threading.Event()
    errors: list[BaseException] = []
    with iscsikit.open_lun(_url(tgtd, tid), replacement_timeout=30, **OPTIONS) as lun:

        def writer() -> None:
            try:
                slots = LUN_SIZE // WRITE - 1  # room for the unaligned ones
                while not stop.is_set():
                    offset = rng.randrange(slots) * WRITE + rng.randrange(2) * 100  # unaligned too
                    data = rng.randbytes(WRITE)
                    lun.write(offset, data)
                    # A later write may overlap: keep only what the disk should now hold.
                    for other in [o for o in acked if abs(o - offset) < WRITE]:
                        del acked[other]
                    acked[offset] = data
                    done[0] += 1
            except BaseException as exc:
                errors.append(exc)

        thread = threading.Thread(target=writer)
        thread.start()
        killed = 0
        deadline = time.monotonic() + 120
        try:
            for _ in range(DROPS):
                killed += _drop_until_recovered(
                    tgtd,
                    tid,
                    lambda: lun.recoveries,
                    deadline,
                    lambda: f"{_state(lun.session)}, writer: {errors}",
                )
                assert thread.is_alive(), errors
                written = done[0]
                while done[0] == written and thread.is_alive():  # a write after recovery
                    assert time.monotonic() < deadline
                    time.sleep(0.002)
        finally:
            stop.set()
            thread.join(30)
        assert not errors, errors
        lun.flush()
        for offset, data in rng.sample(sorted(acked.items()), min(200, len(acked))):
            assert lun.read(offset, len(data)) == data
        recoveries = lun.recoveries
    _verify(tgtd, tid, acked)
    print(f"blocking Lun: {killed} connections killed, {recoveries} recoveries, {done[0]} writes, "
          f"{len(acked)} verified in the backing file")  # fmt: skip
    assert recoveries >= DROPS


def test_async_lun_loses_no_acknowledged_write_across_connection_drops(tgtd: Tgtd) -> None:
    tid = 2
    acked: dict[int, bytes] = {}
    done = [0]  # writes acknowledged
    killed = [0]
    writers = 8
    region = LUN_SIZE // writers

    async def main() -> int:
        async with iscsikit.open_lun_async(
            _url(tgtd, tid), replacement_timeout=30, **OPTIONS
        ) as lun:
            session = lun.session
            assert isinstance(session, ManagedSession)
            policy = session.policy
            stop = asyncio.Event()

            async def write_region(n: int) -> None:
                rng = random.Random(f"{SEED}-async-{n}")
                slots = region // WRITE - 1
                while not stop.is_set():
                    offset = n * region + rng.randrange(slots) * WRITE + rng.randrange(2) * 100
                    data = rng.randbytes(WRITE)
                    await lun.write(offset, data)
                    for other in [o for o in acked if abs(o - offset) < WRITE]:
                        del acked[other]
                    acked[offset] = data
                    done[0] += 1

            tasks = [asyncio.create_task(write_region(n)) for n in range(writers)]
            deadline = time.monotonic() + 120
            try:
                for _ in range(DROPS):
                    killed[0] += await asyncio.to_thread(
                        _drop_until_recovered,
                        tgtd, tid, lambda: policy.recoveries, deadline, lambda: repr(session.state),
                    )  # fmt: skip
                    assert not any(t.done() for t in tasks), [t.result() for t in tasks]
                    written = done[0]
                    while done[0] < written + writers:
                        assert time.monotonic() < deadline
                        await asyncio.sleep(0.002)
            finally:
                stop.set()
                await asyncio.gather(*tasks)
            await lun.flush()
            for offset, data in list(acked.items())[:200]:
                assert await lun.read(offset, len(data)) == data
            return int(policy.recoveries)

    recoveries = asyncio.run(main())
    _verify(tgtd, tid, acked)
    print(f"AsyncLun: {killed[0]} connections killed, {recoveries} recoveries, {done[0]} writes, "
          f"{len(acked)} verified in the backing file")  # fmt: skip
    assert recoveries >= DROPS


def test_outage_longer_than_replacement_timeout_fails_io_then_the_lun_comes_back(
    tgtd: Tgtd,
) -> None:
    tid = 3
    pid = tgtd.pid
    assert pid is not None
    replacement = 3.0
    with iscsikit.open_lun(_url(tgtd, tid), replacement_timeout=replacement, **OPTIONS) as lun:
        before = os.urandom(WRITE)
        lun.write(0, before)
        os.kill(pid, signal.SIGSTOP)
        try:
            started = time.monotonic()
            with pytest.raises(ConnectionFailedError, match="replacement_timeout"):
                lun.write(WRITE, os.urandom(WRITE))
            took = time.monotonic() - started
            # Keepalive finds the silence (~2 s), then replacement_timeout; a login
            # attempt in progress may add its timeout (2 s).
            assert replacement <= took < replacement + 8
            fast = time.monotonic()
            with pytest.raises(ConnectionFailedError):
                lun.write(2 * WRITE, os.urandom(WRITE))
            assert time.monotonic() - fast < 3  # at most one login attempt
        finally:
            os.kill(pid, signal.SIGCONT)
        after = os.urandom(WRITE)
        deadline = time.monotonic() + 30
        while True:  # the session logs in again when a call finds the retry due
            try:
                lun.write(3 * WRITE, after)
                break
            except ConnectionFailedError:
                assert time.monotonic() < deadline, "the Lun did not come back"
                time.sleep(0.2)
        assert lun.read(0, WRITE) == before and lun.read(3 * WRITE, WRITE) == after
        recoveries = lun.recoveries
    image = _backing(tgtd, tid)
    assert image[:WRITE] == before and image[3 * WRITE : 4 * WRITE] == after
    print(f"outage: I/O failed after {took:.1f} s (replacement_timeout {replacement:g} s), "
          f"{recoveries} recovery")  # fmt: skip
    assert recoveries == 1
