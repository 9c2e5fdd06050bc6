"""What the kernel sends on NETLINK_ISCSI: replies, the IF_ERROR reply, async events.

One frozen dataclass per message, each declaring the ``r`` union members it reads
(``R_FIELDS``), and ``U_FIELDS`` where the kernel echoes request members back (the
stats and CHAP messages).  Replies carry ``request_type``; events do not.

How the kernel frames them (``drivers/scsi/scsi_transport_iscsi.c``), which is why the
decoder dispatches on the uevent's ``type`` and never on ``nlmsg_type``:

* a reply is the request's own uevent, ``r`` filled, unicast with ``nlmsg_type`` = the
  request's type; on failure ``type`` becomes KEVENT_IF_ERROR (103), ``iferror`` = -errno;
* GET_STATS, GET_CHAP and GET_HOST_STATS answer with one message of ``nlmsg_type`` 0
  whose uevent ``type`` is the request's, followed by the data;
* async events have ``nlmsg_type`` 0 and a KEVENT type; older kernels announced an
  offload-created session with type CREATE_SESSION (11) instead of 106, which decodes
  as :class:`SessionCreated` like a reply.

:meth:`KernelMessage.encode` frames a message as the kernel does (``nlmsg_len`` padded
to 4); it exists for fakes and tests.
"""

from __future__ import annotations

import dataclasses
from struct import Struct
from typing import Any, ClassVar, Final

from iscsikit.netlink.constants import (
    CUSTOM_STAT_SIZE,
    NLMSG_HDRLEN,
    STATS_CUSTOM_MAX,
    UEVENT_SIZE,
    UEvent,
)
from iscsikit.netlink.errors import NetlinkDecodeError, NetlinkRequestError
from iscsikit.netlink.params import HOST_STATS_FIELDS
from iscsikit.netlink.wire import (
    NLMSG_HEADER,
    UEVENT_HEADER,
    Buffer,
    ChapRecord,
    Field,
    IscsiPath,
    decode_custom,
    encode_custom,
    nlmsg_align,
    pack_fields,
    unpack_fields,
)

__all__ = [
    "STATS_FIELDS",
    "ChapReceived",
    "ConnCreated",
    "ConnFailed",
    "ConnLoginStateChanged",
    "EndpointConnected",
    "FlashnodeCreated",
    "HostEventReceived",
    "HostStatsReceived",
    "InterfaceDown",
    "KernelEvent",
    "KernelMessage",
    "PathRequested",
    "PduReceived",
    "PingCompleted",
    "Reply",
    "RequestDone",
    "RequestFailed",
    "SessionAppeared",
    "SessionCreated",
    "SessionDestroyed",
    "SessionUnbound",
    "StatsReceived",
    "decode_uevent",
]

#: ``struct iscsi_stats`` counters in order, named as iscsiadm prints them (the keys of
#: ``iscsikit.manager.sessions.STATS_KEYS``).
STATS_FIELDS: Final = (
    "txdata_octets", "rxdata_octets", "noptx_pdus", "scsicmd_pdus", "tmfcmd_pdus",
    "login_pdus", "text_pdus", "dataout_pdus", "logout_pdus", "snack_pdus", "noprx_pdus",
    "scsirsp_pdus", "tmfrsp_pdus", "textrsp_pdus", "datain_pdus", "logoutrsp_pdus",
    "r2t_pdus", "async_pdus", "rjt_pdus", "digest_err", "timeout_err",
)  # fmt: skip
#: ``struct iscsi_stats`` up to ``custom[]``: 2 u64, 19 u32, custom_length u32 (96 bytes).
_STATS: Final = Struct("=2Q19II")
#: ``struct iscsi_offload_host_stats`` up to ``custom[]``: 82 u64, custom_length, pad.
_HOST_STATS: Final = Struct(f"={len(HOST_STATS_FIELDS)}QI4x")

_SID_CID: Final = (Field("sid", "I", 40), Field("cid", "I", 44))


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class KernelMessage:
    """Base of everything the kernel sends: ``transport_handle`` of the uevent."""

    #: The uevent ``type`` this class decodes (a reply class may serve several).
    TYPE: ClassVar[UEvent]
    R_FIELDS: ClassVar[tuple[Field, ...]] = ()
    U_FIELDS: ClassVar[tuple[Field, ...]] = ()

    transport_handle: int

    def payload(self) -> bytes:
        """The bytes after the uevent."""
        return b""

    @classmethod
    def parse_payload(cls, fields: dict[str, int], payload: bytes) -> dict[str, Any]:
        """Constructor arguments from the payload (none by default: it is ignored)."""
        return {}

    def uevent_type(self) -> int:
        """The uevent ``type`` this message is sent with."""
        return self.TYPE

    def nlmsg_type(self) -> int:
        """The ``nlmsg_type`` the kernel sends it with (0 for events)."""
        return 0

    def encode(self, *, seq: int = 0) -> bytes:
        """The message as the kernel frames it (``nlmsg_len`` padded to 4)."""
        buf = bytearray(UEVENT_SIZE)
        UEVENT_HEADER.pack_into(buf, 0, self.uevent_type(), self._iferror(), self.transport_handle)
        fields = self.U_FIELDS + self.R_FIELDS
        pack_fields(buf, fields, {f.name: getattr(self, f.name) for f in fields})
        body = bytes(buf) + self.payload()
        length = nlmsg_align(NLMSG_HDRLEN + len(body))
        pad = bytes(length - NLMSG_HDRLEN - len(body))
        return NLMSG_HEADER.pack(length, self.nlmsg_type(), 0, seq, 0) + body + pad

    def _iferror(self) -> int:
        return 0


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class Reply(KernelMessage):
    """A reply to a request of type ``request_type``."""

    request_type: int

    def uevent_type(self) -> int:
        return self.request_type

    def nlmsg_type(self) -> int:
        return self.request_type


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class KernelEvent(KernelMessage):
    """An async event (multicast to ISCSI_NL_GRP_ISCSID)."""


# -- replies ----------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class RequestDone(Reply):
    """The reply of a request without a specific one: ``retcode`` (``r.retcode``).

    BIND_CONN, START_CONN, SEND_PDU and EP_POLL return a status there; the rest leave 0.
    """

    R_FIELDS = (Field("retcode", "i", 40),)
    retcode: int = 0


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class RequestFailed(Reply):
    """ISCSI_KEVENT_IF_ERROR: the kernel refused request ``request_type`` with ``errno``."""

    TYPE = UEvent.KEVENT_IF_ERROR
    errno: int

    def uevent_type(self) -> int:
        return UEvent.KEVENT_IF_ERROR

    def _iferror(self) -> int:
        return -self.errno

    def exception(self) -> NetlinkRequestError:
        """The error to raise for it (``not_supported`` when errno is ENOSYS)."""
        return NetlinkRequestError(self.request_type, self.errno)


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class SessionCreated(Reply):
    """CREATE_SESSION / CREATE_BOUND_SESSION reply (``c_session_ret``)."""

    R_FIELDS = (Field("sid", "I", 40), Field("host_no", "I", 44))
    sid: int
    host_no: int


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class ConnCreated(Reply):
    """CREATE_CONN reply (``c_conn_ret``); ``cid`` 0xffffffff (-1) means it failed."""

    R_FIELDS = _SID_CID
    sid: int
    cid: int

    @property
    def ok(self) -> bool:
        """Whether the kernel created the connection."""
        return self.cid != 0xFFFFFFFF


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class EndpointConnected(Reply):
    """EP_CONNECT(_THROUGH_HOST) reply: the endpoint ``handle`` (0: failed)."""

    R_FIELDS = (Field("handle", "Q", 40),)
    handle: int


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class FlashnodeCreated(Reply):
    """NEW_FLASHNODE reply: the new ``flashnode_idx``."""

    R_FIELDS = (Field("flashnode_idx", "I", 40),)
    flashnode_idx: int


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class StatsReceived(Reply):
    """GET_STATS answer: ``counters`` keyed by :data:`STATS_FIELDS`, custom ones after.

    ``custom`` keeps the transport's own (desc, value) pairs in order as well.
    """

    U_FIELDS = (Field("sid", "I", 16), Field("cid", "I", 20))
    sid: int
    cid: int
    counters: dict[str, int]
    custom: tuple[tuple[str, int], ...] = ()

    def nlmsg_type(self) -> int:
        return 0

    def payload(self) -> bytes:
        values = [self.counters.get(k, 0) for k in STATS_FIELDS]
        return _STATS.pack(*values, len(self.custom)) + encode_custom(self.custom)

    @classmethod
    def parse_payload(cls, fields: dict[str, int], payload: bytes) -> dict[str, Any]:
        if len(payload) < _STATS.size:
            raise NetlinkDecodeError(f"iscsi_stats of {len(payload)} bytes")
        *values, count = _STATS.unpack_from(payload, 0)
        if count > STATS_CUSTOM_MAX:
            raise NetlinkDecodeError(f"custom_length {count} > {STATS_CUSTOM_MAX}")
        custom = decode_custom(payload, _STATS.size, count)
        counters = dict(zip(STATS_FIELDS, (int(v) for v in values), strict=True))
        for desc, value in custom:
            counters.setdefault(desc, value)
        return {"counters": counters, "custom": custom}


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class HostStatsReceived(Reply):
    """GET_HOST_STATS answer: ``counters`` keyed by ``HOST_STATS_FIELDS``, custom after."""

    U_FIELDS = (Field("host_no", "I", 16),)
    host_no: int
    counters: dict[str, int]
    custom: tuple[tuple[str, int], ...] = ()

    def nlmsg_type(self) -> int:
        return 0

    def payload(self) -> bytes:
        values = [self.counters.get(k, 0) for k in HOST_STATS_FIELDS]
        return _HOST_STATS.pack(*values, len(self.custom)) + encode_custom(self.custom)

    @classmethod
    def parse_payload(cls, fields: dict[str, int], payload: bytes) -> dict[str, Any]:
        if len(payload) < _HOST_STATS.size:
            raise NetlinkDecodeError(f"iscsi_offload_host_stats of {len(payload)} bytes")
        *values, count = _HOST_STATS.unpack_from(payload, 0)
        if count > STATS_CUSTOM_MAX:
            raise NetlinkDecodeError(f"custom_length {count} > {STATS_CUSTOM_MAX}")
        custom = decode_custom(payload, _HOST_STATS.size, count)
        counters = dict(zip(HOST_STATS_FIELDS, (int(v) for v in values), strict=True))
        for desc, value in custom:
            counters.setdefault(desc, value)
        return {"counters": counters, "custom": custom}


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class ChapReceived(Reply):
    """GET_CHAP answer: ``num_entries`` valid ``struct iscsi_chap_rec`` entries."""

    U_FIELDS = (
        Field("host_no", "I", 16),
        Field("num_entries", "I", 20),
        Field("chap_tbl_idx", "H", 24),
    )
    host_no: int
    num_entries: int
    chap_tbl_idx: int
    records: tuple[ChapRecord, ...] = ()

    def nlmsg_type(self) -> int:
        return 0

    def payload(self) -> bytes:
        return b"".join(r.encode() for r in self.records)

    @classmethod
    def parse_payload(cls, fields: dict[str, int], payload: bytes) -> dict[str, Any]:
        count = fields["num_entries"]
        if count * ChapRecord.SIZE > len(payload):
            raise NetlinkDecodeError(f"{count} CHAP entries in {len(payload)} bytes")
        return {
            "records": tuple(ChapRecord.decode(payload, i * ChapRecord.SIZE) for i in range(count))
        }


# -- async events -----------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class PduReceived(KernelEvent):
    """RECV_PDU: a PDU the kernel hands up (login/text responses before FFP): BHS + data."""

    TYPE = UEvent.KEVENT_RECV_PDU
    R_FIELDS = (*_SID_CID, Field("recv_handle", "Q", 48))
    sid: int
    cid: int
    pdu: bytes
    recv_handle: int = 0

    def payload(self) -> bytes:
        return self.pdu

    @classmethod
    def parse_payload(cls, fields: dict[str, int], payload: bytes) -> dict[str, Any]:
        if len(payload) < 48:
            raise NetlinkDecodeError(f"RECV_PDU with {len(payload)} bytes (no BHS)")
        return {"pdu": payload}


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class ConnFailed(KernelEvent):
    """CONN_ERROR: connection *cid* of *sid* failed with ``error`` (a :class:`ConnError`)."""

    TYPE = UEvent.KEVENT_CONN_ERROR
    R_FIELDS = (*_SID_CID, Field("error", "I", 48))
    sid: int
    cid: int
    error: int


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class ConnLoginStateChanged(KernelEvent):
    """CONN_LOGIN_STATE: an offload login finished in ``state`` (a :class:`ConnState`)."""

    TYPE = UEvent.KEVENT_CONN_LOGIN_STATE
    R_FIELDS = (*_SID_CID, Field("state", "I", 48))
    sid: int
    cid: int
    state: int


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class SessionDestroyed(KernelEvent):
    """DESTROY_SESSION event (``d_session``: host_no before sid, unlike the others)."""

    TYPE = UEvent.KEVENT_DESTROY_SESSION
    R_FIELDS = (Field("host_no", "I", 40), Field("sid", "I", 44))
    host_no: int
    sid: int


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class SessionUnbound(KernelEvent):
    """UNBIND_SESSION event: the session's target is gone; iscsid then logs out."""

    TYPE = UEvent.KEVENT_UNBIND_SESSION
    R_FIELDS = (Field("sid", "I", 40), Field("host_no", "I", 44))
    sid: int
    host_no: int


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class SessionAppeared(KernelEvent):
    """CREATE_SESSION event (106): an offload HBA created a session by itself."""

    TYPE = UEvent.KEVENT_CREATE_SESSION
    R_FIELDS = (Field("sid", "I", 40), Field("host_no", "I", 44))
    sid: int
    host_no: int


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class PathRequested(KernelEvent):
    """PATH_REQ (to iscsiuio): resolve ``path`` for host ``host_no``."""

    TYPE = UEvent.KEVENT_PATH_REQ
    R_FIELDS = (Field("host_no", "I", 40),)
    host_no: int
    path: IscsiPath

    def payload(self) -> bytes:
        return self.path.encode()

    @classmethod
    def parse_payload(cls, fields: dict[str, int], payload: bytes) -> dict[str, Any]:
        return {"path": IscsiPath.decode(payload)}


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class InterfaceDown(KernelEvent):
    """IF_DOWN (to iscsiuio): host ``host_no``'s interface went down."""

    TYPE = UEvent.KEVENT_IF_DOWN
    R_FIELDS = (Field("host_no", "I", 40),)
    host_no: int


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class HostEventReceived(KernelEvent):
    """HOST_EVENT: ``code`` (a :class:`HostEventCode`) and ``data_size`` bytes of data."""

    TYPE = UEvent.KEVENT_HOST_EVENT
    R_FIELDS = (Field("host_no", "I", 40), Field("data_size", "I", 44), Field("code", "I", 48))
    host_no: int
    code: int
    data: bytes = b""

    @property
    def data_size(self) -> int:
        """``r.host_event.data_size``."""
        return len(self.data)

    def payload(self) -> bytes:
        return self.data

    @classmethod
    def parse_payload(cls, fields: dict[str, int], payload: bytes) -> dict[str, Any]:
        return {"data": _sized(fields["data_size"], payload)}


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class PingCompleted(KernelEvent):
    """PING_COMP: the ping ``pid`` ended with ``status`` (a :class:`PingStatus`)."""

    TYPE = UEvent.KEVENT_PING_COMP
    R_FIELDS = (
        Field("host_no", "I", 40),
        Field("status", "I", 44),
        Field("pid", "I", 48),
        Field("data_size", "I", 52),
    )
    host_no: int
    status: int
    pid: int
    data: bytes = b""

    @property
    def data_size(self) -> int:
        """``r.ping_comp.data_size``."""
        return len(self.data)

    def payload(self) -> bytes:
        return self.data

    @classmethod
    def parse_payload(cls, fields: dict[str, int], payload: bytes) -> dict[str, Any]:
        return {"data": _sized(fields["data_size"], payload)}


def _sized(size: int, payload: bytes) -> bytes:
    # The kernel pads a message to 4 bytes: only the first ``size`` bytes are data.
    if size > len(payload):
        raise NetlinkDecodeError(f"data_size {size} for {len(payload)} bytes")
    return payload[:size]


#: The reply class of each request type whose reply says more than a retcode.
REPLIES: Final[dict[int, type[Reply]]] = {
    UEvent.CREATE_SESSION: SessionCreated,
    UEvent.CREATE_BOUND_SESSION: SessionCreated,
    UEvent.CREATE_CONN: ConnCreated,
    UEvent.TRANSPORT_EP_CONNECT: EndpointConnected,
    UEvent.TRANSPORT_EP_CONNECT_THROUGH_HOST: EndpointConnected,
    UEvent.NEW_FLASHNODE: FlashnodeCreated,
    UEvent.GET_STATS: StatsReceived,
    UEvent.GET_HOST_STATS: HostStatsReceived,
    UEvent.GET_CHAP: ChapReceived,
}
#: The event class of each KEVENT type (IF_ERROR is a reply: see :func:`decode_uevent`).
EVENTS: Final[dict[int, type[KernelEvent]]] = {
    cls.TYPE: cls
    for cls in (
        PduReceived,
        ConnFailed,
        SessionDestroyed,
        SessionUnbound,
        SessionAppeared,
        PathRequested,
        InterfaceDown,
        ConnLoginStateChanged,
        HostEventReceived,
        PingCompleted,
    )
}
_REQUEST_TYPES: Final = range(UEvent.CREATE_SESSION, UEvent.DESTROY_SESSION_ASYNC + 1)


def decode_uevent(nlmsg_type: int, body: Buffer) -> KernelMessage | None:
    """The message in *body* (uevent + payload), or ``None`` for an unknown type.

    *nlmsg_type* is the header's type: for IF_ERROR it names the failed request.
    Raises :class:`NetlinkDecodeError` when *body* is malformed.
    """
    data = bytes(body)
    if len(data) < UEVENT_SIZE:
        raise NetlinkDecodeError(f"uevent of {len(data)} bytes")
    ev_type, iferror, handle = UEVENT_HEADER.unpack_from(data, 0)
    payload = data[UEVENT_SIZE:]
    if ev_type == UEvent.KEVENT_IF_ERROR:
        return RequestFailed(transport_handle=handle, request_type=nlmsg_type, errno=-iferror)
    cls: type[KernelMessage]
    kwargs: dict[str, Any] = {"transport_handle": handle}
    if ev_type in _REQUEST_TYPES:
        cls = REPLIES.get(ev_type, RequestDone)
        kwargs["request_type"] = ev_type
    elif ev_type in EVENTS:
        cls = EVENTS[ev_type]
    else:
        return None
    fields = unpack_fields(data, cls.U_FIELDS + cls.R_FIELDS)
    extra = cls.parse_payload(fields, payload)
    for name, value in fields.items():
        if name != "data_size":
            kwargs[name] = value
    return cls(**kwargs, **extra)


assert CUSTOM_STAT_SIZE == 72
