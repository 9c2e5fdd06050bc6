"""The NBD server against real clients: libnbd's nbdinfo / nbdcopy and qemu-img / qemu-io.

Two ways to run the server: as the real command (``python -m iscsikit.nbd memory:64M
--socket ...``, a subprocess), and in a thread with its own event loop when a test needs a
special device (one that fails, or that counts the requests in flight).  A few checks speak
the protocol by hand over a socket, where the real clients cannot misbehave on purpose.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from iscsikit.errors import InvalidParameterError
from iscsikit.nbd.device import MemoryDevice
from iscsikit.testing.nbd import NbdCommand, ThreadServer

pytestmark = pytest.mark.integration

TOOLS = ("nbdinfo", "nbdcopy", "qemu-img", "qemu-io")
MISSING = [tool for tool in TOOLS if shutil.which(tool) is None]
needs_tools = pytest.mark.skipif(bool(MISSING), reason=f"not installed: {', '.join(MISSING)}")

MIB = 1 << 20
TIMEOUT = 60


def uri(path: Path) -> str:
    return f"nbd+unix:///?socket={path}"


def run(*argv: str | Path, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(a) for a in argv], capture_output=True, text=True, timeout=TIMEOUT, check=check
    )


def Command(tmp_path: Path, *extra: str) -> NbdCommand:
    return NbdCommand("memory:64M", tmp_path / "nbd.sock", *extra, timeout=TIMEOUT)


@pytest.fixture
def command(tmp_path: Path) -> Iterator[NbdCommand]:
    server = Command(tmp_path)
    yield server
    server.stop()


# --- a minimal hand-driven client ----------------------------------------------------


def recv_exact(sock: socket.socket, n: int) -> bytes:
    out = bytearray()
    while len(out) < n:
        chunk = sock.recv(n - len(out))
        if not chunk:
            raise ConnectionError(f"closed after {len(out)} of {n} bytes")
        out += chunk
    return bytes(out)


def connect(path: Path) -> socket.socket:
    """Handshake with NBD_OPT_GO on the default export; simple replies."""
    sock = socket.socket(socket.AF_UNIX)
    sock.settimeout(10)
    sock.connect(str(path))
    assert recv_exact(sock, 18)[:16] == b"NBDMAGICIHAVEOPT"
    sock.sendall(struct.pack(">I", 3))
    sock.sendall(b"IHAVEOPT" + struct.pack(">IIIH", 7, 6, 0, 0))
    while True:
        _magic, _opt, reply, length = struct.unpack(">QIII", recv_exact(sock, 20))
        recv_exact(sock, length)
        if reply == 1:
            return sock
        assert reply == 3, hex(reply)


def send(
    sock: socket.socket, cmd: int, handle: int, offset: int, length: int, data: bytes = b""
) -> None:
    sock.sendall(struct.pack(">IHHQQI", 0x25609513, 0, cmd, handle, offset, length) + data)


def receive(sock: socket.socket, read_lengths: dict[int, int]) -> tuple[int, int, bytes]:
    magic, error, handle = struct.unpack(">IIQ", recv_exact(sock, 16))
    assert magic == 0x67446698
    length = read_lengths.pop(handle, 0)
    return handle, error, recv_exact(sock, length) if length and not error else b""


def is_closed(sock: socket.socket) -> bool:
    try:
        return sock.recv(1) == b""
    except ConnectionResetError:
        return True


# --- real clients ---------------------------------------------------------------------


@needs_tools
def test_ready_line_and_nbdinfo(command: NbdCommand) -> None:
    assert command.ready_line.strip() == f"serving memory:64M on {uri(command.path)}"
    info = json.loads(run("nbdinfo", "--json", uri(command.path)).stdout)
    [export] = info["exports"]
    assert export["export-size"] == 64 * MIB
    assert export["block_size_minimum"] == 1
    assert export["can_multi_conn"] is False
    assert export["is_read_only"] is False


@needs_tools
def test_nbdcopy_64_mib_there_and_back(command: NbdCommand, tmp_path: Path) -> None:
    source, back = tmp_path / "random.bin", tmp_path / "back.bin"
    source.write_bytes(os.urandom(64 * MIB))
    run("nbdcopy", source, uri(command.path))
    run("nbdcopy", uri(command.path), back)
    assert back.read_bytes() == source.read_bytes()


@needs_tools
def test_qemu_img_convert_both_ways(command: NbdCommand, tmp_path: Path) -> None:
    source, back = tmp_path / "in.raw", tmp_path / "out.raw"
    source.write_bytes(os.urandom(MIB) * 64)
    run("qemu-img", "convert", "-n", "-f", "raw", "-O", "raw", source, uri(command.path))
    run("qemu-img", "convert", "-f", "raw", "-O", "raw", uri(command.path), back)
    assert back.read_bytes() == source.read_bytes()


@needs_tools
def test_qemu_io_aligned_and_unaligned(command: NbdCommand) -> None:
    result = run(
        "qemu-io", "-f", "raw",
        "-c", "write -P 0xab 4096 8192",
        "-c", "read -P 0xab 4096 8192",
        "-c", "write -P 0xcd 5000 1000",  # unaligned: read-modify-write in AlignedDevice
        "-c", "read -P 0xab 4096 904",
        "-c", "read -P 0xcd 5000 1000",
        "-c", "read -P 0xab 6000 6288",
        "-c", "write -z 4097 10",
        "-c", "read -P 0 4097 10",
        "-c", "read -P 0xab 4107 893",
        "-c", "flush",
        uri(command.path),
    )  # fmt: skip
    assert "verification failed" not in result.stdout + result.stderr
    assert result.stdout.count("read ") == 6


@needs_tools
def test_read_only_export_refuses_writes(tmp_path: Path) -> None:
    server = Command(tmp_path, "--read-only")
    try:
        info = json.loads(run("nbdinfo", "--json", uri(server.path)).stdout)
        assert info["exports"][0]["is_read_only"] is True
        result = run(
            "qemu-io", "-f", "raw", "-c", "write -P 0xab 0 4096", uri(server.path), check=False
        )
        assert result.returncode != 0
        assert "Permission denied" in result.stderr  # qemu refuses to open it read-write
        result = run("qemu-io", "-r", "-f", "raw", "-c", "read -P 0 0 4096", uri(server.path))
        assert "verification failed" not in result.stdout
        sock = connect(server.path)
        send(sock, 1, 1, 0, 4, b"abcd")
        assert receive(sock, {}) == (1, 1, b"")  # EPERM
        send(sock, 0, 2, 0, 4)
        assert receive(sock, {2: 4}) == (2, 0, bytes(4))
        sock.close()
    finally:
        assert server.stop() == 0
    assert not server.path.exists()


@needs_tools
def test_garbage_gets_disconnected_while_others_are_served(command: NbdCommand) -> None:
    during_handshake = socket.socket(socket.AF_UNIX)
    during_handshake.settimeout(10)
    during_handshake.connect(str(command.path))
    recv_exact(during_handshake, 18)
    during_handshake.sendall(b"\x00\x00\x00\x03GARBAGE!" + bytes(8))

    good = connect(command.path)
    during_transmission = connect(command.path)
    send(good, 1, 7, 0, 5, b"hello")
    during_transmission.sendall(b"\xde\xad\xbe\xef" * 7)

    assert is_closed(during_handshake)
    assert is_closed(during_transmission)
    for _ in range(100):  # the log line may still be on its way through the pipe
        if sum("protocol error" in line for line in command.lines) == 2:
            break
        time.sleep(0.05)
    assert sum("protocol error" in line for line in command.lines) == 2
    assert receive(good, {}) == (7, 0, b"")
    send(good, 0, 8, 0, 5)
    assert receive(good, {8: 5}) == (8, 0, b"hello")
    good.close()
    info = json.loads(run("nbdinfo", "--json", uri(command.path)).stdout)
    assert info["exports"][0]["export-size"] == 64 * MIB


def test_sigterm_exits_zero_and_removes_the_socket(tmp_path: Path) -> None:
    server = Command(tmp_path)
    assert server.path.exists()
    assert server.stop() == 0
    assert not server.path.exists()


# --- in-process server: device errors and concurrency -----------------------------------


class FlakyDevice(MemoryDevice):
    """Fails reads at chosen offsets; counts requests in flight."""

    def __init__(self) -> None:
        super().__init__(MIB, 512)
        self.active = 0
        self.peak = 0

    async def read(self, offset: int, length: int) -> bytes:
        self.active += 1
        self.peak = max(self.peak, self.active)
        try:
            await asyncio.sleep(0.02)
            if offset == 4096:
                raise RuntimeError("medium error")
            if offset == 8192:
                raise InvalidParameterError("lba out of range")
            return await super().read(offset, length)
        finally:
            self.active -= 1


@pytest.fixture
def flaky(tmp_path: Path) -> Iterator[tuple[FlakyDevice, Path]]:
    device = FlakyDevice()
    server = ThreadServer(device, tmp_path / "flaky.sock")
    yield device, server.path
    server.stop()
    assert not server.path.exists()


def test_device_errors_become_error_replies_and_serving_goes_on(
    flaky: tuple[FlakyDevice, Path],
) -> None:
    _device, path = flaky
    sock = connect(path)
    send(sock, 0, 1, 4096, 512)
    assert receive(sock, {1: 512}) == (1, 5, b"")  # EIO
    send(sock, 0, 2, 8192, 512)
    assert receive(sock, {2: 512}) == (2, 22, b"")  # EINVAL
    send(sock, 0, 3, 0, 512)
    assert receive(sock, {3: 512}) == (3, 0, bytes(512))
    send(sock, 2, 4, 0, 0)  # NBD_CMD_DISC
    assert is_closed(sock)


def test_pipelined_requests_run_concurrently(flaky: tuple[FlakyDevice, Path]) -> None:
    device, path = flaky
    sock = connect(path)
    lengths = {}
    for handle in range(32):
        offset = 16384 + handle * 1000  # unaligned on purpose
        send(sock, 0, handle, offset, 700)
        lengths[handle] = 700
    handles = {receive(sock, lengths)[0] for _ in range(32)}
    assert handles == set(range(32))
    assert device.peak >= 16
    sock.close()


@needs_tools
def test_tcp_port_zero_binds_loopback(tmp_path: Path) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "iscsikit.nbd", "memory:1M", "--port", "0"],
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stderr is not None
        line = proc.stderr.readline().strip()
        prefix = "serving memory:1M on nbd://127.0.0.1:"
        assert line.startswith(prefix)
        info = json.loads(
            run("nbdinfo", "--json", line.removeprefix("serving memory:1M on ")).stdout
        )
        assert info["exports"][0]["export-size"] == MIB
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(TIMEOUT) == 0


def test_a_silent_client_is_dropped_after_the_handshake_timeout(tmp_path: Path) -> None:
    from iscsikit.nbd.server import Limits

    server = ThreadServer(
        MemoryDevice(MIB), tmp_path / "t.sock", limits=Limits(handshake_timeout=0.3)
    )
    try:
        sock = socket.socket(socket.AF_UNIX)
        sock.settimeout(10)
        sock.connect(str(server.path))
        assert recv_exact(sock, 18)[:8] == b"NBDMAGIC"
        assert is_closed(sock)  # well before the 10 s socket timeout
        connect(server.path).close()  # others are still welcome
    finally:
        server.stop()
