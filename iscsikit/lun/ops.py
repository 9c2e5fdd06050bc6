"""What a LUN operation means in SCSI commands, written once for every I/O style.

Each operation is a generator: it yields lists of :class:`ScsiTask` to run (the tasks
of one list may run concurrently) and gets control back once all of them are done.
:class:`~iscsikit.lun.lun.Lun` drives these generators with a blocking channel and
:class:`~iscsikit.lun.aio.AsyncLun` with an asyncio one, so retries, splitting,
alignment and error checking exist exactly once.

Retries: UNIT ATTENTION, BUSY, TASK SET FULL and NOT READY "becoming ready" are
retried (``RETRIES`` times) as the kernel's SCSI layer does; every other failure
raises :class:`~iscsikit.scsi.errors.ScsiCommandError` (or the task's transport error).
"""

from __future__ import annotations

from collections.abc import Generator
from dataclasses import dataclass
from typing import TypeVar

from iscsikit.errors import InvalidParameterError
from iscsikit.proto.task import ScsiTask
from iscsikit.scsi import cdb as C
from iscsikit.scsi.capacity import Capacity, parse_read_capacity10, parse_read_capacity16
from iscsikit.scsi.errors import ScsiCommandError, retryable
from iscsikit.scsi.inquiry import StandardInquiry, parse_inquiry
from iscsikit.scsi.mode import parse_mode_sense6
from iscsikit.scsi.sense import Sense, SenseKey, decode_sense
from iscsikit.scsi.vpd import (
    BlockLimits,
    LogicalBlockProvisioning,
    parse_vpd_block_limits,
    parse_vpd_logical_block_provisioning,
    parse_vpd_supported_pages,
)

#: How often a retryable condition is retried before it is reported.
RETRIES = 5
#: Largest single READ/WRITE when the target reports no limit (bytes).
DEFAULT_MAX_TRANSFER = 4 * 1024 * 1024

_R = TypeVar("_R")
Op = Generator[list[ScsiTask], None, _R]


def _sense(task: ScsiTask) -> Sense | None:
    if not task.sense_data:
        return None
    try:
        return decode_sense(task.sense_data)
    except ValueError:
        return None


def check(task: ScsiTask) -> Sense | None:
    """Raise if ``task`` failed; returns None when it is GOOD.  For a retryable failure
    the sense (or None for BUSY) is returned through :class:`_Retry`."""
    if task.error is not None:
        raise task.error
    if task.status in (0, 4):  # GOOD, CONDITION MET
        return None
    sense = _sense(task)
    if retryable(task.status, sense):
        raise _Retry(task, sense)
    raise ScsiCommandError.from_cdb(task.cdb, task.status, sense)


class _Retry(Exception):
    def __init__(self, task: ScsiTask, sense: Sense | None) -> None:
        self.task = task
        self.sense = sense


def run_tasks(make: list[ScsiTask]) -> Generator[list[ScsiTask], None, list[ScsiTask]]:
    """Run tasks concurrently; re-issue the ones that hit a retryable condition."""
    tasks = make
    done: dict[int, ScsiTask] = {}
    pending = list(enumerate(tasks))
    for attempt in range(RETRIES + 1):
        yield [task for _, task in pending]
        again: list[tuple[int, ScsiTask]] = []
        for index, task in pending:
            try:
                check(task)
            except _Retry as retry:
                if attempt == RETRIES:
                    raise ScsiCommandError.from_cdb(task.cdb, task.status, retry.sense) from None
                again.append((index, _clone(task)))
                continue
            done[index] = task
        if not again:
            break
        pending = again
    return [done[i] for i in range(len(tasks))]


def _clone(task: ScsiTask) -> ScsiTask:
    return ScsiTask(
        task.cdb,
        lun=task.lun,
        read_buffer=task.read_view,
        write_data=task.write_view,
        expected_length=task.expected_length,
    )


def command(
    cdb: bytes,
    *,
    lun: int,
    read_length: int = 0,
    write_data: bytes | bytearray | memoryview | None = None,
) -> Generator[list[ScsiTask], None, ScsiTask]:
    """One command with retries; a read's data is ``task.read_view[:task.transferred]``."""
    buffer = bytearray(read_length) if read_length else None
    task = ScsiTask(cdb, lun=lun, read_buffer=buffer, write_data=write_data)
    (done,) = yield from run_tasks([task])
    return done


def data_of(task: ScsiTask) -> bytes:
    assert task.read_view is not None
    return bytes(task.read_view[: task.transferred])


# -- probing a LUN -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Geometry:
    """What the data path needs to know about a LUN, learned when it is opened."""

    lun: int
    capacity: Capacity
    inquiry: StandardInquiry
    read_only: bool
    max_transfer: int
    block_limits: BlockLimits | None = None
    provisioning: LogicalBlockProvisioning | None = None

    @property
    def block_size(self) -> int:
        return self.capacity.block_size

    @property
    def size(self) -> int:
        return self.capacity.size_bytes

    @property
    def can_unmap(self) -> bool:
        """UNMAP is supported: the Logical Block Provisioning VPD page sets LBPU
        (SBC-4 §6.6.6)."""
        return self.provisioning is not None and self.provisioning.lbpu


class GeometryView:
    """What :class:`~iscsikit.lun.Lun` and :class:`~iscsikit.lun.AsyncLun` say about
    themselves, read from their :class:`Geometry`."""

    geometry: Geometry

    @property
    def lun(self) -> int:
        return self.geometry.lun

    @property
    def size(self) -> int:
        """Capacity in bytes."""
        return self.geometry.size

    @property
    def block_size(self) -> int:
        """Logical block size in bytes."""
        return self.geometry.block_size

    @property
    def read_only(self) -> bool:
        return self.geometry.read_only

    @property
    def can_unmap(self) -> bool:
        """Whether :meth:`unmap` is supported (LBPU in the provisioning VPD page)."""
        return self.geometry.can_unmap


def probe(lun: int) -> Generator[list[ScsiTask], None, Geometry]:
    """TEST UNIT READY (clearing unit attentions), INQUIRY, capacity, limits, WP."""
    yield from command(C.test_unit_ready(), lun=lun)
    inquiry = parse_inquiry(data_of((yield from command(C.inquiry(), lun=lun, read_length=255))))
    try:
        task = yield from command(C.read_capacity16(), lun=lun, read_length=32)
        capacity = parse_read_capacity16(data_of(task))
    except ScsiCommandError as exc:
        if exc.sense is None or exc.sense.key != SenseKey.ILLEGAL_REQUEST:
            raise
        task = yield from command(C.read_capacity10(), lun=lun, read_length=8)
        capacity = parse_read_capacity10(data_of(task))
    if capacity.block_size <= 0 or capacity.block_size % 512:
        raise InvalidParameterError(f"LUN {lun}: unsupported block size {capacity.block_size}")
    pages: list[int] = []
    limits: BlockLimits | None = None
    provisioning: LogicalBlockProvisioning | None = None
    try:
        task = yield from command(C.inquiry(evpd=True, page=0), lun=lun, read_length=255)
        pages = parse_vpd_supported_pages(data_of(task))
        # The expected transfer length must cover the CDB's allocation length (255): tgt
        # 1.0.85 answers a smaller one with ILLEGAL REQUEST (the pages used to be lost so).
        if 0xB0 in pages:
            task = yield from command(C.inquiry(evpd=True, page=0xB0), lun=lun, read_length=255)
            limits = parse_vpd_block_limits(data_of(task))
        if 0xB2 in pages:
            task = yield from command(C.inquiry(evpd=True, page=0xB2), lun=lun, read_length=255)
            provisioning = parse_vpd_logical_block_provisioning(data_of(task))
    except (ScsiCommandError, ValueError):
        pass  # VPD pages are optional (SPC-4 makes only 0x00 and 0x83 mandatory)
    read_only = False
    try:
        task = yield from command(C.mode_sense6(0x3F), lun=lun, read_length=255)
        read_only = parse_mode_sense6(data_of(task)).write_protected
    except (ScsiCommandError, ValueError):
        pass
    max_transfer = DEFAULT_MAX_TRANSFER
    if limits is not None and limits.max_transfer_length:
        max_transfer = min(max_transfer, limits.max_transfer_length * capacity.block_size)
    max_transfer -= max_transfer % capacity.block_size
    return Geometry(lun, capacity, inquiry, read_only, max_transfer, limits, provisioning)


# -- data ----------------------------------------------------------------------------------


def _extents(geo: Geometry, offset: int, length: int) -> list[tuple[int, int, int]]:
    """(lba, blocks, byte offset into the request) pieces of at most max_transfer bytes."""
    bs = geo.block_size
    if offset % bs or length % bs:
        raise InvalidParameterError(
            f"offset {offset} / length {length} are not multiples of the {bs}-byte block"
        )
    if offset < 0 or length < 0 or offset + length > geo.size:
        raise InvalidParameterError(
            f"{length} bytes at offset {offset} do not fit the {geo.size}-byte LUN"
        )
    pieces = []
    done = 0
    while done < length:
        n = min(geo.max_transfer, length - done)
        pieces.append(((offset + done) // bs, n // bs, done))
        done += n
    return pieces


def read_blocks(geo: Geometry, offset: int, view: memoryview) -> Op[None]:
    """READ(16) ``len(view)`` bytes at ``offset`` (block-aligned) into ``view``."""
    tasks = [
        ScsiTask(
            C.read16(lba, blocks), lun=geo.lun, read_buffer=view[at : at + blocks * geo.block_size]
        )
        for lba, blocks, at in _extents(geo, offset, len(view))
    ]
    done = yield from run_tasks(tasks)
    for task in done:
        if task.transferred != task.expected_length:
            raise ScsiCommandError(
                "READ(16)",
                task.status,
                message=f"READ(16) returned {task.transferred} of {task.expected_length} bytes",
            )


def write_blocks(geo: Geometry, offset: int, data: memoryview, *, fua: bool = False) -> Op[None]:
    """WRITE(16) block-aligned ``data`` at ``offset``."""
    if geo.read_only:
        raise ScsiCommandError("WRITE(16)", 2, message="the LUN is write-protected")
    tasks = [
        ScsiTask(
            C.write16(lba, blocks, fua=fua),
            lun=geo.lun,
            write_data=data[at : at + blocks * geo.block_size],
        )
        for lba, blocks, at in _extents(geo, offset, len(data))
    ]
    yield from run_tasks(tasks)


def read(geo: Geometry, offset: int, length: int) -> Op[bytes]:
    """Any byte range: rounds out to whole blocks and slices."""
    bs = geo.block_size
    start = offset - offset % bs
    end = -(-(offset + length) // bs) * bs
    if offset < 0 or length < 0 or offset + length > geo.size:
        raise InvalidParameterError(
            f"{length} bytes at offset {offset} do not fit the {geo.size}-byte LUN"
        )
    buf = bytearray(end - start)
    if buf:
        yield from read_blocks(geo, start, memoryview(buf))
    if start == offset and end - start == length:
        return bytes(buf)
    return bytes(buf[offset - start : offset - start + length])


def write(
    geo: Geometry, offset: int, data: bytes | bytearray | memoryview, *, fua: bool = False
) -> Op[None]:
    """Any byte range: partial blocks at either end are read, merged and written back.

    Not atomic against another writer of the same blocks: the caller keeps other writes
    out of those blocks until this returns (:class:`~iscsikit.lun.ranges.RangeLock`)."""
    view = memoryview(data).cast("B")
    bs = geo.block_size
    if offset % bs == 0 and len(view) % bs == 0:
        yield from write_blocks(geo, offset, view, fua=fua)
        return
    start = offset - offset % bs
    end = -(-(offset + len(view)) // bs) * bs
    merged = bytearray(end - start)
    head = memoryview(merged)[:bs]
    tail = memoryview(merged)[-bs:]
    yield from read_blocks(geo, start, head)
    if end - start > bs:
        yield from read_blocks(geo, end - bs, tail)
    merged[offset - start : offset - start + len(view)] = view
    yield from write_blocks(geo, start, memoryview(merged), fua=fua)


def flush(geo: Geometry) -> Op[None]:
    """SYNCHRONIZE CACHE(16) over the whole LUN."""
    yield from command(C.synchronize_cache16(), lun=geo.lun)


def unmap(geo: Geometry, offset: int, length: int) -> Op[None]:
    """UNMAP block-aligned extents, split per the Block Limits page."""
    if geo.read_only:
        raise ScsiCommandError("UNMAP", 2, message="the LUN is write-protected")
    extents = [(lba, blocks) for lba, blocks, _ in _extents(geo, offset, length)]
    limit = geo.block_limits.max_unmap_lba_count if geo.block_limits else 0
    if limit:
        split: list[tuple[int, int]] = []
        for first, count in extents:
            split.extend(
                (lba, min(limit, first + count - lba)) for lba in range(first, first + count, limit)
            )
        extents = split
    per = geo.block_limits.max_unmap_block_descriptor_count if geo.block_limits else 0
    per = per or 64
    for i in range(0, len(extents), per):
        cdb, params = C.unmap(extents[i : i + per])
        yield from command(cdb, lun=geo.lun, write_data=params)


def write_zeroes(geo: Geometry, offset: int, length: int) -> Op[None]:
    """Zero a block-aligned range by writing zero buffers (works on every target)."""
    chunk = bytes(min(geo.max_transfer, max(length, geo.block_size)))
    done = 0
    while done < length:
        n = min(len(chunk), length - done)
        yield from write_blocks(geo, offset + done, memoryview(chunk)[:n])
        done += n


__all__ = [
    "RETRIES",
    "Geometry",
    "GeometryView",
    "check",
    "command",
    "data_of",
    "flush",
    "probe",
    "read",
    "read_blocks",
    "run_tasks",
    "unmap",
    "write",
    "write_blocks",
    "write_zeroes",
]
