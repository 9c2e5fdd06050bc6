"""``iscsikit.netlink`` is sans-I/O: importing it loads no socket, event loop or thread."""

from __future__ import annotations

import subprocess
import sys

FORBIDDEN = {"socket", "select", "selectors", "asyncio", "threading", "subprocess", "time"}


def test_importing_the_codec_loads_no_io_module() -> None:
    code = (
        "import sys; before = set(sys.modules); import iscsikit.netlink.decoder, "
        "iscsikit.netlink.messages; print(' '.join(sorted(set(sys.modules) - before)))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    loaded = set(out.stdout.split())
    assert "iscsikit.netlink.events" in loaded
    assert loaded & FORBIDDEN == set()
