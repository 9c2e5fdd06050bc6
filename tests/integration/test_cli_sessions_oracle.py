"""Session, host and fw modes against the real iscsiadm 2.1.8: same stdout, same exit code.

Two sets of invocations:

* *no objects*: no sessions, hosts, firmware table or daemon -- iscsiadm through the
  shared :class:`~iscsikit.testing.oracle.Oracle` (its fake ``/sys/class`` holds only the
  tcp transport), iscsikit-adm on a root with a copy of the oracle's database;
* *fake kernel*: a :class:`~iscsikit.sysfs.fake.FakeSysfs` tree (sessions LOGGED_IN and
  FAILED, IPv6 portals, LUNs with and without disks, CHAP, an iBFT) bind-mounted over
  ``/sys`` for iscsiadm in a private mount namespace, and given to iscsikit-adm as
  ``ISCSIKIT_ROOT/sys``.  iscsiadm runs beside the fake iscsid (it answers no session
  query, so iscsiadm prints "Unknown" states as iscsikit-adm does without a daemon), or
  with no iscsid at all for logins and logouts (exit 20 / 21 as iscsikit-adm).

``-R`` output is compared as a set of lines: iscsiadm rescans sessions in forked
children, so its line order varies from run to run.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from iscsikit.sysfs.fake import sample_kernel
from iscsikit.testing.oracle import ORACLE_INITIATOR, Oracle, unavailable

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(unavailable() is not None, reason=str(unavailable())),
]

DISK1 = "iqn.2003-01.org.example:disk1"
DISK0 = "iqn.2003-01.org.example:disk0"

# Run iscsiadm with <base>/etc-iscsi as /etc/iscsi and <sys> as /sys (private mount
# namespace; a private network namespace with the fake iscsid unless "nodaemon").
_INNER = r"""
import subprocess, sys
base, sysdir, daemon, initiator = sys.argv[1:5]
for src, dst in ((base + "/etc-iscsi", "/etc/iscsi"), (base + "/lock", "/run/lock/iscsi"),
                 (sysdir, "/sys")):
    subprocess.run(["mount", "--bind", src, dst], check=True)
args = ["/usr/sbin/iscsiadm", *sys.argv[5:]]
if daemon != "daemon":
    sys.exit(subprocess.run(args).returncode)
from iscsikit.testing.fake_iscsid import FakeIscsid
with FakeIscsid(initiator_name=initiator):
    sys.exit(subprocess.run(args).returncode)
"""


def _iscsiadm(base: Path, sysdir: Path, args: tuple[str, ...], *, daemon: bool) -> tuple[int, str]:
    flags = ["-m", "-n"] if daemon else ["-m"]
    mode = "daemon" if daemon else "nodaemon"
    cmd = ["unshare", *flags, sys.executable, "-c", _INNER, str(base), str(sysdir), mode]
    cmd.append(ORACLE_INITIATOR)
    proc = subprocess.run([*cmd, *args], check=False, capture_output=True, text=True, timeout=120)
    return proc.returncode, proc.stdout


def _ours(root: Path, args: tuple[str, ...]) -> tuple[int, str]:
    env = {**os.environ, "ISCSIKIT_ROOT": str(root)}
    proc = subprocess.run(
        [sys.executable, "-m", "iscsikit", *args],
        check=False,
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    return proc.returncode, proc.stdout


def _copy_db(oracle: Oracle, root: Path) -> None:
    target = root / "etc/iscsi"
    if target.exists():
        shutil.rmtree(target)
    shutil.copytree(oracle.etc, target, symlinks=True)


# -- no sessions, hosts, firmware or daemon --------------------------------------------

NO_OBJECTS = [
    ("-m", "session"),
    ("-m", "session", "-P", "1"),
    ("-m", "session", "-P", "3"),
    ("-m", "session", "-P", "4"),
    ("-m", "session", "-r", "1"),
    ("-m", "session", "-r", "1", "-u"),
    ("-m", "session", "-r", "abc"),
    ("-m", "session", "-u"),
    ("-m", "session", "-R"),
    ("-m", "session", "-s"),
    ("-m", "session", "-o", "new"),
    ("-m", "host"),
    ("-m", "host", "-P", "1"),
    ("-m", "host", "-P", "5"),
    ("-m", "host", "-H", "1"),
    ("-m", "host", "-C", "chap"),
    ("-m", "host", "-C", "stats"),
    ("-m", "host", "-C", "flashnode"),
    ("-m", "fw"),
    ("-m", "fw", "-l"),
]


@pytest.fixture(scope="module")
def empty_oracle(tmp_path_factory: pytest.TempPathFactory) -> tuple[Oracle, Path]:
    base = tmp_path_factory.mktemp("oracle-empty")
    oracle = Oracle(base / "oracle")
    root = base / "root"
    (root / "sys/firmware").mkdir(parents=True)
    _copy_db(oracle, root)
    return oracle, root


@pytest.mark.parametrize("args", NO_OBJECTS, ids=" ".join)
def test_no_objects(empty_oracle: tuple[Oracle, Path], args: tuple[str, ...]) -> None:
    oracle, root = empty_oracle
    expected = oracle.run(*args)
    assert _ours(root, args) == (expected.returncode, expected.stdout)


def test_node_login_without_daemon(empty_oracle: tuple[Oracle, Path], tmp_path: Path) -> None:
    """``-m node -l`` with no daemon: exit 20 from both (host network: no iscsid)."""
    oracle = Oracle(tmp_path / "oracle")
    assert oracle.run("-m", "node", "-o", "new", "-T", DISK1, "-p", "192.0.2.9").returncode == 0
    expected = oracle.run("-m", "node", "-l", host_network=True)
    assert expected.returncode == 20
    root = tmp_path / "root"
    _copy_db(oracle, root)
    assert _ours(root, ("-m", "node", "-l")) == (20, expected.stdout)


# -- a fake kernel ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def kernel(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, Path]]:
    base = tmp_path_factory.mktemp("oracle-kernel")
    oracle = Oracle(base / "oracle")
    for args in (
        ("-o", "new", "-T", DISK1, "-p", "192.168.1.10"),
        ("-o", "new", "-T", DISK1, "-p", "192.168.1.11,2"),
        ("-o", "new", "-T", DISK0, "-p", "10.0.0.3"),
    ):
        assert oracle.run("-m", "node", *args).returncode == 0
    root = base / "root"
    sample_kernel(root)
    _copy_db(oracle, root)
    yield oracle.base, root


WITH_FAKE_DAEMON = [
    ("-m", "session"),
    ("-m", "session", "-P", "0"),
    ("-m", "session", "-P", "1"),
    ("-m", "session", "-P", "2"),
    ("-m", "session", "-P", "2", "-S"),
    ("-m", "session", "-P", "3"),
    ("-m", "session", "-P", "4"),
    ("-m", "session", "-r", "1"),
    ("-m", "session", "-r", "1", "-S"),
    ("-m", "session", "-r", "2", "-P", "2", "-S"),
    ("-m", "session", "-r", "10", "-P", "1"),
    ("-m", "session", "-r", "3", "-P", "3"),
    ("-m", "session", "-r", "/sys/class/iscsi_session/session2", "-P", "1"),
    ("-m", "session", "-r", "/sys/class/iscsi_host/host2"),
    ("-m", "session", "-r", "99"),
    ("-m", "session", "-r", "0"),
    ("-m", "session", "-r", "1", "-P", "5"),
    ("-m", "session", "-r", "10"),
    ("-m", "session", "-o", "new"),
    ("-m", "host"),
    ("-m", "host", "-P", "1"),
    ("-m", "host", "-P", "2"),
    ("-m", "host", "-P", "3"),
    ("-m", "host", "-P", "4"),
    ("-m", "host", "-P", "5"),
    ("-m", "host", "-H", "2", "-P", "1"),
    ("-m", "host", "-H", "00:11:22:33:44:55"),
    ("-m", "host", "-C", "stats"),
    ("-m", "host", "-C", "stats", "-H", "2"),
    ("-m", "host", "-C", "chap"),
    ("-m", "host", "-C", "chap", "-H", "9", "-o", "show"),
    ("-m", "host", "-C", "chap", "-H", "2", "-o", "show"),
    ("-m", "host", "-C", "flashnode", "-H", "2"),
    ("-m", "host", "-C", "flashnode", "-H", "2", "-x", "1"),
    ("-m", "host", "-C", "ping", "-H", "2"),
    ("-m", "fw"),
]


@pytest.mark.parametrize("args", WITH_FAKE_DAEMON, ids=" ".join)
def test_fake_kernel(kernel: tuple[Path, Path], args: tuple[str, ...]) -> None:
    base, root = kernel
    expected = _iscsiadm(base, root / "sys", args, daemon=True)
    assert _ours(root, args) == expected


WITHOUT_DAEMON = [
    ("-m", "session", "-u"),
    ("-m", "session", "-r", "1", "-u"),
    ("-m", "session", "-s"),
    ("-m", "session", "-r", "1", "-o", "new"),
    ("-m", "fw", "-l"),
]


@pytest.mark.parametrize("args", WITHOUT_DAEMON, ids=" ".join)
def test_fake_kernel_no_daemon(kernel: tuple[Path, Path], args: tuple[str, ...]) -> None:
    base, root = kernel
    expected = _iscsiadm(base, root / "sys", args, daemon=False)
    assert _ours(root, args) == expected


def test_rescan_same_lines(kernel: tuple[Path, Path]) -> None:
    base, root = kernel
    code, out = _iscsiadm(base, root / "sys", ("-m", "session", "-R"), daemon=True)
    ours_code, ours_out = _ours(root, ("-m", "session", "-R"))
    assert (ours_code, sorted(ours_out.splitlines())) == (code, sorted(out.splitlines()))
    assert (root / "sys/class/scsi_host/host2/scan").read_text().startswith("- - -")


# -- golden outputs (tests/unit/cli/golden) --------------------------------------------

GOLDEN = Path(__file__).parents[1] / "unit/cli/golden"


def _parse_golden(text: str) -> tuple[tuple[str, ...], bool, int, str]:
    """``# args: ...`` / ``# daemon: yes|no`` / ``# exit: N`` then stdout verbatim."""
    args_line, daemon_line, exit_line, out = text.split("\n", 3)
    args = tuple(args_line.removeprefix("# args: ").split(" "))
    return args, daemon_line.endswith("yes"), int(exit_line.removeprefix("# exit: ")), out


@pytest.mark.parametrize("path", sorted(GOLDEN.glob("*.txt")), ids=lambda p: p.stem)
def test_golden_is_iscsiadms(kernel: tuple[Path, Path], path: Path) -> None:
    """Each golden file the unit tests compare with is what iscsiadm 2.1.8 prints on
    :func:`~iscsikit.sysfs.fake.sample_kernel`; ``ISCSIKIT_REGEN_GOLDEN=1`` rewrites it."""
    base, root = kernel
    args, daemon, code, out = _parse_golden(path.read_text())
    got = _iscsiadm(base, root / "sys", args, daemon=daemon)
    if os.environ.get("ISCSIKIT_REGEN_GOLDEN") == "1":
        flag = "yes" if daemon else "no"
        path.write_text(f"# args: {' '.join(args)}\n# daemon: {flag}\n# exit: {got[0]}\n{got[1]}")
        return
    assert got == (code, out)


# -- richer SCSI layouts (sysfs.scsi): partitions, many disks, LUNs without a disk --------


@pytest.fixture(scope="module")
def scsi_kernel(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    from iscsikit.sysfs.fake import FakeSession, FakeSysfs

    base = tmp_path_factory.mktemp("oracle-scsi")
    oracle = Oracle(base / "oracle")
    root = base / "root"
    f = FakeSysfs(root)
    f.add_transport("tcp")
    f.set_transport_class_version("2.0-870")
    f.add_session(FakeSession(1, DISK1, "192.168.1.10", persistent_address="192.168.1.20"))
    f.add_lun(1, 0, block="sdb", partitions=2, size=8 << 30, block_size=4096)
    f.add_lun(1, 1, block="sdaa", vendor="LIO-ORG", model="disk1", rev="4.0")
    f.add_lun(1, 5, state="offline")
    f.add_lun(1, 300, block="sdiw", state="blocked")
    _copy_db(oracle, root)
    return oracle.base, root


SCSI_CASES = [
    ("-m", "session", "-P", "3"),
    ("-m", "session", "-r", "1", "-P", "3"),
    ("-m", "host", "-P", "4"),
    ("-m", "host", "-H", "2", "-P", "4"),
]


@pytest.mark.parametrize("args", SCSI_CASES, ids=" ".join)
def test_scsi_layouts(scsi_kernel: tuple[Path, Path], args: tuple[str, ...]) -> None:
    base, root = scsi_kernel
    expected = _iscsiadm(base, root / "sys", args, daemon=True)
    assert "Attached scsi disk sdiw" in expected[1]
    assert _ours(root, args) == expected
