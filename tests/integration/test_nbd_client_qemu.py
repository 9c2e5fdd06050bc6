"""The library's NBD client against an NBD server it was not written with: qemu-nbd.

The data is checked in the image file qemu-nbd serves; an unknown export name and a
read-only export are refused as the client documents.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from iscsikit.errors import NoObjectsFoundError, NotSupportedError
from iscsikit.nbd.client import NbdClient

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(shutil.which("qemu-nbd") is None, reason="qemu-nbd is not installed"),
]

SIZE = 8 << 20


@pytest.fixture
def workdir() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="qnbd", dir="/tmp"))  # unix socket paths are short
    yield path
    shutil.rmtree(path, ignore_errors=True)


def qemu_nbd(workdir: Path, *extra: str) -> tuple[subprocess.Popen[bytes], Path, Path]:
    image, sock = workdir / "disk.img", workdir / "nbd.sock"
    if not image.exists():
        with image.open("wb") as f:
            f.truncate(SIZE)
    argv = ["qemu-nbd", "-k", str(sock), "-f", "raw", "-x", "disk", "--persistent",
            "--discard=unmap", *extra, str(image)]  # fmt: skip
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 30
    while not sock.exists():
        assert proc.poll() is None and time.monotonic() < deadline, proc.stderr
        time.sleep(0.02)
    return proc, sock, image


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    proc.wait(30)


def test_data_path_against_qemu_nbd(workdir: Path) -> None:
    proc, sock, image = qemu_nbd(workdir)
    try:
        data = os.urandom(300_001)
        with NbdClient(sock, export_name="disk") as nbd:
            assert nbd.size == SIZE and not nbd.read_only
            assert nbd.can_flush and nbd.can_fua and nbd.can_trim and nbd.can_write_zeroes
            nbd.write(4096 + 17, data, fua=True)
            assert nbd.read(4096 + 17, len(data)) == data
            nbd.write_zeroes(4096 + 17, 1000)
            nbd.trim(1 << 20, 1 << 20)
            nbd.flush()
        content = image.read_bytes()
        assert content[4096 + 17 : 4096 + 1017] == bytes(1000)
        assert content[4096 + 1017 : 4096 + 17 + len(data)] == data[1000:]
        with pytest.raises(NoObjectsFoundError, match="'nope'"):
            NbdClient(sock, export_name="nope", connect_timeout=10)
    finally:
        stop(proc)


def test_read_only_export_of_qemu_nbd(workdir: Path) -> None:
    proc, sock, _ = qemu_nbd(workdir, "--read-only")
    try:
        with NbdClient(sock, export_name="disk") as nbd:
            assert nbd.read_only
            assert nbd.read(0, 4096) == bytes(4096)
            with pytest.raises(NotSupportedError):
                nbd.write(0, b"x")
    finally:
        stop(proc)
