"""``SysfsContext``: the entry point of the sysfs object model (pyudev's ``Context``).

Every path hangs from ``root`` (``/`` on a real system; a ``tmp_path`` holding a
:class:`~iscsikit.sysfs.fake.FakeSysfs` tree in tests; ``ISCSIKIT_ROOT`` through
:meth:`SysfsContext.from_paths`).  Listing follows open-iscsi: ``scandir`` with
``alphasort`` over the class directories, so ``session10`` comes before ``session2``.
The object modules (session, host, iBFT) are imported when an object is made, so that
``iscsikit-adm -m session`` on a machine without kernel sessions never loads them.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from iscsikit.sysfs.attrs import read_attr, sort_names

if TYPE_CHECKING:
    from iscsikit.config.paths import Paths
    from iscsikit.sysfs.host import IscsiHost, IscsiTransport
    from iscsikit.sysfs.ibft import Ibft
    from iscsikit.sysfs.scsi import BlockDevice, ScsiDevice, ScsiHost
    from iscsikit.sysfs.session import IscsiConnection, IscsiSession

__all__ = ["SysfsContext"]

_SESSION = re.compile(r"^session(\d+)$")
_HOST = re.compile(r"^host(\d+)$")
_CONN = re.compile(r"^connection(\d+):(\d+)$")
_SESSION_IN_PATH = re.compile(r"(?:^|/)session(\d+)(?:/|$)")


class SysfsContext:
    """The iSCSI objects under ``<root>/sys``."""

    __slots__ = ("root", "sys_path")

    def __init__(self, root: Path = Path("/")) -> None:
        self.root = Path(root)
        self.sys_path = self.root / "sys"

    @classmethod
    def from_paths(cls, paths: Paths) -> SysfsContext:
        """The context for an iscsikit :class:`~iscsikit.config.paths.Paths` (its root)."""
        return cls(paths.root)

    def class_dir(self, name: str) -> Path:
        return self.sys_path / "class" / name

    def _names(self, directory: Path, pattern: re.Pattern[str]) -> list[str]:
        try:
            names = os.listdir(directory)
        except OSError:
            return []
        return sort_names([n for n in names if pattern.match(n)])

    # -- sessions ---------------------------------------------------------------------
    def sessions(self) -> list[IscsiSession]:
        """Every kernel session, in iscsiadm's (alphasort) order."""
        base = self.class_dir("iscsi_session")
        names = self._names(base, _SESSION)
        if not names:
            return []
        from iscsikit.sysfs.session import IscsiSession

        return [IscsiSession(self, base / n) for n in names]

    def session(self, sid: int) -> IscsiSession | None:
        from iscsikit.sysfs.session import IscsiSession

        found = IscsiSession(self, self.class_dir("iscsi_session") / f"session{sid}")
        return found if found.exists else None

    def sid_from_path(self, path: str) -> int | None:
        """The session a sysfs path belongs to (``iscsiadm -r /sys/...``): the path itself
        or its nearest ``sessionN`` ancestor.  ``/sys`` at the front means this root's sys."""
        text = path
        if text == "/sys" or text.startswith("/sys/"):
            text = (self.sys_path / text[5:]).as_posix() if len(text) > 4 else str(self.sys_path)
        p = Path(text)
        if not (p.is_dir() or p.is_symlink()):
            return None
        matches = _SESSION_IN_PATH.findall(p.resolve().as_posix()) or _SESSION_IN_PATH.findall(
            p.as_posix()
        )
        return int(matches[-1]) if matches else None

    def connections(self) -> list[IscsiConnection]:
        from iscsikit.sysfs.session import IscsiConnection

        base = self.class_dir("iscsi_connection")
        return [IscsiConnection(base / n) for n in self._names(base, _CONN)]

    # -- hosts and transports ---------------------------------------------------------
    def hosts(self) -> list[IscsiHost]:
        """Every iSCSI host, in iscsiadm's (alphasort) order."""
        from iscsikit.sysfs.host import IscsiHost

        base = self.class_dir("iscsi_host")
        return [IscsiHost(self, base / n) for n in self._names(base, _HOST)]

    def host(self, host_no: int) -> IscsiHost | None:
        from iscsikit.sysfs.host import IscsiHost

        found = IscsiHost(self, self.class_dir("iscsi_host") / f"host{host_no}")
        return found if found.exists else None

    def host_by_hwaddress(self, hwaddress: str) -> IscsiHost | None:
        """The host whose ``hwaddress`` is ``hwaddress`` (case-insensitive)."""
        want = hwaddress.lower()
        return next((h for h in self.hosts() if (h.hwaddress or "").lower() == want), None)

    def iscsi_transports(self) -> list[IscsiTransport]:
        from iscsikit.sysfs.host import IscsiTransport

        base = self.class_dir("iscsi_transport")
        try:
            names = sort_names(os.listdir(base))
        except OSError:
            return []
        return [IscsiTransport(base / n) for n in names]

    def transport(self, name: str) -> IscsiTransport | None:
        """The loaded transport ``name`` (it must have a ``handle``), or None."""
        from iscsikit.sysfs.host import IscsiTransport

        found = IscsiTransport(self.class_dir("iscsi_transport") / name)
        return found if found.exists and found.handle else None

    # -- the SCSI mid-layer and block devices ------------------------------------------
    def scsi_hosts(self) -> list[ScsiHost]:
        """Every SCSI host (iSCSI or not), alphasort order."""
        from iscsikit.sysfs.scsi import ScsiHost

        base = self.class_dir("scsi_host")
        return [ScsiHost(self, base / n) for n in self._names(base, _HOST)]

    def scsi_host(self, host_no: int) -> ScsiHost | None:
        from iscsikit.sysfs.scsi import ScsiHost

        found = ScsiHost(self, self.class_dir("scsi_host") / f"host{host_no}")
        return found if found.exists else None

    def scsi_devices(self) -> list[ScsiDevice]:
        """Every SCSI device ``H:C:T:L`` (``bus/scsi/devices``), alphasort order."""
        from iscsikit.sysfs.scsi import HCTL, ScsiDevice

        base = self.sys_path / "bus/scsi/devices"
        return [ScsiDevice(base / n) for n in self._names(base, HCTL)]

    def scsi_device(self, host_no: int, channel: int, target: int, lun: int) -> ScsiDevice | None:
        from iscsikit.sysfs.scsi import ScsiDevice

        path = self.sys_path / "bus/scsi/devices" / f"{host_no}:{channel}:{target}:{lun}"
        return ScsiDevice(path) if path.exists() else None

    def block_device(self, name: str) -> BlockDevice | None:
        """``class/block/<name>`` (``sdb``; a partition ``sdb1`` too), None if absent."""
        from iscsikit.sysfs.scsi import BlockDevice

        found = BlockDevice(self.class_dir("block") / name)
        return found if found.exists else None

    @property
    def transport_class_version(self) -> str | None:
        """``scsi_transport_iscsi``'s module version (``iscsiadm -m session -P 3``)."""
        return read_attr(self.sys_path / "module/scsi_transport_iscsi/version")

    # -- network and firmware ---------------------------------------------------------
    def netdev_by_mac(self, mac: str) -> str | None:
        """The network interface whose address is ``mac`` (``class/net/*/address``)."""
        want = mac.lower()
        base = self.class_dir("net")
        for name in self._names(base, re.compile(r".")):
            if (read_attr(base / name / "address") or "").lower() == want:
                return name
        return None

    def ibft(self) -> Ibft:
        """The boot firmware tables (``Ibft.present`` is False when there are none)."""
        from iscsikit.sysfs.ibft import Ibft

        return Ibft(self)

    def dump(self) -> dict[str, Any]:
        """Everything iSCSI this context sees, for ``--output json`` and bug reports."""
        return {
            "root": str(self.root),
            "transports": [t.dump() for t in self.iscsi_transports()],
            "hosts": [h.dump() for h in self.hosts()],
            "sessions": [s.dump() for s in self.sessions()],
            "ibft": [t.dump() for t in self.ibft().targets()],
        }

    def __repr__(self) -> str:
        return f"SysfsContext({str(self.root)!r})"
