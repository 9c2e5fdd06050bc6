"""A logical unit as a Python object: blocking reads and writes by byte offset.

:func:`open_lun` logs a session in through the session manager
(:class:`~iscsikit.manager.blocking.BlockingManagedSession`, over the userspace TCP
transport unless told otherwise), probes the LUN and returns a :class:`Lun`; closing
the Lun logs the session out.  Recovery is the manager's: the Lun's commands go through
the session's recovering channel, which re-issues what a failed connection interrupted.
:meth:`Lun.attach` wraps a session the caller already has.  The SCSI meaning of each
call lives in :mod:`iscsikit.lun.ops`; this module only drives those operations over a
:class:`~iscsikit.plugin.transport.CommandChannel`.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Generator
from types import TracebackType
from typing import Any, Protocol, TypeVar

from iscsikit.errors import ConnectionFailedError, InvalidParameterError
from iscsikit.lun import ops
from iscsikit.lun.url import IscsiUrl, parse_iscsi_url
from iscsikit.manager.blocking import BlockingManagedSession
from iscsikit.manager.node_login import login_arguments, node_settings
from iscsikit.manager.recovery import REISSUE_LIMIT
from iscsikit.manager.spec import Chap, SessionSettings, session_settings
from iscsikit.plugin.transport import CommandChannel, TransportSession
from iscsikit.proto.task import ScsiTask
from iscsikit.records.model import NodeRecord

_R = TypeVar("_R")


class PlainSession(Protocol):
    """A logged-in session someone else owns and does not recover (an
    :class:`iscsikit.Session` from :func:`iscsikit.login`)."""

    target: str

    @property
    def transport_session(self) -> TransportSession: ...

    def logout(self, timeout: float | None = None) -> None: ...


#: What a :class:`Lun` runs over.
AnySession = BlockingManagedSession | PlainSession


def run_blocking(channel: CommandChannel, op: Generator[list[ScsiTask], None, _R]) -> _R:
    """Drive an :mod:`~iscsikit.lun.ops` generator to completion over ``channel``."""
    try:
        step = next(op)
        while True:
            for task in step:
                channel.submit(task)
            for task in step:
                channel.wait(task)
            step = op.send(None)
    except StopIteration as stop:
        result: _R = stop.value
        return result


def settings_for_url(url: IscsiUrl, **options: Any) -> SessionSettings:
    """The session settings a parsed URL names (CHAP, digests, initiator name);
    ``options`` are :func:`~iscsikit.manager.spec.session_settings`'s."""
    chap = None
    if url.user is not None:
        chap = Chap(
            url.user,
            url.password or "",
            username_in=url.target_user,
            password_in=url.target_password,
        )
    options.setdefault("header_digest", url.header_digest)
    options.setdefault("data_digest", url.data_digest)
    if url.initiator_name is not None:
        options.setdefault("initiator_name", url.initiator_name)
    return session_settings(url.portal, url.target, chap=chap, **options)


def login_for_url(
    url: IscsiUrl, *, reissue_limit: int | None = REISSUE_LIMIT, **options: Any
) -> BlockingManagedSession:
    """Log in the session a parsed URL names; the caller logs it out."""
    session = BlockingManagedSession(settings_for_url(url, **options), reissue_limit=reissue_limit)
    session.login()
    return session


class Lun(ops.GeometryView):
    """One logical unit over a logged-in session.

    ``read``/``write`` take byte offsets; unaligned ranges work (partial blocks are
    read, merged and written back).  Large requests are split by the target's Block
    Limits and the pieces run concurrently.

    Thread-safe: calls from several threads are serialized (one operation at a time on
    the connection), so a read-modify-write of a partial block never interleaves with
    another write; for parallel I/O use :class:`~iscsikit.lun.aio.AsyncLun`.

    Over a :class:`~iscsikit.manager.blocking.BlockingManagedSession` (what
    :func:`open_lun` and :func:`open_node_lun` log in) a failed connection is recovered
    by the session manager: the calling thread waits DefaultTime2Wait, logs in again as
    the same session and re-issues the interrupted commands whole; new calls wait with
    them; past the session's ``replacement_timeout`` they fail with
    :class:`~iscsikit.errors.ConnectionFailedError`.  A call never returns data or
    success from a connection that failed under it.  Over a plain session
    (:func:`iscsikit.login`) a connection failure is raised.
    """

    def __init__(
        self,
        session: AnySession,
        channel: CommandChannel,
        geometry: ops.Geometry,
        *,
        owns: bool,
    ) -> None:
        #: The session: a BlockingManagedSession (``target``, ``params``, ``closed``,
        #: ``recoveries``) or the plain session :meth:`attach` was given.
        self.session = session
        self.channel = channel
        self.geometry = geometry
        self._owns = owns
        self._closed = False
        # One operation at a time: the channel is not thread-safe, and an unaligned write's
        # read-modify-write must not interleave with another write of the same blocks.
        self._lock = threading.Lock()

    @property
    def recoveries(self) -> int:
        """How often the session came back after a connection failure."""
        if isinstance(self.session, BlockingManagedSession):
            return self.session.recoveries
        return 0

    def _run(self, make: Callable[[], Generator[list[ScsiTask], None, _R]]) -> _R:
        with self._lock:
            if self._closed:
                raise ConnectionFailedError("the LUN is closed")
            return run_blocking(self.channel, make())

    @classmethod
    def attach(cls, session: AnySession, lun: int = 0, *, owns: bool = False) -> Lun:
        """Open ``lun`` of a logged-in session; ``owns`` makes :meth:`close` log it out.
        A :class:`~iscsikit.manager.blocking.BlockingManagedSession` recovers."""
        channel: CommandChannel
        if isinstance(session, BlockingManagedSession):
            channel = session.io
        else:
            channel = session.transport_session.command_channel()
        geometry = run_blocking(channel, ops.probe(lun))
        return cls(session, channel, geometry, owns=owns)

    # -- data ------------------------------------------------------------------------------

    def read(self, offset: int, length: int) -> bytes:
        return self._run(lambda: ops.read(self.geometry, offset, length))

    def readinto(self, offset: int, buffer: bytearray | memoryview) -> int:
        """Read ``len(buffer)`` bytes at ``offset`` into ``buffer``; block-aligned reads go
        straight into it (no copy)."""
        view = memoryview(buffer).cast("B")
        bs = self.block_size
        if offset % bs == 0 and len(view) % bs == 0:
            self._run(lambda: ops.read_blocks(self.geometry, offset, view))
        else:
            view[:] = self.read(offset, len(view))
        return len(view)

    def write(self, offset: int, data: bytes | bytearray | memoryview, *, fua: bool = False) -> int:
        self._run(lambda: ops.write(self.geometry, offset, data, fua=fua))
        return len(memoryview(data).cast("B"))

    def flush(self) -> None:
        """SYNCHRONIZE CACHE: what was written is on stable storage when this returns."""
        self._run(lambda: ops.flush(self.geometry))

    def unmap(self, offset: int, length: int) -> None:
        """Deallocate a block-aligned range (UNMAP); reads return zeros or old data
        afterwards, per the LUN's LBPRZ."""
        self._run(lambda: ops.unmap(self.geometry, offset, length))

    def write_zeroes(self, offset: int, length: int) -> None:
        self._run(lambda: ops.write_zeroes(self.geometry, offset, length))

    def execute(
        self,
        cdb: bytes,
        *,
        read_length: int = 0,
        write_data: bytes | bytearray | memoryview | None = None,
    ) -> ScsiTask:
        """Any SCSI command (retried on unit attention); raises on failure."""
        return self._run(
            lambda: ops.command(cdb, lun=self.lun, read_length=read_length, write_data=write_data)
        )

    # -- lifetime --------------------------------------------------------------------------

    @property
    def closed(self) -> bool:
        return self._closed

    def close(self) -> None:
        """Log out, if this Lun opened the session; idempotent.  Waits for the operation
        of another thread to finish; later calls raise :class:`ConnectionFailedError`."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            if self._owns:
                try:
                    self.session.logout()
                except Exception:
                    _abandon(self.session)
                    raise

    def __enter__(self) -> Lun:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return (
            f"<Lun {self.lun} of {self.session.target} ({self.size} bytes, "
            f"{self.block_size}-byte blocks)>"
        )


def _abandon(session: AnySession) -> None:
    """Drop ``session``'s connection without a logout (after a failure)."""
    with contextlib.suppress(Exception):
        if isinstance(session, BlockingManagedSession):
            session.close()
        else:
            session.transport_session.close()


def _open_owned(settings: SessionSettings, lun: int, reissue_limit: int | None) -> Lun:
    """Log a managed session in as ``settings`` say and open ``lun`` on it (the Lun
    owns the session)."""
    session = BlockingManagedSession(settings, reissue_limit=reissue_limit)
    session.login()
    try:
        return Lun.attach(session, lun, owns=True)
    except BaseException:
        with contextlib.suppress(Exception):
            session.logout()
        _abandon(session)
        raise


def open_lun(
    url: str | IscsiUrl, *, reissue_limit: int | None = REISSUE_LIMIT, **options: Any
) -> Lun:
    """Log in to the target a libiscsi-style URL names and open its LUN.

    ``url`` is ``iscsi://[user[%password]@]host[:port]/target-iqn/lun`` (see
    :mod:`iscsikit.lun.url` for mutual CHAP and digests); ``options`` are those of
    :func:`iscsikit.login` (``initiator_name``, ``timeout``, ``retries``,
    ``queue_depth``, ``timers``, any operational key such as ``ImmediateData=False``)
    and ``replacement_timeout`` (seconds a failed session may take to come back before
    I/O fails; 120 by default).  ``reissue_limit`` bounds how often one command is sent
    again after connections failed under it (None: until replacement_timeout).
    """
    parsed = parse_iscsi_url(url) if isinstance(url, str) else url
    if not isinstance(parsed, IscsiUrl):
        raise InvalidParameterError(f"not an iSCSI URL: {url!r}")
    return _open_owned(settings_for_url(parsed, **options), parsed.lun, reissue_limit)


def open_node_lun(
    node: NodeRecord, lun: int, *, reissue_limit: int | None = REISSUE_LIMIT, **options: Any
) -> Lun:
    """Log in as a node record says (CHAP, digests, keys, timers, ``cmds_max``,
    ``initial_login_retry_max``, ``replacement_timeout``) and open LUN ``lun``;
    ``options`` override settings the record gives (``retries=0``, ``timeout=5``...)."""
    settings = node_settings(node)
    if options:
        _, target, arguments = login_arguments(node)
        arguments.update(
            transport=settings.transport,
            retries=settings.retries,
            replacement_timeout=settings.replacement_timeout,
        )
        arguments.update(options)
        settings = session_settings(settings.portal, target, **arguments)
    return _open_owned(settings, lun, reissue_limit)


__all__ = [
    "AnySession",
    "Lun",
    "PlainSession",
    "login_for_url",
    "open_lun",
    "open_node_lun",
    "run_blocking",
    "settings_for_url",
]
