"""iSCSI hosts (SCSI hosts with an iSCSI transport), their kernel ifaces, and transports.

* ``class/iscsi_host/hostH`` -- ``netdev``, ``hwaddress``, ``ipaddress``,
  ``initiatorname``, ``port_state``, ``port_speed`` (iscsi_tcp prints ``(null)`` for the
  ones it never set);
* ``class/scsi_host/hostH`` -- ``proc_name`` (the driver: ``iscsi_tcp``, ``qla4xxx``),
  ``state`` and the write-only ``scan``;
* ``devices/.../hostH/iscsi_iface/<ipv4|ipv6>-iface-H-N`` -- offload HBAs' network
  settings (``class/iscsi_iface/...``);
* ``bus/iscsi_flashnode/devices/flashnode_sess-H:N`` -- qla4xxx flash target entries;
* ``class/iscsi_transport/<name>/{handle,caps}`` -- a loaded transport.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from iscsikit.sysfs.attrs import Device, sort_names
from iscsikit.sysfs.scsi import ScsiHost

if TYPE_CHECKING:
    from iscsikit.sysfs.context import SysfsContext
    from iscsikit.sysfs.session import IscsiSession

__all__ = ["Flashnode", "HostIface", "IscsiHost", "IscsiTransport", "transport_of_proc_name"]


def transport_of_proc_name(proc_name: str) -> str:
    """iscsi_tcp -> tcp, iscsi_iser -> iser, qla4xxx -> qla4xxx (usr/iscsi_sysfs.c)."""
    return proc_name.removeprefix("iscsi_")


class IscsiTransport(Device):
    """``class/iscsi_transport/<name>``."""

    __slots__ = ()

    @property
    def handle(self) -> int | None:
        return self.attr_int("handle")

    @property
    def caps(self) -> int | None:
        text = self.attr("caps")
        if text is None:
            return None
        try:
            return int(text, 0)
        except ValueError:
            return None


class HostIface(Device):
    """An offload HBA's network interface, ``class/iscsi_iface/<kernel name>``."""

    __slots__ = ()

    @property
    def is_ipv6(self) -> bool:
        return not self.name.startswith("ipv4")


class Flashnode(Device):
    """A flash target entry: ``flashnode_sess-H:N`` (session attributes); the connection
    attributes are in the sibling ``flashnode_conn-H:N:0``."""

    __slots__ = ()

    @property
    def index(self) -> int:
        return int(self.name.rpartition(":")[2])

    def conn(self) -> Device:
        host, _, index = self.name.removeprefix("flashnode_sess-").partition(":")
        return Device(self.path.parent / f"flashnode_conn-{host}:{index}:0")


class IscsiHost(Device):
    """``class/iscsi_host/hostH``."""

    __slots__ = ("ctx",)

    def __init__(self, ctx: SysfsContext, path: Path) -> None:
        super().__init__(path)
        self.ctx = ctx

    @property
    def host_no(self) -> int:
        return int(self.name.removeprefix("host"))

    @property
    def scsi_host(self) -> ScsiHost:
        """``class/scsi_host/hostH``."""
        return ScsiHost(self.ctx, self.ctx.class_dir("scsi_host") / self.name)

    @property
    def proc_name(self) -> str | None:
        return self.scsi_host.attr("proc_name")

    @property
    def state(self) -> str | None:
        return self.scsi_host.attr("state")

    @property
    def transport_name(self) -> str | None:
        """The transport named by the driver (``proc_name`` without ``iscsi_``)."""
        proc = self.proc_name
        return None if proc is None else transport_of_proc_name(proc)

    def transport(self) -> IscsiTransport | None:
        """The loaded transport serving this host (None: unknown driver, not loaded)."""
        name = self.transport_name
        return None if name is None else self.ctx.transport(name)

    @property
    def ipaddress(self) -> str | None:
        return self.attr("ipaddress")

    @property
    def hwaddress(self) -> str | None:
        return self.attr("hwaddress")

    @property
    def netdev(self) -> str | None:
        return self.attr("netdev")

    @property
    def initiatorname(self) -> str | None:
        return self.attr("initiatorname")

    def ifaces(self) -> list[HostIface]:
        """The host's kernel ifaces (offload HBAs only), alphasort order."""
        base = self.device_path / "iscsi_iface"
        try:
            names = sort_names([p.name for p in base.iterdir()])
        except OSError:
            return []
        cls = self.ctx.class_dir("iscsi_iface")
        return [HostIface(cls / n if (cls / n).exists() else base / n) for n in names]

    def sessions(self) -> list[IscsiSession]:
        return [s for s in self.ctx.sessions() if s.host_no == self.host_no]

    def flashnodes(self) -> list[Flashnode]:
        base = self.ctx.sys_path / "bus/iscsi_flashnode/devices"
        prefix = f"flashnode_sess-{self.host_no}:"
        try:
            names = [p.name for p in base.iterdir() if p.name.startswith(prefix)]
        except OSError:
            return []
        names.sort(key=lambda n: int(n.rpartition(":")[2]) if n[-1].isdigit() else -1)
        return [Flashnode(base / n) for n in names]

    def scan(self) -> None:
        """Scan for new LUNs: ``- - -`` (every channel, target and LUN) to ``scan``."""
        self.scsi_host.scan()

    def dump(self) -> dict[str, Any]:
        out = super().dump()
        out["host_no"] = self.host_no
        out["scsi_host"] = self.scsi_host.attributes()
        out["ifaces"] = [i.dump() for i in self.ifaces()]
        return out
