"""An NBD export's unix socket is its owner's only: created 0600 whatever the umask (no
moment where it is wider), refused to another user; a TCP export warns that it has no
authentication."""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import stat
from pathlib import Path

import pytest

from iscsikit.errors import InvalidParameterError
from iscsikit.nbd.device import MemoryDevice
from iscsikit.nbd.server import owner_only_unix_socket, serve

NOBODY = 65534


def _connect_as(uid: int, path: str) -> int:
    """Connect to ``path`` from a child running as ``uid``: 0, or the errno."""
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        code = 0
        try:
            os.setgid(uid)
            os.setuid(uid)
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
                s.connect(path)
        except OSError as exc:
            code = exc.errno or 255
        os._exit(code)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status)


def test_socket_is_created_owner_only_under_any_umask(tmp_path: Path) -> None:
    path = str(tmp_path / "export.sock")
    old = os.umask(0)
    try:
        sock = owner_only_unix_socket(path)
    finally:
        os.umask(old)
    try:
        assert stat.S_IMODE(os.lstat(path).st_mode) == 0o600
    finally:
        sock.close()


def test_another_user_cannot_connect(tmp_path: Path) -> None:
    assert os.geteuid() == 0, "acting as another user needs root (as CI runs)"
    tmp_path.chmod(0o755)  # the directory is not what stops them
    path = str(tmp_path / "export.sock")
    old = os.umask(0)
    try:
        sock = owner_only_unix_socket(path)
    finally:
        os.umask(old)
    try:
        assert _connect_as(NOBODY, path) == 13  # EACCES
        assert _connect_as(0, path) == 0
    finally:
        sock.close()


def test_only_a_stale_socket_is_replaced(tmp_path: Path) -> None:
    path = tmp_path / "export.sock"
    path.write_text("not a socket")
    with pytest.raises(InvalidParameterError, match="is not a socket"):
        owner_only_unix_socket(str(path))
    assert path.read_text() == "not a socket"


def test_tcp_export_warns_it_has_no_authentication(caplog: pytest.LogCaptureFixture) -> None:
    async def main() -> str:
        ready: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        task = asyncio.create_task(serve(MemoryDevice(1 << 20), port=0, ready=ready.set_result))
        uri = await asyncio.wait_for(ready, 10)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        return uri

    with caplog.at_level(logging.WARNING, logger="iscsikit.nbd.server"):
        uri = asyncio.run(main())
    assert uri.startswith("nbd://127.0.0.1:")
    assert any(
        "no authentication" in r.getMessage() and "read and write the LUN" in r.getMessage()
        for r in caplog.records
    )
