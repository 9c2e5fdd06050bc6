"""The session service: SessionInfo from sysfs (open-iscsi's parsing), the no-daemon
errors, and the choice between sysfs and the daemon client."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from iscsikit.config.paths import resolve_paths
from iscsikit.errors import IscsiErr, IscsiError
from iscsikit.manager.sessions import (
    DaemonSessionService,
    IscsidNotConnectedError,
    SessionInfo,
    SysfsSessionService,
    session_service,
    session_to_json,
)
from iscsikit.records import NodeRecord
from iscsikit.sysfs import SysfsContext
from iscsikit.sysfs.fake import FakeSession, FakeSysfs, sample_kernel


class _Env:
    def __init__(self, root: Path) -> None:
        self.paths = resolve_paths(root=root)


def test_session_info_from_sysfs(tmp_path: Path) -> None:
    sample_kernel(tmp_path)
    sessions = {s.sid: s for s in SysfsSessionService(SysfsContext(tmp_path)).sessions()}
    assert list(sessions) == [1, 10, 2, 3]
    one = sessions[1]
    assert (one.transport, one.state, one.conn_state, one.internal_state) == (
        "tcp",
        "LOGGED_IN",
        "Unknown",
        "Unknown",
    )
    assert (one.iface, one.iface_ipaddress, one.iface_hwaddress, one.host_no) == (
        "default",
        "192.0.2.1",
        "default",
        2,
    )
    assert one.params["HeaderDigest"] == "None" and one.params["ImmediateData"] == "Yes"
    assert [(d.lun, d.disk, d.state) for d in one.devices] == [
        (0, "sdb", "running"),
        (1, "sdc", "offline"),
        (2, None, "running"),
    ]
    ten = sessions[10]
    assert (ten.address, ten.port, ten.initiator_name, ten.params["HeaderDigest"]) == (
        "fd00::5",
        3261,
        "iqn.host:h",
        "CRC32C",
    )
    assert ten.timeout("recovery_tmo") == 0 and ten.timeout("abort_tmo") == 0  # "off", "(null)"
    three = sessions[3]
    assert three.iface == "tcp.00:0e:1e:aa:bb:cc.ipv4.0" and three.iface_ipaddress == "default"
    two = sessions[2]
    assert (two.state, two.username, two.password_in) == ("FAILED", "joe", "insecret")


def test_timeouts_missing_read_as_unknown(tmp_path: Path) -> None:
    f = FakeSysfs(tmp_path)
    f.add_transport()
    f.add_session(FakeSession(4, "iqn.t:x", "10.0.0.1"))
    (f.sys / "class/iscsi_session/session4/abort_tmo").unlink()
    (info,) = SysfsSessionService(SysfsContext(tmp_path)).sessions()
    assert info.timeout("abort_tmo") == -1 and info.timeout("nonsense") == -1


def test_no_daemon(tmp_path: Path) -> None:
    sample_kernel(tmp_path)
    service = session_service(_Env(tmp_path))
    assert isinstance(service, SysfsSessionService)
    info = service.sessions()[0]
    for call in (lambda: service.logout(info), lambda: service.stats(info),
                 lambda: service.login(NodeRecord.new("iqn.t:x", "10.0.0.1"))):  # fmt: skip
        with pytest.raises(IscsidNotConnectedError) as exc:
            call()
        assert exc.value.code == IscsiErr.ISCSID_NOTCONN and "iscsikitd is not running" in str(
            exc.value
        )
    service.rescan(info)
    gone = type(info)(**{**info.__dict__, "sid": 77})
    with pytest.raises(IscsiError):
        service.rescan(gone)


_WITH_ISCSID = """
import socket, sys
from pathlib import Path
from iscsikit.ipc.iscsid import ISCSID_SOCKET
from iscsikit.manager.sessions import IscsidNotConnectedError, SysfsSessionService
from iscsikit.sysfs import SysfsContext
root = Path(sys.argv[1])
service = SysfsSessionService(SysfsContext(root))
info = service.sessions()[0]
def message():
    try:
        service.logout(info)
    except IscsidNotConnectedError as exc:
        return str(exc)
print(message())
iscsid = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
iscsid.bind(ISCSID_SOCKET)
iscsid.listen()
print(message())
"""


@pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("unshare") is None, reason="needs root and unshare"
)
def test_no_daemon_names_a_running_iscsid(tmp_path: Path) -> None:
    """With open-iscsi's iscsid running, the session is its own, and the error says so.

    iscsid's socket is abstract, so the stand-in listens in a private network namespace."""
    sample_kernel(tmp_path)
    out = subprocess.run(
        ["unshare", "-n", sys.executable, "-c", _WITH_ISCSID, str(tmp_path)],
        capture_output=True, text=True, timeout=60, check=True,
    ).stdout.splitlines()  # fmt: skip
    assert len(out) == 2
    alone, beside_iscsid = out
    assert "iscsikitd is not running" in alone and "iscsid is running" not in alone
    assert beside_iscsid.startswith(alone)
    assert "open-iscsi's iscsid is running and its sessions are its own" in beside_iscsid


def test_daemon_socket_picks_the_daemon_client(tmp_path: Path) -> None:
    env = _Env(tmp_path)
    sock = env.paths.run_dir / "iscsikitd.sock"
    sock.parent.mkdir(parents=True)
    sock.touch()
    service = session_service(env)
    assert isinstance(service, DaemonSessionService)
    info_less = [service.sessions, lambda: service.login(NodeRecord.new("iqn.t:x", "10.0.0.1"))]
    for call in info_less:
        # A socket file nobody listens on: "could not connect to iscsid" (20).
        with pytest.raises(IscsidNotConnectedError) as caught:
            call()
        assert caught.value.code == 20


class _ScriptedDaemon(DaemonSessionService):
    """The daemon's answers without a daemon: ``owned`` are its sessions."""

    def __init__(self, sysfs: SysfsSessionService, owned: list[SessionInfo]) -> None:
        super().__init__(Path("/nonexistent.sock"), sysfs)
        self.owned = owned
        self.requests: list[tuple[str, dict[str, object]]] = []

    def _call(self, op: str, *, timeout: float | None = None, **args: object) -> object:
        self.requests.append((op, args))
        if op == "sessions":
            return [session_to_json(s) for s in self.owned]
        return None


def test_logout_of_a_daemon_kernel_session_goes_to_the_daemon_without_a_listing(
    tmp_path: Path,
) -> None:
    sample_kernel(tmp_path)
    sysfs = SysfsSessionService(SysfsContext(tmp_path))
    mine, foreign = sysfs.sessions()[0], sysfs.sessions()[1]
    # A fresh service, as after a login returned ``mine``: nothing listed yet.
    service = _ScriptedDaemon(sysfs, owned=[mine])
    service.logout(mine)
    assert service.requests == [("sessions", {}), ("logout", {"sid": mine.sid})]
    # A kernel session the daemon does not own is open-iscsi's: sysfs, not the daemon.
    with pytest.raises(IscsidNotConnectedError):
        service.logout(foreign)
    assert service.requests[-1] == ("sessions", {})


def test_a_newer_daemons_extra_fields_are_ignored_at_every_level(tmp_path: Path) -> None:
    from iscsikit.manager.sessions import session_from_json

    sample_kernel(tmp_path)
    info = SysfsSessionService(SysfsContext(tmp_path)).sessions()[0]
    doc = session_to_json(info)
    doc["from_the_future"] = 1
    doc["devices"][0]["from_the_future"] = 2
    doc["exports"] = [{"lun": 1, "socket": "/run/x.sock", "from_the_future": 3}]
    back = session_from_json(doc)
    assert back.devices == info.devices
    assert [(e.lun, e.socket) for e in back.exports] == [(1, "/run/x.sock")]
