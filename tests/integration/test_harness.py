"""The test harness itself: private tgtd instances, the peer wrappers, ScriptedTarget and
the pytest plugin's rules.

Everything here is checked against the real programs (tgt 1.0.85, libiscsi 1.19's
iscsi-ls, open-iscsi 2.1.8's iscsiadm through shared/tools/iscsiadm-oracle) on loopback;
the raw login PDUs are built by hand so that this file does not depend on iscsikit.proto.
"""

from __future__ import annotations

import contextlib
import socket
import struct
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from iscsikit.testing import peers
from iscsikit.testing.hostile import (
    PeerClosed,
    ScriptedTarget,
    close_immediately,
    pdu_length,
    read_pdu,
    send_bytes,
    silent,
)
from iscsikit.testing.plugin import DISK_IQN, ScriptedTargetFactory, TgtdFactory, require_tgt
from iscsikit.testing.tgtd import TgtadmError, Tgtd, TgtdError, free_port, parse_connections

pytestmark = pytest.mark.integration

IQN = "iqn.2024-01.test.iscsikit"
INITIATOR = f"{IQN}:harness"


def need(reason: str | None) -> None:
    if reason:
        pytest.skip(reason)


@pytest.fixture
def iscsi_ls() -> None:
    need(peers.iscsi_ls_unavailable())


@pytest.fixture
def iscsiadm() -> None:
    need(peers.iscsiadm_unavailable())


# -- a hand-made login, independent of iscsikit.proto ---------------------------------


def login_pdu(target: str, initiator: str = INITIATOR) -> bytes:
    """A single Login Request, CSG=1 (operational) -> NSG=3 (full feature), T=1, no auth."""
    data = (
        f"InitiatorName={initiator}\0TargetName={target}\0SessionType=Normal\0AuthMethod=None\0"
    ).encode()
    bhs = bytearray(48)
    bhs[0] = 0x43  # I=1, opcode 0x03 Login Request
    bhs[1] = 0x80 | (1 << 2) | 3  # T=1, CSG=1, NSG=3
    bhs[5:8] = len(data).to_bytes(3, "big")
    bhs[8:14] = bytes([0x40, 0, 0, 0, 0, 1])  # ISID: random format
    struct.pack_into(">I", bhs, 16, 1)  # ITT
    return bytes(bhs) + data + b"\0" * (-len(data) % 4)


def raw_login(host: str, port: int, target: str, initiator: str = INITIATOR) -> tuple[
    socket.socket, int, int, dict[str, str]
]:  # fmt: skip
    """Log in by hand; the socket (still open), status class, detail and answered keys."""
    sock = socket.create_connection((host, port), timeout=5)
    sock.sendall(login_pdu(target, initiator))
    rsp = read_pdu(sock)
    assert rsp[0] & 0x3F == 0x23, "not a Login Response"
    dlen = int.from_bytes(rsp[5:8], "big")
    keys = dict(kv.split("=", 1) for kv in rsp[48 : 48 + dlen].decode().split("\0") if kv)
    return sock, rsp[36], rsp[37], keys


# -- Tgtd ------------------------------------------------------------------------------


def test_tgtd_serves_a_target_iscsi_ls_sees(tgtd_factory: TgtdFactory, iscsi_ls: None) -> None:
    tgtd = tgtd_factory()
    assert tgtd.running and tgtd.portal == f"127.0.0.1:{tgtd.port}"
    tid = tgtd.add_target(f"{IQN}:one", luns=2)
    assert tid == 1
    assert tgtd.add_target(f"{IQN}:two") == 2
    assert peers.iscsi_ls_targets(tgtd.portal) == {
        (tgtd.portal, 1, f"{IQN}:one"),
        (tgtd.portal, 1, f"{IQN}:two"),
    }
    assert "Backing store path" in tgtd.show()
    assert f"-C {tgtd.control_port}" in tgtd.log  # our command line is logged first


def test_shared_tgtd_fixture(tgtd: Tgtd, iscsi_ls: None) -> None:
    assert peers.iscsi_ls_targets(tgtd.portal) == {(tgtd.portal, 1, DISK_IQN)}


def test_null_lun_and_lun_count(tgtd_factory: TgtdFactory, iscsi_ls: None) -> None:
    tgtd = tgtd_factory()
    tgtd.add_target(f"{IQN}:null", null=True, luns=2)
    tgtd.add_target(f"{IQN}:no-luns", luns=0)
    # Each target's LUN 0 (the controller) is null-backed too: 2 + 2.
    assert tgtd.show().count("Backing store type: null") == 4
    assert len(peers.iscsi_ls_targets(tgtd.portal)) == 2


def test_chap_target_needs_credentials(tgtd_factory: TgtdFactory, iscsi_ls: None) -> None:
    tgtd = tgtd_factory()
    tid = tgtd.add_target(f"{IQN}:chap")
    tgtd.add_account("inuser", "inpass123456")
    tgtd.bind_account("inuser", tid=tid)
    expected = {(tgtd.portal, 1, f"{IQN}:chap")}
    # Discovery is open; the login iscsi-ls -s makes afterwards is not.
    assert peers.iscsi_ls_targets(tgtd.portal, show_luns=False) == expected
    with pytest.raises(peers.PeerError, match="Authentication failure"):
        peers.iscsi_ls_targets(tgtd.portal)
    with pytest.raises(peers.PeerError):
        peers.iscsi_ls_targets(tgtd.portal, user="inuser", password="wrong-password")
    assert peers.iscsi_ls_targets(tgtd.portal, user="inuser", password="inpass123456") == expected
    # Unbound again, no credentials are needed.
    tgtd.unbind_account("inuser", tid=tid)
    assert peers.iscsi_ls_targets(tgtd.portal) == expected


def test_mutual_and_discovery_chap(tgtd_factory: TgtdFactory, iscsi_ls: None) -> None:
    tgtd = tgtd_factory()
    tid = tgtd.add_target(f"{IQN}:mutual")
    tgtd.add_account("inuser", "inpass123456")
    tgtd.add_account("outuser", "outpass12345")
    for bind_tid in (tid, None):  # the target, and discovery sessions (no tid)
        tgtd.bind_account("inuser", tid=bind_tid)
        tgtd.bind_account("outuser", tid=bind_tid, outgoing=True)

    def ls(target_password: str) -> set[peers.Discovered]:
        return peers.iscsi_ls_targets(
            tgtd.portal,
            user="inuser",
            password="inpass123456",
            target_user="outuser",
            target_password=target_password,
        )

    with pytest.raises(peers.PeerError):  # discovery CHAP: no credentials, no list
        peers.iscsi_ls_targets(tgtd.portal, show_luns=False)
    with pytest.raises(peers.PeerError, match="CHAP_R"):  # the target's answer is wrong
        ls("not-the-secret")
    assert ls("outpass12345") == {(tgtd.portal, 1, f"{IQN}:mutual")}


def test_redirect_recipe(tgtd_factory: TgtdFactory, iscsi_ls: None) -> None:
    first = tgtd_factory()
    second = tgtd_factory(host="127.0.0.2")  # tgt never redirects to the initiator's own IP
    tid = first.add_target(f"{IQN}:moved")
    second.add_target(f"{IQN}:moved")
    first.redirect(tid, "127.0.0.2", second.port, reason="Permanent")
    assert first.target_params(tid) == {
        "RedirectAddress": "127.0.0.2",
        "RedirectPort": str(second.port),
        "RedirectReason": "Permanent",
    }
    sock, cls, detail, keys = raw_login(first.host, first.port, f"{IQN}:moved")
    sock.close()
    assert (cls, detail) == (1, 2)  # Target moved permanently (RFC 7143 §11.13.5)
    assert keys["TargetAddress"] == f"127.0.0.2:{second.port}"
    # libiscsi 1.19 refuses a permanent redirect ("Target moved permanently(258)") but
    # follows a temporary one to the second tgtd.
    with pytest.raises(peers.PeerError, match="moved permanently"):
        peers.iscsi_ls_targets(first.portal)
    first.redirect(tid, "127.0.0.2", second.port)
    sock, cls, detail, keys = raw_login(first.host, first.port, f"{IQN}:moved")
    sock.close()
    assert (cls, detail, keys["TargetAddress"]) == (1, 1, f"127.0.0.2:{second.port}")
    assert peers.iscsi_ls_targets(first.portal) == {(first.portal, 1, f"{IQN}:moved")}
    first.clear_redirect(tid)
    assert "MaxRecvDataSegmentLength" in first.target_params(tid)
    sock, cls, detail, _ = raw_login(first.host, first.port, f"{IQN}:moved")
    sock.close()
    assert (cls, detail) == (0, 0)


def test_target_params_and_portals(tgtd_factory: TgtdFactory, iscsi_ls: None) -> None:
    tgtd = tgtd_factory(iscsi_params="nop_interval=1,nop_count=3")
    tid = tgtd.add_target(f"{IQN}:params")
    tgtd.set_target_param(tid, "MaxRecvDataSegmentLength", 4096)
    tgtd.set_target_param(tid, "HeaderDigest", "CRC32C")
    params = tgtd.target_params(tid)
    assert params["MaxRecvDataSegmentLength"] == "4096"
    assert params["HeaderDigest"] == "CRC32C"
    assert params["nop_interval"] == "1" and params["nop_count"] == "3"
    extra = tgtd.add_portal("127.0.0.1")
    # SendTargets answers with the portal it was asked on.
    assert peers.iscsi_ls_targets(extra) == {(extra, 1, f"{IQN}:params")}
    tgtd.delete_portal(extra)
    with pytest.raises(peers.PeerError):
        peers.iscsi_ls_targets(extra, timeout=10)


def test_acl_by_name_is_or_with_address(tgtd_factory: TgtdFactory, iscsi_ls: None) -> None:
    tgtd = tgtd_factory()
    tid = tgtd.add_target(f"{IQN}:private", acl=None)
    tgtd.bind_initiator_name(tid, f"{IQN}:allowed")
    assert peers.iscsi_ls_targets(tgtd.portal, initiator_name=f"{IQN}:allowed")
    assert peers.iscsi_ls_targets(tgtd.portal, initiator_name=f"{IQN}:stranger") == set()
    sock, cls, detail, _ = raw_login(tgtd.host, tgtd.port, f"{IQN}:private", f"{IQN}:stranger")
    sock.close()
    assert (cls, detail) == (2, 3)  # Not found
    tgtd.bind_address(tid, "ALL")  # an address match admits anyone, whatever the name ACL
    assert peers.iscsi_ls_targets(tgtd.portal, initiator_name=f"{IQN}:stranger")
    tgtd.unbind_address(tid, "ALL")
    tgtd.unbind_initiator_name(tid, f"{IQN}:allowed")
    assert peers.iscsi_ls_targets(tgtd.portal, initiator_name=f"{IQN}:allowed") == set()


def test_sessions_and_drop_connections(tgtd_factory: TgtdFactory) -> None:
    tgtd = tgtd_factory()
    tid = tgtd.add_target(f"{IQN}:live")
    sock, cls, _detail, keys = raw_login(tgtd.host, tgtd.port, f"{IQN}:live")
    with sock:
        assert cls == 0 and keys["TargetPortalGroupTag"] == "1"
        (conn,) = tgtd.sessions(tid)
        assert (conn.tid, conn.cid, conn.initiator, conn.address) == (
            tid,
            0,
            INITIATOR,
            "127.0.0.1",
        )
        assert tgtd.drop_connections(tid) == 1
        sock.settimeout(5)
        with contextlib.suppress(ConnectionResetError):  # FIN or RST, either is a drop
            assert sock.recv(1) == b""
    deadline = time.monotonic() + 5
    while tgtd.sessions(tid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert tgtd.sessions(tid) == []
    assert tgtd.drop_connections(tid) == 0


def test_parse_connections() -> None:
    text = "Session: 3\n    Connection: 0\n        Initiator: iqn.x:y\n        IP Address: ::1\n"
    (conn,) = parse_connections(7, text)
    assert (conn.tid, conn.sid, conn.cid, conn.initiator, conn.address) == (
        7,
        3,
        0,
        "iqn.x:y",
        "::1",
    )


def test_two_instances_side_by_side(tmp_path: Path, iscsi_ls: None) -> None:
    require_tgt()
    with Tgtd(tmp_path) as a, Tgtd(tmp_path) as b:  # even in one workdir
        assert a.port != b.port and a.control_port != b.control_port
        a.add_target(f"{IQN}:a")
        b.add_target(f"{IQN}:b")
        assert peers.iscsi_ls_targets(a.portal) == {(a.portal, 1, f"{IQN}:a")}
        assert peers.iscsi_ls_targets(b.portal) == {(b.portal, 1, f"{IQN}:b")}
        images = sorted(tmp_path.glob("*.img"))
        assert len(images) == 2
        a.stop()
        a.stop()  # idempotent
        assert not a.running and all(not p.exists() for p in images[:1])
        assert peers.iscsi_ls_targets(b.portal) == {(b.portal, 1, f"{IQN}:b")}
    assert not b.running and not list(tmp_path.glob("*.img"))


def test_long_workdir_uses_a_short_socket_dir(tmp_path: Path) -> None:
    require_tgt()
    deep = tmp_path / ("d" * 120)
    with Tgtd(deep) as tgtd:
        assert len(str(tgtd.ipc_socket)) < 100 and tgtd.ipc_socket.parent.exists()
        tgtd.add_target(f"{IQN}:deep")
        assert f"{IQN}:deep" in tgtd.show()
    assert not tgtd.ipc_socket.parent.exists()


def test_ipv6_portal_and_iscsiadm_agree(
    tgtd_factory: TgtdFactory, tmp_path: Path, iscsi_ls: None, iscsiadm: None
) -> None:
    tgtd = tgtd_factory(host="::1")
    assert tgtd.portal == f"[::1]:{tgtd.port}"
    tgtd.add_target(f"{IQN}:v6")
    ls = peers.iscsi_ls_targets(tgtd.portal)
    assert ls == {(tgtd.portal, 1, f"{IQN}:v6")}
    assert peers.iscsiadm_discover(tgtd.portal, db=tmp_path / "oracle") == ls


def test_iscsiadm_discover_matches_iscsi_ls(
    tgtd_factory: TgtdFactory, tmp_path: Path, iscsi_ls: None, iscsiadm: None
) -> None:
    tgtd = tgtd_factory()
    db = tmp_path / "oracle"
    # (tgtd without any target drops discovery connections; with only a hidden one it
    # answers an empty list, which iscsiadm reports as exit 21.)
    hidden = tgtd.add_target(f"{IQN}:hidden", acl=None)
    assert peers.iscsiadm_discover(tgtd.portal, db=db) == set()
    assert peers.iscsi_ls_targets(tgtd.portal) == set()
    tgtd.bind_initiator_name(hidden, INITIATOR)
    for name in ("alpha", "beta", "gamma.with.dots"):
        tgtd.add_target(f"{IQN}:{name}")
    for initiator in (INITIATOR, f"{IQN}:other"):
        ls = peers.iscsi_ls_targets(tgtd.portal, initiator_name=initiator)
        adm = peers.iscsiadm_discover(tgtd.portal, db=db, initiator_name=initiator)
        assert adm == ls
        assert ((tgtd.portal, 1, f"{IQN}:hidden") in ls) is (initiator == INITIATOR)
    # Discovery CHAP through a discoverydb record.
    tgtd.add_account("discuser", "discpass1234")
    tgtd.bind_account("discuser")
    with pytest.raises(peers.PeerError):
        peers.iscsiadm_discover(tgtd.portal, db=db, user="discuser", password="wrong-pass12")
    adm = peers.iscsiadm_discover(tgtd.portal, db=db, user="discuser", password="discpass1234")
    assert adm == peers.iscsi_ls_targets(tgtd.portal, user="discuser", password="discpass1234")
    assert len(adm) == 3


def test_parsers() -> None:
    assert peers.parse_iscsi_ls(
        "Target:iqn.x:a Portal:[::1]:3260,1\nLun:0    Type:STORAGE_ARRAY_CONTROLLER\n"
        "Target:iqn.x:b Portal:127.0.0.1:3260,2\n"
    ) == {("[::1]:3260", 1, "iqn.x:a"), ("127.0.0.1:3260", 2, "iqn.x:b")}
    assert peers.parse_sendtargets("127.0.0.1:3260,1 iqn.x:a\n[::1]:3261,3 iqn.x:b\nnoise\n") == {
        ("127.0.0.1:3260", 1, "iqn.x:a"),
        ("[::1]:3261", 3, "iqn.x:b"),
    }


def test_tgtadm_errors_and_taken_port(tgtd_factory: TgtdFactory) -> None:
    tgtd = tgtd_factory()
    with pytest.raises(TgtadmError) as info:
        tgtd.delete_target(99)
    assert info.value.returncode != 0 and "--tid 99" in str(info.value)
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        started = time.monotonic()
        with pytest.raises(TgtdError, match="bind"):
            tgtd_factory(port=port)
        assert time.monotonic() - started < 5
    assert free_port("::1") > 0


# -- ScriptedTarget --------------------------------------------------------------------


def a_pdu(data: bytes = b"", ahs_words: int = 0, opcode: int = 0x04) -> bytes:
    bhs = bytearray(48)
    bhs[0] = opcode
    bhs[4] = ahs_words
    bhs[5:8] = len(data).to_bytes(3, "big")
    return bytes(bhs) + b"\xaa" * (4 * ahs_words) + data + b"\0" * (-len(data) % 4)


@pytest.fixture
def client() -> Iterator[list[socket.socket]]:
    socks: list[socket.socket] = []
    yield socks
    for s in socks:
        s.close()


def connect(target: ScriptedTarget, client: list[socket.socket]) -> socket.socket:
    sock = socket.create_connection((target.host, target.port), timeout=5)
    client.append(sock)
    return sock


def test_pdu_length_and_read_pdu() -> None:
    pdu = a_pdu(b"hello", ahs_words=2)
    assert pdu_length(pdu[:48]) == len(pdu) == 48 + 8 + 8
    assert pdu_length(pdu[:48], header_digest=True, data_digest=True) == len(pdu) + 8
    assert pdu_length(a_pdu()[:48], data_digest=True) == 48  # no data, no data digest
    left, right = socket.socketpair()
    with left, right:
        left.sendall(pdu + a_pdu(b"x") + b"\1\2\3\4" + b"\0" * 4)
        assert read_pdu(right) == pdu
        assert len(read_pdu(right, header_digest=True, data_digest=True)) == 48 + 4 + 4 + 4
        left.sendall(pdu[:20])
        with pytest.raises(TimeoutError):
            read_pdu(right, timeout=0.2)
        left.close()
        with pytest.raises(PeerClosed):
            read_pdu(right)


def test_silent_target(scripted_target: ScriptedTargetFactory, client: list[socket.socket]) -> None:
    got: list[bytes] = []
    target = scripted_target(silent(record=got))
    sock = connect(target, client)
    sock.sendall(a_pdu(b"ping"))
    sock.settimeout(0.3)
    with pytest.raises(TimeoutError):
        sock.recv(1)
    assert got == [a_pdu(b"ping")] and target.connections == 1
    started = time.monotonic()
    target.stop()  # the behaviour is blocked reading: stop() must not wait for it
    assert time.monotonic() - started < 1
    sock.settimeout(5)
    assert sock.recv(1) == b""
    assert target.errors == []


def test_send_bytes_target(
    scripted_target: ScriptedTargetFactory, client: list[socket.socket]
) -> None:
    keep = scripted_target(send_bytes(b"\x23" + b"\0" * 47))
    sock = connect(keep, client)
    sock.sendall(a_pdu())
    assert read_pdu(sock) == b"\x23" + b"\0" * 47
    sock.settimeout(0.3)
    with pytest.raises(TimeoutError):
        sock.recv(1)  # still open
    closing = scripted_target(send_bytes(b"garbage", close=True), host="::1")
    assert closing.portal == f"[::1]:{closing.port}"
    sock = socket.create_connection(("::1", closing.port), timeout=5)
    client.append(sock)
    sock.sendall(a_pdu(b"login"))
    assert sock.recv(100) == b"garbage"
    assert sock.recv(100) == b""
    assert keep.errors == closing.errors == []


def test_close_immediately_and_reset(
    scripted_target: ScriptedTargetFactory, client: list[socket.socket]
) -> None:
    fin = connect(scripted_target(close_immediately()), client)
    assert fin.recv(1) == b""
    with pytest.raises(ConnectionResetError):
        # Under load the RST can even beat connect() returning: a reset all the same.
        rst = connect(scripted_target(close_immediately(reset=True)), client)
        rst.recv(1)
        rst.recv(1)  # the RST may land just after an empty read


def test_behaviour_errors_are_collected(client: list[socket.socket]) -> None:
    def broken(conn: socket.socket) -> None:
        read_pdu(conn)
        raise ValueError("bad script")

    def hangs_up(conn: socket.socket) -> None:
        read_pdu(conn)  # the client closes first: a normal end, not an error

    with ScriptedTarget(broken) as target:
        connect(target, client).sendall(a_pdu())
        deadline = time.monotonic() + 5
        while not target.errors and time.monotonic() < deadline:
            time.sleep(0.01)
    assert [str(e) for e in target.errors] == ["bad script"]
    with ScriptedTarget(hangs_up) as target:
        connect(target, client).close()
    assert target.errors == []


# -- the plugin's rules ----------------------------------------------------------------

SKIPPING = """
import pytest

def test_skips():
    pytest.skip("no frobnicator")

@pytest.mark.xfail(reason="known")
def test_xfails():
    assert False

def test_passes():
    pass

def test_needs_tgtd(tgtd_factory):
    tgtd_factory()
"""


def test_skips_fail_under_ci(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    pytester.makepyfile(SKIPPING)
    monkeypatch.setenv("PATH", str(pytester.path))  # no tgtd on PATH
    monkeypatch.delenv("ISCSIKIT_ALLOW_SKIPS", raising=False)
    monkeypatch.setenv("CI", "true")
    result = pytester.runpytest("-rA")
    result.assert_outcomes(passed=1, failed=2, xfailed=1)
    result.stdout.fnmatch_lines(["*skipped under CI=true*no frobnicator*"])
    result.stdout.fnmatch_lines(["*tgt not installed: tgtd, tgtadm*"])
    monkeypatch.setenv("ISCSIKIT_ALLOW_SKIPS", "1")
    pytester.runpytest().assert_outcomes(passed=1, skipped=2, xfailed=1)
    monkeypatch.delenv("ISCSIKIT_ALLOW_SKIPS")
    monkeypatch.delenv("CI")
    pytester.runpytest().assert_outcomes(passed=1, skipped=2, xfailed=1)


def test_module_skip_fails_under_ci(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytester.makepyfile("import pytest\npytest.importorskip('no_such_module_xyz')\n")
    monkeypatch.delenv("ISCSIKIT_ALLOW_SKIPS", raising=False)
    monkeypatch.setenv("CI", "true")
    result = pytester.runpytest()
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*skipped under CI=true*no_such_module_xyz*"])


def test_failing_test_shows_tgtd_log(pytester: pytest.Pytester) -> None:
    require_tgt()
    pytester.makepyfile(
        "def test_fails(tgtd_factory):\n    tgtd_factory().add_target('iqn.2024-01.x:y')\n"
        "    assert False\n"
    )
    result = pytester.runpytest()
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*tgtd 127.0.0.1:* log*", "*+ tgtd -f -C*"])
