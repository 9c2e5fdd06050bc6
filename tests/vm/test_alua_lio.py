"""Userspace multipath against LIO's ALUA (issue 13, item 2): the states LIO sets are
the ones :class:`~iscsikit.lun.multipath.MultipathLun` obeys.

One LIO target (iscsikit.testing.lio.AluaLio) with two TPGs, tag 1 on 127.0.0.1 and
tag 2 on 127.0.0.2 (one port), both mapping one fileio LU as LUN 0; each TPG's LUN is
the only member of its own ALUA target port group (10 and 20, implicit ALUA).
``iscsikit.open_multipath_lun`` logs in through both portals, in the guest:

* both paths are grouped (one VPD 0x83 identity), each with the port group and the
  access state LIO gave it;
* with one group active/optimized and the other standby, every call goes through the
  optimized port, with failover and with round-robin -- counted by the initiator
  (``PathInfo.commands``) and by LIO (``in_cmds`` of each port's LUN);
* during a verified write stream (every block read back from LIO's backing file at the
  end) the groups swap: the optimized one goes standby (LIO raises UNIT ATTENTION 2A/06,
  then NOT READY 04/0B), and a moment later the standby one goes active/optimized: I/O
  moves over, the writer sees no error, no block is lost or corrupted;
* an active/non-optimized port carries I/O only while no optimized one is up, and an
  unavailable one carries none; a group that becomes optimized again while it carries
  no I/O (LIO tells only that group's I_T nexuses) is found by the initiator's own
  REPORT TARGET PORT GROUPS poll and used again.

The counts are printed and recorded as junit properties.
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
from iscsikit.lun import ops
from iscsikit.lun.multipath import ALUA_POLL_INTERVAL, MultipathLun, Policy
from iscsikit.proto.ffp import Timers
from iscsikit.scsi.alua import (
    AccessState,
    parse_report_target_port_groups,
    report_target_port_groups,
)
from iscsikit.testing.lio import AluaLio, lio_missing
from iscsikit.testing.vmguest.checks import WAIT

IQN = "iqn.2024-01.test.iscsikit.vm:lio-alua"
LUN_SIZE = 32 << 20
BLOCK = 64 << 10
BLOCKS = LUN_SIZE // BLOCK
SEED = int(os.environ.get("ISCSIKIT_SEED", random.randrange(1 << 32)))
AO, AN, STANDBY, UNAVAILABLE = "active/optimized", "active/non-optimized", "standby", "unavailable"
#: Quick failure detection and short logins, as the userspace multipath tests use.
OPTIONS: dict[str, Any] = {
    "DefaultTime2Wait": 0,
    "timers": Timers(noop_out_interval=2, noop_out_timeout=2, command_timeout=5, tick=0.1),
    "timeout": 5,
    "retry_delay": 0.5,
}
#: Both groups standby for this long while the stream runs (the initiator waits for a
#: usable path meanwhile); then the other group becomes active/optimized.
GAP = 1.0

Record = Callable[[str, object], None]


@pytest.fixture(scope="module")
def lio(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AluaLio]:
    missing = lio_missing()
    assert missing is None, missing
    with AluaLio(IQN, workdir=tmp_path_factory.mktemp("lio-alua"), size=LUN_SIZE) as lio:
        yield lio


def open_mp(lio: AluaLio, policy: Policy = "round-robin") -> MultipathLun:
    return iscsikit.open_multipath_lun(
        lio.urls, policy, no_path_timeout=WAIT, retry_interval=0.5, max_retry_interval=1.0,
        **OPTIONS,
    )  # fmt: skip


def lio_counts(lio: AluaLio) -> list[int]:
    """Commands LIO has received through each port."""
    return [lio.in_cmds(i) for i in range(len(lio.ports))]


def since(before: list[int], after: list[int]) -> list[int]:
    return [b - a for a, b in zip(before, after, strict=True)]


def pattern(seq: int) -> bytes:
    """What write number ``seq`` puts in block ``seq % BLOCKS``."""
    head = f"{SEED:08x}:{seq:08d}:".encode()
    return (head * (BLOCK // len(head) + 1))[:BLOCK]


def report(record: Record, what: str, **counts: object) -> None:
    for name, value in counts.items():
        record(f"{what}_{name}", value)
    print(f"\n[alua {what}] " + ", ".join(f"{k} {v}" for k, v in counts.items()))


def write_read(mp: MultipathLun, n: int, base: int = 0) -> None:
    """``n`` 4 KiB writes, then the same blocks read back and compared."""
    for i in range(n):
        mp.write((base + i) * 4096, (base + i).to_bytes(4, "big") * 1024)
    for i in range(n):
        assert mp.read((base + i) * 4096, 4096) == (base + i).to_bytes(4, "big") * 1024


class Stream:
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
                self.lun.write((self.written % BLOCKS) * BLOCK, pattern(self.written))
                self.written += 1
        except BaseException as exc:
            self.errors.append(exc)

    def __enter__(self) -> Stream:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(WAIT)
        assert not self._thread.is_alive(), "the writer did not stop"

    def wait(self, what: str, until: Callable[[], bool], timeout: float = WAIT) -> None:
        deadline = time.monotonic() + timeout
        while not until():
            assert not self.errors, self.errors
            assert self._thread.is_alive(), "the writer stopped"
            assert time.monotonic() < deadline, f"timed out waiting: {what}: {self.lun!r}"
            time.sleep(0.01)

    def verify(self, lio: AluaLio) -> tuple[int, int]:
        """Every block's last acknowledged write, read from LIO's backing file:
        (blocks, bad blocks)."""
        last = {seq % BLOCKS: seq for seq in range(max(self.written - BLOCKS, 0), self.written)}
        bad = sum(lio.read_backing(b * BLOCK, BLOCK) != pattern(seq) for b, seq in last.items())
        return len(last), bad


@pytest.mark.parametrize(
    ("states", "used"),
    [((AO, STANDBY), ["active", "standby"]), ((UNAVAILABLE, AN), ["standby", "active"])],
)
def test_paths_grouped_with_lios_port_groups_and_states(
    lio: AluaLio, states: tuple[str, str], used: list[str]
) -> None:
    lio.set_states(*states)
    with open_mp(lio) as mp:
        info = mp.paths
        assert [p.name for p in info] == [port.portal for port in lio.ports]
        identities = {path.identity_key for path in mp._paths}
        assert len(identities) == 1 and None not in identities, identities
        assert [p.group_id for p in info] == [port.group_id for port in lio.ports] == [10, 20]
        assert [p.alua for p in info] == list(states)
        assert [p.state for p in info] == used
        ports = [p.relative_port for p in info]
        assert None not in ports and len(set(ports)) == 2, ports
        assert all(lio.sessions(i) for i in range(2)), "no session through each port"
        # LIO's own answer, parsed: every group with the state LIO holds.
        raw = ops.data_of(mp.execute(report_target_port_groups(), read_length=1024))
        groups = parse_report_target_port_groups(raw)
        for port, state in zip(lio.ports, states, strict=True):
            group = groups.group(port.group_id)
            assert group is not None, (port, raw.hex())
            assert AccessState(group.state).text == state
    print(f"\n[alua grouping] {states}: {[(p.name, p.group_id, p.alua) for p in info]}")
    print(f"[alua grouping] LIO's REPORT TARGET PORT GROUPS data: {raw.hex()}")


@pytest.mark.parametrize("policy", ["failover", "round-robin"])
def test_io_only_through_the_optimized_group(
    lio: AluaLio, policy: Policy, record_property: Record
) -> None:
    # The second port is the optimized one: failover alone would start on the first.
    lio.set_states(STANDBY, AO)
    with open_mp(lio, policy) as mp:
        before = lio_counts(lio)
        write_read(mp, 100)
        received = since(before, lio_counts(lio))
        calls = [p.commands for p in mp.paths]
    report(record_property, f"{policy}-standby-optimized", calls=calls, lio_in_cmds=received)
    assert calls == [0, 200]
    assert received[0] == 0 and received[1] >= 200, received


def test_groups_swap_during_a_verified_write_stream(lio: AluaLio, record_property: Record) -> None:
    lio.set_states(AO, STANDBY)
    with open_mp(lio) as mp, Stream(mp) as stream:
        stream.wait("writes", lambda: stream.written >= 50)
        assert [p.commands for p in mp.paths][1] == 0
        refreshes = mp.alua_refreshes
        lio.set_state(0, STANDBY)  # LIO queues UA 2A/06; then answers NOT READY 04/0B
        at_swap = stream.written
        time.sleep(GAP)  # no usable path meanwhile: the writer waits for one
        lio.set_state(1, AO)
        on_b = mp.paths[1].commands
        stream.wait("I/O through the second port", lambda: mp.paths[1].commands >= on_b + 50)
        stream.wait("the new states", lambda: [p.alua for p in mp.paths] == [STANDBY, AO])
        settled, calls_a, written = lio_counts(lio), mp.paths[0].commands, stream.written
        stream.wait("more writes", lambda: stream.written >= written + 50)
        quiet = since(settled, lio_counts(lio))
        assert mp.paths[0].commands == calls_a
    assert not stream.errors, stream.errors
    blocks, bad = stream.verify(lio)
    info = mp.paths
    report(
        record_property,
        "swap",
        blocks_written=stream.written,
        written_before_swap=at_swap,
        blocks_verified=blocks,
        blocks_bad=bad,
        calls=[p.commands for p in info],
        reissued=mp.reissues,
        alua_refreshes=mp.alua_refreshes - refreshes,
        lio_in_cmds_after=quiet,
    )
    assert bad == 0
    assert stream.written > at_swap + 50
    assert mp.alua_refreshes > refreshes  # (a poll may find the change before a write)
    # One write may have reached LIO before the snapshot and been acknowledged after it.
    assert quiet[0] == 0 and quiet[1] >= 49, quiet


def test_non_optimized_only_without_an_optimized_group_unavailable_never(
    lio: AluaLio, record_property: Record
) -> None:
    lio.set_states(AO, AN)
    counts: dict[str, list[int]] = {}
    with open_mp(lio, "round-robin") as mp:

        def phase(name: str, base: int) -> None:
            write_read(mp, 10, base)  # the first calls meet the UA / NOT READY
            before, calls = lio_counts(lio), [p.commands for p in mp.paths]
            write_read(mp, 100, base + 10)
            counts[f"{name}_lio_in_cmds"] = since(before, lio_counts(lio))
            counts[f"{name}_calls"] = since(calls, [p.commands for p in mp.paths])

        phase("optimized-and-non-optimized", 0)
        assert [p.alua for p in mp.paths] == [AO, AN]
        lio.set_state(0, UNAVAILABLE)
        phase("unavailable-and-non-optimized", 200)
        assert [p.alua for p in mp.paths] == [UNAVAILABLE, AN]
        assert [p.state for p in mp.paths] == ["standby", "active"]
        lio.set_state(0, AO)
        # No UNIT ATTENTION reaches the initiator now (LIO sends it through the idle
        # port): it reads the states again by itself within ALUA_POLL_INTERVAL.
        started = time.monotonic()
        deadline = started + 3 * ALUA_POLL_INTERVAL + WAIT
        while [p.alua for p in mp.paths] != [AO, AN]:
            assert time.monotonic() < deadline, f"never saw the optimized group back: {mp!r}"
            write_read(mp, 5, 400)
        seen_after = round(time.monotonic() - started, 1)
        phase("optimized-again", 400)
    report(record_property, "non-optimized", **counts, optimized_again_seen_after_s=seen_after)
    assert counts["optimized-and-non-optimized_calls"] == [200, 0]
    assert counts["optimized-and-non-optimized_lio_in_cmds"][1] == 0
    assert counts["unavailable-and-non-optimized_calls"] == [0, 200]
    assert counts["unavailable-and-non-optimized_lio_in_cmds"][0] == 0
    assert counts["optimized-again_calls"] == [200, 0]
    assert counts["optimized-again_lio_in_cmds"][1] == 0
