"""Hypothesis: whatever the "target" sends, the Full Feature Phase machine stays sane.

After some commands are in flight, arbitrary bytes - first raw noise, then streams of
target PDUs with hostile field values, garbage, split anywhere and (with digests)
corrupted anywhere - go to ``receive_data``.  The machine must never raise from it:
everything the target can do wrong ends as a task error or a ``ConnectionFailed``
event.  And it must never mark a read good with wrong data: every Data-In payload here
is self-describing (byte ``o`` of ITT ``i`` is ``(7 i + o) mod 251``), the buffers start
filled with 0xff (which that formula never produces), so a good read whose bytes are not
exactly the formula's has a hole or misplaced data.
"""

from __future__ import annotations

import dataclasses
import itertools

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.control import currently_in_test_context
from hypothesis.control import event as _event
from test_ffp import Target

from iscsikit.errors import IscsiError
from iscsikit.proto.constants import RESERVED_TAG, AsyncEvent, Opcode
from iscsikit.proto.ffp import (
    AsyncEventReceived,
    ConnectionFailed,
    ConnectionParams,
    LogoutRequested,
    ParametersRenegotiated,
)
from iscsikit.proto.pdu import (
    R2T,
    AsyncMessage,
    DataIn,
    NopIn,
    Pdu,
    Reject,
    ScsiCommand,
    ScsiResponse,
    TaskMgmtResponse,
    TextResponse,
    encode_pdu,
)
from iscsikit.proto.task import PingTask, ScsiTask
from iscsikit.proto.text import encode_text

SENTINEL = 0xFF
MAX_RECV = 1024
U32 = st.integers(0, 0xFFFFFFFF)


def event(name: str) -> None:
    if currently_in_test_context():
        _event(name)


def payload(itt: int, offset: int, length: int) -> bytes:
    return bytes((itt * 7 + offset + j) % 251 for j in range(length))


def setup(digests: bool, lengths: list[int]) -> tuple[Target, list[ScsiTask], list[object]]:
    params = ConnectionParams(
        header_digest=digests,
        data_digest=digests,
        max_recv_data_segment_length=MAX_RECV,
        immediate_data=False,
        max_burst_length=4096,
    )
    t = Target(params, window=len(lengths))  # the write waits for the window
    t.reader.max_data_segment_length = 0xFFFFFF  # renegotiation may raise what we send
    reads = [t.read(n, fill=SENTINEL) for n in lengths]
    write = t.write(payload(0, 0, 3000))
    ping = PingTask(b"ping", callback=t.callback)
    t.conn.ping(ping)
    t.sent()
    return t, [*reads, write], [*reads, write, ping]


def check(t: Target, tasks: list[ScsiTask], requests: list[object]) -> None:
    for request in requests:
        calls = t.callback.calls.count(request)  # type: ignore[arg-type]
        assert calls == (1 if request.done else 0), (request, calls)  # type: ignore[attr-defined]
        if request.done and request.error is not None:  # type: ignore[attr-defined]
            assert isinstance(request.error, IscsiError)  # type: ignore[attr-defined]
    for task in tasks:
        if task.read_view is None or not task.good:
            continue
        event("a read completed good")
        assert task.received == task.transferred
        got = bytes(task.read_view)
        assert got[: task.received] == payload(task.itt, 0, task.received)
        assert got[task.received :] == bytes([SENTINEL]) * (len(got) - task.received)
    events = t.events()
    allowed = (AsyncEventReceived, ConnectionFailed, LogoutRequested, ParametersRenegotiated)
    assert all(isinstance(e, allowed) for e in events)
    failures = [e for e in events if isinstance(e, ConnectionFailed)]
    assert len(failures) <= 1
    event("connection failed" if failures else "connection alive")
    if failures:
        assert t.conn.closed
        assert all(task.done for task in tasks)
        assert t.conn.outstanding == 0
    t.sent()  # whatever the machine answered parses as initiator PDUs


# == raw noise =============================================================================


@settings(max_examples=300, deadline=None)
@given(
    chunks=st.lists(st.binary(max_size=300), max_size=10),
    digests=st.booleans(),
    lengths=st.lists(st.integers(1, 3000), min_size=1, max_size=3),
)
def test_arbitrary_bytes_never_raise(
    chunks: list[bytes], digests: bool, lengths: list[int]
) -> None:
    t, tasks, requests = setup(digests, lengths)
    for chunk in chunks:
        t.conn.receive_data(chunk)
    check(t, tasks, requests)


@settings(max_examples=200, deadline=None)
@given(
    noise=st.binary(min_size=1, max_size=200),
    opcode=st.sampled_from([op for op in Opcode if op >= 0x20] + [0x3A, 0x00]),
    lengths=st.lists(st.integers(1, 3000), min_size=1, max_size=3),
)
def test_noise_behind_a_plausible_opcode_never_raises(
    noise: bytes, opcode: int, lengths: list[int]
) -> None:
    # Random bytes rarely get past the opcode; give every handler a go at garbage.
    t, tasks, requests = setup(False, lengths)
    header = bytearray(noise.ljust(48, b"\0")[:48])
    header[0] = opcode
    header[4] = 0  # no AHS
    dlen = int.from_bytes(header[5:8], "big") % (MAX_RECV + 1)
    header[5:8] = dlen.to_bytes(3, "big")
    if noise[0] & 1:
        header[16:20] = max(0, tasks[noise[0] % len(tasks)].itt).to_bytes(4, "big")
    t.conn.receive_data(bytes(header) + noise * (dlen // len(noise) + 4))
    check(t, tasks, requests)


# == structured hostile streams ============================================================


@st.composite
def target_pdu(draw: st.DrawFn, itts: list[int]) -> Pdu | bytes:
    itt = draw(st.one_of(st.sampled_from([*itts, RESERVED_TAG]), U32))
    small = st.integers(0, 5)
    offset = draw(st.one_of(st.sampled_from([0, 512, 1000, 1024, 2048]), st.integers(0, 4000)))
    residual = st.one_of(st.none(), st.integers(0, 5000))
    kind = draw(st.integers(0, 9))
    if kind <= 3:  # Data-In is what most streams are made of
        length = draw(st.one_of(st.integers(0, 600), st.integers(0, MAX_RECV + 64)))
        status = draw(st.sampled_from([None, None, 0, 0, 2, 8]))
        final = status is not None or draw(st.booleans())
        under, over = draw(residual), draw(residual)
        return DataIn(
            final=final,
            status_present=status is not None,
            status=status or 0,
            underflow=under is not None,
            overflow=over is not None and under is None,
            residual_count=under or over or 0,
            itt=itt,
            statsn=draw(U32),
            expcmdsn=draw(U32),
            maxcmdsn=draw(U32),
            datasn=draw(small),
            buffer_offset=offset,
            data=payload(itt, offset, length),
        )
    if kind == 4:
        under, over = draw(residual), draw(residual)
        return ScsiResponse(
            response=draw(st.sampled_from([0, 0, 0, 1, 0x80])),
            status=draw(st.sampled_from([0, 0, 2, 8, 0x28])),
            itt=itt,
            underflow=under is not None,
            overflow=over is not None and under is None,
            residual_count=under or over or 0,
            statsn=draw(U32),
            expcmdsn=draw(U32),
            maxcmdsn=draw(U32),
            data=draw(st.one_of(st.just(b""), st.binary(max_size=40))),
        )
    if kind == 5:
        return R2T(
            itt=itt,
            ttt=draw(st.one_of(st.just(RESERVED_TAG), U32)),
            r2tsn=draw(small),
            buffer_offset=offset,
            desired_data_transfer_length=draw(st.integers(0, 6000)),
            expcmdsn=draw(U32),
            maxcmdsn=draw(U32),
        )
    if kind == 6:
        return draw(
            st.sampled_from(
                [
                    NopIn(itt=itt, ttt=draw(st.one_of(st.just(RESERVED_TAG), U32)),
                          data=draw(st.binary(max_size=20))),
                    TaskMgmtResponse(response=draw(st.sampled_from([0, 1, 5, 255])), itt=itt),
                    Reject(reason=draw(st.integers(0, 0x0D)),
                           data=encode_pdu(ScsiCommand(itt=itt))[: draw(st.sampled_from([48, 9]))]),
                ]
            )
        )  # fmt: skip
    if kind == 7:
        return AsyncMessage(
            async_event=draw(st.sampled_from([*AsyncEvent, 9])),
            parameter1=draw(st.integers(0, 0xFFFF)),
            parameter2=draw(st.integers(0, 0xFFFF)),
            parameter3=draw(st.integers(0, 0xFFFF)),
            expcmdsn=draw(U32),
            maxcmdsn=draw(U32),
            data=draw(st.binary(max_size=30)),
        )
    if kind == 8:
        value = draw(st.sampled_from(["512", "4096", "100000", "0", "abc", "9" * 30]))
        return TextResponse(
            final=draw(st.booleans()),
            itt=draw(st.integers(0, 8)),
            ttt=draw(st.one_of(st.just(RESERVED_TAG), U32)),
            data=draw(
                st.one_of(
                    st.just(encode_text([("MaxRecvDataSegmentLength", value)])),
                    st.binary(max_size=20),
                )
            ),
        )
    return draw(st.binary(min_size=1, max_size=64))  # garbage


@st.composite
def honest_read(draw: st.DrawFn, itt: int, length: int) -> list[Pdu]:
    """What a correct target sends for a read: Data-In in order, then status."""
    sent = draw(st.sampled_from([length, length, 0, length // 2]), label="sent")
    bounds = sorted(set(draw(st.lists(st.integers(1, max(sent - 1, 1)), max_size=4))))
    cuts = [0, *(b for b in bounds if b < sent), sent]
    # Respect our MaxRecvDataSegmentLength.
    pieces: list[tuple[int, int]] = []
    for a, b in itertools.pairwise(cuts):
        pieces += [(o, min(b, o + MAX_RECV)) for o in range(a, b, MAX_RECV)]
    under = length - sent if sent < length else None
    status_in_data = bool(pieces) and draw(st.booleans())
    pdus: list[Pdu] = [
        DataIn(
            final=n == len(pieces) - 1,
            itt=itt,
            datasn=n,
            buffer_offset=a,
            data=payload(itt, a, b - a),
        )
        for n, (a, b) in enumerate(pieces)
    ]
    if status_in_data:
        last = pdus[-1]
        assert isinstance(last, DataIn)
        last.status_present = True
        last.underflow = under is not None
        last.residual_count = under or 0
    else:
        pdus.append(ScsiResponse(itt=itt, underflow=under is not None, residual_count=under or 0))
    return pdus


MUTABLE = ["datasn", "buffer_offset", "itt", "residual_count", "underflow", "overflow",
           "status", "final", "status_present", "truncate", "drop"]  # fmt: skip


@st.composite
def mutated(draw: st.DrawFn, pdu: Pdu) -> Pdu | None:
    """``pdu`` with one field changed to a hostile value (or dropped, or cut short)."""
    name = draw(st.sampled_from(MUTABLE))
    if name == "drop":
        return None
    if not hasattr(pdu, name) and name != "truncate":
        return pdu
    changes: dict[str, object] = {}
    if name in ("datasn", "buffer_offset", "residual_count"):
        changes[name] = draw(st.one_of(st.integers(0, 5000), U32))
    elif name == "itt":
        changes[name] = draw(U32)
    elif name == "status":
        changes[name] = draw(st.sampled_from([0, 2, 8, 0x28]))
    elif name == "truncate":
        if not pdu.data:
            return pdu
        changes["data"] = pdu.data[: draw(st.integers(0, len(pdu.data) - 1))]
    else:
        changes[name] = not getattr(pdu, name)
    new = dataclasses.replace(pdu, **changes)  # type: ignore[type-var]
    if isinstance(new, DataIn):
        new.status_present = new.status_present and new.final
        new.overflow = new.overflow and not new.underflow
        new.data = payload(new.itt, new.buffer_offset, len(new.data))
    if isinstance(new, ScsiResponse):
        new.overflow = new.overflow and not new.underflow
    return new


@settings(
    max_examples=400,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(
    data=st.data(),
    digests=st.booleans(),
    lengths=st.lists(st.integers(1, 3000), min_size=1, max_size=3),
)
def test_hostile_pdu_streams_never_raise_nor_fake_good_data(
    data: st.DataObject, digests: bool, lengths: list[int]
) -> None:
    t, tasks, requests = setup(digests, lengths)
    itts = [task.itt for task in tasks if task.itt >= 0]  # a write may wait for the window
    # Honest answers to the reads, some PDUs mutated, interleaved with hostile extras.
    scripts: list[list[Pdu | bytes]] = []
    for task in tasks:
        if task.read_view is None or task.itt < 0:
            continue
        script: list[Pdu | bytes] = []
        for pdu in data.draw(honest_read(task.itt, task.expected_length), label="honest"):
            if data.draw(st.integers(0, 5), label="mutate?") == 0:
                changed = data.draw(mutated(pdu), label="mutated")
                if changed is not None:
                    script.append(changed)
            else:
                script.append(pdu)
        scripts.append(script)
    scripts.append(data.draw(st.lists(target_pdu(itts), max_size=6), label="extras"))
    items: list[Pdu | bytes] = []
    while any(scripts):
        which = data.draw(st.sampled_from([s for s in scripts if s]), label="next")
        items.append(which.pop(0))
    parts = [item if isinstance(item, bytes) else t.encode(item) for item in items]
    if not digests:
        # Without digests, garbage in the middle could forge a Data-In out of the bytes
        # after it that the oracle cannot tell from a real one: noise goes last only.
        garbage = [p for p, item in zip(parts, items, strict=True) if isinstance(item, bytes)]
        parts = [p for p, item in zip(parts, items, strict=True) if not isinstance(item, bytes)]
        parts += garbage
    raw = bytearray(b"".join(parts))
    if digests and raw and data.draw(st.integers(0, 3), label="corrupt?") == 0:
        index = data.draw(st.integers(0, len(raw) - 1), label="index")
        raw[index] ^= data.draw(st.integers(1, 255), label="xor")
    cuts = sorted(data.draw(st.lists(st.integers(0, len(raw)), max_size=8), label="cuts"))
    start = 0
    for cut in [*cuts, len(raw)]:
        t.conn.receive_data(bytes(raw[start:cut]))
        start = max(start, cut)
        t.sent()  # answer R2Ts / NOP-Ins as we go: the output must always parse
    check(t, tasks, requests)


def test_the_oracle_sees_a_good_read() -> None:
    # The invariant is not vacuous: a well-behaved stream does produce good reads.
    t, tasks, requests = setup(True, [1500])
    read = tasks[0]
    t.feed(
        DataIn(final=False, itt=read.itt, datasn=0, buffer_offset=0,
               data=payload(read.itt, 0, 1024)),
        DataIn(final=True, status_present=True, itt=read.itt, datasn=1, buffer_offset=1024,
               data=payload(read.itt, 1024, 476), statsn=t.statsn),
    )  # fmt: skip
    assert read.good
    check(t, tasks, requests)
