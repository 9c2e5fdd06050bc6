"""Fuzz harness: the Full Feature Phase connection's receive path.

A :class:`~iscsikit.proto.ffp.FullFeatureConnection` has two reads (one small, one
larger than the scratch buffer, so Data-In goes direct to the caller's buffer), a write
and a NOP-Out ping in flight; then the input, as bytes from the target, arrives in
chunks through ``receive_data`` or through the scatter path (``get_buffers`` /
``buffer_updated``, what the socket driver uses).  Input: ``flags, size1, size2,
stream``; ``flags`` picks digests, whether the harness writes correct digests into the
stream, and the receive path.  The machine documents that it never raises from
receiving: whatever the target does ends as a task error or a ``ConnectionFailed``
event.  So any exception is a finding, and so is an event of another type.
"""

from __future__ import annotations

import fuzzlib

with fuzzlib.instrument():
    from iscsikit.proto.ffp import (
        AsyncEventReceived,
        ConnectionFailed,
        ConnectionParams,
        FullFeatureConnection,
        LogoutRequested,
        ParametersRenegotiated,
        Timers,
    )
    from iscsikit.proto.session import SessionState
    from iscsikit.proto.task import PingTask, ScsiTask

READ10 = bytes([0x28, 0, 0, 0, 0, 0, 0, 0, 8, 0])
WRITE10 = bytes([0x2A, 0, 0, 0, 0, 0, 0, 0, 8, 0])
NO_TIMERS = Timers(
    noop_out_interval=0,
    noop_out_timeout=0,
    command_timeout=0,
    abort_timeout=0,
    lu_reset_timeout=0,
    tgt_reset_timeout=0,
    logout_timeout=0,
)
_EVENTS = (AsyncEventReceived, ConnectionFailed, LogoutRequested, ParametersRenegotiated)


def _ignore(_request: object) -> None:
    pass


def _connection(hd: bool, dd: bool) -> FullFeatureConnection:
    params = ConnectionParams(
        header_digest=hd,
        data_digest=dd,
        max_recv_data_segment_length=8192,
        immediate_data=False,
        max_burst_length=4096,
    )
    state = SessionState(cmdsn=1, expcmdsn=1, maxcmdsn=16, expstatsn=0x2000)
    conn = FullFeatureConnection(params, state, queue_depth=16, timers=NO_TIMERS)
    conn.submit(ScsiTask(READ10, read_buffer=bytearray(512), callback=_ignore))
    conn.submit(ScsiTask(READ10, read_buffer=bytearray(96 * 1024), callback=_ignore))
    conn.submit(ScsiTask(WRITE10, write_data=bytes(3000), callback=_ignore))
    conn.ping(PingTask(b"ping", callback=_ignore))
    conn.data_to_send()
    return conn


def _scatter(conn: FullFeatureConnection, chunk: bytes) -> None:
    """Receive *chunk* as ``recvmsg_into`` would: across get_buffers()' list, in order."""
    while chunk:
        n = 0
        for buf in conn.get_buffers():
            take = min(len(buf), len(chunk) - n)
            buf[:take] = chunk[n : n + take]
            n += take
            if n == len(chunk):
                break
        conn.buffer_updated(n)
        chunk = chunk[n:]


def TestOneInput(data: bytes) -> None:
    if len(data) < 3:
        return
    flags, sizes, stream = data[0], data[1:3], data[3:]
    hd, dd = bool(flags & 1), bool(flags & 2)
    if flags & 8:
        stream = fuzzlib.with_digests(stream, header=hd, data=dd)
    conn = _connection(hd, dd)
    for chunk in fuzzlib.split(stream, sizes):
        if flags & 4:
            _scatter(conn, chunk)
        else:
            conn.receive_data(chunk)
        while (event := conn.next_event()) is not None:
            if not isinstance(event, _EVENTS):
                raise AssertionError(f"unexpected event {event!r}")
        conn.data_to_send()


if __name__ == "__main__":
    fuzzlib.main(TestOneInput)
