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
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

from iscsikit.errors import IscsiError
from iscsikit.lun import ops, scan
from iscsikit.lun.aio import AsyncLun, run_async
from iscsikit.manager.managed import ManagedSession
from iscsikit.manager.sessions import LunExport
from iscsikit.nbd.device import BlockDevice
from iscsikit.nbd.server import serve
from iscsikit.scsi import cdb as C
from iscsikit.scsi.errors import ScsiCommandError
from iscsikit.scsi.inquiry import parse_inquiry

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


@dataclass(slots=True)
class _SessionExports:
    served: dict[int, _Served] = field(default_factory=dict)


class Exports:
    """Every export of every session, started and stopped with the sessions."""

    def __init__(self, run_dir: Path) -> None:
        self.directory = run_dir / EXPORT_DIR
        self._sessions: dict[int, _SessionExports] = {}
        self._paths: set[Path] = set()

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
        self.directory.mkdir(mode=0o755, parents=True, exist_ok=True)
        ready: asyncio.Future[str] = asyncio.get_running_loop().create_future()

        def announce(uri: str) -> None:
            if not ready.done():
                ready.set_result(uri)

        clients = [0]

        def count(n: int) -> None:
            clients[0] = n

        task = asyncio.create_task(
            serve(
                cast("BlockDevice", device),
                unix_path=path,
                ready=announce,
                description=f"{session.settings.target} LUN {number}",
                on_clients=count,
            ),
            name=f"nbd export {path.name}",
        )
        waiting: set[asyncio.Future[Any]] = {task, ready}
        await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
        if task.done():  # serve() only returns by raising: it could not listen
            failure = None if task.cancelled() else task.exception()
            log.error("session %d: cannot export LUN %d at %s: %s", session.sid, number,
                      path, failure)  # fmt: skip
            self._paths.discard(path)
            return None
        log.info("session %d: LUN %d served at %s", session.sid, number, path)
        info = LunExport(number, str(path), device.size, device.block_size)
        return _Served(info, device, task, clients)

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
        return [s.info for g in groups for s in g.served.values() if s.clients[0] > 0]

    async def stop(self, session: ManagedSession) -> None:
        """Stop serving the session's LUNs (before it logs out)."""
        mine = self._sessions.pop(session.sid, None)
        if mine is not None:
            for served in mine.served.values():
                await self._stop(served)
        session.exports = ()

    async def stop_all(self) -> None:
        for sid in list(self._sessions):
            mine = self._sessions.pop(sid)
            for served in mine.served.values():
                await self._stop(served)
