"""Connection statistics against a real tgtd: the counters ``iscsiadm -m session -s``
prints are what actually crossed the connection.

Each test writes N blocks and reads M blocks through a :class:`~iscsikit.lun.lun.Lun`
or :class:`~iscsikit.lun.aio.AsyncLun` and checks the change in the counters exactly:
``txdata_octets`` / ``rxdata_octets`` are the SCSI data bytes moved, every command sent
got one status back (tgtd puts a read's status in its last Data-In, which counts as a
response as in Linux's libiscsi), and the write needed R2T and Data-Out (it is larger
than tgtd's FirstBurstLength).  The read comes back byte-exact.  Over a plain session
the driver's channel is read; over a managed session (what ``open_lun`` logs in, and
what the daemon owns) the session's totals; and through the daemon, what
``iscsikit-adm -m session -s`` prints around I/O on the session's NBD export.
"""

from __future__ import annotations

import asyncio
import os
import re
from collections.abc import Iterator, Mapping

import pytest

import iscsikit
from iscsikit.lun.aio import AsyncLun, open_lun_async
from iscsikit.lun.lun import Lun
from iscsikit.manager.sessions import STATS_KEYS
from iscsikit.testing.daemon import RunningDaemon
from iscsikit.testing.nbdclient import NbdClient
from iscsikit.testing.tgtd import Tgtd

pytestmark = pytest.mark.integration

IQN = "iqn.2024-01.test.stats:disk"
LUN_SIZE = 16 << 20
#: 150 KiB: over tgtd's FirstBurstLength (64 KiB) and MaxRecvDataSegmentLength (8 KiB).
WRITE_BLOCKS = 300
#: 260 KiB: more than the machine's receive scratch buffer (payloads go straight in).
READ_BLOCKS = 520
#: Read back the written blocks and some either side of them.
READ_OFFSET = 1 << 20


@pytest.fixture(scope="module")
def tgtd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Tgtd]:
    with Tgtd(tmp_path_factory.mktemp("stats")) as tgtd:
        tgtd.add_target(IQN, tid=1, lun_size=LUN_SIZE)
        yield tgtd


def _url(tgtd: Tgtd) -> str:
    return f"iscsi://{tgtd.portal}/{IQN}/1"


def _delta(before: Mapping[str, int], after: Mapping[str, int]) -> dict[str, int]:
    assert set(after) == set(STATS_KEYS), sorted(after)
    return {k: after[k] - before.get(k, 0) for k in STATS_KEYS}


def _commands(nbytes: int, max_transfer: int) -> int:
    return -(-nbytes // max_transfer)


class Workload:
    """N blocks written, M read back over them, and the counters around each step."""

    def __init__(self, block_size: int, max_transfer: int) -> None:
        self.block_size = block_size
        self.max_transfer = max_transfer
        self.data = os.urandom(WRITE_BLOCKS * block_size)
        self.write_offset = READ_OFFSET + 8 * block_size
        self.read_length = READ_BLOCKS * block_size

    def check_write(self, before: Mapping[str, int], after: Mapping[str, int]) -> None:
        d = _delta(before, after)
        commands = _commands(len(self.data), self.max_transfer)
        assert d["txdata_octets"] == len(self.data), d
        assert d["rxdata_octets"] == 0, d
        assert d["scsicmd_pdus"] == commands, d
        assert d["scsirsp_pdus"] == commands, d
        assert d["datain_pdus"] == 0, d
        # Beyond FirstBurstLength the target asks for the rest: R2T, then Data-Out.
        assert d["r2t_pdus"] >= 1 and d["dataout_pdus"] >= d["r2t_pdus"], d
        assert d["digest_err"] == d["timeout_err"] == d["rjt_pdus"] == 0, d

    def check_read(self, before: Mapping[str, int], after: Mapping[str, int], got: bytes) -> None:
        d = _delta(before, after)
        commands = _commands(self.read_length, self.max_transfer)
        assert d["rxdata_octets"] == self.read_length, d
        assert d["txdata_octets"] == 0, d
        assert d["scsicmd_pdus"] == commands, d
        assert d["scsirsp_pdus"] == commands, d
        assert d["datain_pdus"] >= commands, d
        assert d["r2t_pdus"] == d["dataout_pdus"] == 0, d
        at = self.write_offset - READ_OFFSET
        assert got[at : at + len(self.data)] == self.data


def test_blocking_lun_over_a_plain_session(tgtd: Tgtd) -> None:
    session = iscsikit.login(tgtd.portal, IQN)
    try:
        lun = Lun.attach(session, 1)
        channel = lun.channel
        work = Workload(lun.block_size, lun.geometry.max_transfer)
        opened = channel.statistics()
        assert opened["scsicmd_pdus"] == opened["scsirsp_pdus"] > 0  # the LUN's probe
        lun.write(work.write_offset, work.data)
        written = channel.statistics()
        work.check_write(opened, written)
        got = lun.read(READ_OFFSET, work.read_length)
        work.check_read(written, channel.statistics(), got)
    finally:
        session.logout()
    final = channel.statistics()  # the counters outlive the connection
    assert final["logout_pdus"] == final["logoutrsp_pdus"] == 1
    assert final["scsicmd_pdus"] == final["scsirsp_pdus"]


def test_async_lun_over_a_plain_session(tgtd: Tgtd) -> None:
    session = iscsikit.login(tgtd.portal, IQN)

    async def run() -> Mapping[str, int]:
        lun = await AsyncLun.attach(session, 1)
        channel = lun.channel
        try:
            work = Workload(lun.block_size, lun.geometry.max_transfer)
            opened = channel.statistics()
            await lun.write(work.write_offset, work.data)
            written = channel.statistics()
            work.check_write(opened, written)
            got = await lun.read(READ_OFFSET, work.read_length)
            work.check_read(written, channel.statistics(), got)
        finally:
            await channel.logout()
        return channel.statistics()

    try:
        final = asyncio.run(run())
    finally:
        session.transport_session.close()
    assert final["logout_pdus"] == final["logoutrsp_pdus"] == 1
    assert final["scsicmd_pdus"] == final["scsirsp_pdus"] > 0


def test_blocking_lun_of_a_managed_session(tgtd: Tgtd) -> None:
    with iscsikit.open_lun(_url(tgtd)) as lun:
        assert lun.session is not None
        work = Workload(lun.block_size, lun.geometry.max_transfer)
        opened = lun.session.statistics()  # type: ignore[union-attr]
        lun.write(work.write_offset, work.data)
        written = lun.session.statistics()  # type: ignore[union-attr]
        work.check_write(opened, written)
        got = lun.read(READ_OFFSET, work.read_length)
        work.check_read(written, lun.session.statistics(), got)  # type: ignore[union-attr]


def test_async_lun_of_a_managed_session(tgtd: Tgtd) -> None:
    async def run() -> None:
        async with open_lun_async(_url(tgtd)) as lun:
            session = lun.session
            assert session is not None
            work = Workload(lun.block_size, lun.geometry.max_transfer)
            opened = session.statistics()  # type: ignore[union-attr]
            await asyncio.gather(  # the blocks in two halves, concurrently
                lun.write(work.write_offset, work.data[: len(work.data) // 2]),
                lun.write(
                    work.write_offset + len(work.data) // 2, work.data[len(work.data) // 2 :]
                ),
            )
            written = session.statistics()  # type: ignore[union-attr]
            d = _delta(opened, written)
            assert d["txdata_octets"] == len(work.data), d
            assert d["scsicmd_pdus"] == d["scsirsp_pdus"] == 2, d
            got = await lun.read(READ_OFFSET, work.read_length)
            work.check_read(written, session.statistics(), got)  # type: ignore[union-attr]

    asyncio.run(run())


def _adm_stats(daemon: RunningDaemon) -> dict[str, int]:
    result = daemon.adm("-m", "session", "-r", "1", "-s")
    assert result.returncode == 0, f"{result.stdout}{result.stderr}"
    lines = re.findall(r"^\t(\w+): (\d+)$", str(result.stdout), re.MULTILINE)
    assert [k for k, _ in lines] == list(STATS_KEYS), result.stdout
    return {k: int(v) for k, v in lines}


def test_iscsiadm_session_stats_through_the_daemon(tgtd: Tgtd) -> None:
    with RunningDaemon() as daemon:
        for args in (
            ("-m", "discovery", "-t", "st", "-p", tgtd.portal),
            ("-m", "node", "-T", IQN, "-p", tgtd.portal, "-l"),
        ):
            result = daemon.adm(*args)
            assert result.returncode == 0, f"{result.stdout}{result.stderr}"
        try:
            probed = _adm_stats(daemon)
            # The daemon probed the LUN for its NBD export: every command was answered.
            assert probed["scsicmd_pdus"] == probed["scsirsp_pdus"] > 0, probed
            assert probed["rxdata_octets"] > 0 and probed["datain_pdus"] > 0, probed
            sock = daemon.run_dir / "nbd" / f"ip-{tgtd.host}:{tgtd.port}-iscsi-{IQN}-lun-1"
            data = os.urandom(WRITE_BLOCKS * 512)
            with NbdClient(str(sock)) as nbd:
                nbd.write(READ_OFFSET, data)
                written = _adm_stats(daemon)
                assert nbd.read(READ_OFFSET, READ_BLOCKS * 512)[: len(data)] == data
            read = _adm_stats(daemon)
        finally:
            daemon.adm("-m", "node", "-T", IQN, "-p", tgtd.portal, "-u")
    d = _delta(probed, written)
    assert d["txdata_octets"] == len(data) and d["rxdata_octets"] == 0, d
    assert d["scsicmd_pdus"] == d["scsirsp_pdus"] == 1, d
    assert d["r2t_pdus"] >= 1 and d["dataout_pdus"] >= 1, d
    d = _delta(written, read)
    assert d["rxdata_octets"] == READ_BLOCKS * 512 and d["txdata_octets"] == 0, d
    assert d["scsicmd_pdus"] == d["scsirsp_pdus"] == 1, d
