"""Every wait bounded: peers that stop answering in the middle of a message (issue 14).

Each network-facing path meets a peer that accepts the connection, sends *part* of a
message (a PDU header, a data segment, an NBD reply, an IPC reply, an iSNS header) and
then goes silent with the socket left open.  Each test asserts the error iscsikit raises
(an :mod:`iscsikit.errors` type and code, or iscsiadm's exit code for the command line)
and that it came within the configured timeout: at least most of it (so the timeout, and
not something else, ended the wait) and at most three times it.

Two kinds of peer:

* :class:`~iscsikit.testing.stallproxy.SilentPeer` - a raw socket server; the scripts
  here build their bytes with :mod:`struct` only (they must not share the codec under
  test): read what the client sends, write a few bytes, then silence;
* tgtd behind :class:`~iscsikit.testing.stallproxy.StallProxy` with
  ``stall_down_after`` / :meth:`~iscsikit.testing.stallproxy.StallProxy.stall_down`:
  a real target (or open-isns isnsd) whose bytes stop reaching the initiator part way
  through a message, where a real first part matters (a login already through its first
  step, a read with half its Data-In delivered, a logout).

docs/timeouts.md names the setting that governs each bound tested here.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import select
import socket
import struct
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import iscsikit
from iscsikit.discovery.isns import IsnsQueryError, isns_query
from iscsikit.errors import (
    ConnectionFailedError,
    IscsiErr,
    IscsiError,
    LogoutError,
    PduTimeoutError,
    TransportTimeoutError,
)
from iscsikit.ipc.client import DaemonClient, DaemonTimeoutError
from iscsikit.nbd.client import NbdClient
from iscsikit.nbd.device import MemoryDevice
from iscsikit.nbd.server import Limits
from iscsikit.proto.address import Portal
from iscsikit.proto.ffp import Timers
from iscsikit.testing.daemon import RunningDaemon, short_root
from iscsikit.testing.isnsd import Isnsd, isns_missing
from iscsikit.testing.nbd import ThreadServer
from iscsikit.testing.stallproxy import SilentPeer, StallProxy, answer_part, recv_exact, recv_some
from iscsikit.testing.tgtd import Tgtd

pytestmark = pytest.mark.integration

IQN = "iqn.2024-01.test.bounded:disk"
INITIATOR = "iqn.2024-01.test.bounded:initiator"
LUN_SIZE = 16 << 20
#: How much longer than its timeout a wait may take before the test calls it unbounded.
SLACK = 3.0
#: Bytes of the first Login Response that get through: part of its 48-byte header, or
#: the header and part of its data segment (tgtd's first answer carries text keys).
HEADER_PART, DATA_PART = 20, 60


def bounded(started: float, timeout: float) -> float:
    """Seconds since ``started``, asserted within ``SLACK`` x ``timeout``."""
    took = time.monotonic() - started
    assert took <= SLACK * timeout, f"took {took:.1f} s for a timeout of {timeout:g} s"
    return took


# == real targets ===========================================================================


@pytest.fixture(scope="module")
def tgtd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Tgtd]:
    with Tgtd(tmp_path_factory.mktemp("bounded")) as tgtd:
        tgtd.add_target(IQN, tid=1, lun_size=LUN_SIZE)
        tgtd.set_target_param(1, "DefaultTime2Wait", 0)
        yield tgtd


@contextlib.contextmanager
def proxy(tgtd: Tgtd, stall_down_after: int | None = None) -> Iterator[StallProxy]:
    with StallProxy(tgtd.portal, stall_down_after=stall_down_after) as p:
        yield p


# == login ==================================================================================

LOGIN_TIMEOUT = 1.0


def login_response_part() -> bytes:
    """20 of the 48 header bytes of a Login Response (opcode 0x23, T bit, CSG 0 -> NSG 1)."""
    return struct.pack(">BBBB", 0x23, 0x81, 0, 0) + bytes(16)


def test_login_api_raw_peer_stops_mid_header() -> None:
    with SilentPeer(answer_part(login_response_part(), after=48)) as peer:
        started = time.monotonic()
        with pytest.raises(TransportTimeoutError) as info:
            iscsikit.login(peer.portal, IQN, initiator_name=INITIATOR, timeout=1, retries=0)
        took = bounded(started, LOGIN_TIMEOUT)
    assert info.value.code == IscsiErr.TRANS_TIMEOUT
    assert took >= 0.8 * LOGIN_TIMEOUT
    assert "timed out" in str(info.value)


@pytest.mark.parametrize("part", [HEADER_PART, DATA_PART], ids=["header", "data"])
def test_login_api_target_stops_mid_response(tgtd: Tgtd, part: int) -> None:
    with proxy(tgtd, stall_down_after=part) as p:
        started = time.monotonic()
        with pytest.raises(TransportTimeoutError) as info:
            iscsikit.login(p.portal, IQN, initiator_name=INITIATOR, timeout=1, retries=0)
        took = bounded(started, LOGIN_TIMEOUT)
    assert info.value.code == IscsiErr.TRANS_TIMEOUT
    assert took >= 0.8 * LOGIN_TIMEOUT


def test_login_api_target_stops_in_second_login_step(tgtd: Tgtd) -> None:
    """The security step completes; the operational step's answer stops half way."""
    with proxy(tgtd) as probe:
        with iscsikit.login(probe.portal, IQN, initiator_name=INITIATOR, timeout=5) as s:
            assert s.params
        turns = probe.turns(0)
    assert len(turns) >= 3, turns  # security request, operational request, logout
    with proxy(tgtd, stall_down_after=turns[1] + HEADER_PART) as p:
        started = time.monotonic()
        with pytest.raises(TransportTimeoutError):
            iscsikit.login(p.portal, IQN, initiator_name=INITIATOR, timeout=1, retries=0)
        assert bounded(started, LOGIN_TIMEOUT) >= 0.8 * LOGIN_TIMEOUT
        assert p.turns(0)[:2] == turns[:2]  # it did get through the first step


def test_open_lun_login_retries_stay_bounded(tgtd: Tgtd) -> None:
    """open_lun (the session manager's login) with one retry: two attempts, each bounded
    by the login timeout, and the retry delay between them."""
    retries, delay = 1, 0.2
    limit = (retries + 1) * LOGIN_TIMEOUT + retries * delay
    with proxy(tgtd, stall_down_after=DATA_PART) as p:
        started = time.monotonic()
        with pytest.raises(TransportTimeoutError) as info:
            iscsikit.open_lun(
                f"iscsi://{p.portal}/{IQN}/1",
                initiator_name=INITIATOR,
                timeout=LOGIN_TIMEOUT,
                retries=retries,
                retry_delay=delay,
            )
        took = bounded(started, limit)
        assert p.accepted == retries + 1
    assert info.value.code == IscsiErr.TRANS_TIMEOUT
    assert took >= 0.8 * limit


# == the command line: login through the daemon, SendTargets discovery =======================


#: Seconds a command may spend outside the wait under test (python, imports, records).
CLI_START = 3.0


def write_root_conf(root: Path, lines: str = "") -> None:
    etc = root / "etc" / "iscsi"
    etc.mkdir(parents=True, exist_ok=True)
    (etc / "iscsid.conf").write_text(lines)
    (etc / "initiatorname.iscsi").write_text(f"InitiatorName={INITIATOR}\n")


def adm(root: Path, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "ISCSIKIT_ROOT": str(root)}
    env.pop("ISCSIKIT_DB_ROOT", None)
    return subprocess.run(
        [sys.executable, "-m", "iscsikit", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def test_cli_node_login_stops_mid_response(tgtd: Tgtd) -> None:
    """``-m node -T -p -l`` against a target that stops mid-Login-Response: exit 8 (as
    iscsiadm: "initiator reported error (8 - connection timed out)") once
    ``initial_login_retry_max`` attempts of ``login_timeout`` each are spent."""
    root = short_root("ikbw")
    write_root_conf(root)
    with RunningDaemon(root) as daemon, proxy(tgtd, stall_down_after=DATA_PART) as p:
        node = ("-m", "node", "-T", IQN, "-p", p.portal)
        assert daemon.adm(*node, "-o", "new").returncode == 0
        for key, value in (
            ("node.conn[0].timeo.login_timeout", "1"),
            ("node.session.initial_login_retry_max", "1"),
        ):
            r = daemon.adm(*node, "-o", "update", "-n", key, "-v", value)
            assert r.returncode == 0, r.stderr
        started = time.monotonic()
        r = daemon.adm(*node, "-l")
        took = time.monotonic() - started
        attempts = p.accepted
    assert r.returncode == 8, (r.stdout, r.stderr)
    assert "timed out" in r.stderr
    assert 1 <= attempts <= 2
    # Two attempts of 1 s (and the retry delay), plus starting the command and daemon work.
    assert took <= SLACK * (attempts * LOGIN_TIMEOUT + 1) + CLI_START, f"took {took:.1f} s"


ST_CONF = (
    "discovery.sendtargets.timeo.login_timeout = 1\n"
    "discovery.sendtargets.timeo.active_timeout = 1\n"
    "discovery.sendtargets.reopen_max = 0\n"
)


def discovery_turns(tgtd: Tgtd, root: Path) -> list[int]:
    """Where each exchange of a full SendTargets discovery through a proxy begins."""
    with proxy(tgtd) as probe:
        r = adm(root, "-m", "discovery", "-t", "st", "-p", probe.portal)
        assert r.returncode == 0, r.stderr
        assert IQN in r.stdout
        return probe.turns(0)


@pytest.mark.parametrize("where", ["login", "text"])
def test_cli_sendtargets_stops_mid_message(tgtd: Tgtd, tmp_path: Path, where: str) -> None:
    """``-m discovery -t st``: the Login Response or the SendTargets Text Response stops
    part way.  Bounded by ``discovery.sendtargets.timeo.login_timeout`` /
    ``active_timeout`` (iscsid.conf here, copied into the discovery record)."""
    write_root_conf(tmp_path, ST_CONF)
    turns = discovery_turns(tgtd, tmp_path)
    # [0] the login (one step or two), ..., [-2] the SendTargets text, [-1] the logout
    assert len(turns) >= 3, turns
    at = DATA_PART if where == "login" else turns[-2] + DATA_PART
    with proxy(tgtd, stall_down_after=at) as p:
        started = time.monotonic()
        r = adm(tmp_path, "-m", "discovery", "-t", "st", "-p", p.portal)
        took = time.monotonic() - started
        attempts = p.accepted
    # iscsiadm 2.1.8 ends a discovery login that gets no answer with "iSCSI PDU timed
    # out" (11; checked against it: "connection login retries (reopen_max) 0 exceeded").
    assert r.returncode == IscsiErr.PDU_TIMEOUT, (r.stdout, r.stderr)
    assert "Could not perform SendTargets discovery: iSCSI PDU timed out" in r.stderr
    assert IQN not in r.stdout
    assert attempts == 1
    # One timeout of 1 s, plus starting the command.
    assert 0.8 <= took <= SLACK * 1.0 + CLI_START, f"took {took:.1f} s"


@pytest.mark.parametrize("where", ["login", "text"])
def test_api_discover_stops_mid_message(tgtd: Tgtd, where: str) -> None:
    """``iscsikit.discover``: the login is bounded by ``login_timeout`` (code 8), the
    answer by ``response_timeout`` (code 11, a PDU timeout); both TransportTimeoutError."""
    with proxy(tgtd) as probe:
        found = iscsikit.discover(probe.portal, initiator_name=INITIATOR, timeout=5)
        assert [t.name for t in found] == [IQN]
        turns = probe.turns(0)
    at = DATA_PART if where == "login" else turns[-2] + DATA_PART
    with proxy(tgtd, stall_down_after=at) as p:
        started = time.monotonic()
        with pytest.raises(TransportTimeoutError) as info:
            iscsikit.discover(
                p.portal, initiator_name=INITIATOR, login_timeout=1, response_timeout=1
            )
        took = bounded(started, 1.0)
    assert took >= 0.8
    assert info.value.code == (8 if where == "login" else 11)


# == Full Feature Phase: a READ whose Data-In stops half way ================================

#: Keepalive and command timeouts short enough for a test: a stalled connection is found
#: by the NOP-Out ping within noop_out_interval + noop_out_timeout.
FFP_TIMERS = Timers(
    noop_out_interval=0.5, noop_out_timeout=0.5, command_timeout=2, abort_timeout=0.5, tick=0.1
)
DETECT = FFP_TIMERS.noop_out_interval + FFP_TIMERS.noop_out_timeout
REPLACEMENT = 2.0
READ_SIZE = 1 << 20
#: Bytes of the read's answer let through: part of a Data-In header, or 100 kB into the
#: data (the middle of a Data-In data segment).
FFP_PARTS = {"header": 20, "segment": 100_000}


def url(p: StallProxy) -> str:
    return f"iscsi://{p.portal}/{IQN}/1"


def ffp_options() -> dict[str, Any]:
    return {
        "initiator_name": INITIATOR,
        "timers": FFP_TIMERS,
        "timeout": 2,
        "retry_delay": 0.2,
        "replacement_timeout": REPLACEMENT,
        "DefaultTime2Wait": 0,
    }


@pytest.mark.parametrize("part", list(FFP_PARTS), ids=list(FFP_PARTS))
@pytest.mark.parametrize("outcome", ["recovered", "failed"])
def test_read_stalled_mid_data_in(tgtd: Tgtd, part: str, outcome: str) -> None:
    """A stalled read is found by the keepalive; the session manager logs in again and
    re-issues it whole ("recovered": the full, right data), or gives up after
    ``replacement_timeout`` when the portal stays unreachable ("failed":
    ConnectionFailedError).  Never partial data reported good, never a hang."""
    data = os.urandom(READ_SIZE)
    with proxy(tgtd) as p, iscsikit.open_lun(url(p), **ffp_options()) as lun:
        lun.write(0, data)
        p.stall_down(FFP_PARTS[part])
        if outcome == "failed":
            p.refuse()
        started = time.monotonic()
        if outcome == "recovered":
            got = lun.read(0, READ_SIZE)
            bounded(started, DETECT + 2)
            assert got == data
            assert lun.recoveries >= 1
        else:
            with pytest.raises(ConnectionFailedError) as info:
                lun.read(0, READ_SIZE)
            took = bounded(started, DETECT + REPLACEMENT)
            assert took >= REPLACEMENT * 0.8
            assert info.value.code == IscsiErr.TRANS
            with contextlib.suppress(IscsiError):
                lun.close()


@pytest.mark.parametrize("part", list(FFP_PARTS), ids=list(FFP_PARTS))
def test_plain_session_read_stalled_mid_data_in(tgtd: Tgtd, part: str) -> None:
    """Over a plain session (``iscsikit.login``: no recovery) the stalled read fails as
    soon as the keepalive finds the connection dead."""
    data = os.urandom(READ_SIZE)
    with proxy(tgtd) as p:
        session = iscsikit.login(
            p.portal, IQN, initiator_name=INITIATOR, timeout=2, retries=0, timers=FFP_TIMERS
        )
        try:
            lun = iscsikit.Lun.attach(session, 1)
            lun.write(0, data)
            p.stall_down(FFP_PARTS[part])
            started = time.monotonic()
            with pytest.raises(ConnectionFailedError) as info:
                lun.read(0, READ_SIZE)
            assert bounded(started, DETECT) >= 0.8 * DETECT
        finally:
            session.transport_session.close()
    assert isinstance(info.value, ConnectionFailedError), repr(info.value)
    assert "ping timeout" in str(info.value)


@pytest.mark.parametrize("outcome", ["recovered", "failed"])
def test_async_read_stalled_mid_data_in(tgtd: Tgtd, outcome: str) -> None:
    """The asyncio data path, the same two ways."""
    data = os.urandom(READ_SIZE)

    async def main(p: StallProxy) -> None:
        async with iscsikit.open_lun_async(url(p), **ffp_options()) as lun:
            await lun.write(0, data)
            p.stall_down(FFP_PARTS["segment"])
            if outcome == "failed":
                p.refuse()
            started = time.monotonic()
            if outcome == "recovered":
                got = await asyncio.wait_for(lun.read(0, READ_SIZE), 60)
                bounded(started, DETECT + 2)
                assert got == data
            else:
                with pytest.raises(ConnectionFailedError):
                    await asyncio.wait_for(lun.read(0, READ_SIZE), 60)
                assert bounded(started, DETECT + REPLACEMENT) >= REPLACEMENT * 0.8
                raise _Done

    with proxy(tgtd) as p, contextlib.suppress(_Done, IscsiError):
        asyncio.run(main(p))


#: Logout: no keepalive or command timer (only the logout's own bound may end it).
LOGOUT_TIMERS = Timers(
    noop_out_interval=0, noop_out_timeout=0, command_timeout=0, logout_timeout=1, tick=0.1
)
LOGOUT_TIMEOUT = 1.0


@pytest.mark.parametrize("kind", ["open_lun", "plain", "async"])
def test_logout_answer_never_comes(tgtd: Tgtd, kind: str) -> None:
    """The target goes silent (its close held back too) as the Logout Request goes out:
    the logout fails with LogoutError (10) after ``logout_timeout`` -- never a success,
    never a hang -- whether the blocking manager, a plain session or the asyncio manager
    runs it."""
    options: dict[str, Any] = {
        "initiator_name": INITIATOR,
        "timers": LOGOUT_TIMERS,
        "logout_timeout": LOGOUT_TIMEOUT,
    }
    with proxy(tgtd) as p:
        started = 0.0
        with pytest.raises(LogoutError) as info:
            if kind == "open_lun":
                lun = iscsikit.open_lun(url(p), **options)
                lun.read(0, 4096)
                p.stall_down(0)
                started = time.monotonic()
                lun.close()
            elif kind == "plain":
                session = iscsikit.login(p.portal, IQN, **options)
                iscsikit.Lun.attach(session, 1).read(0, 4096)
                p.stall_down(0)
                started = time.monotonic()
                session.logout()
            else:

                async def main() -> None:
                    nonlocal started
                    async with iscsikit.open_lun_async(url(p), **options) as alun:
                        await alun.read(0, 4096)
                        p.stall_down(0)
                        started = time.monotonic()

                asyncio.run(main())
        took = bounded(started, LOGOUT_TIMEOUT)
    assert took >= 0.8 * LOGOUT_TIMEOUT
    assert info.value.code == IscsiErr.LOGOUT


class _Done(Exception):
    """Leaves the ``async with`` of a LUN whose session is gone (its logout fails)."""


# == NBD ====================================================================================

NBD_TIMEOUT = 1.0
NBDMAGIC = b"NBDMAGIC"
IHAVEOPT = b"IHAVEOPT"
NBD_OPT_GO = 7


def still_open(sock: socket.socket) -> bool:
    """Whether the peer has neither closed ``sock`` nor sent anything on it yet."""
    readable, _, _ = select.select([sock], [], [], 0)
    return not readable


def test_nbd_server_drops_a_client_stalled_mid_negotiation(tmp_path: Path) -> None:
    """iscsikit's NBD server: a client that sends half an option header and stops is
    dropped after ``Limits.handshake_timeout``; another client is served meanwhile."""
    path = tmp_path / "nbd.sock"
    limit = 2 * NBD_TIMEOUT
    server = ThreadServer(MemoryDevice(1 << 20), path, limits=Limits(handshake_timeout=limit))
    try:
        stalled = socket.socket(socket.AF_UNIX)
        stalled.settimeout(10)
        stalled.connect(str(path))
        greeting = recv_exact(stalled, 18)
        assert greeting[:16] == NBDMAGIC + IHAVEOPT
        # Client flags (fixed newstyle, no zeroes), then 12 of NBD_OPT_GO's 16 header bytes.
        stalled.sendall(struct.pack(">I", 3) + IHAVEOPT + struct.pack(">I", NBD_OPT_GO))
        started = time.monotonic()
        # Another client meanwhile: the stalled one blocks nobody.
        with NbdClient(str(path), timeout=5, connect_timeout=5) as other:
            other.write(0, b"x" * 4096)
            assert other.read(0, 4096) == b"x" * 4096
        assert still_open(stalled), "the other client was served only after the drop"
        assert stalled.recv(1) == b""  # then dropped by the server
        took = bounded(started, limit)
        assert took >= 0.8 * limit
        stalled.close()
    finally:
        server.stop()


def nbd_greeting_part(sock: socket.socket) -> None:
    sock.sendall(NBDMAGIC + IHAVEOPT[:4])


def nbd_reply_part(sock: socket.socket) -> None:
    """Newstyle, not fixed (so the client uses NBD_OPT_EXPORT_NAME), NO_ZEROES; a 1 MiB
    export; then half of the simple reply to the first request."""
    sock.sendall(NBDMAGIC + IHAVEOPT + struct.pack(">H", 2))
    assert struct.unpack(">I", recv_exact(sock, 4))[0] == 2
    magic, option, length = struct.unpack(">8sII", recv_exact(sock, 16))
    assert (magic, option) == (IHAVEOPT, 1)
    recv_exact(sock, length)
    sock.sendall(struct.pack(">QH", 1 << 20, 1))  # size, NBD_FLAG_HAS_FLAGS
    request = recv_exact(sock, 28)
    assert request[:4] == b"\x25\x60\x95\x13"
    sock.sendall(b"\x67\x44\x66\x98" + bytes(4))  # magic and error; no handle


def test_nbd_client_handshake_stops_mid_greeting(tmp_path: Path) -> None:
    with SilentPeer(nbd_greeting_part, unix_path=tmp_path / "s"):
        started = time.monotonic()
        with pytest.raises(TransportTimeoutError) as info:
            NbdClient(str(tmp_path / "s"), connect_timeout=NBD_TIMEOUT)
        took = bounded(started, NBD_TIMEOUT)
    assert took >= 0.8 * NBD_TIMEOUT
    assert info.value.code == IscsiErr.TRANS_TIMEOUT


def test_nbd_client_reply_stops_half_way(tmp_path: Path) -> None:
    with SilentPeer(nbd_reply_part, unix_path=tmp_path / "s"):
        client = NbdClient(str(tmp_path / "s"), timeout=NBD_TIMEOUT, connect_timeout=5)
        assert client.size == 1 << 20
        started = time.monotonic()
        with pytest.raises(PduTimeoutError) as info:
            client.read(0, 4096)
        took = bounded(started, NBD_TIMEOUT)
        assert took >= 0.8 * NBD_TIMEOUT
        assert info.value.code == IscsiErr.PDU_TIMEOUT
        with pytest.raises(ConnectionFailedError):  # never a late half-reply taken as good
            client.read(0, 4096)
        client.close()


# == the daemon's IPC ========================================================================

#: iscsikitd's IpcServer(request_timeout=...) default: the rest of a request once its
#: first byte arrived.
IPC_REQUEST_TIMEOUT = 10.0


def test_daemon_drops_a_half_request_and_serves_others() -> None:
    with RunningDaemon() as daemon:
        stalled = socket.socket(socket.AF_UNIX)
        stalled.settimeout(60)
        stalled.connect(str(daemon.socket))
        # A frame announcing 200 bytes of JSON, and 20 of them.
        stalled.sendall(struct.pack(">I", 200) + b'{"v": 1, "id": 1, "o')
        started = time.monotonic()
        for _ in range(2):
            r = daemon.adm("-m", "session", timeout=30)
            assert r.returncode == 21, r.stderr  # no sessions: served, not held up
        assert still_open(stalled), "the other clients were served only after the drop"
        rest = b""
        while chunk := stalled.recv(65536):  # an error reply, then the close
            rest += chunk
        took = bounded(started, IPC_REQUEST_TIMEOUT)
        stalled.close()
    assert took >= 0.8 * IPC_REQUEST_TIMEOUT
    assert b"incomplete request" in rest


def ipc_reply_part(sock: socket.socket) -> None:
    """Read one request frame; answer with a frame header for 100 bytes and 10 of them."""
    (length,) = struct.unpack(">I", recv_exact(sock, 4))
    recv_exact(sock, length)
    sock.sendall(struct.pack(">I", 100) + b'{"v": 1, "')


def test_ipc_client_reply_stops_half_way(tmp_path: Path) -> None:
    path = tmp_path / "d.sock"
    with SilentPeer(ipc_reply_part, unix_path=path):
        client = DaemonClient(path, timeout=1)
        started = time.monotonic()
        with pytest.raises(DaemonTimeoutError) as info:
            client.call("session_list")
        bounded(started, 1)
        client.close()
    assert info.value.code == IscsiErr.REQ_TIMEDOUT


def test_cli_daemon_reply_stops_half_way() -> None:
    """``-m session`` against a daemon that stops mid-reply: exit 33 ("iscsid request
    timed out") after the client's reply timeout (30 s, DEFAULT_TIMEOUT)."""
    from iscsikit.ipc.client import DEFAULT_TIMEOUT

    root = short_root("ikbw")
    try:
        run = root / "run" / "iscsikit"
        run.mkdir(parents=True)
        write_root_conf(root)
        with SilentPeer(ipc_reply_part, unix_path=run / "iscsikitd.sock"):
            started = time.monotonic()
            r = adm(root, "-m", "session", timeout=SLACK * DEFAULT_TIMEOUT + 10)
            took = bounded(started, DEFAULT_TIMEOUT)
    finally:
        import shutil

        shutil.rmtree(root, ignore_errors=True)
    assert r.returncode == IscsiErr.REQ_TIMEDOUT, (r.stdout, r.stderr)
    assert took >= 0.8 * DEFAULT_TIMEOUT


# == iSNS ===================================================================================

ISNS_TIMEOUT = 1.0


def isns_header_part(sock: socket.socket) -> None:
    """Half of the 12-byte iSNSP header: version 1, DevAttrQryRsp, then nothing."""
    recv_some(sock, 12)
    sock.sendall(struct.pack(">HHH", 1, 0x8002, 40))


def isns_payload_part(sock: socket.socket) -> None:
    """A whole header announcing 40 bytes of payload (xid/sequence copied from the
    request, last-PDU flag), and 8 of them."""
    request = recv_exact(sock, 12)
    xid = request[8:10]
    sock.sendall(struct.pack(">HHHH", 1, 0x8002, 40, 0x0C00) + xid + b"\0\0" + bytes(8))


def expect_isns_timeout(portal: str) -> None:
    """An iSNS query at ``portal`` fails with IsnsQueryError (25) after its timeout."""
    host, port = portal.rsplit(":", 1)
    started = time.monotonic()
    with pytest.raises(IsnsQueryError) as info:
        isns_query(Portal(host, int(port)), INITIATOR, timeout=ISNS_TIMEOUT)
    assert bounded(started, ISNS_TIMEOUT) >= 0.8 * ISNS_TIMEOUT
    assert info.value.code == IscsiErr.ISNS_QUERY
    assert "no response" in str(info.value)


@pytest.mark.parametrize("script", [isns_header_part, isns_payload_part], ids=["header", "payload"])
def test_isns_query_stops_mid_message(script: Callable[[socket.socket], None]) -> None:
    with SilentPeer(script) as peer:
        expect_isns_timeout(peer.portal)


@pytest.mark.skipif(bool(isns_missing()), reason=f"open-isns missing: {isns_missing()}")
@pytest.mark.parametrize("part", [6, 20], ids=["header", "payload"])
def test_isns_server_stops_mid_response(tmp_path: Path, part: int) -> None:
    """open-isns isnsd behind the proxy: its DevAttrQryRsp stops after ``part`` bytes
    (of the 12-byte header, or into the attributes)."""
    with Isnsd(tmp_path / "isns") as srv:
        srv.register_target(f"{IQN}:isns", "127.0.0.1", 3299, tag=2)
        with StallProxy(srv.portal) as probe:  # the same query, whole: it answers
            host, port = probe.portal.rsplit(":", 1)
            found = isns_query(Portal(host, int(port)), INITIATOR, timeout=5)
            assert [t.name for t in found] == [f"{IQN}:isns"]
        with StallProxy(srv.portal, stall_down_after=part) as p:
            expect_isns_timeout(p.portal)


def test_ipc_client_reply_of_a_long_operation_stops_half_way(tmp_path: Path) -> None:
    """A login waits as long as the daemon needs (no reply timeout), but once the reply
    has begun its rest is bounded by the client's timeout."""
    path = tmp_path / "d.sock"
    with SilentPeer(ipc_reply_part, unix_path=path):
        client = DaemonClient(path, timeout=1)
        started = time.monotonic()
        with pytest.raises(DaemonTimeoutError):
            client.request("login", {}, timeout=math.inf)
        bounded(started, 1)
        client.close()


def test_isns_scn_listener_drops_a_server_that_stops_mid_message() -> None:
    """discoveryd's SCN listener: an iSNS server connection that sends part of a message
    and goes silent is closed after the timeout; an idle one (nothing half-sent) stays."""
    from iscsikit.daemon.discoveryd import serve_scn_connection

    async def scenario() -> tuple[float, bool]:
        calls: list[None] = []
        server = await asyncio.start_server(
            lambda r, w: serve_scn_connection(r, w, lambda: calls.append(None), timeout=1.0),
            "127.0.0.1",
            0,
        )
        port = server.sockets[0].getsockname()[1]
        try:
            idle_r, idle_w = await asyncio.open_connection("127.0.0.1", port)
            half_r, half_w = await asyncio.open_connection("127.0.0.1", port)
            half_w.write(struct.pack(">HHH", 1, 0x0006, 0))  # half an SCN header
            await half_w.drain()
            started = time.monotonic()
            assert await asyncio.wait_for(half_r.read(1), SLACK * 1.0 + 1) == b""
            took = time.monotonic() - started
            idle_open = True
            with contextlib.suppress(TimeoutError):
                idle_open = await asyncio.wait_for(idle_r.read(1), 0.5) != b""
            for w in (idle_w, half_w):
                w.close()
            assert calls == []
            return took, idle_open
        finally:
            server.close()
            await server.wait_closed()

    took, idle_open = asyncio.run(scenario())
    assert 0.8 <= took <= SLACK * 1.0, took
    assert idle_open
