"""The blocking NBD client against the in-repo NBD server (serve() over a MemoryDevice on a
unix socket, in a thread), and against scripted servers for what the real one never does:
no NBD_OPT_GO, not fixed newstyle, a reply cut short, no reply, a bad magic."""

from __future__ import annotations

import os
import shutil
import socket
import struct
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from iscsikit.errors import (
    ConnectionFailedError,
    InvalidParameterError,
    IscsiErr,
    NoObjectsFoundError,
    NotSupportedError,
    PduTimeoutError,
    RemoteProtocolError,
    TransportError,
    TransportTimeoutError,
)
from iscsikit.nbd import wire
from iscsikit.nbd.client import (
    NbdClient,
    NbdInvalidError,
    NbdIOError,
    NbdNotSupportedError,
    request_error,
)
from iscsikit.nbd.constants import (
    Command,
    Errno,
    HandshakeFlag,
    Option,
    OptionReply,
    TransmissionFlag,
)
from iscsikit.nbd.device import MemoryDevice
from iscsikit.testing.nbd import ThreadServer

SIZE = 4 << 20
TIMEOUT = 30.0


class RecordingDevice(MemoryDevice):
    """A MemoryDevice that records each call and fails where told to."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.calls: list[tuple[Any, ...]] = []
        self.fail_read: BaseException | None = None
        self.fail_write: BaseException | None = None

    def last(self) -> tuple[Any, ...]:
        return self.calls[-1]

    async def read(self, offset: int, length: int) -> bytes:
        self.calls.append(("read", offset, length))
        if self.fail_read is not None:
            raise self.fail_read
        return await super().read(offset, length)

    async def write(self, offset: int, data: bytes | memoryview, *, fua: bool = False) -> None:
        self.calls.append(("write", offset, len(data), fua))
        if self.fail_write is not None:
            raise self.fail_write
        await super().write(offset, data, fua=fua)

    async def flush(self) -> None:
        self.calls.append(("flush",))
        await super().flush()

    async def write_zeroes(self, offset: int, length: int, *, may_unmap: bool = False) -> None:
        self.calls.append(("write_zeroes", offset, length, may_unmap))
        await super().write_zeroes(offset, length, may_unmap=may_unmap)

    async def unmap(self, offset: int, length: int) -> None:
        self.calls.append(("unmap", offset, length))
        await super().unmap(offset, length)


@pytest.fixture
def sockdir() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="nbdc", dir="/tmp"))  # unix socket paths are short
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def serving(sockdir: Path) -> Iterator[Callable[..., Path]]:
    servers: list[ThreadServer] = []

    def start(device: MemoryDevice, **kwargs: Any) -> Path:
        server = ThreadServer(device, sockdir / f"s{len(servers)}.sock", **kwargs)
        servers.append(server)
        return server.path

    yield start
    for server in servers:
        server.stop()


# --- against the in-repo server -------------------------------------------------------


def test_handshake_with_go_reports_the_export(serving: Callable[..., Path]) -> None:
    path = serving(MemoryDevice(SIZE, 4096), max_payload=1 << 20, export_name="disk")
    with NbdClient(path, export_name="disk") as nbd:
        assert nbd.size == SIZE
        assert (nbd.min_block, nbd.preferred_block, nbd.max_block) == (1, 4096, 1 << 20)
        assert nbd.can_flush and nbd.can_fua and nbd.can_trim and nbd.can_write_zeroes
        assert not nbd.read_only
        assert TransmissionFlag.HAS_FLAGS in nbd.flags
    assert nbd.closed


def test_read_write_unaligned_and_zero_length(serving: Callable[..., Path]) -> None:
    device = MemoryDevice(SIZE, 512)
    with NbdClient(serving(device)) as nbd:
        data = os.urandom(10_000)
        assert nbd.write(1234, data) == len(data)
        assert nbd.read(1234, len(data)) == data
        assert bytes(device.data[1234 : 1234 + len(data)]) == data
        buf = bytearray(100)
        assert nbd.readinto(1300, memoryview(buf)) == 100
        assert bytes(buf) == data[66:166]
        assert nbd.read(0, 0) == b""
        assert nbd.write(SIZE, b"") == 0


def test_large_requests_are_split_by_the_maximum_block_size(
    serving: Callable[..., Path],
) -> None:
    device = RecordingDevice(SIZE, 512)
    with NbdClient(serving(device, max_payload=64 << 10)) as nbd:
        data = os.urandom(200 << 10)
        nbd.write(0, data)
        assert [c[2] for c in device.calls] == [64 << 10] * 3 + [8 << 10]
        device.calls.clear()
        assert nbd.read(0, len(data)) == data
        assert [(c[0], c[1], c[2]) for c in device.calls] == [
            ("read", i << 16, min(64 << 10, len(data) - (i << 16))) for i in range(4)
        ]


def test_flush_fua_trim_write_zeroes(serving: Callable[..., Path]) -> None:
    device = RecordingDevice(SIZE, 512)
    with NbdClient(serving(device)) as nbd:
        nbd.write(0, b"\xff" * 8192, fua=True)
        assert device.last() == ("write", 0, 8192, True)
        nbd.flush()
        assert device.last()[0] == "flush" and device.flushes == 1
        nbd.trim(0, 4096)
        assert device.calls[-2] == ("unmap", 0, 4096)  # MemoryDevice unmaps by zeroing
        assert nbd.read(0, 4096) == bytes(4096)
        nbd.write_zeroes(4096, 2048)  # NO_HOLE: the device may not unmap
        assert device.last() == ("write_zeroes", 4096, 2048, False)
        nbd.write_zeroes(6144, 1024, may_unmap=True, fua=True)
        assert ("write_zeroes", 6144, 1024, True) in device.calls
        assert device.last()[0] == "flush"  # the server's way to honour FUA there
        assert nbd.read(0, 8192) == bytes(7168) + b"\xff" * 1024


def test_trim_is_refused_when_not_advertised(serving: Callable[..., Path]) -> None:
    device = RecordingDevice(SIZE, 512, can_unmap=False)
    with NbdClient(serving(device)) as nbd:
        assert not nbd.can_trim
        with pytest.raises(NotSupportedError) as info:
            nbd.trim(0, 4096)
        assert info.value.code == IscsiErr.OP_NOT_SUPP
        assert device.calls == []  # nothing was sent


def test_read_only_export(serving: Callable[..., Path]) -> None:
    device = RecordingDevice(SIZE, 512)
    with NbdClient(serving(device, read_only=True)) as nbd:
        assert nbd.read_only
        for call in (
            lambda: nbd.write(0, b"x"),
            lambda: nbd.write_zeroes(0, 512),
            lambda: nbd.trim(0, 512),
        ):
            with pytest.raises(NotSupportedError):
                call()
        assert nbd.read(0, 512) == bytes(512)
        assert [c[0] for c in device.calls] == ["read"]


def test_out_of_range_is_refused_before_sending(serving: Callable[..., Path]) -> None:
    device = RecordingDevice(SIZE, 512)
    with NbdClient(serving(device)) as nbd:
        for offset, length in ((SIZE - 1, 2), (-1, 1), (0, -1)):
            with pytest.raises(InvalidParameterError):
                nbd.read(offset, length)
        with pytest.raises(InvalidParameterError):
            nbd.write(SIZE, b"x")
        assert device.calls == []


def test_eio_from_the_export_is_a_transport_error_and_the_connection_survives(
    serving: Callable[..., Path],
) -> None:
    device = RecordingDevice(SIZE, 512)
    with NbdClient(serving(device)) as nbd:
        device.fail_read = TransportError("the session is down")
        with pytest.raises(NbdIOError) as info:
            nbd.read(0, 4096)
        assert isinstance(info.value, TransportError)
        assert info.value.code == IscsiErr.TRANS and info.value.errno == Errno.EIO
        device.fail_read = None
        nbd.write(0, b"back")
        assert nbd.read(0, 4) == b"back"


def test_eperm_and_einval_from_the_export(serving: Callable[..., Path]) -> None:
    device = RecordingDevice(SIZE, 512)
    with NbdClient(serving(device)) as nbd:
        device.fail_write = PermissionError(1, "no")
        with pytest.raises(NbdNotSupportedError) as perm:
            nbd.write(0, b"data")
        assert perm.value.errno == Errno.EPERM and perm.value.code == IscsiErr.OP_NOT_SUPP
        device.fail_write = None
        nbd.size += 4096  # make the client believe in more: the server answers EINVAL
        with pytest.raises(NbdInvalidError) as inval:
            nbd.read(SIZE, 4096)
        assert inval.value.errno == Errno.EINVAL and inval.value.code == IscsiErr.INVAL
        assert isinstance(inval.value, ValueError)
        assert nbd.read(0, 4) == b"\0" * 4  # still usable


def test_request_error_codes() -> None:
    cases = {
        Errno.EIO: IscsiErr.TRANS,
        Errno.ESHUTDOWN: IscsiErr.TRANS,
        Errno.ENOMEM: IscsiErr.TRANS,
        Errno.EINVAL: IscsiErr.INVAL,
        Errno.ENOSPC: IscsiErr.INVAL,
        Errno.EOVERFLOW: IscsiErr.INVAL,
        Errno.EPERM: IscsiErr.OP_NOT_SUPP,
        Errno.ENOTSUP: IscsiErr.OP_NOT_SUPP,
    }
    for errno, code in cases.items():
        exc = request_error(Command.WRITE, 512, 1024, errno)
        assert exc.code == code and exc.errno == errno
        assert str(exc) == f"NBD WRITE of 1024 bytes at 512 failed: {errno.name}"
    assert request_error(Command.READ, 0, 1, 99).code == IscsiErr.ERR


def test_unknown_export_name(serving: Callable[..., Path]) -> None:
    path = serving(MemoryDevice(SIZE), export_name="disk")
    with pytest.raises(NoObjectsFoundError, match="no export named 'nope'"):
        NbdClient(path, export_name="nope")


def test_connect_errors(sockdir: Path) -> None:
    with pytest.raises(TransportError) as info:
        NbdClient(sockdir / "missing.sock")
    assert info.value.code == IscsiErr.TRANS
    listener = socket.socket(socket.AF_UNIX)
    listener.bind(str(sockdir / "mute.sock"))
    listener.listen()
    try:
        start = time.monotonic()
        with pytest.raises(TransportTimeoutError):  # accepted (backlog), never greeted
            NbdClient(sockdir / "mute.sock", connect_timeout=0.3)
        assert time.monotonic() - start < 5
    finally:
        listener.close()


def test_threads_share_one_client(serving: Callable[..., Path]) -> None:
    device = MemoryDevice(SIZE, 512)
    with NbdClient(serving(device)) as nbd:

        def worker(i: int) -> None:
            block = bytes([i]) * 8192
            for _ in range(20):
                nbd.write(i * 8192, block)
                assert nbd.read(i * 8192, 8192) == block

        threads = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(TIMEOUT)
        assert all(device.data[i * 8192] == i for i in range(8))


# --- scripted servers over a socketpair -----------------------------------------------


def recv_exact(sock: socket.socket, n: int) -> bytes:
    out = bytearray()
    while len(out) < n:
        chunk = sock.recv(n - len(out))
        if not chunk:
            raise ConnectionError("client left")
        out += chunk
    return bytes(out)


def scripted(script: Callable[[socket.socket], None]) -> tuple[socket.socket, threading.Thread]:
    """The client's end of a socketpair whose other end runs ``script`` in a thread."""
    ours, theirs = socket.socketpair()
    theirs.settimeout(TIMEOUT)

    def run() -> None:
        try:
            script(theirs)
        except (ConnectionError, OSError):
            pass
        finally:
            theirs.close()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return ours, thread


FLAGS = TransmissionFlag.HAS_FLAGS | TransmissionFlag.SEND_FLUSH


def go_handshake(sock: socket.socket, size: int = SIZE) -> None:
    """Greeting, client flags, NBD_OPT_GO answered with INFO_EXPORT + ACK."""
    sock.sendall(wire.greeting(HandshakeFlag.FIXED_NEWSTYLE | HandshakeFlag.NO_ZEROES))
    assert struct.unpack(">I", recv_exact(sock, 4))[0] == 3
    _, option, length = struct.unpack(">QII", recv_exact(sock, 16))
    assert option == Option.GO
    recv_exact(sock, length)
    sock.sendall(wire.option_reply(Option.GO, OptionReply.INFO, wire.info_export(size, FLAGS)))
    sock.sendall(wire.option_reply(Option.GO, OptionReply.ACK))


def request(sock: socket.socket) -> tuple[int, int, int, int, int]:
    """(flags, type, handle, offset, length) of the next request."""
    _, flags, kind, handle, offset, length = struct.unpack(">IHHQQI", recv_exact(sock, 28))
    return flags, kind, handle, offset, length


def test_fallback_to_export_name_when_go_is_unsupported() -> None:
    def script(sock: socket.socket) -> None:
        sock.sendall(wire.greeting(HandshakeFlag.FIXED_NEWSTYLE | HandshakeFlag.NO_ZEROES))
        recv_exact(sock, 4)
        _, option, length = struct.unpack(">QII", recv_exact(sock, 16))
        recv_exact(sock, length)
        sock.sendall(wire.option_reply(option, OptionReply.ERR_UNSUP))
        _, option, length = struct.unpack(">QII", recv_exact(sock, 16))
        assert option == Option.EXPORT_NAME and recv_exact(sock, length) == b"old"
        sock.sendall(wire.export_name_reply(8192, FLAGS, no_zeroes=True))
        _, kind, handle, offset, length = request(sock)
        assert (kind, offset, length) == (Command.READ, 512, 4)
        sock.sendall(wire.simple_reply(handle, 0, b"abcd"))
        request(sock)  # DISC

    ours, thread = scripted(script)
    with NbdClient(ours, export_name="old") as nbd:
        assert nbd.size == 8192 and nbd.can_flush and not nbd.can_trim
        assert nbd.max_block == 32 << 20  # no NBD_INFO_BLOCK_SIZE: the protocol's default
        assert nbd.read(512, 4) == b"abcd"
    thread.join(TIMEOUT)


def test_not_fixed_newstyle_reads_the_124_zeroes() -> None:
    def script(sock: socket.socket) -> None:
        sock.sendall(wire.greeting(HandshakeFlag(0)))
        assert struct.unpack(">I", recv_exact(sock, 4))[0] == 0
        _, option, length = struct.unpack(">QII", recv_exact(sock, 16))
        assert option == Option.EXPORT_NAME
        recv_exact(sock, length)
        sock.sendall(wire.export_name_reply(4096, FLAGS, no_zeroes=False))
        _, kind, handle, _, _ = request(sock)
        assert kind == Command.FLUSH
        sock.sendall(wire.simple_reply(handle, 0))
        request(sock)

    ours, thread = scripted(script)
    with NbdClient(ours) as nbd:
        assert nbd.size == 4096
        nbd.flush()
    thread.join(TIMEOUT)


def test_server_closing_mid_reply_is_a_bounded_connection_failure() -> None:
    def script(sock: socket.socket) -> None:
        go_handshake(sock)
        _, _, handle, _, length = request(sock)
        sock.sendall(wire.simple_reply(handle, 0) + bytes(length // 2))

    ours, thread = scripted(script)
    nbd = NbdClient(ours, timeout=TIMEOUT)
    start = time.monotonic()
    with pytest.raises(ConnectionFailedError) as info:
        nbd.read(0, 8192)
    assert time.monotonic() - start < 5
    assert info.value.code == IscsiErr.TRANS and nbd.closed
    with pytest.raises(ConnectionFailedError, match="closed"):
        nbd.read(0, 512)
    nbd.close()
    thread.join(TIMEOUT)


def test_no_reply_times_out() -> None:
    done = threading.Event()

    def script(sock: socket.socket) -> None:
        go_handshake(sock)
        request(sock)
        done.wait(TIMEOUT)  # never answers

    ours, thread = scripted(script)
    nbd = NbdClient(ours, timeout=0.3)
    start = time.monotonic()
    with pytest.raises(PduTimeoutError) as info:
        nbd.write(0, b"x" * 512)
    assert 0.25 < time.monotonic() - start < 5
    assert info.value.code == IscsiErr.PDU_TIMEOUT and nbd.closed
    done.set()
    thread.join(TIMEOUT)


def test_bad_reply_magic_and_handle() -> None:
    def bad_magic(sock: socket.socket) -> None:
        go_handshake(sock)
        _, _, handle, _, _ = request(sock)
        sock.sendall(struct.pack(">IIQ", 0x12345678, 0, handle))

    def bad_handle(sock: socket.socket) -> None:
        go_handshake(sock)
        _, _, handle, _, _ = request(sock)
        sock.sendall(wire.simple_reply(handle + 1, 0))

    for script, message in ((bad_magic, "magic"), (bad_handle, "handle")):
        ours, thread = scripted(script)
        nbd = NbdClient(ours)
        with pytest.raises(RemoteProtocolError, match=message):
            nbd.flush()
        assert nbd.closed
        thread.join(TIMEOUT)


def test_not_an_nbd_server() -> None:
    def script(sock: socket.socket) -> None:
        sock.sendall(b"HTTP/1.1 400 Bad Request\r\n\r\n")

    ours, thread = scripted(script)
    with pytest.raises(RemoteProtocolError, match="not an NBD server"):
        NbdClient(ours)
    thread.join(TIMEOUT)


def test_go_refused_by_policy() -> None:
    def script(sock: socket.socket) -> None:
        sock.sendall(wire.greeting(HandshakeFlag.FIXED_NEWSTYLE | HandshakeFlag.NO_ZEROES))
        recv_exact(sock, 4)
        _, option, length = struct.unpack(">QII", recv_exact(sock, 16))
        recv_exact(sock, length)
        sock.sendall(wire.option_reply(option, OptionReply.ERR_POLICY, b"go away"))

    ours, thread = scripted(script)
    with pytest.raises(TransportError, match=r"ERR_POLICY \(go away\)"):
        NbdClient(ours)
    thread.join(TIMEOUT)
