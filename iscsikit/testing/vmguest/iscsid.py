"""open-iscsi's own daemon, ``iscsid``, for the VM tier's guest tests (tests/vm).

:func:`iscsid_running` starts ``iscsid -f`` for the length of a ``with`` block and stops it
again; :func:`iscsid_listening` says whether an iscsid answers iscsiadm.  This module owns
only the process: it loads no kernel module and logs nothing in.

Facts it relies on (open-iscsi 2.1, Debian bookworm):

* iscsiadm reaches iscsid over the abstract unix socket ``@ISCSIADM_ABSTRACT_NAMESPACE``;
  iscsid binds it once it is ready for requests, so its appearance in /proc/net/unix is
  the readiness signal (``-f`` keeps iscsid in the foreground: there is no pidfile to wait
  for).
* When iscsid stops it signals its whole process group, so it gets a session of its own
  (``start_new_session``) and the test runner is not hit.
* iscsid adopts every kernel session it finds at start-up, and iscsikitd leaves kernel
  sessions alone while iscsid answers: tests that want sessions to be iscsikit's run
  outside the block and may check :func:`iscsid_listening` first.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from iscsikit.testing.vmguest.checks import WAIT, wait_for

__all__ = ["ISCSID_SOCKET", "iscsid_listening", "iscsid_running"]

#: iscsiadm's abstract unix socket as /proc/net/unix writes it.
ISCSID_SOCKET = "@ISCSIADM_ABSTRACT_NAMESPACE"


def iscsid_listening() -> bool:
    """Whether an iscsid listens on iscsiadm's socket (in this network namespace)."""
    with open("/proc/net/unix") as f:
        return any(line.split()[-1:] == [ISCSID_SOCKET] for line in f)


@contextmanager
def iscsid_running(log: Path) -> Iterator[subprocess.Popen[bytes]]:
    """``iscsid -f`` for the block, its output in ``log``; yields its process.

    Fails the test (with the log) when iscsid exits or does not listen within
    :data:`~iscsikit.testing.vmguest.checks.WAIT` seconds, or when one already listens
    (a second iscsid could not bind the socket, and the first would own the sessions).
    Leaving the block stops iscsid (SIGTERM, SIGKILL if it hangs) and waits until its
    socket is gone.
    """
    if iscsid_listening():
        pytest.fail(f"an iscsid already listens on {ISCSID_SOCKET}")
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            ["iscsid", "-f"], stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:

        def ready() -> bool:
            if proc.poll() is not None:
                pytest.fail(f"iscsid exited {proc.returncode}:\n{log.read_text(errors='replace')}")
            return iscsid_listening()

        wait_for("iscsid's socket", ready)
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=WAIT)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=WAIT)
        wait_for("iscsid's socket to close", lambda: not iscsid_listening())
