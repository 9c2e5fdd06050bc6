"""Kernel iSCSI sessions, their connections and the SCSI devices (LUNs) under them.

The kernel's layout (drivers/scsi/scsi_transport_iscsi.c, iscsi_tcp):

* ``class/iscsi_session/sessionS`` -> ``devices/.../hostH/sessionS/iscsi_session/sessionS``
  with the session attributes (``targetname``, ``tpgt``, ``state``, ``creator``,
  ``ifacename``, CHAP values, timeouts, negotiated session parameters);
* ``class/iscsi_connection/connectionS:0`` with the lead connection's attributes
  (``address``, ``port``, ``persistent_*``, digests, data segment lengths);
* ``devices/.../hostH/sessionS/targetH:0:T/H:0:T:L`` the LUNs, each with ``state`` and
  ``block/sdX`` once a disk driver bound it (the objects are in
  :mod:`iscsikit.sysfs.scsi`; ``ScsiDevice`` is re-exported here).

Attribute names are the kernel's; parsing follows open-iscsi (see
:mod:`iscsikit.sysfs.attrs`).  This module reads, except :meth:`IscsiSession.rescan`,
which writes to the files the kernel provides for that.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from iscsikit.sysfs.attrs import Device, sort_names
from iscsikit.sysfs.scsi import TARGET, BlockDevice, ScsiDevice, ScsiTarget

if TYPE_CHECKING:
    from iscsikit.sysfs.context import SysfsContext
    from iscsikit.sysfs.host import IscsiHost

__all__ = ["IscsiConnection", "IscsiSession", "ScsiDevice"]

_HOST_OF_SESSION = re.compile(r"/host(\d+)/session\d+(?:/|$)")


class IscsiConnection(Device):
    """``class/iscsi_connection/connectionS:C``."""

    __slots__ = ()

    @property
    def sid(self) -> int:
        return int(self.name.removeprefix("connection").split(":")[0])

    @property
    def cid(self) -> int:
        return int(self.name.split(":")[1])

    @property
    def address(self) -> str | None:
        return self.attr("address")

    @property
    def port(self) -> int | None:
        return self.attr_int("port")

    @property
    def persistent_address(self) -> str | None:
        return self.attr("persistent_address")

    @property
    def persistent_port(self) -> int | None:
        return self.attr_int("persistent_port")


class IscsiSession(Device):
    """``class/iscsi_session/sessionS``: one kernel session."""

    __slots__ = ("ctx",)

    def __init__(self, ctx: SysfsContext, path: Path) -> None:
        super().__init__(path)
        self.ctx = ctx

    @property
    def sid(self) -> int:
        return int(self.name.removeprefix("session"))

    @property
    def targetname(self) -> str | None:
        return self.attr("targetname")

    @property
    def tpgt(self) -> int | None:
        return self.attr_int("tpgt")

    @property
    def state(self) -> str | None:
        """``LOGGED_IN``, ``FAILED`` or ``FREE``."""
        return self.attr("state")

    @property
    def creator(self) -> int | None:
        """The pid of the process that created the session; -1 if the kernel (an HBA's
        flash) did, None if the kernel does not say."""
        return self.attr_int("creator")

    @property
    def is_flash(self) -> bool:
        """open-iscsi's "flash" vs "non-flash" (``creator`` is -1)."""
        return self.creator == -1

    @property
    def ifacename(self) -> str | None:
        return self.attr("ifacename")

    @property
    def initiatorname(self) -> str | None:
        return self.attr("initiatorname")

    def connection(self, cid: int = 0) -> IscsiConnection | None:
        conn = IscsiConnection(
            self.ctx.class_dir("iscsi_connection") / f"connection{self.sid}:{cid}"
        )
        return conn if conn.exists else None

    @property
    def host_no(self) -> int | None:
        """The SCSI host this session lives on: the ``hostH`` directory above it."""
        m = _HOST_OF_SESSION.search(self.device_path.as_posix())
        return int(m.group(1)) if m else None

    def host(self) -> IscsiHost | None:
        host_no = self.host_no
        return None if host_no is None else self.ctx.host(host_no)

    def targets(self) -> list[ScsiTarget]:
        """The session's SCSI targets ``targetH:C:T`` (one for iscsi_tcp), alphasort order."""
        dev = self.device_path
        try:
            names = sort_names([p.name for p in dev.iterdir() if TARGET.match(p.name)])
        except OSError:
            return []
        return [ScsiTarget(dev / n) for n in names]

    def scsi_devices(self) -> list[ScsiDevice]:
        """The LUNs of the session's (first) SCSI target, in alphasort order, as iscsiadm's
        ``iscsi_sysfs_for_each_device`` walks them."""
        targets = self.targets()
        return targets[0].devices() if targets else []

    def block_devices(self) -> list[BlockDevice]:
        """The disks of the session's LUNs (LUNs no disk driver bound are left out)."""
        return [b for b in (d.block() for d in self.scsi_devices()) if b is not None]

    def rescan(self) -> list[tuple[Path, OSError]]:
        """What ``iscsiadm -R`` does (usr/iscsiadm.c ``rescan_portal``): ``1`` to each
        LUN's ``rescan`` (the kernel re-reads its capacity: an online resize), then
        ``- - -`` to the host's ``scan`` (new LUNs).

        As in iscsiadm, a write that fails stops nothing and is no error: the failures
        are returned (control file, error) for the caller to report, and a LUN that went
        away meanwhile is not one (iscsiadm's ``lstat`` fails silently there)."""
        failed: list[tuple[Path, OSError]] = []
        controls: list[tuple[Path, Callable[[], None]]] = [
            (d.path / "rescan", d.rescan) for d in self.scsi_devices()
        ]
        host = self.host()
        if host is not None:
            controls.append((host.scsi_host.path / "scan", host.scan))
        for control, write in controls:
            try:
                write()
            except FileNotFoundError:
                continue
            except OSError as exc:
                failed.append((control, exc))
        return failed

    def dump(self) -> dict[str, Any]:
        out = super().dump()
        conn = self.connection()
        out["sid"] = self.sid
        out["host_no"] = self.host_no
        out["connection"] = conn.dump() if conn is not None else None
        out["devices"] = [d.dump() for d in self.scsi_devices()]
        return out
