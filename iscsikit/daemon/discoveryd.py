"""discoveryd in iscsikitd: SendTargets and iSNS discovery records with
``use_discoveryd = Yes`` discovered again and again, their portals logged in and out,
as open-iscsi's iscsid does (usr/discoveryd.c).

The decisions are :mod:`iscsikit.manager.discoveryd`'s (when, and which sessions); this
module is the I/O around them: one asyncio task per record, the one discovery runner
of each kind (:func:`~iscsikit.discovery.sendtargets.send_targets`,
:func:`~iscsikit.discovery.isns.isns_targets`) in a worker thread, logins and logouts
through the daemon's own operations, and for iSNS the SCN listener: a TCP port on the
address this host reaches the server from, registered with the server (DevAttrReg of
an entity, a portal with that SCN port and the initiator node, then SCNReg); an SCN is
answered (SCNRsp) and discovers at once, an ESI is answered (ESIRsp).  At stop the
registration goes (SCNDereg, DevDereg).  Errors are logged and retried at the next
interval; nothing here can stop the daemon.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from iscsikit.config.initiatorname import default_initiator_name, read_initiator_name
from iscsikit.config.registry import RecordType
from iscsikit.discovery.db import binding_ifaces
from iscsikit.discovery.isns import (
    IsnsQueryError,
    isns_scn_deregister,
    isns_scn_register,
    isns_targets,
)
from iscsikit.discovery.sendtargets import send_targets
from iscsikit.errors import IscsiError
from iscsikit.manager.discoveryd import PortalKey, RecordPoller, Schedule, State, plan_sessions
from iscsikit.manager.login_plan import sessions_for_node
from iscsikit.proto.address import Portal
from iscsikit.proto.isns import (
    FunctionId,
    IsnsProtocolError,
    ServerMessageReader,
    Status,
    encode_esi_response,
    encode_scn_response,
    parse_esi,
    parse_scn,
)
from iscsikit.records.model import DiscoveryRecord, NodeRecord

if TYPE_CHECKING:
    from iscsikit.daemon.service import Daemon

__all__ = ["ISNS_TIMEOUT", "REGISTER_RETRY", "Discoveryd", "serve_scn_connection"]

log = logging.getLogger(__name__)

_T = TypeVar("_T")

#: Seconds for each iSNS exchange of the daemon (connect, each response).
ISNS_TIMEOUT = 15.0
#: Seconds between iSNS registration attempts (iscsid: ``sleep(5)``).
REGISTER_RETRY = 5.0
#: Seconds the stop waits for the iSNS deregistration.
DEREGISTER_TIMEOUT = 5.0


async def _off_loop(fn: Callable[..., _T], /, *args: Any, **kwargs: Any) -> _T:
    """``asyncio.to_thread``, on a daemon thread of its own.

    Every exchange run this way is bounded by its own socket timeout, but a cancelled
    one still runs to that bound; in the loop's default executor it would then hold up
    the daemon's exit (``asyncio.run`` joins that executor, and the interpreter joins
    its threads).  A daemon thread is abandoned at exit instead: a stopping daemon
    waits only for what :meth:`RecordWorker.close` bounds itself.
    """
    loop = asyncio.get_running_loop()
    future: asyncio.Future[_T] = loop.create_future()

    def settle(outcome: Callable[[], None]) -> None:
        if not future.done():
            outcome()

    def work() -> None:
        try:
            result = fn(*args, **kwargs)
        except BaseException as exc:  # handed to the awaiting task
            error = exc
            with contextlib.suppress(RuntimeError):  # the loop is closed: nobody waits
                loop.call_soon_threadsafe(settle, lambda: future.set_exception(error))
        else:
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(settle, lambda: future.set_result(result))

    threading.Thread(target=work, name=f"discoveryd {fn.__name__}", daemon=True).start()
    return await future


def _key(node: NodeRecord) -> PortalKey:
    return (node.target, node.address, node.port, node.iface)


def _local_address(host: str, port: int) -> str:
    """The address this host reaches ``host:port`` from (a UDP connect sends nothing)."""
    family, kind, proto, _, addr = socket.getaddrinfo(host, port, type=socket.SOCK_DGRAM)[0]
    with socket.socket(family, kind, proto) as probe:
        probe.connect(addr)
        return str(probe.getsockname()[0])


class Discoveryd:
    """Every discovery record with ``use_discoveryd = Yes``, each in its own task."""

    def __init__(self, daemon: Daemon, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.daemon = daemon
        self.clock = clock
        self.workers: list[RecordWorker] = []
        self._tasks: list[asyncio.Task[None]] = []

    def start(self) -> None:
        """Start a worker for each record that asks for discoveryd (none: nothing).
        Records that cannot be read are logged; the daemon runs on without them."""
        try:
            records = self.daemon.records.discoveries()
        except (IscsiError, OSError) as exc:
            log.error("discoveryd: cannot read the discovery records: %s", exc)
            return
        for record in records:
            if record.type not in ("sendtargets", "isns"):
                continue
            if record.get(f"discovery.{record.type}.use_discoveryd") != "Yes":
                continue
            worker = RecordWorker(self, record)
            self.workers.append(worker)
            self._tasks.append(
                asyncio.create_task(worker.run(), name=f"discoveryd {record.portal}")
            )
            log.info("discoveryd: %s %s, %s", record.type, record.portal, worker.schedule)

    async def stop(self) -> None:
        """Stop every worker, then deregister from the iSNS servers (bounded)."""
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        for worker in self.workers:
            await worker.close()

    def initiator_name(self) -> str:
        return (
            os.environ.get("ISCSIKIT_INITIATOR_NAME")
            or read_initiator_name(self.daemon.paths.initiatorname_file)
            or default_initiator_name()
        )


class RecordWorker:
    """One record: its poll state, the portals it tracks, its SCN listener."""

    def __init__(self, owner: Discoveryd, record: DiscoveryRecord) -> None:
        self.owner, self.record = owner, record
        try:
            inval = int(record.get(f"discovery.{record.type}.discoveryd_poll_inval"))
        except ValueError:
            inval = -1
        self.schedule = Schedule.for_record(record.type, inval)
        self.poller = RecordPoller(self.schedule)
        self.tracked: dict[PortalKey, NodeRecord] = {}
        self.runs_finished = 0
        self.scns = 0
        self._scn_pending = False
        self._wake = asyncio.Event()
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._registered: str | None = None  # the entity, once registered
        self._needs_register = False  # a discovery failed: register again first
        self.entity = f"iscsikitd:{owner.initiator_name()}"

    @property
    def server(self) -> Portal:
        return Portal(self.record.address, self.record.port)

    # -- the loop ---------------------------------------------------------------------

    async def run(self) -> None:
        if self.schedule.scn:
            await self._register_until_done()
        clock = self.owner.clock
        while True:
            run = self.poller.handle_timer(clock())
            if self._scn_pending:
                self._scn_pending = False
                run = self.poller.scn(clock()) or run
            while run:
                failed = not await self._discover_once()
                self.runs_finished += 1
                if self._scn_pending:
                    self._scn_pending = False
                    self.poller.scn(clock())
                run = self.poller.finished(clock(), failed=failed)
            if self.poller.state is State.DONE:
                break
            due = self.poller.get_timer()
            self._wake.clear()
            if self._scn_pending:
                continue
            timeout = None if due is None else max(due - clock(), 0.0)
            # asyncio.timeout, not wait_for: on Python 3.11 wait_for returns normally when
            # its inner wait finishes as the task is cancelled (an SCN arriving while the
            # daemon stops), the cancellation is lost and Discoveryd.stop waits forever.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout):
                    await self._wake.wait()

    def notify(self) -> None:
        """An SCN: discover at once (or right after the discovery in flight)."""
        self.scns += 1
        self._scn_pending = True
        self._wake.set()

    async def _discover_once(self) -> bool:
        """One discovery and its logins and logouts; every error is logged (False).
        After a failed one an SCN record registers again first (the server may have
        restarted and forgotten it)."""
        if self._needs_register:
            try:
                await self._register()
            except (IscsiError, OSError) as exc:
                log.error("discoveryd: iSNS registration with %s failed: %s",
                          self.record.portal, exc)  # fmt: skip
                return False
        try:
            nodes = await _off_loop(self._discover)
        except IscsiError as exc:
            log.error("discoveryd: %s discovery at %s failed: %s (retried at the next poll)",
                      self.record.type, self.record.portal, exc)  # fmt: skip
            self._needs_register = self.schedule.scn
            return False
        except Exception:  # a bug must not end the worker
            log.exception("discoveryd: %s discovery at %s", self.record.type, self.record.portal)
            return False
        try:
            return await self._update_sessions(nodes)
        except Exception:
            log.exception("discoveryd: sessions of %s", self.record.portal)
            return False

    def _discover(self) -> list[NodeRecord]:
        """The discovery (worker thread): a node record per returned portal and binding
        iface, the stored one if this record made it (its edits count), else a new one
        from iscsid.conf's template.  Nothing is written: discoveryd does not write the
        node database (usr/discoveryd.c logs in with the records it builds)."""
        daemon = self.owner.daemon
        records = daemon.records
        ifaces = binding_ifaces(records)
        default_name = self.owner.initiator_name()
        by_name: dict[str, list[str]] = {}
        for iface in ifaces:
            name = iface.get("iface.initiatorname") or default_name
            by_name.setdefault(name, []).append(iface.name)
        stored = {n.id: n for n in records.discovery_nodes(self.record)}
        template = daemon.conf.template(RecordType.NODE)
        nodes: list[NodeRecord] = []
        for name, iface_names in by_name.items():
            if self.record.type == "isns":
                found = isns_targets(self.record, name, timeout=ISNS_TIMEOUT)
            else:
                found = send_targets(self.record, initiator_name=name)
            for target in dict.fromkeys(found):
                for iface in (i for i in ifaces if i.name in iface_names):
                    node = NodeRecord.new(
                        target.name, target.host, target.port, target.tpgt,
                        iface=iface, discovery=self.record, template=template,
                    )  # fmt: skip
                    nodes.append(stored.get(node.id, node))
        return nodes

    async def _update_sessions(self, nodes: list[NodeRecord]) -> bool:
        """Log in and out as :func:`plan_sessions` says; False if a login failed."""
        daemon = self.owner.daemon
        infos = [daemon.manager.info(s) for s in daemon.manager.sessions()]
        returned = {_key(n): n for n in nodes}
        running = [
            k for k, n in {**self.tracked, **returned}.items() if sessions_for_node(infos, n)
        ]
        plan = plan_sessions(self.tracked, returned, running)
        for key in plan.logout:
            node = self.tracked[key]
            for info in sessions_for_node(infos, node):
                log.info("discoveryd: %s at %s no longer returned by %s: logging out",
                         node.target, node.portal, self.record.portal)  # fmt: skip
                try:
                    await daemon.op_logout({"sid": info.sid})
                except IscsiError as exc:
                    log.error("discoveryd: logout of session %d failed: %s", info.sid, exc)
        logins = [returned[k] for k in plan.login]
        self.tracked = {k: returned[k] for k in plan.tracked}
        for node in logins:
            log.info("discoveryd: logging in to %s at %s", node.target, node.portal)
        results = await asyncio.gather(*(daemon.login(n) for n in logins), return_exceptions=True)
        failed = False
        for node, result in zip(logins, results, strict=True):
            if isinstance(result, BaseException):
                failed = True
                log.error("discoveryd: login to %s at %s failed: %s",
                          node.target, node.portal, result)  # fmt: skip
        return not failed

    # -- iSNS: registration and the SCN listener ---------------------------------------

    async def _register_until_done(self) -> None:
        """Listen for SCNs and register with the server; retried every
        :data:`REGISTER_RETRY` seconds until it works (iscsid's ``isns_scn_recv``)."""
        while True:
            try:
                await self._register()
                return
            except (IscsiError, OSError) as exc:
                log.error("discoveryd: iSNS registration with %s failed: %s (retrying)",
                          self.record.portal, exc)  # fmt: skip
            await asyncio.sleep(REGISTER_RETRY)

    async def _register(self) -> None:
        server = self.server
        address = await _off_loop(_local_address, server.host, server.port)
        if self._server is None:
            self._server = await asyncio.start_server(self._serve, address, 0)
        scn_port = int(self._server.sockets[0].getsockname()[1])
        answer = await _off_loop(
            isns_scn_register, server, self.owner.initiator_name(),
            entity=self.entity, address=address, scn_port=scn_port, timeout=ISNS_TIMEOUT,
        )  # fmt: skip
        self._registered = self.entity
        self._needs_register = False
        log.info("discoveryd: registered %s with iSNS server %s (SCNs to %s:%d)",
                 self.entity, server, address, scn_port)  # fmt: skip
        if answer.scn_status is not Status.SUCCESSFUL:
            message = f"SCN registration with {server} failed: {answer.scn_status.text}"
            if self.schedule.interval is None:  # SCNs only: nothing would happen (iscsid)
                raise IsnsQueryError(message, status=answer.scn_status)
            log.warning("discoveryd: %s; polling every %g s", message, self.schedule.interval)
        refreshed = self.schedule.refreshing(answer.period)
        if refreshed != self.poller.schedule:
            log.info("discoveryd: registration period %d s: discovering every %g s",
                     answer.period, refreshed.interval)  # fmt: skip
            self.poller.schedule = refreshed

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """One connection from the server: SCNs and ESIs, each answered."""
        self._writers.add(writer)
        try:
            await serve_scn_connection(reader, writer, self.notify)
        finally:
            self._writers.discard(writer)

    async def close(self) -> None:
        """Close the SCN listener and deregister (SCNDereg + DevDereg), bounded."""
        if self._server is not None:
            self._server.close()
            for writer in list(self._writers):
                writer.close()
            self._server = None
        if self._registered is None:
            return
        entity, self._registered = self._registered, None
        log.info("discoveryd: deregistering %s from %s", entity, self.server)
        try:
            await asyncio.wait_for(
                _off_loop(
                    isns_scn_deregister, self.server, self.owner.initiator_name(),
                    entity=entity, timeout=DEREGISTER_TIMEOUT,
                ),
                DEREGISTER_TIMEOUT * 3,
            )  # fmt: skip
        except (IscsiError, TimeoutError) as exc:
            log.warning("discoveryd: iSNS deregistration from %s failed: %s", self.server, exc)


async def serve_scn_connection(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    on_scn: Callable[[], None],
    timeout: float = ISNS_TIMEOUT,
) -> None:
    """Answer the SCNs and ESIs an iSNS server sends on one connection, calling
    ``on_scn`` for each SCN, until it closes, errs, or stops for ``timeout`` seconds in the
    middle of a message or of taking our answers (an idle connection may stay open: the
    server speaks when something changes).  The connection is closed at the end."""
    messages = ServerMessageReader()
    try:
        while True:
            wait = timeout if messages.buffered else None
            try:
                data = await asyncio.wait_for(reader.read(65536), wait)
            except TimeoutError:
                log.warning("discoveryd: iSNS server stopped mid-message for %g s", timeout)
                return
            if not data:
                return
            for request in messages.receive_data(data):
                if request.function == FunctionId.ESI:
                    writer.write(encode_esi_response(parse_esi(request)))
                    continue
                scn = parse_scn(request)
                writer.write(encode_scn_response(scn.xid, scn.destination))
                for change in scn.changes:
                    log.info("discoveryd: SCN for %s: %s %s", scn.destination, change.name,
                             (change.bits.name or hex(change.bits)).lower())  # fmt: skip
                on_scn()
            await asyncio.wait_for(writer.drain(), timeout)
    except IsnsProtocolError as exc:
        log.warning("discoveryd: iSNS server sent a bad message: %s", exc)
    except TimeoutError:
        log.warning("discoveryd: iSNS server took no answer for %g s", timeout)
    except (OSError, asyncio.IncompleteReadError):
        pass
    finally:
        writer.close()
