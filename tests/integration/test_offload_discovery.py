"""SendTargets through a simulated offload host (CAP_TEXT_NEGO): a kernel discovery
session made through the host, the Text exchange by SEND_PDU / RECV_PDU, torn down
after (usr/discovery.c's way), against tgtd."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from iscsikit.netlink.constants import UEvent
from iscsikit.plugin import Capability, ConnectSpec
from iscsikit.proto.address import Portal
from iscsikit.proto.login import LoginConfig
from iscsikit.sysfs import SysfsContext
from iscsikit.testing.plugin import DISK_IQN
from iscsikit.testing.simhba import HbaServer, SimulatedHba
from iscsikit.testing.tgtd import Tgtd
from iscsikit_drivers.kerneltcp import NetlinkChannel
from iscsikit_drivers.offload import OffloadTransport
from iscsikit_drivers.offload.bnx2i import Bnx2iTransport
from iscsikit_drivers.offload.qla4xxx import Qla4xxxTransport

pytestmark = pytest.mark.integration


@pytest.fixture(params=[Qla4xxxTransport, Bnx2iTransport], ids=lambda c: c.name)
def driver(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[OffloadTransport]:
    cls: type[OffloadTransport] = request.param
    hba = SimulatedHba(tmp_path / "root", cls.name)
    with HbaServer(hba) as server:

        def channel(*, events: bool = False) -> NetlinkChannel:
            return NetlinkChannel(sock=server.socketpair())

        transport = cls(channel_factory=channel, root=hba.root)
        transport.hba = hba  # type: ignore[attr-defined]
        yield transport


def _spec(tgtd: Tgtd) -> ConnectSpec:
    login = LoginConfig(initiator_name="iqn.2024-01.test.iscsikit:offload-st",
                        isid=b"\x80\x00\x00\x00\x00\x07", target_name=None)  # fmt: skip
    return ConnectSpec(Portal(tgtd.host, tgtd.port), login)


def test_sendtargets_through_the_host(driver: OffloadTransport, tgtd: Tgtd) -> None:
    hba: SimulatedHba = driver.hba  # type: ignore[attr-defined]
    assert Capability.SENDTARGETS in driver.capabilities
    found = driver.discover_sendtargets(_spec(tgtd))
    assert isinstance(found, list)
    assert [t.name for t in found] == [DISK_IQN]
    assert [(t.host, t.port) for t in found] == [(tgtd.host, tgtd.port)]
    kinds = [r.TYPE for r in hba.requests]
    # The discovery session is the kernel's, on an endpoint made through the host ...
    assert UEvent.TRANSPORT_EP_CONNECT_THROUGH_HOST in kinds
    first = kinds.index(UEvent.CREATE_BOUND_SESSION)
    start = kinds.index(UEvent.START_CONN)
    assert first < start
    # ... the Text exchange went through it after START_CONN, and it is gone again.
    assert UEvent.SEND_PDU in kinds[start:]
    assert kinds[-1] == UEvent.DESTROY_SESSION
    assert SysfsContext(hba.root).sessions() == []


def test_unknown_query_answers_nothing(driver: OffloadTransport, tgtd: Tgtd) -> None:
    found = driver.discover_sendtargets(_spec(tgtd), query="iqn.2024-01.test.iscsikit:nope")
    assert found == []
