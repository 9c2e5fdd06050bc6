"""bnx2i and qedi: the next hop comes from iscsiuio (PATH_REQ / PATH_UPDATE), and
``-C ping`` goes through iscsiuio, not the kernel.

The simulated host sends PATH_REQ on EP_CONNECT and connects only when a PATH_UPDATE
with a unicast MAC answers (cnic's way); with no iscsiuio here, the driver answers from
the (simulated) neighbour table, and a target it has no MAC for is a login that times
out, as iscsid's does when nothing answers.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from iscsikit.errors import TransportTimeoutError
from iscsikit.netlink.constants import UEvent
from iscsikit.netlink.messages import PathUpdate
from iscsikit.plugin import ConnectSpec, Timeouts
from iscsikit.proto.address import Portal
from iscsikit.proto.login import LoginConfig
from iscsikit.testing.plugin import DISK_IQN
from iscsikit.testing.simhba import HbaServer, SimulatedHba
from iscsikit.testing.tgtd import Tgtd
from iscsikit_drivers.kerneltcp import NetlinkChannel
from iscsikit_drivers.offload import OffloadTransport
from iscsikit_drivers.offload.bnx2i import Bnx2iTransport
from iscsikit_drivers.offload.connector import iscsiuio_running
from iscsikit_drivers.offload.qedi import QediTransport

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(iscsiuio_running(), reason="iscsiuio runs here: it answers PATH_REQ"),
]


def _driver(
    cls: type[OffloadTransport], tmp_path: Path, **hba_args: object
) -> Iterator[tuple[OffloadTransport, SimulatedHba]]:
    hba = SimulatedHba(tmp_path / "root", cls.name, **hba_args)  # type: ignore[arg-type]
    with HbaServer(hba) as server:

        def channel(*, events: bool = False) -> NetlinkChannel:
            return NetlinkChannel(sock=server.socketpair())

        yield cls(channel_factory=channel, root=hba.root), hba


def _spec(tgtd: Tgtd, login_timeout: float = 15.0) -> ConnectSpec:
    login = LoginConfig(initiator_name="iqn.2024-01.test.iscsikit:uip",
                        isid=b"\x80\x00\x00\x00\x00\x09", target_name=DISK_IQN)  # fmt: skip
    return ConnectSpec(Portal(tgtd.host, tgtd.port), login, Timeouts(login=login_timeout))


@pytest.mark.parametrize("cls", [Bnx2iTransport, QediTransport], ids=lambda c: c.name)
def test_path_request_answered_from_the_neighbour_table(
    cls: type[OffloadTransport], tmp_path: Path, tgtd: Tgtd
) -> None:
    gen = _driver(cls, tmp_path)
    driver, hba = next(gen)
    try:
        session = driver.login(_spec(tgtd))
        try:
            kinds = [r.TYPE for r in hba.requests]
            connect = kinds.index(UEvent.TRANSPORT_EP_CONNECT_THROUGH_HOST)
            update = kinds.index(UEvent.PATH_UPDATE)
            assert connect < update < kinds.index(UEvent.CREATE_BOUND_SESSION)
            (answer,) = [r for r in hba.requests if isinstance(r, PathUpdate)]
            assert answer.host_no == hba.host_no
            assert answer.path.mac_addr == bytes.fromhex("525400000001")  # the sim's table
            assert answer.path.dst == bytes([127, 0, 0, 1])
            assert answer.path.src == bytes([192, 0, 2, 50])  # the host's address
        finally:
            session.logout()  # type: ignore[union-attr]
    finally:
        gen.close()


def test_nothing_answers_the_path_request(tmp_path: Path, tgtd: Tgtd) -> None:
    gen = _driver(Bnx2iTransport, tmp_path, neighbours={})
    driver, hba = next(gen)
    try:
        with pytest.raises(TransportTimeoutError) as timed_out:
            driver.login(_spec(tgtd, login_timeout=1.5))
        assert int(timed_out.value.code) == 8  # ISCSI_ERR_TRANS_TIMEOUT, "connection timed out"
        kinds = [r.TYPE for r in hba.requests]
        assert UEvent.PATH_UPDATE not in kinds
        assert UEvent.CREATE_BOUND_SESSION not in kinds
        assert kinds.count(UEvent.TRANSPORT_EP_POLL) > 3  # EP_POLL answered 0 meanwhile
        assert kinds[-1] == UEvent.TRANSPORT_EP_DISCONNECT
    finally:
        gen.close()


def test_other_drivers_connect_without_a_path_request(tmp_path: Path, tgtd: Tgtd) -> None:
    from iscsikit_drivers.offload.cxgb4i import Cxgb4iTransport

    gen = _driver(Cxgb4iTransport, tmp_path, neighbours={})
    driver, hba = next(gen)
    try:
        driver.login(_spec(tgtd)).logout()  # type: ignore[union-attr]
        assert UEvent.PATH_UPDATE not in [r.TYPE for r in hba.requests]
    finally:
        gen.close()


@pytest.mark.parametrize("name", ["bnx2i", "qedi"])
def test_ping_goes_to_iscsiuio(tmp_path: Path, name: str) -> None:
    """usr/iscsiadm.c ``exec_ping_op``: bnx2i/qedi ping with ``exec_ping``
    (uip_broadcast_ping_req), never the kernel's PING; iscsiuio not up:
    ``Ping 1 failed: <iscsi_err_to_str(ISCSID_NOTCONN)>``, exit 20.  Written from
    iscsiadm's source: no kernel bnx2i answers the real iscsiadm here."""
    mac = "00:10:18:aa:bb:cc"
    hba = SimulatedHba(tmp_path / "root", name, hwaddress=mac)
    with HbaServer(hba) as server:
        env = {**os.environ, "ISCSIKIT_ROOT": str(hba.root),
               "ISCSIKIT_OFFLOAD_NETLINK": str(server.listen(tmp_path / "nl.sock"))}  # fmt: skip

        def adm(*args: str) -> subprocess.CompletedProcess[str]:
            return subprocess.run(
                [sys.executable, "-m", "iscsikit", *args], env=env, capture_output=True,
                text=True, timeout=120, check=False,
            )  # fmt: skip

        assert adm("-m", "iface").returncode == 0
        ping = adm("-m", "iface", "-I", f"{name}.{mac}", "-C", "ping", "-a", "192.0.2.1",
                   "-c", "2")  # fmt: skip
        failed = "failed: could not connect to iscsid"  # iscsi_err_to_str(20)
        assert (ping.returncode, ping.stdout) == (20, f"Ping 1 {failed}\nPing 2 {failed}\n")
        assert UEvent.PING not in [r.TYPE for r in hba.requests]
