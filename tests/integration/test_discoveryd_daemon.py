"""discoveryd in iscsikitd against real peers: a SendTargets record polled against
tgtd, an iSNS record driven by open-isns isnsd's SCNs with tgtd registering its targets
through iSNS.  A target added later is found and logged in, one that vanishes is logged
out; every wait is bounded."""

from __future__ import annotations

import re
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from iscsikit.testing.daemon import RunningDaemon
from iscsikit.testing.isnsd import Isnsd, enable_isns, isns_missing
from iscsikit.testing.tgtd import Tgtd

pytestmark = pytest.mark.integration

IQN = "iqn.2026-12.test.discoveryd"
LUN_SIZE = 4 << 20


def ok(result: object) -> str:
    code, out = result.returncode, result.stdout  # type: ignore[attr-defined]
    assert code == 0, f"exit {code}: {out}{result.stderr}"  # type: ignore[attr-defined]
    return str(out)


def wait_for(what: Callable[[], bool], timeout: float, d: RunningDaemon) -> float:
    """Seconds until ``what()`` held; fails with the daemon's log after ``timeout``."""
    start = time.monotonic()
    while not what():
        if time.monotonic() - start > timeout:
            pytest.fail(f"not within {timeout} s; daemon log:\n{d.log[-4000:]}")
        time.sleep(0.1)
    return time.monotonic() - start


def discoveryd_record(d: RunningDaemon, kind: str, portal: str, poll: int) -> None:
    key = "sendtargets" if kind == "st" else "isns"
    ok(d.adm("-m", "discoverydb", "-t", kind, "-p", portal, "-o", "new"))
    for name, value in ((f"discovery.{key}.use_discoveryd", "Yes"),
                        (f"discovery.{key}.discoveryd_poll_inval", str(poll))):  # fmt: skip
        ok(d.adm("-m", "discoverydb", "-t", kind, "-p", portal, "-o", "update",
                 "-n", name, "-v", value))  # fmt: skip


@pytest.fixture
def daemon() -> Iterator[RunningDaemon]:
    d = RunningDaemon(start=False)
    try:
        yield d
    finally:
        d.cleanup()


def test_sendtargets_record_polled_logs_in_new_and_out_of_vanished(
    daemon: RunningDaemon, tmp_path: Path
) -> None:
    with Tgtd(tmp_path / "tgtd") as tgtd:
        tgtd.add_target(f"{IQN}:st1", tid=1, lun_size=LUN_SIZE)
        discoveryd_record(daemon, "st", tgtd.portal, 2)
        daemon.start()
        # The first discovery runs at start and logs in what it finds.
        wait_for(lambda: len(tgtd.sessions(1)) == 1, 20, daemon)
        # Not written to the node database: discoveryd logs in with what it found.
        assert daemon.adm("-m", "node").returncode == 21
        tgtd.add_target(f"{IQN}:st2", tid=2, lun_size=LUN_SIZE)
        took = wait_for(lambda: len(tgtd.sessions(2)) == 1, 15, daemon)
        assert took < 10  # the next poll (2 s) found it
        assert f"{IQN}:st2" in ok(daemon.adm("-m", "session"))
        # st1 no longer offered to this initiator (its ACL gone; its session stays up
        # on tgtd's side): discoveryd logs it out.
        tgtd.unbind_address(1, "ALL")
        wait_for(lambda: tgtd.sessions(1) == [], 15, daemon)
        assert len(tgtd.sessions(2)) == 1
        assert "no longer returned" in daemon.log
        assert daemon.stop() == 0
        assert tgtd.sessions(2) == []


def test_sendtargets_failure_is_retried_and_daemon_survives(
    daemon: RunningDaemon, tmp_path: Path
) -> None:
    with Tgtd(tmp_path / "tgtd") as tgtd:
        portal = tgtd.portal
        tgtd.add_target(f"{IQN}:late", tid=1, lun_size=LUN_SIZE)
        tgtd.unbind_address(1, "ALL")
        discoveryd_record(daemon, "st", portal, 1)
        tgtd.stop()
        daemon.start()
        wait_for(lambda: daemon.log.count("discovery at") >= 2, 30, daemon)  # retried
        assert "retried at the next poll" in daemon.log
        assert daemon.adm("-m", "session").returncode == 21  # the daemon still serves
    assert daemon.stop() == 0


@pytest.fixture
def isnsd(tmp_path: Path) -> Iterator[Isnsd]:
    if missing := isns_missing():
        pytest.skip(f"open-isns not installed: {missing}")
    with Isnsd(tmp_path / "isnsd") as server:
        yield server


def test_isns_scn_triggers_discovery_login_and_logout(
    daemon: RunningDaemon, isnsd: Isnsd, tmp_path: Path
) -> None:
    with Tgtd(tmp_path / "tgtd") as tgtd:
        enable_isns(tgtd, isnsd)
        tgtd.add_target(f"{IQN}:isns1", tid=1, lun_size=LUN_SIZE)
        # poll_inval -1: SCNs only, no polling at all -- whatever is found after the
        # first discovery was found because of an SCN.
        discoveryd_record(daemon, "isns", isnsd.portal, -1)
        daemon.start()
        wait_for(lambda: len(tgtd.sessions(1)) == 1, 30, daemon)
        wait_for(lambda: "registered iscsikitd:" in daemon.log, 10, daemon)
        tgtd.add_target(f"{IQN}:isns2", tid=2, lun_size=LUN_SIZE)  # tgtd registers it
        took = wait_for(lambda: len(tgtd.sessions(2)) == 1, 15, daemon)
        assert took < 10
        assert "SCN for" in daemon.log and f"{IQN}:isns2" in daemon.log
        # The server forgets isns1 (its session is still up at tgtd): SCN, logout.
        isnsd.deregister(f"{IQN}:isns1")
        wait_for(lambda: tgtd.sessions(1) == [], 15, daemon)
        assert len(tgtd.sessions(2)) == 1
        assert "iscsikitd:" in isnsd.isnsadm("--list", "entities")
        assert daemon.stop() == 0, daemon.log[-5000:]
        # At stop the daemon deregistered: the server no longer knows the initiator.
        assert "iscsikitd:" not in isnsd.isnsadm("--list", "entities")


def test_isns_registration_kept_alive_within_the_registration_period(
    daemon: RunningDaemon, tmp_path: Path
) -> None:
    """The server gives the entity a 4 s Registration Period; an SCN-only record then
    discovers every 2 s (any message refreshes the registration, RFC 4171 §6.2.6), so
    the initiator is still registered -- and still told of changes -- long after."""
    if missing := isns_missing():
        pytest.skip(f"open-isns not installed: {missing}")
    with Isnsd(tmp_path / "isnsd", registration_period=4) as isnsd:
        discoveryd_record(daemon, "isns", isnsd.portal, -1)
        daemon.start()
        wait_for(lambda: "registered iscsikitd:" in daemon.log, 10, daemon)
        assert "registration period 4 s: discovering every 2 s" in daemon.log
        time.sleep(9)
        assert "iscsikitd:" in isnsd.isnsadm("--list", "entities")
        assert daemon.stop() == 0, daemon.log[-5000:]


def test_scn_port_answers_scn_and_drops_a_bad_peer(daemon: RunningDaemon, isnsd: Isnsd) -> None:
    """The SCN listener by hand: a well-formed SCN gets its SCNRsp (destination name
    back) and a discovery; a peer sending a query (not a server message) is dropped at
    once; the daemon serves on."""
    from iscsikit.proto.isns import Attribute, FunctionId, Header, Tag, encode_attributes

    discoveryd_record(daemon, "isns", isnsd.portal, -1)
    daemon.start()
    wait_for(lambda: "SCNs to 127.0.0.1:" in daemon.log, 10, daemon)
    port = int(re.search(r"SCNs to 127\.0\.0\.1:(\d+)", daemon.log).group(1))  # type: ignore[union-attr]
    me = "iqn.2026-12.test.discoveryd:dest"
    payload = encode_attributes([
        Attribute.string(Tag.ISCSI_NAME, me),
        Attribute(Tag.TIMESTAMP, (1_765_000_000).to_bytes(8, "big")),
        Attribute.uint32(Tag.ISCSI_SCN_BITMAP, 0x08),
        Attribute.string(Tag.ISCSI_NAME, f"{IQN}:by-hand"),
    ])  # fmt: skip
    scn = Header(FunctionId.SCN, len(payload), 0x4C00, 77, 0).encode() + payload
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(scn)
        reply = sock.recv(4096)
    assert reply[2:4] == b"\x80\x08" and reply[8:10] == (77).to_bytes(2, "big")
    assert reply[12:16] == bytes(4) and me.encode() in reply[16:]
    wait_for(lambda: f"{IQN}:by-hand" in daemon.log, 5, daemon)
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(Header(FunctionId.DEV_ATTR_QRY, 0, 0x4C00, 1, 0).encode())
        assert sock.recv(4096) == b""  # closed on us
    wait_for(lambda: "bad message" in daemon.log, 5, daemon)
    assert daemon.adm("-m", "session").returncode == 21
    assert daemon.stop() == 0


def test_stop_is_prompt_while_an_isns_exchange_hangs(daemon: RunningDaemon) -> None:
    """The iSNS server accepts and never answers: the registration waits for its 15 s
    timeout.  SIGTERM meanwhile stops the daemon at once (nothing to deregister), not
    when that exchange gives up: the stop does not wait for an abandoned exchange."""
    from iscsikit.daemon.discoveryd import ISNS_TIMEOUT
    from iscsikit.testing.stallproxy import SilentPeer, recv_some

    with SilentPeer(lambda sock: recv_some(sock, 12)) as peer:
        discoveryd_record(daemon, "isns", peer.portal, -1)
        daemon.start()
        wait_for(lambda: "discoveryd: isns" in daemon.log, 10, daemon)
        time.sleep(1)  # the registration is on the wire, waiting for an answer
        started = time.monotonic()
        assert daemon.stop() == 0
        took = time.monotonic() - started
    assert took < ISNS_TIMEOUT / 3, f"stop took {took:.1f} s; log:\n{daemon.log[-3000:]}"
