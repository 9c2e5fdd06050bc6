"""iscsikitd in a subprocess for tests, with ``iscsikit-adm`` pointed at it.

:class:`RunningDaemon` starts ``iscsikitd -f`` under a private root (records, run
directory and socket all under it; a short directory, because a unix socket path has at
most 107 bytes), waits until the daemon answers, and runs ``iscsikit-adm`` with
``ISCSIKIT_ROOT`` set.  Stopping sends SIGTERM and waits; the daemon's log stays in
``<root>/iscsikitd.log``.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import TracebackType
from typing import Self

__all__ = ["RunningDaemon", "short_root"]

TIMEOUT = 30.0


def short_root(prefix: str = "ik") -> Path:
    """A new private directory with a short path (unix socket paths are short)."""
    return Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))


class RunningDaemon:
    """One iscsikitd; ``adm(...)`` runs iscsikit-adm against it."""

    def __init__(
        self,
        root: Path | None = None,
        *,
        extra: tuple[str, ...] = (),
        env: dict[str, str] | None = None,
        start: bool = True,
    ) -> None:
        self.root = root if root is not None else short_root()
        self._own_root = root is None
        self.extra = extra
        self.env = {**os.environ, "ISCSIKIT_ROOT": str(self.root), **(env or {})}
        self.env.pop("ISCSIKIT_DB_ROOT", None)
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = self.root / "iscsikitd.log"
        if start:
            self.start()

    @property
    def run_dir(self) -> Path:
        return self.root / "run" / "iscsikit"

    @property
    def socket(self) -> Path:
        return self.run_dir / "iscsikitd.sock"

    def start(self, timeout: float = TIMEOUT) -> None:
        argv = [sys.executable, "-m", "iscsikit.daemon", "-f", "-d", "2", "--root",
                str(self.root), *self.extra]  # fmt: skip
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(argv, stdout=log, stderr=log, env=self.env)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"iscsikitd exited {self.proc.returncode}:\n{self.log}")
            if self.socket.exists() and self.adm("-m", "session").returncode in (0, 21):
                return
            time.sleep(0.05)
        self.stop()
        raise TimeoutError(f"iscsikitd did not answer within {timeout} s:\n{self.log}")

    def adm(self, *args: str, timeout: float = 120.0) -> subprocess.CompletedProcess[str]:
        """``iscsikit-adm ARGS`` against this daemon (never raises on a failure code)."""
        return subprocess.run(
            [sys.executable, "-m", "iscsikit", *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    @property
    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None and self.proc.poll() is None else None

    def signal(self, signum: int) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signum)

    def wait(self, timeout: float = TIMEOUT) -> int:
        assert self.proc is not None
        return self.proc.wait(timeout)

    def stop(self, timeout: float = TIMEOUT) -> int | None:
        """SIGTERM (the daemon logs its sessions out), then SIGKILL if it hangs."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout)
        return self.proc.returncode

    def cleanup(self) -> None:
        self.stop()
        if self._own_root:
            shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.cleanup()
