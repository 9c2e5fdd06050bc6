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
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from iscsikit.sysfs.attrs import Device, c_int, sort_names

if TYPE_CHECKING:
    from iscsikit.sysfs.context import SysfsContext

__all__ = ["DHCP_ORIGIN", "BootTarget", "Ibft"]

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


class Ibft:
    """The boot firmware tables under ``<sys>/firmware``."""

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
    def readable(self) -> bool:
        """False when ``<sys>/firmware`` itself cannot be read (iscsiadm: err 22)."""
        return (self.ctx.sys_path / "firmware").is_dir()

    @property
    def present(self) -> bool:
        return bool(self.roots)

    def targets(self) -> list[BootTarget]:
        out: list[BootTarget] = []
        for root in self.roots:
            out.extend(self._targets(root))
        return out

    def _targets(self, root: Path) -> list[BootTarget]:
        entries = sort_names(os.listdir(root))
        nics = [Device(root / n) for n in entries if "ethernet" in n and (root / n).is_dir()]
        tgts = [Device(root / n) for n in entries if "target" in n and (root / n).is_dir()]
        initiator = Device(root / "initiator")
        subsys = "" if root.name == "ibft" else root.name
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

    def _netdev(self, nic: Device, mac: str) -> str | None:
        """The NIC's netdev; ``""`` when the firmware block has no ``device`` link (a NIC
        not tied to a PCI function: kept, without a netdev); None when the link leads to
        no netdev and no netdev owns the MAC (the target is then skipped)."""
        device = nic.path / "device"
        if not device.exists():
            return ""
        if device.exists():
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
