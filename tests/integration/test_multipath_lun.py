"""Userspace multipath against one tgtd with two portals (127.0.0.1 and 127.0.0.2).

A :class:`~iscsikit.lun.multipath.MultipathLun` over one session per portal runs a
verified write stream (block ``i`` holds a pattern made of ``i`` and the run's seed;
every block is read back and compared at the end) while tgtd drops one path's
connection (``tgtadm --op delete --mode conn``), or while one portal is deleted and
added again.  Nothing may be lost or corrupted, I/O must go on over the other path, and
the failed path must carry I/O again afterwards.  Two different LUs must be refused as
paths of one, and round-robin must really use both paths.  Each test prints its counts.
"""

from __future__ import annotations

import os
import random
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

import iscsikit
from iscsikit.errors import InvalidParameterError
from iscsikit.lun.multipath import MultipathLun, Path, Policy
from iscsikit.manager.blocking import BlockingManagedSession
from iscsikit.proto.ffp import Timers
from iscsikit.testing.tgtd import Tgtd

pytestmark = pytest.mark.integration

LUN_SIZE = 32 << 20
BLOCK = 64 << 10
SEED = int(os.environ.get("ISCSIKIT_SEED", random.randrange(1 << 32)))
#: Quick failure detection, reconnects without DefaultTime2Wait, short login timeout.
TIMERS = Timers(noop_out_interval=1, noop_out_timeout=1, command_timeout=2, tick=0.1)
OPTIONS: dict[str, Any] = {
    "DefaultTime2Wait": 0,
    "timers": TIMERS,
    "timeout": 2,
    "retry_delay": 0.5,
}
IQN = "iqn.2024-01.test.multipath:t{}"


#: The second portal of each module tgtd (by its first portal).
_SECOND: dict[str, str] = {}


@pytest.fixture(scope="module")
def tgtd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Tgtd]:
    with Tgtd(tmp_path_factory.mktemp("multipath")) as tgtd:
        for tid in (1, 2, 3, 4):
            tgtd.add_target(IQN.format(tid), tid=tid, lun_size=LUN_SIZE)
            tgtd.set_target_param(tid, "DefaultTime2Wait", 0)
        _SECOND[tgtd.portal] = tgtd.add_portal("127.0.0.2")
        yield tgtd


def _portals(tgtd: Tgtd) -> list[str]:
    return [tgtd.portal, _SECOND[tgtd.portal]]


def _no_sessions(tgtd: Tgtd, *tids: int) -> bool:
    deadline = time.monotonic() + 5
    while any(tgtd.sessions(tid) for tid in tids):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def _urls(tgtd: Tgtd, tid: int) -> list[str]:
    return [f"iscsi://{portal}/{IQN.format(tid)}/1" for portal in _portals(tgtd)]


def _open(tgtd: Tgtd, tid: int, policy: Policy = "round-robin") -> MultipathLun:
    return iscsikit.open_multipath_lun(
        _urls(tgtd, tid), policy, retry_interval=0.5, max_retry_interval=1.0, **OPTIONS
    )


BLOCKS = LUN_SIZE // BLOCK


def _pattern(seq: int) -> bytes:
    """What write number ``seq`` puts in block ``seq % BLOCKS``."""
    head = f"{SEED:08x}:{seq:08d}:".encode()
    return (head * (BLOCK // len(head) + 1))[:BLOCK]


def _tgt_sid(tgtd: Tgtd, tid: int, path: Path) -> int:
    """tgtd's session id of ``path`` (tgt reports the TSIH it sent, which it encodes
    in host byte order on the wire: accept either order)."""
    session = path.lun.session
    assert isinstance(session, BlockingManagedSession)
    assert session.transport_session is not None
    tsih = session.transport_session.tsih
    swapped = int.from_bytes(tsih.to_bytes(2, "big"), "little")
    sids = {conn.sid for conn in tgtd.sessions(tid)}
    found = sids & {tsih, swapped}
    assert len(found) == 1, (tsih, sids)
    return found.pop()


def _drop_path(tgtd: Tgtd, tid: int, path: Path) -> None:
    sid = _tgt_sid(tgtd, tid, path)
    for conn in tgtd.sessions(tid):
        if conn.sid == sid:
            tgtd.tgtadm(
                "--op", "delete", "--mode", "conn", "--tid", str(tid),
                "--sid", str(conn.sid), "--cid", str(conn.cid),
            )  # fmt: skip


class _Stream:
    """A writer thread: block after block, each with its pattern, counted."""

    def __init__(self, lun: MultipathLun) -> None:
        self.lun = lun
        self.written = 0
        self.errors: list[BaseException] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run)

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                self.lun.write((self.written % BLOCKS) * BLOCK, _pattern(self.written))
                self.written += 1
        except BaseException as exc:
            self.errors.append(exc)

    def __enter__(self) -> _Stream:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(60)

    def wait(self, what: str, until: Callable[[], bool], timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while not until():
            assert not self.errors, self.errors
            assert self._thread.is_alive(), "the writer stopped"
            assert time.monotonic() < deadline, f"timed out waiting: {what}: {self.lun!r}"
            time.sleep(0.01)


def _verify(tgtd: Tgtd, tid: int, written: int) -> tuple[int, int]:
    """Read every written block back (over both paths again); (blocks, bad blocks).
    Block ``b`` must hold the last write that went to it."""
    with _open(tgtd, tid) as lun:
        last = {seq % BLOCKS: seq for seq in range(max(written - BLOCKS, 0), written)}
        bad = sum(lun.read(b * BLOCK, BLOCK) != _pattern(seq) for b, seq in last.items())
    return len(last), bad


def test_paths_of_one_lu_are_grouped(tgtd: Tgtd) -> None:
    with _open(tgtd, 1) as lun:
        assert [p.name for p in lun.paths] == _portals(tgtd)
        assert [p.state for p in lun.paths] == ["active", "active"]
        identities = {path.identity_key for path in lun._paths}
        assert len(identities) == 1 and None not in identities
        assert len(tgtd.sessions(1)) == 2
    assert _no_sessions(tgtd, 1)


def test_different_lus_are_refused(tgtd: Tgtd) -> None:
    urls = [_urls(tgtd, 2)[0], _urls(tgtd, 3)[1]]
    with pytest.raises(InvalidParameterError, match="not paths of one LU"):
        iscsikit.open_multipath_lun(urls, **OPTIONS)
    # Both sessions were logged out again.
    assert _no_sessions(tgtd, 2, 3)


def test_round_robin_uses_both_paths(tgtd: Tgtd) -> None:
    with _open(tgtd, 1) as lun:
        for i in range(200):
            lun.write(i * 4096, i.to_bytes(2, "big") * 2048)
        for i in range(200):
            assert lun.read(i * 4096, 4096) == i.to_bytes(2, "big") * 2048
        counts = [p.commands for p in lun.paths]
        print(f"\nround-robin: {counts} calls per path")
        assert counts == [200, 200]


def test_failover_uses_one_path(tgtd: Tgtd) -> None:
    with _open(tgtd, 1, "failover") as lun:
        for i in range(50):
            lun.read(i * 4096, 4096)
        assert [p.commands for p in lun.paths] == [50, 0]


@pytest.mark.parametrize("policy", ["round-robin", "queue-depth"])
def test_connection_dropped_during_write_stream(tgtd: Tgtd, policy: Policy) -> None:
    tid = 4
    with _open(tgtd, tid, policy) as lun, _Stream(lun) as stream:
        stream.wait("writes", lambda: stream.written >= 50)
        failed = lun._paths[0]
        _drop_path(tgtd, tid, failed)
        stream.wait("path 0 failed", lambda: lun.paths[0].failures >= 1)
        other = lun.paths[1].commands
        stream.wait("I/O on path 1", lambda: lun.paths[1].commands >= other + 20)
        stream.wait("path 0 back", lambda: lun.paths[0].state == "active")
        back = lun.paths[0].commands
        stream.wait("I/O on path 0 again", lambda: lun.paths[0].commands >= back + 20)
    assert not stream.errors, stream.errors
    blocks, bad = _verify(tgtd, tid, stream.written)
    info = lun.paths
    print(
        f"\n{policy}, connection dropped: {stream.written} writes, {blocks} blocks "
        f"read back, {bad} bad, "
        f"calls per path {[p.commands for p in info]}, failures {[p.failures for p in info]}, "
        f"re-issued {lun.reissues}"
    )
    assert bad == 0


def test_portal_deleted_and_added_again(tgtd: Tgtd) -> None:
    tid = 4
    second = _SECOND[tgtd.portal]
    host, port = second.rsplit(":", 1)
    with _open(tgtd, tid) as lun, _Stream(lun) as stream:
        stream.wait("writes", lambda: stream.written >= 50)
        tgtd.delete_portal(second)
        try:
            _drop_path(tgtd, tid, lun._paths[1])
            stream.wait("path 1 failed", lambda: lun.paths[1].state == "failed")
            during = stream.written
            survivor = lun.paths[0].commands
            # Down for a while: reconnects are refused, the stream goes on over path 0.
            stream.wait("I/O on path 0", lambda: lun.paths[0].commands >= survivor + 50)
            time.sleep(3)
            assert lun.paths[1].state == "failed"
            assert stream.written > during
        finally:
            tgtd.add_portal(host, int(port))
        stream.wait("path 1 back", lambda: lun.paths[1].state == "active")
        back = lun.paths[1].commands
        stream.wait("I/O on path 1 again", lambda: lun.paths[1].commands >= back + 20)
    assert not stream.errors, stream.errors
    blocks, bad = _verify(tgtd, tid, stream.written)
    info = lun.paths
    print(
        f"\nportal deleted and re-added: {stream.written} writes, {blocks} blocks "
        f"read back, {bad} bad, "
        f"calls per path {[p.commands for p in info]}, failures {[p.failures for p in info]}, "
        f"re-issued {lun.reissues}"
    )
    assert bad == 0
