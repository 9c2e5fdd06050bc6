"""Boot firmware tables: iBFT (``firmware/ibft``) and offload HBAs' ``firmware/iscsi_boot*``.

drivers/firmware/iscsi_ibft.c exports one ``initiator`` block, ``ethernetN`` blocks
(the boot NICs) and ``targetN`` blocks; HBAs (be2iscsi, qla4xxx) export the same
attributes under ``firmware/iscsi_bootH``.  :meth:`Ibft.targets` turns them into one
:class:`BootTarget` per usable target, exactly as open-iscsi's
``fwparam_sysfs_get_targets`` does (usr/fwparam_ibft/fwparam_sysfs.c):

* a target or NIC block counts only if its ``flags`` is non-zero;
* a target needs ``target-name`` and ``ip-addr``; ``port`` defaults to 3260;
* its NIC is the ``ethernetN`` whose ``index`` equals the target's ``nic-assoc``, and
  needs a ``mac``; the NIC's netdev is the ``device/net/<if>`` (or old ``device/net:<if>``)
  link, else the netdev owning that MAC -- a target whose NIC has a ``device`` link but
  neither is skipped; a NIC without ``device`` link keeps its target, with no netdev;
* a missing ``prefix-len`` or ``origin`` reads as -1 (and is printed so, as iscsiadm does).
"""

from __future__ import annotations

import contextlib
import logging
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from iscsikit.sysfs.attrs import Device, c_int, sort_names
from iscsikit.sysfs.ibft_table import IbftError, parse_ibft

if TYPE_CHECKING:
    from iscsikit.sysfs.context import SysfsContext

__all__ = ["DHCP_ORIGIN", "BootTarget", "Ibft"]

log = logging.getLogger(__name__)

#: ``origin`` value meaning the address came from DHCP (IBFT_IP_PREFIX_ORIGIN_DHCP).
DHCP_ORIGIN = 3
#: Offload NIC drivers and the iSCSI transport serving them (libopeniscsiusr's table).
_OFFLOAD_DRIVERS = {
    "bnx2": "bnx2i",
    "bnx2x": "bnx2i",
    "cxgb3": "cxgb3i",
    "cxgb4": "cxgb4i",
    "qede": "qedi",
    "be2net": "be2iscsi",
}


@dataclass(frozen=True, slots=True)
class BootTarget:
    """One target of the boot firmware, with its NIC and initiator (open-iscsi's
    ``struct boot_context``).  Empty strings are values the firmware did not give."""

    initiator_name: str
    isid: str
    target_name: str
    target_address: str
    target_port: int
    lun: str
    chap_name: str
    chap_password: str
    chap_name_in: str
    chap_password_in: str
    mac: str
    netdev: str
    ipaddress: str
    prefix_len: int
    subnet_mask: str
    gateway: str
    primary_dns: str
    secondary_dns: str
    vlan: str
    dhcp: str
    origin: int
    transport: str
    boot_root: str
    boot_nic: str
    boot_target: str
    #: ``iscsi_bootH`` for an HBA's table ("" for the iBFT).
    scsi_host_name: str = ""

    @property
    def uses_dhcp(self) -> bool:
        """fw_entry.c: origin 3, or a DHCP server address other than 0.0.0.0."""
        return self.origin == DHCP_ORIGIN or self.dhcp not in ("", "0.0.0.0")

    def dump(self) -> dict[str, Any]:
        return asdict(self)


def _int(value: int | None) -> int:
    return -1 if value is None else value


@dataclass
class _Block:
    """One firmware block (``initiator``, ``ethernetN``, ``targetN``) from either source."""

    name: str
    attrs: dict[str, str]
    #: An ethernet block's PCI function (its ``device`` link), None when it has none.
    device: Path | None = None

    def attr(self, key: str) -> str | None:
        return self.attrs.get(key)

    def attr_int(self, key: str, default: int | None = None) -> int | None:
        return c_int(self.attrs.get(key), default)


class Ibft:
    """The boot firmware tables under ``<sys>/firmware``: the iscsi_ibft module's blocks,
    or, when the module is not loaded, the raw ACPI table (:mod:`.ibft_table`) read the
    way the module would export it."""

    __slots__ = ("ctx",)

    def __init__(self, ctx: SysfsContext) -> None:
        self.ctx = ctx

    @property
    def roots(self) -> list[Path]:
        """``firmware/ibft`` then each ``firmware/iscsi_boot*`` that has an initiator."""
        fw = self.ctx.sys_path / "firmware"
        found = [fw / "ibft"]
        with contextlib.suppress(OSError):
            found += [fw / n for n in sort_names(os.listdir(fw)) if n.startswith("iscsi_boot")]
        return [r for r in found if (r / "initiator").exists()]

    @property
    def acpi_table(self) -> Path:
        """Where ACPI exports the raw iBFT (readable without iscsi_ibft)."""
        return self.ctx.sys_path / "firmware/acpi/tables/iBFT"

    @property
    def readable(self) -> bool:
        """False when ``<sys>/firmware`` itself cannot be read (iscsiadm: err 22)."""
        return (self.ctx.sys_path / "firmware").is_dir()

    @property
    def present(self) -> bool:
        return bool(self.roots) or self._raw() is not None

    def targets(self) -> list[BootTarget]:
        out: list[BootTarget] = []
        roots = self.roots
        for root in roots:
            out.extend(
                self._targets(self._sysfs_blocks(root), "" if root.name == "ibft" else root.name)
            )
        if not any(r.name == "ibft" for r in roots):
            raw = self._raw()
            if raw is not None:
                out.extend(self._targets(raw, ""))
        return out

    def _sysfs_blocks(self, root: Path) -> list[_Block]:
        out = []
        for name in sort_names(os.listdir(root)):
            path = root / name
            if path.is_dir() and not path.is_symlink():
                device = path / "device"
                out.append(
                    _Block(name, Device(path).attributes(), device if device.exists() else None)
                )
        return out

    def _raw(self) -> list[_Block] | None:
        """The raw table's blocks; None without a table, or for one the kernel refuses
        (then ``-m fw`` finds nothing, as iscsiadm does when iscsi_ibft refused it)."""
        try:
            data = self.acpi_table.read_bytes()
        except OSError:
            return None
        try:
            table = parse_ibft(data)
        except IbftError as exc:
            log.warning("%s: %s", self.acpi_table, exc)
            return None
        out = []
        for block in table.blocks:
            device = None
            if block.pci_bdf is not None:
                bdf = block.pci_bdf
                pci = f"0000:{bdf >> 8:02x}:{(bdf >> 3) & 0x1F:02x}.{bdf & 7}"
                found = self.ctx.sys_path / "bus/pci/devices" / pci
                device = found if found.exists() else None
            out.append(_Block(block.name, dict(block.attrs), device))
        return out if any(b.name == "initiator" for b in out) else None

    def _targets(self, blocks: list[_Block], subsys: str) -> list[BootTarget]:
        nics = [b for b in blocks if "ethernet" in b.name]
        tgts = [b for b in blocks if "target" in b.name]
        initiator = next((b for b in blocks if b.name == "initiator"), _Block("initiator", {}))
        out: list[BootTarget] = []
        for tgt in tgts:
            if not tgt.attr_int("flags", 0):
                continue
            name, address = tgt.attr("target-name"), tgt.attr("ip-addr")
            assoc = tgt.attr_int("nic-assoc")
            if name is None or address is None or assoc is None:
                continue
            nic = next((n for n in nics if n.attr_int("index") == assoc), None)
            if nic is None or not nic.attr_int("flags", 0):
                continue
            mac = nic.attr("mac")
            if mac is None:
                continue
            netdev = self._netdev(nic, mac) if not subsys else ""
            if netdev is None:
                continue
            out.append(
                BootTarget(
                    initiator_name=initiator.attr("initiator-name") or "",
                    isid=initiator.attr("isid") or "",
                    target_name=name,
                    target_address=address,
                    target_port=c_int(tgt.attr("port"), 3260) or 0,
                    lun=tgt.attr("lun") or "",
                    chap_name=tgt.attr("chap-name") or "",
                    chap_password=tgt.attr("chap-secret") or "",
                    chap_name_in=tgt.attr("rev-chap-name") or "",
                    chap_password_in=tgt.attr("rev-chap-name-secret") or "",
                    mac=mac,
                    netdev=netdev,
                    ipaddress=nic.attr("ip-addr") or "",
                    prefix_len=_int(nic.attr_int("prefix-len", -1)),
                    subnet_mask=nic.attr("subnet-mask") or "",
                    gateway=nic.attr("gateway") or "",
                    primary_dns=nic.attr("primary-dns") or "",
                    secondary_dns=nic.attr("secondary-dns") or "",
                    vlan=nic.attr("vlan") or "",
                    dhcp=nic.attr("dhcp") or "",
                    origin=_int(nic.attr_int("origin", -1)),
                    transport=self._transport(netdev, mac, subsys),
                    boot_root=subsys or "ibft",
                    boot_nic=nic.name,
                    boot_target=tgt.name,
                    scsi_host_name=subsys,
                )
            )
        return out

    def _netdev(self, nic: _Block, mac: str) -> str | None:
        """The NIC's netdev; ``""`` when the firmware block has no ``device`` link (a NIC
        not tied to a PCI function: kept, without a netdev); None when the link leads to
        no netdev and no netdev owns the MAC (the target is then skipped)."""
        device = nic.device
        if device is None:
            return ""
        links = sort_names([p.name for p in device.iterdir() if p.name.startswith("net:")])
        if links:
            return links[0].removeprefix("net:")
        net = device / "net"
        if net.is_dir():
            names = sort_names(os.listdir(net))
            if names:
                return names[0]
        return self.ctx.netdev_by_mac(mac)

    def _transport(self, netdev: str, mac: str, subsys: str) -> str:
        """``tcp`` unless an offload HBA serves this NIC (iface_setup_from_boot_context)."""
        if subsys:
            host_no = c_int(subsys.removeprefix("iscsi_boot"))
            host = self.ctx.host(host_no) if host_no is not None else None
            name = host.transport_name if host is not None else None
            return name or "tcp"
        driver = self.ctx.class_dir("net") / netdev / "device" / "driver"
        transport = _OFFLOAD_DRIVERS.get(driver.resolve().name) if driver.exists() else None
        if transport is None:
            return "tcp"
        matched = any((h.hwaddress or "").lower() == mac.lower() for h in self.ctx.hosts())
        return transport if matched else "tcp"
