"""iscsikitd where open-iscsi's iscsid cannot run: as an unprivileged user, in a netns.

The userspace data path needs no kernel iSCSI module, no netlink and no privilege
(open-iscsi issue #177: iscsid does not work inside a network namespace):

* ``test_unprivileged_daemon_and_client``: iscsikitd runs as uid 65534 with no
  capabilities, its records and run directory under a root it owns; ``iscsikit-adm``
  as the same uid discovers, logs in, lists the session, and ``nbdcopy`` (same uid)
  writes and reads the LUN through the session's NBD export; then logout and ``-k 0``.
* ``test_daemon_in_a_network_namespace``: tgtd, iscsikitd and the discovery/login
  commands run inside a network namespace the test creates (and always deletes); the
  portal is not reachable from the test's own namespace, the NBD export and the IPC
  socket (unix socket paths) are.

Every process is the installed program in a subprocess (``python -m iscsikit.daemon``,
``python -m iscsikit``); what the clients write must land in tgtd's backing file.
"""

from __future__ import annotations

import importlib.util
import os
import re
import secrets
import shlex
import shutil
import socket
import stat
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

from iscsikit.errors import IscsiError
from iscsikit.ipc.client import DaemonClient
from iscsikit.testing.tgtd import Tgtd, free_port

pytestmark = pytest.mark.integration

NOBODY = 65534
MIB = 1 << 20
LUN_SIZE = 16 * MIB
IQN = "iqn.2024-01.test.daemon:unpriv"
TIMEOUT = 60.0
SOCKET = "run/iscsikit/iscsikitd.sock"
EXPORT = re.compile(r"nbd\+unix:///\?socket=(\S+)")


# -- processes ------------------------------------------------------------------------


def run(
    prefix: Sequence[str], *argv: str | Path, root: Path, expect: int = 0
) -> subprocess.CompletedProcess[str]:
    """Run ``prefix + argv`` with cwd ``root``; its exit status must be ``expect``."""
    cmd = [*prefix, *map(str, argv)]
    done = subprocess.run(
        cmd, cwd=root, env=_env(root), capture_output=True, text=True, timeout=TIMEOUT,
        check=False,
    )  # fmt: skip
    assert done.returncode == expect, (shlex.join(cmd), done.returncode, done.stdout, done.stderr)
    return done


def adm(prefix: Sequence[str], root: Path, *args: str, expect: int = 0) -> str:
    return run(prefix, sys.executable, "-m", "iscsikit", *args, root=root, expect=expect).stdout


def _env(root: Path) -> dict[str, str]:
    env = dict(os.environ, ISCSIKIT_ROOT=str(root), HOME=str(root))
    env["PYTHONDONTWRITEBYTECODE"] = "1"  # uid 65534 cannot write __pycache__ anyway
    return env


class Daemon:
    """``iscsikitd -f -d 1 --root ROOT`` started under ``prefix``, ready to answer."""

    def __init__(self, prefix: Sequence[str], root: Path) -> None:
        self.root = root
        self.socket = root / SOCKET
        self.log_path = root.parent / f"{root.name}.iscsikitd.log"
        argv = [sys.executable, "-m", "iscsikit.daemon", "-f", "-d", "1", "--root", str(root)]
        with self.log_path.open("wb") as log:
            self.proc = subprocess.Popen(
                [*prefix, *argv], cwd=root, env=_env(root), stdin=subprocess.DEVNULL,
                stdout=log, stderr=subprocess.STDOUT,
            )  # fmt: skip
        self.hello = self._wait_ready()

    @property
    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def _wait_ready(self) -> dict[str, object]:
        deadline = time.monotonic() + TIMEOUT
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, f"iscsikitd exited {self.proc.returncode}: {self.log}"
            if self.socket.exists():
                try:
                    with DaemonClient(str(self.socket), timeout=5) as client:
                        hello: dict[str, object] = client.call("hello")
                        return hello
                except IscsiError:
                    pass
            time.sleep(0.05)
        raise AssertionError(f"iscsikitd not ready after {TIMEOUT:g} s: {self.log}")

    def wait(self) -> int:
        return self.proc.wait(timeout=TIMEOUT)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=TIMEOUT)


def status(pid: int) -> dict[str, str]:
    lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    return {k: v.strip() for k, _, v in (line.partition(":") for line in lines)}


def login_session(prefix: Sequence[str], root: Path, portal: str) -> Path:
    """Discover ``portal``, log in to IQN, and return the LUN 1 export's socket."""
    assert f"{portal},1 {IQN}" in adm(prefix, root, "-m", "discovery", "-t", "st", "-p", portal)
    out = adm(prefix, root, "-m", "node", "-T", IQN, "-l")
    assert f"Login to [iface: default, target: {IQN}, portal: " in out
    assert f"tcp: [1] {portal},1 {IQN} (non-flash)" in adm(prefix, root, "-m", "session")
    detail = adm(prefix, root, "-m", "session", "-P", "3")
    assert "iSCSI Session State: LOGGED_IN" in detail
    [export] = EXPORT.findall(detail)
    path = Path(export)
    assert path.parent == root / "run/iscsikit/nbd"
    assert stat.S_ISSOCK(path.stat().st_mode)
    return path


def copy_through(prefix: Sequence[str], root: Path, export: Path, backing: Path) -> None:
    """nbdcopy 1 MiB into the export and the whole LUN back; both must match the target."""
    image = os.urandom(MIB)
    source, back = root / "in.raw", root / "out.raw"
    source.write_bytes(image)
    os.chown(source, *_owner(root))
    uri = f"nbd+unix:///?socket={export}"
    run(prefix, "nbdcopy", source, uri, root=root)
    run(prefix, "nbdcopy", uri, back, root=root)
    data = back.read_bytes()
    assert len(data) == LUN_SIZE
    assert data[:MIB] == image
    assert backing.read_bytes()[:MIB] == image  # nbdcopy flushes: it is in tgtd's file


def log_out_and_stop(prefix: Sequence[str], root: Path, export: Path, daemon: Daemon) -> None:
    out = adm(prefix, root, "-m", "node", "-T", IQN, "-u")
    assert f"Logout of [sid: 1, target: {IQN}, portal: " in out
    assert (
        "No active sessions"
        in run(
            prefix, sys.executable, "-m", "iscsikit", "-m", "session", root=root, expect=21
        ).stderr
    )
    assert not export.exists()
    adm(prefix, root, "-k", "0")
    assert daemon.wait() == 0, daemon.log
    assert not (root / "run/iscsikit/iscsikitd.pid").exists()
    assert not daemon.socket.exists()


def _owner(path: Path) -> tuple[int, int]:
    st = path.stat()
    return st.st_uid, st.st_gid


# -- uid 65534 --------------------------------------------------------------------------


def _needed_dirs() -> set[Path]:
    """What a Python process running iscsikit reads: the interpreter, libraries, iscsikit."""
    paths = {Path(sys.prefix), Path(sys.base_prefix), Path(os.path.realpath(sys.executable))}
    paths |= {Path(p) for p in sys.path if p and Path(p).is_dir()}
    for package in ("iscsikit", "iscsikit_drivers"):
        spec = importlib.util.find_spec(package)
        assert spec is not None and spec.origin is not None, package
        paths.add(Path(spec.origin).parent.parent)
    return {p.resolve() for p in paths}


def _untraversable(paths: set[Path]) -> dict[Path, set[str]]:
    """Directories other users cannot traverse, with the children the paths need in each."""
    blocked: dict[Path, set[str]] = {}
    for path in paths:
        for parent, child in zip(path.parents, [path, *path.parents], strict=False):
            if not parent.stat().st_mode & stat.S_IXOTH:
                blocked.setdefault(parent, set()).add(child.name)
    return blocked


def as_nobody(stage: Path) -> list[str]:
    """A command prefix that runs a program as uid/gid 65534 with no capabilities.

    The interpreter may live where uid 65534 cannot reach it (pyenv under ``/root``, mode
    0700).  The prefix then gives the program a private mount namespace in which each
    such directory is a tmpfs (mode 0711) holding bind mounts of just the children the
    interpreter needs; nothing changes outside that namespace, and the program itself
    runs as plain uid 65534 (``setpriv`` drops to it after mounting).
    """
    script = ["stage=$1; shift"]
    # Deepest first, and --rbind: an outer overlay carries the inner ones along.
    blocked = _untraversable(_needed_dirs())
    for n, directory in enumerate(sorted(blocked, key=lambda p: -len(p.parts))):
        moves = []
        for m, child in enumerate(sorted(blocked[directory])):
            staged, source = f'"$stage/{n}.{m}"', shlex.quote(str(directory / child))
            script.append(f"mkdir -p {staged} && mount --rbind {source} {staged}")
            moves.append(f"mkdir -p {source} && mount --move {staged} {source}")
        script.append(f"mount -t tmpfs -o mode=0711 iscsikit-test {shlex.quote(str(directory))}")
        script += moves
    script.append(f'exec setpriv --reuid={NOBODY} --regid={NOBODY} --clear-groups -- "$@"')
    prefix = ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups", "--"]
    if not blocked:
        return prefix
    shell = ["sh", "-euc", "\n".join(script), "sh", str(stage)]
    return ["unshare", "--mount", "--propagation", "private", *shell]


@pytest.fixture
def short_root() -> Iterator[Path]:
    """A short directory (unix socket paths are limited to 107 bytes)."""
    path = Path(tempfile.mkdtemp(prefix="ik"))
    path.chmod(0o711)  # uid 65534 reaches its own root below it
    yield path
    shutil.rmtree(path, ignore_errors=True)


def test_unprivileged_daemon_and_client(tmp_path: Path, short_root: Path) -> None:
    root = short_root / "r"
    root.mkdir(mode=0o700)
    os.chown(root, NOBODY, NOBODY)
    stage = short_root / "stage"
    stage.mkdir()
    nobody = as_nobody(stage)
    with Tgtd(tmp_path / "tgtd") as tgtd:
        tid = tgtd.add_target(IQN, lun_size=LUN_SIZE)
        daemon = Daemon(nobody, root)
        try:
            # The process serving the socket is the daemon itself, uid 65534, no capability.
            assert daemon.hello["pid"] == daemon.proc.pid
            proc = status(daemon.proc.pid)
            assert proc["Uid"].split() == [str(NOBODY)] * 4, proc["Uid"]
            assert proc["Gid"].split() == [str(NOBODY)] * 4, proc["Gid"]
            assert proc["Groups"] == ""
            assert int(proc["CapEff"], 16) == int(proc["CapPrm"], 16) == 0
            assert _owner(daemon.socket) == (NOBODY, NOBODY)
            assert stat.S_IMODE(daemon.socket.stat().st_mode) == 0o600

            export = login_session(nobody, root, tgtd.portal)
            # discovery wrote the records as uid 65534 under its own root
            [record] = (root / "etc/iscsi/nodes" / IQN).rglob("default")
            assert _owner(record) == (NOBODY, NOBODY)
            assert _owner(export) == (NOBODY, NOBODY)
            assert len(tgtd.sessions(tid)) == 1

            copy_through(nobody, root, export, tgtd.backing_path(tid, 1))
            log_out_and_stop(nobody, root, export, daemon)
            assert tgtd.sessions(tid) == []
        finally:
            daemon.kill()
    assert "Traceback" not in daemon.log, daemon.log


# -- a network namespace ------------------------------------------------------------------


class NetnsTgtd:
    """tgtd inside network namespace ``netns``, managed from outside over its unix socket.

    :class:`~iscsikit.testing.tgtd.Tgtd` probes its portal from the test's namespace, so
    this starts tgtd itself with the same isolation: ``TGT_IPC_SOCKET`` in a private
    directory, control port 0 (the directory is new), ``-f``, its own session.
    """

    def __init__(self, netns: str, workdir: Path, port: int) -> None:
        self.workdir = workdir
        self.portal = f"127.0.0.1:{port}"
        self.backing = workdir / "lun1.img"
        self._env = dict(os.environ, TGT_IPC_SOCKET=str(workdir / "socket"))
        cmd = ["ip", "netns", "exec", netns, "tgtd", "-f", "-C", "0", "--iscsi"]
        with (workdir / "tgtd.log").open("wb") as log:
            self.proc = subprocess.Popen(
                [*cmd, f"portal={self.portal}"], env=self._env, stdin=subprocess.DEVNULL,
                stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            )  # fmt: skip
        deadline = time.monotonic() + TIMEOUT
        while not self._answers():
            assert self.proc.poll() is None, (workdir / "tgtd.log").read_text()
            assert time.monotonic() < deadline, (workdir / "tgtd.log").read_text()
            time.sleep(0.05)
        with self.backing.open("wb") as f:
            f.truncate(LUN_SIZE)
        self.tgtadm("--op", "new", "--mode", "target", "--tid", "1", "--targetname", IQN)
        self.tgtadm("--op", "new", "--mode", "logicalunit", "--tid", "1", "--lun", "1",
                    "--backing-store", str(self.backing))  # fmt: skip
        self.tgtadm("--op", "bind", "--mode", "target", "--tid", "1", "--initiator-address", "ALL")

    def _run(self, *args: str) -> subprocess.CompletedProcess[str]:
        cmd = ["tgtadm", "-C", "0", "--lld", "iscsi", *args]
        return subprocess.run(
            cmd, env=self._env, capture_output=True, text=True, timeout=TIMEOUT, check=False
        )

    def _answers(self) -> bool:
        return self._run("--op", "show", "--mode", "target").returncode == 0

    def tgtadm(self, *args: str) -> str:
        done = self._run(*args)
        assert done.returncode == 0, (args, done.stdout, done.stderr)
        return done.stdout

    def stop(self) -> None:
        if self.proc.poll() is None:  # tgt 1.0.85 ignores SIGTERM
            os.killpg(self.proc.pid, 9)
        self.proc.wait(timeout=TIMEOUT)


@pytest.fixture
def netns() -> Iterator[str]:
    """A new network namespace with only ``lo`` (up); deleted afterwards, always."""
    name = f"ikt-{secrets.token_hex(4)}"
    subprocess.run(["ip", "netns", "add", name], check=True, timeout=TIMEOUT)
    try:
        subprocess.run(["ip", "-n", name, "link", "set", "lo", "up"], check=True, timeout=TIMEOUT)
        yield name
    finally:
        subprocess.run(["ip", "netns", "del", name], check=True, timeout=TIMEOUT)
    assert not Path("/run/netns", name).exists()


def _same_netns(pid: int, netns: str) -> bool:
    return os.stat(f"/proc/{pid}/ns/net").st_ino == os.stat(f"/run/netns/{netns}").st_ino


def _reachable(portal: str) -> bool:
    host, _, port = portal.rpartition(":")
    try:
        with socket.create_connection((host, int(port)), timeout=2):
            return True
    except OSError:
        return False


def test_daemon_in_a_network_namespace(netns: str, short_root: Path) -> None:
    inside = ["ip", "netns", "exec", netns]
    root = short_root / "r"
    root.mkdir()
    # A port free here, so that reaching it from here would mean leaving the namespace.
    tgtd = NetnsTgtd(netns, short_root, free_port())
    try:
        assert _same_netns(tgtd.proc.pid, netns)
        assert not _reachable(tgtd.portal)  # the portal exists only inside
        daemon = Daemon(inside, root)
        try:
            assert daemon.hello["pid"] == daemon.proc.pid
            assert _same_netns(daemon.proc.pid, netns)
            assert not _same_netns(os.getpid(), netns)

            export = login_session(inside, root, tgtd.portal)
            conns = tgtd.tgtadm("--op", "show", "--mode", "conn", "--tid", "1")
            assert "IP Address: 127.0.0.1" in conns
            # The NBD export and the IPC socket are unix socket paths: usable from the
            # test's namespace as well (nbdcopy, logout and -k 0 run out here).
            copy_through([], root, export, tgtd.backing)
            log_out_and_stop([], root, export, daemon)
        finally:
            daemon.kill()
    finally:
        tgtd.stop()
    assert "Traceback" not in daemon.log, daemon.log
