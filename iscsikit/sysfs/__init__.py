"""An object model over ``/sys``: kernel iSCSI sessions, connections, hosts, transports,
SCSI devices and the boot firmware table -- with the filesystem root as an argument.

``SysfsContext(root)`` is the entry point (pyudev's ``Context``, rtslib's ``RTSRoot``)::

    ctx = SysfsContext()                 # the running kernel
    ctx = SysfsContext(tmp_path)         # a tree written by iscsikit.sysfs.fake.FakeSysfs
    for session in ctx.sessions():
        print(session.sid, session.targetname, session.connection().address)

Modules: :mod:`~iscsikit.sysfs.attrs` (reading and parsing attributes as open-iscsi
does), :mod:`~iscsikit.sysfs.session`, :mod:`~iscsikit.sysfs.host`,
:mod:`~iscsikit.sysfs.ibft`, :mod:`~iscsikit.sysfs.context`, and
:mod:`~iscsikit.sysfs.fake` (kernel-shaped trees for tests).  Nothing here talks to a
daemon or to netlink; only :meth:`IscsiSession.rescan` / :meth:`IscsiHost.scan` write,
to the control files the kernel provides for that.
"""

from __future__ import annotations

from iscsikit.sysfs.attrs import Device, c_int, read_attr
from iscsikit.sysfs.context import SysfsContext
from iscsikit.sysfs.host import Flashnode, HostIface, IscsiHost, IscsiTransport
from iscsikit.sysfs.ibft import BootTarget, Ibft
from iscsikit.sysfs.session import IscsiConnection, IscsiSession, ScsiDevice

__all__ = [
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
    "SysfsContext",
    "c_int",
    "read_attr",
]
