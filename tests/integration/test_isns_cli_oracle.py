"""``-t isns`` in ``-m discovery`` / ``-m discoverydb`` against the real iscsiadm 2.1.8.

iscsiadm queries iSNS in userspace (libisns), so the oracle runs it against the same
private isnsd as ``iscsikit-adm``; tgtd registers one target through iSNS and isnsadm
another (with the IPv4-compatible address).  Both tools start from the same database
(an iface ``ora`` carrying the initiator name, iscsid.conf with compiled defaults): the
printed output and exit codes must be identical, and the databases afterwards equal --
for ``-m discovery -t isns`` too, which stores no server record, so both link the nodes
old-style from ``isns/<target>,<ip>,<port>,<tpgt>,<iface>``.  ``-l`` logs in through
iscsikitd to what iSNS found.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from iscsikit.testing import oracle as oracle_mod
from iscsikit.testing.daemon import RunningDaemon
from iscsikit.testing.isnsd import Isnsd, enable_isns, isns_missing
from iscsikit.testing.oracle import Oracle
from iscsikit.testing.oracle import db_tree as oracle_db_tree
from iscsikit.testing.tgtd import Tgtd, tgt_missing

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(bool(isns_missing()), reason=f"open-isns missing: {isns_missing()}"),
    pytest.mark.skipif(bool(tgt_missing()), reason="tgt not installed"),
]

IQN = "iqn.2024-01.test.iscsikit"
REG, ADM = f"{IQN}:isns-reg", f"{IQN}:isns-adm"
INI = "iqn.2004-10.com.example:oracle"


def db_tree(root: Path) -> dict[str, str]:
    return oracle_db_tree(root, skip=("ifaces",))


@pytest.fixture(scope="module")
def peers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Isnsd, Tgtd]]:
    if reason := oracle_mod.unavailable():
        pytest.skip(reason)
    base = tmp_path_factory.mktemp("isns-peers")
    with Isnsd(base / "isns") as srv, Tgtd(base / "tgt") as tgtd:
        enable_isns(tgtd, srv)
        tgtd.add_target(REG)
        srv.register_target(ADM, "127.0.0.1", 3299, tag=5)
        deadline = time.monotonic() + 10
        while REG not in srv.query_targets(INI) and time.monotonic() < deadline:
            time.sleep(0.1)
        yield srv, tgtd


@pytest.fixture
def base(tmp_path: Path) -> Path:
    """A database made by iscsiadm: iface ``ora`` with the initiator name."""
    db = tmp_path / "db"
    (db / "etc-iscsi").mkdir(parents=True)
    (db / "etc-iscsi" / "iscsid.conf").write_text("iscsid.startup = /bin/true\n")
    oracle = Oracle(db)
    for argv in (
        ("-m", "iface", "-I", "ora", "-o", "new"),
        ("-m", "iface", "-I", "ora", "-o", "update", "-n", "iface.initiatorname", "-v", INI),
    ):
        assert oracle.run(*argv).returncode == 0
    return db


def run_both(
    db: Path, work: Path, *argvs: tuple[str, ...]
) -> tuple[list[tuple[int, str]], list[tuple[int, str]], dict[str, str], dict[str, str]]:
    """Run each argv with iscsiadm and iscsikit-adm on copies of ``db``."""
    theirs_base, ours_root = work / "oracle", work / "root"
    shutil.copytree(db, theirs_base, symlinks=True)
    shutil.copytree(db / "etc-iscsi", ours_root / "etc" / "iscsi", symlinks=True)
    (ours_root / "sys" / "firmware").mkdir(parents=True)
    theirs, ours = [], []
    for argv in argvs:
        r = Oracle(theirs_base).run(*argv, host_network=True)
        theirs.append((r.returncode, r.stdout))
        p = subprocess.run(
            [sys.executable, "-m", "iscsikit", *argv],
            capture_output=True,
            text=True,
            env={**os.environ, "ISCSIKIT_ROOT": str(ours_root)},
            timeout=120,
            check=False,
        )
        assert "Traceback" not in p.stderr, p.stderr
        ours.append((p.returncode, p.stdout))
    return theirs, ours, db_tree(theirs_base / "etc-iscsi"), db_tree(ours_root / "etc" / "iscsi")


def test_discoverydb_discover_equals_iscsiadm(
    peers: tuple[Isnsd, Tgtd], base: Path, tmp_path: Path
) -> None:
    srv, _ = peers
    argvs = (
        ("-m", "discoverydb", "-t", "isns", "-p", srv.portal, "-D", "-I", "ora"),
        ("-m", "discoverydb", "-t", "isns", "-p", srv.portal, "-o", "show"),
        ("-m", "discovery", "-P", "1"),
        ("-m", "discovery"),
        ("-m", "node", "-P", "1"),
    )
    theirs, ours, their_tree, our_tree = run_both(base, tmp_path, *argvs)
    assert ours == theirs
    assert theirs[0][0] == 0 and REG in theirs[0][1] and ADM in theirs[0][1]
    assert our_tree == their_tree


def test_discovery_mode_equals_iscsiadm(
    peers: tuple[Isnsd, Tgtd], base: Path, tmp_path: Path
) -> None:
    srv, tgtd = peers
    argvs = (
        ("-m", "discovery", "-t", "isns", "-p", srv.portal, "-I", "ora"),
        ("-m", "discovery", "-t", "isns", "-p", srv.portal, "-I", "ora", "-P", "1"),
        ("-m", "discovery", "-P", "1"),
        ("-m", "discovery"),
    )
    theirs, ours, their_tree, our_tree = run_both(base, tmp_path, *argvs)
    assert ours == theirs
    assert f"127.0.0.1:{tgtd.port},1 {REG}\n" in theirs[0][1]
    assert "127.0.0.1:3299,5 " + ADM + "\n" in theirs[0][1]
    old_style = {k for k in their_tree if k.startswith("isns/") and k.count(",") == 4}
    assert old_style == {
        f"isns/{REG},127.0.0.1,{tgtd.port},1,ora",
        f"isns/{ADM},127.0.0.1,3299,5,ora",
    }
    assert our_tree == their_tree


def test_unreachable_server_equals_iscsiadm(base: Path, tmp_path: Path) -> None:
    if reason := oracle_mod.unavailable():
        pytest.skip(reason)
    argv = ("-m", "discovery", "-t", "isns", "-p", "127.0.0.1:1", "-I", "ora")
    theirs, ours, their_tree, our_tree = run_both(base, tmp_path, argv)
    assert ours == theirs == [(25, "")]
    assert our_tree == their_tree


def test_discovery_login_through_isns(peers: tuple[Isnsd, Tgtd]) -> None:
    srv, tgtd = peers
    with RunningDaemon() as daemon:
        (daemon.root / "etc" / "iscsi").mkdir(parents=True, exist_ok=True)
        (daemon.root / "etc" / "iscsi" / "initiatorname.iscsi").write_text(f"InitiatorName={INI}\n")
        # isnsadm's target has nothing behind its portal: that login fails, tgtd's works.
        p = daemon.adm("-m", "discovery", "-t", "isns", "-p", srv.portal, "-l")
        assert (
            f"Login to [iface: default, target: {REG}, portal: 127.0.0.1,{tgtd.port}] successful."
            in p.stdout
        ), (p.stdout, p.stderr)
        sessions = daemon.adm("-m", "session")
        assert f"127.0.0.1:{tgtd.port},1 {REG}" in sessions.stdout
        assert daemon.adm("-m", "node", "-T", REG, "-u").returncode == 0
