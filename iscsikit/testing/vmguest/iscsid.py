"""open-iscsi's own daemon, ``iscsid``, for the VM tier's guest (tests/vm and bench/).

:func:`iscsid_process` starts ``iscsid -f`` for the length of a ``with`` block, waits
(bounded) until it listens and stops it again, raising :class:`IscsidError` when any of
that fails; it needs no pytest (bench/vm_login_latency.py uses it).
:func:`iscsid_running` is the same for tests: a failure fails the test.
:func:`iscsid_listening` says whether an iscsid answers iscsiadm.  This module owns only
the process: it loads no kernel module and logs nothing in.

Facts it relies on (open-iscsi 2.1, Debian bookworm):

* iscsiadm reaches iscsid over the abstract unix socket ``@ISCSIADM_ABSTRACT_NAMESPACE``;
  iscsid binds it once it is ready for requests, so its appearance in /proc/net/unix is
  the readiness signal (``-f`` keeps iscsid in the foreground: there is no pidfile to wait
  for).
* When iscsid stops it signals its whole process group, so it gets a session of its own
  (``start_new_session``) and the caller is not hit.
* iscsid adopts every kernel session it finds at start-up, and iscsikitd leaves kernel
  sessions alone while iscsid answers: tests that want sessions to be iscsikit's run
  outside the block and may check :func:`iscsid_listening` first.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

__all__ = [
    "ISCSID_SOCKET",
    "IscsidError",
    "iscsid_listening",
    "iscsid_process",
    "iscsid_running",
]

#: iscsiadm's abstract unix socket as /proc/net/unix writes it.
ISCSID_SOCKET = "@ISCSIADM_ABSTRACT_NAMESPACE"

#: Seconds each step (start until listening, stop until the socket is gone) may take;
#: generous, the guest runs under software emulation.
TIMEOUT = 90.0


class IscsidError(RuntimeError):
    """iscsid could not be started or stopped (the message says why, with its log)."""


def iscsid_listening() -> bool:
    """Whether an iscsid listens on iscsiadm's socket (in this network namespace)."""
    with open("/proc/net/unix") as f:
        return any(line.split()[-1:] == [ISCSID_SOCKET] for line in f)


def _until(what: str, check: Callable[[], bool], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise IscsidError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.05)


@contextmanager
def iscsid_process(log: Path, timeout: float = TIMEOUT) -> Iterator[subprocess.Popen[bytes]]:
    """``iscsid -f`` for the block, its output in ``log``; yields its process.

    Raises :class:`IscsidError` when one already listens (a second iscsid could not bind
    the socket, and the first would own the sessions), or when iscsid exits or does not
    listen within ``timeout`` seconds.  Leaving the block stops iscsid (SIGTERM, SIGKILL
    if it hangs) and waits until its socket is gone, each bounded by ``timeout``.
    """
    if iscsid_listening():
        raise IscsidError(f"an iscsid already listens on {ISCSID_SOCKET}")
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            ["iscsid", "-f"], stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:

        def ready() -> bool:
            if proc.poll() is not None:
                text = log.read_text(errors="replace")
                raise IscsidError(f"iscsid exited {proc.returncode}:\n{text}")
            return iscsid_listening()

        _until("iscsid's socket", ready, timeout)
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=timeout)
        _until("iscsid's socket to close", lambda: not iscsid_listening(), timeout)


@contextmanager
def iscsid_running(log: Path) -> Iterator[subprocess.Popen[bytes]]:
    """:func:`iscsid_process` for a test: an :class:`IscsidError` fails the test."""
    import pytest  # only here: the core above runs without pytest (bench/)

    try:
        with iscsid_process(log) as proc:
            yield proc
    except IscsidError as exc:
        pytest.fail(str(exc))
