"""``iscsikit-nbd`` serving a real tgtd LUN: the acceptance checks of the NBD export.

The server is the installed command in a subprocess (``python -m iscsikit.nbd URL
--socket PATH``), logged in over iscsikit's userspace data path; the clients are the
real ones: libnbd's ``nbdinfo`` / ``nbdcopy`` and ``qemu-img``.  What the clients
write must land byte-exact in tgtd's backing file.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from iscsikit.testing.nbd import NbdCommand
from iscsikit.testing.tgtd import Tgtd

pytestmark = pytest.mark.integration

MIB = 1 << 20
LUN_SIZE = 96 * MIB
IQN = "iqn.2024-01.test.nbd:disk"
TIMEOUT = 120


def run(*argv: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(a) for a in argv], capture_output=True, text=True, timeout=TIMEOUT, check=True
    )


def NbdServer(url: str, sock: Path, *extra: str) -> NbdCommand:
    return NbdCommand(url, sock, *extra, timeout=TIMEOUT)


@pytest.fixture(scope="module")
def target(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Tgtd, int]]:
    with Tgtd(tmp_path_factory.mktemp("nbd-tgtd")) as tgtd:
        tid = tgtd.add_target(IQN, lun_size=LUN_SIZE)
        yield tgtd, tid


@pytest.fixture
def server(target: tuple[Tgtd, int], tmp_path: Path) -> Iterator[NbdCommand]:
    tgtd, _ = target
    nbd = NbdServer(f"iscsi://{tgtd.portal}/{IQN}/1", tmp_path / "nbd.sock")
    yield nbd
    assert nbd.stop() == 0, "".join(nbd.lines)


def test_nbdinfo_reports_the_lun_size(server: NbdCommand) -> None:
    assert server.lines[0].startswith("serving iscsi://")
    info = json.loads(run("nbdinfo", "--json", server.uri).stdout)
    [export] = info["exports"]
    assert export["export-size"] == LUN_SIZE
    assert export["is_read_only"] is False


def test_nbdcopy_round_trips_64_mib_through_the_lun(
    server: NbdServer, target: tuple[Tgtd, int], tmp_path: Path
) -> None:
    tgtd, tid = target
    image = os.urandom(64 * MIB)
    source, back = tmp_path / "in.bin", tmp_path / "out.bin"
    source.write_bytes(image)
    run("nbdcopy", source, server.uri)
    run("nbdcopy", server.uri, back)
    assert back.read_bytes()[: len(image)] == image
    # nbdcopy flushes at the end: the data is in tgtd's backing file.
    assert tgtd.backing_path(tid, 1).read_bytes()[: len(image)] == image


def test_qemu_img_convert_from_the_export(
    server: NbdServer, target: tuple[Tgtd, int], tmp_path: Path
) -> None:
    tgtd, tid = target
    pattern = os.urandom(MIB)
    with tgtd.backing_path(tid, 1).open("r+b") as f:
        f.seek(80 * MIB)
        f.write(pattern)
    out = tmp_path / "converted.raw"
    run("qemu-img", "convert", "-f", "raw", "-O", "raw", server.uri, out)
    converted = out.read_bytes()
    assert len(converted) == LUN_SIZE
    assert converted[80 * MIB : 81 * MIB] == pattern
    assert converted == tgtd.backing_path(tid, 1).read_bytes()


def test_qemu_io_unaligned_write_and_read(server: NbdCommand, target: tuple[Tgtd, int]) -> None:
    tgtd, tid = target
    run(
        "qemu-io", "-f", "raw", server.uri,
        "-c", "write -P 0x5a 1000 70000", "-c", "read -P 0x5a 1000 70000", "-c", "flush",
    )  # fmt: skip
    assert tgtd.backing_path(tid, 1).read_bytes()[1000:71000] == b"\x5a" * 70000


def test_read_only_export_refuses_writes(target: tuple[Tgtd, int], tmp_path: Path) -> None:
    tgtd, _ = target
    nbd = NbdServer(f"iscsi://{tgtd.portal}/{IQN}/1", tmp_path / "ro.sock", "--read-only")
    try:
        info = json.loads(run("nbdinfo", "--json", nbd.uri).stdout)
        assert info["exports"][0]["is_read_only"] is True
        failed = subprocess.run(
            ["qemu-io", "-f", "raw", nbd.uri, "-c", "write 0 512"],
            check=False, capture_output=True, text=True, timeout=TIMEOUT,
        )  # fmt: skip
        # qemu-io opens read-write and is refused; a client that tries anyway gets EPERM.
        assert failed.returncode != 0
        assert "permission denied" in (failed.stdout + failed.stderr).lower()
    finally:
        assert nbd.stop() == 0


def test_unreachable_target_fails_fast_with_iscsiadm_code(tmp_path: Path) -> None:
    from iscsikit.testing.tgtd import free_port

    proc = subprocess.run(
        [sys.executable, "-m", "iscsikit.nbd", f"iscsi://127.0.0.1:{free_port()}/{IQN}/1",
         "--socket", str(tmp_path / "x.sock")],
        check=False, capture_output=True, text=True, timeout=TIMEOUT,
    )  # fmt: skip
    assert proc.returncode == 4, proc.stderr
    assert not (tmp_path / "x.sock").exists()
