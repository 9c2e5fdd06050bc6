"""iface binding against a real tgtd: a target whose ACL admits only 127.0.0.2 proves
which source address a login used.  usertcp binds to the iface's ``net_ifacename`` and
``ipaddress`` (through the API's transport and through iscsikit-adm + iscsikitd);
iscsi_tcp's connector binds the netdev as iscsid does; a netdev that does not exist fails
the login with iscsid's words and exit code 4."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from typing import cast

import pytest

from iscsikit.errors import IscsiErr, LoginError, TransportError
from iscsikit.manager.node_login import node_settings
from iscsikit.net import deadline_after
from iscsikit.proto.address import parse_portal
from iscsikit.proto.login import TargetRedirected
from iscsikit.records.model import IfaceRecord, NodeRecord
from iscsikit.testing.daemon import RunningDaemon
from iscsikit.testing.tgtd import Tgtd
from iscsikit_drivers.kerneltcp.endpoint import TcpConnector
from iscsikit_drivers.kerneltcp.netlink import NetlinkChannel
from iscsikit_drivers.usertcp import UserTcpTransport

pytestmark = pytest.mark.integration

IQN = "iqn.2024-01.test.binding:disk"


@pytest.fixture(scope="module")
def target(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Tgtd]:
    with Tgtd(tmp_path_factory.mktemp("binding")) as tgtd:
        tgtd.add_target(IQN, tid=1, lun_size=4 << 20, acl=("127.0.0.2",))
        yield tgtd


def _node(target: Tgtd, **keys: str) -> NodeRecord:
    iface = IfaceRecord.new("lo2")
    for key, value in keys.items():
        iface.set(f"iface.{key}", value)
    node = NodeRecord.new(IQN, target.host, target.port, 1, iface=iface)
    node.set("node.conn[0].timeo.login_timeout", "5")
    return node


def test_usertcp_logs_in_from_the_ifaces_address(target: Tgtd) -> None:
    spec = node_settings(_node(target, net_ifacename="lo", ipaddress="127.0.0.2")).spec()
    session = UserTcpTransport().login(spec)
    assert not isinstance(session, TargetRedirected)
    try:
        (conn,) = target.sessions(1)
        assert conn.address == "127.0.0.2"
    finally:
        session.logout()


def test_without_the_binding_the_acl_refuses_the_login(target: Tgtd) -> None:
    spec = node_settings(_node(target)).spec()
    # tgtd answers an initiator its ACL does not admit "target not found" (0x0203).
    with pytest.raises(LoginError, match=r"\(0x0203\)"):
        UserTcpTransport().login(spec)


def test_a_missing_netdev_fails_with_iscsids_words(target: Tgtd) -> None:
    spec = node_settings(_node(target, net_ifacename="nosuchdev0")).spec()
    with pytest.raises(TransportError, match="Could not bind connection 0 to nosuchdev0") as c:
        UserTcpTransport().login(spec)
    assert c.value.code is IscsiErr.TRANS
    assert target.sessions(1) == []


def test_iscsi_tcp_connector_binds_the_netdev(target: Tgtd) -> None:
    portal = parse_portal(target.portal)
    channel = cast(NetlinkChannel, None)  # a TCP connector makes its socket alone
    connector = TcpConnector().bound({"iface.net_ifacename": "lo"})
    endpoint = connector.connect(channel, 0, portal, deadline_after(5))
    try:
        assert endpoint.sock is not None
        device = endpoint.sock.getsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, 16)
        assert device.rstrip(b"\0") == b"lo"
    finally:
        endpoint.close(clean=False)
    bad = TcpConnector().bound({"iface.net_ifacename": "nosuchdev0"})
    with pytest.raises(TransportError, match="Could not bind connection 0 to nosuchdev0"):
        bad.connect(channel, 0, portal, deadline_after(5))
    address_only = TcpConnector().bound({"iface.ipaddress": "127.0.0.2"})
    with pytest.raises(TransportError, match="not supported with software iSCSI"):
        address_only.connect(channel, 0, portal, deadline_after(5))


@pytest.fixture
def daemon() -> Iterator[RunningDaemon]:
    with RunningDaemon() as d:
        yield d


def _adm(d: RunningDaemon, *argv: str) -> str:
    done = d.adm(*argv)
    assert done.returncode == 0, f"{argv}: exit {done.returncode}: {done.stdout}{done.stderr}"
    return str(done.stdout)


def _iface(d: RunningDaemon, name: str, **keys: str) -> None:
    _adm(d, "-m", "iface", "-I", name, "-o", "new")
    for key, value in keys.items():
        _adm(d, "-m", "iface", "-I", name, "-o", "update", "-n", f"iface.{key}", "-v", value)


def test_adm_logs_in_through_the_bound_iface(daemon: RunningDaemon, target: Tgtd) -> None:
    _iface(daemon, "lo2", net_ifacename="lo", ipaddress="127.0.0.2")
    node = ("-m", "node", "-T", IQN, "-p", target.portal, "-I", "lo2")
    _adm(daemon, "-m", "node", "-o", "new", "-T", IQN, "-p", target.portal, "-I", "lo2")
    out = _adm(daemon, *node, "-l")
    assert out.endswith("successful.\n"), out
    try:
        (conn,) = target.sessions(1)
        assert conn.address == "127.0.0.2"
    finally:
        _adm(daemon, *node, "-u")


def test_adm_with_a_missing_netdev_fails_with_exit_4(daemon: RunningDaemon, target: Tgtd) -> None:
    _iface(daemon, "nodev", net_ifacename="nosuchdev0")
    portal = target.portal
    node = ("-m", "node", "-T", IQN, "-p", portal, "-I", "nodev")
    _adm(daemon, "-m", "node", "-o", "new", "-T", IQN, "-p", portal, "-I", "nodev")
    _adm(daemon, *node, "-o", "update", "-n", "node.session.initial_login_retry_max", "-v", "1")
    done = daemon.adm(*node, "-l")
    assert done.returncode == 4, f"{done.stdout}{done.stderr}"
    assert "Could not login to [iface: nodev" in str(done.stderr)
    assert target.sessions(1) == []
