"""dm-multipath in the VM tier's guest tests (tests/vm/test_multipath.py): multipathd over
the guest's kernel iSCSI sessions, and a write stream whose every acknowledged block is
read back.

:class:`Multipathd` writes a minimal ``/etc/multipath.conf`` into the guest's overlay
(peers.md §8: ``user_friendly_names yes``, ``find_multipaths no``), loads the
device-mapper modules and runs ``multipathd -d -s`` for the ``with`` block; its queries
(``multipathd show paths`` / ``show maps``) are bounded, as is every wait.
:class:`VerifiedWriter` writes numbered blocks with ``O_DIRECT`` in a thread and keeps
what was acknowledged, so :meth:`VerifiedWriter.verify` can tell a lost or corrupted
write from a good one.  Guest only: it loads modules and starts a daemon.
"""

from __future__ import annotations

import hashlib
import mmap
import os
import stat
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Self

from iscsikit.testing.vmguest.checks import WAIT, wait_for

__all__ = [
    "MULTIPATH_CONF",
    "Multipathd",
    "PathState",
    "VerifiedWriter",
    "WriteCounts",
    "map_users",
]

#: The guest's /etc/multipath.conf: every SCSI disk is a path (no multipath.conf
#: whitelist to keep up with), names mpathN, the path checker every 2 s so a failed path
#: is seen and a returning one reinstated within the test's waits, I/O queued while no
#: path is left (``no_path_retry queue``: dm-multipath never fails a write up), and
#: ``fast_io_fail_tmo 10``: multipathd writes it into every iSCSI path's session as
#: ``recovery_tmo`` (its default, 5 s, would override the node's replacement_timeout).
MULTIPATH_CONF = """\
defaults {
    user_friendly_names yes
    fast_io_fail_tmo 10
    find_multipaths no
    polling_interval 2
    max_polling_interval 4
    no_path_retry queue
    path_grouping_policy multibus
}
blacklist {
    devnode "^(ram|loop|fd|md|dm-|sr|scd|st|zram|nbd|vd)"
}
"""

_MODULES = ("dm_mod", "dm_multipath", "dm_round_robin")
_CONF = Path("/etc/multipath.conf")
#: multipath-tools' state: wwids (the WWIDs it made maps of), bindings (mpathN names).
_STATE = Path("/etc/multipath")


@dataclass(frozen=True, slots=True)
class PathState:
    """One line of ``multipathd show paths``: the sd device, dm-multipath's view of it
    (``active`` / ``failed``) and the path checker's (``ready`` / ``faulty``...)."""

    dev: str
    dm_state: str
    checker: str
    map_name: str

    @property
    def usable(self) -> bool:
        return self.dm_state == "active" and self.checker == "ready"


class Multipathd:
    """``multipathd -d -s`` with :data:`MULTIPATH_CONF`, for a ``with`` block."""

    def __init__(self, log_path: Path, conf: str = MULTIPATH_CONF) -> None:
        self.log_path = log_path
        self.conf = conf
        self._proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> Self:
        _STATE.mkdir(parents=True, exist_ok=True)
        _CONF.write_text(self.conf)
        for module in _MODULES:
            subprocess.run(["modprobe", module], check=True, timeout=WAIT)
        with self.log_path.open("wb") as log:
            self._proc = subprocess.Popen(
                ["multipathd", "-d", "-s", "-v3"], stdout=log, stderr=subprocess.STDOUT
            )
        wait_for("multipathd to answer", self._answers)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def _answers(self) -> bool:
        if self._proc is not None and self._proc.poll() is not None:
            raise RuntimeError(f"multipathd exited ({self._proc.returncode}): {self.log[-3000:]}")
        return self.query("show", "daemon", check=False).returncode == 0

    def stop(self) -> None:
        """Flush the maps and stop the daemon (bounded; killed if it will not go)."""
        proc, self._proc = self._proc, None
        if proc is None:
            return
        self.query("disable", "queueing", "maps", check=False)
        self.query("shutdown", check=False)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=30)
        subprocess.run(["multipath", "-F"], capture_output=True, timeout=WAIT, check=False)
        # The guest's later tests run without dm-multipath: no multipath.conf, and no
        # remembered WWIDs -- multipath-tools' udev rules (``multipath -u``) would still
        # claim a disk whose WWID is in /etc/multipath/wwids (tgtd's tid 1 LUN 1 has the
        # same WWID in every tgtd), and udev then makes no partition links for it.
        _CONF.unlink(missing_ok=True)
        for name in ("wwids", "bindings", "prkeys"):
            (_STATE / name).unlink(missing_ok=True)
        subprocess.run(
            ["udevadm", "settle", f"--timeout={int(WAIT)}"], timeout=WAIT + 5, check=False
        )

    @property
    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def query(self, *command: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """``multipathd <command>`` (the daemon's socket), bounded."""
        done = subprocess.run(
            ["multipathd", *command], capture_output=True, text=True, timeout=WAIT, check=False
        )
        if check and done.returncode != 0:
            raise RuntimeError(f"multipathd {' '.join(command)}: {done.stderr or done.stdout}")
        return done

    def paths(self) -> list[PathState]:
        """``multipathd show paths``, one :class:`PathState` a path."""
        out = self.query("show", "paths", "raw", "format", "%d %t %T %m").stdout
        found = []
        for line in out.splitlines():
            words = line.split()
            if len(words) == 4 and words[0] != "dev":
                found.append(PathState(*words))
        return found

    def maps(self) -> dict[str, str]:
        """The multipath maps: name -> dm device (``dm-N``)."""
        out = self.query("show", "maps", "raw", "format", "%n %d").stdout
        return dict(line.split()[:2] for line in out.splitlines() if len(line.split()) >= 2)

    def usable_paths(self, name: str) -> list[str]:
        return sorted(p.dev for p in self.paths() if p.map_name == name and p.usable)

    def wait_usable(self, name: str, count: int, timeout: float = WAIT) -> list[str]:
        """Wait until map ``name`` has ``count`` active, ready paths; returns them."""
        wait_for(
            f"{count} usable paths of {name} (have {self.paths()})",
            lambda: len(self.usable_paths(name)) == count,
            timeout,
        )
        return self.usable_paths(name)

    def wait_map(self, timeout: float = WAIT) -> tuple[str, str]:
        """Wait for the one multipath map; returns (name, dm device)."""
        wait_for("a multipath map", lambda: len(self.maps()) == 1, timeout)
        ((name, dm),) = self.maps().items()
        return name, dm


# -- a verified write stream ----------------------------------------------------------------


def block_data(block: int, generation: int, size: int) -> bytes:
    """The content of ``block`` at ``generation``: distinct for every pair."""
    seed = hashlib.sha256(f"{block}:{generation}".encode()).digest()
    return (seed * (size // len(seed) + 1))[:size]


@dataclass
class WriteCounts:
    """What a :class:`VerifiedWriter` did: acknowledged writes and the blocks checked."""

    written: int = 0
    verified: int = 0
    bad: list[int] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


class VerifiedWriter:
    """Writes ``blocks`` blocks of ``block_size`` bytes at ``device``, round after round
    (``O_DIRECT``, each write a new generation of its block), until :meth:`stop`.

    A block's acknowledged generation is recorded only after ``pwrite`` returned it all:
    :meth:`verify` reads every block back (``O_DIRECT``) and any block whose content is
    not its last acknowledged generation (or generation 0's, if it was never written) is
    a lost or corrupted write.  A failed write ends the stream and is reported.
    """

    def __init__(self, device: Path, *, blocks: int = 256, block_size: int = 64 << 10) -> None:
        self.device = device
        self.blocks = blocks
        self.block_size = block_size
        self.acked = [0] * blocks
        self.counts = WriteCounts()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def prime(self) -> None:
        """Write generation 0 of every block (before faults: a known starting point)."""
        fd = self._open()
        try:
            self._write_round(0, fd)
        finally:
            # A descriptor left open keeps the map open: multipath -f / -F then refuse
            # it ("map in use") and it outlives multipathd, holding the WWID.
            os.close(fd)

    def _open(self) -> int:
        return os.open(self.device, os.O_RDWR | os.O_DIRECT)

    def _write_round(self, generation: int, fd: int) -> None:
        buf = mmap.mmap(-1, self.block_size)
        try:
            for block in range(self.blocks):
                if generation and self._stop.is_set():
                    return
                buf[:] = block_data(block, generation, self.block_size)
                done = os.pwrite(fd, buf, block * self.block_size)
                if done != self.block_size:
                    raise OSError(f"short write of block {block}: {done}")
                self.acked[block] = generation
                self.counts.written += 1
        finally:
            buf.close()

    def __enter__(self) -> Self:
        self._thread = threading.Thread(target=self._run, name="verified-writer", daemon=True)
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def _run(self) -> None:
        fd = self._open()
        try:
            generation = max(self.acked) + 1
            while not self._stop.is_set():
                self._write_round(generation, fd)
                generation += 1
        except OSError as exc:
            self.counts.errors.append(f"{type(exc).__name__}: {exc}")
        finally:
            os.close(fd)

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def wait_written(self, more: int, timeout: float = WAIT) -> None:
        """Wait until ``more`` further writes were acknowledged (the stream is moving)."""
        goal = self.counts.written + more
        wait_for(
            f"{more} more acknowledged writes ({self.counts.errors})",
            lambda: self.counts.written >= goal or not self.running,
            timeout,
        )

    def stop(self, timeout: float = WAIT * 2) -> None:
        """End the stream after the write in flight (bounded)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():
                raise TimeoutError(f"a write to {self.device} hangs after {timeout:.0f} s")

    def verify(self) -> WriteCounts:
        """Read every block back and compare it with its last acknowledged generation."""
        buf = mmap.mmap(-1, self.block_size)
        fd = os.open(self.device, os.O_RDONLY | os.O_DIRECT)
        try:
            for block in range(self.blocks):
                os.preadv(fd, [buf], block * self.block_size)
                if bytes(buf) != block_data(block, self.acked[block], self.block_size):
                    self.counts.bad.append(block)
                self.counts.verified += 1
        finally:
            os.close(fd)
            buf.close()
        return self.counts


def dm_holders(disk: str) -> Iterator[str]:
    """The device-mapper devices built on ``disk`` (``/sys/block/<disk>/holders``)."""
    holders = Path("/sys/block", disk, "holders")
    yield from sorted(p.name for p in holders.iterdir()) if holders.is_dir() else ()


def settle(seconds: float = 1.0) -> None:
    """Let udev and multipathd catch up (``udevadm settle``, bounded)."""
    subprocess.run(["udevadm", "settle", "-t", "30"], capture_output=True, check=False)
    time.sleep(seconds)


def map_users(dm: str) -> list[str]:
    """Who keeps device-mapper device ``dm`` (``dm-N``) open, for a failure message: every
    map's open count, ``dm``'s holders, and each process with a file descriptor on it
    (pid, command line, its kernel stack)."""
    info = subprocess.run(
        ["dmsetup", "info", "-c", "--noheadings", "-o", "name,blkdevname,open,attr"],
        capture_output=True, text=True, timeout=WAIT, check=False,
    )  # fmt: skip
    found = [f"dmsetup info: {info.stdout.strip() or info.stderr.strip()}"]
    found.append(f"holders of {dm}: {list(dm_holders(dm))}")
    try:
        rdev = Path("/dev", dm).stat().st_rdev
    except OSError:
        return found
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            found.extend(_fds_on(proc, rdev))
    return found


def _fds_on(proc: Path, rdev: int) -> Iterator[str]:
    """Process ``proc``'s file descriptors on block device ``rdev``, described."""
    try:
        fds = list((proc / "fd").iterdir())
    except OSError:
        return
    for fd in fds:
        try:
            st = fd.stat()
        except OSError:
            continue
        if not stat.S_ISBLK(st.st_mode) or st.st_rdev != rdev:
            continue
        try:
            cmd = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            link = os.readlink(fd)
            own = proc.name == str(os.getpid())
            kstack = "(this process)" if own else (proc / "stack").read_text(errors="replace")
        except OSError as exc:
            cmd, kstack, link = f"({exc})", "", "?"
        yield f"pid {proc.name} fd {fd.name} -> {link}: {cmd.strip()}\n{kstack}"
