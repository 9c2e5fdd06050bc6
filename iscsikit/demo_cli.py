"""The command-line half of ``iscsikit-demo``: what an open-iscsi user types, through
iscsikitd, against the demo's tgtd.

A private iscsikitd (records, socket and NBD exports under a temporary root) serves
``iscsikit-adm``: SendTargets discovery, CHAP and digests set on the node record, ``-m
node -l``, ``-m session -P 3`` with the session's NBD export, 1 MiB copied into the LUN
through that export with ``nbdcopy`` and read back, ``-m session -s``, ``-m node -u``,
and ``-k 0`` to stop the daemon.  Each command is printed as typed, with its output.
"""

from __future__ import annotations

import hashlib
import os
import shlex
import subprocess

from iscsikit.testing.daemon import RunningDaemon
from iscsikit.testing.tgtd import Tgtd

__all__ = ["cli_flow"]


class _Failed(Exception):
    pass


def _run(daemon: RunningDaemon, *args: str, show: int | None = None) -> str:
    print(f"\n$ iscsikit-adm {shlex.join(args)}")
    result = daemon.adm(*args)
    lines = (result.stdout + result.stderr).splitlines()
    for line in lines[:show] if show else lines:
        print(f"  {line}")
    if show and len(lines) > show:
        print(f"  ... ({len(lines) - show} more lines)")
    if result.returncode:
        raise _Failed(f"iscsikit-adm {shlex.join(args)} exited {result.returncode}")
    return result.stdout


def _nbdcopy(source: str, destination: str) -> None:
    print(f"\n$ nbdcopy {source} {destination}")
    subprocess.run(["nbdcopy", source, destination], check=True, timeout=120)


def cli_flow(tgtd: Tgtd, tid: int, target: str, chap: dict[str, str]) -> int:
    """Run the flow; 0 when every step did what it should."""
    with RunningDaemon() as daemon:
        root = daemon.root
        print(f"iscsikitd -f --root {root}   (pid {daemon.pid}; ISCSIKIT_ROOT={root} below)")
        try:
            _run(daemon, "-m", "discovery", "-t", "sendtargets", "-p", tgtd.portal)
            for key, value in chap.items():
                _run(daemon, "-m", "node", "-T", target, "-o", "update", "-n", key, "-v", value)
            _run(daemon, "-m", "node", "-T", target, "-p", tgtd.portal, "--login")
            _run(daemon, "-m", "session")
            p3 = _run(daemon, "-m", "session", "-P", "3")
            uri = next((w for w in p3.split() if w.startswith("nbd+unix://")), None)
            if uri is None:
                raise _Failed("no NBD export in -m session -P 3")
            data = os.urandom(1 << 20)
            image = root / "demo-1MiB.img"
            back = root / "demo-back.img"
            image.write_bytes(data)
            _nbdcopy(str(image), uri)
            _nbdcopy(uri, str(back))
            read = back.read_bytes()[: len(data)]
            digest = hashlib.sha256(data).hexdigest()[:16]
            print(f"  wrote 1 MiB through the export (sha256 {digest}...), read it back: "
                  + ("identical" if read == data else "DIFFERENT"))  # fmt: skip
            on_disk = tgtd.backing_path(tid, 1).read_bytes()[: len(data)]
            print("  tgtd's backing file holds " + ("the same bytes" if on_disk == data
                                                     else "DIFFERENT bytes"))  # fmt: skip
            if read != data or on_disk != data:
                return 1
            _run(daemon, "-m", "session", "-r", "1", "--stats", show=8)
            _run(daemon, "-m", "node", "-T", target, "-p", tgtd.portal, "--logout")
            print("\n$ iscsikit-adm -m session")
            listing = daemon.adm("-m", "session")
            print(f"  {listing.stderr.strip()}   (exit {listing.returncode})")
            _run(daemon, "-k", "0")
            daemon.wait()
        except (_Failed, subprocess.CalledProcessError) as exc:
            print(f"iscsikit-demo: {exc}\n--- iscsikitd log ---\n{daemon.log}")
            return 1
    return 0
