"""The driver kit (iscsikit.testing.kit) for each offload plugin, on a simulated host.

Each driver logs in *through* a simulated host of its kind (iscsikit.testing.simhba: the
endpoint is a real TCP connection the simulator makes, the login PDUs go through
SEND_PDU / RECV_PDU) to the kit's private tgtd.  What a simulated host cannot show is
listed in docs/offload.md: no block device appears (no SCSI commands are carried).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from iscsikit.plugin import Capability, Transport, manager
from iscsikit.testing.kit import TransportConformance
from iscsikit.testing.simhba import HbaServer, SimulatedHba
from iscsikit_drivers.kerneltcp import NetlinkChannel
from iscsikit_drivers.offload import OffloadTransport

_OFFLOAD = frozenset(
    {
        Capability.SENDTARGETS,  # CAP_TEXT_NEGO: a kernel discovery session via the host
        Capability.LOGIN,
        Capability.BLOCK_DEVICE,
        Capability.HEADER_DIGEST,
        Capability.DATA_DIGEST,
        Capability.IPV6,
    }
)


class _OffloadKit(TransportConformance):
    SIMULATED = True
    CAPABILITIES = _OFFLOAD

    @pytest.fixture
    def transport(self, transport_name: str, tmp_path: Path) -> Iterator[Transport]:
        hba = SimulatedHba(tmp_path / "root", transport_name)
        with HbaServer(hba) as server:

            def channel(*, events: bool = False) -> NetlinkChannel:
                return NetlinkChannel(sock=server.socketpair())

            cls = manager.build()[1].get(transport_name)
            assert issubclass(cls, OffloadTransport)
            yield cls(channel_factory=channel, root=hba.root)


class TestQla4xxxKit(_OffloadKit):
    TRANSPORT = "qla4xxx"


class TestCxgb3iKit(_OffloadKit):
    TRANSPORT = "cxgb3i"
    CAPABILITIES = _OFFLOAD - {Capability.IPV6}


class TestCxgb4iKit(_OffloadKit):
    TRANSPORT = "cxgb4i"


class TestBnx2iKit(_OffloadKit):
    TRANSPORT = "bnx2i"


class TestBe2iscsiKit(_OffloadKit):
    TRANSPORT = "be2iscsi"


class TestQediKit(_OffloadKit):
    TRANSPORT = "qedi"
