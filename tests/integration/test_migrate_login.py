"""linux-iscsi's iscsi.conf migrated, then used: discovery and login to a private tgtd
that needs what the file configured (mutual CHAP for discovery and login, CRC32C
digests, PDU sizes), through iscsikitd and iscsikit-adm on the userspace data path; the
migrated records read back by the real iscsiadm 2.1.8 (the oracle).
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from iscsikit.testing import oracle as oracle_mod
from iscsikit.testing.daemon import RunningDaemon
from iscsikit.testing.oracle import Oracle
from iscsikit.testing.tgtd import Tgtd, tgt_missing

pytestmark = pytest.mark.integration

IQN = "iqn.2026-12.test.migrate:disk1"
OTHER = "iqn.2026-12.test.migrate:disk2"
NAMED = "iqn.2026-12.test.migrate:named"
HOST_NAME = "iqn.2026-12.test.migrate:linux-iscsi-host"
USER, SECRET = "migrate-user", "migrate-secret-1"
TUSER, TSECRET = "migrate-target", "migrate-target-secret-2"


@pytest.fixture(scope="module")
def target(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Tgtd, int]]:
    if tgt_missing():
        pytest.skip(f"tgt is not installed: {tgt_missing()}")
    with Tgtd(tmp_path_factory.mktemp("migrate")) as tgtd:
        tid = tgtd.add_target(IQN, luns=1, lun_size=4 << 20)
        tgtd.add_target(OTHER, luns=1, lun_size=4 << 20)
        tgtd.add_account(USER, SECRET)
        tgtd.add_account(TUSER, TSECRET)
        for t in (None, tid):  # discovery sessions and the target: mutual CHAP
            tgtd.bind_account(USER, tid=t)
            tgtd.bind_account(TUSER, tid=t, outgoing=True)
        # Offered CRC32C only, tgt accepts nothing else (see iscsikit.demo).
        tgtd.set_target_param(tid, "HeaderDigest", "CRC32C")
        tgtd.set_target_param(tid, "DataDigest", "CRC32C")
        tgtd.set_target_param(tid, "MaxRecvDataSegmentLength", 32768)
        # Only the migrated initiator name may see and log in to this one.
        named = tgtd.add_target(NAMED, luns=1, lun_size=4 << 20, acl=None)
        tgtd.bind_initiator_name(named, HOST_NAME)
        # linux-iscsi logs in with the CHAP of the discovery that found the target.
        tgtd.bind_account(USER, tid=named)
        tgtd.bind_account(TUSER, tid=named, outgoing=True)
        yield tgtd, tid


def _conf(tgtd: Tgtd) -> str:
    return f"""\
# /etc/iscsi.conf of a linux-iscsi host
Username={USER}
Password={SECRET}
IncomingUsername={TUSER}
IncomingPassword="{TSECRET}"
LoginTimeout=20s
DiscoveryAddress={tgtd.host}:{tgtd.port}
TargetName={IQN}
    HeaderDigest=always
    DataDigest=always
    MaxRecvDataSegmentLength=65536
    FirstBurstLength=16384
    MaxBurstLength=131072
TargetName={OTHER}
    Enabled=no
"""


def _migrate(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "iscsikit.tools.migrate", "--root", str(root), *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def _ok(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, f"exit {result.returncode}: {result.stdout}{result.stderr}"
    return result.stdout


def test_migrated_settings_discover_and_log_in(target: tuple[Tgtd, int], tmp_path: Path) -> None:
    tgtd, _ = target
    with RunningDaemon() as daemon:
        root = daemon.root
        (root / "etc").mkdir(parents=True, exist_ok=True)
        (root / "etc/iscsi.conf").write_text(_conf(tgtd))
        # Before the migration: the target wants CHAP for discovery already.
        assert daemon.adm("-m", "discovery", "-t", "st", "-p", tgtd.portal).returncode == 24
        first = _migrate(root)
        assert first.returncode == 1  # the two TargetName sections match no node yet
        assert first.stderr.count("pending:") == 2
        # The stored record (its CHAP) discovers; nodes get the iscsid.conf template.
        _ok(daemon.adm("-m", "discoverydb", "-t", "st", "-p", tgtd.portal, "-D"))
        node = _ok(daemon.adm("-m", "node", "-T", IQN, "-o", "show"))
        assert "node.session.auth.username = migrate-user" in node
        assert "node.startup = automatic" in node
        assert "node.conn[0].iscsi.HeaderDigest = None" in node  # not applied yet
        second = _migrate(root)
        _ok(second)
        assert "update node iqn.2026-12.test.migrate:disk1" in second.stdout
        node = _ok(daemon.adm("-m", "node", "-T", IQN, "-o", "show"))
        assert "node.conn[0].iscsi.HeaderDigest = CRC32C" in node
        assert "node.conn[0].iscsi.MaxRecvDataSegmentLength = 65536" in node
        other = _ok(daemon.adm("-m", "node", "-T", OTHER, "-o", "show"))
        assert "node.startup = manual" in other  # Enabled=no
        _ok(daemon.adm("-m", "node", "-T", IQN, "-p", tgtd.portal, "-l"))
        p2 = _ok(daemon.adm("-m", "session", "-P", "2"))
        assert re.search(r"HeaderDigest: CRC32C", p2), p2
        assert re.search(r"DataDigest: CRC32C", p2), p2
        assert re.search(r"MaxRecvDataSegmentLength: 65536", p2), p2
        assert re.search(r"FirstBurstLength: 16384", p2), p2
        assert re.search(r"MaxBurstLength: 131072", p2), p2  # min(ours, tgt 262144)
        _ok(daemon.adm("-m", "node", "-T", IQN, "-p", tgtd.portal, "-u"))
        # Read back by the real iscsiadm.
        reason = oracle_mod.unavailable()
        if reason is not None:
            pytest.skip(reason)
        oracle = Oracle(tmp_path / "oracle")
        for sub in ("send_targets", "nodes"):
            shutil.copytree(root / "etc/iscsi" / sub, oracle.etc / sub, symlinks=True)
        disc = oracle.run("-m", "discoverydb", "-t", "st", "-p", tgtd.portal, "-o", "show")
        assert disc.returncode == 0, disc.stderr
        shown = disc.stdout.splitlines()
        assert "discovery.sendtargets.auth.authmethod = CHAP" in shown
        assert "discovery.sendtargets.auth.username = migrate-user" in shown
        assert "discovery.sendtargets.auth.username_in = migrate-target" in shown
        assert "discovery.sendtargets.timeo.login_timeout = 20" in shown
        nodes = oracle.run("-m", "node", "-T", IQN, "-o", "show")
        assert nodes.returncode == 0, nodes.stderr
        lines = nodes.stdout.splitlines()
        for expected in (
            "node.startup = automatic",
            "node.session.auth.authmethod = CHAP",
            "node.session.auth.username_in = migrate-target",
            "node.conn[0].timeo.login_timeout = 20",
            "node.conn[0].iscsi.HeaderDigest = CRC32C",
            "node.conn[0].iscsi.DataDigest = CRC32C",
            "node.conn[0].iscsi.MaxRecvDataSegmentLength = 65536",
            "node.session.iscsi.FirstBurstLength = 16384",
            "node.session.iscsi.MaxBurstLength = 131072",
        ):
            assert expected in lines, expected
        # iscsikit-adm prints the same record as iscsiadm does.
        ours = _ok(daemon.adm("-m", "node", "-T", IQN, "-o", "show"))
        assert ours == nodes.stdout


def test_discover_in_one_run_with_the_old_initiator_name(target: tuple[Tgtd, int]) -> None:
    tgtd, _ = target
    with RunningDaemon() as daemon:
        root = daemon.root
        (root / "etc").mkdir(parents=True, exist_ok=True)
        conf = _conf(tgtd) + f"TargetName={NAMED}\n    DataDigest=prefer-on\n"
        (root / "etc/iscsi.conf").write_text(conf)
        (root / "etc/initiatorname.iscsi").write_text(f"InitiatorName={HOST_NAME}\n")
        before = sorted(str(p.relative_to(root)) for p in root.rglob("*"))
        dry = _migrate(root, "--dry-run", "--discover")
        assert dry.returncode == 0, dry.stdout + dry.stderr
        assert sorted(str(p.relative_to(root)) for p in root.rglob("*")) == before
        assert f"would add node {IQN} {tgtd.portal},1 default:" in dry.stdout
        assert f"would add node {NAMED} {tgtd.portal},1 default:" in dry.stdout
        assert "node.conn[0].iscsi.DataDigest = CRC32C,None" in dry.stdout
        assert f"would write {root}/etc/iscsi/initiatorname.iscsi" in dry.stdout
        run = _migrate(root, "--discover")
        assert run.returncode == 0, run.stdout + run.stderr
        assert "discovered 3 portal(s)" in run.stdout  # NAMED seen: the name migrated
        assert not any("pending" in line for line in run.stderr.splitlines())
        node = _ok(daemon.adm("-m", "node", "-T", IQN, "-o", "show"))
        assert "node.conn[0].iscsi.HeaderDigest = CRC32C" in node
        for name in (IQN, NAMED):
            _ok(daemon.adm("-m", "node", "-T", name, "-p", tgtd.portal, "-l"))
        listing = _ok(daemon.adm("-m", "session"))
        assert IQN in listing and NAMED in listing
        _ok(daemon.adm("-m", "node", "-u"))


def test_discover_failure_is_reported(tmp_path: Path) -> None:
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc/iscsi.conf").write_text("DiscoveryAddress=127.0.0.1:1\n")
    run = _migrate(tmp_path, "--discover")
    assert run.returncode == 1
    assert "discovery at 127.0.0.1:1 failed (" in run.stderr
    assert "add discovery record sendtargets 127.0.0.1:1" in run.stdout
