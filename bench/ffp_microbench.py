"""Microbenchmark of the Full Feature Phase machine alone: no sockets, no target.

Times the same loop as ``iscsikit-perf`` (one task per slot, resubmitted from its
completion callback) against synthetic Data-In PDUs (with status, as tgt sends them),
fed in batches of ``--qd`` PDUs as one ``recv_into`` would deliver them.  What it
reports is the interpreter's cost per I/O of the data path (µs), the part of
``iscsikit-perf``'s CPU time that is iscsikit's own and not the kernel's.

    python bench/ffp_microbench.py [--qd 32] [--size 4096] [--ios 200000] [--digests]
"""

from __future__ import annotations

import argparse
import struct
import time

from iscsikit.proto.digest import crc32c
from iscsikit.proto.ffp import ConnectionParams, FullFeatureConnection
from iscsikit.proto.session import SessionState
from iscsikit.proto.task import ScsiTask

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


def run(qd: int, size: int, ios: int, digests: bool) -> float:
    params = ConnectionParams(
        header_digest=digests, data_digest=digests, max_recv_data_segment_length=262144
    )
    state = SessionState(cmdsn=1, expcmdsn=1, maxcmdsn=1 << 20, expstatsn=1)
    conn = FullFeatureConnection(params, state, queue_depth=qd)
    payload = bytes(range(256)) * (size // 256)
    cdb = struct.pack(">BBQIBB", 0x88, 0, 0, size // 512, 0, 0)
    left = [ios]

    def done(task: ScsiTask) -> None:
        left[0] -= 1
        if left[0] >= qd:
            conn.reissue(task, cdb, size)

    for _ in range(qd):
        task = ScsiTask(cdb, read_buffer=bytearray(size), callback=done)
        conn.reissue(task, cdb, size)
    statsn = 0
    elapsed = 0.0
    clock = time.perf_counter
    while conn.outstanding:
        started = clock()
        conn.data_to_send()
        elapsed += clock() - started
        batch = bytearray()
        for itt in sorted(conn._tasks):
            statsn += 1
            batch += data_in(itt, statsn, state.cmdsn, payload, digests)
        view = memoryview(batch)
        started = clock()
        while view:
            buf = conn.get_buffer()
            n = min(len(buf), len(view))
            buf[:n] = view[:n]
            view = view[n:]
            conn.buffer_updated(n)
        elapsed += clock() - started
    return elapsed / ios * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--qd", type=int, default=32)
    parser.add_argument("--size", type=int, default=4096)
    parser.add_argument("--ios", type=int, default=200_000)
    parser.add_argument("--digests", action="store_true")
    args = parser.parse_args()
    cost = run(args.qd, args.size, args.ios, args.digests)
    print(f"{cost:.2f} µs per I/O (machine only; PDU synthesis excluded)")


if __name__ == "__main__":
    main()
