"""iSNS discovery against a real open-isns isnsd on loopback (iscsikit.discovery.isns).

tgtd registers its targets through iSNS (IPv4-mapped portal addresses), isnsadm
registers others (IPv4-compatible addresses); discovery domains hide what they should;
a server that does not know the source gets the register / re-query / deregister
sequence (open-isns itself never answers a query SOURCE_UNKNOWN, so a proxy in front of
the real isnsd answers the first query so and passes everything else through); hostile
servers (truncated, oversized, wrong function id, bad length, closing, silent) end in a
typed error, exit 25, within a bounded time, from the runner and from the CLI.
"""

from __future__ import annotations

import os
import socket
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from iscsikit.discovery.isns import IsnsQueryError, isns_query
from iscsikit.errors import IscsiErr
from iscsikit.proto.address import Portal
from iscsikit.proto.isns import IsnsClient, Tag
from iscsikit.proto.sendtargets import DiscoveredTarget
from iscsikit.testing.isnsd import Isnsd, enable_isns, isns_missing
from iscsikit.testing.tgtd import Tgtd, tgt_missing

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(bool(isns_missing()), reason=f"open-isns missing: {isns_missing()}"),
]

IQN = "iqn.2024-01.test.iscsikit"
INI = "iqn.2004-10.com.example:isns-ini"
OTHER = "iqn.2004-10.com.example:isns-other"
MAPPED = bytes(10) + b"\xff\xff"
HDR = struct.Struct(">HHHHHH")


def server_portal(srv: Isnsd) -> Portal:
    return Portal(srv.host, srv.port)


def wait_for(fn: Callable[[], list[DiscoveredTarget]], count: int) -> list[DiscoveredTarget]:
    deadline = time.monotonic() + 10
    found = fn()
    while len(found) < count and time.monotonic() < deadline:
        time.sleep(0.1)
        found = fn()
    return found


@pytest.fixture
def isnsd(tmp_path: Path) -> Iterator[Isnsd]:
    with Isnsd(tmp_path / "isns") as srv:
        yield srv


@pytest.fixture
def isnsd_no_default_dd(tmp_path: Path) -> Iterator[Isnsd]:
    with Isnsd(tmp_path / "isns-dd", default_dd=False) as srv:
        yield srv


def raw_query(srv: Isnsd, source: str) -> list[tuple[int, bytes]]:
    """The operating attributes of a DevAttrQry, as (tag, value) (wire-level check)."""
    client = IsnsClient(source)
    with socket.create_connection((srv.host, srv.port), timeout=5) as sock:
        sock.sendall(client.query_request())
        response = None
        while response is None:
            response = client.receive_data(sock.recv(65536))
    return [(a.tag, a.value) for a in response.operating]


@pytest.mark.skipif(bool(tgt_missing()), reason="tgt not installed")
def test_tgtd_registered_and_isnsadm_targets_found_exactly(isnsd: Isnsd, tmp_path: Path) -> None:
    with Tgtd(tmp_path / "tgt") as tgtd:
        enable_isns(tgtd, isnsd)
        tgtd.add_target(f"{IQN}:reg1")
        tgtd.add_target(f"{IQN}:reg2")
        isnsd.register_target(f"{IQN}:adm", "127.0.0.1", 3299, tag=5)
        found = wait_for(lambda: isns_query(server_portal(isnsd), INI, timeout=5), 3)
        assert sorted(found, key=lambda t: t.name) == [
            DiscoveredTarget(f"{IQN}:adm", "127.0.0.1", 3299, 5),
            DiscoveredTarget(f"{IQN}:reg1", "127.0.0.1", tgtd.port, 1),
            DiscoveredTarget(f"{IQN}:reg2", "127.0.0.1", tgtd.port, 1),
        ]
        # Both address forms really were on the wire: tgtd's mapped, isnsadm's compatible.
        pg_ips = {v for t, v in raw_query(isnsd, INI) if t == Tag.PG_PORTAL_IP_ADDR}
        assert pg_ips == {MAPPED + bytes([127, 0, 0, 1]), bytes(12) + bytes([127, 0, 0, 1])}
        # One target by name.
        assert isns_query(server_portal(isnsd), INI, target=f"{IQN}:reg2", timeout=5) == [
            DiscoveredTarget(f"{IQN}:reg2", "127.0.0.1", tgtd.port, 1)
        ]
        # A deregistered target is gone.
        isnsd.deregister(f"{IQN}:adm")
        names = {t.name for t in isns_query(server_portal(isnsd), INI, timeout=5)}
        assert names == {f"{IQN}:reg1", f"{IQN}:reg2"}


def test_discovery_domains_hide_targets(isnsd_no_default_dd: Isnsd) -> None:
    srv = isnsd_no_default_dd
    srv.register_target(f"{IQN}:visible", "127.0.0.1", 3301, tag=2)
    srv.register_target(f"{IQN}:hidden", "127.0.0.1", 3302, tag=3)
    # No default DD: a source in no domain sees nothing.
    assert isns_query(server_portal(srv), INI, timeout=5) == []
    srv.add_dd("dd-iscsikit", f"{IQN}:visible", INI)
    assert isns_query(server_portal(srv), INI, timeout=5) == [
        DiscoveredTarget(f"{IQN}:visible", "127.0.0.1", 3301, 2)
    ]
    assert isns_query(server_portal(srv), OTHER, timeout=5) == []


class _Proxy:
    """Answers the first DevAttrQry SOURCE_UNKNOWN, passes the rest to the real isnsd
    and records (function id, status) of every response the client received."""

    def __init__(self, upstream: Isnsd) -> None:
        self.upstream = upstream
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.seen: list[tuple[int, int]] = []
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    @staticmethod
    def _read_pdu(sock: socket.socket) -> bytes:
        data = b""
        while len(data) < 12:
            chunk = sock.recv(12 - len(data))
            if not chunk:
                return b""
            data += chunk
        length = HDR.unpack(data)[2]
        while len(data) < 12 + length:
            data += sock.recv(12 + length - len(data))
        return data

    def _serve(self) -> None:
        client, _ = self.listener.accept()
        up = socket.create_connection((self.upstream.host, self.upstream.port), timeout=10)
        intercepted = False
        with client, up:
            while request := self._read_pdu(client):
                _, function, _, _, xid, _ = HDR.unpack(request[:12])
                if function == 0x0002 and not intercepted:
                    intercepted = True
                    answer = HDR.pack(1, 0x8002, 4, 0x4C00, xid, 0) + struct.pack(">I", 6)
                    self.seen.append((0x8002, 6))
                    client.sendall(answer)
                    continue
                up.sendall(request)
                while True:
                    pdu = self._read_pdu(up)
                    if len(pdu) >= 16 and HDR.unpack(pdu[:12])[5] == 0:
                        self.seen.append(
                            (HDR.unpack(pdu[:12])[1], struct.unpack(">I", pdu[12:16])[0])
                        )
                    client.sendall(pdu)
                    if HDR.unpack(pdu[:12])[3] & 0x0800:
                        break


def test_unknown_source_registers_queries_and_deregisters(isnsd: Isnsd) -> None:
    isnsd.register_target(f"{IQN}:t", "127.0.0.1", 3303, tag=4)
    proxy = _Proxy(isnsd)
    found = isns_query(Portal("127.0.0.1", proxy.port), INI, timeout=5)
    proxy.thread.join(5)
    assert found == [DiscoveredTarget(f"{IQN}:t", "127.0.0.1", 3303, 4)]
    # SOURCE_UNKNOWN, then the real isnsd accepted DevAttrReg, the query, DevDereg.
    assert proxy.seen == [(0x8002, 6), (0x8001, 0), (0x8002, 0), (0x8004, 0)]
    nodes = isnsd.isnsadm("--list", "nodes", source=f"{IQN}:t")
    assert f"{IQN}:t" in nodes and INI not in nodes  # deregistered again


# -- hostile servers ----------------------------------------------------------------------


def _hostile(behaviour: str) -> tuple[int, threading.Thread]:
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]

    def serve() -> None:
        with listener:
            listener.settimeout(30)
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                return
            with conn:
                request = conn.recv(65536)
                xid = HDR.unpack(request[:12])[4] if len(request) >= 12 else 0
                ok_flags = 0x4C00
                try:
                    if behaviour == "truncated":
                        conn.sendall(HDR.pack(1, 0x8002, 40, ok_flags, xid, 0)[:6])
                    elif behaviour == "truncated-payload":
                        conn.sendall(HDR.pack(1, 0x8002, 40, ok_flags, xid, 0) + b"\0" * 8)
                    elif behaviour == "wrong-function":
                        conn.sendall(HDR.pack(1, 0x8005, 4, ok_flags, xid, 0) + bytes(4))
                    elif behaviour == "wrong-xid":
                        conn.sendall(HDR.pack(1, 0x8002, 4, ok_flags, xid ^ 1, 0) + bytes(4))
                    elif behaviour == "bad-length":
                        body = bytes(4) + struct.pack(">II", 32, 4000) + b"abcd"
                        conn.sendall(HDR.pack(1, 0x8002, len(body), ok_flags, xid, 0) + body)
                    elif behaviour == "oversized":
                        chunk = bytes(0xFFFC)
                        for seq in range(100):
                            flags = 0x4000 | (0x0400 if seq == 0 else 0)
                            conn.sendall(HDR.pack(1, 0x8002, len(chunk), flags, xid, seq) + chunk)
                    elif behaviour == "silence":
                        conn.settimeout(30)
                        conn.recv(1)
                except OSError:
                    pass  # the client gave up first: that is the point

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    return port, thread


HOSTILE = ["truncated", "truncated-payload", "wrong-function", "wrong-xid", "bad-length",
           "oversized", "close"]  # fmt: skip


@pytest.mark.parametrize("behaviour", [*HOSTILE, "silence"])
def test_hostile_server_runner(behaviour: str) -> None:
    port, thread = _hostile(behaviour)
    start = time.monotonic()
    with pytest.raises(IsnsQueryError) as info:
        isns_query(Portal("127.0.0.1", port), INI, timeout=2)
    assert info.value.code == IscsiErr.ISNS_QUERY
    assert time.monotonic() - start < 5
    thread.join(5)


def test_unreachable_server() -> None:
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    listener.close()
    with pytest.raises(IsnsQueryError, match="Connection refused") as info:
        isns_query(Portal("127.0.0.1", port), INI, timeout=2)
    assert info.value.code == IscsiErr.ISNS_QUERY


@pytest.mark.parametrize("behaviour", ["truncated", "wrong-function", "oversized", "close"])
def test_hostile_server_cli(behaviour: str, tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "etc" / "iscsi").mkdir(parents=True)
    (root / "etc" / "iscsi" / "initiatorname.iscsi").write_text(f"InitiatorName={INI}\n")
    port, thread = _hostile(behaviour)
    start = time.monotonic()
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "iscsikit",
            "-m",
            "discovery",
            "-t",
            "isns",
            "-p",
            f"127.0.0.1:{port}",
        ],
        env={**os.environ, "ISCSIKIT_ROOT": str(root)},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 25, proc.stderr
    assert proc.stdout == ""
    assert "Could not perform iSNS discovery: iSNS query failed" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert time.monotonic() - start < 30
    assert not (root / "etc" / "iscsi" / "nodes").exists() or not os.listdir(
        root / "etc" / "iscsi" / "nodes"
    )
    thread.join(5)


def _adm(root: Path, *argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "iscsikit", *argv],
        env={**os.environ, "ISCSIKIT_ROOT": str(root)},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_cli_discovery_domain_hides_all_no_portals(
    isnsd_no_default_dd: Isnsd, tmp_path: Path
) -> None:
    srv = isnsd_no_default_dd
    srv.register_target(f"{IQN}:visible", "127.0.0.1", 3301, tag=2)
    srv.add_dd("dd-iscsikit", f"{IQN}:visible", INI)
    root = tmp_path / "root"
    (root / "etc" / "iscsi").mkdir(parents=True)
    name_file = root / "etc" / "iscsi" / "initiatorname.iscsi"
    name_file.write_text(f"InitiatorName={OTHER}\n")
    p = _adm(root, "-m", "discovery", "-t", "isns", "-p", srv.portal)
    assert (p.returncode, p.stdout) == (21, "")
    assert "No portals found" in p.stderr
    name_file.write_text(f"InitiatorName={INI}\n")
    p = _adm(root, "-m", "discoverydb", "-t", "isns", "-p", srv.portal, "-D")
    assert (p.returncode, p.stdout) == (0, f"127.0.0.1:3301,2 {IQN}:visible\n")
    link = root / "etc" / "iscsi" / "isns" / f"{srv.host},{srv.port}"
    assert sorted(os.listdir(link)) == [f"{IQN}:visible,127.0.0.1,3301,2,default", "isns_config"]


def test_scn_register_and_deregister_accepted_by_isnsd(isnsd: Isnsd) -> None:
    """SCNReg (bitmap) and SCNDereg (no delimiter, as open-isns encodes it) as the codec
    builds them: the real isnsd rejects SCNReg from a node without an SCN port (RFC 4171
    §5.6.5.5, status 17) and accepts both once the initiator registered a portal with
    one; DevDereg ends it."""
    from iscsikit.proto.isns import Attribute, FunctionId, ResponseAssembler, Status, encode_request

    client = IsnsClient(INI, first_xid=100)
    with socket.create_connection((isnsd.host, isnsd.port), timeout=5) as sock:

        def call(request: bytes) -> Status:
            response = None
            sock.sendall(request)
            while response is None:
                response = client.receive_data(sock.recv(65536))
            return response.status

        assert call(client.register_request()) is Status.SUCCESSFUL
        assert call(client.scn_register_request(0x1F)) is Status.SCN_REGISTRATION_REJECTED
        assert call(client.deregister_request()) is Status.SUCCESSFUL
        # Registered with an entity and a portal that has an SCN port: accepted.
        portal = [
            Attribute.string(Tag.ENTITY_IDENTIFIER, "iscsikit-ini-entity"),
            Attribute.ip(Tag.PORTAL_IP_ADDRESS, "127.0.0.1"),
            Attribute.uint32(Tag.PORTAL_TCP_UDP_PORT, 3260),
            Attribute.uint32(Tag.SCN_PORT, 3299),
            Attribute.string(Tag.ISCSI_NAME, INI),
            Attribute.uint32(Tag.ISCSI_NODE_TYPE, 2),
        ]
        sock.sendall(encode_request(FunctionId.DEV_ATTR_REG, 1, INI, [], portal))
        assembler = ResponseAssembler(FunctionId.DEV_ATTR_REG, 1)
        reply = None
        while reply is None:
            reply = assembler.receive_data(sock.recv(65536))
        assert reply.status is Status.SUCCESSFUL, reply
        assert call(client.scn_register_request(0x1F)) is Status.SUCCESSFUL
        assert call(client.scn_deregister_request()) is Status.SUCCESSFUL
        assert call(client.deregister_request()) is Status.SUCCESSFUL
