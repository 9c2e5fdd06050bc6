"""Build fake ``/sys`` trees laid out as the Linux kernel lays them out, for tests.

No machine running iscsikit's tests has iSCSI kernel modules, so sessions, hosts and
the iBFT are exercised on trees this module writes under a temporary directory.  The
layout follows the kernel exactly (drivers/scsi/scsi_transport_iscsi.c and
iscsi_tcp/libiscsi, drivers/firmware/iscsi_ibft.c), because both iscsikit's
:class:`~iscsikit.sysfs.SysfsContext` and the real ``iscsiadm`` (bind-mounted over
``/sys`` in a private mount namespace, see tests/integration) must read it:

* ``devices/platform/hostH`` (the Scsi_Host of an iscsi_tcp session, parent
  ``platform_bus``) with ``scsi_host/hostH`` and ``iscsi_host/hostH`` class dirs;
* ``devices/platform/hostH/sessionS/iscsi_session/sessionS`` (session attributes),
  ``.../sessionS/connectionS:0/iscsi_connection/connectionS:0`` (connection
  attributes) and ``.../sessionS/targetH:0:T/H:0:T:L/block/sdX`` (LUNs);
* ``class/<name>/<id>`` and ``bus/scsi/devices/<id>`` as *relative* symlinks, so the
  tree works wherever it is mounted;
* ``class/iscsi_transport/<t>/{handle,caps}``, ``module/scsi_transport_iscsi/version``
  and ``firmware/ibft/{initiator,ethernetN,targetN}``;
* offload HBAs' ``hostH/iscsi_iface/<ipv4|ipv6>-iface-H-N`` and qla4xxx's
  ``hostH/flashnode_sess-H:N[/flashnode_conn-H:N:0]`` (``bus/iscsi_flashnode``),
  which :mod:`iscsikit.testing.simhba` builds its simulated hosts from.

Values are written as the kernel prints them: ``"%s\\n"`` with a NULL string printing
``(null)`` (libiscsi's get_param), so an unset CHAP user reads ``(null)``.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["FakeIbftTarget", "FakeSession", "FakeSysfs", "sample_kernel", "sd_devnum"]

_DISK1 = "iqn.2003-01.org.example:disk1"
_DISK0 = "iqn.2003-01.org.example:disk0"

#: Negotiated session parameters iscsi_tcp exports (kernel names), with iscsid's defaults.
SESSION_PARAMS: dict[str, str] = {
    "initial_r2t": "0",
    "immediate_data": "1",
    "first_burst_len": "65536",
    "max_burst_len": "262144",
    "max_outstanding_r2t": "1",
    "erl": "0",
    "data_pdu_in_order": "1",
    "data_seq_in_order": "1",
    "fast_abort": "1",
    "def_time2wait": "2",
    "def_time2retain": "0",
    "targetalias": "(null)",
    "tsid": "1",
    "isid": "00023d000001",
    "target_id": "0",
}
#: Negotiated connection parameters iscsi_tcp exports.
CONN_PARAMS: dict[str, str] = {
    "header_digest": "0",
    "data_digest": "0",
    "max_recv_dlength": "262144",
    "max_xmit_dlength": "262144",
    "ifmarker": "0",
    "ofmarker": "0",
    "exp_statsn": "1",
    "ping_tmo": "5",
    "recv_tmo": "5",
    "local_port": "52000",
    "state": "up",
}


@dataclass
class FakeSession:
    """What :meth:`FakeSysfs.add_session` writes; every field is a kernel attribute."""

    sid: int
    target: str
    address: str
    port: int = 3260
    tpgt: int = 1
    persistent_address: str | None = None
    persistent_port: int | None = None
    host_no: int | None = None
    ifacename: str = "default"
    initiatorname: str = "iqn.2004-10.com.example:oracle"
    state: str = "LOGGED_IN"
    creator: int = 1234
    username: str = "(null)"
    password: str = "(null)"
    username_in: str = "(null)"
    password_in: str = "(null)"
    recovery_tmo: str = "120"
    lu_reset_tmo: str = "30"
    tgt_reset_tmo: str = "30"
    abort_tmo: str = "15"
    params: Mapping[str, str] = field(default_factory=dict)
    conn_params: Mapping[str, str] = field(default_factory=dict)
    #: Host attributes: iscsi_tcp reports the local address and "(null)" for the rest.
    host_ipaddress: str = "192.0.2.1"
    host_netdev: str = "(null)"
    host_hwaddress: str = "(null)"
    host_initiatorname: str = "(null)"
    host_state: str = "running"
    proc_name: str = "iscsi_tcp"


@dataclass
class FakeIbftTarget:
    """One ``firmware/ibft/targetN`` block (iscsi_ibft.c attribute names)."""

    index: int
    target_name: str
    ip_addr: str
    port: int = 3260
    lun: str = "00000000"
    nic_assoc: int = 0
    flags: int = 3
    chap_type: int = 0
    chap_name: str | None = None
    chap_secret: str | None = None
    rev_chap_name: str | None = None
    rev_chap_secret: str | None = None


def sd_devnum(name: str) -> tuple[int, int]:
    """The ``(major, minor)`` sd gives disk ``name`` (drivers/scsi/sd.c sd_major): the
    disk index from its letters (sda 0, sdz 25, sdaa 26), 16 minors a disk, majors 8,
    65-71, 128-135 for each block of 16 disks, minors above 255 from index 256 on."""
    index = 0
    for ch in name.removeprefix("sd"):
        index = index * 26 + (ord(ch) - ord("a") + 1)
    index -= 1
    block = (index & 0xF0) >> 4
    major = 8 if block == 0 else (64 + block if block < 8 else 120 + block)
    return major, (index & 0xF) << 4 | (index & 0xFFF00)


def _write(path: Path, value: str | int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"{value}\n")


def _link(link: Path, target: Path) -> None:
    """A relative symlink ``link`` -> ``target`` (both absolute paths in the tree)."""
    link.parent.mkdir(parents=True, exist_ok=True)
    if link.is_symlink():
        link.unlink()
    link.symlink_to(os.path.relpath(target, link.parent))


class FakeSysfs:
    """Writes a kernel-shaped tree under ``<root>/sys``; ``root`` is what a
    :class:`~iscsikit.sysfs.SysfsContext` (or ``ISCSIKIT_ROOT``) is given."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.sys = root / "sys"
        # Every kernel has these; open-iscsi fails differently when one is missing.
        for sub in ("class", "bus", "devices", "firmware", "module"):
            (self.sys / sub).mkdir(parents=True, exist_ok=True)

    # -- kernel-wide ------------------------------------------------------------------
    def add_transport(
        self, name: str = "tcp", *, handle: int = 18446744072102035520, caps: int = 0x39
    ) -> Path:
        dev = self.sys / "devices/virtual/iscsi_transport" / name
        _write(dev / "handle", handle)
        _write(dev / "caps", f"0x{caps:x}")
        _link(self.sys / "class/iscsi_transport" / name, dev)
        return dev

    def set_transport_class_version(self, version: str = "2.0-870") -> None:
        _write(self.sys / "module/scsi_transport_iscsi/version", version)

    # -- hosts ------------------------------------------------------------------------
    def add_host(
        self,
        host_no: int,
        *,
        proc_name: str = "iscsi_tcp",
        state: str = "running",
        attrs: Mapping[str, str] | None = None,
        parent: str = "devices/platform",
    ) -> Path:
        """A Scsi_Host with its ``scsi_host`` and ``iscsi_host`` class devices."""
        dev = self.sys / parent / f"host{host_no}"
        _link(dev / "subsystem", self.sys / "bus/scsi")
        _link(self.sys / "bus/scsi/devices" / f"host{host_no}", dev)
        sh = dev / "scsi_host" / f"host{host_no}"
        _write(sh / "proc_name", proc_name)
        _write(sh / "state", state)
        _write(sh / "scan", "")
        (sh / "scan").chmod(0o200)
        _link(sh / "device", dev)
        _link(sh / "subsystem", self.sys / "class/scsi_host")
        _link(self.sys / "class/scsi_host" / f"host{host_no}", sh)
        ih = dev / "iscsi_host" / f"host{host_no}"
        ih.mkdir(parents=True, exist_ok=True)
        for key, value in (attrs or {}).items():
            _write(ih / key, value)
        _link(ih / "device", dev)
        _link(ih / "subsystem", self.sys / "class/iscsi_host")
        _link(self.sys / "class/iscsi_host" / f"host{host_no}", ih)
        return dev

    def host_dir(self, host_no: int) -> Path:
        found = self.sys / "class/scsi_host" / f"host{host_no}" / "device"
        return found.resolve()

    def write_attr(self, device: Path, key: str, value: str | int) -> None:
        """Set attribute ``key`` of the device (class) directory ``device`` as the kernel
        prints it (``"%s\\n"``); a simulated driver uses it to reflect a change."""
        _write(device / key, value)

    def unreadable_attr(self, device: Path, key: str) -> None:
        """Attribute ``key`` of ``device`` exists but its read fails, as one whose
        ``show`` returns an error does (be2iscsi's ``vlan_id`` while VLAN is off:
        -EINVAL).  Modelled as a dangling symlink: it is listed, and opening it fails
        with an ``OSError``, which readers treat as a failed read."""
        path = device / key
        if path.is_symlink() or path.exists():
            path.unlink()
        path.symlink_to(f".{key}.unreadable")

    def remove_iface(self, host_no: int, *, ipv6: bool = False, num: int = 0) -> None:
        """Destroy kernel iface ``<ipv4|ipv6>-iface-H-N`` (iscsi_destroy_iface)."""
        name = f"{'ipv6' if ipv6 else 'ipv4'}-iface-{host_no}-{num}"
        link = self.sys / "class/iscsi_iface" / name
        if link.is_symlink():
            link.unlink()
        dev = self.host_dir(host_no) / "iscsi_iface" / name
        if dev.is_dir():
            shutil.rmtree(dev)

    def add_iface(
        self, host_no: int, *, ipv6: bool = False, num: int = 0, attrs: Mapping[str, str]
    ) -> Path:
        """An offload HBA's kernel iface ``<ipv4|ipv6>-iface-H-N`` (iscsi_create_iface):
        a child of the host device, linked from ``class/iscsi_iface``; ``attrs`` are the
        attributes the driver makes visible (the kernel hides the rest)."""
        name = f"{'ipv6' if ipv6 else 'ipv4'}-iface-{host_no}-{num}"
        dev = self.host_dir(host_no) / "iscsi_iface" / name
        dev.mkdir(parents=True, exist_ok=True)
        for key, value in attrs.items():
            _write(dev / key, value)
        _link(dev / "subsystem", self.sys / "class/iscsi_iface")
        _link(self.sys / "class/iscsi_iface" / name, dev)
        return dev

    def add_flashnode(
        self,
        host_no: int,
        index: int,
        *,
        sess: Mapping[str, str | int],
        conn: Mapping[str, str | int],
    ) -> Path:
        """A qla4xxx flash target entry (iscsi_create_flashnode_sess / _conn):
        ``flashnode_sess-H:N`` under the host device and its ``flashnode_conn-H:N:0``
        child, both on ``bus/iscsi_flashnode``."""
        bus = self.sys / "bus/iscsi_flashnode/devices"
        name = f"flashnode_sess-{host_no}:{index}"
        dev = self.host_dir(host_no) / name
        cdev = dev / f"flashnode_conn-{host_no}:{index}:0"
        for path, values in ((dev, sess), (cdev, conn)):
            path.mkdir(parents=True, exist_ok=True)
            for key, value in values.items():
                _write(path / key, value)
            _link(path / "subsystem", self.sys / "bus/iscsi_flashnode")
            _link(bus / path.name, path)
        return dev

    def remove_flashnode(self, host_no: int, index: int) -> None:
        """Delete a flash node as DEL_FLASHNODE does (both devices and their links)."""
        bus = self.sys / "bus/iscsi_flashnode/devices"
        name = f"flashnode_sess-{host_no}:{index}"
        for link in (bus / name, bus / f"flashnode_conn-{host_no}:{index}:0"):
            if link.is_symlink():
                link.unlink()
        shutil.rmtree(self.host_dir(host_no) / name, ignore_errors=True)

    # -- sessions ---------------------------------------------------------------------
    def add_session(self, session: FakeSession, *, connection: bool = True) -> Path:
        """A session (with its own iscsi_tcp host unless ``host_no`` names an existing
        one), its lead connection (unless ``connection`` is False: iscsi_session_create
        alone), and the attributes iscsiadm reads."""
        s = session
        host_no = s.host_no if s.host_no is not None else s.sid + 1
        if not (self.sys / "class/scsi_host" / f"host{host_no}").exists():
            self.add_host(
                host_no,
                proc_name=s.proc_name,
                state=s.host_state,
                attrs={
                    "ipaddress": s.host_ipaddress,
                    "netdev": s.host_netdev,
                    "hwaddress": s.host_hwaddress,
                    "initiatorname": s.host_initiatorname,
                },
            )
        dev = self.host_dir(host_no) / f"session{s.sid}"
        cls = dev / "iscsi_session" / f"session{s.sid}"
        values: dict[str, str | int] = {
            "targetname": s.target,
            "tpgt": s.tpgt,
            "ifacename": s.ifacename,
            "initiatorname": s.initiatorname,
            "state": s.state,
            "creator": s.creator,
            "username": s.username,
            "password": s.password,
            "username_in": s.username_in,
            "password_in": s.password_in,
            "recovery_tmo": s.recovery_tmo,
            "lu_reset_tmo": s.lu_reset_tmo,
            "tgt_reset_tmo": s.tgt_reset_tmo,
            "abort_tmo": s.abort_tmo,
            **SESSION_PARAMS,
            **s.params,
        }
        for key, value in values.items():
            _write(cls / key, value)
        _link(cls / "device", dev)
        _link(cls / "subsystem", self.sys / "class/iscsi_session")
        _link(self.sys / "class/iscsi_session" / f"session{s.sid}", cls)
        if connection:
            self.add_connection(s)
        return dev

    def session_dir(self, sid: int) -> Path:
        """The session's device directory (``.../hostH/session<sid>``)."""
        return (self.sys / "class/iscsi_session" / f"session{sid}" / "device").resolve()

    def add_connection(self, session: FakeSession, cid: int = 0) -> Path:
        """Connection ``cid`` of an added session (iscsi_create_conn), with the attributes
        iscsiadm reads; returns its ``iscsi_connection`` class directory."""
        s = session
        dev = self.session_dir(s.sid)
        conn = dev / f"connection{s.sid}:{cid}"
        ccls = conn / "iscsi_connection" / f"connection{s.sid}:{cid}"
        cvalues: dict[str, str | int] = {
            "address": s.address,
            "port": s.port,
            "persistent_address": s.persistent_address or s.address,
            "persistent_port": s.persistent_port if s.persistent_port is not None else s.port,
            **CONN_PARAMS,
            **s.conn_params,
        }
        for key, value in cvalues.items():
            _write(ccls / key, value)
        _link(ccls / "device", conn)
        _link(ccls / "subsystem", self.sys / "class/iscsi_connection")
        _link(self.sys / "class/iscsi_connection" / f"connection{s.sid}:{cid}", ccls)
        return ccls

    def remove_connection(self, sid: int, cid: int = 0) -> None:
        """Connection ``cid`` goes, as iscsi_destroy_conn removes it."""
        name = f"connection{sid}:{cid}"
        link = self.sys / "class/iscsi_connection" / name
        if link.is_symlink():
            shutil.rmtree(link.resolve().parent.parent, ignore_errors=True)
            link.unlink()

    def remove_session(self, sid: int) -> None:
        """Session ``sid`` (its connections and SCSI targets) goes, as
        iscsi_remove_session removes it; the host stays."""
        link = self.sys / "class/iscsi_session" / f"session{sid}"
        if not link.is_symlink():
            return
        dev = self.session_dir(sid)
        for conn in self.sys.glob(f"class/iscsi_connection/connection{sid}:*"):
            conn.unlink()
        devices = self.sys / "bus/scsi/devices"
        for target in dev.glob("target*"):
            for entry in devices.glob(f"{target.name.removeprefix('target')}*"):
                entry.unlink()
            (devices / target.name).unlink(missing_ok=True)
        shutil.rmtree(dev, ignore_errors=True)
        link.unlink()

    def add_target(self, sid: int, *, channel: int = 0, target_id: int = 0) -> Path:
        """The SCSI target ``targetH:C:T`` under the session, as the scan of a logged-in
        session makes it (scsi_alloc_target; its LUNs: :meth:`add_lun`)."""
        session = self.session_dir(sid)
        host_no = int(session.parent.name.removeprefix("host"))
        target = session / f"target{host_no}:{channel}:{target_id}"
        _write(target / "uevent", "DEVTYPE=scsi_target")
        _link(target / "subsystem", self.sys / "bus/scsi")
        _link(self.sys / "bus/scsi/devices" / target.name, target)
        return target

    def add_lun(
        self,
        sid: int,
        lun: int,
        *,
        target_id: int = 0,
        channel: int = 0,
        block: str | None = None,
        state: str = "running",
        size: int = 2097152 * 512,
        block_size: int = 512,
        partitions: int = 0,
        vendor: str = "IET",
        model: str = "VIRTUAL-DISK",
        rev: str = "0001",
    ) -> Path:
        """A SCSI device ``H:C:T:L`` under the session's target, optionally with the disk
        ``block`` (``size`` bytes, ``partitions`` partitions) bound to it, as Linux 6.1
        lays them out (scsi_sysfs.c, sd.c, genhd.c)."""
        target = self.add_target(sid, channel=channel, target_id=target_id)
        host_no = int(target.parent.parent.name.removeprefix("host"))
        hctl = f"{host_no}:{channel}:{target_id}:{lun}"
        dev = target / hctl
        values: dict[str, str | int] = {
            "state": state,
            "type": 0,
            # INQUIRY strings, printed padded to their field widths (8, 16, 4).
            "vendor": f"{vendor:<8}",
            "model": f"{model:<16}",
            "rev": f"{rev:<4}",
            "queue_depth": 32,
            "scsi_level": 6,
            "device_blocked": 0,
            "timeout": 30,
            "uevent": "DEVTYPE=scsi_device\nDRIVER=sd\nMODALIAS=scsi:t-0x00",
        }
        for key, value in values.items():
            _write(dev / key, value)
        for control in ("rescan", "delete"):  # write-only, as the kernel makes them
            _write(dev / control, "")
            (dev / control).chmod(0o200)
        _link(dev / "subsystem", self.sys / "bus/scsi")
        _link(self.sys / "bus/scsi/devices" / hctl, dev)
        if block is not None:
            self._add_disk(dev / "block" / block, dev, size, block_size, partitions)
        return dev

    def _add_disk(self, bdev: Path, scsi: Path, size: int, block_size: int, parts: int) -> None:
        major, minor = sd_devnum(bdev.name)
        self._block_node(bdev, major, minor, size // 512, "disk")
        _write(bdev / "ro", 0)
        _write(bdev / "removable", 0)
        _write(bdev / "queue/logical_block_size", block_size)
        _link(bdev / "device", scsi)
        _link(self.sys / "block" / bdev.name, bdev)
        for n in range(1, parts + 1):
            part = bdev / f"{bdev.name}{n}"
            self._block_node(part, major, minor + n, 2048, "partition")
            _write(part / "partition", n)
            _write(part / "start", 2048 * n)

    def _block_node(self, path: Path, major: int, minor: int, sectors: int, kind: str) -> None:
        _write(path / "dev", f"{major}:{minor}")
        _write(path / "size", sectors)
        uevent = f"MAJOR={major}\nMINOR={minor}\nDEVNAME={path.name}\nDEVTYPE={kind}"
        _write(path / "uevent", uevent)
        _link(path / "subsystem", self.sys / "class/block")
        _link(self.sys / "class/block" / path.name, path)
        _link(self.sys / "dev/block" / f"{major}:{minor}", path)

    def add_multipath_map(self, name: str, minor: int, disks: list[str], wwid: str) -> Path:
        """A dm-multipath map ``dm-<minor>`` named ``name`` (``dm/uuid`` ``mpath-<wwid>``,
        as multipath-tools names its maps) holding the disks ``disks`` (drivers/md/dm-sysfs.c,
        block/holder.c: ``block/sdX/holders/dm-N``, ``dm-N/slaves/sdX``)."""
        dm = self.sys / "devices/virtual/block" / f"dm-{minor}"
        self._block_node(dm, 253, minor, 2097152, "disk")
        _write(dm / "dm/name", name)
        _write(dm / "dm/uuid", f"mpath-{wwid}")
        _link(self.sys / "block" / dm.name, dm)
        for disk in disks:
            bdev = (self.sys / "block" / disk).resolve()
            _link(bdev / "holders" / dm.name, dm)
            _link(dm / "slaves" / disk, bdev)
        return dm

    # -- udev -------------------------------------------------------------------------
    def add_udev_record(self, block: str, links: list[str], *, make_links: bool = True) -> Path:
        """What udevd leaves for the disk ``block``: its database record
        ``run/udev/data/b<major>:<minor>`` (``S:`` lines, links relative to /dev, as
        systemd-udevd 252 writes them) and, with ``make_links``, the symlinks under
        ``<root>/dev``."""
        bdev = (self.sys / "class/block" / block).resolve()
        major, _, minor = (bdev / "dev").read_text().strip().partition(":")
        record = self.root / "run/udev/data" / f"b{major}:{minor}"
        lines = [f"S:{link}" for link in links]
        lines += ["I:1000000", "E:ID_BUS=scsi", "G:systemd", "Q:systemd", "V:1"]
        record.parent.mkdir(parents=True, exist_ok=True)
        record.write_text("\n".join(lines) + "\n")
        if make_links:
            node = self.root / "dev" / block
            node.parent.mkdir(parents=True, exist_ok=True)
            node.touch()
            for link in links:
                _link(self.root / "dev" / link, node)
        return record

    # -- iBFT -------------------------------------------------------------------------
    def add_ibft(
        self,
        *,
        initiator_name: str,
        nics: list[Mapping[str, str | int]],
        targets: list[FakeIbftTarget],
        netdevs: Mapping[int, str] | None = None,
    ) -> Path:
        """``firmware/ibft`` as drivers/firmware/iscsi_ibft.c exports it.  Each NIC maps
        attribute names (``index``, ``flags``, ``ip-addr``, ``mac``, ...) to values;
        ``netdevs`` maps a NIC index to the netdev its PCI function owns (the
        ``ethernetN/device/net/<if>`` link iscsiadm follows)."""
        base = self.sys / "firmware/ibft"
        _write(base / "initiator/initiator-name", initiator_name)
        _write(base / "initiator/flags", 3)
        _write(base / "initiator/index", 0)
        for nic in nics:
            index = int(nic.get("index", 0))
            d = base / f"ethernet{index}"
            for key, value in {"index": index, "flags": 3, "origin": 1, **nic}.items():
                _write(d / key, value)
            netdev = (netdevs or {}).get(index)
            if netdev is not None:
                pci = self.sys / "devices/pci0000:00" / f"0000:00:0{index + 3}.0"
                _write(pci / "net" / netdev / "address", nic.get("mac", ""))
                _link(d / "device", pci)
                _link(self.sys / "class/net" / netdev, pci / "net" / netdev)
        for t in targets:
            d = base / f"target{t.index}"
            values: dict[str, str | int] = {
                "index": t.index,
                "flags": t.flags,
                "ip-addr": t.ip_addr,
                "port": t.port,
                "lun": t.lun,
                "nic-assoc": t.nic_assoc,
                "chap-type": t.chap_type,
                "target-name": t.target_name,
            }
            optional = {
                "chap-name": t.chap_name,
                "chap-secret": t.chap_secret,
                "rev-chap-name": t.rev_chap_name,
                "rev-chap-name-secret": t.rev_chap_secret,
            }
            values.update({k: v for k, v in optional.items() if v is not None})
            for key, value in values.items():
                _write(d / key, value)
        return base


def sample_kernel(root: Path) -> FakeSysfs:
    """The tree the CLI's golden outputs were captured on (tests/unit/cli/golden):
    sessions LOGGED_IN and FAILED, IPv6 portals, an offload-style binding, CHAP, LUNs
    with and without disks, \"off\" and \"(null)\" timeouts, and an iBFT."""
    f = FakeSysfs(root)
    f.add_transport("tcp")
    f.set_transport_class_version("2.0-870")
    f.add_session(FakeSession(1, _DISK1, "192.168.1.10"))
    f.add_session(
        FakeSession(
            2, _DISK1, "192.168.1.11", tpgt=2, state="FAILED", username="joe",
            password="secret", username_in="tgt", password_in="insecret",
        )
    )  # fmt: skip
    f.add_session(
        FakeSession(
            10, _DISK0, "fd00::5", port=3261, ifacename="(null)", initiatorname="(null)",
            host_initiatorname="iqn.host:h", host_ipaddress="fe80::1",
            conn_params={"header_digest": "1"}, recovery_tmo="off", abort_tmo="(null)",
        )
    )  # fmt: skip
    f.add_session(
        FakeSession(
            3, _DISK0, "10.0.0.3", host_hwaddress="00:0e:1e:aa:bb:cc", host_netdev="eth1",
            host_ipaddress="(null)", params={"first_burst_len": "off"},
        )
    )  # fmt: skip
    f.add_lun(1, 0, block="sdb")
    f.add_lun(1, 1, block="sdc", state="offline")
    f.add_lun(1, 2)
    f.add_ibft(
        initiator_name="iqn.2010-04.org.ipxe:host",
        nics=[
            {"index": 0, "mac": "52:54:00:12:34:56", "ip-addr": "192.168.0.20",
             "subnet-mask": "255.255.255.0", "prefix-len": 24, "gateway": "192.168.0.1",
             "primary-dns": "192.168.0.1", "vlan": 0, "origin": 3},
            {"index": 1, "mac": "52:54:00:aa:bb:cc", "ip-addr": "10.0.0.2"},
        ],
        targets=[
            FakeIbftTarget(0, "iqn.2003-01.org.example:boot", "192.168.0.5",
                           chap_name="u", chap_secret="s3cret"),
            FakeIbftTarget(1, "iqn.2003-01.org.example:boot2", "fd00::9", port=3261,
                           nic_assoc=1, lun="0100000000000000", rev_chap_name="t",
                           rev_chap_secret="in"),
            FakeIbftTarget(2, "iqn.2003-01.org.example:off", "10.0.0.7", flags=0),
        ],
        netdevs={0: "eth0"},
    )  # fmt: skip
    return f
