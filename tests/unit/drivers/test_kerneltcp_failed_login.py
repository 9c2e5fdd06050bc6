"""A kernel session's failure paths against a fake kernel that keeps endpoints as Linux
6.1 does (drivers/scsi/scsi_transport_iscsi.c; seen in the VM tier), on socketpairs.

What the fake models, because the bugs were there:

* endpoint ids are the lowest free ones, starting at 1 (an IDR);
* a connection error on a bound connection marks it for cleanup and the kernel
  disconnects the endpoint itself, keeping a reference (and the id) until userspace's
  EP_DISCONNECT finds the mark still set (``iscsi_if_disconnect_bound_ep``);
  STOP_CONN(RECOVER) clears the mark, after which EP_DISCONNECT of that endpoint does
  nothing (``iscsi_ep_disconnect`` with no ``conn->ep``): the id is never freed;
* while the mark is set, BIND_CONN / SEND_PDU / START_CONN answer retcode -ENOTCONN.

The target is scripted: each Login Request gets the next answer, or none.
"""

from __future__ import annotations

import errno
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest

from iscsikit.errors import (
    AuthenticationError,
    ConnectionFailedError,
    TransportTimeoutError,
)
from iscsikit.netlink import StopConnFlag, decode_request
from iscsikit.netlink.constants import UEvent
from iscsikit.netlink.events import (
    ConnCreated,
    ConnFailed,
    EndpointConnected,
    PduReceived,
    RequestDone,
    RequestFailed,
    SessionCreated,
)
from iscsikit.netlink.messages import (
    BindConn,
    CreateBoundSession,
    CreateConn,
    DestroyConn,
    DestroySession,
    EpConnect,
    EpDisconnect,
    EpPoll,
    Request,
    SendPdu,
    SetParam,
    StartConn,
    StopConn,
)
from iscsikit.plugin import ConnectSpec, Timeouts
from iscsikit.proto.address import parse_portal
from iscsikit.proto.login import LoginConfig
from iscsikit.proto.pdu import LoginResponse, encode_pdu
from iscsikit_drivers.iser import IserConnector
from iscsikit_drivers.kerneltcp import KernelEvents, KernelSession, NetlinkChannel

TRANSPORT = 7
SID = 1
CONN_ERROR = 1011  # ISCSI_ERR_CONN_FAILED


@dataclass
class Conn:
    ep: int | None = None
    cleanup: bool = False


@dataclass
class Endpoint:
    conn_bound: bool = False
    #: References that keep the id: the kernel's own (until disconnected) and the
    #: cleanup work's (until userspace's EP_DISCONNECT while the mark is set).
    refs: int = 1


@dataclass
class FakeKernel:
    """Answers the request socket, multicasts on the events socket (see module doc)."""

    requests_sock: socket.socket
    events_sock: socket.socket
    #: Per Login Request: a Login Response to answer with, "drop" (the target closes
    #: the connection without answering), or ("reject-then-drop", response, conn_first).
    answers: list[object] = field(default_factory=list)
    endpoints: dict[int, Endpoint] = field(default_factory=dict)
    conn: Conn | None = None
    #: Mark the connection for cleanup right after BIND_CONN, with no CONN_ERROR sent.
    cleanup_after_bind: bool = False
    log: list[Request] = field(default_factory=list)

    def start(self) -> None:
        for sock, handler in (
            (self.requests_sock, self._request),
            (self.events_sock, self._barrier),
        ):
            threading.Thread(target=self._serve, args=(sock, handler), daemon=True).start()

    def _serve(self, sock: socket.socket, handler: object) -> None:
        while True:
            try:
                data = sock.recv(65536)
            except OSError:
                return
            if not data:
                return
            handler(decode_request(data))  # type: ignore[operator]

    # -- the events socket: only the barrier (STOP_CONN on transport 0) ---------------------

    def _barrier(self, msg: Request) -> None:
        assert isinstance(msg, StopConn) and msg.transport_handle == 0
        self._event(
            RequestFailed(transport_handle=0, request_type=UEvent.STOP_CONN, errno=errno.EINVAL)
        )

    def _event(self, message: object) -> None:
        self.events_sock.send(message.encode())  # type: ignore[attr-defined]

    def _reply(self, message: object) -> None:
        self.requests_sock.send(message.encode())  # type: ignore[attr-defined]

    def _refuse(self, msg: Request, code: int) -> None:
        self._reply(RequestFailed(transport_handle=TRANSPORT, request_type=msg.TYPE, errno=code))

    def _done(self, msg: Request, retcode: int = 0) -> None:
        self._reply(RequestDone(transport_handle=TRANSPORT, request_type=msg.TYPE, retcode=retcode))

    # -- the request socket ------------------------------------------------------------------

    def _request(self, msg: Request) -> None:
        self.log.append(msg)
        conn = self.conn
        if isinstance(msg, EpConnect):
            handle = next(i for i in range(1, 1000) if i not in self.endpoints)
            self.endpoints[handle] = Endpoint()
            self._reply(
                EndpointConnected(transport_handle=TRANSPORT, request_type=msg.TYPE, handle=handle)
            )
        elif isinstance(msg, EpPoll):
            self._done(msg, 1)
        elif isinstance(msg, CreateBoundSession):
            self._reply(
                SessionCreated(
                    transport_handle=TRANSPORT, request_type=msg.TYPE, sid=SID, host_no=3
                )
            )
        elif isinstance(msg, CreateConn):
            self.conn = Conn()
            self._reply(
                ConnCreated(transport_handle=TRANSPORT, request_type=msg.TYPE, sid=SID, cid=0)
            )
        elif isinstance(msg, EpDisconnect):
            self._ep_disconnect(msg)
        elif isinstance(msg, StopConn):
            assert conn is not None
            if conn.ep is not None:
                self._disconnect_bound(conn)
            if msg.flag == StopConnFlag.RECOVER:
                conn.cleanup = False
            self._done(msg)
        elif isinstance(msg, BindConn | SendPdu | StartConn):
            assert conn is not None
            if conn.cleanup:
                self._done(msg, -errno.ENOTCONN)
            elif isinstance(msg, BindConn):
                conn.ep = msg.transport_eph
                self.endpoints[msg.transport_eph].conn_bound = True
                self._done(msg)
                if self.cleanup_after_bind:
                    self._conn_error(announce=False)
            elif isinstance(msg, SendPdu):
                self._done(msg)
                self._target_answers(msg)
            else:
                self._done(msg)
        elif isinstance(msg, SetParam | DestroyConn | DestroySession):
            self._done(msg)
        else:
            self._reply(
                RequestFailed(transport_handle=TRANSPORT, request_type=msg.TYPE, errno=errno.ENOSYS)
            )

    def _ep_disconnect(self, msg: EpDisconnect) -> None:
        ep = self.endpoints.get(msg.ep_handle)
        if ep is None:
            self._reply(
                RequestFailed(transport_handle=TRANSPORT, request_type=msg.TYPE, errno=errno.EINVAL)
            )
            return
        conn = self.conn
        if ep.conn_bound and conn is not None:
            if conn.cleanup:
                self._put(msg.ep_handle)  # the cleanup work's reference
            elif conn.ep == msg.ep_handle:
                self._disconnect_bound(conn)
            # else: conn->ep is gone already -- nothing done, the reference stays
        else:
            self._put(msg.ep_handle)
        self._done(msg)

    def _disconnect_bound(self, conn: Conn) -> None:
        assert conn.ep is not None
        handle, conn.ep = conn.ep, None
        self._put(handle)

    def _put(self, handle: int) -> None:
        ep = self.endpoints[handle]
        ep.refs -= 1
        if ep.refs == 0:
            del self.endpoints[handle]

    def _conn_error(self, *, announce: bool = True) -> None:
        """The target closed a bound connection: cleanup work and a CONN_ERROR (unless
        ``announce`` is false: one that was lost, or taken for an older connection's)."""
        conn = self.conn
        assert conn is not None and conn.ep is not None
        conn.cleanup = True
        self.endpoints[conn.ep].refs += 1  # iscsi_cleanup_conn_work_fn's get_device
        self._disconnect_bound(conn)
        if announce:
            self._event(ConnFailed(transport_handle=TRANSPORT, sid=SID, cid=0, error=CONN_ERROR))

    def _target_answers(self, msg: SendPdu) -> None:
        answer = self.answers.pop(0) if self.answers else None
        if answer is None:
            return
        if answer == "drop":
            self._conn_error()
            return
        conn_first = False
        if isinstance(answer, tuple):
            _, answer, conn_first = answer
            if conn_first:
                self._conn_error()
        assert isinstance(answer, LoginResponse)
        self._event(PduReceived(transport_handle=TRANSPORT, sid=SID, cid=0, pdu=encode_pdu(answer)))
        if isinstance(answer, LoginResponse) and answer.status_class and not conn_first:
            self._conn_error()


@pytest.fixture
def kernel() -> Iterator[tuple[FakeKernel, NetlinkChannel, KernelEvents]]:
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
    ev_ours, ev_theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
    fake = FakeKernel(theirs, ev_theirs)
    fake.start()
    events = KernelEvents(NetlinkChannel(ev_ours))
    channel = NetlinkChannel(ours, events=False)
    try:
        yield fake, channel, events
    finally:
        events.close()
        channel.close()
        theirs.close()
        ev_theirs.close()


def _spec(login_timeout: float = 5.0) -> ConnectSpec:
    login = LoginConfig("iqn.2024-01.test:initiator", ISID, target_name="iqn.t:1")
    return ConnectSpec(
        parse_portal("10.99.0.1:3260"), login, timeouts=Timeouts(login=login_timeout)
    )


ISID = bytes.fromhex("400001370001")


def _accept(statsn: int) -> LoginResponse:
    """The operational stage done in one answer, with the key iser requires."""
    return LoginResponse(
        transit=True,
        csg=1,
        nsg=3,
        isid=ISID,
        tsih=5,
        statsn=statsn,
        data=b"RDMAExtensions=Yes\0",
    )


def _reject(status_class: int, status_detail: int) -> LoginResponse:
    return LoginResponse(
        transit=False, status_class=status_class, status_detail=status_detail, statsn=1
    )


def _log_in(
    kernel: tuple[FakeKernel, NetlinkChannel, KernelEvents], spec: ConnectSpec
) -> KernelSession:
    _, channel, events = kernel
    result = KernelSession.login(
        spec, channel=channel, handle=TRANSPORT, connector=IserConnector(), events=events
    )
    assert isinstance(result, KernelSession)
    return result


def test_a_rejected_login_frees_the_endpoint_the_kernel_cleaned_up(
    kernel: tuple[FakeKernel, NetlinkChannel, KernelEvents],
) -> None:
    fake = kernel[0]
    fake.answers = [_reject(2, 1)]  # authentication failed, then the target disconnects
    with pytest.raises(AuthenticationError):
        _log_in(kernel, _spec())
    # EP_DISCONNECT went before STOP_CONN(RECOVER), so the kernel dropped its reference.
    assert fake.endpoints == {}, "the endpoint is still referenced in the kernel"
    kinds = [type(m) for m in fake.log]
    assert kinds.index(EpDisconnect) < kinds.index(StopConn)
    assert kinds[-2:] == [DestroyConn, DestroySession]


def test_a_dropped_login_frees_its_endpoint_and_fails_as_a_connection_failure(
    kernel: tuple[FakeKernel, NetlinkChannel, KernelEvents],
) -> None:
    fake = kernel[0]
    fake.answers = ["drop"]
    with pytest.raises(ConnectionFailedError, match="CONN_FAILED"):
        _log_in(kernel, _spec())
    assert fake.endpoints == {}


def test_a_reject_the_conn_error_overtook_still_says_why(
    kernel: tuple[FakeKernel, NetlinkChannel, KernelEvents],
) -> None:
    fake = kernel[0]
    fake.answers = [("reject-then-drop", _reject(2, 1), True)]  # CONN_ERROR first
    with pytest.raises(AuthenticationError):
        _log_in(kernel, _spec())
    assert fake.endpoints == {}


def test_a_recovery_reuses_the_endpoint_id(
    kernel: tuple[FakeKernel, NetlinkChannel, KernelEvents],
) -> None:
    """After a connection error the old endpoint is freed before the new one is made,
    so the kernel hands out the same id again (it did not: ep-2, ep-3... leaked)."""
    fake = kernel[0]
    fake.answers = [_accept(1)]
    session = _log_in(kernel, _spec())
    assert session.endpoint is not None and session.endpoint.handle == 1
    fake._conn_error()
    assert session.wait_conn_error(5.0) is not None
    session.suspend()
    assert fake.endpoints == {}
    fake.answers = [_accept(2)]
    session.connect(_spec())
    assert session.endpoint is not None and session.endpoint.handle == 1
    session.destroy()
    assert fake.endpoints == {}


def test_a_refused_send_pdu_fails_the_login_at_once(
    kernel: tuple[FakeKernel, NetlinkChannel, KernelEvents],
) -> None:
    """SEND_PDU answered -ENOTCONN (the kernel is cleaning the connection up): the login
    fails now instead of waiting its whole timeout for an answer that cannot come."""
    fake = kernel[0]
    fake.cleanup_after_bind = True
    started = time.monotonic()
    with pytest.raises(ConnectionFailedError, match="did not send"):
        _log_in(kernel, _spec(login_timeout=5.0))
    assert time.monotonic() - started < 2.0
    assert fake.endpoints == {}


def test_no_answer_is_a_bounded_timeout_that_leaves_nothing(
    kernel: tuple[FakeKernel, NetlinkChannel, KernelEvents],
) -> None:
    fake = kernel[0]
    fake.answers = []  # the target never answers
    started = time.monotonic()
    with pytest.raises(TransportTimeoutError):
        _log_in(kernel, _spec(login_timeout=0.5))
    assert time.monotonic() - started < 3.0
    assert fake.endpoints == {}


def test_a_dead_event_reader_is_replaced(monkeypatch: pytest.MonkeyPatch) -> None:
    """A reader whose socket failed has ended; the process's next one is a new reader
    (the dead one made every later login wait out its barrier, then fail)."""
    from iscsikit_drivers.kerneltcp import events as events_module

    peers: list[socket.socket] = []

    def on_a_socketpair() -> KernelEvents:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
        peers.append(theirs)
        return KernelEvents(NetlinkChannel(ours))

    monkeypatch.setattr(events_module, "KernelEvents", on_a_socketpair)
    monkeypatch.setattr(events_module, "_shared", {})
    first = events_module.shared_events()
    assert events_module.shared_events() is first and first.alive
    first._channel.sock.close()  # the socket fails under the reader (EBADF)
    deadline = time.monotonic() + 5
    while first.alive and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not first.alive
    second = events_module.shared_events()
    assert second is not first and second.alive
    second.close()
    for peer in peers:
        peer.close()
