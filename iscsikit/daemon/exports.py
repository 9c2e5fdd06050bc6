"""A userspace session's LUNs, served over NBD at stable paths under the run directory.

For every block LUN of a logged-in userspace session the daemon serves an NBD export
on a unix socket named like the kernel's ``/dev/disk/by-path`` link would be::

    <run_dir>/nbd/ip-<address>:<port>-iscsi-<target>-lun-<N>

(``<run_dir>`` is ``/run/iscsikit``, or ``$ISCSIKIT_ROOT/run/iscsikit``).  A second
session to the same portal and target (``nr_sessions``) appends ``-session-<sid>``;
a name longer than a unix socket allows becomes ``session-<sid>-lun-<N>``.  The
export reads and writes through the session's recovering channel, so it keeps
serving across reconnects: I/O waits while the session recovers, fails after
``replacement_timeout``, and works again once the session is back.

When sessions through two or more portals reach the same logical unit (equal LU
identity in VPD page 0x83, :func:`~iscsikit.scsi.vpd.lu_identity`), the LU is also
served once over all of its sessions (``nr_sessions`` ones too), as an
:class:`~iscsikit.lun.aio_multipath.AsyncMultipathLun` (round-robin, the fence of
:mod:`iscsikit.lun.fence`), at::

    <run_dir>/nbd/mpath-<identity hex>

The per-session exports stay.  The multipath export follows the sessions: a session
that comes (or a LUN that appears) adds a path, one that logs out or vanishes removes
its path; the export stops with its last path.  Sessions of one portal alone
(``nr_sessions``) get none: they share every failure of that portal.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

from iscsikit.daemon.rundir import private_dir
from iscsikit.errors import IscsiError
from iscsikit.lun import ops, scan
from iscsikit.lun.aio import AsyncLun, run_async
from iscsikit.lun.aio_multipath import AsyncMultipathLun, AsyncPath
from iscsikit.manager.managed import ManagedSession
from iscsikit.manager.sessions import LunExport
from iscsikit.nbd.device import BlockDevice
from iscsikit.nbd.server import serve
from iscsikit.scsi import cdb as C
from iscsikit.scsi.errors import ScsiCommandError
from iscsikit.scsi.inquiry import parse_inquiry
from iscsikit.scsi.vpd import (
    lu_identity,
    parse_vpd_device_identification,
    relative_target_port,
    target_port_group,
)

__all__ = ["EXPORT_DIR", "Exports", "export_name"]

log = logging.getLogger(__name__)

#: Under the run directory.
EXPORT_DIR = "nbd"
# sockaddr_un.sun_path is 108 bytes with its NUL.
_SUN_PATH_MAX = 107
# SCSI peripheral device types served as block devices (SBC disk, RBC).
_BLOCK_TYPES = (0x00, 0x0E)


def export_name(address: str, port: int, target: str, lun: int) -> str:
    """The by-path style name of an export (see the module docstring).  As udev's
    path_id does, an IPv6 address goes in without brackets (brackets would also have to
    be escaped in the ``nbd+unix:///?socket=`` URI)."""
    return f"ip-{address.strip('[]')}:{port}-iscsi-{target}-lun-{lun}"


@dataclass(slots=True)
class _Served:
    info: LunExport
    device: AsyncLun
    task: asyncio.Task[None]
    clients: list[int] = field(default_factory=lambda: [0])
    #: The LUN as a path of a multipath export (None: no LU identity in VPD 0x83).
    path: AsyncPath | None = None


@dataclass(slots=True)
class _Multipath:
    """One LU served over every session that reaches it."""

    device: AsyncMultipathLun
    task: asyncio.Task[None]
    socket: Path
    #: (session id, LUN) -> the index of its path in ``device``.
    members: dict[tuple[int, int], int]
    clients: list[int] = field(default_factory=lambda: [0])


@dataclass(slots=True)
class _SessionExports:
    served: dict[int, _Served] = field(default_factory=dict)


class Exports:
    """Every export of every session, started and stopped with the sessions."""

    def __init__(self, run_dir: Path) -> None:
        self.directory = run_dir / EXPORT_DIR
        self._sessions: dict[int, _SessionExports] = {}
        self._paths: set[Path] = set()
        #: Multipath exports by LU identity key.
        self._multipath: dict[tuple[int, int, bytes], _Multipath] = {}
        self._next_path = 0
        self._regrouping = asyncio.Lock()  # two sessions' refreshes may interleave

    async def refresh(self, session: ManagedSession) -> tuple[LunExport, ...]:
        """Serve the session's block LUNs (new ones added, vanished ones removed)."""
        mine = self._sessions.setdefault(session.sid, _SessionExports())
        luns = await run_async(session.io, scan.report_luns())
        for number in [n for n in mine.served if n not in luns]:
            await self._stop(mine.served.pop(number))
        for number in luns:
            if number in mine.served:
                continue
            served = await self._start(session, number)
            if served is not None:
                mine.served[number] = served
        exports = tuple(mine.served[n].info for n in sorted(mine.served))
        session.exports = exports
        await self._regroup()
        return exports

    async def _start(self, session: ManagedSession, number: int) -> _Served | None:
        try:
            answer = await run_async(
                session.io, ops.command(C.inquiry(), lun=number, read_length=255)
            )
            inquiry = parse_inquiry(ops.data_of(answer))
            if inquiry.peripheral_qualifier != 0 or inquiry.device_type not in _BLOCK_TYPES:
                return None
            device = await AsyncLun.over(session.io, number)
        except (IscsiError, ScsiCommandError, ValueError) as exc:
            log.info("session %d: LUN %d is not exported: %s", session.sid, number, exc)
            return None
        path = self._path(session, number)
        self._paths.add(path)  # reserved now: another session's export runs concurrently
        served = await self._serve(device, path, f"{session.settings.target} LUN {number}")
        if isinstance(served, BaseException):
            log.error("session %d: cannot export LUN %d at %s: %s", session.sid, number,
                      path, served)  # fmt: skip
            self._paths.discard(path)
            return None
        task, clients = served
        log.info("session %d: LUN %d served at %s", session.sid, number, path)
        info = LunExport(number, str(path), device.size, device.block_size)
        return _Served(info, device, task, clients, await self._as_path(session, device))

    async def _as_path(self, session: ManagedSession, device: AsyncLun) -> AsyncPath | None:
        """The LUN as a path of a multipath export: its LU identity from VPD 0x83 (None
        without one: such a LUN cannot be proven to be another session's)."""
        try:
            answer = await run_async(
                session.io,
                ops.command(
                    C.inquiry(evpd=True, page=0x83, allocation_length=1024),
                    lun=device.lun,
                    read_length=1024,
                ),
            )
            designators = parse_vpd_device_identification(ops.data_of(answer))
        except (IscsiError, ScsiCommandError, ValueError) as exc:
            log.info("session %d: LUN %d has no VPD 0x83: %s", session.sid, device.lun, exc)
            return None
        identity = lu_identity(designators)
        if identity is None:
            return None
        self._next_path += 1
        return AsyncPath(
            # A view of the session for the multipath LUN (it logs nothing out).
            lun=AsyncLun(session, session.io, device.geometry, owns=False),
            index=self._next_path,
            name=f"{session.settings.portal} session {session.sid}",
            identity=identity,
            relative_port=relative_target_port(designators),
            group_id=target_port_group(designators),
            alua_capable=device.geometry.inquiry.tpgs != 0,
        )

    async def _serve(
        self, device: AsyncLun | AsyncMultipathLun, path: Path, description: str
    ) -> tuple[asyncio.Task[None], list[int]] | BaseException:
        """Start an NBD server for ``device`` on the unix socket ``path``: its task and
        its client count once it listens, or why it could not listen."""
        private_dir(self.directory, 0o700)
        ready: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        clients = [0]

        def announce(uri: str) -> None:
            if not ready.done():
                ready.set_result(uri)

        def count(n: int) -> None:
            clients[0] = n

        task = asyncio.create_task(
            serve(
                cast("BlockDevice", device),
                unix_path=path,
                ready=announce,
                description=description,
                on_clients=count,
            ),
            name=f"nbd export {path.name}",
        )
        waiting: set[asyncio.Future[Any]] = {task, ready}
        await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
        if task.done():  # serve() only returns by raising: it could not listen
            failure = None if task.cancelled() else task.exception()
            return failure or OSError(f"cannot listen at {path}")
        return task, clients

    # -- multipath exports ---------------------------------------------------------------

    async def _regroup(self) -> None:
        """Start, update or stop the multipath exports as the served LUNs say."""
        async with self._regrouping:
            await self._regroup_now()

    async def _regroup_now(self) -> None:
        groups: dict[tuple[int, int, bytes], dict[tuple[int, int], AsyncPath]] = {}
        for sid, mine in self._sessions.items():
            for number, served in mine.served.items():
                key = None if served.path is None else served.path.identity_key
                if served.path is not None and key is not None:
                    groups.setdefault(key, {})[(sid, number)] = served.path
        for key, mp in list(self._multipath.items()):
            members = groups.get(key, {})
            for member, index in list(mp.members.items()):
                if member not in members:
                    gone = mp.device.remove_path(index)
                    del mp.members[member]
                    log.info("%s: path %s removed", mp.socket.name, gone and gone.name)
            for member, path in members.items():
                if member not in mp.members:
                    mp.device.add_path(path)
                    mp.members[member] = path.index
                    log.info("%s: path %s added", mp.socket.name, path.name)
            if not mp.members:
                await self._stop_multipath(key)
        for key, members in groups.items():
            portals = {path.name.rsplit(" session ", 1)[0] for path in members.values()}
            if key not in self._multipath and len(portals) >= 2:
                await self._start_multipath(key, members)

    async def _start_multipath(
        self, key: tuple[int, int, bytes], members: dict[tuple[int, int], AsyncPath]
    ) -> None:
        paths = sorted(members.values(), key=lambda p: p.index)
        device = AsyncMultipathLun(paths, "round-robin")
        path = self.directory / f"mpath-{key[2].hex()}"
        if len(str(path)) > _SUN_PATH_MAX:  # a long SCSI name string: its start
            path = Path(str(path)[:_SUN_PATH_MAX])
        served = await self._serve(device, path, f"multipath LU {key[2].hex()}")
        if isinstance(served, BaseException):
            log.error("cannot serve multipath LU %s at %s: %s", key[2].hex(), path, served)
            return
        task, clients = served
        log.info("multipath LU %s served at %s over %d paths", key[2].hex(), path, len(paths))
        self._multipath[key] = _Multipath(
            device, task, path, {m: p.index for m, p in members.items()}, clients
        )

    async def _stop_multipath(self, key: tuple[int, int, bytes]) -> None:
        mp = self._multipath.pop(key)
        mp.task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await mp.task
        await mp.device.aclose()
        with contextlib.suppress(FileNotFoundError):
            mp.socket.unlink()

    def current(self, sid: int) -> tuple[LunExport, ...]:
        """The session's exports with, for a LUN that is a path of a multipath export,
        that export and the path's state now."""
        mine = self._sessions.get(sid)
        if mine is None:
            return ()
        out: list[LunExport] = []
        for number in sorted(mine.served):
            info = mine.served[number].info
            for mp in self._multipath.values():
                index = mp.members.get((sid, number))
                path = next((p for p in mp.device.paths if p.index == index), None)
                if index is not None and path is not None:
                    info = dataclasses.replace(
                        info, multipath=str(mp.socket), path_state=path.state,
                        path_alua=path.alua,
                    )  # fmt: skip
                    break
            out.append(info)
        return tuple(out)

    def multipath_exports(self) -> dict[str, tuple[str, ...]]:
        """Each multipath export's socket and the names of its paths."""
        exports = self._multipath.values()
        return {str(mp.socket): tuple(p.name for p in mp.device.paths) for mp in exports}

    def _path(self, session: ManagedSession, number: int) -> Path:
        portal = session.settings.portal
        node = session.node
        address = node.address if node is not None else portal.host.strip("[]")
        port = node.port if node is not None else portal.port
        name = export_name(address, port, session.settings.target, number)
        path = self.directory / name
        if path in self._paths:
            path = self.directory / f"{name}-session-{session.sid}"
        if len(str(path)) > _SUN_PATH_MAX:
            path = self.directory / f"session-{session.sid}-lun-{number}"
        return path

    async def _stop(self, served: _Served) -> None:
        served.task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await served.task
        path = Path(served.info.socket)
        self._paths.discard(path)
        with contextlib.suppress(FileNotFoundError):
            path.unlink()

    def in_use(self, session: ManagedSession | None = None) -> list[LunExport]:
        """Exports with an NBD client connected (of one session, or of all)."""
        groups = (
            [self._sessions.get(session.sid, _SessionExports())]
            if session is not None
            else list(self._sessions.values())
        )
        busy = [s.info for g in groups for s in g.served.values() if s.clients[0] > 0]
        if session is None:  # a multipath export survives any one session's logout
            busy += [
                LunExport(mp.device.lun, str(mp.socket), mp.device.size, mp.device.block_size)
                for mp in self._multipath.values()
                if mp.clients[0] > 0
            ]
        return busy

    async def stop(self, session: ManagedSession) -> None:
        """Stop serving the session's LUNs (before it logs out)."""
        mine = self._sessions.pop(session.sid, None)
        await self._regroup()  # its paths leave the multipath exports first
        if mine is not None:
            for served in mine.served.values():
                await self._stop(served)
        session.exports = ()

    async def stop_all(self) -> None:
        for key in list(self._multipath):
            await self._stop_multipath(key)
        for sid in list(self._sessions):
            mine = self._sessions.pop(sid)
            for served in mine.served.values():
                await self._stop(served)
