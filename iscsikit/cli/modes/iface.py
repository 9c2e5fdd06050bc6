"""``-m iface``: list, show, create, update, delete and apply iface records; ``-C ping``.

Checked against the real iscsiadm 2.1.8 (tests/integration/test_cli_discovery_oracle.py
and the golden battery), quirks included:

* listing (``-P 0``): ``name transport,hwaddress,ipaddress,net_ifacename,initiatorname``
  for the iface files sorted by name, then ``default`` and ``iser``; ``-P 1`` the tree of
  the nodes bound to each (nothing at all when there are no node records); ``-P`` other
  than -1, 0, 1 exits 7.  Listing goes through libopeniscsiusr, which reads an iface file
  with the key set its *name* implies ("ipv6" in the name: IPv6 keys) and rejects the
  whole listing (exit 7; 6 for ``-I name``) when a file holds a key outside that set --
  e.g. iface ``if6`` given an IPv6 address.  iscsikit reproduces the refusal and says why.
* ``-o new`` writes the iface afresh (even over an existing one), applies ``-n/-v`` as
  ``-o update`` would, and says "New interface X added"; no ``-I`` exits 22, a built-in
  7, a name that cannot be a file 6.
* ``-o update`` changes the iface and every node bound to it.  **Quirk kept:** when a
  key or value is refused (unknown key, the iface name, switching the binding between
  hwaddress and net_ifacename, a built-in iface) iscsiadm prints the error and exits 0;
  so does iscsikit-adm (scripts written for iscsiadm rely on the exit code they got).
* ``-o delete`` removes the iface and the nodes bound to it ("X unbound and deleted.").
  Deliberate difference (docs/json-output.md, appendix): for ``default``/``iser``
  iscsiadm deletes the bound nodes before refusing; iscsikit refuses first.
* ``-o apply``/``applyall`` and ``-C ping`` go through the offload driver plugin of the
  iface's transport (``iscsikit_drivers.offload``, tested against **simulated** hosts:
  docs/offload.md) and the host whose MAC is ``iface.hwaddress``: SET_IFACE_PARAMS with
  the iface's network settings ("X applied."; "Nothing to configure." when it has none),
  PING per packet ("Ping N completed", "Ping N failed: <status>").  An iface whose
  transport has no offload driver does what iscsiadm does on a host without the HBA:
  "Could not apply net configuration" (exit 1) for one with an address or DHCP, "Ping N
  failed: unknown error" per packet (exit 1).
* Two ops at once, or one iface mode does not know, exit 7 without a message.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import time
from typing import TYPE_CHECKING, Any

from iscsikit.cli import jsonout
from iscsikit.cli.options import host_number
from iscsikit.cli.printing import EMPTY, iface_text, portal_text
from iscsikit.errors import MESSAGES, IscsiErr, IscsiError, NoObjectsFoundError

# Listing and showing ifaces is start-up bound: the netlink codec, the records package,
# sysfs and the driver plugins are imported in the functions that use them, not here
# (bench/startup_bench.py; tests/unit/cli/test_startup_imports.py).

if TYPE_CHECKING:
    from iscsikit.cli.env import CliEnv
    from iscsikit.cli.options import ParsedArgs
    from iscsikit.plugin.transport import OffloadDriver, OffloadHostOps
    from iscsikit.records import IfaceRecord, NodeRecord

__all__ = ["iface_flat", "iface_tree", "run"]

_NEW, _DELETE, _UPDATE, _SHOW, _APPLY, _APPLYALL = 0x1, 0x2, 0x4, 0x8, 0x20, 0x40
_BUILTIN = ("default", "iser")


def iface_flat(iface: IfaceRecord) -> str:
    """One ``-P 0`` line."""
    fields = (
        "iface.transport_name",
        "iface.hwaddress",
        "iface.ipaddress",
        "iface.net_ifacename",
        "iface.initiatorname",
    )
    return f"{iface.name} " + ",".join(iface.get(k) or EMPTY for k in fields) + "\n"


def iface_tree(name: str, nodes: list[NodeRecord]) -> str:
    """``Iface: name`` and its nodes: Target once per run, then every Portal."""
    out = [f"Iface: {name}\n"]
    last: str | None = None
    for n in nodes:
        if n.target != last:
            out.append(f"\tTarget: {n.target}\n")
            last = n.target
        out.append(f"\t\tPortal: {portal_text(n.address, n.port)},{n.tpgt}\n")
    return "".join(out)


class _Cmd:
    def __init__(self, args: ParsedArgs, env: CliEnv) -> None:
        self.args, self.env = args, env
        self.json = jsonout.wants_json(args)
        self.doc: dict[str, Any] = {}
        self.name = args.ifaces[0] if args.ifaces else None

    def say(self, line: str) -> None:
        """An informational stdout line (kept in the JSON document's messages)."""
        if self.json:
            self.doc.setdefault("messages", []).append(line)
        else:
            self.env.out(line + "\n")

    def err(self, message: str) -> None:
        self.env.err(message)
        if self.json:
            self.doc.setdefault("errors", []).append(message)


def _unknown_key(path: str, name: str) -> str | None:
    """The first key libopeniscsiusr refuses in an iface file (its key set comes from the
    iface *name*), or None."""
    from iscsikit.config.registry import REGISTRY, RecordType, iface_family

    family = iface_family({}, name, show=True)
    known = {k.name for k in REGISTRY.show_order(RecordType.IFACE, family)}
    try:
        with open(path, encoding="utf-8", errors="surrogateescape") as f:
            for raw in f:
                line = raw.strip()
                if line and not line.startswith("#"):
                    key = re.split(r"[\s=]", line, maxsplit=1)[0]
                    if key not in known:
                        return key
    except OSError:
        return None
    return None


def _read(cmd: _Cmd, name: str, code: IscsiErr) -> IfaceRecord:
    """An iface as libopeniscsiusr reads it (listing/show), or its error and ``code``."""
    from iscsikit.records import IfaceRecord

    if name in _BUILTIN:
        return IfaceRecord.builtin(name)
    records = cmd.env.records()
    path = f"{records.layout.ifaces}/{name}"
    try:
        record = records.iface(name)
    except NoObjectsFoundError:
        raise IscsiError(
            f"Failed to open {path} using read mode: No such file or directory", code=IscsiErr.IDBM
        ) from None
    except IscsiError as exc:  # unreadable, or a name that cannot be a file
        raise IscsiError(
            f"Failed to open {path} using read mode: {exc}", code=IscsiErr.IDBM
        ) from None
    key = _unknown_key(path, name)
    if key is not None:
        family = "IPv6" if "ipv6" in name else "IPv4"
        cmd.err(f"Unknown parameter name {key}")
        cmd.err(
            f"iscsiadm 2.1.8 reads iface '{name}' with {family} keys only ('ipv6' in the "
            "name decides); give it a name that says its family"
        )
        raise IscsiError(f"config file {path} invalid.", code=code)
    return record


def _all(cmd: _Cmd) -> list[IfaceRecord]:
    """Every iface as ``-m iface`` lists them: files by name, then the built-ins."""
    from iscsikit.manager.ifaces import ensure_offload_ifaces
    from iscsikit.records.reader import listdir_sorted

    records = cmd.env.records()
    root = cmd.env.paths.root
    ensure_offload_ifaces(records, root=root)
    names = [n for n in listdir_sorted(records.layout.ifaces) if n not in _BUILTIN]
    return [_read(cmd, n, IscsiErr.INVAL) for n in [*names, *_BUILTIN]]


def _show(cmd: _Cmd) -> int:
    level = cmd.args.print_level
    if level not in (-1, 0, 1):
        raise IscsiError(f"Invalid info level {level}. Try 0 - 1.", code=IscsiErr.INVAL)
    cmd.doc["op"] = "show" if cmd.name and level != 1 else "list"
    if level == 1:
        nodes = cmd.env.records().nodes()
        if not nodes:
            cmd.doc["ifaces"] = []
            return 0
        ifaces = [_read(cmd, cmd.name, IscsiErr.IDBM)] if cmd.name else _all(cmd)
        out, docs = [], []
        for iface in ifaces:
            mine = [n for n in nodes if n.iface == iface.name]
            out.append(iface_tree(iface.name, mine))
            docs.append(jsonout.iface_json(iface, nodes=mine))
        _text(cmd, "".join(out))
        cmd.doc["ifaces"] = docs
    elif cmd.name:
        iface = _read(cmd, cmd.name, IscsiErr.IDBM)
        _text(cmd, iface_text(iface, show_secrets=cmd.args.show))
        cmd.doc["ifaces"] = [jsonout.iface_json(iface, record=True, show_secrets=cmd.args.show)]
    else:
        ifaces = _all(cmd)
        _text(cmd, "".join(iface_flat(i) for i in ifaces))
        cmd.doc["ifaces"] = [jsonout.iface_json(i) for i in ifaces]
    return 0


def _text(cmd: _Cmd, text: str) -> None:
    if not cmd.json:
        cmd.env.out(text)


def _changes(cmd: _Cmd, iface: IfaceRecord) -> dict[str, str] | None:
    """The ``-n/-v`` changes iscsiadm would make to ``iface``, or None after printing why
    not (iface_conf_update: every pair is checked before anything is written)."""
    from iscsikit.config.registry import REGISTRY, RecordType

    def bound(key: str) -> bool:
        return iface.get(key) not in ("", "default")

    changes: dict[str, str] = {}
    try:
        if iface.is_builtin:
            raise IscsiError(f"iface {iface.name} is a special interface and cannot be modified.")
        for name, value in cmd.args.params:
            if bound("iface.hwaddress") and name == "iface.net_ifacename":
                raise IscsiError(
                    "Can not update interface binding from hwaddress to "
                    "net_ifacename. You must delete the interface and create "
                    "a new one"
                )
            if bound("iface.net_ifacename") and name == "iface.hwaddress":
                raise IscsiError(
                    "Can not update interface binding from net_ifacename to "
                    "hwaddress. You must delete the interface and create a new one"
                )
            key = REGISTRY.check_modifiable(RecordType.IFACE, name)
            if key.family not in (None, iface.family):
                raise IscsiError(f"Cannot modify {name}. Invalid param name.")
            changes[key.name] = REGISTRY.validate(RecordType.IFACE, key.name, value, lenient=True)
    except IscsiError as exc:
        cmd.err(str(exc))
        cmd.err(f"Could not update iface {iface.name}: invalid parameter")
        return None
    return changes


def _update(cmd: _Cmd, iface: IfaceRecord) -> None:
    """Apply ``-n/-v`` to a stored iface and its nodes; the errors do not change the exit
    code (iscsiadm 2.1.8 ignores them)."""
    changes = _changes(cmd, iface)
    if changes is None:
        return
    iface.values.update(changes)
    cmd.env.records().update_iface(iface)
    cmd.say(f"{iface.name} updated.")


def _new(cmd: _Cmd, name: str | None) -> int:
    from iscsikit.records import IfaceRecord

    cmd.doc["op"] = "new"
    if name is None:
        raise IscsiError(
            "Could not add interface. No interface passed in.", code=IscsiErr.SYSFS_LOOKUP
        )
    if name in _BUILTIN:
        cmd.err(
            f"iface {name} is a special interface and is not stored in "
            f"{cmd.env.records().layout.ifaces}."
        )
        raise IscsiError(f"Could not create new interface {name}.", code=IscsiErr.INVAL)
    try:
        iface = IfaceRecord.new(name)
        cmd.env.records().add_iface(iface)
    except IscsiError as exc:
        cmd.err(str(exc))
        raise IscsiError(f"Could not create new interface {name}.", code=IscsiErr.IDBM) from exc
    _update(cmd, cmd.env.records().iface(name))
    cmd.say(f"New interface {name} added")
    cmd.doc["ifaces"] = [jsonout.iface_json(cmd.env.records().iface(name), record=True)]
    return 0


def _stored(cmd: _Cmd, name: str, what: str) -> IfaceRecord:
    try:
        return cmd.env.records().iface(name)
    except IscsiError:
        cmd.err(f"Could not read iface info for {name}.")
        raise IscsiError(
            f"Could not {what} iface {name}: invalid parameter", code=IscsiErr.INVAL
        ) from None


def _delete(cmd: _Cmd, name: str | None) -> int:
    from iscsikit.manager.sessions import session_service

    cmd.doc["op"] = "delete"
    if name is None:
        raise IscsiError("Could not delete interface. No interface passed in.", code=IscsiErr.INVAL)
    if name in _BUILTIN:
        cmd.err(f"iface {name} is a special interface and cannot be deleted.")
        raise IscsiError(f"Could not delete iface {name}: invalid parameter", code=IscsiErr.INVAL)
    iface = _stored(cmd, name, "delete")
    records = cmd.env.records()
    in_use = [s.sid for s in session_service(cmd.env).sessions() if s.iface == name]
    if in_use:
        cmd.err(f"iface {name} is used by session(s) {', '.join(map(str, in_use))}: log out first")
        raise IscsiError(
            f"Could not delete iface {name}: session exists", code=IscsiErr.SESS_EXISTS
        )
    nodes = records.nodes(iface=name)
    records.delete_iface(iface)
    cmd.say(f"{name} unbound and deleted.")
    cmd.doc["ifaces"] = [jsonout.iface_json(iface, nodes=[n for n in nodes if n.tpgt != -1])]
    return 0


def _has_net_config(iface: IfaceRecord) -> bool:
    """Whether ``apply`` has network settings to push to an offload HBA (an address or
    DHCP for IPv4; an address or autoconfiguration for IPv6), as iscsiadm decides."""
    address = iface.get("iface.ipaddress")
    if iface.family == "ipv4":
        return iface.get("iface.bootproto") == "dhcp" or address not in ("", "0.0.0.0")
    autocfg = ("iface.ipv6_autocfg", "iface.linklocal_autocfg", "iface.router_autocfg")
    return address not in ("", "::") or any(iface.get(k) for k in autocfg)


def _apply(cmd: _Cmd, op: int) -> int:
    """``apply``/``applyall``: SET_IFACE_PARAMS through the iface's offload driver; an
    iface without network settings has nothing to configure; one with them and no
    offload driver fails as iscsiadm without the HBA (exit 1)."""
    if op == _APPLY:
        cmd.doc["op"] = "apply"
        if cmd.name is None:
            raise IscsiError("Apply requires iface.", code=IscsiErr.INVAL)
        ifaces = [_offload_iface(cmd, cmd.name)]
        done = f"{cmd.name} applied."
        host: int | None = None
    else:
        cmd.doc["op"] = "applyall"
        host = _host_no(cmd)
        attached = _host_ifaces(cmd, host)
        if attached is None:
            cmd.err(f"Could not read proc_name for host{host}.")
            attached = cmd.env.records().ifaces()
        ifaces = attached
        done = f"Applied settings to ifaces attached to host{host}."
    if not any(_has_net_config(i) for i in ifaces):
        cmd.say(done)
        cmd.err("Nothing to configure.")
        return 0
    driver = _driver(cmd, ifaces[0].transport)
    if driver is None:
        cmd.err("no offload HBA to configure: iSCSI netlink is not available")
        raise IscsiError("Could not apply net configuration: unknown error", code=IscsiErr.ERR)
    from iscsikit.netlink import NetlinkRequestError

    attrs = [a for i in ifaces for a in driver.net_config(i.values)]
    if host is None:
        found = driver.host_by_hwaddress(ifaces[0].get("iface.hwaddress"))
        if found is None:
            cmd.err("Can't find host_no.")
            raise IscsiError("Could not apply net configuration: unknown error", code=IscsiErr.ERR)
        host = found.host_no
    try:
        driver.host(host).set_iface_params(attrs)
    except NetlinkRequestError as exc:
        cmd.err(f"Set net_config failed. errno={exc.errno}")
        raise IscsiError(
            "Could not apply net configuration: unknown error", code=IscsiErr.ERR
        ) from None
    cmd.say(done)
    return 0


def _driver(cmd: _Cmd, transport: str) -> OffloadDriver | None:
    from iscsikit.cli.modes.host import offload_driver

    return offload_driver(transport, cmd.env.paths.root)


def _host_ifaces(cmd: _Cmd, host_no: int) -> list[IfaceRecord] | None:
    """``applyall``: the ifaces whose MAC is host ``host_no``'s (iscsiadm's
    ``iface_for_each_iface`` matching the host's hwaddress); None when no offload driver
    serves the host."""
    from iscsikit.sysfs import SysfsContext

    host = SysfsContext(cmd.env.paths.root).host(host_no)
    if host is None or host.transport_name is None:
        return None
    if _driver(cmd, host.transport_name) is None:
        return None
    mac = (host.hwaddress or "").lower()
    return [i for i in _all(cmd) if i.get("iface.hwaddress").lower() == mac and mac]


def _offload_iface(cmd: _Cmd, name: str) -> IfaceRecord:
    try:
        return _read(cmd, name, IscsiErr.IDBM)
    except IscsiError:
        raise IscsiError(f"Could not read iface {name} (6).", code=IscsiErr.IDBM) from None


def _host_no(cmd: _Cmd) -> int:
    """``-H``: a host number (:func:`~iscsikit.cli.options.host_number`), or a MAC
    address matched against the iSCSI hosts."""
    value = cmd.args.host or "0"
    number = host_number(value)
    if number is not None:
        return number
    hosts = cmd.env.paths.root / "sys" / "class" / "iscsi_host"
    for entry in sorted(hosts.glob("host*")):
        try:
            if (entry / "hwaddress").read_text().strip().lower() == value.lower():
                return int(entry.name[4:])
        except (OSError, ValueError):
            continue
    raise IscsiError("Could not match MAC to host.", code=IscsiErr.INVAL)


def _ping(cmd: _Cmd) -> int:
    """``-C ping``: iscsiadm's checks, then one failed attempt per packet (exit 1): a
    ping goes out through an offload HBA's iSCSI netlink interface, which iscsikit
    does not drive."""
    import ipaddress
    import socket

    args = cmd.args
    cmd.doc["op"] = "ping"
    if cmd.name is None:
        raise IscsiError("Ping requires iface.", code=IscsiErr.INVAL)
    if not args.ip:
        raise IscsiError("Ping requires destination ipaddress.", code=IscsiErr.INVAL)
    count = 1 if args.count is None else args.count
    interval = 0 if args.interval is None else args.interval
    size = 32 if args.packetsize is None else args.packetsize
    if size <= 0:
        raise IscsiError(f"Invalid packet size: {size}.", code=IscsiErr.INVAL)
    if count <= 0:
        raise IscsiError(f"Invalid number of packets to transmit: {count}.", code=IscsiErr.INVAL)
    if interval < 0:
        raise IscsiError(f"Invalid timing interval: {interval}.", code=IscsiErr.INVAL)
    _offload_iface(cmd, cmd.name)
    try:
        ipaddress.ip_address(args.ip)
    except ValueError:
        try:
            socket.getaddrinfo(args.ip, None)
        except (OSError, UnicodeError) as exc:
            cmd.err(f"Cannot resolve host {args.ip}. getaddrinfo error: [{exc}]")
            raise IscsiError("Invalid IP address.", code=IscsiErr.INVAL) from None
    iface = _offload_iface(cmd, cmd.name)
    driver = _driver(cmd, iface.transport)
    found = driver.host_by_hwaddress(iface.get("iface.hwaddress")) if driver else None
    if driver is not None and found is None:
        raise IscsiError("Can't find host_no.", code=IscsiErr.INVAL)
    pings: list[dict[str, Any]] = cmd.doc.setdefault("pings", [])
    if driver is not None and found is not None:
        return _offload_ping(cmd, driver.host(found.host_no), iface, count, interval, size)
    for seq in range(1, count + 1):
        cmd.say(f"Ping {seq} failed: unknown error")
        cmd.err(
            f"iface {cmd.name}: no offload HBA to send the ping through "
            "(iSCSI netlink is not available)"
        )
        pings.append({"seq": seq, "error": jsonout.error_json(int(IscsiErr.ERR))})
        if seq < count and interval:
            time.sleep(interval)
    return int(IscsiErr.ERR)


def _offload_ping(
    cmd: _Cmd, host: OffloadHostOps, iface: IfaceRecord, count: int, interval: int, size: int
) -> int:
    """PING per packet through ``host`` (usr/iscsiadm.c ``exec_ping_op``): the status of
    each as iscsiadm words it; the exit code is the last packet's error, if any."""
    from iscsikit.netlink import NetlinkRequestError
    from iscsikit.netlink.constants import IfaceType

    ip = cmd.args.ip or ""
    iface_type = IfaceType.IPV6 if ":" in iface.get("iface.ipaddress") else IfaceType.IPV4
    pings: list[dict[str, Any]] = cmd.doc.setdefault("pings", [])
    rc = 0
    for seq in range(1, count + 1):
        status = 0
        try:
            status = host.ping(
                ip, iface_num=int(iface.get("iface.iface_num") or 0), iface_type=iface_type,
                size=size,
            )  # fmt: skip
            rc = 0
        except NetlinkRequestError as exc:
            rc = int(_PING_ERRORS.get(exc.errno, IscsiErr.ERR))
        except IscsiError as exc:  # no PING_COMP in time
            rc = int(exc.code) if exc.code is not None else int(IscsiErr.ERR)
        if not rc and not status:
            cmd.say(f"Ping {seq} completed")
            pings.append({"seq": seq, "status": 0})
        elif status:
            cmd.say(f"Ping {seq} failed: {_ping_status_text(status)}")
            pings.append({"seq": seq, "status": status})
        else:
            cmd.say(f"Ping {seq} failed: {MESSAGES.get(IscsiErr(rc), 'unknown error')}")
            pings.append({"seq": seq, "error": jsonout.error_json(rc)})
        if seq < count and interval:
            time.sleep(interval)
    return rc


#: ``kexec_ping``'s mapping of a refused PING.
_PING_ERRORS = {errno.ENOSYS: IscsiErr.OP_NOT_SUPP, errno.EINVAL: IscsiErr.INVAL}
#: ``iscsi_ping_stat_strs`` (usr/iscsiadm.c), by ``enum iscsi_ping_status_code``.
_PING_STATUS = (
    "success", "firmware disabled", "invalid IP address", "invalid link local IPv6 address",
    "timed out", "invalid destination address", "oversized packet", "ICMP error",
    "Max request exceeded", "No ARP response received",
)  # fmt: skip


def _ping_status_text(status: int) -> str:
    # iscsiadm passes NULL to printf for a status it does not know: glibc prints "(null)".
    return _PING_STATUS[status] if 0 < status < len(_PING_STATUS) else "(null)"


def _dispatch(cmd: _Cmd) -> int:
    args = cmd.args
    with contextlib.suppress(OSError):  # iscsiadm creates it whenever iface mode runs
        os.makedirs(cmd.env.records().layout.ifaces, mode=0o700, exist_ok=True)
    if len(args.ifaces) > 1:
        cmd.err(f"iface mode only accepts one interface. Using the first one {cmd.name}.")
    if args.submode == "ping":
        return _ping(cmd)
    op = args.op_mask
    if op in (0, _SHOW):
        return _show(cmd)
    if op == _NEW:
        return _new(cmd, cmd.name)
    if op == _DELETE:
        return _delete(cmd, cmd.name)
    if op == _UPDATE:
        cmd.doc["op"] = "update"
        if cmd.name is None or not args.params:
            raise IscsiError("Update requires name, value, and iface.", code=IscsiErr.INVAL)
        if cmd.name in _BUILTIN:
            from iscsikit.records import IfaceRecord

            _update(cmd, IfaceRecord.builtin(cmd.name))
        else:
            try:
                iface = cmd.env.records().iface(cmd.name)
            except IscsiError:
                raise IscsiError(
                    f"Could not read iface info for {cmd.name}.", code=IscsiErr.INVAL
                ) from None
            _update(cmd, iface)
        cmd.doc["ifaces"] = [jsonout.iface_json(cmd.env.records().iface(cmd.name))]
        return 0
    if op in (_APPLY, _APPLYALL):
        return _apply(cmd, op)
    return int(IscsiErr.INVAL)  # iscsiadm: any other op (or two at once), silently


def run(args: ParsedArgs, env: CliEnv) -> int:
    """``-m iface`` (see the module docstring)."""
    cmd = _Cmd(args, env)
    try:
        code = _dispatch(cmd)
    except IscsiError as exc:
        if cmd.json:
            jsonout.emit_error(env, "iface", int(exc.code), str(exc), cmd.doc)
        raise
    if cmd.json:
        if code:
            cmd.doc["error"] = jsonout.error_json(code)
        jsonout.emit(env, "iface", cmd.doc)
    return code
