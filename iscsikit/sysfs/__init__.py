"""An object model over ``/sys``: kernel iSCSI sessions, connections, hosts, transports,
SCSI devices and the boot firmware table -- with the filesystem root as an argument.

``SysfsContext(root)`` is the entry point (pyudev's ``Context``, rtslib's ``RTSRoot``)::

    ctx = SysfsContext()                 # the running kernel
    ctx = SysfsContext(tmp_path)         # a tree written by iscsikit.sysfs.fake.FakeSysfs
    for session in ctx.sessions():
        print(session.sid, session.targetname, session.connection().address)

Modules: :mod:`~iscsikit.sysfs.attrs` (reading and parsing attributes as open-iscsi
does), :mod:`~iscsikit.sysfs.session`, :mod:`~iscsikit.sysfs.host`,
:mod:`~iscsikit.sysfs.scsi` (SCSI hosts, targets, LUNs and their disks),
:mod:`~iscsikit.sysfs.ibft`, :mod:`~iscsikit.sysfs.context`,
:mod:`~iscsikit.sysfs.udev` (device nodes and /dev/disk/by-path names through pyudev,
with a rooted fallback; imported only on demand) and :mod:`~iscsikit.sysfs.fake`
(kernel-shaped trees for tests).  Nothing here talks to a daemon or to netlink; only
the rescan, scan and delete methods write, to the control files the kernel provides.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from iscsikit.sysfs.attrs import Device, c_int, read_attr
    from iscsikit.sysfs.context import SysfsContext
    from iscsikit.sysfs.host import Flashnode, HostIface, IscsiHost, IscsiTransport
    from iscsikit.sysfs.ibft import BootTarget, Ibft
    from iscsikit.sysfs.scsi import BlockDevice, ScsiDevice, ScsiHost, ScsiTarget
    from iscsikit.sysfs.session import IscsiConnection, IscsiSession

# Names load on first use (PEP 562): ``iscsikit-adm -m session`` needs only the context,
# and a machine without kernel sessions never needs the session, host or iBFT modules.
_LAZY = {
    "Device": "iscsikit.sysfs.attrs",
    "c_int": "iscsikit.sysfs.attrs",
    "read_attr": "iscsikit.sysfs.attrs",
    "SysfsContext": "iscsikit.sysfs.context",
    "Flashnode": "iscsikit.sysfs.host",
    "HostIface": "iscsikit.sysfs.host",
    "IscsiHost": "iscsikit.sysfs.host",
    "IscsiTransport": "iscsikit.sysfs.host",
    "BootTarget": "iscsikit.sysfs.ibft",
    "Ibft": "iscsikit.sysfs.ibft",
    "IscsiConnection": "iscsikit.sysfs.session",
    "IscsiSession": "iscsikit.sysfs.session",
    "BlockDevice": "iscsikit.sysfs.scsi",
    "ScsiDevice": "iscsikit.sysfs.scsi",
    "ScsiHost": "iscsikit.sysfs.scsi",
    "ScsiTarget": "iscsikit.sysfs.scsi",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


__all__ = [
    "BlockDevice",
    "BootTarget",
    "Device",
    "Flashnode",
    "HostIface",
    "Ibft",
    "IscsiConnection",
    "IscsiHost",
    "IscsiSession",
    "IscsiTransport",
    "ScsiDevice",
    "ScsiHost",
    "ScsiTarget",
    "SysfsContext",
    "c_int",
    "read_attr",
]
