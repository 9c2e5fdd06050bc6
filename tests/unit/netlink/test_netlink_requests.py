"""Golden byte vectors for every NETLINK_ISCSI request iscsid sends.

Each expected message is built here by hand with :mod:`struct`, from the layout table of
open-iscsi-notes.md §1.5 (offsets into ``struct iscsi_uevent``; 16-byte nlmsghdr,
host-endian, ``nlmsg_len`` = 16 + 56 + payload, unpadded), independently of the codec's
field tables.  Both directions are asserted: the codec encodes exactly these bytes and
decodes them back to the same request.
"""

from __future__ import annotations

import struct
from collections.abc import Callable

import pytest

from iscsikit.errors import InvalidParameterError
from iscsikit.netlink import messages as m
from iscsikit.netlink.constants import UEvent
from iscsikit.netlink.errors import NetlinkDecodeError
from iscsikit.netlink.wire import IscsiPath, ParamAttr

PID = 0x1234
HANDLE = 0xFFFF88800ABCDEF0


def message(ev_type: int, u: bytes, payload: bytes = b"") -> bytes:
    """nlmsghdr + uevent (type, iferror 0, handle, u padded to 24, r zero) + payload."""
    assert len(u) <= 24
    uevent = struct.pack("=IIQ", ev_type, 0, HANDLE) + u.ljust(24, b"\0") + bytes(16)
    assert len(uevent) == 56
    return struct.pack("=IHHII", 16 + 56 + len(payload), ev_type, 0, 0, PID) + uevent + payload


SIN_3260 = struct.pack("=H", 2) + b"\x0c\xbc" + bytes([192, 0, 2, 7]) + bytes(8)
SIN6_3261 = (
    struct.pack("=H", 10) + b"\x0c\xbd" + bytes(4) + bytes(15) + b"\x01" + bytes(4)
)  # ::1, flowinfo 0, scope_id 0
PATH = IscsiPath(
    handle=7,
    mac_addr=b"\x00\x11\x22\x33\x44\x55",
    ip_addr_len=4,
    src=bytes([10, 0, 0, 1]),
    dst=bytes([10, 0, 0, 2]),
    vlan_id=100,
    pmtu=1500,
)
PATH_BYTES = (
    struct.pack("=Q", 7)
    + b"\x00\x11\x22\x33\x44\x55"
    + bytes(6)
    + struct.pack("=I", 4)
    + bytes([10, 0, 0, 1]).ljust(16, b"\0")
    + bytes([10, 0, 0, 2]).ljust(16, b"\0")
    + struct.pack("=HH", 100, 1500)
    + bytes(4)
)
assert len(PATH_BYTES) == 64


def iface_attr(param: int, value: bytes, iface_num: int, iface_type: int, ptype: int) -> bytes:
    body = struct.pack("=IIHBB", iface_num, len(value), param, iface_type, ptype) + value
    raw = struct.pack("=HH", 4 + len(body), param) + body
    return raw + bytes(-len(raw) % 4)


def short_attr(param: int, value: bytes) -> bytes:
    body = struct.pack("=IH", len(value), param) + value
    raw = struct.pack("=HH", 4 + len(body), param) + body
    return raw + bytes(-len(raw) % 4)


IFACE_ATTRS = (
    ParamAttr(1, bytes([192, 168, 1, 5]), iface_num=0, iface_type=1, param_type=2),
    ParamAttr(12, b"\x02", iface_num=0, iface_type=1, param_type=2),
    ParamAttr(8, struct.pack("=I", 262144), iface_num=1, iface_type=2, param_type=5),
)
IFACE_BYTES = (
    iface_attr(1, bytes([192, 168, 1, 5]), 0, 1, 2)
    + iface_attr(12, b"\x02", 0, 1, 2)
    + iface_attr(8, struct.pack("=I", 262144), 1, 2, 5)
)
CHAP_ATTRS = (ParamAttr(0, struct.pack("=H", 3)), ParamAttr(2, b"user\0"))
CHAP_BYTES = short_attr(0, struct.pack("=H", 3)) + short_attr(2, b"user\0")

H = HANDLE
BHS = bytes(range(48))

#: (request, the bytes iscsid would send for it)
CASES: list[tuple[m.Request, bytes]] = [
    (
        m.CreateSession(transport_handle=H, initial_cmdsn=1, cmds_max=128, queue_depth=32),
        message(11, struct.pack("=IHH", 1, 128, 32)),
    ),
    (
        m.CreateBoundSession(
            transport_handle=H, ep_handle=0xABCD, initial_cmdsn=5, cmds_max=64, queue_depth=16
        ),
        message(28, struct.pack("=QIHH", 0xABCD, 5, 64, 16)),
    ),
    (m.DestroySession(transport_handle=H, sid=3), message(12, struct.pack("=I", 3))),
    (m.DestroySessionAsync(transport_handle=H, sid=3), message(43, struct.pack("=I", 3))),
    (m.UnbindSession(transport_handle=H, sid=9), message(27, struct.pack("=I", 9))),
    (m.CreateConn(transport_handle=H, sid=3, cid=0), message(13, struct.pack("=II", 3, 0))),
    (m.DestroyConn(transport_handle=H, sid=3, cid=1), message(14, struct.pack("=II", 3, 1))),
    (m.StartConn(transport_handle=H, sid=3, cid=0), message(17, struct.pack("=II", 3, 0))),
    (m.GetStats(transport_handle=H, sid=3, cid=0), message(20, struct.pack("=II", 3, 0))),
    (
        m.BindConn(transport_handle=H, sid=3, cid=0, transport_eph=17, is_leading=1),
        message(15, struct.pack("=IIQI", 3, 0, 17, 1)),
    ),
    (
        m.StopConn(transport_handle=H, sid=3, cid=0, conn_handle=0x55, flag=3),
        message(18, struct.pack("=IIQI", 3, 0, 0x55, 3)),
    ),
    (
        m.SendPdu(transport_handle=H, sid=3, cid=0, hdr=BHS, data=b"InitiatorName=x\0"),
        message(19, struct.pack("=IIII", 3, 0, 48, 16), BHS + b"InitiatorName=x\0"),
    ),
    (
        m.SetParam(transport_handle=H, sid=3, cid=0, param=15, value="iqn.2024-01.x:t"),
        message(16, struct.pack("=IIII", 3, 0, 15, 16), b"iqn.2024-01.x:t\0"),
    ),
    (
        m.SetParam(transport_handle=H, sid=3, cid=0, param=0, value="262144"),
        message(16, struct.pack("=IIII", 3, 0, 0, 7), b"262144\0"),
    ),
    (
        m.SetHostParam(transport_handle=H, host_no=6, param=2, value="eth0"),
        message(26, struct.pack("=III", 6, 2, 5), b"eth0\0"),
    ),
    (
        m.EpConnect(transport_handle=H, non_blocking=1, address=("192.0.2.7", 3260)),
        message(22, struct.pack("=I", 1), SIN_3260),
    ),
    (
        m.EpConnect(transport_handle=H, non_blocking=0, address=("::1", 3261)),
        message(22, struct.pack("=I", 0), SIN6_3261),
    ),
    (
        m.EpConnectThroughHost(transport_handle=H, host_no=4, address=("192.0.2.7", 3260)),
        message(29, struct.pack("=II", 4, 1), SIN_3260),
    ),
    (
        m.EpPoll(transport_handle=H, ep_handle=0xDEAD, timeout_ms=1000),
        message(23, struct.pack("=QI", 0xDEAD, 1000)),
    ),
    (m.EpDisconnect(transport_handle=H, ep_handle=0xDEAD), message(24, struct.pack("=Q", 0xDEAD))),
    (
        m.TgtDscvr(transport_handle=H, discovery_type=1, host_no=4, address=("192.0.2.7", 3260)),
        message(25, struct.pack("=III", 1, 4, 1), SIN_3260),
    ),
    (
        m.Ping(
            transport_handle=H,
            host_no=4,
            iface_num=0,
            iface_type=1,
            payload_size=56,
            pid=77,
            address=("192.0.2.7", 3260),
        ),
        message(32, struct.pack("=IIIII", 4, 0, 1, 56, 77), SIN_3260),
    ),
    (
        m.PathUpdate(transport_handle=H, host_no=4, path=PATH),
        message(30, struct.pack("=I", 4), PATH_BYTES),
    ),
    (
        m.SetIfaceParams(transport_handle=H, host_no=4, attrs=IFACE_ATTRS),
        message(31, struct.pack("=II", 4, 3), IFACE_BYTES),
    ),
    (
        m.SetChap(transport_handle=H, host_no=4, attrs=CHAP_ATTRS),
        message(41, struct.pack("=I", 4), CHAP_BYTES),
    ),
    (
        m.SetFlashnodeParams(transport_handle=H, host_no=4, flashnode_idx=2, attrs=CHAP_ATTRS),
        message(35, struct.pack("=III", 4, 2, 2), CHAP_BYTES),
    ),
    (
        m.GetChap(transport_handle=H, host_no=4, num_entries=128, chap_tbl_idx=5),
        message(33, struct.pack("=IIH", 4, 128, 5)),
    ),
    (
        m.DeleteChap(transport_handle=H, host_no=4, chap_tbl_idx=5),
        message(34, struct.pack("=IH", 4, 5)),
    ),
    (
        m.NewFlashnode(transport_handle=H, host_no=4, portal_type="ipv4"),
        message(36, struct.pack("=II", 4, 5), b"ipv4\0"),
    ),
    (
        m.DelFlashnode(transport_handle=H, host_no=4, flashnode_idx=2),
        message(37, struct.pack("=II", 4, 2)),
    ),
    (
        m.LoginFlashnode(transport_handle=H, host_no=4, flashnode_idx=2),
        message(38, struct.pack("=II", 4, 2)),
    ),
    (
        m.LogoutFlashnode(transport_handle=H, host_no=4, flashnode_idx=2),
        message(39, struct.pack("=II", 4, 2)),
    ),
    (
        m.LogoutFlashnodeSid(transport_handle=H, host_no=4, sid=3),
        message(40, struct.pack("=II", 4, 3)),
    ),
    (m.GetHostStats(transport_handle=H, host_no=4), message(42, struct.pack("=I", 4))),
]


def _id(case: tuple[m.Request, bytes]) -> str:
    return type(case[0]).__name__


@pytest.mark.parametrize("case", CASES, ids=[_id(c) for c in CASES])
def test_golden_encode(case: tuple[m.Request, bytes]) -> None:
    request, expected = case
    assert request.encode(pid=PID) == expected


@pytest.mark.parametrize("case", CASES, ids=[_id(c) for c in CASES])
def test_golden_decode(case: tuple[m.Request, bytes]) -> None:
    request, expected = case
    assert m.decode_request(expected) == request


def test_every_request_type_has_a_golden_vector() -> None:
    covered = {type(request) for request, _ in CASES}
    assert covered == set(m.REQUESTS.values())
    # Every down code but UNKNOWN and GET_PARAM (never implemented) has a request class.
    down = {t for t in UEvent if 11 <= t <= 43} - {UEvent.GET_PARAM}
    assert set(m.REQUESTS) == down


def test_nlmsg_len_is_not_padded() -> None:
    # iscsid computes 16 + sum(iov lengths): a 7-byte value gives 79, not 80.
    raw = m.SetParam(transport_handle=1, sid=1, cid=0, param=0, value="262144").encode(pid=1)
    assert struct.unpack_from("=I", raw)[0] == len(raw) == 16 + 56 + 7


BAD: list[tuple[str, Callable[[], m.Request]]] = [
    ("sid too large", lambda: m.DestroySession(transport_handle=1, sid=1 << 32)),
    ("negative cmds_max", lambda: m.CreateSession(
        transport_handle=1, initial_cmdsn=1, cmds_max=-1, queue_depth=1)),
    ("handle too large", lambda: m.DestroySession(transport_handle=1 << 64, sid=1)),
    ("NUL in value", lambda: m.SetParam(transport_handle=1, sid=1, cid=0, param=0, value="a\0b")),
    ("host name", lambda: m.EpConnect(transport_handle=1, address=("example.com", 3260))),
    ("port", lambda: m.EpConnect(transport_handle=1, address=("127.0.0.1", 70000))),
]  # fmt: skip


@pytest.mark.parametrize("make", [b for _, b in BAD], ids=[n for n, _ in BAD])
def test_encoding_bad_values_is_the_callers_error(make: Callable[[], m.Request]) -> None:
    with pytest.raises(InvalidParameterError):
        make().encode(pid=1)


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        message(12, struct.pack("=I", 3))[:-1],  # truncated
        message(12, struct.pack("=I", 3), b"x"),  # payload where none is allowed
        message(102, b""),  # an event, not a request
        message(16, struct.pack("=IIII", 3, 0, 15, 9), b"abc\0"),  # len disagrees
        message(16, struct.pack("=IIII", 3, 0, 15, 4), b"abcd"),  # no NUL
        message(19, struct.pack("=IIII", 3, 0, 48, 0), b"short"),  # sizes disagree
        message(22, struct.pack("=I", 1), SIN_3260[:10]),  # short sockaddr
        message(31, struct.pack("=II", 4, 2), IFACE_BYTES[:20]),  # count, attr truncated
        message(31, struct.pack("=II", 4, 2), IFACE_BYTES),  # count disagrees
        message(30, struct.pack("=I", 4), PATH_BYTES[:40]),  # short iscsi_path
    ],
)
def test_decoding_a_malformed_request_raises_decode_error(raw: bytes) -> None:
    with pytest.raises(NetlinkDecodeError):
        m.decode_request(raw)
