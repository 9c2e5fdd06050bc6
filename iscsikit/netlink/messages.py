"""NETLINK_ISCSI requests: one declared structure per message iscsid sends the kernel.

Each request is a frozen dataclass that names its :class:`~iscsikit.netlink.constants.UEvent`
code (``TYPE``), the ``u`` union members it sets (``FIELDS``: name, struct code, offset
from the start of ``struct iscsi_uevent``, exactly the layout table of
open-iscsi-notes.md §1.5) and, when it has one, its payload after the 56-byte uevent.
Union members that only describe the payload (``len``, ``count``, ``hdr_size``...) are
``DERIVED``: computed on encode, checked on decode, never set by the caller.

:meth:`Request.encode` frames a request as iscsid does (``nlmsg_len`` = 16 + 56 +
payload, unpadded; ``nlmsg_pid`` is passed in: this module reads no process state);
:func:`decode_request` is the inverse (what a fake kernel in tests needs).  Replies and
kernel events are in :mod:`iscsikit.netlink.events`.
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar, Final

from iscsikit.errors import InvalidParameterError
from iscsikit.netlink.constants import NLMSG_HDRLEN, UEVENT_SIZE, UEvent
from iscsikit.netlink.errors import NetlinkDecodeError
from iscsikit.netlink.wire import (
    NLMSG_HEADER,
    UEVENT_HEADER,
    Buffer,
    Field,
    IscsiPath,
    ParamAttr,
    decode_attrs,
    decode_sockaddr,
    encode_attrs,
    encode_sockaddr,
    frame,
    pack_fields,
    unpack_fields,
)

__all__ = [
    "REQUESTS",
    "BindConn",
    "CreateBoundSession",
    "CreateConn",
    "CreateSession",
    "DelFlashnode",
    "DeleteChap",
    "DestroyConn",
    "DestroySession",
    "DestroySessionAsync",
    "EpConnect",
    "EpConnectThroughHost",
    "EpDisconnect",
    "EpPoll",
    "GetChap",
    "GetHostStats",
    "GetStats",
    "LoginFlashnode",
    "LogoutFlashnode",
    "LogoutFlashnodeSid",
    "NewFlashnode",
    "PathUpdate",
    "Ping",
    "Request",
    "SendPdu",
    "SetChap",
    "SetFlashnodeParams",
    "SetHostParam",
    "SetIfaceParams",
    "SetParam",
    "StartConn",
    "StopConn",
    "TgtDscvr",
    "UnbindSession",
    "decode_request",
]

_SID: Final = Field("sid", "I", 16)
_CID: Final = Field("cid", "I", 20)
_HOST: Final = Field("host_no", "I", 16)


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class Request:
    """Base of the requests: ``transport_handle`` is the transport's sysfs ``handle``."""

    TYPE: ClassVar[UEvent]
    #: The ``u`` members the caller sets (dataclass fields of the same names).
    FIELDS: ClassVar[tuple[Field, ...]] = ()
    #: The ``u`` members computed from the payload.
    DERIVED: ClassVar[tuple[Field, ...]] = ()

    transport_handle: int

    def payload(self) -> bytes:
        """The bytes after the uevent (none unless the message has a payload)."""
        return b""

    def derived(self) -> dict[str, int]:
        """The values of :attr:`DERIVED`, computed from the payload."""
        return {}

    @classmethod
    def parse_payload(cls, u: dict[str, int], payload: bytes) -> dict[str, Any]:
        """Constructor arguments from the payload, checked against the derived *u*."""
        if payload:
            raise NetlinkDecodeError(f"{cls.TYPE.name}: {len(payload)} unexpected payload bytes")
        return {}

    def uevent(self) -> bytes:
        """The 56-byte ``struct iscsi_uevent`` of this request (``r`` zeroed)."""
        buf = bytearray(UEVENT_SIZE)
        try:
            UEVENT_HEADER.pack_into(buf, 0, self.TYPE, 0, self.transport_handle)
        except Exception as exc:  # struct.error: a handle that is not a u64
            raise InvalidParameterError(f"transport_handle={self.transport_handle!r}") from exc
        values = {f.name: getattr(self, f.name) for f in self.FIELDS}
        values.update(self.derived())
        pack_fields(buf, self.FIELDS + self.DERIVED, values)
        return bytes(buf)

    def encode(self, *, pid: int, seq: int = 0) -> bytes:
        """The whole netlink message: nlmsghdr (type = :attr:`TYPE`), uevent, payload."""
        return frame(self.TYPE, self.uevent(), self.payload(), pid=pid, seq=seq)


def _text(value: str) -> bytes:
    """A value string as iscsid sends it: ASCII/UTF-8 and a terminating NUL."""
    if "\0" in value:
        raise InvalidParameterError(f"value with a NUL: {value!r}")
    return value.encode() + b"\0"


def _untext(name: str, length: int, payload: bytes) -> str:
    if length != len(payload) or not payload or payload[-1] != 0 or 0 in payload[:-1]:
        raise NetlinkDecodeError(f"{name}: len {length}, payload {payload[:64]!r}")
    return payload[:-1].decode("utf-8", "backslashreplace")


# -- sessions and connections -----------------------------------------------------------


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class _SessionRequest(Request):
    """A request that names one session (``u`` starts with its sid)."""

    FIELDS = (_SID,)
    sid: int


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class _ConnRequest(Request):
    """A request that names one connection (``u`` starts with sid, cid)."""

    FIELDS = (_SID, _CID)
    sid: int
    cid: int


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class CreateSession(Request):
    """Create a session on a software transport; the reply carries sid and host_no."""

    TYPE = UEvent.CREATE_SESSION
    FIELDS = (
        Field("initial_cmdsn", "I", 16),
        Field("cmds_max", "H", 20),
        Field("queue_depth", "H", 22),
    )
    initial_cmdsn: int
    cmds_max: int
    queue_depth: int


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class CreateBoundSession(Request):
    """Create a session bound to a kernel endpoint (offload transports)."""

    TYPE = UEvent.CREATE_BOUND_SESSION
    FIELDS = (
        Field("ep_handle", "Q", 16),
        Field("initial_cmdsn", "I", 24),
        Field("cmds_max", "H", 28),
        Field("queue_depth", "H", 30),
    )
    ep_handle: int
    initial_cmdsn: int
    cmds_max: int
    queue_depth: int


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class DestroySession(_SessionRequest):
    """Destroy a session (the last step of a logout)."""

    TYPE = UEvent.DESTROY_SESSION


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class DestroySessionAsync(_SessionRequest):
    """Destroy a session without waiting (in the header; iscsid does not send it)."""

    TYPE = UEvent.DESTROY_SESSION_ASYNC


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class UnbindSession(_SessionRequest):
    """Ask the kernel to unbind (remove the SCSI target of) a session before logout."""

    TYPE = UEvent.UNBIND_SESSION


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class CreateConn(_ConnRequest):
    """Create connection *cid* of session *sid*."""

    TYPE = UEvent.CREATE_CONN


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class DestroyConn(_ConnRequest):
    """Destroy a connection."""

    TYPE = UEvent.DESTROY_CONN


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class StartConn(_ConnRequest):
    """Start a connection (full feature phase); the reply's retcode is the result."""

    TYPE = UEvent.START_CONN


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class GetStats(_ConnRequest):
    """Ask for a connection's ``struct iscsi_stats`` (answered by a stats message)."""

    TYPE = UEvent.GET_STATS


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class BindConn(Request):
    """Bind a connection to a transport endpoint (iscsi_tcp: the socket's fd)."""

    TYPE = UEvent.BIND_CONN
    FIELDS = (_SID, _CID, Field("transport_eph", "Q", 24), Field("is_leading", "I", 32))
    sid: int
    cid: int
    transport_eph: int
    is_leading: int = 1


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class StopConn(Request):
    """Stop a connection; ``flag`` is a :class:`~iscsikit.netlink.constants.StopConnFlag`."""

    TYPE = UEvent.STOP_CONN
    FIELDS = (_SID, _CID, Field("conn_handle", "Q", 24), Field("flag", "I", 32))
    sid: int
    cid: int
    flag: int
    conn_handle: int = 0


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class SendPdu(Request):
    """Send a PDU on a bound connection before full feature phase: BHS(+AHS), data."""

    TYPE = UEvent.SEND_PDU
    FIELDS = (_SID, _CID)
    DERIVED = (Field("hdr_size", "I", 24), Field("data_size", "I", 28))
    sid: int
    cid: int
    hdr: bytes
    data: bytes = b""

    def payload(self) -> bytes:
        return self.hdr + self.data

    def derived(self) -> dict[str, int]:
        return {"hdr_size": len(self.hdr), "data_size": len(self.data)}

    @classmethod
    def parse_payload(cls, u: dict[str, int], payload: bytes) -> dict[str, Any]:
        if u["hdr_size"] + u["data_size"] != len(payload):
            raise NetlinkDecodeError(f"SEND_PDU: sizes {u} for {len(payload)} bytes")
        return {"hdr": payload[: u["hdr_size"]], "data": payload[u["hdr_size"] :]}


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class SetParam(Request):
    """Set one :class:`~iscsikit.netlink.params.IscsiParam` of a connection/session.

    The value is text (integers as decimal), sent NUL-terminated; ``len`` counts the NUL.
    iscsid never sends an empty value: callers skip those.
    """

    TYPE = UEvent.SET_PARAM
    FIELDS = (_SID, _CID, Field("param", "I", 24))
    DERIVED = (Field("len", "I", 28),)
    sid: int
    cid: int
    param: int
    value: str

    def payload(self) -> bytes:
        return _text(self.value)

    def derived(self) -> dict[str, int]:
        return {"len": len(_text(self.value))}

    @classmethod
    def parse_payload(cls, u: dict[str, int], payload: bytes) -> dict[str, Any]:
        return {"value": _untext("SET_PARAM", u["len"], payload)}


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class SetHostParam(Request):
    """Set one :class:`~iscsikit.netlink.params.HostParam` of a SCSI host (text value)."""

    TYPE = UEvent.SET_HOST_PARAM
    FIELDS = (_HOST, Field("param", "I", 20))
    DERIVED = (Field("len", "I", 24),)
    host_no: int
    param: int
    value: str

    def payload(self) -> bytes:
        return _text(self.value)

    def derived(self) -> dict[str, int]:
        return {"len": len(_text(self.value))}

    @classmethod
    def parse_payload(cls, u: dict[str, int], payload: bytes) -> dict[str, Any]:
        return {"value": _untext("SET_HOST_PARAM", u["len"], payload)}


# -- endpoints and addressed requests ---------------------------------------------------


class _Addressed:
    """Mixin: the payload is one sockaddr built from ``address`` = (host, port)."""

    __slots__ = ()
    address: tuple[str, int]

    def payload(self) -> bytes:
        return encode_sockaddr(*self.address)

    @classmethod
    def parse_payload(cls, u: dict[str, int], payload: bytes) -> dict[str, Any]:
        return {"address": decode_sockaddr(payload)}


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class EpConnect(_Addressed, Request):
    """Connect a kernel endpoint to ``address`` (offload transports)."""

    TYPE = UEvent.TRANSPORT_EP_CONNECT
    FIELDS = (Field("non_blocking", "I", 16),)
    address: tuple[str, int]
    non_blocking: int = 1


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class EpConnectThroughHost(_Addressed, Request):
    """Connect a kernel endpoint through SCSI host *host_no*."""

    TYPE = UEvent.TRANSPORT_EP_CONNECT_THROUGH_HOST
    FIELDS = (_HOST, Field("non_blocking", "I", 20))
    host_no: int
    address: tuple[str, int]
    non_blocking: int = 1


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class EpPoll(Request):
    """Wait up to ``timeout_ms`` for an endpoint to connect (retcode > 0: connected)."""

    TYPE = UEvent.TRANSPORT_EP_POLL
    FIELDS = (Field("ep_handle", "Q", 16), Field("timeout_ms", "I", 24))
    ep_handle: int
    timeout_ms: int


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class EpDisconnect(Request):
    """Disconnect and free a kernel endpoint."""

    TYPE = UEvent.TRANSPORT_EP_DISCONNECT
    FIELDS = (Field("ep_handle", "Q", 16),)
    ep_handle: int


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class TgtDscvr(_Addressed, Request):
    """Offloaded discovery (``discovery_type``: a :class:`TgtDscvrType`) at ``address``."""

    TYPE = UEvent.TGT_DSCVR
    FIELDS = (Field("discovery_type", "I", 16), Field("host_no", "I", 20), Field("enable", "I", 24))
    discovery_type: int
    host_no: int
    address: tuple[str, int]
    enable: int = 1


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class Ping(_Addressed, Request):
    """Ping ``address`` from an offload iface; ``pid`` matches the PING_COMP event."""

    TYPE = UEvent.PING
    FIELDS = (
        _HOST,
        Field("iface_num", "I", 20),
        Field("iface_type", "I", 24),
        Field("payload_size", "I", 28),
        Field("pid", "I", 32),
    )
    host_no: int
    iface_num: int
    iface_type: int
    payload_size: int
    pid: int
    address: tuple[str, int]


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class PathUpdate(Request):
    """iscsiuio's answer to PATH_REQ: a ``struct iscsi_path``."""

    TYPE = UEvent.PATH_UPDATE
    FIELDS = (_HOST,)
    host_no: int
    path: IscsiPath

    def payload(self) -> bytes:
        return self.path.encode()

    @classmethod
    def parse_payload(cls, u: dict[str, int], payload: bytes) -> dict[str, Any]:
        if len(payload) != IscsiPath.SIZE:
            raise NetlinkDecodeError(f"PATH_UPDATE: {len(payload)}-byte iscsi_path")
        return {"path": IscsiPath.decode(payload)}


# -- offload host configuration: ifaces, CHAP table, flash nodes, host stats ------------


class _AttrList:
    """Mixin: the payload is an nlattr list of ``attrs`` (iface form when ``IFACE``)."""

    __slots__ = ()
    IFACE: ClassVar[bool] = False
    COUNT: ClassVar[str | None] = "count"
    attrs: tuple[ParamAttr, ...]

    def payload(self) -> bytes:
        return encode_attrs(self.attrs, iface=self.IFACE)

    def derived(self) -> dict[str, int]:
        return {self.COUNT: len(self.attrs)} if self.COUNT else {}

    @classmethod
    def parse_payload(cls, u: dict[str, int], payload: bytes) -> dict[str, Any]:
        attrs = decode_attrs(payload, iface=cls.IFACE)
        if cls.COUNT and u[cls.COUNT] != len(attrs):
            raise NetlinkDecodeError(f"count {u[cls.COUNT]} for {len(attrs)} attributes")
        return {"attrs": attrs}


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class SetIfaceParams(_AttrList, Request):
    """Configure offload ifaces: NET and IFACE parameters as iface-form attributes."""

    TYPE = UEvent.SET_IFACE_PARAMS
    IFACE = True
    FIELDS = (_HOST,)
    DERIVED = (Field("count", "I", 20),)
    host_no: int
    attrs: tuple[ParamAttr, ...]


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class SetChap(_AttrList, Request):
    """Add or change a CHAP table entry (:class:`ChapParam` attributes; no count)."""

    TYPE = UEvent.SET_CHAP
    COUNT = None
    FIELDS = (_HOST,)
    host_no: int
    attrs: tuple[ParamAttr, ...]


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class SetFlashnodeParams(_AttrList, Request):
    """Change a flash node's parameters (:class:`FlashnodeParam` attributes)."""

    TYPE = UEvent.SET_FLASHNODE_PARAMS
    FIELDS = (_HOST, Field("flashnode_idx", "I", 20))
    DERIVED = (Field("count", "I", 24),)
    host_no: int
    flashnode_idx: int
    attrs: tuple[ParamAttr, ...]


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class GetChap(Request):
    """Read up to ``num_entries`` CHAP entries from index ``chap_tbl_idx``."""

    TYPE = UEvent.GET_CHAP
    FIELDS = (_HOST, Field("num_entries", "I", 20), Field("chap_tbl_idx", "H", 24))
    host_no: int
    num_entries: int
    chap_tbl_idx: int = 0


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class DeleteChap(Request):
    """Delete one CHAP table entry."""

    TYPE = UEvent.DELETE_CHAP
    FIELDS = (_HOST, Field("chap_tbl_idx", "H", 20))
    host_no: int
    chap_tbl_idx: int


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class NewFlashnode(Request):
    """Create a flash node; ``portal_type`` is "ipv4" or "ipv6" (sent NUL-terminated)."""

    TYPE = UEvent.NEW_FLASHNODE
    FIELDS = (_HOST,)
    DERIVED = (Field("len", "I", 20),)
    host_no: int
    portal_type: str

    def payload(self) -> bytes:
        return _text(self.portal_type)

    def derived(self) -> dict[str, int]:
        return {"len": len(_text(self.portal_type))}

    @classmethod
    def parse_payload(cls, u: dict[str, int], payload: bytes) -> dict[str, Any]:
        return {"portal_type": _untext("NEW_FLASHNODE", u["len"], payload)}


_FLASHNODE: Final = (_HOST, Field("flashnode_idx", "I", 20))


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class DelFlashnode(Request):
    """Delete a flash node."""

    TYPE = UEvent.DEL_FLASHNODE
    FIELDS = _FLASHNODE
    host_no: int
    flashnode_idx: int


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class LoginFlashnode(Request):
    """Log in the session a flash node describes."""

    TYPE = UEvent.LOGIN_FLASHNODE
    FIELDS = _FLASHNODE
    host_no: int
    flashnode_idx: int


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class LogoutFlashnode(Request):
    """Log out the session of a flash node."""

    TYPE = UEvent.LOGOUT_FLASHNODE
    FIELDS = _FLASHNODE
    host_no: int
    flashnode_idx: int


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class LogoutFlashnodeSid(Request):
    """Log out a flash-created session by sid."""

    TYPE = UEvent.LOGOUT_FLASHNODE_SID
    FIELDS = (_HOST, Field("sid", "I", 20))
    host_no: int
    sid: int


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class GetHostStats(Request):
    """Ask for an offload host's ``struct iscsi_offload_host_stats``."""

    TYPE = UEvent.GET_HOST_STATS
    FIELDS = (_HOST,)
    host_no: int


#: Every request class by its type code.
REQUESTS: Final[dict[int, type[Request]]] = {
    cls.TYPE: cls
    for cls in (
        CreateSession,
        DestroySession,
        CreateConn,
        DestroyConn,
        BindConn,
        SetParam,
        StartConn,
        StopConn,
        SendPdu,
        GetStats,
        EpConnect,
        EpPoll,
        EpDisconnect,
        TgtDscvr,
        SetHostParam,
        UnbindSession,
        CreateBoundSession,
        EpConnectThroughHost,
        PathUpdate,
        SetIfaceParams,
        Ping,
        GetChap,
        DeleteChap,
        SetFlashnodeParams,
        NewFlashnode,
        DelFlashnode,
        LoginFlashnode,
        LogoutFlashnode,
        LogoutFlashnodeSid,
        SetChap,
        GetHostStats,
        DestroySessionAsync,
    )
}


def decode_request(buf: Buffer) -> Request:
    """The request one netlink message (nlmsghdr + uevent + payload) carries.

    The inverse of :meth:`Request.encode`, for fake kernels and tests.  Raises
    :class:`NetlinkDecodeError` for anything that is not a well-formed request.
    """
    data = bytes(buf)
    if len(data) < NLMSG_HDRLEN + UEVENT_SIZE:
        raise NetlinkDecodeError(f"request of {len(data)} bytes")
    length, msg_type, _flags, _seq, _pid = NLMSG_HEADER.unpack_from(data, 0)
    if length != len(data):
        raise NetlinkDecodeError(f"nlmsg_len {length} for {len(data)} bytes")
    uevent = data[NLMSG_HDRLEN : NLMSG_HDRLEN + UEVENT_SIZE]
    ev_type, _iferror, handle = UEVENT_HEADER.unpack_from(uevent, 0)
    cls = REQUESTS.get(ev_type)
    if cls is None or msg_type != ev_type:
        raise NetlinkDecodeError(f"not a request: nlmsg_type {msg_type}, type {ev_type}")
    u = unpack_fields(uevent, cls.FIELDS + cls.DERIVED)
    extra = cls.parse_payload(u, data[NLMSG_HDRLEN + UEVENT_SIZE :])
    kwargs = {f.name: u[f.name] for f in cls.FIELDS}
    return cls(transport_handle=handle, **kwargs, **extra)
