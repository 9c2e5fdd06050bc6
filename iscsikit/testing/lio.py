"""A LIO iSCSI target (the kernel's own: target_core_mod + iscsi_target_mod) for the VM
tier's guest tests, made through rtslib-fb.

This module owns one throw-away target: a fileio backstore on a sparse file, an IQN, TPG 1
with a portal on loopback, LUN 0, and either an ACL for one initiator name (optionally
with CHAP) or demo mode (``generate_node_acls``: any initiator, no authentication).
``iser=True`` also opens the portal to iSER (LIO's isert, ``ib_isert``), on an address
of an RDMA device (:mod:`iscsikit.testing.vmguest.rdma`); SendTargets stays TCP.
:meth:`Lio.close` deletes the target and the backstore again.  :class:`AluaLio` is one
LU behind two (or more) target ports in separate ALUA port groups whose access states
can be changed under a logged-in initiator (tests/vm/test_alua_lio.py).  Both load
kernel modules and write configfs, so they belong in a throw-away guest
(docs/vm-tier.md), never on a host.
Like :mod:`iscsikit.testing.tgtd` it has no pytest dependency and does not import the
iSCSI protocol code: it is a peer the initiators are tested against.

What was checked on Debian's 6.1 kernel (tests/vm/test_lio.py, test_alua_lio.py):

* rtslib sets LIO's ``dbroot`` to /etc/target and fails unless that directory exists
  (the guest's root is a tmpfs overlay: making it there touches nothing outside).
* ``targetcli`` does not run in the guest (it wants its dbus/socket daemon); rtslib's
  objects do, with configfs mounted at /sys/kernel/config.
* Dropping the target's connections (:meth:`Lio.drop_sessions`): writing 0 to the TPG's
  ``enable`` makes iscsi_target_mod release every session of the TPG by force (it closes
  their sockets, so the initiator's connection fails) and stop listening; writing 1 makes
  it listen again, and the initiator's re-login is accepted.
* A portal that cannot be bound fails the NetworkPortal's configfs ``mkdir``; a picked
  port that someone took first is retried with another.
* ALUA: a group's ``alua_access_state`` can be written only with implicit ALUA in its
  ``alua_access_type``; the write returns once LIO is in the new state.  Through a
  standby port LIO answers TEST UNIT READY and data commands with NOT READY 04/0B
  (unavailable: 04/0C, READ CAPACITY too); UNIT ATTENTION 2A/06 goes only to the I_T
  nexuses of the group that changed.  Each port's LUN counts the commands it received
  (``statistics/scsi_tgt_port/in_cmds``).
"""

from __future__ import annotations

import importlib
import os
import re
import subprocess
import tempfile
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType, TracebackType
from typing import Any, Self

from iscsikit.testing.tgtd import DEFAULT_LUN_SIZE, free_port

__all__ = [
    "ALUA_STATES",
    "CONFIGFS",
    "DBROOT",
    "MODULES",
    "TIMEOUT",
    "AluaLio",
    "AluaPort",
    "Lio",
    "LioChap",
    "LioError",
    "lio_missing",
]

#: Where the kernel's configfs is mounted; LIO lives under ``target/`` there.
CONFIGFS = Path("/sys/kernel/config")

#: rtslib points LIO's ``dbroot`` (where the kernel keeps ALUA / persistent-reservation
#: metadata) here and fails when the directory does not exist.
DBROOT = Path("/etc/target")

#: Loaded by hand: the guest's busybox modprobe has no modules.alias to autoload them.
MODULES = ("target_core_mod", "target_core_file", "iscsi_target_mod")

_PORT_ATTEMPTS = 5

#: Seconds a kernel step (modprobe, mount, deleting the target) may take.  Deleting a
#: target whose session hangs in the kernel blocks in configfs: the caller gets a
#: :class:`LioError` after this long instead of hanging with it.
TIMEOUT = 120.0


class LioError(RuntimeError):
    """The LIO target could not be set up (the message says which step failed)."""


@dataclass(frozen=True)
class LioChap:
    """CHAP the target demands of the initiator (the ACL's ``auth/userid``), and with
    ``mutual_user`` set, the name and secret it answers the initiator's challenge with
    (``auth/userid_mutual``)."""

    user: str
    password: str
    mutual_user: str | None = None
    mutual_password: str | None = None


def _rtslib() -> ModuleType:
    # Imported by name: rtslib-fb ships no type information, and where it is not installed
    # (tox's type env) a static import would be an error; its objects are Any either way.
    return importlib.import_module("rtslib_fb")


def lio_missing() -> str | None:
    """Why a LIO target cannot be made here, or None when it can (rtslib-fb importable)."""
    try:
        _rtslib()
    except ImportError as exc:
        return f"rtslib-fb is not importable ({exc}); pip install rtslib-fb"
    return None


def _run(*argv: str) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(argv, capture_output=True, text=True, check=False, timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        raise LioError(f"{' '.join(argv)} did not finish within {TIMEOUT:.0f} s") from None


def _bounded(what: str, step: Callable[[], None]) -> None:
    """``step()`` in a thread, waited for :data:`TIMEOUT` seconds: a configfs write that
    blocks in the kernel (a session LIO cannot release) raises :class:`LioError` instead
    of hanging its caller.  The step's own exception is re-raised."""
    failed: list[BaseException] = []

    def run() -> None:
        try:
            step()
        except BaseException as exc:  # handed to the caller
            failed.append(exc)

    worker = threading.Thread(target=run, name=what, daemon=True)
    worker.start()
    worker.join(TIMEOUT)
    if worker.is_alive():
        raise LioError(f"{what} did not finish within {TIMEOUT:.0f} s")
    if failed:
        raise failed[0]


def _prepare_kernel(extra: tuple[str, ...] = ()) -> None:
    """Load LIO's modules (and ``extra`` ones), mount configfs (target_core_mod registers
    it) and make rtslib's dbroot directory, each only if needed."""
    for module in MODULES + extra:
        done = _run("modprobe", module)
        if done.returncode != 0:
            raise LioError(f"modprobe {module}: {done.stderr.strip()}")
        if module == "target_core_mod" and not os.path.ismount(CONFIGFS):
            done = _run("mount", "-t", "configfs", "none", str(CONFIGFS))
            if done.returncode != 0 and not os.path.ismount(CONFIGFS):
                raise LioError(f"mount configfs on {CONFIGFS}: {done.stderr.strip()}")
    DBROOT.mkdir(parents=True, exist_ok=True)


def _demo_mode(tpg: Any) -> None:
    """Let any initiator in, without authentication, with write access."""
    tpg.set_attribute("authentication", "0")
    tpg.set_attribute("generate_node_acls", "1")
    tpg.set_attribute("demo_mode_write_protect", "0")


def _tpg_sessions(tpg: Any) -> list[str]:
    """Initiator names with a session on ``tpg`` (from LIO's configfs)."""
    path = Path(tpg.path)
    # The kernel ends dynamic_sessions with a NUL (a demo-mode session's line too).
    names = (path / "dynamic_sessions").read_text().replace("\0", " ").split()
    for acl in sorted((path / "acls").iterdir()):
        info = (acl / "info").read_text()
        if not info.startswith("No active"):
            found = re.search(r"InitiatorName:\s*(\S+)", info)
            names.append(found.group(1) if found else acl.name)
    return names


class _Backed:
    """What both targets share: a backing file to read, and :meth:`close` on exit."""

    backing_path: Path

    def read_backing(self, offset: int, n: int) -> bytes:
        """``n`` bytes of LUN 0 at ``offset``, read from the backing file."""
        with open(self.backing_path, "rb") as f:
            f.seek(offset)
            return f.read(n)

    def close(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class Lio(_Backed):
    """A LIO iSCSI target with one fileio LUN (LUN 0) on ``host``:<free port>.

    ``initiator`` set: only that initiator name may log in (an ACL mapping LUN 0), with
    ``chap`` when given; ``initiator`` None: demo mode, any initiator, no authentication.
    ``iser``: the portal takes iSER logins too (``ib_isert`` loaded; ``host`` must be an
    address of an RDMA device, never 127.x).
    The backing file (sparse, ``size`` bytes) is created in ``workdir`` (default: a new
    directory under ``TMPDIR``).  Use as a context manager or call :meth:`close`.
    """

    def __init__(
        self,
        iqn: str,
        *,
        workdir: Path | None = None,
        size: int = DEFAULT_LUN_SIZE,
        initiator: str | None = None,
        chap: LioChap | None = None,
        host: str = "127.0.0.1",
        iser: bool = False,
    ) -> None:
        if chap is not None and initiator is None:
            raise ValueError("CHAP needs an ACL: give the initiator name too")
        _prepare_kernel(("ib_isert",) if iser else ())
        rts = _rtslib()
        self.iqn = iqn
        self.host = host
        self.initiator = initiator
        self.iser = iser
        base = workdir if workdir is not None else Path(tempfile.mkdtemp(prefix="iscsikit-lio-"))
        tag = uuid.uuid4().hex[:12]
        self.backing_path = base / f"lio-{tag}.img"
        # Backstore names are global to LIO; a random tag keeps instances apart.
        self._so: Any = rts.FileIOStorageObject(
            f"iscsikit-{tag}", str(self.backing_path), size=size, write_back=False
        )
        self._target: Any = None
        try:
            self._target = rts.Target(rts.FabricModule("iscsi"), iqn, mode="create")
            self._tpg: Any = rts.TPG(self._target, 1, mode="create")
            lun = rts.LUN(self._tpg, 0, self._so)
            self.port = self._add_portal(rts)
            if initiator is None:
                _demo_mode(self._tpg)
            else:
                acl = rts.NodeACL(self._tpg, initiator, mode="create")
                rts.MappedLUN(acl, 0, lun, write_protect=False)
                if chap is not None:
                    acl.chap_userid = chap.user
                    acl.chap_password = chap.password
                    if chap.mutual_user is not None:
                        acl.chap_mutual_userid = chap.mutual_user
                        acl.chap_mutual_password = chap.mutual_password or ""
                self._tpg.set_attribute("authentication", "1" if chap else "0")
            self._tpg.enable = True
        except BaseException:
            self.close()
            raise

    def _add_portal(self, rts: ModuleType) -> int:
        """A NetworkPortal on a free port; retried when another process took the port."""
        last: Exception | None = None
        for _ in range(_PORT_ATTEMPTS):
            port = free_port(self.host)
            try:
                portal = rts.NetworkPortal(self._tpg, self.host, port, mode="create")
            except rts.RTSLibError as exc:
                last = exc
                continue
            if self.iser:
                portal.iser = True  # configfs np/<ip:port>/iser: isert listens too
            return port
        raise LioError(f"no portal on {self.host} after {_PORT_ATTEMPTS} ports: {last}")

    @property
    def portal(self) -> str:
        """``host:port`` as iscsiadm and by-path names write it."""
        return f"{self.host}:{self.port}"

    def sessions(self) -> list[str]:
        """Initiator names with a session on TPG 1 (from LIO's configfs)."""
        return _tpg_sessions(self._tpg)

    def drop_sessions(self) -> None:
        """Make LIO drop every session of the target; the portal listens again afterwards.

        Disabling the TPG releases its sessions by force (iscsit_release_sessions_for_tpg:
        each connection's socket is closed, so the initiator sees its connection fail);
        re-enabling it reopens the portal for the initiator's re-login.
        """

        def toggle() -> None:
            self._tpg.enable = False
            self._tpg.enable = True

        _bounded(f"re-enabling LIO's TPG of {self.iqn}", toggle)

    def close(self) -> None:
        """Delete the target (TPG, portal, LUN, ACLs) and the backstore; idempotent.

        Raises :class:`LioError` when that has not finished within :data:`TIMEOUT`
        seconds (the deleting thread is left behind, blocked in the kernel).
        """
        target, self._target = self._target, None
        so, self._so = self._so, None

        def delete() -> None:
            if target is not None:
                target.delete()
            if so is not None:
                so.delete()

        _bounded(f"deleting LIO target {self.iqn}", delete)
        self.backing_path.unlink(missing_ok=True)


# -- ALUA: one LU behind two target ports in two port groups -------------------------------

#: LIO's primary access states (configfs ``alua_access_state`` takes SPC-4's numbers),
#: by the names ``sg_rtpg`` and multipath print.
ALUA_STATES: dict[str, int] = {
    "active/optimized": 0,
    "active/non-optimized": 1,
    "standby": 2,
    "unavailable": 3,
    "transitioning": 15,
}
_ALUA_NAMES = {number: name for name, number in ALUA_STATES.items()}
#: rtslib's ``alua_access_type`` 1: implicit ALUA only.  The target changes states by
#: itself (configfs writes are implicit transitions, refused without it) and reports
#: TPGS 01b in INQUIRY; SET TARGET PORT GROUPS is not offered.
_IMPLICIT = 1


@dataclass(frozen=True)
class AluaPort:
    """One target port of an :class:`AluaLio`: iSCSI TPG ``tag`` listening on
    ``host``:``port``, its LUN 0 in the ALUA target port group ``group`` (``group_id``)."""

    tag: int
    host: str
    port: int
    group: str
    group_id: int

    @property
    def portal(self) -> str:
        return f"{self.host}:{self.port}"


class AluaLio(_Backed):
    """One fileio LU reached through one target port per host, each in its own ALUA group.

    The target ``iqn`` gets one TPG per entry of ``hosts`` (tags 1, 2, ...), each with a
    portal on that host (one port number for all), LUN 0 mapping the same backstore, and
    demo mode.  Each TPG's LUN is the only member of an ALUA target port group
    (``group_ids``, default 10, 20, ...) with implicit ALUA, so LIO reports the LUN with
    TPGS, a relative port and a port group per path in VPD 0x83, and answers REPORT
    TARGET PORT GROUPS.  ``states`` (names of :data:`ALUA_STATES`) are set before any
    initiator comes; default: the first port active/optimized, the others standby.

    :meth:`set_state` changes a group's state while initiators are logged in: LIO goes
    through transitioning to the new state, queues UNIT ATTENTION 2A/06 for the group's
    I_T nexuses, and from then answers data commands through a standby port with NOT
    READY 04/0B (unavailable: 04/0C).  :meth:`in_cmds` counts the commands that reached
    a port (LIO's own statistics, whatever the initiator believes it sent).
    """

    def __init__(
        self,
        iqn: str,
        *,
        hosts: tuple[str, ...] = ("127.0.0.1", "127.0.0.2"),
        group_ids: tuple[int, ...] | None = None,
        states: tuple[str, ...] | None = None,
        workdir: Path | None = None,
        size: int = DEFAULT_LUN_SIZE,
    ) -> None:
        group_ids = group_ids or tuple(10 * (i + 1) for i in range(len(hosts)))
        states = states or ("active/optimized",) + ("standby",) * (len(hosts) - 1)
        if not len(hosts) == len(group_ids) == len(states) or not hosts:
            raise ValueError("one group id and one state for each host")
        _prepare_kernel()
        rts = _rtslib()
        self.iqn = iqn
        base = workdir if workdir is not None else Path(tempfile.mkdtemp(prefix="iscsikit-lio-"))
        tag = uuid.uuid4().hex[:12]
        self.backing_path = base / f"lio-alua-{tag}.img"
        self._so: Any = rts.FileIOStorageObject(
            f"iscsikit-{tag}", str(self.backing_path), size=size, write_back=False
        )
        self._target: Any = None
        self._tpgs: list[Any] = []
        self._luns: list[Any] = []
        self._groups: list[Any] = []
        self.ports: tuple[AluaPort, ...] = ()
        try:
            self._target = rts.Target(rts.FabricModule("iscsi"), iqn, mode="create")
            for index, (group_id, state) in enumerate(zip(group_ids, states, strict=True)):
                tpg = rts.TPG(self._target, index + 1, mode="create")
                self._tpgs.append(tpg)
                self._luns.append(rts.LUN(tpg, 0, self._so))
                group = rts.ALUATargetPortGroup(self._so, f"iscsikit_tg{index + 1}", group_id)
                self._groups.append(group)
                group.alua_access_type = _IMPLICIT
                group.alua_access_state = ALUA_STATES[state]
                self._luns[-1].alua_tg_pt_gp_name = group.name
                if self._luns[-1].alua_tg_pt_gp_name != group.name:
                    raise LioError(f"LUN 0 of TPG {index + 1} is not in {group.name}")
                _demo_mode(tpg)
            port = self._add_portals(rts, hosts)
            self.ports = tuple(
                AluaPort(i + 1, host, port, group.name, group_id)
                for i, (host, group, group_id) in enumerate(
                    zip(hosts, self._groups, group_ids, strict=True)
                )
            )
            for tpg in self._tpgs:
                tpg.enable = True
        except BaseException:
            self.close()
            raise

    def _add_portals(self, rts: ModuleType, hosts: tuple[str, ...]) -> int:
        """One port number free on every host, a portal on it in each TPG; retried when
        another process took the port."""
        last: Exception | None = None
        for _ in range(_PORT_ATTEMPTS):
            port = free_port(hosts[0])
            made: list[Any] = []
            try:
                for tpg, host in zip(self._tpgs, hosts, strict=True):
                    made.append(rts.NetworkPortal(tpg, host, port, mode="create"))
            except rts.RTSLibError as exc:
                last = exc
                for portal in made:
                    portal.delete()
                continue
            return port
        raise LioError(f"no portals on {hosts} after {_PORT_ATTEMPTS} ports: {last}")

    def url(self, index: int) -> str:
        """The ``iscsi://`` URL of LUN 0 through port ``index``."""
        return f"iscsi://{self.ports[index].portal}/{self.iqn}/0"

    @property
    def urls(self) -> list[str]:
        return [self.url(i) for i in range(len(self.ports))]

    def state(self, index: int) -> str:
        """The access state of port ``index``'s group, as LIO holds it."""
        number = int(self._groups[index].alua_access_state)
        return _ALUA_NAMES.get(number, f"0x{number:x}")

    def set_state(self, index: int, state: str) -> None:
        """Move port ``index``'s group to ``state`` (a name of :data:`ALUA_STATES`): an
        implicit transition, bounded by :data:`TIMEOUT` (the write returns once LIO has
        reached the new state and queued its UNIT ATTENTIONs)."""
        number = ALUA_STATES[state]
        group = self._groups[index]

        def write() -> None:
            group.alua_access_state = number

        _bounded(f"ALUA group {group.name} to {state}", write)
        if self.state(index) != state:
            raise LioError(f"ALUA group {group.name} is {self.state(index)}, not {state}")

    def set_states(self, *states: str) -> None:
        """:meth:`set_state` for every port, in port order."""
        for index, state in enumerate(states):
            self.set_state(index, state)

    def in_cmds(self, index: int) -> int:
        """SCSI commands LIO received through port ``index`` since it was made
        (configfs ``statistics/scsi_tgt_port/in_cmds`` of the TPG's LUN 0)."""
        stats = Path(self._luns[index].path) / "statistics" / "scsi_tgt_port" / "in_cmds"
        return int(stats.read_text().strip())

    def sessions(self, index: int) -> list[str]:
        """Initiator names with a session through port ``index``."""
        return _tpg_sessions(self._tpgs[index])

    def close(self) -> None:
        """Delete the target (TPGs, portals, LUNs), the ALUA groups and the backstore;
        idempotent.  Raises :class:`LioError` when that has not finished within
        :data:`TIMEOUT` seconds."""
        target, self._target = self._target, None
        so, self._so = self._so, None
        self._tpgs, self._luns, self._groups = [], [], []

        def delete() -> None:
            if target is not None:
                target.delete()
            if so is not None:
                so.delete()  # its ALUA groups first (rtslib), then the backstore

        _bounded(f"deleting LIO target {self.iqn}", delete)
        self.backing_path.unlink(missing_ok=True)
