"""Run the real open-iscsi ``iscsiadm`` against a scratch database, quickly.

Like ``shared/tools/iscsiadm-oracle`` (which this follows: a private mount namespace,
a scratch directory bind-mounted over ``/etc/iscsi`` and ``/run/lock/iscsi``, a fake
``/sys/class/iscsi_transport/tcp``), but each call also runs in a private *network*
namespace with a :class:`~iscsikit.testing.fake_iscsid.FakeIscsid` answering
iscsiadm's configuration queries.  So iscsiadm behaves as on a host where iscsid runs
(it applies the scratch iscsid.conf to new records) and takes milliseconds instead of
a second of IPC back-off per call.

Operations that must reach a target on the host's loopback (discovery) need the host
network namespace: pass ``host_network=True`` (then no fake iscsid runs, and iscsiadm
falls back to compiled defaults after its IPC retries, as the shared oracle does).

Needs root, ``unshare`` and Debian's open-iscsi.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

ORACLE_INITIATOR = "iqn.2004-10.com.example:oracle"


@dataclass(frozen=True, slots=True)
class OracleResult:
    returncode: int
    stdout: str
    stderr: str


def unavailable() -> str | None:
    """Why the oracle cannot run here, or None."""
    if shutil.which("iscsiadm") is None and not Path("/usr/sbin/iscsiadm").exists():
        return "open-iscsi's iscsiadm is not installed (Debian package open-iscsi)"
    if shutil.which("unshare") is None:
        return "unshare (util-linux) is not installed"
    if os.geteuid() != 0:
        return "the iscsiadm oracle needs root (mount namespaces)"
    return None


class Oracle:
    """A scratch open-iscsi DB at ``<base>/etc-iscsi`` and a way to run iscsiadm on it."""

    def __init__(self, base: Path, *, initiator_name: str = ORACLE_INITIATOR) -> None:
        self.base = base
        self.etc = base / "etc-iscsi"
        self.lock = base / "lock"
        self.sys_class = base / "sys-class"
        self.initiator_name = initiator_name
        for d in (self.etc, self.lock, self.sys_class / "iscsi_transport" / "tcp"):
            d.mkdir(parents=True, exist_ok=True)
        conf = self.etc / "iscsid.conf"
        if not conf.exists():
            system = Path("/etc/iscsi/iscsid.conf")
            text = system.read_text() if system.exists() else ""
            lines = [
                "iscsid.startup = /bin/true" if line.startswith("iscsid.startup") else line
                for line in text.splitlines()
            ]
            conf.write_text("\n".join(lines) + "\n")
        name = self.etc / "initiatorname.iscsi"
        if not name.exists():
            name.write_text(f"InitiatorName={initiator_name}\n")
        (self.sys_class / "iscsi_transport" / "tcp" / "caps").write_text("0x39\n")
        (self.sys_class / "iscsi_transport" / "tcp" / "handle").write_text("18446744072102035520\n")

    @property
    def db_root(self) -> Path:
        """The directory iscsiadm sees as /etc/iscsi (its DB root on Debian 2.1.8)."""
        return self.etc

    def run(self, *args: str, host_network: bool = False, timeout: float = 120.0) -> OracleResult:
        """``iscsiadm <args>`` inside the namespaces; returns exit code and output."""
        Path("/run/lock/iscsi").mkdir(parents=True, exist_ok=True)
        inner = [sys.executable, "-m", "iscsikit.testing.oracle", str(self.base)]
        if host_network:
            inner.append("--host-network")
        flags = ["-m"] if host_network else ["-m", "-n"]
        proc = subprocess.run(
            ["unshare", *flags, *inner, "--", *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        return OracleResult(proc.returncode, proc.stdout, proc.stderr)


def db_tree(root: Path, *, skip: tuple[str, ...] = ()) -> dict[str, str]:
    """A records database as data, to compare what two programs wrote: relative path ->
    file content, ``-> target`` for a link (the database root removed from its target,
    whether ``root`` or ``/etc/iscsi``) or ``<dir>``.  Lock, iscsid.conf, the initiator
    name file and iscsikit's own files are left out, and paths starting with ``skip``."""
    left_out = (".lock", "iscsid.conf", "initiatorname", ".iscsikit", *skip)
    out: dict[str, str] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = Path(dirpath) / name
            rel = str(path.relative_to(root))
            if rel.startswith(left_out):
                continue
            if path.is_symlink():
                target = os.readlink(path)
                for prefix in (str(root), "/etc/iscsi"):
                    target = target.removeprefix(prefix + "/")
                out[rel] = f"-> {target}"
            elif path.is_dir():
                out[rel] = "<dir>"
            else:
                out[rel] = path.read_text(errors="surrogateescape")
    return out


def _inner(argv: list[str]) -> int:
    """Inside the namespaces: bind-mount the scratch DB, serve config queries, exec iscsiadm."""
    sep = argv.index("--")
    base = Path(argv[0])
    host_network = "--host-network" in argv[1:sep]
    args = argv[sep + 1 :]
    for src, dst in (
        (base / "etc-iscsi", "/etc/iscsi"),
        (base / "lock", "/run/lock/iscsi"),
        (base / "sys-class", "/sys/class"),
    ):
        subprocess.run(["mount", "--bind", str(src), dst], check=True)
    iscsiadm = shutil.which("iscsiadm") or "/usr/sbin/iscsiadm"
    if host_network:
        return subprocess.run([iscsiadm, *args], check=False).returncode
    from iscsikit.config.initiatorname import read_initiator_name
    from iscsikit.testing.fake_iscsid import FakeIscsid

    name = read_initiator_name(base / "etc-iscsi" / "initiatorname.iscsi") or ORACLE_INITIATOR
    with FakeIscsid(initiator_name=name):
        return subprocess.run([iscsiadm, *args], check=False).returncode


if __name__ == "__main__":
    sys.exit(_inner(sys.argv[1:]))
