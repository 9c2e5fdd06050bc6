"""Run the independent iSCSI initiators (libiscsi's iscsi-ls, open-iscsi's iscsiadm) and
parse their answers into comparable sets.

This module owns the command lines and output parsers of those peers, so a test can say
``assert iscsikit_result == iscsi_ls_targets(portal)``. Every discovery result is a set of
``(portal, tpgt, target_iqn)`` tuples with portal written ``ip:port`` (``[::1]:port`` for
IPv6), exactly as both peers print it. Every run has a bounded timeout and a checked exit
status (:class:`PeerError`). It must not import iscsikit's own protocol code.

Availability: :func:`iscsi_ls_unavailable` and :func:`iscsiadm_unavailable` return the
reason a peer cannot run here (for ``pytest.skip``), or None.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

__all__ = [
    "DEFAULT_ORACLE_INITIATOR",
    "Discovered",
    "PeerError",
    "iscsi_ls_targets",
    "iscsi_ls_unavailable",
    "iscsiadm_discover",
    "iscsiadm_oracle",
    "iscsiadm_unavailable",
    "parse_iscsi_ls",
    "parse_sendtargets",
    "shared_dir",
]

#: One discovered (portal, tpgt, target name), e.g. ("127.0.0.1:3260", 1, "iqn....:disk").
Discovered = tuple[str, int, str]

DEFAULT_ORACLE_INITIATOR = "iqn.2004-10.com.example:oracle"

# iscsiadm's ISCSI_ERR_NO_OBJS_FOUND: discovery succeeded but found no targets.
_NO_OBJS_FOUND = 21
# Variables libiscsi reads for CHAP when the URL carries no credentials.
_LIBISCSI_CHAP_VARS = (
    "LIBISCSI_CHAP_USERNAME",
    "LIBISCSI_CHAP_PASSWORD",
    "LIBISCSI_CHAP_TARGET_USERNAME",
    "LIBISCSI_CHAP_TARGET_PASSWORD",
)


class PeerError(RuntimeError):
    """A peer program failed: carries its command line, exit status and output."""

    def __init__(self, cmd: list[str], returncode: int, output: str) -> None:
        self.cmd = cmd
        self.returncode = returncode
        self.output = output
        super().__init__(f"{' '.join(cmd)} exited {returncode}: {output.strip()}")


def _run(
    cmd: list[str], *, timeout: float, env: dict[str, str] | None = None
) -> tuple[int, str, str]:
    proc = subprocess.run(
        cmd, stdin=subprocess.DEVNULL, capture_output=True, env=env, timeout=timeout, check=False
    )
    return (
        proc.returncode,
        proc.stdout.decode(errors="replace"),
        proc.stderr.decode(errors="replace"),
    )


# -- libiscsi: iscsi-ls ---------------------------------------------------------------

_ISCSI_LS_TARGET = re.compile(r"^Target:(\S+) Portal:(\S+),(\d+)\s*$")


def iscsi_ls_unavailable() -> str | None:
    """Why iscsi-ls cannot run here (Debian package libiscsi-bin), or None."""
    if shutil.which("iscsi-ls") is None:
        return "iscsi-ls not installed (Debian package libiscsi-bin)"
    return None


def parse_iscsi_ls(text: str) -> set[Discovered]:
    """The ``Target:<iqn> Portal:<ip:port>,<tpgt>`` lines of iscsi-ls output."""
    return {
        (m[2], int(m[3]), m[1])
        for m in (_ISCSI_LS_TARGET.match(line) for line in text.splitlines())
        if m
    }


def iscsi_ls_targets(
    portal: str,
    *,
    user: str | None = None,
    password: str | None = None,
    target_user: str | None = None,
    target_password: str | None = None,
    initiator_name: str | None = None,
    show_luns: bool = True,
    timeout: float = 30.0,
) -> set[Discovered]:
    """SendTargets discovery with libiscsi's ``iscsi-ls [-s] iscsi://<portal>``.

    With ``show_luns`` (``-s``, the default) iscsi-ls also logs in to every target it
    found and lists its LUNs, so a login failure (e.g. CHAP) raises :class:`PeerError`.
    CHAP credentials go through libiscsi's environment variables rather than the URL, so
    any character works in a secret. libiscsi 1.19 does MD5 CHAP only; with
    ``target_user`` (mutual CHAP) it demands mutual CHAP on the discovery session too, so
    the target needs a global outgoing account as well.
    """
    cmd = ["iscsi-ls"]
    if show_luns:
        cmd.append("-s")
    if initiator_name:
        cmd += ["-i", initiator_name]
    cmd.append(f"iscsi://{portal}")
    env = {k: v for k, v in os.environ.items() if k not in _LIBISCSI_CHAP_VARS}
    for var, value in zip(
        _LIBISCSI_CHAP_VARS, (user, password, target_user, target_password), strict=True
    ):
        if value is not None:
            env[var] = value
    rc, out, err = _run(cmd, timeout=timeout, env=env)
    if rc != 0:
        raise PeerError(cmd, rc, out + err)
    return parse_iscsi_ls(out)


# -- open-iscsi: iscsiadm via the shared oracle wrapper --------------------------------

_SENDTARGETS_LINE = re.compile(r"^(\S+),(\d+) (\S+)\s*$")


def shared_dir() -> Path | None:
    """The project's ``shared/`` directory (tools, reference), if it can be found.

    ``$ISCSIKIT_SHARED`` wins; else ``../shared`` beside the source checkout this module
    lives in, then beside the current directory (tox installs the package into its own
    environment, so ``__file__`` is not in the checkout there), then beside the local
    repository the current checkout was cloned from.
    """
    env = os.environ.get("ISCSIKIT_SHARED")
    candidates = [Path(env)] if env else []
    candidates += [Path(__file__).resolve().parents[3] / "shared", Path.cwd().parent / "shared"]
    origin = _origin_checkout(Path.cwd())
    if origin is not None:
        candidates.append(origin.parent / "shared")
    for candidate in candidates:
        if (candidate / "tools").is_dir():
            return candidate
    return None


def _origin_checkout(checkout: Path) -> Path | None:
    """The local repository ``checkout`` was cloned from, if any: a clean clone made in a
    temporary directory (how CI runs) finds ``shared/`` beside its origin."""
    try:
        url = subprocess.run(
            ["git", "-C", str(checkout), "remote", "get-url", "origin"],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        ).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        return None
    if url.startswith("file://"):
        url = url[len("file://") :]
    if not url.startswith("/"):
        return None
    path = Path(url)
    return path if path.is_dir() else None


def iscsiadm_oracle() -> Path | None:
    """Path of ``shared/tools/iscsiadm-oracle``, or None."""
    base = shared_dir()
    if base is None:
        return None
    path = base / "tools" / "iscsiadm-oracle"
    return path if path.is_file() else None


def iscsiadm_unavailable() -> str | None:
    """Why the iscsiadm oracle cannot run here, or None."""
    if iscsiadm_oracle() is None:
        return "shared/tools/iscsiadm-oracle not found (set ISCSIKIT_SHARED)"
    if shutil.which("iscsiadm") is None:
        return "iscsiadm not installed (Debian package open-iscsi)"
    missing = [prog for prog in ("unshare", "mount") if shutil.which(prog) is None]
    if missing:
        return f"iscsiadm oracle needs {', '.join(missing)}"
    if os.geteuid() != 0:
        return "iscsiadm oracle needs root (private mount namespace)"
    return None


def parse_sendtargets(text: str) -> set[Discovered]:
    """The ``ip:port,tpgt iqn`` lines iscsiadm prints for SendTargets discovery."""
    return {
        (m[1], int(m[2]), m[3])
        for m in (_SENDTARGETS_LINE.match(line) for line in text.splitlines())
        if m
    }


def _oracle(db: Path, *args: str, timeout: float) -> tuple[list[str], int, str, str]:
    oracle = iscsiadm_oracle()
    if oracle is None:
        raise FileNotFoundError("shared/tools/iscsiadm-oracle not found (set ISCSIKIT_SHARED)")
    cmd = ["bash", str(oracle), "--db", str(db), "--", *args]
    rc, out, err = _run(cmd, timeout=timeout)
    return cmd, rc, out, err


def _checked(db: Path, *args: str, timeout: float) -> str:
    cmd, rc, out, err = _oracle(db, *args, timeout=timeout)
    if rc != 0:
        raise PeerError(cmd, rc, out + err)
    return out


def iscsiadm_discover(
    portal: str,
    *,
    db: Path,
    initiator_name: str = DEFAULT_ORACLE_INITIATOR,
    user: str | None = None,
    password: str | None = None,
    iface: str = "iscsikit",
    timeout: float = 60.0,
) -> set[Discovered]:
    """SendTargets discovery with the real iscsiadm (2.1.8) against a scratch records DB.

    Runs ``iscsiadm -m discovery -t st -p <portal> -I <iface>`` through
    ``shared/tools/iscsiadm-oracle --db <db>``: no iscsid runs, so the initiator name comes
    from an iface record this function (re)creates. With ``user``/``password`` it sets up
    discovery CHAP on a ``discoverydb`` record and runs ``--discover`` instead. "No
    targets" (exit 21) is an empty set; any other failure raises :class:`PeerError`.
    """
    db.mkdir(parents=True, exist_ok=True)
    # "-o new" on an existing iface resets it, so always set the name afterwards.
    _checked(db, "-m", "iface", "-I", iface, "-o", "new", timeout=timeout)
    _checked(
        db, "-m", "iface", "-I", iface, "-o", "update",
        "-n", "iface.initiatorname", "-v", initiator_name, timeout=timeout,
    )  # fmt: skip
    if user is None:
        args = ["-m", "discovery", "-t", "st", "-p", portal, "-I", iface]
    else:
        rec = ["-m", "discoverydb", "-t", "st", "-p", portal, "-I", iface]
        _checked(db, *rec, "-o", "new", timeout=timeout)
        settings = {
            "discovery.sendtargets.auth.authmethod": "CHAP",
            "discovery.sendtargets.auth.username": user,
            "discovery.sendtargets.auth.password": password or "",
        }
        for name, value in settings.items():
            _checked(db, *rec, "-o", "update", "-n", name, "-v", value, timeout=timeout)
        args = [*rec, "--discover"]
    cmd, rc, out, err = _oracle(db, *args, timeout=timeout)
    if rc == _NO_OBJS_FOUND:
        return set()
    if rc != 0:
        raise PeerError(cmd, rc, out + err)
    return parse_sendtargets(out)
