"""Private open-isns ``isnsd`` instances on loopback for integration tests.

This module owns starting and stopping a private iSNS server (open-isns ``isnsd``),
registering objects in it with ``isnsadm``, and letting a private tgtd (see
:mod:`iscsikit.testing.tgtd`, used as it is) register its targets through iSNS.  Like
the tgtd fixture it must not import iscsikit's protocol code: it is the independent peer
the iSNS client is tested against.  No pytest dependency.

The recipes are the ones verified in ``shared/reference/peers.md`` §4:

* the config binds ``127.0.0.1:<free port>``, keeps its control socket and PID file in
  the workdir, never expires registrations (``RegistrationPeriod = 0``), no security,
  no ESI, no SLP; no ``Database`` key, so the database is in memory (an empty
  ``Database =`` is fatal);
* ``DefaultDiscoveryDomain = 1`` lets nodes in no discovery domain see each other; with
  ``default_dd=False`` (0) a node sees only the members of its domains, and open-isns
  answers an unregistered source SOURCE_UNKNOWN (the register-and-retry path);
* readiness: the port accepts a TCP connection; stop: SIGTERM, a grace period, SIGKILL;
* ``isnsadm portal=127.0.0.1:P`` registers the IPv4-*compatible* ``::7f00:1`` while
  tgtd registers the IPv4-*mapped* ``::ffff:127.0.0.1``: both must be understood;
* tgtd registers only targets created *after* ``iSNSServerIP``/``iSNSServerPort``/
  ``iSNS On`` were set (:func:`enable_isns` first, then ``add_target``).
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Self

from iscsikit.testing.tgtd import free_port

if TYPE_CHECKING:
    from iscsikit.testing.tgtd import Tgtd

__all__ = ["Isnsd", "IsnsdError", "enable_isns", "isns_missing"]

ISNSD = "isnsd"
ISNSADM = "isnsadm"
SERVER_NAME = "isns.server.iscsikit-test"


class IsnsdError(RuntimeError):
    """isnsd did not start, or an isnsadm call failed (with its output)."""


def isns_missing() -> list[str]:
    """Names of the open-isns programs not installed (Debian package open-isns-server /
    open-isns-utils); empty if all are there."""
    return [prog for prog in (ISNSD, ISNSADM) if _which(prog) is None]


def _which(prog: str) -> str | None:
    return shutil.which(prog) or next(
        (p for d in ("/usr/sbin", "/sbin") if os.access(p := f"{d}/{prog}", os.X_OK)), None
    )


class Isnsd:
    """A running private isnsd on ``127.0.0.1:<port>`` with an in-memory database.

    Construct it (it waits up to ``start_timeout`` s for the port) and use it as a
    context manager or call :meth:`stop`.  ``default_dd`` is DefaultDiscoveryDomain;
    ``registration_period`` (seconds, 0: never) is how long a registration lives
    without a message from its client (RFC 4171 §6.2.6).
    """

    def __init__(
        self,
        workdir: Path,
        *,
        default_dd: bool = True,
        registration_period: int = 0,
        port: int | None = None,
        start_timeout: float = 10.0,
    ) -> None:
        self.workdir = Path(workdir).resolve()
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.host = "127.0.0.1"
        self.port = port or free_port(self.host)
        self.default_dd = default_dd
        self.config = self.workdir / "isnsd.conf"
        self.log_path = self.workdir / "isnsd.log"
        self.config.write_text(
            f"SourceName = {SERVER_NAME}\n"
            f"BindAddress = {self.host}:{self.port}\n"
            f"ControlSocket = {self.workdir / 'isnsctl'}\n"
            f"PIDFile = {self.workdir / 'isnsd.pid'}\n"
            f"RegistrationPeriod = {registration_period}\n"
            f"DefaultDiscoveryDomain = {int(default_dd)}\n"
            "SLPRegister = 0\nSecurity = 0\nESIRetries = 0\n"
        )
        self._proc: subprocess.Popen[bytes] | None = None
        self._start(start_timeout)

    def _start(self, start_timeout: float) -> None:
        isnsd = _which(ISNSD)
        if isnsd is None:
            raise IsnsdError("isnsd is not installed (Debian package open-isns-server)")
        with self.log_path.open("ab") as log:
            self._proc = subprocess.Popen(
                [isnsd, "--config", str(self.config), "--foreground"],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + start_timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise IsnsdError(f"isnsd exited {self._proc.returncode}: {self.log()}")
            with contextlib.suppress(OSError):
                socket.create_connection((self.host, self.port), timeout=0.5).close()
                return
            time.sleep(0.05)
        self.stop()
        raise IsnsdError(f"isnsd did not listen on {self.portal} in {start_timeout} s")

    @property
    def portal(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-4000:]
        except OSError:
            return ""

    def stop(self, *, grace: float = 2.0) -> None:
        """SIGTERM, then SIGKILL after ``grace`` seconds (idempotent)."""
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(grace)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    # -- isnsadm ----------------------------------------------------------------------

    def client_config(self, source: str) -> Path:
        """An isnsadm client config speaking as ``source`` (an iSCSI name)."""
        path = self.workdir / f"client-{re.sub('[^A-Za-z0-9.-]', '_', source)}.conf"
        path.write_text(f"ServerAddress = {self.portal}\nSourceName = {source}\nSecurity = 0\n")
        return path

    def isnsadm(self, *args: str, source: str | None = None, timeout: float = 20.0) -> str:
        """Run isnsadm as ``source`` (None: locally, through the server's own config and
        control socket, as ``--local`` needs); returns its output, IsnsdError on failure."""
        isnsadm = _which(ISNSADM)
        if isnsadm is None:
            raise IsnsdError("isnsadm is not installed (Debian package open-isns-utils)")
        config = self.config if source is None else self.client_config(source)
        cmd = [isnsadm, "--config", str(config), *(["--local"] if source is None else []), *args]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
        output = proc.stdout + proc.stderr
        if proc.returncode != 0:
            raise IsnsdError(f"{' '.join(cmd)} exited {proc.returncode}: {output}")
        return output

    def register_target(
        self, name: str, host: str, port: int, tag: int = 1, *, entity: str | None = None
    ) -> None:
        """Register an entity with target ``name``, portal ``host:port`` and a portal
        group with ``tag`` (isnsadm registers the IPv4-compatible address form)."""
        entity = entity or f"entity-{name.rsplit(':', 1)[-1]}"
        self.isnsadm(
            "--register", f"entity={entity}", f"target={name}",
            f"portal={host}:{port}/tcp", f"pg,pgt={tag}",
            source=name,
        )  # fmt: skip

    def register_initiator(self, name: str, *, entity: str | None = None) -> None:
        """Register initiator ``name`` (its own entity, a portal on 860)."""
        entity = entity or f"entity-{name.rsplit(':', 1)[-1]}"
        self.isnsadm(
            "--register", f"entity={entity}", f"initiator={name}",
            "portal=127.0.0.1:860/tcp", source=name,
        )  # fmt: skip

    def deregister(self, name: str) -> None:
        """Deregister the storage node ``name``."""
        self.isnsadm("--deregister", f"iscsi-name={name}", source=name)

    def add_dd(self, dd_name: str, *members: str) -> None:
        """Create discovery domain ``dd_name`` with these iSCSI names as members."""
        self.isnsadm("--dd-register", f"dd-name={dd_name}", *(f"member-name={m}" for m in members))

    def query_targets(self, source: str) -> str:
        """isnsadm's view of the targets ``source`` may see (for debugging)."""
        return self.isnsadm("--query", "iscsi-node-type=Target", source=source)


def enable_isns(tgtd: Tgtd, isnsd: Isnsd) -> None:
    """Make ``tgtd`` register its targets with ``isnsd``: iSNSServerIP, iSNSServerPort,
    then iSNS On.  Call it before creating targets (tgtd registers only those created
    afterwards, and iSNS cannot be turned off again)."""
    tgtd.set_system_param("iSNSServerIP", isnsd.host)
    tgtd.set_system_param("iSNSServerPort", isnsd.port)
    tgtd.set_system_param("iSNS", "On")
