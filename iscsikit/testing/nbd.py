"""``iscsikit-nbd`` in a subprocess, for tests: started, ready, stopped with SIGTERM."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
from pathlib import Path

TIMEOUT = 60.0


class NbdCommand:
    """``python -m iscsikit.nbd DEVICE --socket PATH [extra...]``, ready once it printed
    its first line on stderr (the "serving ..." line, or an error before exiting)."""

    def __init__(self, device: str, sock: Path, *extra: str, timeout: float = TIMEOUT) -> None:
        self.path = sock
        self.timeout = timeout
        argv = [sys.executable, "-m", "iscsikit.nbd", device, "--socket", str(sock), *extra]
        self.proc = subprocess.Popen(argv, stderr=subprocess.PIPE, text=True)
        self.lines: list[str] = []
        ready = threading.Event()

        def drain() -> None:  # keep reading, or a chatty server would block on a full pipe
            assert self.proc.stderr is not None
            for line in self.proc.stderr:
                self.lines.append(line)
                ready.set()
            ready.set()

        threading.Thread(target=drain, daemon=True).start()
        if not ready.wait(timeout):
            self.stop()
            raise TimeoutError("iscsikit-nbd did not report readiness")
        if not self.lines:
            raise RuntimeError("iscsikit-nbd exited before it was ready")
        self.ready_line = self.lines[0]

    @property
    def uri(self) -> str:
        return f"nbd+unix:///?socket={self.path}"

    def stop(self) -> int:
        """SIGTERM, then wait (SIGKILL if it does not exit in time); the exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(self.timeout)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait(self.timeout)


__all__ = ["NbdCommand"]
