"""iscsikitd's IPC server and client over a real unix socket.

The server runs in a thread with its own event loop and a test handler; clients are
:class:`DaemonClient` (threads, or a subprocess that drops to uid 65534 before connecting),
or raw sockets where a test must misbehave on purpose.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import socket
import stat
import struct
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from iscsikit.daemon.server import DaemonRunningError, IpcServer, PeerCred
from iscsikit.errors import (
    AuthenticationError,
    InternalError,
    InvalidParameterError,
    IscsiErr,
    SessionNotFoundError,
)
from iscsikit.ipc.client import (
    DaemonClient,
    DaemonCommError,
    DaemonNotRunningError,
    DaemonTimeoutError,
)
from iscsikit.ipc.errors import TooManyClientsError, UnknownOperationError
from iscsikit.ipc.protocol import MAX_MESSAGE, encode_request

pytestmark = pytest.mark.integration

NOBODY = 65534
TIMEOUT = 10.0


class Handler:
    """The test handler: echo, arithmetic, errors, sleeps; it records who called."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, PeerCred]] = []
        self.in_flight = 0
        self.most_in_flight = 0

    async def __call__(self, op: str, args: dict[str, Any], peer: PeerCred) -> Any:
        self.calls.append((op, peer))
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            if op == "echo":
                return {"args": args, "uid": peer.uid, "gid": peer.gid, "pid": peer.pid}
            if op == "add":
                await asyncio.sleep(args.get("delay", 0))
                return args["a"] + args["b"]
            if op == "fail":
                raise SessionNotFoundError(f"no session {args['sid']}")
            if op == "auth":
                raise AuthenticationError("login to iqn.x rejected: authentication failure")
            if op == "bug":
                raise RuntimeError("handler bug")
            if op == "unencodable":
                return {"x": object()}
            if op == "sleep":
                await asyncio.sleep(args["seconds"])
                return True
            raise InvalidParameterError(f"no op {op}")
        finally:
            self.in_flight -= 1


class Running:
    """A server in a thread: ``path``, ``handler``, ``server``; :meth:`stop`."""

    def __init__(self, server: IpcServer, handler: Handler) -> None:
        self.server = server
        self.handler = handler
        self.path = str(server.path)
        self.loop = asyncio.new_event_loop()
        started = threading.Event()
        self.error: BaseException | None = None

        def run() -> None:
            asyncio.set_event_loop(self.loop)
            try:
                self.loop.run_until_complete(server.start())
            except BaseException as exc:
                self.error = exc
                started.set()
                return
            started.set()
            self.loop.run_until_complete(server.serve_forever())

        self.thread = threading.Thread(target=run, daemon=True)
        self.thread.start()
        started.wait(TIMEOUT)
        if self.error is not None:
            self.thread.join(TIMEOUT)
            self.loop.close()
            raise self.error

    def stop(self) -> None:
        if self.thread.is_alive():
            asyncio.run_coroutine_threadsafe(self.server.close(), self.loop).result(TIMEOUT)
            self.thread.join(TIMEOUT)
        if not self.loop.is_closed():
            self.loop.close()


@pytest.fixture
def sockdir() -> Iterator[Path]:
    """A short directory any user can traverse (pytest's tmp_path is 0700 and long)."""
    path = Path(tempfile.mkdtemp(prefix="ipc-", dir="/tmp"))
    path.chmod(0o755)
    yield path
    for child in path.iterdir():
        child.unlink()
    path.rmdir()


StartServer = Callable[..., Running]


@pytest.fixture
def start_server(sockdir: Path) -> Iterator[StartServer]:
    running: list[Running] = []

    def start(**options: Any) -> Running:
        handler = options.pop("handler", None) or Handler()
        path = options.pop("path", sockdir / "iscsikitd.sock")
        server = Running(IpcServer(path, handler, **options), handler)
        running.append(server)
        return server

    yield start
    for server in running:
        server.stop()


def raw_connect(path: str) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(TIMEOUT)
    sock.connect(path)
    return sock


def read_reply(sock: socket.socket) -> dict[str, Any] | None:
    """One reply, or None at end of stream."""
    head = b""
    while len(head) < 4:
        chunk = sock.recv(4 - len(head))
        if not chunk:
            return None
        head += chunk
    (length,) = struct.unpack(">I", head)
    body = b""
    while len(body) < length:
        chunk = sock.recv(length - len(body))
        assert chunk, "reply truncated"
        body += chunk
    reply: dict[str, Any] = json.loads(body)
    return reply


def at_eof(sock: socket.socket) -> bool:
    try:
        return sock.recv(1) == b""
    except ConnectionResetError:
        return True


# -- answers ------------------------------------------------------------------------------


def test_64_concurrent_clients(start_server: StartServer) -> None:
    running = start_server()

    def client(n: int) -> list[int]:
        with DaemonClient(running.path, timeout=TIMEOUT) as c:
            return [c.call("add", a=n, b=i, delay=0.01) for i in range(5)]

    with ThreadPoolExecutor(64) as pool:
        results = list(pool.map(client, range(64)))
    assert results == [[n + i for i in range(5)] for n in range(64)]
    assert len(running.handler.calls) == 64 * 5
    assert running.handler.most_in_flight > 1  # the clients were served concurrently


def test_handler_sees_the_peer(start_server: StartServer) -> None:
    running = start_server()
    with DaemonClient(running.path) as c:
        result = c.call("echo", target="iqn.x", n=[1, {"k": None}])
    assert result == {
        "args": {"target": "iqn.x", "n": [1, {"k": None}]},
        "uid": os.getuid(),
        "gid": os.getgid(),
        "pid": os.getpid(),
    }


def test_handler_errors_come_back_with_their_code(start_server: StartServer) -> None:
    running = start_server()
    with DaemonClient(running.path) as c:
        with pytest.raises(SessionNotFoundError, match="no session 3") as caught:
            c.call("fail", sid=3)
        assert caught.value.code == IscsiErr.SESS_NOT_FOUND
        with pytest.raises(AuthenticationError) as auth:
            c.call("auth")
        assert auth.value.code == 24
        with pytest.raises(InternalError, match="RuntimeError: handler bug") as bug:
            c.call("bug")
        assert bug.value.code == IscsiErr.INTERNAL
        with pytest.raises(InternalError, match="cannot encode"):
            c.call("unencodable")
        # The same connection still serves.
        assert c.call("add", a=1, b=2) == 3


def test_unknown_operation(start_server: StartServer) -> None:
    running = start_server(ops={"add"})
    with DaemonClient(running.path) as c:
        with pytest.raises(UnknownOperationError) as caught:
            c.call("echo")
        assert caught.value.code == IscsiErr.INVALID_MGMT_REQ
        assert c.call("add", a=2, b=2) == 4
    assert [op for op, _ in running.handler.calls] == ["add"]


def test_pipelined_requests_are_answered_in_order(start_server: StartServer) -> None:
    running = start_server()
    with raw_connect(running.path) as sock:
        sock.sendall(b"".join(encode_request(i, "add", {"a": i, "b": 1}) for i in range(10)))
        replies = [read_reply(sock) for _ in range(10)]
    assert [(r["id"], r["result"]) for r in replies if r] == [(i, i + 1) for i in range(10)]


# -- credentials --------------------------------------------------------------------------

NOBODY_CLIENT = textwrap.dedent(
    """
    import json, os, sys
    from iscsikit.errors import IscsiError
    from iscsikit.ipc.client import DaemonClient
    client = DaemonClient(sys.argv[1], timeout=10)
    os.setgroups([])
    os.setgid({uid})
    os.setuid({uid})
    try:
        out = {{"ok": client.call("echo", who="nobody")}}
    except IscsiError as exc:
        out = {{"kind": type(exc).__name__, "code": int(exc.code), "message": str(exc)}}
    print(json.dumps(out))
    """
).format(uid=NOBODY)


def run_as_nobody(path: str) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, "-c", NOBODY_CLIENT, path],
        capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    out: dict[str, Any] = json.loads(done.stdout)
    return out


def test_non_root_client_is_refused(start_server: StartServer) -> None:
    running = start_server()
    assert stat.S_IMODE(os.stat(running.path).st_mode) == 0o600
    os.chmod(running.path, 0o666)  # reachable: SO_PEERCRED is what must refuse
    os.chmod(os.path.dirname(running.path), 0o711)
    out = run_as_nobody(running.path)
    assert out["kind"] == "AccessDeniedError", out
    assert "cannot open" not in out["message"], out  # the daemon refused, not the kernel
    assert out["code"] == IscsiErr.ACCESS == 13
    assert running.handler.calls == []
    with DaemonClient(running.path) as c:  # root still gets in
        assert c.call("add", a=1, b=1) == 2


def test_socket_mode_keeps_others_out(start_server: StartServer) -> None:
    running = start_server()
    out = run_as_nobody(running.path)  # 0600: the kernel refuses before the daemon sees it
    assert out["code"] == IscsiErr.ACCESS
    assert running.handler.calls == []


def test_allowed_uid(start_server: StartServer) -> None:
    running = start_server(allowed_uids=[NOBODY])
    assert stat.S_IMODE(os.stat(running.path).st_mode) == 0o666
    out = run_as_nobody(running.path)
    assert out["ok"]["uid"] == NOBODY
    assert out["ok"]["args"] == {"who": "nobody"}


def test_allowed_gid(start_server: StartServer) -> None:
    running = start_server(allowed_gids=[NOBODY])
    st = os.stat(running.path)
    assert (stat.S_IMODE(st.st_mode), st.st_gid) == (0o660, NOBODY)
    out = run_as_nobody(running.path)
    assert out["ok"]["gid"] == NOBODY


# -- protocol violations ----------------------------------------------------------------


def test_malformed_request_gets_an_error_and_the_connection_goes_on(
    start_server: StartServer,
) -> None:
    running = start_server()
    with raw_connect(running.path) as sock:
        for body in (b"not json", b"[1]", b'{"v": 2, "id": 5, "op": "add", "args": {}}'):
            sock.sendall(struct.pack(">I", len(body)) + body)
            reply = read_reply(sock)
            assert reply is not None
            assert reply["ok"] is False
            assert reply["error"]["code"] == IscsiErr.INVALID_MGMT_REQ
        assert reply["id"] == 5
        assert "version 2" in reply["error"]["message"]
        sock.sendall(encode_request(6, "add", {"a": 1, "b": 1}))
        assert read_reply(sock) == {"v": 1, "id": 6, "ok": True, "result": 2}
    assert [op for op, _ in running.handler.calls] == ["add"]


def test_oversized_request_is_refused_and_closed(start_server: StartServer) -> None:
    running = start_server()
    with raw_connect(running.path) as sock:
        sock.sendall(struct.pack(">I", MAX_MESSAGE + 1) + b"{" * 1000)
        reply = read_reply(sock)
        assert reply is not None
        assert reply["id"] is None
        assert reply["error"]["code"] == IscsiErr.INVALID_MGMT_REQ
        assert "exceeds" in reply["error"]["message"]
        assert at_eof(sock)
    with DaemonClient(running.path) as c:
        assert c.call("add", a=1, b=2) == 3


def test_truncated_request_gets_an_error(start_server: StartServer) -> None:
    running = start_server()
    with raw_connect(running.path) as sock:
        sock.sendall(encode_request(1, "add", {"a": 1, "b": 1})[:-3])
        sock.shutdown(socket.SHUT_WR)
        reply = read_reply(sock)
        assert reply is not None
        assert "truncated" in reply["error"]["message"]
        assert reply["error"]["code"] == IscsiErr.INVALID_MGMT_REQ
        assert at_eof(sock)
    assert running.handler.calls == []
    with DaemonClient(running.path) as c:
        assert c.call("add", a=1, b=2) == 3


def test_request_budget_makes_the_client_reconnect(start_server: StartServer) -> None:
    running = start_server(max_requests=2)
    with DaemonClient(running.path) as c:
        assert [c.call("add", a=i, b=0) for i in range(7)] == list(range(7))
    assert len(running.handler.calls) == 7  # refused requests were not run


def test_too_many_clients(start_server: StartServer) -> None:
    running = start_server(max_clients=2)
    first, second = DaemonClient(running.path), DaemonClient(running.path)
    try:
        assert first.call("add", a=1, b=1) == 2
        assert second.call("add", a=1, b=1) == 2
        with DaemonClient(running.path) as third:
            with pytest.raises(TooManyClientsError) as caught:
                third.call("add", a=1, b=1)
            assert caught.value.code == IscsiErr.AGAIN
        first.close()
        deadline = time.monotonic() + TIMEOUT
        while True:  # the server notices the close soon
            try:
                with DaemonClient(running.path) as third:
                    assert third.call("add", a=2, b=2) == 4
                break
            except TooManyClientsError:
                assert time.monotonic() < deadline
                time.sleep(0.05)
    finally:
        first.close()
        second.close()


# -- timeouts -----------------------------------------------------------------------------


def test_idle_client_is_dropped_and_the_client_reconnects(start_server: StartServer) -> None:
    running = start_server(idle_timeout=0.3)
    with raw_connect(running.path) as sock:
        start = time.monotonic()
        assert at_eof(sock)
        assert 0.2 < time.monotonic() - start < 5
    with DaemonClient(running.path) as c:
        assert c.call("add", a=1, b=1) == 2
        time.sleep(0.6)  # the server closed this connection meanwhile
        assert c.call("add", a=2, b=2) == 4
    assert len(running.handler.calls) == 2


def test_trickling_client_is_dropped(start_server: StartServer) -> None:
    running = start_server(idle_timeout=5, request_timeout=0.5)
    data = encode_request(1, "add", {"a": 1, "b": 1, "pad": "x" * 100})
    with raw_connect(running.path) as sock:
        start = time.monotonic()
        reply = None
        for byte in data:  # one byte every 50 ms: each read is quick, the request is not
            try:
                sock.sendall(bytes([byte]))
            except (BrokenPipeError, ConnectionResetError):
                break
            time.sleep(0.05)
        reply = read_reply(sock)
        elapsed = time.monotonic() - start
    assert reply is not None
    assert reply["id"] is None
    assert "incomplete request" in reply["error"]["message"]
    assert elapsed < 0.05 * len(data)
    assert running.handler.calls == []


def test_client_timeout(start_server: StartServer) -> None:
    running = start_server()
    with DaemonClient(running.path, timeout=0.3) as c:
        with pytest.raises(DaemonTimeoutError) as caught:
            c.call("sleep", seconds=2)
        assert caught.value.code == IscsiErr.REQ_TIMEDOUT
        assert c.request("sleep", {"seconds": 0.5}, timeout=5) is True


def test_close_ends_connections_and_removes_the_socket(start_server: StartServer) -> None:
    running = start_server()
    with raw_connect(running.path) as sock:
        sock.sendall(encode_request(1, "sleep", {"seconds": 30}))
        time.sleep(0.1)
        running.stop()
        assert at_eof(sock)
    assert not os.path.exists(running.path)


def test_close_with_an_idle_client_logs_no_error(
    start_server: StartServer, caplog: pytest.LogCaptureFixture
) -> None:
    running = start_server()
    with raw_connect(running.path) as sock:
        sock.sendall(encode_request(1, "echo", {"x": 1}))
        assert read_reply(sock) is not None  # served, then idle on the next read
        with caplog.at_level(logging.DEBUG):
            running.stop()
        assert at_eof(sock)
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == []


# -- binding ------------------------------------------------------------------------------


def test_no_daemon(sockdir: Path) -> None:
    with pytest.raises(DaemonNotRunningError, match="no socket") as caught:
        DaemonClient(sockdir / "iscsikitd.sock").call("add")
    assert caught.value.code == IscsiErr.ISCSID_NOTCONN == 20


def stale_socket(path: Path) -> None:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.bind(str(path))
    sock.close()


def test_stale_socket_is_replaced(start_server: StartServer, sockdir: Path) -> None:
    path = sockdir / "iscsikitd.sock"
    stale_socket(path)
    with pytest.raises(DaemonNotRunningError, match="connection refused"):
        DaemonClient(path).call("add")
    running = start_server(path=path)
    with DaemonClient(path) as c:
        assert c.call("add", a=1, b=1) == 2
    running.stop()
    assert not path.exists()


def test_second_daemon_is_refused(start_server: StartServer, sockdir: Path) -> None:
    start_server()
    with pytest.raises(DaemonRunningError, match="holds"):
        start_server()


def test_foreign_listener_is_not_replaced(start_server: StartServer, sockdir: Path) -> None:
    path = sockdir / "iscsikitd.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as other:
        other.bind(str(path))
        other.listen()
        with pytest.raises(DaemonRunningError, match="answers"):
            start_server(path=path)
        assert stat.S_ISSOCK(path.lstat().st_mode)
    path.unlink()


def test_regular_file_is_not_replaced(start_server: StartServer, sockdir: Path) -> None:
    path = sockdir / "iscsikitd.sock"
    path.write_text("precious")
    with pytest.raises(InvalidParameterError, match="not a socket"):
        start_server(path=path)
    assert path.read_text() == "precious"


def test_pre_bound_socket(sockdir: Path) -> None:
    path = sockdir / "activated.sock"
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(path))
    listener.listen()
    handler = Handler()
    running = Running(IpcServer.from_socket(listener, handler), handler)
    try:
        with DaemonClient(path) as c:
            assert c.call("add", a=3, b=4) == 7
    finally:
        running.stop()
    assert path.exists()  # systemd owns the file


SYSTEMD_DAEMON = textwrap.dedent(
    """
    import asyncio, os, sys
    from iscsikit.daemon.server import IpcServer

    # What systemd does before exec: the socket at fd 3 (LISTEN_FDS_START).
    passed = int(sys.argv[1])
    if passed != 3:
        os.dup2(passed, 3)
        os.close(passed)

    async def main():
        server = None
        async def handler(op, args, peer):
            if op == "stop":
                asyncio.get_running_loop().call_soon(
                    lambda: asyncio.ensure_future(server.close()))
            return {"op": op, "args": args}
        server = IpcServer.from_systemd(handler)
        assert server is not None, "no socket from systemd"
        print("serving", flush=True)
        await server.serve_forever()

    asyncio.run(main())
    """
)


def test_systemd_socket_activation(sockdir: Path) -> None:
    path = sockdir / "iscsikitd.sock"
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(path))
    listener.listen()
    fd = listener.fileno()
    # ``exec`` keeps the shell's pid, so LISTEN_PID=$$ names the Python process.
    command = f'LISTEN_PID=$$ LISTEN_FDS=1 exec "{sys.executable}" -c "$0" {fd}'
    proc = subprocess.Popen(
        ["/bin/sh", "-c", command, SYSTEMD_DAEMON],
        pass_fds=(fd,), stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline() == "serving\n"
        listener.close()  # only the daemon holds it now
        with DaemonClient(path) as c:
            assert c.call("echo", x=1) == {"op": "echo", "args": {"x": 1}}
            assert c.call("stop") == {"op": "stop", "args": {}}
        assert proc.wait(TIMEOUT) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert path.exists()


# -- a broken daemon, seen from the client ------------------------------------------------


def fake_daemon(path: Path, answer: bytes) -> threading.Thread:
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(path))
    listener.listen()

    def serve() -> None:
        conn, _ = listener.accept()
        with conn, listener:
            conn.recv(65536)
            conn.sendall(answer)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    return thread


@pytest.mark.parametrize(
    "answer",
    [
        b"",
        b"\x00\x00",
        struct.pack(">I", 100) + b"{}",
        struct.pack(">I", 8) + b"garbage!",
        struct.pack(">I", MAX_MESSAGE + 1),
        struct.pack(">I", 2) + b"{}",
    ],
)
def test_broken_exchange_is_comm_error(sockdir: Path, answer: bytes) -> None:
    path = sockdir / "iscsikitd.sock"
    thread = fake_daemon(path, answer)
    with pytest.raises(DaemonCommError) as caught, DaemonClient(path, timeout=TIMEOUT) as c:
        c.call("add")
    assert caught.value.code == IscsiErr.ISCSID_COMM_ERR == 18
    thread.join(TIMEOUT)


def test_reply_to_another_request_is_comm_error(sockdir: Path) -> None:
    body = json.dumps({"v": 1, "id": 999, "ok": True, "result": 1}).encode()
    thread = fake_daemon(sockdir / "iscsikitd.sock", struct.pack(">I", len(body)) + body)
    with pytest.raises(DaemonCommError, match="reply 999"):
        DaemonClient(sockdir / "iscsikitd.sock").call("add")
    thread.join(TIMEOUT)
