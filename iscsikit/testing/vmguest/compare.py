"""Running open-iscsi's and iscsikit's tools side by side in the VM tier's guest and
comparing what they print (tests/vm).

:func:`run` runs any command (``iscsiadm``, ``tgtadm``, ...) bounded by
:data:`~iscsikit.testing.vmguest.checks.WAIT`; :func:`adm` runs this checkout's
``iscsikit-adm`` on the guest's real ``/sys`` and ``/etc/iscsi`` without a daemon (the
sysfs service, as iscsiadm without iscsid); :func:`assert_same_lines` fails with a
unified diff when two outputs differ in other than the lines allowed to.
"""

from __future__ import annotations

import difflib
import os
import subprocess
import sys
from collections.abc import Sequence

from iscsikit.testing.vmguest.checks import WAIT

__all__ = ["IPC_ONLY", "adm", "assert_same_lines", "run"]

#: Lines of ``-m session -P 3`` / ``-m host -P 4`` that iscsiadm fills from iscsid's memory
#: over its IPC, not from sysfs: a program that does not own the session prints
#: "Unknown" there (as iscsiadm does when iscsid is down), the owner the real state.
IPC_ONLY = ("iSCSI Connection State:", "Internal iscsid Session State:")


def run(*argv: str, timeout: float = WAIT) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)


def adm(*argv: str, timeout: float = WAIT) -> subprocess.CompletedProcess[str]:
    """``iscsikit-adm ARGV`` of this checkout on the guest's real root, no daemon."""
    env = {k: v for k, v in os.environ.items() if k != "ISCSIKIT_ROOT"}
    return subprocess.run(
        [sys.executable, "-m", "iscsikit", *argv],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        env=env,
    )


def assert_same_lines(
    theirs: str, ours: str, *, skip: Sequence[str] = (), what: str = "iscsiadm"
) -> list[str]:
    """``theirs`` (open-iscsi) and ``ours`` (iscsikit) are the same text but for lines that
    start (after indentation) with one of ``skip``; returns the lines compared."""
    prefixes = tuple(skip)

    def kept(text: str) -> list[str]:
        return [
            ln for ln in text.splitlines() if not (prefixes and ln.strip().startswith(prefixes))
        ]

    compared = kept(ours)
    diff = "\n".join(difflib.unified_diff(kept(theirs), compared, lineterm=""))
    assert not diff, f"{what} (-) vs iscsikit (+):\n{diff}"
    return compared
