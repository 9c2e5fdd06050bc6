"""The offload driver logs in and adopts through kerneltcp's own ``KernelSession.login``
/ ``adopt`` on its channels: every channel it opens belongs to a session or is closed,
and the adopted session's requests and GET_STATS go through the driver's factory."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from iscsikit.errors import IscsiError
from iscsikit.netlink.events import EndpointConnected, SessionCreated
from iscsikit.netlink.messages import (
    BindConn,
    CreateBoundSession,
    CreateConn,
    EpConnectThroughHost,
    GetStats,
)
from iscsikit.plugin import ConnectSpec
from iscsikit.plugin.transport import Timeouts
from iscsikit.proto.address import Portal
from iscsikit.proto.login import LoginConfig
from iscsikit.testing.simhba import HbaServer, SimulatedHba
from iscsikit_drivers.kerneltcp import NetlinkChannel
from iscsikit_drivers.offload.qla4xxx import Qla4xxxTransport
from iscsikit_drivers.offload.session import HbaKernelSession


class Factory:
    """A channel factory on the simulator that keeps every channel it made."""

    def __init__(self, server: HbaServer) -> None:
        self.server = server
        self.made: list[NetlinkChannel] = []

    def __call__(self, *, events: bool = False) -> NetlinkChannel:
        channel = NetlinkChannel(sock=self.server.socketpair())
        self.made.append(channel)
        return channel


@pytest.fixture
def sim(tmp_path: Path) -> Iterator[tuple[SimulatedHba, Factory]]:
    hba = SimulatedHba(tmp_path, "qla4xxx")
    with HbaServer(hba) as server:
        yield hba, Factory(server)


def _spec(port: int) -> ConnectSpec:
    login = LoginConfig(initiator_name="iqn.2026-12.test:i", isid=b"\x80\x01\x02\x03\x04\x05",
                        target_name="iqn.2026-12.test:t")  # fmt: skip
    return ConnectSpec(Portal("127.0.0.1", port), login, timeouts=Timeouts(login=2.0))


def test_a_refused_connection_leaves_no_open_channel(
    sim: tuple[SimulatedHba, Factory],
) -> None:
    hba, factory = sim
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]  # nothing listens there
    driver = Qla4xxxTransport(channel_factory=factory, root=hba.root)
    with pytest.raises(IscsiError):
        driver.login(_spec(port))
    requests = [c for c in factory.made if c.sock.fileno() != -1]
    # Only the event reader's channel stays open; the login's own channel is closed.
    assert len(requests) == 1, requests


def test_adopt_uses_the_drivers_channels(sim: tuple[SimulatedHba, Factory]) -> None:
    hba, factory = sim
    with socket.create_server(("127.0.0.1", 0)) as listener:
        address = ("127.0.0.1", listener.getsockname()[1])
        (ep,) = hba.handle(EpConnectThroughHost(transport_handle=0, host_no=7, address=address))
        assert isinstance(ep, EndpointConnected)
        (made,) = hba.handle(CreateBoundSession(
            transport_handle=0, ep_handle=ep.handle, initial_cmdsn=1, cmds_max=128,
            queue_depth=32,
        ))  # fmt: skip
        assert isinstance(made, SessionCreated)
        hba.handle(CreateConn(transport_handle=0, sid=made.sid, cid=0))
        hba.handle(BindConn(transport_handle=0, sid=made.sid, cid=0, transport_eph=ep.handle))
        driver = Qla4xxxTransport(channel_factory=factory, root=hba.root)
        adopted = driver.adopt(made.sid, _spec(address[1]))
        kernel = adopted.kernel
        assert isinstance(kernel, HbaKernelSession) and kernel.channel in factory.made
        before = len(hba.requests)
        counters = adopted.statistics()  # GET_STATS on a new channel of the factory
        assert [type(r) for r in hba.requests[before:]] == [GetStats]
        assert counters["login_pdus"] == 0
        adopted.release()
    hba.close()
