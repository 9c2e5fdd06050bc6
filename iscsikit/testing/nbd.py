"""NBD servers for tests: ``iscsikit-nbd`` in a subprocess (started, ready, stopped with
SIGTERM), and :func:`iscsikit.nbd.server.serve` on an event loop of its own in a thread."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

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


class ThreadServer:
    """``serve(device, unix_path=path, **kwargs)`` on its own event loop in a thread."""

    def __init__(self, device: Any, path: Path, *, timeout: float = TIMEOUT, **kwargs: Any) -> None:
        from iscsikit.nbd.server import serve

        self.path = path
        self.timeout = timeout
        self.loop = asyncio.new_event_loop()
        self.task: asyncio.Task[None] | None = None
        ready = threading.Event()

        def main() -> None:
            asyncio.set_event_loop(self.loop)
            coro = serve(device, unix_path=path, ready=lambda _uri: ready.set(), **kwargs)
            self.task = self.loop.create_task(coro)
            try:
                self.loop.run_until_complete(self.task)
            except asyncio.CancelledError:
                pass
            finally:
                self.loop.close()

        self.thread = threading.Thread(target=main, daemon=True)
        self.thread.start()
        if not ready.wait(timeout):
            raise TimeoutError(f"the NBD server at {path} did not start")

    def stop(self) -> None:
        """Cancel serve() and wait for its thread (AssertionError if it hangs)."""
        assert self.task is not None
        self.loop.call_soon_threadsafe(self.task.cancel)
        self.thread.join(self.timeout)
        assert not self.thread.is_alive(), "the NBD server thread did not stop"


__all__ = ["NbdCommand", "ThreadServer"]
