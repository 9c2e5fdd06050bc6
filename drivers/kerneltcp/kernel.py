"""One kernel iscsi_tcp session, driven as iscsid drives it (open-iscsi-notes.md §1.5, §5).

Login (:meth:`KernelSession.login` = :meth:`~KernelSession.create` +
:meth:`~KernelSession.connect`), for iscsi_tcp::

    CREATE_SESSION(initial CmdSN, cmds_max, queue_depth) -> sid, host_no
    CREATE_CONN(sid, 0)                                  -> cid
    connect the TCP socket in userspace
    BIND_CONN(transport_eph = the socket's fd, is_leading = 1)
    log in: each Login Request through the kernel (SEND_PDU), each Login Response
            back as a RECV_PDU event, iscsikit.proto's LoginMachine deciding
    SET_PARAM x N (params.session_params, then params.negotiated_params)
    START_CONN                                           -> the kernel scans LUNs

The connect step is a strategy (:mod:`.endpoint`): for iser the kernel connects first
(EP_CONNECT, EP_POLL), the session is made on that endpoint (CREATE_BOUND_SESSION) and
BIND_CONN binds the endpoint's handle; the rest is the same.

The Login PDUs go through the kernel as iscsid sends them because the kernel fills in
their CmdSN (and ITT) from the session it keeps: after a recovery the new connection's
login must carry the CmdSN the kernel will go on with, which only the kernel knows.  The
machine's ITT is put back into each response before the machine reads it.

Recovery (:meth:`KernelSession.suspend` then :meth:`~KernelSession.connect` again), as
iscsid's reopen: STOP_CONN(RECOVER) -- the kernel holds the SCSI commands and starts
``recovery_tmo``, after which it fails them -- close the socket (a kernel endpoint is
disconnected first, before STOP_CONN), then a new socket is bound to the same connection
and logged in; START_CONN releases the held commands.  A login that fails leaves the
connection stopped and its endpoint disconnected the same way; a failed first login
destroys the session too (nothing is left in the kernel).

The socket: iscsi_tcp's bind does ``sockfd_lookup(transport_eph)`` and keeps that file
reference until the connection is released (``sockfd_put`` in
``iscsi_sw_tcp_release_conn``), so our fd may be closed at any time after BIND_CONN.
iscsid keeps its fd until the connection is torn down (``iscsi_io_tcp_disconnect``
after STOP_CONN, with ``SO_LINGER`` 0 unless it is a clean logout); so does this module.

Logout (:meth:`KernelSession.logout`), as iscsid: UNBIND_SESSION (the kernel removes the
SCSI target and answers with an UNBIND_SESSION event), a Logout Request (close the
session) sent through the kernel with SEND_PDU (the kernel fills ITT, CmdSN and
ExpStatSN), its response awaited as a RECV_PDU event, then STOP_CONN(TERM),
DESTROY_CONN, DESTROY_SESSION.
"""

from __future__ import annotations

import contextlib
import dataclasses
import queue
import struct
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

from iscsikit import net
from iscsikit.errors import ConnectionFailedError, IscsiErr, TransportError, TransportTimeoutError
from iscsikit.netlink import (
    ConnError,
    KernelEvent,
    NetlinkRequestError,
    RequestFailed,
    StopConnFlag,
)
from iscsikit.netlink.events import (
    ConnCreated,
    ConnFailed,
    PduReceived,
    RequestDone,
    SessionCreated,
    SessionUnbound,
    StatsReceived,
)
from iscsikit.netlink.messages import (
    BindConn,
    CreateBoundSession,
    CreateConn,
    CreateSession,
    DestroyConn,
    DestroySession,
    GetStats,
    Request,
    SendPdu,
    SetParam,
    StartConn,
    StopConn,
    UnbindSession,
)
from iscsikit.plugin import ConnectSpec
from iscsikit.proto.login import LoginAccepted, LoginMachine, TargetRedirected
from iscsikit.proto.pdu import LoginRequest, decode_pdu, encode_pdu

from .endpoint import Connector, Endpoint, TcpConnector
from .events import KernelEvents, shared_events
from .netlink import NetlinkChannel
from .params import KernelSettings, negotiated_params, session_params

__all__ = ["KernelSession", "KernelSettings", "transport_handle"]

#: RFC 7143 §11.14: Logout Request, immediate, Final, reason 0 (close the session).
_LOGOUT_BHS = struct.pack(">BB46x", 0x06 | 0x40, 0x80)
_LOGOUT_RESPONSE = 0x26
_BHS = 48
#: Seconds a login that saw its connection fail still waits for the target's answer.
_LATE_ANSWER = 1.0
#: Seconds ``modprobe`` may take to load a transport's module.
_MODPROBE_TIMEOUT = 60.0
#: What a teardown step may raise and the teardown goes on after.
_TEARDOWN_ERRORS = (NetlinkRequestError, TransportError, OSError)


def transport_handle(
    name: str = "tcp",
    *,
    sysfs: Path = Path("/sys"),
    load: bool = True,
    module: str | None = None,
) -> int:
    """The kernel transport's handle (``class/iscsi_transport/<name>/handle``).

    Loads ``module`` (default ``iscsi_<name>``; iser's is ``ib_iser``) with modprobe
    first when the transport is absent and ``load``.
    """
    path = sysfs / "class" / "iscsi_transport" / name / "handle"
    if not path.exists() and load:
        module = module or f"iscsi_{name}"
        with contextlib.suppress(subprocess.TimeoutExpired, OSError):
            subprocess.run(
                ["modprobe", module], capture_output=True, check=False, timeout=_MODPROBE_TIMEOUT
            )
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        raise TransportError(
            f"the kernel offers no iSCSI transport {name!r} ({path})", code=IscsiErr.TRANS_NOT_FOUND
        ) from None


class KernelSession:
    """A session the kernel's iscsi_tcp carries; see the module docstring."""

    def __init__(
        self,
        channel: NetlinkChannel,
        handle: int,
        sid: int,
        host_no: int,
        cid: int,
        settings: KernelSettings,
        *,
        events: KernelEvents | None = None,
        connector: Connector | None = None,
    ) -> None:
        self.channel = channel
        self.connector = connector or TcpConnector()
        self.handle = handle
        self.sid = sid
        self.host_no = host_no
        self.cid = cid
        self.settings = settings
        self.accepted: LoginAccepted | None = None
        #: Parameters the kernel does not implement (SET_PARAM answered -ENOSYS).
        self.unsupported: list[int] = []
        #: The current connection's carrier (a socket for iscsi_tcp); None between them.
        self.endpoint: Endpoint | None = None
        #: Whether the connection was started (and not stopped since).
        self.started = False
        #: Called (from the event reader's thread) when the current connection fails.
        self.on_conn_error: Callable[[ConnFailed], None] | None = None
        self._events = events or shared_events()
        self._generation = 0
        self._inbox: queue.Queue[KernelEvent] = queue.Queue()
        self._events.subscribe(sid, self._on_kernel_event)

    # -- life ------------------------------------------------------------------------------

    @classmethod
    def create(
        cls,
        initial_cmdsn: int,
        settings: KernelSettings | None = None,
        *,
        channel: NetlinkChannel | None = None,
        handle: int | None = None,
        events: KernelEvents | None = None,
        connector: Connector | None = None,
        endpoint: Endpoint | None = None,
    ) -> KernelSession:
        """CREATE_SESSION (CREATE_BOUND_SESSION on ``endpoint`` when given) and
        CREATE_CONN: a session with one connection, not bound yet."""
        settings = settings or KernelSettings()
        channel = channel or NetlinkChannel(events=False)
        handle = transport_handle() if handle is None else handle
        limits = {
            "transport_handle": handle,
            "initial_cmdsn": initial_cmdsn,
            "cmds_max": settings.cmds_max,
            "queue_depth": settings.queue_depth,
        }
        request: Request = (
            CreateSession(**limits)
            if endpoint is None
            else CreateBoundSession(ep_handle=endpoint.handle, **limits)
        )
        created = channel.request(request)
        assert isinstance(created, SessionCreated)
        session = cls(
            channel,
            handle,
            created.sid,
            created.host_no,
            0,
            settings,
            events=events,
            connector=connector,
        )
        try:
            conn = channel.request(CreateConn(transport_handle=handle, sid=session.sid, cid=0))
            if not isinstance(conn, ConnCreated) or not conn.ok:
                raise TransportError(f"the kernel could not create a connection for {session.sid}")
            session.cid = conn.cid
        except BaseException:
            session.destroy()
            raise
        return session

    @classmethod
    def adopt(
        cls,
        sid: int,
        host_no: int,
        cid: int = 0,
        settings: KernelSettings | None = None,
        *,
        channel: NetlinkChannel | None = None,
        handle: int | None = None,
        events: KernelEvents | None = None,
        connector: Connector | None = None,
    ) -> KernelSession:
        """A running session another process (an earlier iscsikitd) made: started, its
        endpoint held by the kernel alone.  ``channel`` carries its requests (default: a
        NETLINK_ISCSI socket of its own; an offload driver passes its factory's)."""
        session = cls(
            channel or NetlinkChannel(events=False),
            transport_handle() if handle is None else handle,
            sid,
            host_no,
            cid,
            settings or KernelSettings(),
            events=events,
            connector=connector,
        )
        session.started = True
        return session

    @classmethod
    def login(
        cls,
        spec: ConnectSpec,
        settings: KernelSettings | None = None,
        *,
        channel: NetlinkChannel | None = None,
        handle: int | None = None,
        connector: Connector | None = None,
        events: KernelEvents | None = None,
    ) -> KernelSession | TargetRedirected:
        """Create, log in, set and start a session; a redirect is returned as is.

        On any failure (and on a redirect) what was created in the kernel is destroyed:
        no endpoint, connection or session is left.  A ``connector`` with
        :attr:`~.endpoint.Connector.bound_session` connects first and the session is made
        on that endpoint.  ``events`` replaces the process's event reader (an offload
        driver's own, tests).  The session owns ``channel``: it is closed with it, or
        when the login fails before there is a session.
        """
        connector = connector or TcpConnector()
        endpoint: Endpoint | None = None
        if connector.bound_session:
            channel = channel or NetlinkChannel(events=False)
            handle = transport_handle() if handle is None else handle
            deadline = net.deadline_after(spec.timeouts.login)
            try:
                endpoint = connector.connect(channel, handle, spec.portal, deadline)
            except BaseException:
                channel.close()
                raise
        try:
            session = cls.create(
                spec.login.cmdsn,
                settings,
                channel=channel,
                handle=handle,
                events=events,
                connector=connector,
                endpoint=endpoint,
            )
        except BaseException:
            if endpoint is not None:
                endpoint.close(clean=False)
            if channel is not None:
                with contextlib.suppress(OSError):
                    channel.close()
            raise
        try:
            result = session.connect(spec, endpoint)
        except BaseException:
            session.destroy()
            raise
        if isinstance(result, TargetRedirected):
            session.destroy()
            return result
        return session

    def connect(
        self, spec: ConnectSpec, endpoint: Endpoint | None = None
    ) -> LoginAccepted | TargetRedirected:
        """Connect a new endpoint (unless given one), bind it, log in through the kernel,
        set the parameters and start.  A redirect or a failure leaves the connection
        stopped again (the session kept, for another attempt)."""
        deadline = net.deadline_after(spec.timeouts.login)
        self._generation = self._events.barrier()
        # Events queued so far are about the connection being replaced (a CONN_ERROR the
        # manager already acted on): the login must not take them for its own.
        self._drop_queued()
        spec = dataclasses.replace(spec, login=self.connector.login_config(spec.login))
        if endpoint is None:
            endpoint = self.connector.connect(self.channel, self.handle, spec.portal, deadline)
        self.endpoint = endpoint
        try:
            self._checked(
                BindConn(
                    transport_handle=self.handle,
                    sid=self.sid,
                    cid=self.cid,
                    transport_eph=endpoint.handle,
                    is_leading=1,
                )
            )
            result = self._log_in(spec, deadline)
            if isinstance(result, TargetRedirected):
                self.suspend()
                return result
            self.connector.check_login(result)
            for param, value in session_params(spec, self.settings) + negotiated_params(result):
                self.set_param(param, value)
            self._checked(StartConn(transport_handle=self.handle, sid=self.sid, cid=self.cid))
        except BaseException:
            with contextlib.suppress(*_TEARDOWN_ERRORS):
                self.suspend()
            raise
        self.accepted = result
        self.started = True
        return result

    def _log_in(
        self, spec: ConnectSpec, deadline: net.Deadline
    ) -> LoginAccepted | TargetRedirected:
        machine = LoginMachine(spec.login)
        step: LoginRequest | LoginAccepted | TargetRedirected = machine.start()
        while isinstance(step, LoginRequest):
            raw = encode_pdu(step)
            self._send_pdu(raw[:_BHS], raw[_BHS : _BHS + len(step.data)])
            answer = self._wait(
                lambda e: isinstance(e, PduReceived | ConnFailed), deadline.remaining()
            )
            if answer is None:
                raise TransportTimeoutError(
                    f"login to {spec.portal} timed out after {spec.timeouts.login:g} s"
                )
            failed = answer if isinstance(answer, ConnFailed) else None
            if failed is not None:
                # A target that refuses a login answers, then disconnects; over iSER the
                # CONN_ERROR can overtake the RECV_PDU of that answer (the connection
                # manager's event before the completion queue's).  The answer says why.
                grace = min(_LATE_ANSWER, deadline.remaining())
                answer = self._wait(lambda e: isinstance(e, PduReceived), grace)
            if isinstance(answer, PduReceived):
                step = machine.receive(decode_pdu(_as_answer_to(answer.pdu, step.itt)))
            if failed is not None:
                raise ConnectionFailedError(
                    f"login to {spec.portal}: the connection failed ({_conn_error(failed)})"
                )
        return step

    def _send_pdu(self, hdr: bytes, data: bytes = b"") -> None:
        """SEND_PDU; a non-zero retcode (-ENOTCONN while the kernel cleans up a failed
        connection) fails at once: no answer would come."""
        reply = self.channel.request(
            SendPdu(transport_handle=self.handle, sid=self.sid, cid=self.cid, hdr=hdr, data=data)
        )
        if isinstance(reply, RequestDone) and reply.retcode != 0:
            raise ConnectionFailedError(
                f"the kernel did not send the PDU on connection {self.sid}:{self.cid} "
                f"({reply.retcode})"
            )

    def suspend(self) -> None:
        """STOP_CONN(RECOVER) and close the endpoint: the session waits for a new
        connection (the kernel holds its commands for ``recovery_tmo``).

        A kernel endpoint is disconnected *before* STOP_CONN, as iscsid's reopen does
        (``ep_disconnect``, then ``stop_conn``).  After a connection error the kernel
        (Linux 6.1, ``iscsi_cleanup_conn_work_fn``) disconnects the endpoint itself and keeps
        a reference to it until userspace's EP_DISCONNECT finds the connection still
        marked for cleanup; STOP_CONN(RECOVER) clears that mark, so an EP_DISCONNECT
        after it does nothing and the endpoint is never freed: its id stays taken (the
        next endpoint gets another) and it keeps pointing at the connection.
        """
        self.started = False
        self.accepted = None
        try:
            if self.endpoint is not None and self.endpoint.close_before_stop:
                self._close_endpoint(clean=False)
            self.stop(StopConnFlag.RECOVER)
        finally:
            self._close_endpoint(clean=False)

    def scan(self, sysfs: Path = Path("/sys")) -> None:
        """Ask the SCSI host to scan every LUN, as iscsid does after START_CONN."""
        (sysfs / "class" / "scsi_host" / f"host{self.host_no}" / "scan").write_text("- - -")

    def set_param(self, param: int, value: str) -> None:
        """SET_PARAM; a parameter the kernel lacks (-ENOSYS) is noted, not fatal (iscsid)."""
        msg = SetParam(
            transport_handle=self.handle, sid=self.sid, cid=self.cid, param=param, value=value
        )
        try:
            self.channel.request(msg)
        except NetlinkRequestError as exc:
            if not exc.not_supported:
                raise
            self.unsupported.append(param)

    def stats_channel(self) -> NetlinkChannel:
        """A new channel in the events group, where the kernel multicasts GET_STATS'
        answer (a NETLINK_ISCSI socket; an offload driver's session uses its factory)."""
        return NetlinkChannel()

    def stats(self, timeout: float = 10.0) -> dict[str, int]:
        """GET_STATS: the connection's counters by ``STATS_FIELDS`` name (and custom ones).

        The kernel multicasts the answer to the events group (only a refusal comes back
        to the sender), so it is asked on a socket of its own in that group, and the
        answer about this connection is picked from whatever else arrives.
        """
        with self.stats_channel() as channel:
            channel.sock.send(
                GetStats(transport_handle=self.handle, sid=self.sid, cid=self.cid).encode(
                    pid=channel.pid, seq=0
                )
            )
            deadline = time.monotonic() + timeout
            while (remaining := deadline - time.monotonic()) > 0:
                item = channel.next_message(remaining)
                if isinstance(item, StatsReceived) and (item.sid, item.cid) == (
                    self.sid,
                    self.cid,
                ):
                    return dict(item.counters)
                if isinstance(item, RequestFailed) and item.request_type == GetStats.TYPE:
                    raise item.exception()
        raise TransportTimeoutError(f"no statistics from the kernel for session {self.sid}")

    def wait_conn_error(self, timeout: float) -> ConnFailed | None:
        """The next CONN_ERROR event of this session, within ``timeout`` seconds."""
        event = self._wait(lambda e: isinstance(e, ConnFailed), timeout)
        assert event is None or isinstance(event, ConnFailed)
        return event

    def logout(self, timeout: float = 15.0) -> None:
        """Log out as iscsid does (module docstring), then destroy the session."""
        try:
            self._unbind(timeout)
            try:
                self._send_pdu(_LOGOUT_BHS)
            except ConnectionFailedError:
                return  # the connection is gone: no answer to wait for (destroyed below)
            self._wait(
                lambda e: isinstance(e, PduReceived) and e.pdu[0] & 0x3F == _LOGOUT_RESPONSE,
                timeout,
            )
        finally:
            self.destroy(clean=True)

    def _unbind(self, timeout: float) -> None:
        try:
            self.channel.request(UnbindSession(transport_handle=self.handle, sid=self.sid))
        except NetlinkRequestError as exc:
            if exc.not_supported:
                return
            raise
        self._wait(lambda e: isinstance(e, SessionUnbound), timeout)

    def stop(self, flag: StopConnFlag = StopConnFlag.TERM) -> None:
        """STOP_CONN (TERM: for good; RECOVER: keep the session for a new connection)."""
        self.channel.request(
            StopConn(transport_handle=self.handle, sid=self.sid, cid=self.cid, flag=flag)
        )

    def destroy(self, *, clean: bool = False) -> None:
        """STOP_CONN(TERM), DESTROY_CONN, DESTROY_SESSION, close our endpoint (first, for
        a kernel endpoint, as iscsid); errors ignored."""
        steps: list[Request] = [
            StopConn(
                transport_handle=self.handle, sid=self.sid, cid=self.cid, flag=StopConnFlag.TERM
            ),
            DestroyConn(transport_handle=self.handle, sid=self.sid, cid=self.cid),
            DestroySession(transport_handle=self.handle, sid=self.sid),
        ]
        self.started = False
        self.accepted = None
        if self.endpoint is not None and self.endpoint.close_before_stop:
            self._close_endpoint(clean)
        for step in steps:
            with contextlib.suppress(NetlinkRequestError, TransportError, OSError):
                self.channel.request(step)
        self._close_endpoint(clean)
        self.release()

    def release(self) -> None:
        """Stop hearing the session's events and close our sockets; the kernel session
        itself is left as it is (a daemon that stops, to be adopted by the next)."""
        self._events.unsubscribe(self.sid)
        if self.endpoint is not None:
            self.endpoint.forget()
            self.endpoint = None
        with contextlib.suppress(OSError):
            self.channel.close()

    def _close_endpoint(self, clean: bool) -> None:
        if self.endpoint is None:
            return
        self.endpoint.close(clean)
        self.endpoint = None

    # -- events ----------------------------------------------------------------------------

    def _on_kernel_event(self, event: KernelEvent, generation: int) -> None:
        """From the reader's thread: an event about this session."""
        if isinstance(event, ConnFailed):
            if generation < self._generation:
                return  # about a connection this session no longer has
            callback = self.on_conn_error
            if callback is not None and self.started:
                callback(event)
        self._inbox.put(event)

    def _drop_queued(self) -> None:
        with contextlib.suppress(queue.Empty):
            while True:
                self._inbox.get_nowait()

    def _wait(self, match: Callable[[KernelEvent], bool], timeout: float) -> KernelEvent | None:
        """The first queued event ``match`` accepts within ``timeout``; others dropped,
        except CONN_ERRORs, which stay for :meth:`wait_conn_error`."""
        deadline = time.monotonic() + timeout
        kept: list[KernelEvent] = []
        try:
            while True:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return None
                try:
                    event = self._inbox.get(timeout=remaining)
                except queue.Empty:
                    return None
                if match(event):
                    return event
                if isinstance(event, ConnFailed):
                    kept.append(event)
        finally:
            for event in kept:
                self._inbox.put(event)

    # -- helpers ---------------------------------------------------------------------------

    def _checked(self, msg: Request) -> None:
        reply = self.channel.request(msg)
        if isinstance(reply, RequestDone) and reply.retcode != 0:
            raise TransportError(f"{msg.TYPE.name} of session {self.sid} returned {reply.retcode}")


def _conn_error(event: ConnFailed) -> str:
    try:
        return ConnError(event.error).name
    except ValueError:
        return str(event.error)


def _as_answer_to(pdu: bytes, itt: int) -> bytes:
    """A PDU from RECV_PDU as the login machine expects it: the ITT of the request it
    answers (the kernel sent its own), the data segment padded to 4 bytes."""
    length = _BHS + int.from_bytes(pdu[5:8], "big")
    body = pdu[:length].ljust(length + (-length & 3), b"\0")
    return body[:16] + itt.to_bytes(4, "big") + body[20:]
