"""NBD trim follows the LUN: advertised only when the LUN supports UNMAP (issue 9, C).

Two tgtd LUNs: a plain file LUN, which reports no logical block provisioning (LBPU clear in
VPD page B2h), and one with ``--params thin_provisioning=1``, for which tgt 1.0.85 sets
LBPU (and LBPWS, LBPRZ) in page B2h, reports UNMAP limits in Block Limits (B0h) and punches
holes in the backing file on UNMAP.  ``iscsikit-nbd`` serves each; ``nbdinfo --json`` shows
``can_trim``, and ``qemu-io -d unmap -c discard`` sends NBD_CMD_TRIM when it may.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

import iscsikit
from iscsikit.testing.nbd import NbdCommand
from iscsikit.testing.tgtd import Tgtd

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(
        not (shutil.which("nbdinfo") and shutil.which("qemu-io")),
        reason="nbdinfo (libnbd-bin) and qemu-io (qemu-utils) are needed",
    ),
]

MIB = 1 << 20
LUN_SIZE = 16 * MIB
THICK, THIN = 1, 2
IQNS = {THICK: "iqn.2024-01.test.trim:thick", THIN: "iqn.2024-01.test.trim:thin"}
TIMEOUT = 120


@pytest.fixture(scope="module")
def target(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Tgtd]:
    with Tgtd(tmp_path_factory.mktemp("trim-tgtd")) as tgtd:
        for tid, iqn in IQNS.items():
            tgtd.add_target(iqn, tid=tid, lun_size=LUN_SIZE)
        tgtd.tgtadm(
            "--op", "update", "--mode", "logicalunit", "--tid", str(THIN), "--lun", "1",
            "--params", "thin_provisioning=1",
        )  # fmt: skip
        yield tgtd


def _url(tgtd: Tgtd, tid: int) -> str:
    return f"iscsi://{tgtd.portal}/{IQNS[tid]}/1"


def _run(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, timeout=TIMEOUT, check=True)


@pytest.fixture
def serve(target: Tgtd, tmp_path: Path) -> Iterator[dict[int, NbdCommand]]:
    servers: dict[int, NbdCommand] = {}
    try:
        for tid in IQNS:
            servers[tid] = NbdCommand(_url(target, tid), tmp_path / f"{tid}.sock", timeout=TIMEOUT)
        yield servers
    finally:
        for server in servers.values():
            assert server.stop() == 0, "".join(server.lines)


def _allocated(path: Path, start: int, end: int) -> bool:
    """Whether any byte of ``[start, end)`` of ``path`` is backed by data (SEEK_DATA)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        return os.lseek(fd, start, os.SEEK_DATA) < end
    except OSError:  # ENXIO: no data after start
        return False
    finally:
        os.close(fd)


def test_the_lun_api_sees_unmap_support_only_on_the_thin_lun(target: Tgtd) -> None:
    with (
        iscsikit.open_lun(_url(target, THICK)) as thick,
        iscsikit.open_lun(_url(target, THIN)) as thin,
    ):
        assert not thick.can_unmap
        assert thin.can_unmap
        # tgt's Block Limits page is read too (it used to be refused at probe time).
        assert thick.geometry.block_limits is not None
        assert thin.geometry.block_limits is not None
        assert thin.geometry.block_limits.max_unmap_lba_count > 0


@pytest.mark.parametrize(("tid", "can_trim"), [(THICK, False), (THIN, True)])
def test_nbdinfo_shows_can_trim_as_the_lun_supports_unmap(
    serve: dict[int, NbdCommand], tid: int, can_trim: bool
) -> None:
    info = json.loads(_run("nbdinfo", "--json", serve[tid].uri).stdout)
    [export] = info["exports"]
    assert export["can_trim"] is can_trim
    assert export["can_zero"] is True
    assert export["export-size"] == LUN_SIZE


def test_trim_through_nbd_deallocates_on_the_thin_lun(
    serve: dict[int, NbdCommand], target: Tgtd
) -> None:
    backing = target.backing_path(THIN, 1)
    start = 4 * MIB
    _run("qemu-io", "-f", "raw", serve[THIN].uri, "-c", f"write -P 0x6b {start} {2 * MIB}",
         "-c", "flush")  # fmt: skip
    assert _allocated(backing, start, start + 2 * MIB)
    # Unaligned edges: only the whole blocks inside are unmapped (trim is a hint).
    _run("qemu-io", "-f", "raw", "-d", "unmap", serve[THIN].uri,
         "-c", f"discard {start} {MIB + 100}", "-c", "flush")  # fmt: skip
    with backing.open("rb") as f:
        f.seek(start)
        image = f.read(2 * MIB)
    assert image[:MIB] == bytes(MIB)  # LBPRZ: unmapped blocks read as zeros
    assert image[MIB : MIB + 512] == b"\x6b" * 512  # the partial block is kept
    assert image[MIB + 512 :] == b"\x6b" * (MIB - 512)
    assert not _allocated(backing, start, start + MIB)


def test_discard_on_the_thick_lun_leaves_the_data(
    serve: dict[int, NbdCommand], target: Tgtd
) -> None:
    backing = target.backing_path(THICK, 1)
    start = 4 * MIB
    _run("qemu-io", "-f", "raw", serve[THICK].uri, "-c", f"write -P 0x3c {start} {MIB}",
         "-c", "flush")  # fmt: skip
    # No NBD_FLAG_SEND_TRIM: qemu does not send NBD_CMD_TRIM (a discard is a hint).
    subprocess.run(
        ["qemu-io", "-f", "raw", "-d", "unmap", serve[THICK].uri, "-c", f"discard {start} {MIB}"],
        capture_output=True, text=True, timeout=TIMEOUT, check=False,
    )  # fmt: skip
    with backing.open("rb") as f:
        f.seek(start)
        assert f.read(MIB) == b"\x3c" * MIB
    assert _allocated(backing, start, start + MIB)
    assert all("TRIM" not in line for line in serve[THICK].lines), serve[THICK].lines
