"""The session side of a simulated offload driver: endpoints, sessions, PDUs.

What the driver's data path would do, reduced to what iscsid (and iscsikit) see over
NETLINK_ISCSI, so that a driver logs in *through* a simulated host to a real target:

* an endpoint (EP_CONNECT_THROUGH_HOST) is a real TCP connection to the portal, made by
  this process; EP_POLL answers 1 once it is up, -1 when it was refused; for bnx2i and
  qedi (``path_request``) it first sends PATH_REQ to iscsiuio's group and connects only
  when a PATH_UPDATE with a unicast MAC answers it (EP_POLL 0 until then, -1 for a bad
  MAC), as cnic does;
* CREATE_BOUND_SESSION / CREATE_CONN make a session and a connection (sids from 1, on
  the HBA's own SCSI host, as offload sessions are); BIND_CONN ties the connection to
  an endpoint and starts reading it;
* SEND_PDU writes the PDU on the endpoint; every PDU the target sends comes back as a
  RECV_PDU event.  As libiscsi does for a PDU from userspace that is not a Login, the
  ITT (when 0), CmdSN and ExpStatSN are filled from the connection's state;
* SET_PARAM is kept; START_CONN and STOP_CONN flip the connection; UNBIND_SESSION is
  answered with an UNBIND_SESSION event; DESTROY_CONN / DESTROY_SESSION forget them;
* the target closing the connection (not a disconnect we asked for, nor after a Logout
  Response) is a CONN_ERROR event (ISCSI_ERR_TCP_CONN_CLOSE), as iscsi_tcp reports it.

The sysfs entries the transport class makes for these sessions are :mod:`.kernelview`'s
(``view``).  Not simulated: SCSI commands (no block device appears), digests
(the PDUs are read as if none was negotiated), GET_STATS.
"""

from __future__ import annotations

import contextlib
import errno
import ipaddress
import socket
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from iscsikit.netlink import KernelMessage, Request
from iscsikit.netlink.constants import ConnError, UEvent
from iscsikit.netlink.events import (
    ConnCreated,
    ConnFailed,
    EndpointConnected,
    KernelEvent,
    PathRequested,
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
    DestroySessionAsync,
    EpConnect,
    EpConnectThroughHost,
    EpDisconnect,
    EpPoll,
    GetStats,
    PathUpdate,
    SendPdu,
    SetParam,
    StartConn,
    StopConn,
    UnbindSession,
)
from iscsikit.netlink.wire import IscsiPath

if TYPE_CHECKING:
    from .kernelview import SessionView

__all__ = ["SESSION_OPS", "DataPath", "SimError"]

#: The requests every offload driver answers (each sets these transport callbacks).
SESSION_OPS = frozenset(
    {
        UEvent.CREATE_BOUND_SESSION,
        UEvent.CREATE_CONN,
        UEvent.BIND_CONN,
        UEvent.SEND_PDU,
        UEvent.SET_PARAM,
        UEvent.START_CONN,
        UEvent.STOP_CONN,
        UEvent.UNBIND_SESSION,
        UEvent.DESTROY_CONN,
        UEvent.DESTROY_SESSION,
        # All six set .get_stats (cxgb4i.c:144, cxgb3i.c:127, be_main.c:5821,
        # qedi_iscsi.c:1490, bnx2i_iscsi.c:2296, ql4_os.c:273).
        UEvent.GET_STATS,
        # All six set .create_session and return NULL without an endpoint (libcxgbi.c:2736,
        # be_iscsi.c:49, qedi_iscsi.c:247, bnx2i_iscsi.c:1293, ql4_os.c:3101): -ENOMEM.
        UEvent.CREATE_SESSION,
        # Needs no callback of its own (scsi_transport_iscsi.c:3975-3991).
        UEvent.DESTROY_SESSION_ASYNC,
    }
)
#: PDUs the qla4xxx firmware counts (qla4xxx_conn_get_stats, ql4_os.c:1849-1870), by
#: opcode: sent, then received.
_TX_COUNTERS = {
    0x00: "noptx_pdus",
    0x03: "login_pdus",
    0x04: "text_pdus",
    0x06: "logout_pdus",
    0x10: "snack_pdus",
}
_RX_COUNTERS = {
    0x20: "noprx_pdus",
    0x24: "textrsp_pdus",
    0x26: "logoutrsp_pdus",
    0x31: "r2t_pdus",
    0x32: "async_pdus",
    0x3F: "rjt_pdus",
}
_BHS = 48
_LOGIN_REQUEST, _LOGOUT_RESPONSE = 0x03, 0x26


class SimError(Exception):
    """A driver callback's negative return value (``errno``)."""

    def __init__(self, code: int) -> None:
        super().__init__(errno.errorcode.get(code, str(code)))
        self.errno = code


class _Endpoint:
    """A simulated offload endpoint: a real TCP connection made when it is created."""

    def __init__(self, address: tuple[str, int], *, connect: bool = True) -> None:
        self.address = address
        self.sock: socket.socket | None = None
        self.disconnected = False
        #: Waiting for the PATH_UPDATE that answers its PATH_REQ (bnx2i, qedi).
        self.pending = not connect
        if connect:
            self.connect()

    def connect(self) -> None:
        self.pending = False
        try:
            self.sock = socket.create_connection(self.address, timeout=2.0)
            self.sock.settimeout(None)
        except OSError:
            self.sock = None

    def close(self) -> None:
        self.disconnected = True
        if self.sock is not None:
            with contextlib.suppress(OSError):
                self.sock.shutdown(socket.SHUT_RDWR)
            self.sock.close()


class _Conn:
    def __init__(self, sid: int, cid: int) -> None:
        self.sid, self.cid = sid, cid
        self.endpoint: _Endpoint | None = None
        self.started = False
        self.logged_out = False
        self.exp_statsn = 0
        self.exp_cmdsn = 0
        self.next_itt = 0x100
        self.params: dict[int, str] = {}
        #: ``struct iscsi_stats`` counters GET_STATS answers with (tests may set more).
        self.stats: dict[str, int] = {}

    def count(self, name: str | None, octets: int = 0, direction: str = "tx") -> None:
        if name is not None:
            self.stats[name] = self.stats.get(name, 0) + 1
        if octets:
            key = f"{direction}data_octets"
            self.stats[key] = self.stats.get(key, 0) + octets


def _read_exact(sock: socket.socket, size: int) -> bytes | None:
    data = bytearray()
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            return None
        data += chunk
    return bytes(data)


class DataPath:
    """Endpoints and sessions of one simulated host; ``emit`` sends an async event."""

    def __init__(
        self,
        host_no: int,
        handle: int,
        emit: Callable[[KernelEvent], None],
        view: SessionView | None = None,
        *,
        path_request: bool = False,
        firmware_stats: bool = False,
        custom_stats: tuple[str, ...] = (),
    ) -> None:
        self.host_no = host_no
        self.handle = handle
        self.emit = emit
        #: The sessions' sysfs entries (:mod:`.kernelview`); None: no sysfs side.
        self.view = view
        #: Endpoints wait for iscsiuio's PATH_UPDATE (cnic: bnx2i, qedi).
        self.path_request = path_request
        #: qla4xxx's firmware counts every PDU; the libiscsi drivers count only the SCSI
        #: data path (none here), so their counters stay 0.
        self.firmware_stats = firmware_stats
        #: The driver's custom counters (``eh_abort_cnt`` for the libiscsi ones).
        self.custom_stats = custom_stats
        self.endpoints: dict[int, _Endpoint] = {}
        self.sessions: dict[int, dict[int, _Conn]] = {}
        self._next_ep = 1
        self._next_sid = 1
        self._lock = threading.Lock()

    def _done(self, req: Request, retcode: int = 0) -> RequestDone:
        return RequestDone(transport_handle=self.handle, request_type=req.TYPE, retcode=retcode)

    def _conn(self, sid: int, cid: int) -> _Conn:
        conn = self.sessions.get(sid, {}).get(cid)
        if conn is None:
            raise SimError(errno.EINVAL)
        return conn

    # -- endpoints -----------------------------------------------------------------------

    def ep_connect(self, req: Request) -> list[KernelMessage]:
        assert isinstance(req, EpConnect | EpConnectThroughHost)
        handle = self._next_ep
        self._next_ep += 1
        ep = _Endpoint(req.address, connect=not self.path_request)
        self.endpoints[handle] = ep
        connected = EndpointConnected(
            transport_handle=self.handle, request_type=req.TYPE, handle=handle
        )
        if self.path_request:
            # cnic_cm_connect: the route's next hop is iscsiuio's to resolve (PATH_REQ to
            # the UIP group); the offload connection waits for its PATH_UPDATE.
            dst = ipaddress.ip_address(req.address[0])
            path = IscsiPath(
                handle=handle, ip_addr_len=len(dst.packed), src=bytes(len(dst.packed)),
                dst=dst.packed, pmtu=1500,
            )  # fmt: skip
            self.emit(PathRequested(transport_handle=self.handle, host_no=self.host_no, path=path))
        return [connected]

    def path_update(self, req: Request) -> list[KernelMessage]:
        """PATH_UPDATE: the endpoint it names connects; a MAC that is no unicast address
        fails it (cnic completes the connect with an error)."""
        assert isinstance(req, PathUpdate)
        ep = self.endpoints.get(req.path.handle)
        if ep is None or not ep.pending:
            raise SimError(errno.EINVAL)
        mac = req.path.mac_addr
        if mac == bytes(6) or mac[0] & 1:
            ep.pending = False  # EP_POLL: -1
        else:
            ep.connect()
        return [self._done(req)]

    def ep_poll(self, req: Request) -> list[KernelMessage]:
        assert isinstance(req, EpPoll)
        ep = self.endpoints.get(req.ep_handle)
        if ep is None:
            raise SimError(errno.EINVAL)
        if ep.pending:
            time.sleep(min(req.timeout_ms, 50) / 1000)  # the kernel waits for the change
            return [self._done(req, 0)]
        return [self._done(req, 1 if ep.sock is not None else -1)]

    def ep_disconnect(self, req: Request) -> list[KernelMessage]:
        assert isinstance(req, EpDisconnect)
        ep = self.endpoints.pop(req.ep_handle, None)
        if ep is None:
            raise SimError(errno.EINVAL)
        ep.close()
        return [self._done(req)]

    # -- sessions and connections --------------------------------------------------------

    def create_bound_session(self, req: Request) -> list[KernelMessage]:
        assert isinstance(req, CreateBoundSession)
        if req.ep_handle not in self.endpoints:
            raise SimError(errno.EINVAL)
        sid = self._next_sid
        self._next_sid += 1
        self.sessions[sid] = {}
        if self.view is not None:
            self.view.created(sid)
        created = SessionCreated(
            transport_handle=self.handle, request_type=req.TYPE, sid=sid, host_no=self.host_no
        )
        return [created]

    def create_conn(self, req: Request) -> list[KernelMessage]:
        assert isinstance(req, CreateConn)
        if req.sid not in self.sessions:
            raise SimError(errno.EINVAL)
        self.sessions[req.sid][req.cid] = _Conn(req.sid, req.cid)
        if self.view is not None:
            self.view.conn_created(req.sid, req.cid)
        return [
            ConnCreated(
                transport_handle=self.handle, request_type=req.TYPE, sid=req.sid, cid=req.cid
            )
        ]

    def bind_conn(self, req: Request) -> list[KernelMessage]:
        assert isinstance(req, BindConn)
        conn = self._conn(req.sid, req.cid)
        ep = self.endpoints.get(req.transport_eph)
        if ep is None or ep.sock is None:
            raise SimError(errno.EINVAL)
        conn.endpoint, conn.logged_out, conn.started = ep, False, False
        if self.view is not None:
            self.view.bound(req.sid, req.cid, ep.address)
        threading.Thread(
            target=self._read, args=(conn, ep), daemon=True, name=f"simhba-conn{conn.sid}"
        ).start()
        return [self._done(req)]

    def send_pdu(self, req: Request) -> list[KernelMessage]:
        assert isinstance(req, SendPdu)
        conn = self._conn(req.sid, req.cid)
        ep = conn.endpoint
        if ep is None or ep.sock is None:
            raise SimError(errno.ENOTCONN)
        hdr = bytearray(req.hdr)
        if hdr[0] & 0x3F != _LOGIN_REQUEST:
            if hdr[16:20] == bytes(4):
                hdr[16:20] = conn.next_itt.to_bytes(4, "big")
                conn.next_itt += 1
            hdr[24:28] = conn.exp_cmdsn.to_bytes(4, "big")
            hdr[28:32] = conn.exp_statsn.to_bytes(4, "big")
        data = req.data + bytes(-len(req.data) & 3)
        try:
            ep.sock.sendall(bytes(hdr) + data)
        except OSError as exc:
            raise SimError(exc.errno or errno.EIO) from None
        if self.firmware_stats:
            conn.count(_TX_COUNTERS.get(hdr[0] & 0x3F), len(req.data))
        return [self._done(req)]

    def get_stats(self, req: Request) -> list[KernelMessage]:
        """GET_STATS: the connection's ``struct iscsi_stats`` (an unknown connection:
        -EEXIST, scsi_transport_iscsi.c:2831-2833)."""
        assert isinstance(req, GetStats)
        conn = self.sessions.get(req.sid, {}).get(req.cid)
        if conn is None:
            raise SimError(errno.EEXIST)
        custom = tuple((name, conn.stats.get(name, 0)) for name in self.custom_stats)
        stats = StatsReceived(
            transport_handle=self.handle,
            request_type=req.TYPE,
            sid=req.sid,
            cid=req.cid,
            counters=dict(conn.stats),
            custom=custom,
        )
        return [stats]

    def create_session(self, req: Request) -> list[KernelMessage]:
        """CREATE_SESSION (no endpoint): every offload driver's ``create_session``
        returns NULL without one, which the kernel answers -ENOMEM (:2960-2961)."""
        assert isinstance(req, CreateSession)
        raise SimError(errno.ENOMEM)

    def set_param(self, req: Request) -> list[KernelMessage]:
        assert isinstance(req, SetParam)
        self._conn(req.sid, req.cid).params[req.param] = req.value
        if self.view is not None:
            self.view.param(req.sid, req.cid, req.param, req.value)
        return [self._done(req)]

    def start_conn(self, req: Request) -> list[KernelMessage]:
        assert isinstance(req, StartConn)
        self._conn(req.sid, req.cid).started = True
        if self.view is not None:
            self.view.started(req.sid, req.cid)
        return [self._done(req)]

    def stop_conn(self, req: Request) -> list[KernelMessage]:
        assert isinstance(req, StopConn)
        conn = self._conn(req.sid, req.cid)  # sid 0: -EINVAL (iscsikit's event barrier)
        conn.started = False
        if conn.endpoint is not None:
            conn.endpoint.disconnected = True
            conn.endpoint = None
        if self.view is not None:
            self.view.stopped(req.sid, req.cid, req.flag)
        return [self._done(req)]

    def unbind_session(self, req: Request) -> list[KernelMessage]:
        assert isinstance(req, UnbindSession)
        if req.sid not in self.sessions:
            raise SimError(errno.EINVAL)
        unbound = SessionUnbound(transport_handle=self.handle, sid=req.sid, host_no=self.host_no)
        return [self._done(req), unbound]

    def destroy_conn(self, req: Request) -> list[KernelMessage]:
        assert isinstance(req, DestroyConn)
        self._conn(req.sid, req.cid)
        del self.sessions[req.sid][req.cid]
        if self.view is not None:
            self.view.conn_destroyed(req.sid, req.cid)
        return [self._done(req)]

    def destroy_session(self, req: Request) -> list[KernelMessage]:
        """DESTROY_SESSION and DESTROY_SESSION_ASYNC: -EINVAL for an unknown session,
        -EBUSY while it has connections (scsi_transport_iscsi.c:3966-3991)."""
        assert isinstance(req, DestroySession | DestroySessionAsync)
        if req.sid not in self.sessions:
            raise SimError(errno.EINVAL)
        if self.sessions[req.sid]:
            raise SimError(errno.EBUSY)
        del self.sessions[req.sid]
        if self.view is not None:
            self.view.destroyed(req.sid)
        return [self._done(req)]

    def close(self) -> None:
        """Close every endpoint (their readers end)."""
        for ep in self.endpoints.values():
            ep.close()
        self.endpoints.clear()

    # -- the receive side ----------------------------------------------------------------

    def _read(self, conn: _Conn, ep: _Endpoint) -> None:
        """Hand up every PDU the target sends on ``ep``; report its end as CONN_ERROR."""
        sock = ep.sock
        assert sock is not None
        while True:
            rest: bytes | None = b""
            try:
                bhs = _read_exact(sock, _BHS)
                if bhs is not None:
                    dlen = int.from_bytes(bhs[5:8], "big")
                    size = bhs[4] * 4 + dlen + (-dlen & 3)
                    rest = _read_exact(sock, size) if size else b""
            except OSError:
                bhs = None
            if rest is None:
                bhs = None
            if bhs is None:
                if not (ep.disconnected or conn.logged_out) and conn.endpoint is ep:
                    self.emit(
                        ConnFailed(
                            transport_handle=self.handle, sid=conn.sid, cid=conn.cid,
                            error=ConnError.TCP_CONN_CLOSE,
                        )
                    )  # fmt: skip
                return
            if conn.endpoint is not ep:
                return
            conn.exp_statsn = (int.from_bytes(bhs[24:28], "big") + 1) & 0xFFFFFFFF
            conn.exp_cmdsn = int.from_bytes(bhs[28:32], "big")
            if bhs[0] & 0x3F == _LOGOUT_RESPONSE:
                conn.logged_out = True
            if self.firmware_stats:
                conn.count(_RX_COUNTERS.get(bhs[0] & 0x3F), int.from_bytes(bhs[5:8], "big"), "rx")
            self.emit(
                PduReceived(
                    transport_handle=self.handle,
                    sid=conn.sid,
                    cid=conn.cid,
                    pdu=bhs + (rest or b""),
                )
            )
