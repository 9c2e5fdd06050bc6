"""The raw ACPI iBFT (iSCSI Boot Firmware Table, version 1.03), read without the kernel.

The kernel's ``iscsi_ibft`` module turns the table into ``/sys/firmware/ibft``; when the
module is not loaded, the table is still in ``/sys/firmware/acpi/tables/iBFT``.
:func:`parse_ibft` reads those bytes into the blocks the module would export, with the
same attribute names, the same texts and the same visibility rules
(drivers/firmware/iscsi_ibft.c: ``ibft_attr_show_*`` and ``ibft_check_*_for``), so one
reader (:class:`iscsikit.sysfs.ibft.Ibft`) serves both sources.

Layout (all little-endian, offsets from the table's start): the ACPI header (36 bytes,
signature ``iBFT``, revision 1, a checksum byte making the table's byte sum 0) and 12
reserved bytes; the control structure at 48 (id 1: the offsets of the initiator, NIC 0,
target 0, NIC 1, target 1); each structure starts with id, version, length (u16), index
and flags (bit 0: valid, bit 1: selected for boot).  Addresses are 16-byte IPv6, IPv4 as
``::ffff:a.b.c.d``; strings are length + offset into the table.

A table the kernel would refuse (wrong signature or revision, bad checksum, a bad control
structure) raises :class:`IbftError`; a structure with a wrong id or length is skipped,
as the kernel skips it.  Nothing here reads past the table: an offset or a string outside
it is an :class:`IbftError` too (the kernel would read beyond the table).
"""

from __future__ import annotations

import ipaddress
import struct
from dataclasses import dataclass, field

from iscsikit.errors import IscsiErr, IscsiError

__all__ = ["IbftBlock", "IbftError", "IbftTable", "parse_ibft"]

SIGNATURE = b"iBFT"
#: The ACPI header and its 12 reserved bytes: the control structure follows.
CONTROL_OFFSET = 48
_HDR = struct.Struct("<BBHBB")
#: Structure id -> (sysfs block prefix, the length the kernel insists on).
_KINDS = {2: ("initiator", 74), 3: ("ethernet", 102), 4: ("target", 54)}
_CONTROL_ID, _CONTROL_LEN = 1, 18
_NULL_V4_MAPPED = bytes(10) + b"\xff\xff" + bytes(4)


class IbftError(IscsiError):
    """The raw iBFT is not a table the kernel would accept, or points outside itself."""

    code = IscsiErr.NO_OBJS_FOUND


@dataclass
class IbftBlock:
    """One ``initiator`` / ``ethernetN`` / ``targetN`` block as iscsi_ibft exports it."""

    name: str
    attrs: dict[str, str] = field(default_factory=dict)
    #: An ethernet block's PCI bus/device/function (the ``device`` link's target).
    pci_bdf: int | None = None


@dataclass
class IbftTable:
    """The blocks of one table, in the control structure's order."""

    oem_id: str
    oem_table_id: str
    blocks: list[IbftBlock]

    def block(self, name: str) -> IbftBlock | None:
        return next((b for b in self.blocks if b.name == name), None)


def parse_ibft(data: bytes) -> IbftTable:
    """The blocks of the raw table ``data`` (the bytes of ``acpi/tables/iBFT``)."""
    if len(data) < CONTROL_OFFSET + _CONTROL_LEN or data[:4] != SIGNATURE:
        raise IbftError("not an iBFT (no 'iBFT' signature or too short)")
    (length,) = struct.unpack_from("<I", data, 4)
    if length > len(data) or length < CONTROL_OFFSET + _CONTROL_LEN:
        raise IbftError(f"iBFT length {length} does not fit the {len(data)} bytes read")
    if data[8] != 1:
        raise IbftError(f"iBFT revision {data[8]} (only revision 1 is defined)")
    table = data[:length]
    if sum(table) & 0xFF:
        raise IbftError(f"iBFT has an incorrect checksum (0x{sum(table) & 0xFF:x})")
    cid, _ver, clen, cindex, _flags = _HDR.unpack_from(table, CONTROL_OFFSET)
    if cid != _CONTROL_ID or clen < _CONTROL_LEN or cindex != 0:
        raise IbftError("iBFT control structure is invalid")
    end = min(CONTROL_OFFSET + clen, length)
    blocks = []
    for at in range(CONTROL_OFFSET + 8, end - 1, 2):
        (offset,) = struct.unpack_from("<H", table, at)
        if offset and offset < length:
            block = _structure(table, offset)
            if block is not None:
                blocks.append(block)
    return IbftTable(
        oem_id=_text(table[10:16]),
        oem_table_id=_text(table[16:24]),
        blocks=blocks,
    )


def _structure(table: bytes, offset: int) -> IbftBlock | None:
    if offset + _HDR.size > len(table):
        raise IbftError(f"iBFT structure at {offset} runs past the table's end")
    sid, _ver, slen, index, flags = _HDR.unpack_from(table, offset)
    kind = _KINDS.get(sid)
    if kind is None or slen != kind[1]:
        return None  # reserved, control, extensions, unknown, or a wrong length: skipped
    if offset + slen > len(table):
        raise IbftError(f"iBFT {kind[0]} structure at {offset} runs past the table's end")
    body = table[offset : offset + slen]
    read = _Reader(table, body)
    name = kind[0] if sid == 2 else f"{kind[0]}{index}"
    block = IbftBlock(name, {"index": str(index), "flags": str(flags)})
    if sid == 2:
        _initiator(read, block)
    elif sid == 3:
        _nic(read, block)
    else:
        _target(read, block)
    return block


class _Reader:
    """Fields of one structure (offsets within it) and strings of the table."""

    def __init__(self, table: bytes, body: bytes) -> None:
        self.table, self.body = table, body

    def u8(self, at: int) -> int:
        return self.body[at]

    def u16(self, at: int) -> int:
        return int(struct.unpack_from("<H", self.body, at)[0])

    def ip(self, at: int) -> bytes:
        return self.body[at : at + 16]

    def string(self, at: int) -> tuple[int, str]:
        """(length, text) of the length/offset pair at ``at``: ``"%.*s"`` of the table."""
        length, offset = self.u16(at), self.u16(at + 2)
        if length and offset + length > len(self.table):
            raise IbftError(f"iBFT string at {offset} (+{length}) runs past the table's end")
        return length, _text(self.table[offset : offset + length]) if length else ""

    def optional_ip(self, block: IbftBlock, key: str, at: int) -> None:
        raw = self.ip(at)
        if raw not in (bytes(16), _NULL_V4_MAPPED):
            block.attrs[key] = _ip(raw)


def _initiator(read: _Reader, block: IbftBlock) -> None:
    for key, at in (("isns-server", 6), ("slp-server", 22), ("pri-radius-server", 38),
                    ("sec-radius-server", 54)):  # fmt: skip
        read.optional_ip(block, key, at)
    length, name = read.string(70)
    if length:
        block.attrs["initiator-name"] = name


def _nic(read: _Reader, block: IbftBlock) -> None:
    read.optional_ip(block, "ip-addr", 6)
    prefix = read.u8(22)
    if prefix:
        block.attrs["prefix-len"] = str(prefix)
        block.attrs["subnet-mask"] = str(
            ipaddress.IPv4Network(f"0.0.0.0/{min(prefix, 32)}").netmask
        )
    block.attrs["origin"] = str(read.u8(23))
    for key, at in (("gateway", 24), ("primary-dns", 40), ("secondary-dns", 56), ("dhcp", 72)):
        read.optional_ip(block, key, at)
    block.attrs["vlan"] = str(read.u16(88))
    block.attrs["mac"] = ":".join(f"{b:02x}" for b in read.body[90:96])
    block.pci_bdf = read.u16(96)
    if read.u16(100):  # the kernel shows the hostname when its offset is set
        block.attrs["hostname"] = read.string(98)[1]


def _target(read: _Reader, block: IbftBlock) -> None:
    block.attrs["ip-addr"] = _ip(read.ip(6))
    block.attrs["port"] = str(read.u16(22))
    # "%x" a byte, unpadded, as iscsi_ibft prints it (LUN 1 in byte 1 reads "01000000").
    block.attrs["lun"] = "".join(f"{b:x}" for b in read.body[24:32])
    block.attrs["chap-type"] = str(read.u8(32))
    block.attrs["nic-assoc"] = str(read.u8(33))
    for key, at in (("target-name", 34), ("chap-name", 38), ("chap-secret", 42),
                    ("rev-chap-name", 46), ("rev-chap-name-secret", 50)):  # fmt: skip
        block.attrs[key] = read.string(at)[1]
    # Visibility: a name when its length is set; both CHAP secrets follow their names.
    for key, shown_by in (("target-name", 34), ("chap-name", 38), ("chap-secret", 38),
                          ("rev-chap-name", 46), ("rev-chap-name-secret", 46)):  # fmt: skip
        if not read.u16(shown_by):
            del block.attrs[key]


def _ip(raw: bytes) -> str:
    """``%pI4`` for ``::ffff:a.b.c.d``, else ``%pI6`` (full, zero-padded groups)."""
    if raw[:12] == _NULL_V4_MAPPED[:12]:
        return str(ipaddress.IPv4Address(raw[12:]))
    return ":".join(raw[i : i + 2].hex() for i in range(0, 16, 2))


def _text(raw: bytes) -> str:
    """A C string of at most ``len(raw)`` bytes (``%.*s`` stops at a NUL)."""
    return raw.split(b"\0", 1)[0].decode("utf-8", errors="surrogateescape")
