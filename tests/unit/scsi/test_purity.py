"""iscsikit.scsi is pure: importing it loads no I/O, logging, threading or clock module."""

from __future__ import annotations

import subprocess
import sys

FORBIDDEN = ("socket", "selectors", "asyncio", "logging", "subprocess", "threading", "platform")


def test_import_pulls_in_no_io_module() -> None:
    code = (
        "import sys\n"
        "before = set(sys.modules)\n"
        "import iscsikit.scsi\n"
        "print(' '.join(sorted(set(sys.modules) - before)))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.split()
    assert not [name for name in out if name.split(".")[0] in FORBIDDEN]
