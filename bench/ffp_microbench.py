"""Microbenchmark of the Full Feature Phase machine alone: no sockets, no target.

Times the same loop as ``iscsikit-perf`` (one task per slot, resubmitted from its
completion callback) against synthetic Data-In PDUs (with status, as tgt sends them),
fed in batches of ``--qd`` PDUs as one ``recv_into`` would deliver them.  What it
reports is the interpreter's cost per I/O of the data path (µs), the part of
``iscsikit-perf``'s CPU time that is iscsikit's own and not the kernel's.

``--write`` times writes the way tgt takes them (``InitialR2T=Yes``, 8 KiB
``MaxRecvDataSegmentLength``): immediate data in the command, one R2T for the rest,
8 KiB Data-Out PDUs, then the SCSI Response.  ``--digest-overhead`` runs the same
workload with header + data digests off and on, interleaved (``--runs`` each, medians),
and sets the difference beside what CRC32C of the same bytes costs in the same run
(every header and payload the I/O puts on or takes off the wire).  Times are the
thread's CPU time (``time.thread_time``), so other processes on a busy machine are not
counted; cache effects of sharing the CPU still are.

    python bench/ffp_microbench.py [--qd 32] [--size 4096] [--ios 200000] [--digests] [--write]
                                   [--data-in-pdu 8192]
    python bench/ffp_microbench.py --digest-overhead --size 65536 [--write] [--runs 5]
"""

from __future__ import annotations

import argparse
import statistics
import struct
import time

from iscsikit.proto.digest import crc32c
from iscsikit.proto.ffp import ConnectionParams, FullFeatureConnection
from iscsikit.proto.session import SessionState
from iscsikit.proto.task import ScsiTask
from iscsikit.testing import rawpdu

#: What tgt declares: immediate data and Data-Out PDUs of at most this many bytes.
TGT_MAX_XMIT = 8192

_DATA_IN = struct.Struct(">BBBBIQIIIIIIII")


def data_in(itt: int, statsn: int, expcmdsn: int, payload: bytes, digests: bool) -> bytes:
    header = _DATA_IN.pack(
        0x25, 0x81, 0, 0, len(payload), 0, itt, 0xFFFFFFFF, statsn, expcmdsn, expcmdsn + 64,
        0, 0, 0,
    )  # fmt: skip
    if not digests:
        return header + payload
    return (
        header
        + crc32c(header).to_bytes(4, "little")
        + payload
        + crc32c(payload).to_bytes(4, "little")
    )


def data_in_sequence(
    itt: int, statsn: int, expcmdsn: int, payload: bytes, digests: bool, pdu: int
) -> bytes:
    """``payload`` as Data-In PDUs of at most ``pdu`` bytes, status in the last (as tgt)."""
    if pdu >= len(payload):
        return data_in(itt, statsn, expcmdsn, payload, digests)
    out = bytearray()
    for datasn, offset in enumerate(range(0, len(payload), pdu)):
        last = offset + pdu >= len(payload)
        out += rawpdu.DataIn(
            final=last, status_present=last, itt=itt, statsn=statsn if last else 0,
            expcmdsn=expcmdsn, maxcmdsn=expcmdsn + 64, datasn=datasn, buffer_offset=offset,
            data=payload[offset : offset + pdu],
        ).encode(digests, digests)  # fmt: skip
    return bytes(out)


def start(
    params: ConnectionParams, qd: int, size: int, ios: int, write: bool
) -> tuple[FullFeatureConnection, SessionState]:
    """A machine with ``qd`` slots in flight, each resubmitted from its completion until
    ``ios`` commands have been issued (the ``iscsikit-perf`` loop)."""
    state = SessionState(cmdsn=1, expcmdsn=1, maxcmdsn=1 << 20, expstatsn=1)
    conn = FullFeatureConnection(params, state, queue_depth=qd)
    cdb = struct.pack(">BBQIBB", 0x8A if write else 0x88, 0, 0, size // 512, 0, 0)
    left = [ios]

    def done(task: ScsiTask) -> None:
        left[0] -= 1
        if left[0] >= qd:
            conn.reissue(task, cdb, size)

    for _ in range(qd):
        if write:
            task = ScsiTask(cdb, write_data=bytes(range(256)) * (size // 256), callback=done)
        else:
            task = ScsiTask(cdb, read_buffer=bytearray(size), callback=done)
        conn.reissue(task, cdb, size)
    return conn, state


def feed(conn: FullFeatureConnection, batch: bytes | bytearray) -> float:
    """Hand ``batch`` to the machine as receives would (``get_buffer`` /
    ``buffer_updated``); the CPU seconds it took."""
    started = time.thread_time()
    conn.receive_data(batch)
    return time.thread_time() - started


def sent(conn: FullFeatureConnection) -> float:
    """Take what the machine queued; the CPU seconds it took."""
    started = time.thread_time()
    conn.data_to_send()
    return time.thread_time() - started


def run(qd: int, size: int, ios: int, digests: bool, pdu: int = 1 << 24) -> float:
    params = ConnectionParams(
        header_digest=digests, data_digest=digests, max_recv_data_segment_length=262144
    )
    conn, state = start(params, qd, size, ios, write=False)
    payload = bytes(range(256)) * (size // 256)
    statsn = 0
    elapsed = 0.0
    while conn.outstanding:
        elapsed += sent(conn)
        batch = bytearray()
        for itt in sorted(conn._tasks):
            statsn += 1
            batch += data_in_sequence(itt, statsn, state.cmdsn, payload, digests, pdu)
        elapsed += feed(conn, batch)
    return elapsed / ios * 1e6


def run_write(qd: int, size: int, ios: int, digests: bool) -> float:
    """Like :func:`run`, for WRITE(16) through tgt's R2T exchange (see the docstring)."""
    params = ConnectionParams(
        header_digest=digests,
        data_digest=digests,
        max_recv_data_segment_length=262144,
        max_xmit_data_segment_length=TGT_MAX_XMIT,
        initial_r2t=True,
        immediate_data=True,
    )
    conn, state = start(params, qd, size, ios, write=True)
    immediate = min(size, TGT_MAX_XMIT)
    statsn = 0
    elapsed = 0.0
    while conn.outstanding:
        elapsed += sent(conn)
        itts = sorted(conn._tasks)
        if immediate < size:
            r2ts = b"".join(
                rawpdu.R2T(
                    itt=itt, ttt=itt, statsn=statsn + 1, expcmdsn=state.cmdsn,
                    maxcmdsn=state.cmdsn + 64, buffer_offset=immediate,
                    desired_data_transfer_length=size - immediate,
                ).encode(digests, digests)
                for itt in itts
            )  # fmt: skip
            elapsed += feed(conn, r2ts)
            elapsed += sent(conn)
        responses = bytearray()
        for itt in itts:
            statsn += 1
            responses += rawpdu.ScsiResponse(
                itt=itt, statsn=statsn, expcmdsn=state.cmdsn, maxcmdsn=state.cmdsn + 64,
                expdatasn=1 if immediate < size else 0,
            ).encode(digests, digests)  # fmt: skip
        elapsed += feed(conn, responses)
    return elapsed / ios * 1e6


def wire_crc_cost(size: int, write: bool, repeat: int = 20000) -> float:
    """µs of CRC32C over what one I/O puts on or takes off the wire (headers + data)."""
    # Headers: the command and the response (a read's is its one Data-In with status);
    # a write over 8 KiB adds one R2T and a Data-Out per 8 KiB after the immediate data.
    pdus = 2
    if write and size > TGT_MAX_XMIT:
        pdus += -(-size // TGT_MAX_XMIT)
    header = bytes(48)
    payload = memoryview(bytes(size))
    chunk = TGT_MAX_XMIT if write else size
    started = time.thread_time()
    for _ in range(repeat):
        for _ in range(pdus):
            crc32c(header)
        for offset in range(0, size, chunk):
            crc32c(payload[offset : offset + chunk])
    return (time.thread_time() - started) / repeat * 1e6


def digest_overhead(qd: int, size: int, ios: int, write: bool, runs: int) -> None:
    """Digests off / on, interleaved; the overhead against CRC32C of the same bytes."""
    timed = run_write if write else run
    off: list[float] = []
    on: list[float] = []
    crc: list[float] = []
    for i in range(runs):
        order = (False, True) if i % 2 == 0 else (True, False)
        for digests in order:
            (on if digests else off).append(timed(qd, size, ios, digests))
        crc.append(wire_crc_cost(size, write))
    m_off, m_on, m_crc = (statistics.median(v) for v in (off, on, crc))
    kind = "write" if write else "read"
    print(f"{kind} {size} B QD{qd}, {runs} interleaved runs, medians (µs per I/O):")
    print(f"  digests off {m_off:.2f}  on {m_on:.2f}  overhead {m_on - m_off:.2f}")
    print(f"  CRC32C of the same headers + data: {m_crc:.2f}")
    print(f"  overhead / CRC cost: {(m_on - m_off) / m_crc:.2f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--qd", type=int, default=32)
    parser.add_argument("--size", type=int, default=4096)
    parser.add_argument("--ios", type=int, default=200_000)
    parser.add_argument("--digests", action="store_true")
    parser.add_argument("--write", action="store_true")
    parser.add_argument("--digest-overhead", action="store_true")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument(
        "--data-in-pdu", type=int, default=1 << 24,
        help="split each read into Data-In PDUs of this many bytes (tgt: 8192)",
    )  # fmt: skip
    args = parser.parse_args()
    if args.digest_overhead:
        digest_overhead(args.qd, args.size, args.ios, args.write, args.runs)
        return
    if args.write:
        cost = run_write(args.qd, args.size, args.ios, args.digests)
    else:
        cost = run(args.qd, args.size, args.ios, args.digests, args.data_in_pdu)
    print(f"{cost:.2f} µs per I/O (machine only; PDU synthesis excluded)")


if __name__ == "__main__":
    main()
