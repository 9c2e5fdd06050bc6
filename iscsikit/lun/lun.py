"""A logical unit as a Python object: blocking reads and writes by byte offset.

:func:`open_lun` logs a session in (over the userspace TCP transport unless told
otherwise), probes the LUN and returns a :class:`Lun`; closing the Lun logs the session
out.  :meth:`Lun.attach` wraps a session the caller already has.  The SCSI meaning of
each call lives in :mod:`iscsikit.lun.ops`; this module only drives those operations
over a :class:`~iscsikit.plugin.transport.CommandChannel`.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Generator
from types import TracebackType
from typing import Any, TypeVar

from iscsikit.api import Session, login
from iscsikit.errors import ConnectionFailedError, InvalidParameterError
from iscsikit.lun import ops
from iscsikit.lun.url import IscsiUrl, parse_iscsi_url
from iscsikit.manager.spec import Chap
from iscsikit.plugin.transport import CommandChannel
from iscsikit.proto.task import ScsiTask
from iscsikit.records.model import NodeRecord
from iscsikit.scsi.cdb import test_unit_ready

_R = TypeVar("_R")


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


def login_for_url(url: IscsiUrl, **options: Any) -> Session:
    """Log in the session a parsed URL names (CHAP, digests, initiator name)."""
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
    return login(url.portal, url.target, chap=chap, **options)


class Lun(ops.GeometryView):
    """One logical unit over a logged-in session.

    ``read``/``write`` take byte offsets; unaligned ranges work (partial blocks are
    read, merged and written back).  Large requests are split by the target's Block
    Limits and the pieces run concurrently.

    Thread-safe: calls from several threads are serialized (one operation at a time on
    the connection), so a read-modify-write of a partial block never interleaves with
    another write; for parallel I/O use :class:`~iscsikit.lun.aio.AsyncLun`.

    A Lun that logged its own session in (:func:`open_lun`, :func:`open_node_lun`)
    recovers from a failed connection once per call, as the kernel does after session
    recovery: it logs in again and re-issues the whole operation (reads and writes of
    the same data to the same blocks are idempotent).  If that fails too, the error is
    raised.
    """

    def __init__(
        self,
        session: Session,
        channel: CommandChannel,
        geometry: ops.Geometry,
        *,
        owns: bool,
        relogin: Callable[[], Session] | None = None,
    ) -> None:
        self.session = session
        self.channel = channel
        self.geometry = geometry
        self._owns = owns
        self._relogin = relogin
        self._closed = False
        # One operation at a time: the channel is not thread-safe, and an unaligned write's
        # read-modify-write must not interleave with another write of the same blocks.
        self._lock = threading.Lock()
        #: How often this Lun logged in again after a connection failure.
        self.recoveries = 0

    def _run(self, make: Callable[[], Generator[list[ScsiTask], None, _R]]) -> _R:
        with self._lock:
            if self._closed:
                raise ConnectionFailedError("the LUN is closed")
            try:
                return run_blocking(self.channel, make())
            except ConnectionFailedError:
                if self._relogin is None:
                    raise
                self._recover()
                return run_blocking(self.channel, make())

    def _recover(self) -> None:
        assert self._relogin is not None
        with contextlib.suppress(Exception):
            self.session.transport_session.close()
        session = self._relogin()
        try:
            channel = session.transport_session.command_channel()
            # A new I_T nexus starts with a unit attention (power on / reset): clear it.
            run_blocking(channel, ops.command(test_unit_ready(), lun=self.lun))
        except BaseException:
            with contextlib.suppress(Exception):
                session.transport_session.close()
            raise
        self.session, self.channel = session, channel
        self.recoveries += 1

    @classmethod
    def attach(
        cls,
        session: Session,
        lun: int = 0,
        *,
        owns: bool = False,
        relogin: Callable[[], Session] | None = None,
    ) -> Lun:
        """Open ``lun`` of an existing session; ``owns`` makes :meth:`close` log it out,
        ``relogin`` (a new session to the same target) enables recovery."""
        channel = session.transport_session.command_channel()
        geometry = run_blocking(channel, ops.probe(lun))
        return cls(session, channel, geometry, owns=owns, relogin=relogin)

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
                    with contextlib.suppress(Exception):
                        self.session.transport_session.close()
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


def _open_owned(relogin: Callable[[], Session], lun: int) -> Lun:
    """Log in with ``relogin`` and open ``lun`` on a session the Lun owns (and may log
    in again with the same call after a connection failure)."""
    session = relogin()
    try:
        return Lun.attach(session, lun, owns=True, relogin=relogin)
    except BaseException:
        with contextlib.suppress(Exception):
            session.logout()
        raise


def open_lun(url: str | IscsiUrl, **options: Any) -> Lun:
    """Log in to the target a libiscsi-style URL names and open its LUN.

    ``url`` is ``iscsi://[user[%password]@]host[:port]/target-iqn/lun`` (see
    :mod:`iscsikit.lun.url` for mutual CHAP and digests); ``options`` go to
    :func:`iscsikit.login` (``initiator_name``, ``timeout``, ``queue_depth``,
    ``timers``, any operational key such as ``ImmediateData=False``).
    """
    parsed = parse_iscsi_url(url) if isinstance(url, str) else url
    if not isinstance(parsed, IscsiUrl):
        raise InvalidParameterError(f"not an iSCSI URL: {url!r}")
    return _open_owned(lambda: login_for_url(parsed, **options), parsed.lun)


def open_node_lun(node: NodeRecord, lun: int, **options: Any) -> Lun:
    """Log in as a node record says (CHAP, digests, keys, timers, ``cmds_max``) and
    open LUN ``lun``; ``options`` override what the record gives to :func:`iscsikit.login`."""
    from iscsikit.manager.node_login import login_arguments

    portal, target, arguments = login_arguments(node)
    arguments.update(options)
    return _open_owned(lambda: login(portal, target, **arguments), lun)


__all__ = ["Lun", "login_for_url", "open_lun", "open_node_lun", "run_blocking"]
