"""Wire building blocks of NETLINK_ISCSI: fields, framing and the payload structs.

This module owns how bytes are laid out, not which message means what:

* :class:`Field` - one member of the ``u`` (requests) or ``r`` (replies, events) union
  of ``struct iscsi_uevent``, by name, struct code and offset from the start of the
  56-byte uevent; messages declare tuples of them.
* the ``struct nlmsghdr`` framing (host-endian; ``nlmsg_len`` not padded on send).
* the payload structs: ``sockaddr_in``/``sockaddr_in6``, the nlattr parameter lists,
  ``struct iscsi_path``, ``struct iscsi_chap_rec`` and the ``*_custom`` stats entries.

Every multi-byte field is host-endian (``=`` struct codes), except the port and
addresses inside a sockaddr, which are in network order as in any sockaddr.  Decoders
raise :class:`~iscsikit.netlink.errors.NetlinkDecodeError` and nothing else.
"""

from __future__ import annotations

import ipaddress
import struct
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from struct import Struct
from typing import Final, TypeAlias

from iscsikit.errors import InvalidParameterError
from iscsikit.netlink.constants import CUSTOM_STAT_SIZE, NLMSG_HDRLEN, UEVENT_SIZE
from iscsikit.netlink.errors import NetlinkDecodeError

__all__ = [
    "AF_INET",
    "AF_INET6",
    "NLMSG_HEADER",
    "U_OFFSET",
    "R_OFFSET",
    "UEVENT_HEADER",
    "Buffer",
    "ChapRecord",
    "Field",
    "IscsiPath",
    "ParamAttr",
    "decode_attrs",
    "decode_custom",
    "decode_sockaddr",
    "encode_attrs",
    "encode_sockaddr",
    "pack_fields",
    "unpack_fields",
]

#: What the decoders accept.
Buffer: TypeAlias = bytes | bytearray | memoryview

#: ``struct nlmsghdr``: len u32, type u16, flags u16, seq u32, pid u32 (host-endian).
NLMSG_HEADER: Final = Struct("=IHHII")
#: The fixed head of ``struct iscsi_uevent``: type u32, iferror u32 (a negative errno
#: in replies, so signed here), transport_handle u64.
UEVENT_HEADER: Final = Struct("=IiQ")
#: Where the ``u`` (24 bytes) and ``r`` (16 bytes) unions start in the uevent.
U_OFFSET: Final = 16
R_OFFSET: Final = 40

#: ``AF_INET`` / ``AF_INET6`` as Linux numbers them (``sa_family``, host-endian u16).
AF_INET: Final = 2
AF_INET6: Final = 10
_FAMILY: Final = Struct("=H")  # sa_family; then port (network order), address, padding
_SOCKADDR_IN_SIZE: Final = 16
_SOCKADDR_IN6_SIZE: Final = 28


@dataclass(frozen=True, slots=True)
class Field:
    """One member of a uevent union: ``name``, a one-letter struct code, its offset.

    ``offset`` counts from the start of ``struct iscsi_uevent`` (so ``u`` members are
    at 16..39 and ``r`` members at 40..55), as in the layout tables of
    open-iscsi-notes.md §1.5.  The code is packed with ``=`` (host order, standard size).
    """

    name: str
    code: str
    offset: int

    @property
    def struct(self) -> Struct:
        """The precompiled struct of this one field."""
        return _struct(self.code)


_STRUCTS: dict[str, Struct] = {}


def _struct(code: str) -> Struct:
    s = _STRUCTS.get(code)
    if s is None:
        s = _STRUCTS[code] = Struct("=" + code)
    return s


def pack_fields(buf: bytearray, fields: Iterable[Field], values: Mapping[str, int]) -> None:
    """Write each field's value into the 56-byte uevent *buf*.

    A value that does not fit its field is the caller's error (``InvalidParameterError``).
    """
    for f in fields:
        value = values[f.name]
        try:
            f.struct.pack_into(buf, f.offset, value)
        except struct.error as exc:
            raise InvalidParameterError(f"{f.name}={value!r} does not fit {f.code!r}") from exc


def unpack_fields(uevent: Buffer, fields: Iterable[Field]) -> dict[str, int]:
    """Read the fields from a uevent of at least :data:`UEVENT_SIZE` bytes."""
    return {f.name: int(f.struct.unpack_from(uevent, f.offset)[0]) for f in fields}


def nlmsg_align(n: int) -> int:
    """``NLMSG_ALIGN`` / ``NLA_ALIGN``: *n* rounded up to a multiple of 4."""
    return (n + 3) & ~3


def frame(msg_type: int, uevent: bytes, payload: bytes, *, pid: int, seq: int = 0) -> bytes:
    """A request as iscsid sends it: nlmsghdr, uevent, payload; ``nlmsg_len`` unpadded."""
    length = NLMSG_HDRLEN + len(uevent) + len(payload)
    return NLMSG_HEADER.pack(length, msg_type, 0, seq, pid) + uevent + payload


# -- sockaddr ---------------------------------------------------------------------------


def encode_sockaddr(host: str, port: int) -> bytes:
    """``struct sockaddr_in`` (16 bytes) or ``sockaddr_in6`` (28) for *host*, *port*.

    *host* is a numeric IPv4 or IPv6 address (names are resolved by the I/O layer).
    """
    try:
        addr = ipaddress.ip_address(host)
        port_bytes = port.to_bytes(2, "big")
    except (ValueError, OverflowError) as exc:
        raise InvalidParameterError(f"not a numeric address and port: {host!r} {port!r}") from exc
    if isinstance(addr, ipaddress.IPv4Address):
        return _FAMILY.pack(AF_INET) + port_bytes + addr.packed + bytes(8)
    # flowinfo (network order) 0, address, scope_id (host order) 0
    return _FAMILY.pack(AF_INET6) + port_bytes + bytes(4) + addr.packed + bytes(4)


def decode_sockaddr(buf: Buffer) -> tuple[str, int]:
    """The (host, port) of a sockaddr that is exactly *buf*."""
    if len(buf) < 2:
        raise NetlinkDecodeError(f"sockaddr of {len(buf)} bytes")
    (family,) = _FAMILY.unpack_from(buf, 0)
    data = bytes(buf)
    if family == AF_INET and len(data) == _SOCKADDR_IN_SIZE:
        return str(ipaddress.IPv4Address(data[4:8])), int.from_bytes(data[2:4], "big")
    if family == AF_INET6 and len(data) == _SOCKADDR_IN6_SIZE:
        return str(ipaddress.IPv6Address(data[8:24])), int.from_bytes(data[2:4], "big")
    raise NetlinkDecodeError(f"sockaddr family {family} with {len(data)} bytes")


# -- nlattr parameter lists (SET_IFACE_PARAMS, SET_CHAP, SET_FLASHNODE_PARAMS) ----------

_NLATTR: Final = Struct("=HH")
#: ``struct iscsi_iface_param_info``: iface_num u32, len u32, param u16, iface_type u8,
#: param_type u8 (12 bytes, packed).
_IFACE_INFO: Final = Struct("=IIHBB")
#: ``struct iscsi_param_info`` / ``iscsi_flashnode_param_info``: len u32, param u16.
_PARAM_INFO: Final = Struct("=IH")


@dataclass(frozen=True, slots=True)
class ParamAttr:
    """One netlink attribute of a parameter list: its ``param`` and raw ``value``.

    ``iface_num``, ``iface_type`` and ``param_type`` exist only in the iface form
    (``struct iscsi_iface_param_info``); they are ``None`` in the short form
    (``struct iscsi_param_info``, used by SET_CHAP and SET_FLASHNODE_PARAMS).
    """

    param: int
    value: bytes
    iface_num: int | None = None
    iface_type: int | None = None
    param_type: int | None = None

    @property
    def is_iface(self) -> bool:
        """Whether this attribute has the iface form."""
        return self.iface_num is not None


def encode_attrs(attrs: Iterable[ParamAttr], *, iface: bool) -> bytes:
    """Attributes as iscsiadm lays them: ``{nla_len, nla_type=param}``, info, value, pad."""
    out = bytearray()
    for a in attrs:
        if a.is_iface != iface:
            raise InvalidParameterError(f"attribute {a.param}: wrong form for this message")
        try:
            if iface:
                info = _IFACE_INFO.pack(
                    a.iface_num, len(a.value), a.param, a.iface_type or 0, a.param_type or 0
                )
            else:
                info = _PARAM_INFO.pack(len(a.value), a.param)
            length = _NLATTR.size + len(info) + len(a.value)
            out += _NLATTR.pack(length, a.param) + info + a.value
        except struct.error as exc:
            raise InvalidParameterError(f"attribute {a.param}: {exc}") from exc
        out += bytes(nlmsg_align(length) - length)
    return bytes(out)


def decode_attrs(buf: Buffer, *, iface: bool) -> tuple[ParamAttr, ...]:
    """The attributes of a parameter list (the inverse of :func:`encode_attrs`)."""
    data = bytes(buf)
    info = _IFACE_INFO if iface else _PARAM_INFO
    attrs: list[ParamAttr] = []
    pos = 0
    while pos < len(data):
        if len(data) - pos < _NLATTR.size + info.size:
            raise NetlinkDecodeError(f"attribute at {pos}: {len(data) - pos} bytes left")
        nla_len, nla_type = _NLATTR.unpack_from(data, pos)
        head = pos + _NLATTR.size
        if iface:
            num, vlen, param, itype, ptype = _IFACE_INFO.unpack_from(data, head)
        else:
            vlen, param = _PARAM_INFO.unpack_from(data, head)
        start = head + info.size
        if nla_len != _NLATTR.size + info.size + vlen or start + vlen > len(data):
            raise NetlinkDecodeError(f"attribute at {pos}: nla_len {nla_len}, value {vlen}")
        if nla_type != param:
            raise NetlinkDecodeError(f"attribute at {pos}: nla_type {nla_type} != {param}")
        value = data[start : start + vlen]
        if iface:
            attrs.append(ParamAttr(param, value, num, itype, ptype))
        else:
            attrs.append(ParamAttr(param, value))
        pos += nlmsg_align(nla_len)
    return tuple(attrs)


# -- struct iscsi_path ------------------------------------------------------------------

#: handle u64@0, mac_addr[6]@8, mac_addr_old[6]@14, ip_addr_len u32@20, src[16]@24,
#: dst[16]@40, vlan_id u16@56, pmtu u16@58, 4 bytes of tail padding (64, 8-aligned).
_PATH: Final = Struct("=Q6s6sI16s16sHH4x")


@dataclass(frozen=True, slots=True)
class IscsiPath:
    """``struct iscsi_path`` (64 bytes): PATH_UPDATE payload, PATH_REQ event payload.

    ``src`` and ``dst`` are raw 4- or 16-byte addresses (``ip_addr_len`` says which).
    """

    handle: int
    mac_addr: bytes = bytes(6)
    mac_addr_old: bytes = bytes(6)
    ip_addr_len: int = 4
    src: bytes = bytes(4)
    dst: bytes = bytes(4)
    vlan_id: int = 0
    pmtu: int = 0

    SIZE = _PATH.size

    def encode(self) -> bytes:
        """The 64 bytes."""
        try:
            return _PATH.pack(
                self.handle,
                self.mac_addr,
                self.mac_addr_old,
                self.ip_addr_len,
                self.src,
                self.dst,
                self.vlan_id,
                self.pmtu,
            )
        except struct.error as exc:
            raise InvalidParameterError(f"iscsi_path: {exc}") from exc

    @classmethod
    def decode(cls, buf: Buffer) -> IscsiPath:
        """From at least 64 bytes; addresses are cut to ``ip_addr_len`` (4 or 16)."""
        if len(buf) < _PATH.size:
            raise NetlinkDecodeError(f"iscsi_path of {len(buf)} bytes")
        handle, mac, old, alen, src, dst, vlan, pmtu = _PATH.unpack_from(buf, 0)
        if alen not in (4, 16):
            raise NetlinkDecodeError(f"iscsi_path ip_addr_len {alen}")
        return cls(handle, mac, old, alen, src[:alen], dst[:alen], vlan, pmtu)


# -- struct iscsi_chap_rec and custom stats ---------------------------------------------

#: chap_tbl_idx u16@0, chap_type u32@4, username[256]@8, password[256]@264,
#: password_length u8@520; natural alignment, 524 bytes.
_CHAP_REC: Final = Struct("=H2xI256s256sB3x")


@dataclass(frozen=True, slots=True)
class ChapRecord:
    """``struct iscsi_chap_rec``: one entry of a GET_CHAP reply."""

    chap_tbl_idx: int
    chap_type: int
    username: str
    password: bytes

    SIZE = _CHAP_REC.size

    def encode(self) -> bytes:
        """The 524 bytes (what the kernel writes; used by tests and fakes)."""
        try:
            return _CHAP_REC.pack(
                self.chap_tbl_idx,
                self.chap_type,
                self.username.encode(),
                self.password,
                len(self.password),
            )
        except (struct.error, UnicodeError) as exc:
            raise InvalidParameterError(f"iscsi_chap_rec: {exc}") from exc

    @classmethod
    def decode(cls, buf: Buffer, offset: int = 0) -> ChapRecord:
        """From the 524 bytes at *offset* of *buf*."""
        if len(buf) - offset < _CHAP_REC.size:
            raise NetlinkDecodeError(f"iscsi_chap_rec at {offset}: too short")
        idx, ctype, user, password, plen = _CHAP_REC.unpack_from(buf, offset)
        return cls(idx, ctype, _cstring(user), password[: min(plen, 256)])


def _cstring(raw: bytes) -> str:
    """A NUL-terminated C string field as text (bytes that are not UTF-8 are escaped)."""
    return raw.split(b"\0", 1)[0].decode("utf-8", "backslashreplace")


_CUSTOM: Final = Struct("=64sQ")
assert _CUSTOM.size == CUSTOM_STAT_SIZE


def decode_custom(buf: Buffer, offset: int, count: int) -> tuple[tuple[str, int], ...]:
    """*count* ``{char desc[64]; u64 value}`` entries from *offset* of *buf*."""
    if count < 0 or offset + count * _CUSTOM.size > len(buf):
        raise NetlinkDecodeError(f"{count} custom stats do not fit in {len(buf)} bytes")
    entries = []
    for i in range(count):
        desc, value = _CUSTOM.unpack_from(buf, offset + i * _CUSTOM.size)
        entries.append((_cstring(desc), int(value)))
    return tuple(entries)


def encode_custom(entries: Iterable[tuple[str, int]]) -> bytes:
    """The inverse of :func:`decode_custom` (used by tests and fakes)."""
    return b"".join(_CUSTOM.pack(desc.encode(), value) for desc, value in entries)


assert UEVENT_SIZE == R_OFFSET + 16
