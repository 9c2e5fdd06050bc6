"""Iface policy: the offload ifaces drivers report get a record, once.

open-iscsi creates ``ifaces/<transport>.<mac>`` for every offload port it finds in
sysfs whenever ifaces are listed (usr/iface.c ``iscsi_default_iface_setup``).  Here
drivers report their ports through the ``iscsikit_offload_ports`` hook and this module
writes the records that are missing; existing records (and the user's edits to them)
are never touched.
"""

from __future__ import annotations

from pathlib import Path

import pluggy

from iscsikit.config.paths import resolve_root
from iscsikit.errors import NoObjectsFoundError
from iscsikit.plugin import manager
from iscsikit.plugin.transport import OffloadPort
from iscsikit.records.model import IfaceRecord
from iscsikit.records.store import Records


def offload_ports(root: Path, pm: pluggy.PluginManager | None = None) -> list[OffloadPort]:
    """Every port every driver reports under ``root``, in hook order, without repeats."""
    pm = manager.plugin_manager() if pm is None else pm
    ports: dict[str, OffloadPort] = {}
    for reported in pm.hook.iscsikit_offload_ports(root=root):
        for port in reported:
            ports.setdefault(port.iface_name, port)
    return list(ports.values())


def ensure_offload_ifaces(
    records: Records, pm: pluggy.PluginManager | None = None, *, root: Path | None = None
) -> list[IfaceRecord]:
    """Create the missing ``<transport>.<mac>`` iface records for the ports under
    ``root`` (default: ``ISCSIKIT_ROOT``, else ``/``); return those created."""
    created: list[IfaceRecord] = []
    for port in offload_ports(resolve_root() if root is None else root, pm):
        try:
            records.iface(port.iface_name)
            continue
        except NoObjectsFoundError:
            pass
        iface = IfaceRecord.new(port.iface_name, transport=port.transport)
        iface.set("iface.hwaddress", port.hwaddress.lower())
        if port.net_ifacename:
            iface.set("iface.net_ifacename", port.net_ifacename)
        if port.ipaddress:
            iface.set("iface.ipaddress", port.ipaddress)
        records.add_iface(iface)
        created.append(iface)
    return created
