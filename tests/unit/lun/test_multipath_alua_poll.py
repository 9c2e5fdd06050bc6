"""MultipathLun reads ALUA states without being told: while no path is usable, and
every ``alua_poll_interval`` while some path is not active/optimized (LIO reports a
group's change only to that group's I_T nexuses: a path without I/O never hears it).

Each path is a real :class:`~iscsikit.lun.lun.Lun` over :class:`GroupChannel`, which
answers REPORT TARGET PORT GROUPS from states the test changes and, like LIO, refuses
data commands through a standby / unavailable port with NOT READY 04/0B / 04/0C.
"""

from __future__ import annotations

from iscsikit.lun import ops
from iscsikit.lun.lun import Lun
from iscsikit.lun.multipath import ALUA_POLL_INTERVAL, AluaWatch, MultipathLun, Path
from iscsikit.plugin.transport import CommandChannel
from iscsikit.proto.task import ScsiTask, TmfTask
from iscsikit.scsi.alua import AccessState
from iscsikit.scsi.capacity import Capacity
from iscsikit.scsi.inquiry import parse_inquiry
from iscsikit.scsi.vpd import Designator

AO, AN = AccessState.ACTIVE_OPTIMIZED, AccessState.ACTIVE_NON_OPTIMIZED
STANDBY, UNAVAILABLE = AccessState.STANDBY, AccessState.UNAVAILABLE
NAA = Designator(0, 1, False, 0, 3, bytes.fromhex("6001405fedcba9876543210fedcba987"))


class GroupChannel(CommandChannel):
    """One port of a LU whose port groups' states live in ``states`` (group id -> state)."""

    def __init__(self, states: dict[int, AccessState], group: int) -> None:
        self.states = states
        self.group = group
        self.rtpg = 0
        self.data = 0

    def submit(self, task: ScsiTask) -> None:
        task.status = 0
        if task.cdb[0] == 0xA3:
            self.rtpg += 1
            body = b"".join(
                bytes([state, 0x0F]) + gid.to_bytes(2, "big") + bytes([0, 0, 0, 1])
                + gid.to_bytes(4, "big")
                for gid, state in self.states.items()
            )  # fmt: skip
            answer = len(body).to_bytes(4, "big") + body
            assert task.read_view is not None
            task.read_view[: len(answer)] = answer
            task.residual = task.expected_length - len(answer)
        elif not self.states[self.group].usable:
            sense = bytearray(18)
            ascq = 0x0B if self.states[self.group] is STANDBY else 0x0C
            sense[0], sense[2], sense[7], sense[12], sense[13] = 0x70, 2, 10, 0x04, ascq
            task.status, task.sense_data = 2, bytes(sense)
        else:
            self.data += 1
            if task.read_view is not None:
                task.residual = 0
        task.done = True

    def wait(self, task: ScsiTask | None = None) -> None:
        pass

    def task_management(self, task: TmfTask) -> TmfTask:
        raise NotImplementedError

    @property
    def closed(self) -> bool:
        return False


def _setup(
    *states: AccessState, on_sleep: dict[float, dict[int, AccessState]] | None = None
) -> tuple[MultipathLun, list[GroupChannel], dict[int, AccessState], list[float]]:
    """Paths 0, 1, ... in groups 10, 20, ...; ``on_sleep``: states to set once the
    multipath LUN has slept that long in all (fake time)."""
    shared = {10 * (i + 1): state for i, state in enumerate(states)}
    channels = [GroupChannel(shared, gid) for gid in shared]
    standard = bytes([0, 0, 5, 0x12, 31, 0x10, 0, 2]) + b"TEST    ALUA            0001"
    inquiry = parse_inquiry(standard)  # TPGS 01b: implicit ALUA
    geometry = ops.Geometry(1, Capacity(last_lba=63, block_size=512), inquiry, False, 1 << 20)
    paths = [
        Path(
            index=i,
            name=f"portal{i}",
            lun=Lun(None, AluaWatch(ch), geometry, owns=False),  # type: ignore[arg-type]
            identity=NAA,
            relative_port=ch.group,
            group_id=ch.group,
            alua_capable=True,
        )
        for i, ch in enumerate(channels)
    ]
    now = [0.0]
    slept = [0.0]

    def sleep(seconds: float) -> None:
        now[0] += seconds
        slept[0] += seconds
        for after, change in sorted((on_sleep or {}).items()):
            if slept[0] >= after:
                shared.update(change)

    mp = MultipathLun(paths, "round-robin", no_path_timeout=30, clock=lambda: now[0], sleep=sleep)
    return mp, channels, shared, now


def test_with_no_usable_path_the_states_are_read_until_one_is() -> None:
    # Both standby at first; after 2 s (the writer waiting) group 20 becomes optimized.
    mp, channels, _, _ = _setup(STANDBY, STANDBY, on_sleep={2.0: {20: AO}})
    assert mp.read(0, 512) == bytes(512)
    assert [p.alua for p in mp.paths] == ["standby", "active/optimized"]
    assert (channels[0].data, channels[1].data) == (0, 1)
    assert mp.alua_refreshes > 2


def test_a_group_that_becomes_optimized_while_idle_is_found_by_the_poll() -> None:
    mp, channels, shared, now = _setup(UNAVAILABLE, AN)
    mp.read(0, 512)
    assert (channels[0].data, channels[1].data) == (0, 1)
    shared[10] = AO  # LIO would tell path 0's I_T nexus only, which carries no I/O
    now[0] += ALUA_POLL_INTERVAL / 2
    mp.read(0, 512)
    assert (channels[0].data, channels[1].data) == (0, 2), "read again too early"
    now[0] += ALUA_POLL_INTERVAL / 2
    mp.read(0, 512)
    assert [p.alua for p in mp.paths] == ["active/optimized", "active/non-optimized"]
    assert (channels[0].data, channels[1].data) == (1, 2)
    # The poll went through the path in use (path 1), not the unavailable one.
    assert channels[0].rtpg == 1 and channels[1].rtpg == 1


def test_no_poll_while_every_path_is_optimized() -> None:
    mp, channels, _, now = _setup(AO, AO)
    for _ in range(4):
        now[0] += ALUA_POLL_INTERVAL
        mp.read(0, 512)
    assert mp.alua_refreshes == 1
    assert (channels[0].data, channels[1].data) == (2, 2)
