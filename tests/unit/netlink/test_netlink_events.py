"""Golden byte vectors for every reply and async event the kernel sends on NETLINK_ISCSI.

Expected bytes are built by hand with :mod:`struct` from open-iscsi-notes.md §1.5 and
the kernel's framing (``scsi_transport_iscsi.c``): replies keep the request's
``nlmsg_type``; events, stats and CHAP answers have ``nlmsg_type`` 0 and are told apart by
the uevent ``type``; ``nlmsg_len`` is padded to 4.  Both directions are asserted.
"""

from __future__ import annotations

import errno
import struct

import pytest

from iscsikit.manager.sessions import STATS_KEYS
from iscsikit.netlink import events as e
from iscsikit.netlink.constants import ConnError, UEvent
from iscsikit.netlink.decoder import NetlinkDecoder, NetlinkErrorReceived, decode_datagram
from iscsikit.netlink.errors import NetlinkDecodeError, NetlinkRequestError
from iscsikit.netlink.params import HOST_STATS_FIELDS
from iscsikit.netlink.wire import ChapRecord, IscsiPath

H = 0xFFFF88800ABCDEF0


def kmsg(nl_type: int, ev_type: int, r: bytes = b"", *, u: bytes = b"", iferror: int = 0,
         payload: bytes = b"") -> bytes:  # fmt: skip
    """A message as the kernel frames it: nlmsg_len = NLMSG_ALIGN(16 + body), pid 0."""
    body = (
        struct.pack("=IiQ", ev_type, iferror, H) + u.ljust(24, b"\0") + r.ljust(16, b"\0") + payload
    )
    length = (16 + len(body) + 3) & ~3
    return struct.pack("=IHHII", length, nl_type, 0, 0, 0) + body.ljust(length - 16, b"\0")


STATS_VALUES = [10_000_000_000, 20_000_000_000, *range(1, 20)]
STATS_PAYLOAD = (
    struct.pack("=QQ", *STATS_VALUES[:2])
    + struct.pack("=19I", *STATS_VALUES[2:])
    + struct.pack("=I", 2)
    + b"eh_abort_cnt".ljust(64, b"\0")
    + struct.pack("=Q", 4)
    + b"tx_sendpage_failures".ljust(64, b"\0")
    + struct.pack("=Q", 0)
)
STATS = e.StatsReceived(
    transport_handle=H,
    request_type=20,
    sid=3,
    cid=0,
    counters={
        **dict(zip(STATS_KEYS, STATS_VALUES, strict=True)),
        "eh_abort_cnt": 4,
        "tx_sendpage_failures": 0,
    },
    custom=(("eh_abort_cnt", 4), ("tx_sendpage_failures", 0)),
)
HOST_VALUES = list(range(100, 100 + 82))
HOST_STATS_PAYLOAD = (
    struct.pack("=82Q", *HOST_VALUES)
    + struct.pack("=I", 1)
    + bytes(4)  # custom[] is 8-aligned: at 664
    + b"fw_err".ljust(64, b"\0")
    + struct.pack("=Q", 9)
)
CHAP_RECORD_BYTES = (
    struct.pack("=H", 5)
    + bytes(2)
    + struct.pack("=I", 1)
    + b"tgt-user".ljust(256, b"\0")
    + b"secret12".ljust(256, b"\0")
    + bytes([8])
    + bytes(3)
)
assert len(CHAP_RECORD_BYTES) == 524
PATH_BYTES = struct.pack("=Q", 9) + bytes(12) + struct.pack("=I", 16) + bytes(32) + bytes(8)
PDU = bytes([0x23]) + bytes(47) + b"TargetAlias=x\0\0\0"

#: (decoded message, the bytes the kernel sends for it)
CASES: list[tuple[e.KernelMessage, bytes]] = [
    (
        e.SessionCreated(transport_handle=H, request_type=11, sid=3, host_no=7),
        kmsg(11, 11, struct.pack("=II", 3, 7)),
    ),
    (
        e.SessionCreated(transport_handle=H, request_type=28, sid=4, host_no=8),
        kmsg(28, 28, struct.pack("=II", 4, 8)),
    ),
    (
        e.ConnCreated(transport_handle=H, request_type=13, sid=3, cid=0),
        kmsg(13, 13, struct.pack("=II", 3, 0)),
    ),
    (
        e.EndpointConnected(transport_handle=H, request_type=22, handle=0xFFFF8880DEADBEEF),
        kmsg(22, 22, struct.pack("=Q", 0xFFFF8880DEADBEEF)),
    ),
    (
        e.EndpointConnected(transport_handle=H, request_type=29, handle=1),
        kmsg(29, 29, struct.pack("=Q", 1)),
    ),
    (
        e.FlashnodeCreated(transport_handle=H, request_type=36, flashnode_idx=12),
        kmsg(36, 36, struct.pack("=I", 12)),
    ),
    (
        e.RequestDone(transport_handle=H, request_type=15, retcode=0),
        kmsg(15, 15, struct.pack("=i", 0)),
    ),
    (
        e.RequestDone(transport_handle=H, request_type=23, retcode=-110),
        kmsg(23, 23, struct.pack("=i", -110)),
    ),
    (
        e.RequestFailed(transport_handle=H, request_type=16, errno=errno.ENOSYS),
        kmsg(16, 103, iferror=-errno.ENOSYS),
    ),
    (STATS, kmsg(0, 20, u=struct.pack("=II", 3, 0), payload=STATS_PAYLOAD)),
    (
        e.HostStatsReceived(
            transport_handle=H,
            request_type=42,
            host_no=7,
            counters={**dict(zip(HOST_STATS_FIELDS, HOST_VALUES, strict=True)), "fw_err": 9},
            custom=(("fw_err", 9),),
        ),
        kmsg(0, 42, u=struct.pack("=I", 7), payload=HOST_STATS_PAYLOAD),
    ),
    (
        e.ChapReceived(
            transport_handle=H,
            request_type=33,
            host_no=7,
            num_entries=1,
            chap_tbl_idx=5,
            records=(ChapRecord(5, 1, "tgt-user", b"secret12"),),
        ),
        kmsg(0, 33, u=struct.pack("=IIH", 7, 1, 5), payload=CHAP_RECORD_BYTES),
    ),
    (
        e.PduReceived(transport_handle=H, sid=3, cid=0, recv_handle=0x77, pdu=PDU),
        kmsg(0, 101, struct.pack("=IIQ", 3, 0, 0x77), payload=PDU),
    ),
    (
        e.ConnFailed(transport_handle=H, sid=3, cid=0, error=ConnError.NOP_TIMEDOUT),
        kmsg(0, 102, struct.pack("=III", 3, 0, 1022)),
    ),
    (
        e.SessionDestroyed(transport_handle=H, host_no=7, sid=3),
        kmsg(0, 104, struct.pack("=II", 7, 3)),  # host_no first: the d_session quirk
    ),
    (
        e.SessionUnbound(transport_handle=H, sid=3, host_no=7),
        kmsg(0, 105, struct.pack("=II", 3, 7)),
    ),
    (
        e.SessionAppeared(transport_handle=H, sid=5, host_no=9),
        kmsg(0, 106, struct.pack("=II", 5, 9)),
    ),
    (
        e.PathRequested(
            transport_handle=H,
            host_no=9,
            path=IscsiPath(handle=9, ip_addr_len=16, src=bytes(16), dst=bytes(16)),
        ),
        kmsg(0, 107, struct.pack("=I", 9), payload=PATH_BYTES),
    ),
    (e.InterfaceDown(transport_handle=H, host_no=9), kmsg(0, 108, struct.pack("=I", 9))),
    (
        e.ConnLoginStateChanged(transport_handle=H, sid=5, cid=0, state=3),
        kmsg(0, 109, struct.pack("=III", 5, 0, 3)),
    ),
    (
        e.HostEventReceived(transport_handle=H, host_no=9, code=2, data=b"abc"),
        kmsg(0, 110, struct.pack("=III", 9, 3, 2), payload=b"abc"),
    ),
    (
        e.PingCompleted(transport_handle=H, host_no=9, status=4, pid=77, data=b""),
        kmsg(0, 111, struct.pack("=IIII", 9, 4, 77, 0)),
    ),
]


def _id(case: tuple[e.KernelMessage, bytes]) -> str:
    msg = case[0]
    return f"{type(msg).__name__}-{getattr(msg, 'request_type', '')}"


@pytest.mark.parametrize("case", CASES, ids=[_id(c) for c in CASES])
def test_golden_decode(case: tuple[e.KernelMessage, bytes]) -> None:
    message, raw = case
    assert decode_datagram(raw) == [message]


@pytest.mark.parametrize("case", CASES, ids=[_id(c) for c in CASES])
def test_golden_encode(case: tuple[e.KernelMessage, bytes]) -> None:
    message, raw = case
    assert message.encode() == raw


def test_every_event_and_reply_class_has_a_golden_vector() -> None:
    covered = {type(msg) for msg, _ in CASES}
    assert set(e.EVENTS.values()) | set(e.REPLIES.values()) | {e.RequestDone} <= covered
    assert e.RequestFailed in covered
    kevents = {t for t in UEvent if t > 100} - {UEvent.KEVENT_IF_ERROR}
    assert set(e.EVENTS) == kevents


def test_stats_keys_are_the_managers() -> None:
    assert e.STATS_FIELDS == STATS_KEYS
    assert list(STATS.counters)[: len(STATS_KEYS)] == list(STATS_KEYS)


def test_if_error_becomes_an_exception_carrying_errno() -> None:
    [reply] = decode_datagram(kmsg(18, 103, iferror=-errno.EINVAL))
    assert isinstance(reply, e.RequestFailed)
    assert reply.request_type == UEvent.STOP_CONN
    exc = reply.exception()
    assert isinstance(exc, NetlinkRequestError)
    assert (exc.errno, exc.request_type, exc.not_supported) == (errno.EINVAL, 18, False)
    assert reply.exception().not_supported is False
    [enosys] = decode_datagram(kmsg(16, 103, iferror=-errno.ENOSYS))
    assert isinstance(enosys, e.RequestFailed) and enosys.exception().not_supported
    with pytest.raises(NetlinkRequestError, match="EINVAL"):
        raise exc


def test_events_interleaved_with_replies_keep_their_order() -> None:
    # One recv() may hold an async event, the awaited reply and another event.
    events_then_reply = (
        kmsg(0, 102, struct.pack("=III", 1, 0, 1020))
        + kmsg(0, 101, struct.pack("=IIQ", 3, 0, 1), payload=PDU)  # 65-byte body: padded
        + kmsg(13, 13, struct.pack("=II", 3, 0))
    )
    decoder = NetlinkDecoder()
    decoder.receive_data(events_then_reply)
    decoder.receive_data(kmsg(0, 104, struct.pack("=II", 7, 1)))
    assert len(decoder) == 4
    got = [decoder.next_event() for _ in range(4)]
    assert [type(x) for x in got] == [
        e.ConnFailed,
        e.PduReceived,
        e.ConnCreated,
        e.SessionDestroyed,
    ]
    assert isinstance(got[1], e.PduReceived) and got[1].pdu == PDU
    assert decoder.next_event() is None


def test_unknown_types_and_netlink_control_messages() -> None:
    noop = struct.pack("=IHHII", 16, 1, 0, 0, 0)
    error = struct.pack("=IHHII", 36, 2, 0, 5, 0) + struct.pack("=i", -1) + bytes(16)
    unknown = kmsg(0, 150, b"")
    got = decode_datagram(noop + unknown + error + kmsg(0, 108, struct.pack("=I", 2)))
    assert got == [NetlinkErrorReceived(-1, 5), e.InterfaceDown(transport_handle=H, host_no=2)]


def test_last_message_may_lack_its_padding() -> None:
    raw = kmsg(0, 110, struct.pack("=III", 9, 1, 1), payload=b"x")
    assert len(raw) % 4 == 0
    trimmed = raw[:-3]
    struct.pack_into("=I", trimmed := bytearray(trimmed), 0, len(trimmed))
    assert decode_datagram(trimmed) == decode_datagram(raw)


@pytest.mark.parametrize(
    "raw",
    [
        b"\x01",
        struct.pack("=IHHII", 8, 0, 0, 0, 0),  # nlmsg_len below the header
        struct.pack("=IHHII", 200, 0, 0, 0, 0) + bytes(56),  # longer than the datagram
        kmsg(0, 102, struct.pack("=III", 1, 0, 1))[:60],  # uevent cut
        kmsg(0, 102, struct.pack("=III", 1, 0, 1)) + b"\0\0",  # trailing garbage
        kmsg(0, 101, struct.pack("=IIQ", 3, 0, 1), payload=b"short"),  # no BHS
        kmsg(0, 20, payload=STATS_PAYLOAD[:90]),  # iscsi_stats cut
        kmsg(0, 20, payload=STATS_PAYLOAD[:92] + struct.pack("=I", 33)),  # custom > 32
        kmsg(0, 20, payload=STATS_PAYLOAD[:-10]),  # custom entries cut
        kmsg(0, 33, u=struct.pack("=IIH", 7, 2, 0), payload=CHAP_RECORD_BYTES),  # 2 != 1
        kmsg(0, 110, struct.pack("=III", 9, 40, 1), payload=b"abc"),  # data_size > data
        kmsg(0, 107, struct.pack("=I", 9), payload=PATH_BYTES[:30]),  # iscsi_path cut
        struct.pack("=IHHII", 18, 2, 0, 0, 0) + b"\0\0",  # NLMSG_ERROR cut
    ],
)
def test_malformed_datagrams_raise_decode_error_and_queue_nothing(raw: bytes) -> None:
    decoder = NetlinkDecoder()
    good = kmsg(0, 108, struct.pack("=I", 2))
    with pytest.raises(NetlinkDecodeError):
        decoder.receive_data(good + raw)
    assert decoder.next_event() is None
