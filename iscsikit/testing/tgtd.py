"""Private tgtd (Linux SCSI target daemon) instances for integration tests.

This module owns starting, configuring and stopping *private* ``tgtd`` processes on
loopback: each instance has its own portal port, its own management (IPC) socket and
its own scratch directory, so instances run side by side and never touch a system tgtd.
It has no pytest dependency (the fixtures live in :mod:`iscsikit.testing.plugin`) and it
must not import the iSCSI protocol code: it is the independent peer the protocol code is
tested against.

How the isolation works (tgt 1.0.85):

* ``TGT_IPC_SOCKET=<dir>/socket`` in the environment of tgtd and of every tgtadm call, plus
  ``-C <n>`` (tgtd's "control port", a plain integer >= 0) on both, makes them talk over
  the unix socket ``<dir>/socket.<n>``; tgtd also ``lockf``s ``<dir>/socket.<n>.lock`` and
  exits with "another tgtd is using ..." if that lock is held. The files stay behind after
  tgtd exits. We pick the smallest ``n`` whose socket file does not exist in the socket
  directory and, should another process win the race for it, retry with the next one.
* A unix socket path is limited to 107 bytes (tgtd: "managment path too long"); pytest's
  ``tmp_path`` can be longer, so the socket then lives in a short private directory under
  the system temp directory, removed by :meth:`Tgtd.stop`.
* ``-f`` keeps tgtd in the foreground so the PID we hold is tgtd's own; it runs in a new
  session (``start_new_session=True``) so a terminal's Ctrl-C never reaches it and stop()
  can signal its whole process group.
* tgtd ignores SIGTERM and SIGINT (1.0.85). :meth:`Tgtd.stop` therefore sends SIGTERM,
  waits a short grace period, then SIGKILL; tgtd holds no state worth flushing.
* A portal that cannot be bound (port taken) does *not* make tgtd exit: it logs
  "failed to create/bind to portal" and runs without it. Start-up watches the log for
  that and retries with a new port when the port was picked automatically.
* IPv6: ``--iscsi portal=[::1]:<port>`` works; the portal string is ``[::1]:<port>``.

Access control in tgt is an OR: an initiator may log in if its address matches an
address ACL entry (``ALL`` matches everyone) *or* its name matches a name ACL entry. A
name-only ACL therefore needs ``add_target(..., acl=None)`` followed by
:meth:`Tgtd.bind_initiator_name`.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Self

from iscsikit.proto.address import format_portal

__all__ = [
    "DEFAULT_LUN_SIZE",
    "Connection",
    "Tgtd",
    "TgtadmError",
    "TgtdError",
    "free_port",
    "tgt_missing",
]

#: Default size of a file-backed LUN (sparse, so it costs no disk space).
DEFAULT_LUN_SIZE = 16 * 1024 * 1024

TGTD = "tgtd"
TGTADM = "tgtadm"

# sockaddr_un.sun_path is 108 bytes including the terminating NUL.
_SUN_PATH_MAX = 107
_START_ATTEMPTS = 5
_PORTAL_BIND_FAILED = "failed to create/bind to portal"
_LOCK_HELD = "another tgtd is using"


class TgtdError(RuntimeError):
    """tgtd could not be started (the message carries the tail of its log)."""


class TgtadmError(RuntimeError):
    """A tgtadm command failed; carries the command line, exit status and output."""

    def __init__(self, cmd: list[str], returncode: int, output: str) -> None:
        self.cmd = cmd
        self.returncode = returncode
        self.output = output
        super().__init__(f"{' '.join(cmd)} exited {returncode}: {output.strip()}")


@dataclass(frozen=True, slots=True)
class Connection:
    """One iSCSI connection as ``tgtadm --op show --mode conn`` reports it."""

    tid: int
    sid: int
    cid: int
    initiator: str
    address: str


def tgt_missing() -> list[str]:
    """Names of the tgt programs (tgtd, tgtadm) not found on PATH; empty if all are there."""
    return [prog for prog in (TGTD, TGTADM) if shutil.which(prog) is None]


def _family(host: str) -> socket.AddressFamily:
    return socket.AF_INET6 if ":" in host else socket.AF_INET


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port on ``host`` that nothing listens on right now (the kernel's pick).

    There is an unavoidable window between closing our probe socket and the caller binding
    the port; :class:`Tgtd` covers it by retrying with a new port.
    """
    with socket.socket(_family(host), socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


class Tgtd:
    """A running private tgtd listening on one loopback portal.

    Constructing the object starts tgtd and waits (up to ``start_timeout`` seconds) until
    the portal accepts TCP connections and ``tgtadm --op show --mode target`` answers.
    Use it as a context manager, or call :meth:`stop` (idempotent) yourself.

    ``workdir`` receives the log (``tgtd.<n>.log``) and the sparse LUN backing files
    (``tgtd.<n>.tid<T>-lun<L>.img``); several instances may share one workdir. With
    ``keep=True`` stop() leaves the backing files in place (the log is always kept).
    ``iscsi_params`` is appended to tgtd's ``--iscsi portal=...`` argument, for example
    ``"nop_interval=1,nop_count=3"``.  ``netns`` runs tgtd in that network namespace
    (``ip netns exec``; give ``port`` then, and a ``host`` this namespace can reach:
    readiness is checked from here, tgtadm talks over the unix socket).
    """

    def __init__(
        self,
        workdir: Path,
        *,
        host: str = "127.0.0.1",
        port: int | None = None,
        iscsi_params: str = "",
        start_timeout: float = 10.0,
        keep: bool = False,
        netns: str | None = None,
    ) -> None:
        if netns is not None and port is None:
            raise ValueError("a tgtd in a network namespace needs its port given")
        self._netns = netns
        self.workdir = Path(workdir).resolve()
        self.workdir.mkdir(parents=True, exist_ok=True)
        self._host = host.strip("[]")
        self._iscsi_params = iscsi_params.strip(",")
        self._keep = keep
        self._proc: subprocess.Popen[bytes] | None = None
        self._private_sockdir: Path | None = None
        self._backing: list[Path] = []
        self._tids: set[int] = set()
        self._stopped = False
        self._port = 0
        self._control = 0
        self._sockdir = self._socket_dir()
        self._start(port, start_timeout)

    # -- life cycle -------------------------------------------------------------------

    def _socket_dir(self) -> Path:
        # Room for "/socket.NNNNN.lock" after the directory.
        if len(str(self.workdir)) + len("/socket.99999.lock") <= _SUN_PATH_MAX:
            return self.workdir
        self._private_sockdir = Path(tempfile.mkdtemp(prefix="tgt-"))
        return self._private_sockdir

    def _free_control_port(self, start: int) -> int:
        n = start
        while (self._sockdir / f"socket.{n}").exists() or (
            self._sockdir / f"socket.{n}.lock"
        ).exists():
            n += 1
        return n

    def _start(self, port: int | None, start_timeout: float) -> None:
        control = 0
        last_error = ""
        try:
            for _attempt in range(_START_ATTEMPTS):
                control = self._free_control_port(control)
                self._control = control
                self._port = port if port is not None else free_port(self._host)
                error = self._spawn_and_wait(start_timeout)
                if error is None:
                    return
                last_error = error
                self._kill()
                if _LOCK_HELD in error:
                    control += 1  # someone else took this control port: next one
                elif _PORTAL_BIND_FAILED in error and port is None:
                    pass  # lost the race for the free port: pick another
                else:
                    break
            raise TgtdError(f"tgtd did not start ({self.portal}): {last_error}")
        except BaseException:
            self.stop()
            raise

    @property
    def _log_path(self) -> Path:
        return self.workdir / f"tgtd.{self._control}.log"

    def _env(self) -> dict[str, str]:
        env = dict(os.environ)
        env["TGT_IPC_SOCKET"] = str(self._sockdir / "socket")
        return env

    def _spawn_and_wait(self, start_timeout: float) -> str | None:
        """Start tgtd once; None when ready, else the reason it is not."""
        portal_arg = f"portal={self.portal}"
        if self._iscsi_params:
            portal_arg += f",{self._iscsi_params}"
        cmd = [TGTD, "-f", "-C", str(self._control), "--iscsi", portal_arg]
        if self._netns is not None:
            cmd = ["ip", "netns", "exec", self._netns, *cmd]
        with self._log_path.open("ab") as log:
            log.write(f"+ {' '.join(cmd)}\n".encode())
            log.flush()
            self._proc = subprocess.Popen(
                cmd,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=self._env(),
                start_new_session=True,
            )
        deadline = time.monotonic() + start_timeout
        portal_up = False
        while True:
            log_text = self.log
            if self._proc.poll() is not None:
                return f"exited with status {self._proc.returncode}: {_tail(log_text)}"
            if _PORTAL_BIND_FAILED in log_text:
                return _tail(log_text)
            portal_up = portal_up or self._portal_accepts()
            if portal_up and self._ready():
                # tgtd binds its portals before it answers tgtadm, so a failed bind is in
                # the log by now; "accepts" may have been another listener on the port.
                log_text = self.log
                if _PORTAL_BIND_FAILED in log_text:
                    return _tail(log_text)
                return None
            if time.monotonic() > deadline:
                state = "tgtadm does not answer" if portal_up else "portal not listening"
                return f"not ready after {start_timeout:g} s ({state}): {_tail(log_text)}"
            time.sleep(0.05)

    def _portal_accepts(self) -> bool:
        try:
            with socket.create_connection((self._host, self._port), timeout=0.5):
                return True
        except OSError:
            return False

    def _ready(self) -> bool:
        try:
            self.tgtadm("--op", "show", "--mode", "target", timeout=2.0)
        except (TgtadmError, subprocess.TimeoutExpired):
            return False
        return True

    def _kill(self, grace: float = 0.2) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if proc.poll() is None:
            for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 10.0)):
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, sig)
                try:
                    proc.wait(timeout=wait)
                    break
                except subprocess.TimeoutExpired:
                    continue
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=0)  # reap

    def stop(self, *, grace: float = 0.2) -> None:
        """Stop tgtd (SIGTERM, then SIGKILL after ``grace`` s) and clean up. Idempotent.

        tgt 1.0.85 ignores SIGTERM, so in practice the SIGKILL ends it.
        """
        if self._stopped:
            return
        self._stopped = True
        self._kill(grace)
        if not self._keep:
            for path in self._backing:
                path.unlink(missing_ok=True)
        if self._private_sockdir is not None:
            shutil.rmtree(self._private_sockdir, ignore_errors=True)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = "stopped" if self._stopped else f"pid {self.pid}"
        return f"<Tgtd {self.portal} -C {self._control} {state}>"

    # -- properties -------------------------------------------------------------------

    @property
    def host(self) -> str:
        """The portal's address, without brackets (``127.0.0.1``, ``::1``)."""
        return self._host

    @property
    def port(self) -> int:
        return self._port

    @property
    def portal(self) -> str:
        """``127.0.0.1:3260`` or ``[::1]:3260``."""
        return format_portal(self._host, self._port)

    @property
    def control_port(self) -> int:
        """The ``-C`` number: the IPC socket is ``<socket_dir>/socket.<control_port>``."""
        return self._control

    @property
    def ipc_socket(self) -> Path:
        """The value given to tgtd and tgtadm as ``TGT_IPC_SOCKET``."""
        return self._sockdir / "socket"

    @property
    def pid(self) -> int | None:
        return None if self._proc is None else self._proc.pid

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    @property
    def log_path(self) -> Path:
        return self._log_path

    @property
    def log(self) -> str:
        """Everything tgtd wrote to stdout/stderr so far."""
        try:
            return self._log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    # -- tgtadm -----------------------------------------------------------------------

    def tgtadm(self, *args: str, timeout: float = 10.0) -> str:
        """Run ``tgtadm -C <n> --lld iscsi <args>``; its stdout, or raise TgtadmError."""
        cmd = [TGTADM, "-C", str(self._control), "--lld", "iscsi", *args]
        proc = subprocess.run(
            cmd,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            env=self._env(),
            timeout=timeout,
            check=False,
        )
        out = proc.stdout.decode(errors="replace")
        if proc.returncode != 0:
            raise TgtadmError(cmd, proc.returncode, out + proc.stderr.decode(errors="replace"))
        return out

    def show(self) -> str:
        """``--op show --mode target``: the human-readable dump of all targets."""
        return self.tgtadm("--op", "show", "--mode", "target")

    def add_target(
        self,
        iqn: str,
        *,
        tid: int | None = None,
        luns: int = 1,
        lun_size: int = DEFAULT_LUN_SIZE,
        null: bool = False,
        acl: Iterable[str] | None = ("ALL",),
        backing: Sequence[Path] | None = None,
    ) -> int:
        """Create target ``iqn`` with LUNs 1..``luns`` and return its tid.

        LUN 0 is tgt's own controller LUN. File LUNs are sparse files of ``lun_size``
        bytes in the workdir; ``null=True`` uses ``--bstype null`` instead (no data is
        stored, reads return zeros; tgt reports a fixed size). ``acl`` lists initiator
        addresses bound with ``-I`` (``ALL``, an address, or a CIDR); None or empty
        leaves the target closed until an ACL is bound.  ``backing`` reuses existing
        files (LUN ``i + 1`` on ``backing[i]``, contents kept): a target that comes back
        after a crash, or from another instance.
        """
        if tid is None:
            tid = max(self._tids, default=0) + 1
        self.tgtadm("--op", "new", "--mode", "target", "--tid", str(tid), "--targetname", iqn)
        self._tids.add(tid)
        if backing is not None:
            luns = len(backing)
        for lun in range(1, luns + 1):
            if backing is not None:
                store = ["--backing-store", str(backing[lun - 1])]
            elif null:
                store = ["--bstype", "null", "--backing-store", f"null-{tid}-{lun}"]
            else:
                path = self.backing_path(tid, lun)
                with path.open("wb") as f:
                    f.truncate(lun_size)
                self._backing.append(path)
                store = ["--backing-store", str(path)]
            self.tgtadm(
                "--op", "new", "--mode", "logicalunit", "--tid", str(tid), "--lun", str(lun),
                *store,
            )  # fmt: skip
        for address in acl or ():
            self.bind_address(tid, address)
        return tid

    def backing_path(self, tid: int, lun: int = 1) -> Path:
        """The file behind LUN ``lun`` of target ``tid`` (file-backed LUNs only)."""
        return self.workdir / f"tgtd.{self._control}.tid{tid}-lun{lun}.img"

    def delete_target(self, tid: int, *, force: bool = True) -> None:
        """Delete a target; ``force`` also drops its live sessions."""
        args = ["--op", "delete", "--mode", "target", "--tid", str(tid)]
        self.tgtadm(*args, *(["--force"] if force else []))
        self._tids.discard(tid)

    def bind_initiator_name(self, tid: int, iqn: str) -> None:
        """Add a name ACL entry (OR-ed with the address ACL, see the module doc)."""
        self.tgtadm("--op", "bind", "--mode", "target", "--tid", str(tid), "--initiator-name", iqn)

    def unbind_initiator_name(self, tid: int, iqn: str) -> None:
        self.tgtadm(
            "--op", "unbind", "--mode", "target", "--tid", str(tid), "--initiator-name", iqn
        )  # fmt: skip

    def bind_address(self, tid: int, addr: str) -> None:
        """Add an address ACL entry: ``ALL``, an address or a CIDR (``127.0.0.2``)."""
        self.tgtadm(
            "--op", "bind", "--mode", "target", "--tid", str(tid), "--initiator-address", addr
        )  # fmt: skip

    def unbind_address(self, tid: int, addr: str) -> None:
        self.tgtadm(
            "--op", "unbind", "--mode", "target", "--tid", str(tid), "--initiator-address", addr
        )  # fmt: skip

    def add_account(self, user: str, password: str) -> None:
        """Create a CHAP account (tgt wants secrets of 12+ characters for most initiators)."""
        self.tgtadm("--op", "new", "--mode", "account", "--user", user, "--password", password)

    def delete_account(self, user: str) -> None:
        self.tgtadm("--op", "delete", "--mode", "account", "--user", user)

    def _account_args(self, op: str, user: str, tid: int | None, outgoing: bool) -> list[str]:
        args = ["--op", op, "--mode", "account", "--user", user]
        if tid is not None:
            args += ["--tid", str(tid)]
        if outgoing:
            args.append("--outgoing")
        return args

    def bind_account(self, user: str, *, tid: int | None = None, outgoing: bool = False) -> None:
        """Require CHAP with ``user`` on target ``tid``; ``tid=None`` = discovery sessions.

        ``outgoing=True`` makes it the account the target answers mutual CHAP with.
        """
        self.tgtadm(*self._account_args("bind", user, tid, outgoing))

    def unbind_account(self, user: str, *, tid: int | None = None, outgoing: bool = False) -> None:
        self.tgtadm(*self._account_args("unbind", user, tid, outgoing))

    def set_target_param(self, tid: int, name: str, value: str | int) -> None:
        """``--op update --mode target -n name -v value``: MaxRecvDataSegmentLength,
        HeaderDigest, DataDigest, FirstBurstLength, nop_interval, RedirectAddress, ..."""
        self.tgtadm(
            "--op", "update", "--mode", "target", "--tid", str(tid),
            "--name", name, "--value", str(value),
        )  # fmt: skip

    def target_params(self, tid: int) -> dict[str, str]:
        """``--op show --mode target --tid T`` as a dict.

        While a redirect is set tgt shows only the Redirect* keys.
        """
        out = self.tgtadm("--op", "show", "--mode", "target", "--tid", str(tid))
        return dict(line.strip().split("=", 1) for line in out.splitlines() if "=" in line)

    def set_system_param(self, name: str, value: str | int) -> None:
        """``--op update --mode sys``, e.g. iSNSServerIP, iSNSServerPort, then iSNS=On
        (all before creating targets)."""
        self.tgtadm("--op", "update", "--mode", "sys", "--name", name, "--value", str(value))

    def redirect(self, tid: int, host: str, port: int, reason: str = "Temporary") -> None:
        """Answer logins to ``tid`` with a redirect (status 0x0101/0x0102) to host:port.

        tgt skips the redirect when ``host`` is the initiator's own address, so redirect
        to another loopback address (127.0.0.2) than the initiator uses.
        """
        self.set_target_param(tid, "RedirectAddress", host)
        self.set_target_param(tid, "RedirectPort", port)
        self.set_target_param(tid, "RedirectReason", reason)

    def clear_redirect(self, tid: int) -> None:
        self.set_target_param(tid, "RedirectAddress", "")

    def add_portal(self, host: str, port: int | None = None) -> str:
        """Listen on one more portal (a free port when None); returns ``host:port``."""
        portal = format_portal(host.strip("[]"), port or free_port(host.strip("[]")))
        self.tgtadm("--op", "new", "--mode", "portal", "--param", f"portal={portal}")
        return portal

    def delete_portal(self, portal: str) -> None:
        self.tgtadm("--op", "delete", "--mode", "portal", "--param", f"portal={portal}")

    def sessions(self, tid: int) -> list[Connection]:
        """The target's live connections (``--op show --mode conn``)."""
        return parse_connections(
            tid, self.tgtadm("--op", "show", "--mode", "conn", "--tid", str(tid))
        )

    def drop_connections(self, tid: int) -> int:
        """Kill every connection of ``tid`` (as a network failure would); how many."""
        dropped = 0
        for conn in self.sessions(tid):
            try:
                self.tgtadm(
                    "--op", "delete", "--mode", "conn", "--tid", str(tid),
                    "--sid", str(conn.sid), "--cid", str(conn.cid),
                )  # fmt: skip
            except TgtadmError as err:
                if "can't find" not in err.output:  # it went away by itself meanwhile
                    raise
            else:
                dropped += 1
        return dropped


_SESSION = re.compile(r"^\s*Session:\s*(\d+)\s*$")
_CONNECTION = re.compile(r"^\s*Connection:\s*(\d+)\s*$")
_INITIATOR = re.compile(r"^\s*Initiator:\s*(\S+)")
_ADDRESS = re.compile(r"^\s*IP Address:\s*(\S+)")


def parse_connections(tid: int, text: str) -> list[Connection]:
    """Parse ``tgtadm --op show --mode conn --tid T``::

    Session: 3
        Connection: 0
            Initiator: iqn.2024-01.test.iscsikit:probe
            IP Address: 127.0.0.1
    """
    result: list[Connection] = []
    sid = cid = -1
    initiator = ""
    for line in text.splitlines():
        if m := _SESSION.match(line):
            sid = int(m[1])
        elif m := _CONNECTION.match(line):
            cid = int(m[1])
            initiator = ""
        elif m := _INITIATOR.match(line):
            initiator = m[1]
        elif (m := _ADDRESS.match(line)) and sid >= 0 and cid >= 0:
            result.append(Connection(tid, sid, cid, initiator, m[1]))
    return result


def _tail(text: str, lines: int = 15) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])
