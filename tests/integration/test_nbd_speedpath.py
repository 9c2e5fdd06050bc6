"""The NBD server's fast paths: replies sent in batches by one pump, request timeouts from
one watchdog per connection, READ replies built in place.  Each is checked where it could
go wrong: a reply torn or lost in a batch, a hung request never answered, a WRITE answered
before the device finished it, the connection stuck after the client vanished.
"""

from __future__ import annotations

import asyncio
import os
import random
import socket
import struct
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from test_nbd_server import connect, is_closed, receive, recv_exact, send

from iscsikit.nbd.device import MemoryDevice
from iscsikit.nbd.server import Limits
from iscsikit.testing.nbd import ThreadServer

pytestmark = pytest.mark.integration

MIB = 1 << 20
READ, WRITE, DISC, FLUSH = 0, 1, 2, 3


class SlowDevice(MemoryDevice):
    """Hangs reads at offset 0 (until cancelled); delays writes and records when each
    finished, so a test can check that no WRITE was acknowledged early."""

    def __init__(self) -> None:
        super().__init__(4 * MIB, 512)
        self.hung = 0
        self.finished: dict[int, float] = {}

    async def readinto(self, offset: int, view: memoryview) -> int:
        """What AsyncLun has: whole blocks read into the caller's buffer (the server's
        in-place READ replies); a partial block goes through :meth:`read`."""
        if offset == 0:
            self.hung += 1
            await asyncio.Event().wait()
        await asyncio.sleep(random.random() / 500)
        view[:] = await super().read(offset, len(view))
        return len(view)

    async def read(self, offset: int, length: int) -> bytes:
        await asyncio.sleep(random.random() / 500)
        return await super().read(offset, length)

    async def write(self, offset: int, data: bytes | memoryview, *, fua: bool = False) -> None:
        await asyncio.sleep(random.random() / 100)
        await super().write(offset, data, fua=fua)
        self.finished[offset] = time.monotonic()


@pytest.fixture
def slow(tmp_path: Path) -> Iterator[tuple[SlowDevice, Path]]:
    device = SlowDevice()
    server = ThreadServer(
        device, tmp_path / "s.sock", limits=Limits(request_timeout=0.4, max_in_flight=16)
    )
    yield device, server.path
    server.stop()


def test_a_hung_request_gets_an_error_and_the_others_go_on(slow: tuple[SlowDevice, Path]) -> None:
    device, path = slow
    sock = connect(path)
    started = time.monotonic()
    send(sock, READ, 1, 0, 4096)  # hangs
    lengths = {1: 4096}
    for handle in range(2, 40):  # more than max_in_flight, while the first one hangs
        send(sock, READ, handle, 4096 * handle, 4096)
        lengths[handle] = 4096
    replies = {}
    for _ in range(39):
        handle, error, data = receive(sock, lengths)
        replies[handle] = (error, data)
    assert replies.pop(1) == (5, b"")  # EIO, from the watchdog
    assert time.monotonic() - started < 5  # 0.4 s plus the watchdog's period, not forever
    assert all(error == 0 and data == bytes(4096) for error, data in replies.values())
    assert device.hung == 1
    send(sock, DISC, 99, 0, 0)
    assert is_closed(sock)


def test_many_small_replies_arrive_whole_and_writes_only_after_they_landed(
    slow: tuple[SlowDevice, Path],
) -> None:
    device, path = slow
    sock = connect(path)
    rng = random.Random(15)
    blobs = {h: rng.randbytes(4096) for h in range(1, 201)}
    # 200 writes pipelined; each acknowledgement must come after the device finished it.
    payload = b"".join(
        struct.pack(">IHHQQI", 0x25609513, 0, WRITE, h, 8192 + 4096 * h, 4096) + blob
        for h, blob in blobs.items()
    )
    sock.sendall(payload)
    for _ in blobs:
        handle, error, _data = receive(sock, {})
        acked = time.monotonic()
        assert error == 0
        assert device.finished[8192 + 4096 * handle] <= acked
    send(sock, FLUSH, 500, 0, 0)
    assert receive(sock, {}) == (500, 0, b"")
    # Read them back pipelined, odd sizes included: replies must not be torn or mixed.
    lengths = {}
    for h in blobs:
        size = 4096 if h % 3 else 1000 + h
        send(sock, READ, h, 8192 + 4096 * h, size)
        lengths[h] = size
    seen = set()
    for _ in blobs:
        handle, error, data = receive(sock, dict(lengths))
        assert error == 0
        assert data == blobs[handle][: lengths[handle]]
        seen.add(handle)
    assert seen == set(blobs)
    send(sock, DISC, 501, 0, 0)
    assert is_closed(sock)


def test_a_client_that_vanishes_mid_replies_does_not_wedge_the_server(tmp_path: Path) -> None:
    server = ThreadServer(MemoryDevice(64 * MIB, 512), tmp_path / "v.sock")
    try:
        sock = connect(server.path)
        for handle in range(64):  # 64 x 1 MiB of replies that nobody reads
            send(sock, READ, handle, handle * MIB, MIB)
        sock.close()
        # The server still serves a new client completely.
        again = connect(server.path)
        data = os.urandom(MIB)
        send(again, WRITE, 1, 0, MIB, data)
        assert receive(again, {}) == (1, 0, b"")
        send(again, READ, 2, 0, MIB)
        assert receive(again, {2: MIB}) == (2, 0, data)
        again.close()
    finally:
        server.stop()


def test_structured_read_reply_built_in_place(tmp_path: Path) -> None:
    """NBD_OPT_STRUCTURED_REPLY then GO: a READ comes back as one OFFSET_DATA chunk."""
    device = SlowDevice()
    device.data[4096:8192] = os.urandom(4096)
    server = ThreadServer(device, tmp_path / "st.sock")
    try:
        sock = socket.socket(socket.AF_UNIX)
        sock.settimeout(10)
        sock.connect(str(server.path))
        recv_exact(sock, 18)
        sock.sendall(struct.pack(">I", 3))
        sock.sendall(struct.pack(">QII", 0x49484156454F5054, 8, 0))  # STRUCTURED_REPLY
        assert struct.unpack(">QIII", recv_exact(sock, 20))[2] == 1  # ACK
        sock.sendall(struct.pack(">QIIIH", 0x49484156454F5054, 7, 6, 0, 0))  # GO, ""
        while True:
            _magic, _opt, reply, length = struct.unpack(">QIII", recv_exact(sock, 20))
            recv_exact(sock, length)
            if reply == 1:
                break
        for handle, (offset, size) in enumerate([(4096 + 100, 3000), (4096, 4096)] * 3):
            send(sock, READ, handle, offset, size)  # unaligned (read), aligned (readinto)
            head = struct.unpack(">IHHQIQ", recv_exact(sock, 28))
            assert head == (0x668E33EF, 1, 1, handle, 8 + size, offset)
            assert recv_exact(sock, size) == bytes(device.data[offset : offset + size])
        sock.close()
    finally:
        server.stop()


def test_requests_in_flight_at_disconnect_are_all_answered(slow: tuple[SlowDevice, Path]) -> None:
    """NBD_CMD_DISC right behind 40 requests (more than the 16 workers): the server
    answers every one of them before it closes (proto.md, NBD_CMD_DISC)."""
    _device, path = slow
    sock = connect(path)
    requests = b"".join(
        struct.pack(">IHHQQI", 0x25609513, 0, READ, h, 4096 * h, 4096) for h in range(1, 41)
    )
    sock.sendall(requests + struct.pack(">IHHQQI", 0x25609513, 0, DISC, 99, 0, 0))
    lengths = dict.fromkeys(range(1, 41), 4096)
    handles = {receive(sock, lengths)[0] for _ in range(40)}
    assert handles == set(range(1, 41))
    assert is_closed(sock)
