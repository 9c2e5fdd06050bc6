"""iscsikit.open_session_lun: the Python API opens a LUN of a session iscsikitd owns.

A real tgtd and a real iscsikitd; the sessions are logged in with ``iscsikit-adm`` as a
user would, then opened from Python by sid, by target (and portal), written unaligned, read
back and checked in tgtd's backing file; LunIO over it; the errors for no daemon, an
unknown sid or target, a LUN the session does not have, an ambiguous choice.
"""

from __future__ import annotations

import hashlib
import io
import os
import re
import shutil
from collections.abc import Iterator

import pytest

import iscsikit
from iscsikit.errors import (
    InvalidParameterError,
    IscsiErr,
    IscsiError,
    NoObjectsFoundError,
    SessionNotFoundError,
)
from iscsikit.lun.fileio import LunIO
from iscsikit.nbd.session_lun import SessionLun, open_session_lun
from iscsikit.testing.daemon import RunningDaemon, short_root
from iscsikit.testing.tgtd import Tgtd

pytestmark = pytest.mark.integration

IQN = "iqn.2024-01.test.sessionlun:disk"
LUN_SIZE = 8 << 20


@pytest.fixture(scope="module")
def target(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Tgtd]:
    with Tgtd(tmp_path_factory.mktemp("sessionlun")) as tgtd:
        tgtd.add_target(f"{IQN}1", tid=1, lun_size=LUN_SIZE)
        tgtd.add_target(f"{IQN}2", tid=2, luns=2, lun_size=LUN_SIZE)
        yield tgtd


@pytest.fixture(scope="module")
def daemon(target: Tgtd) -> Iterator[RunningDaemon]:
    """One daemon with a session to each target, logged in by the command line."""
    with RunningDaemon() as d:
        for args in (
            ("-m", "discovery", "-t", "st", "-p", target.portal),
            ("-m", "node", "-l"),
        ):
            result = d.adm(*args)
            assert result.returncode == 0, f"{result.stdout}{result.stderr}"
        yield d


def sid_of(daemon: RunningDaemon, iqn: str) -> int:
    listing = daemon.adm("-m", "session").stdout
    found = re.search(rf"^tcp: \[(\d+)\] \S+ {re.escape(iqn)} ", listing, re.M)
    assert found, listing
    return int(found.group(1))


def test_open_by_sid_write_unaligned_read_back_in_the_backing_file(
    daemon: RunningDaemon, target: Tgtd
) -> None:
    sid = sid_of(daemon, f"{IQN}1")
    data = os.urandom(300_001)
    offset = 3 * 4096 + 17
    with iscsikit.open_session_lun(1, sid=sid, root=daemon.root) as lun:
        assert isinstance(lun, SessionLun)
        assert (lun.sid, lun.target, lun.lun) == (sid, f"{IQN}1", 1)
        assert (lun.size, lun.block_size, lun.read_only) == (LUN_SIZE, 512, False)
        assert lun.write(offset, data) == len(data)
        lun.flush()
        assert lun.read(offset, len(data)) == data
        buf = bytearray(1000)
        assert lun.readinto(offset + 5, buf) == 1000 and bytes(buf) == data[5:1005]
        lun.write_zeroes(offset, 100)
    assert lun.closed
    backing = target.backing_path(1).read_bytes()
    assert backing[offset : offset + 100] == bytes(100)
    assert backing[offset + 100 : offset + len(data)] == data[100:]


def test_open_by_target_and_portal_sees_the_same_data(
    daemon: RunningDaemon, target: Tgtd, monkeypatch: pytest.MonkeyPatch
) -> None:
    marker = os.urandom(4096)
    with open_session_lun(1, target=f"{IQN}1", root=daemon.root) as lun:
        lun.write(1 << 20, marker, fua=True)
    monkeypatch.setenv("ISCSIKIT_ROOT", str(daemon.root))  # root= defaults to it
    with open_session_lun(target=f"{IQN}1", portal=target.portal) as lun:
        assert lun.read(1 << 20, 4096) == marker
    with open_session_lun(2, target=f"{IQN}2", root=daemon.root) as lun2:
        assert lun2.lun == 2 and lun2.size == LUN_SIZE
        lun2.write(0, marker)
        lun2.flush()
    assert target.backing_path(2, 2).read_bytes()[:4096] == marker
    assert target.backing_path(2, 1).read_bytes()[:4096] == bytes(4096)


def test_lunio_over_a_session_lun(daemon: RunningDaemon, target: Tgtd) -> None:
    payload = os.urandom(1 << 20) + b"tail"
    with open_session_lun(1, target=f"{IQN}1", root=daemon.root) as lun:
        f = LunIO(lun)
        f.seek(5 << 20)
        shutil.copyfileobj(io.BytesIO(payload), f)
        f.flush()
        f.seek(5 << 20)
        assert hashlib.sha256(f.read(len(payload))).digest() == hashlib.sha256(payload).digest()
        assert f.seek(0, os.SEEK_END) == LUN_SIZE
    backing = target.backing_path(1).read_bytes()
    assert backing[5 << 20 : (5 << 20) + len(payload)] == payload


def test_no_daemon_is_exit_20() -> None:
    root = short_root()
    try:
        with pytest.raises(IscsiError) as info:
            open_session_lun(1, sid=1, root=root)
        assert info.value.code == IscsiErr.ISCSID_NOTCONN
    finally:
        shutil.rmtree(root, ignore_errors=True)


def test_unknown_session_lun_and_ambiguity(daemon: RunningDaemon) -> None:
    with pytest.raises(SessionNotFoundError) as info:
        open_session_lun(1, sid=999, root=daemon.root)
    assert info.value.code == IscsiErr.SESS_NOT_FOUND
    with pytest.raises(SessionNotFoundError):
        open_session_lun(1, target=f"{IQN}9", root=daemon.root)
    with pytest.raises(SessionNotFoundError):  # the right target, another portal
        open_session_lun(1, target=f"{IQN}1", portal="127.0.0.2:1", root=daemon.root)
    sid = sid_of(daemon, f"{IQN}1")
    with pytest.raises(NoObjectsFoundError, match="no exported LUN 7") as lun_info:
        open_session_lun(7, sid=sid, root=daemon.root)
    assert lun_info.value.code == IscsiErr.NO_OBJS_FOUND
    with pytest.raises(InvalidParameterError, match="2 sessions match") as many:
        open_session_lun(1, root=daemon.root)  # two sessions: say which
    assert many.value.code == IscsiErr.INVAL
