"""OpenStack os-brick's ``ISCSIConnector`` as a client in the VM tier's guest tests
(tests/vm/test_os_brick.py): the ``iscsiadm`` it runs, and the connector itself.

os-brick drives the kernel initiator by running ``iscsiadm`` from ``PATH`` and parsing
what it prints.  :class:`IscsiadmShim` writes a directory holding an executable
``iscsiadm`` that runs a chosen implementation -- open-iscsi's own, or ``iscsikit-adm``
-- and appends one JSON line per call (argv, exit code, stdout, stderr) to a log, so a
test sees every command os-brick ran and what it was told.  :func:`iscsi_connector`
builds the connector as peers.md §8 verified it: as root, privileged calls in-process
(no privsep daemon), single path.

This module imports os-brick only inside :func:`iscsi_connector`: the rest of the VM tier
does not need it installed.
"""

from __future__ import annotations

import functools
import json
import mmap
import os
import shlex
import shutil
import stat
import subprocess
import sys
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = [
    "BrickClient",
    "IscsiadmCall",
    "IscsiadmShim",
    "brick_client",
    "connection_properties",
    "iscsi_connector",
    "multipath_connection_properties",
    "read_direct",
    "write_direct",
]

#: ``python -m iscsikit`` of this interpreter: iscsikit-adm without a console script.
ISCSIKIT_ADM = (sys.executable, "-m", "iscsikit")

_SHIM = """#!{python}
# iscsiadm for os-brick: runs {shown} and logs the call ({log}).
import json, subprocess, sys, time
real = {real!r}
start = time.monotonic()
done = subprocess.run(real + sys.argv[1:], capture_output=True, timeout=180)  # bounded
call = {{"argv": sys.argv[1:], "rc": done.returncode, "seconds": time.monotonic() - start,
        "stdout": done.stdout.decode(errors="replace"),
        "stderr": done.stderr.decode(errors="replace")}}
with open({log!r}, "a") as log:
    log.write(json.dumps(call) + "\\n")
sys.stdout.buffer.write(done.stdout)
sys.stderr.buffer.write(done.stderr)
sys.exit(done.returncode)
"""


@dataclass(frozen=True, slots=True)
class IscsiadmCall:
    """One ``iscsiadm`` command os-brick ran, and what it got back."""

    argv: tuple[str, ...]
    rc: int
    stdout: str
    stderr: str
    seconds: float = 0.0

    def __str__(self) -> str:
        return f"iscsiadm {shlex.join(self.argv)}  -> {self.rc} ({self.seconds:.1f} s)"


class IscsiadmShim:
    """``<directory>/iscsiadm`` running ``real`` (argv prefix) and logging each call.

    Put :attr:`directory` first on ``PATH`` (:meth:`path_env`) and every ``iscsiadm``
    os-brick runs goes through it.
    """

    def __init__(self, directory: Path, real: Sequence[str]) -> None:
        self.directory = directory
        self.log = directory / "calls.jsonl"
        directory.mkdir(parents=True, exist_ok=True)
        script = directory / "iscsiadm"
        script.write_text(
            _SHIM.format(
                python=sys.executable, real=list(real), shown=shlex.join(real), log=str(self.log)
            )
        )
        script.chmod(script.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)

    def path_env(self, environ: Mapping[str, str] | None = None) -> str:
        """``PATH`` with the shim's directory first."""
        env = os.environ if environ is None else environ
        return f"{self.directory}{os.pathsep}{env.get('PATH', os.defpath)}"

    def calls(self) -> list[IscsiadmCall]:
        """Every call so far, in order."""
        if not self.log.exists():
            return []
        calls = []
        for line in self.log.read_text().splitlines():
            c = json.loads(line)
            calls.append(
                IscsiadmCall(tuple(c["argv"]), c["rc"], c["stdout"], c["stderr"], c["seconds"])
            )
        return calls


@dataclass(frozen=True)
class BrickClient:
    """The ``iscsiadm`` os-brick runs: ``name`` (``open-iscsi`` or ``iscsikit``), the
    command behind the shim, and the shim (every call os-brick made)."""

    name: str
    real: tuple[str, ...]
    shim: IscsiadmShim

    def iscsiadm(self, *argv: str) -> subprocess.CompletedProcess[str]:
        """This client's ``iscsiadm``, bypassing the shim (not an os-brick call)."""
        return subprocess.run(
            [*self.real, *argv], capture_output=True, text=True, timeout=180, check=False
        )


@contextmanager
def brick_client(name: str, work: Path) -> Iterator[BrickClient]:
    """For the ``with`` block, ``iscsiadm`` on ``PATH`` is a shim (in ``work/bin``) running
    ``name``'s: ``open-iscsi``, /usr/sbin/iscsiadm with an iscsid running (its log in
    ``work``); or ``iscsikit``, iscsikit-adm with iscsikitd on the machine's own root (its
    kernel sessions in the real /sys, records in /etc/iscsi: guest only).  iscsikitd's
    log ends are printed when the block ends."""
    from iscsikit.testing.daemon import RunningDaemon
    from iscsikit.testing.vmguest.iscsid import iscsid_listening, iscsid_running

    kept = os.environ.get("PATH")
    try:
        if name == "open-iscsi":
            found = shutil.which("iscsiadm")
            if found is None:
                raise FileNotFoundError("open-iscsi's iscsiadm is not installed")
            shim = IscsiadmShim(work / "bin", [found])
            os.environ["PATH"] = shim.path_env()
            with iscsid_running(work / "iscsid.log"):
                yield BrickClient(name, (found,), shim)
        elif name == "iscsikit":
            if iscsid_listening():
                raise RuntimeError("iscsid runs: the sessions would not be iscsikit's")
            shim = IscsiadmShim(work / "bin", ISCSIKIT_ADM)
            os.environ["PATH"] = shim.path_env()
            daemon = RunningDaemon(Path("/"))
            try:
                yield BrickClient(name, ISCSIKIT_ADM, shim)
            finally:
                daemon.stop()
                tail = "".join(daemon.log.splitlines(True)[-40:])
                print(f"iscsikitd log (last 40 lines):\n{tail}")
        else:
            raise ValueError(f"no such client: {name!r}")
    finally:
        if kept is None:
            os.environ.pop("PATH", None)
        else:
            os.environ["PATH"] = kept


def connection_properties(
    portal: str, iqn: str, lun: int, chap: tuple[str, str] | None = None
) -> dict[str, Any]:
    """What Cinder hands os-brick for a single-path iSCSI volume (``chap``: user, secret)."""
    props: dict[str, Any] = {
        "target_portal": portal,
        "target_iqn": iqn,
        "target_lun": lun,
        "target_discovered": False,
    }
    if chap is not None:
        props |= {"auth_method": "CHAP", "auth_username": chap[0], "auth_password": chap[1]}
    return props


@functools.cache
def _configure_oslo(lock_dir: Path) -> None:
    import os_brick
    from oslo_config import cfg

    lock_dir.mkdir(parents=True, exist_ok=True)
    cfg.CONF([], project="iscsikit-vm")
    cfg.CONF.set_override("lock_path", str(lock_dir), group="oslo_concurrency")
    os_brick.setup(cfg.CONF)


def multipath_connection_properties(portals: Sequence[str], iqn: str, lun: int) -> dict[str, Any]:
    """What Cinder hands os-brick for a multipath volume: one LUN behind every portal
    (``target_portals`` / ``target_iqns`` / ``target_luns``, the first as the single-path
    keys too)."""
    props = connection_properties(portals[0], iqn, lun)
    props |= {
        "target_portals": list(portals),
        "target_iqns": [iqn] * len(portals),
        "target_luns": [lun] * len(portals),
    }
    return props


def iscsi_connector(
    lock_dir: Path, *, device_scan_attempts: int = 5, use_multipath: bool = False
) -> Any:
    """os-brick's ``ISCSIConnector`` for a root process, privsep in-process (single path,
    or dm-multipath with ``use_multipath``: multipathd must run).

    The oslo configuration is global: this sets its ``lock_path`` (os-brick serialises
    ``connect_volume`` with an external lock there) to ``lock_dir``.
    """
    from os_brick import privileged
    from os_brick.initiator import connector

    # As root, run what os-brick would hand its privsep daemon in this process.
    privileged.default.set_client_mode(False)
    privileged.brick_privsep_hide_output.set_client_mode(False)
    _configure_oslo(lock_dir)
    return connector.InitiatorConnector.factory(
        "ISCSI",
        root_helper=None,
        use_multipath=use_multipath,
        device_scan_attempts=device_scan_attempts,
    )


def write_direct(device: str, offset: int, data: bytes) -> None:
    """Write ``data`` at ``offset`` of a block device with ``O_DIRECT`` (aligned buffer)."""
    buf = mmap.mmap(-1, len(data))  # page-aligned, as O_DIRECT wants
    try:
        buf[:] = data
        fd = os.open(device, os.O_WRONLY | os.O_DIRECT)
        try:
            done = os.pwritev(fd, [buf], offset)
            os.fsync(fd)
        finally:
            os.close(fd)
    finally:
        buf.close()
    if done != len(data):
        raise OSError(f"short write to {device}: {done} of {len(data)} bytes")


def read_direct(device: str, offset: int, length: int) -> bytes:
    """Read ``length`` bytes at ``offset`` of a block device with ``O_DIRECT``."""
    buf = mmap.mmap(-1, length)
    try:
        fd = os.open(device, os.O_RDONLY | os.O_DIRECT)
        try:
            done = os.preadv(fd, [buf], offset)
        finally:
            os.close(fd)
        if done != length:
            raise OSError(f"short read from {device}: {done} of {length} bytes")
        return bytes(buf)
    finally:
        buf.close()
