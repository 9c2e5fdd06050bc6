"""A LUN of a session iscsikitd owns, opened from Python through the daemon's NBD export.

The daemon serves each block LUN of each userspace session it owns over NBD on a unix
socket (docs/daemon.md); :func:`open_session_lun` asks the daemon for its sessions (the
``sessions`` IPC operation, docs/ipc.md), picks the session and the LUN's export, and
connects an :class:`~iscsikit.nbd.client.NbdClient` to it.  The data goes through the
daemon's session, so it is recovered as that session is (I/O waits while the daemon logs
in again, and fails with EIO past ``replacement_timeout``).

Errors, with iscsiadm's codes:

* no daemon: :class:`~iscsikit.ipc.client.DaemonNotRunningError` (20, "could not connect
  to iscsid"), as ``iscsikit-adm -m node -l`` without the daemon;
* no session with that sid, target or portal:
  :class:`~iscsikit.errors.SessionNotFoundError` (2), as the daemon answers ``logout`` of
  an unknown sid; several sessions match: :class:`~iscsikit.errors.InvalidParameterError`
  (7), naming their sids;
* the session has no export for that LUN (no such LUN, not a block device, or a kernel
  session): :class:`~iscsikit.errors.NoObjectsFoundError` (21);
* I/O errors: those of :mod:`iscsikit.nbd.client`.

This module sits with the NBD client at layer 6 (it needs the manager's session listing
and the IPC client, both below); :mod:`iscsikit` exports :func:`open_session_lun`.
"""

from __future__ import annotations

import os
from pathlib import Path

from iscsikit.config.paths import resolve_paths
from iscsikit.errors import InvalidParameterError, NoObjectsFoundError, SessionNotFoundError
from iscsikit.ipc.client import DEFAULT_TIMEOUT as IPC_TIMEOUT
from iscsikit.ipc.client import DaemonClient
from iscsikit.manager.sessions import LunExport, SessionInfo, daemon_socket, session_from_json
from iscsikit.nbd.client import CONNECT_TIMEOUT, DEFAULT_TIMEOUT, NbdClient
from iscsikit.proto.address import Portal, parse_portal

__all__ = ["SessionLun", "find_session", "open_session_lun"]


class SessionLun(NbdClient):
    """A blocking LUN of a daemon-owned session: an :class:`NbdClient` connected to the
    LUN's export, with :class:`iscsikit.lun.Lun`'s surface (``size``, ``block_size``,
    ``read_only``, ``can_unmap``, ``read``, ``readinto``, ``write``, ``flush``,
    :meth:`unmap`, ``write_zeroes``, ``close``, a context manager); ``iscsikit.lun.LunIO``
    works over it.

    Byte offsets, unaligned ranges included (the export merges partial blocks).  Closing
    disconnects from the export; the session stays logged in (the daemon owns it).
    """

    def __init__(
        self, session: SessionInfo, export: LunExport, *, timeout: float = DEFAULT_TIMEOUT
    ) -> None:
        super().__init__(export.socket, timeout=timeout, connect_timeout=CONNECT_TIMEOUT)
        #: The session as the daemon listed it when the LUN was opened.
        self.session = session
        self.export = export

    @property
    def sid(self) -> int:
        return self.session.sid

    @property
    def target(self) -> str:
        return self.session.target

    @property
    def lun(self) -> int:
        return self.export.lun

    @property
    def block_size(self) -> int:
        """The LUN's logical block size in bytes."""
        return self.export.block_size

    @property
    def can_unmap(self) -> bool:
        """Whether :meth:`unmap` is supported (the export advertises trim only when the LUN
        supports UNMAP)."""
        return self.can_trim

    def unmap(self, offset: int, length: int) -> None:
        """Deallocate a range (NBD trim, UNMAP in the daemon);
        :class:`~iscsikit.errors.NotSupportedError` when the LUN does not support it."""
        self.trim(offset, length)

    def __repr__(self) -> str:
        return (
            f"<SessionLun {self.lun} of session {self.sid} ({self.target}), {self.size} bytes,"
            f" {self.block_size}-byte blocks>"
        )


def _at(info: SessionInfo, portal: Portal) -> bool:
    return (portal.host, portal.port) in (
        (info.address, info.port),
        (info.persistent_address, info.persistent_port),
    )


def find_session(
    sessions: list[SessionInfo],
    *,
    sid: int | None = None,
    target: str | None = None,
    portal: str | Portal | None = None,
) -> SessionInfo:
    """The one session with ``sid`` and/or ``target`` (and ``portal``: ``ip[:port]``, the
    current or the persistent address); with no criteria, the only session there is."""
    where = parse_portal(portal) if portal is not None else None
    found = [
        s
        for s in sessions
        if (sid is None or s.sid == sid)
        and (target is None or s.target == target)
        and (where is None or _at(s, where))
    ]
    asked = ", ".join(
        f"{k} {v}"
        for k, v in (("sid", sid), ("target", target), ("portal", where))
        if v is not None
    )
    if not found:
        raise SessionNotFoundError(
            f"iscsikitd has no session with {asked}" if asked else "iscsikitd has no session"
        )
    if len(found) > 1:
        sids = ", ".join(str(s.sid) for s in found)
        raise InvalidParameterError(
            f"{len(found)} sessions match{' ' + asked if asked else ''} (sids {sids}); "
            "pass sid= to choose one"
        )
    return found[0]


def open_session_lun(
    lun: int = 1,
    *,
    sid: int | None = None,
    target: str | None = None,
    portal: str | Portal | None = None,
    root: str | os.PathLike[str] | None = None,
    timeout: float = DEFAULT_TIMEOUT,
) -> SessionLun:
    """Open LUN ``lun`` of a session iscsikitd owns, through the daemon's NBD export.

    The session is chosen by ``sid`` (``iscsikit-adm -m session`` shows it), or by
    ``target`` (and ``portal``), or is the daemon's only session.  ``root`` is the
    filesystem root the daemon runs under (``iscsikitd --root``; default
    ``ISCSIKIT_ROOT`` or ``/``).  ``timeout`` bounds each I/O call.  See the module
    docstring for the errors.
    """
    paths = resolve_paths(root=Path(root) if root is not None else None)
    with DaemonClient(daemon_socket(paths), IPC_TIMEOUT) as daemon:
        sessions = [session_from_json(doc) for doc in daemon.call("sessions")]
    session = find_session(sessions, sid=sid, target=target, portal=portal)
    export = next((e for e in session.exports if e.lun == lun), None)
    if export is None:
        luns = ", ".join(str(e.lun) for e in session.exports) or "none"
        raise NoObjectsFoundError(
            f"session {session.sid} ({session.target}) has no exported LUN {lun} "
            f"(exported LUNs: {luns})"
        )
    return SessionLun(session, export, timeout=timeout)
