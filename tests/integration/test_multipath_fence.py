"""The data-safety fence, for real: a stale write delivered late must not win.

tgtd has two portals; path 0 of the multipath LUN goes through a
:class:`~iscsikit.testing.stallproxy.StallProxy`, path 1 straight to 127.0.0.2.  Each
round, with the failover policy on path 0:

1. the region is written (``OLD``); the proxy starts HOLDING path 0's bytes to tgtd;
2. a thread writes ``STALE`` (4 KiB: all of it immediate data, so the held bytes are the
   whole command); the proxy holds them, then CUTS the initiator's side of the
   connection (its upstream connection to tgtd stays open);
3. the multipath LUN sees path 0 fail and issues the write again - only once path 0 is
   fenced (see :mod:`iscsikit.lun.fence`) - and the application then writes ``NEWER``
   to the same blocks;
4. the proxy RELEASES the held bytes into the old connection: a late delivery.

(i) ``test_reinstatement_fences``: path 0 can reconnect through the proxy; the re-issue
waits for its session to log in again as the same session (same ISID, TSIH 0), which
makes tgtd end the old session and close its connection; the stale bytes are then
released after ``NEWER`` was acknowledged and go nowhere.
(ii) ``test_timeout_fences``: the proxy refuses path 0's reconnects; the stale bytes are
released ``RELEASE_AFTER`` seconds after the cut, before ``fence_timeout``: they land
first, the re-issue after the timeout, ``NEWER`` after that.  Meanwhile reads go on over
path 1.

The asyncio twin (``test_async_*``) runs the same two scenarios.

Every block must hold ``NEWER``.  By design the same test fails without the fence: run
it with ``ISCSIKIT_NO_FENCE=1`` (``fence_timeout`` 0) and the write moves to path 1 at
once, ``NEWER`` is acknowledged before the stale bytes are delivered, and they
overwrite it.  Counts are printed.
"""

from __future__ import annotations

import asyncio
import os
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

import iscsikit
from iscsikit.lun.aio_multipath import AsyncMultipathLun
from iscsikit.lun.multipath import MultipathLun
from iscsikit.proto.ffp import Timers
from iscsikit.testing.stallproxy import StallProxy
from iscsikit.testing.tgtd import Tgtd

pytestmark = pytest.mark.integration

IQN = "iqn.2024-01.test.fence:t1"
LUN_SIZE = 16 << 20
SIZE = 4096  # one write, all immediate data
ROUNDS = 3
NO_FENCE = bool(os.environ.get("ISCSIKIT_NO_FENCE"))
#: (i) must be cleared by the reinstatement, (ii) by the timeout.
FENCE_TIMEOUT = {True: 30.0, False: 4.0}
#: (i): path 0 logs in again DefaultTime2Wait after the cut, so without the fence the
#: write moves to path 1 and ``NEWER`` is acknowledged before the reinstatement.
TIME2WAIT = 1
RELEASE_AFTER = 1.5  # (ii): before FENCE_TIMEOUT
OPTIONS: dict[str, Any] = {
    "DefaultTime2Wait": 0,
    "timers": Timers(noop_out_interval=1, noop_out_timeout=1, command_timeout=3, tick=0.1),
    "timeout": 2,
    "retry_delay": 0.5,
}


#: The module tgtd's second portal (127.0.0.2).
_SECOND: list[str] = []


@pytest.fixture(scope="module")
def tgtd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Tgtd]:
    with Tgtd(tmp_path_factory.mktemp("fence")) as tgtd:
        tgtd.add_target(IQN, tid=1, lun_size=LUN_SIZE)
        tgtd.set_target_param(1, "DefaultTime2Wait", 0)
        _SECOND.append(tgtd.add_portal("127.0.0.2"))
        yield tgtd


@pytest.fixture
def proxy(tgtd: Tgtd) -> Iterator[StallProxy]:
    with StallProxy(tgtd.portal) as proxy:
        yield proxy


def _open(tgtd: Tgtd, proxy: StallProxy, *, reconnect: bool) -> MultipathLun:
    urls = [f"iscsi://{proxy.portal}/{IQN}/1", f"iscsi://{_SECOND[-1]}/{IQN}/1"]
    options = dict(OPTIONS, DefaultTime2Wait=TIME2WAIT if reconnect else 0)
    return iscsikit.open_multipath_lun(
        urls,
        "failover",
        retry_interval=0.5,
        max_retry_interval=1.0,
        fence_timeout=0.0 if NO_FENCE else FENCE_TIMEOUT[reconnect],
        **options,
    )


def _data(kind: str, round_: int) -> bytes:
    head = f"{kind}:{round_:04d}:".encode()
    return (head * (SIZE // len(head) + 1))[:SIZE]


def _wait(what: str, until: Any, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not until():
        assert time.monotonic() < deadline, f"timed out waiting: {what}"
        time.sleep(0.01)


class _Counts:
    def __init__(self) -> None:
        self.held = self.blocks = self.bad = self.reads_meanwhile = 0
        self.delivered = self.dropped = 0


def _round(
    lun: MultipathLun, proxy: StallProxy, round_: int, counts: _Counts, *, reconnect: bool
) -> None:
    offset = (round_ + 1) * (1 << 20)
    # Path 0 carries I/O (failover): it must be back from the last round first.
    _wait("path 0 active", lambda: lun.read(0, 512) is not None and lun.paths[0].state == "active")
    lun._selector.forget(1)  # failover: back to the first path, path 0
    before = lun.paths[0].commands
    lun.write(offset, _data("OLD", round_))
    assert lun.paths[0].commands == before + 1
    proxy.refuse(not reconnect)
    proxy.hold()
    errors: list[BaseException] = []

    def stale_write() -> None:
        try:
            lun.write(offset, _data("STALE", round_))
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    writer = threading.Thread(target=stale_write)
    writer.start()
    _wait("the write held", lambda: proxy.held() >= 48 + SIZE, 10)
    counts.held += 1
    cut_at = time.monotonic()
    assert proxy.cut() >= 1
    released = threading.Event()
    if not reconnect:
        # (ii): the stale bytes reach tgtd before fence_timeout is over.
        def late() -> None:
            time.sleep(max(RELEASE_AFTER - (time.monotonic() - cut_at), 0.0))
            delivered, dropped = proxy.release()
            counts.delivered += delivered
            counts.dropped += dropped
            released.set()

        threading.Thread(target=late).start()
        while writer.is_alive():
            lun.read(0, 512)  # path 1 serves reads while the write waits
            counts.reads_meanwhile += 1
            time.sleep(0.05)
    writer.join(60)
    assert not writer.is_alive() and not errors, errors
    lun.write(offset, _data("NEWER", round_))  # acknowledged: the application's newest
    if reconnect:
        # (i): the stale bytes arrive now, late, into path 0's old connection.
        delivered, dropped = proxy.release()
        counts.delivered += delivered
        counts.dropped += dropped
        released.set()
    released.wait(30)
    time.sleep(1.0)  # whatever tgtd took of the stale bytes, it has done by now
    proxy.refuse(False)
    got = lun.read(offset, SIZE)
    newer = _data("NEWER", round_)
    for b in range(0, SIZE, 512):
        counts.blocks += 1
        counts.bad += got[b : b + 512] != newer[b : b + 512]


def _report(name: str, lun: MultipathLun | AsyncMultipathLun, counts: _Counts) -> None:
    print(
        f"\n{name}: writes held {counts.held}, re-issued {lun.reissues}, fenced {lun.fenced} "
        f"(reinstated {lun.fence_reinstated}, timed out {lun.fence_timed_out}), stale bytes "
        f"delivered {counts.delivered} / refused by tgtd {counts.dropped}, reads meanwhile "
        f"{counts.reads_meanwhile}, blocks verified {counts.blocks}, lost/corrupted {counts.bad}"
    )


def test_reinstatement_fences(tgtd: Tgtd, proxy: StallProxy) -> None:
    counts = _Counts()
    with _open(tgtd, proxy, reconnect=True) as lun:
        for round_ in range(ROUNDS):
            _round(lun, proxy, round_, counts, reconnect=True)
        _report("(i) reinstatement", lun, counts)
    assert counts.bad == 0
    assert counts.held == ROUNDS and lun.fenced == ROUNDS
    assert lun.fence_reinstated == ROUNDS and lun.fence_timed_out == 0
    # tgtd closed the old connections on reinstatement: the stale bytes went nowhere.
    assert counts.delivered == 0 and counts.dropped >= ROUNDS * SIZE


def test_timeout_fences(tgtd: Tgtd, proxy: StallProxy) -> None:
    counts = _Counts()
    with _open(tgtd, proxy, reconnect=False) as lun:
        for round_ in range(ROUNDS):
            _round(lun, proxy, round_, counts, reconnect=False)
        _report("(ii) fence_timeout", lun, counts)
    assert counts.bad == 0
    assert counts.held == ROUNDS and lun.fence_timed_out == ROUNDS
    # The stale bytes did reach tgtd (before the re-issue), and reads went on meanwhile.
    assert counts.delivered >= ROUNDS * SIZE and counts.reads_meanwhile > 0


# -- the same two scenarios over the asyncio twin -----------------------------------------


async def _round_async(
    lun: AsyncMultipathLun, proxy: StallProxy, round_: int, counts: _Counts, *, reconnect: bool
) -> None:
    offset = (round_ + 1) * (1 << 20)
    deadline = time.monotonic() + 30
    while lun.paths[0].state != "active":
        assert time.monotonic() < deadline, "path 0 did not come back"
        await lun.read(0, 512)
        await asyncio.sleep(0.05)
    lun._selector.forget(1)  # failover: back to path 0
    before = lun.paths[0].commands
    await lun.write(offset, _data("OLD", round_))
    assert lun.paths[0].commands == before + 1
    proxy.refuse(not reconnect)
    proxy.hold()
    writer = asyncio.create_task(lun.write(offset, _data("STALE", round_)))
    while proxy.held() < 48 + SIZE:
        assert time.monotonic() < deadline, "the write was not held"
        await asyncio.sleep(0.01)
    counts.held += 1
    cut_at = time.monotonic()
    assert proxy.cut() >= 1
    if not reconnect:
        # (ii): the stale bytes reach tgtd RELEASE_AFTER s after the cut, while
        # reads go on over path 1.
        while not writer.done() and time.monotonic() - cut_at < RELEASE_AFTER:
            await lun.read(0, 512)
            counts.reads_meanwhile += 1
            await asyncio.sleep(0.05)
        if not writer.done():
            delivered, dropped = await asyncio.to_thread(proxy.release)
            counts.delivered += delivered
            counts.dropped += dropped
    await asyncio.wait_for(writer, 60)
    await lun.write(offset, _data("NEWER", round_))
    if reconnect or proxy.held():
        # (i), or (ii) without the fence: the stale bytes arrive now, late.
        delivered, dropped = await asyncio.to_thread(proxy.release)
        counts.delivered += delivered
        counts.dropped += dropped
    await asyncio.sleep(1.0)
    proxy.refuse(False)
    got = await lun.read(offset, SIZE)
    newer = _data("NEWER", round_)
    for b in range(0, SIZE, 512):
        counts.blocks += 1
        counts.bad += got[b : b + 512] != newer[b : b + 512]


def _run_async(tgtd: Tgtd, proxy: StallProxy, *, reconnect: bool) -> tuple[_Counts, Any]:
    counts = _Counts()
    urls = [f"iscsi://{proxy.portal}/{IQN}/1", f"iscsi://{_SECOND[-1]}/{IQN}/1"]
    options = dict(OPTIONS, DefaultTime2Wait=TIME2WAIT if reconnect else 0)

    async def main() -> AsyncMultipathLun:
        async with iscsikit.open_multipath_lun_async(
            urls,
            "failover",
            retry_interval=0.5,
            max_retry_interval=1.0,
            fence_timeout=0.0 if NO_FENCE else FENCE_TIMEOUT[reconnect],
            **options,
        ) as lun:
            for round_ in range(ROUNDS):
                await _round_async(lun, proxy, round_, counts, reconnect=reconnect)
            return lun

    lun = asyncio.run(main())
    name = "(i) reinstatement" if reconnect else "(ii) fence_timeout"
    _report(f"async {name}", lun, counts)
    return counts, lun


def test_async_reinstatement_fences(tgtd: Tgtd, proxy: StallProxy) -> None:
    counts, lun = _run_async(tgtd, proxy, reconnect=True)
    assert counts.bad == 0
    assert counts.held == ROUNDS and lun.fenced >= ROUNDS
    assert lun.fence_reinstated == lun.fenced and lun.fence_timed_out == 0
    assert counts.delivered == 0 and counts.dropped >= ROUNDS * SIZE


def test_async_timeout_fences(tgtd: Tgtd, proxy: StallProxy) -> None:
    counts, lun = _run_async(tgtd, proxy, reconnect=False)
    assert counts.bad == 0
    assert counts.held == ROUNDS and lun.fence_timed_out >= ROUNDS
    assert counts.delivered >= ROUNDS * SIZE and counts.reads_meanwhile > 0
