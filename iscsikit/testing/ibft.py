"""Building iBFT tables byte by byte, for the parser's tests and for qemu's ``-acpitable``.

:func:`build_ibft` writes an iBFT 1.03 table as boot firmware does (iPXE, a NIC's option
ROM): the ACPI header, the control structure at 48, the initiator, NIC and target
structures 8-byte aligned, the strings in a heap after them, and the checksum byte that
makes the table's byte sum zero.  The same bytes are what the real kernel's iscsi_ibft
reads in the VM tier (``qemu -acpitable file=...``), so the parser and the kernel can be
compared on one table.  ``corrupt=`` spoils one thing on purpose for the error tests.
"""

from __future__ import annotations

import ipaddress
import struct
from dataclasses import dataclass

__all__ = ["IbftNic", "IbftTarget", "build_ibft", "ip16", "vm_boot_table"]


@dataclass(frozen=True)
class IbftNic:
    """One NIC structure (``ethernetN``)."""

    index: int
    mac: str
    ip: str = ""
    prefix: int = 0
    origin: int = 1
    gateway: str = ""
    primary_dns: str = ""
    secondary_dns: str = ""
    dhcp: str = ""
    vlan: int = 0
    #: PCI bus << 8 | device << 3 | function: qemu's ``addr=03.0`` is 0x18.
    pci_bdf: int = 0x18
    hostname: str = ""
    flags: int = 3


@dataclass(frozen=True)
class IbftTarget:
    """One target structure (``targetN``)."""

    index: int
    name: str
    ip: str
    port: int = 3260
    lun: bytes = bytes(8)
    nic: int = 0
    chap_type: int = 0
    chap_name: str = ""
    chap_secret: str = ""
    rev_chap_name: str = ""
    rev_chap_secret: str = ""
    flags: int = 3


def ip16(address: str) -> bytes:
    """The 16-byte iBFT form: IPv6 as is, IPv4 as ``::ffff:a.b.c.d``, ``""`` all zero."""
    if not address:
        return bytes(16)
    ip = ipaddress.ip_address(address)
    if ip.version == 4:
        return bytes(10) + b"\xff\xff" + ip.packed
    return ip.packed


def _align(n: int) -> int:
    return (n + 7) & ~7


class _Heap:
    """Strings after the structures: (length, offset) pairs to put in them."""

    def __init__(self, start: int) -> None:
        self.start, self.data = start, bytearray()

    def add(self, text: str) -> tuple[int, int]:
        if not text:
            return 0, 0
        raw = text.encode()
        at = self.start + len(self.data)
        self.data += raw + b"\0"
        return len(raw), at


def build_ibft(
    initiator_name: str,
    nics: list[IbftNic],
    targets: list[IbftTarget],
    *,
    isns_server: str = "",
    oem_id: str = "ISCKIT",
    oem_table_id: str = "IBFTTEST",
    corrupt: str = "",
) -> bytes:
    """A complete table (at most two NICs and two targets, as the control structure
    has room for).  ``corrupt``: ``checksum``, ``signature``, ``revision``,
    ``control``, ``target-length`` (the first target's length field is wrong: the
    kernel skips that structure) or ``string-offset`` (a name points past the end)."""
    if len(nics) > 2 or len(targets) > 2:
        raise ValueError("an iBFT control structure names at most two NICs and two targets")
    init_at = _align(48 + 18)
    nic_at = [_align(init_at + 74) + i * _align(102) for i in range(len(nics))]
    tgt_base = _align(init_at + 74) + len(nics) * _align(102)
    tgt_at = [tgt_base + i * _align(54) for i in range(len(targets))]
    heap = _Heap(tgt_base + len(targets) * _align(54))
    body: dict[int, bytes] = {}

    name = heap.add(initiator_name)
    body[init_at] = (
        struct.pack("<BBHBB", 2, 1, 74, 0, 3)
        + ip16(isns_server) + bytes(48)
        + struct.pack("<HH", *name)
    )  # fmt: skip
    for at, nic in zip(nic_at, nics, strict=True):
        host = heap.add(nic.hostname)
        body[at] = (
            struct.pack("<BBHBB", 3, 1, 102, nic.index, nic.flags)
            + ip16(nic.ip) + bytes([nic.prefix, nic.origin])
            + ip16(nic.gateway) + ip16(nic.primary_dns) + ip16(nic.secondary_dns)
            + ip16(nic.dhcp) + struct.pack("<H", nic.vlan)
            + bytes.fromhex(nic.mac.replace(":", ""))
            + struct.pack("<HHH", nic.pci_bdf, *host)
        )  # fmt: skip
    for i, (at, tgt) in enumerate(zip(tgt_at, targets, strict=True)):
        strings = [heap.add(s) for s in (tgt.name, tgt.chap_name, tgt.chap_secret,
                                         tgt.rev_chap_name, tgt.rev_chap_secret)]  # fmt: skip
        if corrupt == "string-offset" and i == 0:
            strings[0] = (strings[0][0], 0xFFF0)
        length = 53 if corrupt == "target-length" and i == 0 else 54
        body[at] = (
            struct.pack("<BBHBB", 4, 1, length, tgt.index, tgt.flags)
            + ip16(tgt.ip) + struct.pack("<H", tgt.port) + tgt.lun.ljust(8, b"\0")[:8]
            + bytes([tgt.chap_type, tgt.nic])
            + b"".join(struct.pack("<HH", *s) for s in strings)
        )  # fmt: skip

    offsets = [nic_at[0] if nics else 0, tgt_at[0] if targets else 0,
               nic_at[1] if len(nics) > 1 else 0, tgt_at[1] if len(targets) > 1 else 0]  # fmt: skip
    control_id = 9 if corrupt == "control" else 1
    body[48] = struct.pack("<BBHBBHH4H", control_id, 1, 18, 0, 0, 0, init_at, *offsets)

    total = _align(heap.start + len(heap.data))
    table = bytearray(total)
    for at, raw in body.items():
        table[at : at + len(raw)] = raw
    table[heap.start : heap.start + len(heap.data)] = heap.data
    signature = b"IBFT" if corrupt == "signature" else b"iBFT"
    revision = 2 if corrupt == "revision" else 1
    table[0:36] = (
        signature + struct.pack("<IBB", total, revision, 0)
        + oem_id.encode().ljust(6, b" ")[:6] + oem_table_id.encode().ljust(8, b" ")[:8]
        + struct.pack("<I4sI", 1, b"ISKT", 1)
    )  # fmt: skip
    table[9] = (-sum(table)) & 0xFF
    if corrupt == "checksum":
        table[9] ^= 0x01
    return bytes(table)


# -- the VM tier's boot firmware -------------------------------------------------------------

#: The NIC the VM tier's guest gets for its iBFT (qemu ``-device virtio-net-pci`` at
#: slot 10 of bus 0, away from the slots qemu gives its other devices; no backend: nothing
#: can leave the guest through it).
VM_NIC_MAC = "52:54:00:1b:f7:01"
VM_NIC_SLOT = 10
VM_NIC_PCI_ADDR = f"{VM_NIC_SLOT:02x}.0"
VM_INITIATOR = "iqn.2026-12.test.iscsikit.vm:ibft-initiator"
VM_TARGET = "iqn.2026-12.test.iscsikit.vm:ibft-boot"
#: The initiator's and the target's addresses: both go on the guest's iBFT NIC.
VM_INITIATOR_IP = "10.98.0.2"
VM_TARGET_IP = "10.98.0.1"
VM_TARGET_PORT = 3260


def vm_boot_table() -> bytes:
    """The iBFT every VM-tier guest boots with (``-acpitable``): one NIC, one target with
    CHAP, LUN 1; tests/vm/test_ibft_boot.py brings up the target it names."""
    nic = IbftNic(0, VM_NIC_MAC, ip=VM_INITIATOR_IP, prefix=24, origin=1, pci_bdf=VM_NIC_SLOT << 3)
    target = IbftTarget(
        0, VM_TARGET, VM_TARGET_IP, port=VM_TARGET_PORT, lun=b"\x00\x01" + bytes(6),
        chap_type=1, chap_name="bootuser", chap_secret="bootsecret123",
    )  # fmt: skip
    return build_ibft(VM_INITIATOR, [nic], [target])
