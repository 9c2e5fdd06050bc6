"""MultipathLun over in-memory paths: policies, re-issue rules, back-off, ALUA.

Each path is a real :class:`~iscsikit.lun.lun.Lun` over a :class:`DiskChannel`, a
CommandChannel that runs READ/WRITE(16) against one shared bytearray (the LU) and can be
told to fail: a dead connection (a transport error), sense from the LU, an ALUA state
per path answered by REPORT TARGET PORT GROUPS, or one UNIT ATTENTION 2A/06.
"""

from __future__ import annotations

import itertools
import struct

import pytest

from iscsikit.errors import ConnectionFailedError, InvalidParameterError
from iscsikit.lun import ops
from iscsikit.lun.lun import Lun
from iscsikit.lun.multipath import (
    AluaWatch,
    MultipathLun,
    Path,
    Policy,
    check_same_lu,
    path_failure,
)
from iscsikit.plugin.transport import CommandChannel
from iscsikit.proto.task import ScsiTask, TmfTask
from iscsikit.scsi.capacity import Capacity
from iscsikit.scsi.errors import ScsiCommandError
from iscsikit.scsi.inquiry import parse_inquiry
from iscsikit.scsi.vpd import Designator

BS = 512
BLOCKS = 64
NAA = Designator(0, 1, False, 0, 3, bytes.fromhex("6001405abcdef0123456789abcdef012"))
OTHER = Designator(0, 1, False, 0, 3, bytes.fromhex("6001405abcdef0123456789abcdef099"))


def _fixed_sense(key: int, asc: int, ascq: int) -> bytes:
    sense = bytearray(18)
    sense[0], sense[2], sense[7], sense[12], sense[13] = 0x70, key, 10, asc, ascq
    return bytes(sense)


class DiskChannel(CommandChannel):
    """One path's connection to the shared in-memory LU."""

    def __init__(self, disk: bytearray, port: int) -> None:
        self.disk = disk
        self.port = port
        self.down = False
        self.sense: bytes | None = None
        self.unit_attention: bytes | None = None
        #: Port groups (id, state, relative ports) RTPG reports, shared by the paths.
        self.groups: list[tuple[int, int, list[int]]] = []
        self.pending: list[ScsiTask] = []
        self.ran = 0

    def submit(self, task: ScsiTask) -> None:
        self.pending.append(task)

    def wait(self, task: ScsiTask | None = None) -> None:
        pending, self.pending = self.pending, []
        for t in pending:
            self._run(t)
            t.done = True

    def _run(self, t: ScsiTask) -> None:
        if self.down:
            t.error = ConnectionFailedError(f"port {self.port}: connection dropped")
            return
        t.status = 0
        if self.unit_attention is not None:
            t.status, t.sense_data, self.unit_attention = 2, self.unit_attention, None
            return
        opcode = t.cdb[0]
        if opcode == 0xA3:
            data = b"".join(
                bytes([state, 0x0F]) + gid.to_bytes(2, "big") + bytes([0, 0, 0, len(ports)])
                + b"".join(b"\0\0" + p.to_bytes(2, "big") for p in ports)
                for gid, state, ports in self.groups
            )  # fmt: skip
            self._read(t, len(data).to_bytes(4, "big") + data)
            return
        if self.sense is not None:
            t.status, t.sense_data = 2, self.sense
            return
        self.ran += 1
        if opcode in (0x88, 0x8A):
            _, _, lba, blocks = struct.unpack_from(">BBQI", t.cdb)
            start, end = lba * BS, (lba + blocks) * BS
            if opcode == 0x88:
                self._read(t, bytes(self.disk[start:end]))
            else:
                assert t.write_view is not None
                self.disk[start:end] = t.write_view[: end - start]

    @staticmethod
    def _read(t: ScsiTask, data: bytes) -> None:
        assert t.read_view is not None
        n = min(len(data), len(t.read_view))
        t.read_view[:n] = data[:n]
        t.residual = t.expected_length - n

    def task_management(self, task: TmfTask) -> TmfTask:
        raise NotImplementedError

    @property
    def closed(self) -> bool:
        return self.down


def _geometry() -> ops.Geometry:
    inquiry = parse_inquiry(bytes([0, 0, 5, 0x12, 31, 0, 0, 2]) + b"TEST    DISK            0001")
    return ops.Geometry(
        lun=1,
        capacity=Capacity(last_lba=BLOCKS - 1, block_size=BS),
        inquiry=inquiry,
        read_only=False,
        max_transfer=1 << 20,
    )


def _setup(
    n: int = 2,
    policy: Policy = "round-robin",
    *,
    alua: list[int] | None = None,
    identities: list[Designator] | None = None,
    fence_timeout: float = 0.0,
) -> tuple[MultipathLun, list[DiskChannel], list[float]]:
    """``fence_timeout`` 0 (no fence: a failed write moves at once) for the tests of
    policies and back-off; the fence has its tests in test_multipath_fence_rule.py."""
    disk = bytearray(BS * BLOCKS)
    channels = [DiskChannel(disk, port=i + 1) for i in range(n)]
    if alua is not None:
        groups = [(i + 1, state, [i + 1]) for i, state in enumerate(alua)]
        for ch in channels:
            ch.groups = groups
    paths = []
    for i, ch in enumerate(channels):
        watch = AluaWatch(ch)
        lun = Lun(None, watch, _geometry(), owns=False)  # type: ignore[arg-type]
        paths.append(
            Path(
                index=i,
                name=f"portal{i}",
                lun=lun,
                identity=(identities or [NAA] * n)[i],
                relative_port=i + 1,
                alua_capable=alua is not None,
            )
        )
    now = [0.0]

    def sleep(seconds: float) -> None:
        now[0] += seconds

    check_same_lu(paths)
    mp = MultipathLun(
        paths,
        policy,
        no_path_timeout=10,
        retry_interval=1,
        max_retry_interval=4,
        fence_timeout=fence_timeout,
        clock=lambda: now[0],
        sleep=sleep,
    )
    return mp, channels, now


def test_round_robin_alternates_and_data_round_trips() -> None:
    mp, channels, _ = _setup(3)
    for i in range(9):
        mp.write(i * BS, bytes([i]) * BS)
    assert [ch.ran for ch in channels] == [3, 3, 3]
    assert all(mp.read(i * BS, BS) == bytes([i]) * BS for i in range(9))
    assert [p.commands for p in mp.paths] == [6, 6, 6]
    mp.write(10, b"unaligned")  # read-modify-write inside one call on one path
    assert mp.read(10, 9) == b"unaligned"


def test_failover_sticks_to_one_path_until_it_fails() -> None:
    mp, channels, _ = _setup(2, "failover")
    for _ in range(5):
        mp.read(0, BS)
    assert [ch.ran for ch in channels] == [5, 0]
    channels[0].down = True
    mp.write(0, b"x" * BS)
    assert mp.reissues == 1
    assert [p.state for p in mp.paths] == ["failed", "active"]
    assert channels[1].ran == 1 and mp.read(0, 1) == b"x"


def test_queue_depth_prefers_the_idle_path() -> None:
    mp, channels, _ = _setup(2, "queue-depth")
    mp._paths[0].outstanding = 3  # as if another thread had three calls on it
    mp.read(0, BS)
    mp.read(0, BS)
    assert [ch.ran for ch in channels] == [0, 2]
    mp._paths[0].outstanding = 0
    mp.read(0, BS)
    mp.read(0, BS)
    assert [ch.ran for ch in channels] == [1, 3]


def test_transport_failure_is_reissued_on_another_path_and_the_path_comes_back() -> None:
    mp, channels, now = _setup(2)
    channels[0].down = True
    for i in range(4):
        mp.write(i * BS, bytes([i + 1]) * BS)
    assert mp.paths[0].state == "failed" and mp.paths[0].failures == 1
    assert channels[1].ran == 4 and mp.reissues == 1
    channels[0].down = False  # the session logged in again
    mp.read(0, BS)
    assert mp.paths[0].state == "failed"  # still resting: back-off of 1 s
    now[0] += 1.0
    mp.read(0, BS)
    mp.read(0, BS)
    assert mp.paths[0].state == "active" and channels[0].ran >= 1
    assert all(mp.read(i * BS, BS) == bytes([i + 1]) * BS for i in range(4))


def test_backoff_doubles_while_the_session_stays_down() -> None:
    mp, channels, now = _setup(2)
    channels[0].down = True
    mp.read(0, BS)
    retry = [mp._paths[0].retry_at]
    for _ in range(4):
        now[0] = mp._paths[0].retry_at
        mp.read(0, BS)
        retry.append(mp._paths[0].retry_at)
    gaps = [b - a for a, b in itertools.pairwise(retry)]
    assert gaps == [2, 4, 4, 4]


def test_scsi_error_from_the_lu_is_not_reissued() -> None:
    mp, channels, _ = _setup(2)
    for ch in channels:
        ch.sense = _fixed_sense(0x3, 0x11, 0x00)  # MEDIUM ERROR, unrecovered read error
    with pytest.raises(ScsiCommandError, match="MEDIUM ERROR"):
        mp.read(0, BS)
    assert mp.reissues == 0 and [p.state for p in mp.paths] == ["active", "active"]


def test_all_paths_down_fails_after_no_path_timeout() -> None:
    mp, channels, now = _setup(2)
    for ch in channels:
        ch.down = True
    with pytest.raises(ConnectionFailedError, match="no usable path within 10 s"):
        mp.read(0, BS)
    assert now[0] >= 10
    assert [p.state for p in mp.paths] == ["failed", "failed"]


def test_alua_optimized_first_non_optimized_only_without_it_never_standby() -> None:
    # Path 0 active/non-optimized, path 1 active/optimized, path 2 standby.
    mp, channels, _ = _setup(3, alua=[1, 0, 2])
    assert [p.alua for p in mp.paths] == ["active/non-optimized", "active/optimized", "standby"]
    assert [p.state for p in mp.paths] == ["active", "active", "standby"]
    for _ in range(4):
        mp.read(0, BS)
    assert [ch.ran for ch in channels] == [0, 4, 0]
    channels[1].down = True
    for _ in range(4):
        mp.read(0, BS)
    assert [ch.ran for ch in channels] == [4, 4, 0]
    channels[0].down = True
    with pytest.raises(ConnectionFailedError):  # the standby path is never used
        mp.read(0, BS)
    assert channels[2].ran == 0


def test_unit_attention_state_change_rereads_the_groups() -> None:
    mp, channels, _ = _setup(2, alua=[0, 2])
    assert mp.alua_refreshes == 1
    mp.read(0, BS)
    assert [ch.ran for ch in channels] == [1, 0]
    # The target swaps the groups and reports 2A/06 on the next command.
    for ch in channels:
        ch.groups = [(1, 2, [1]), (2, 0, [2])]
    channels[0].unit_attention = _fixed_sense(0x6, 0x2A, 0x06)
    mp.read(0, BS)  # the UA is retried by ops; the watch marks the states stale
    mp.read(0, BS)
    assert mp.alua_refreshes == 2
    assert [p.alua for p in mp.paths] == ["standby", "active/optimized"]
    assert channels[1].ran == 1


def test_alua_not_ready_moves_the_call_to_another_group() -> None:
    mp, channels, _ = _setup(2, alua=[0, 1])
    channels[0].sense = _fixed_sense(0x2, 0x04, 0x0B)  # NOT READY, target port in standby
    for ch in channels:
        ch.groups = [(1, 2, [1]), (2, 0, [2])]
    mp.write(0, b"y" * BS)
    assert mp.reissues == 1 and channels[1].ran == 1
    assert [p.state for p in mp.paths] == ["standby", "active"]


def test_different_lus_refused() -> None:
    with pytest.raises(InvalidParameterError, match="not paths of one LU"):
        _setup(2, identities=[NAA, OTHER])
    with pytest.raises(InvalidParameterError, match="no identifier"):
        _setup(2, identities=[NAA, None])  # type: ignore[list-item]


def test_path_failure_classification() -> None:
    from iscsikit.errors import LocalProtocolError, RemoteProtocolError, TransportTimeoutError

    assert path_failure(ConnectionFailedError("x"))
    assert path_failure(TransportTimeoutError("x"))
    assert path_failure(RemoteProtocolError("x"))
    assert not path_failure(LocalProtocolError("x"))
    assert not path_failure(InvalidParameterError("x"))
    assert not path_failure(ScsiCommandError("READ(16)", 2))


def test_unknown_policy_refused() -> None:
    with pytest.raises(InvalidParameterError):
        _setup(2, "random")  # type: ignore[arg-type]
