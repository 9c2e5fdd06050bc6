"""``-m host``: list iSCSI hosts (``-P 0..4``) and the HBA sub-modes ``-C chap``,
``-C flashnode`` and ``-C stats``.

Formats are iscsiadm 2.1.8's usr/host.c, compared with the real iscsiadm on
kernel-shaped sysfs trees.  As in 2.1.8, ``-H`` does not narrow the listing (it only
names the host of a sub-mode, by number or by MAC).  The sub-modes' operations talk
to the kernel over NETLINK_ISCSI, which iscsikit does not drive yet: they fail as
iscsiadm fails where netlink cannot be opened (exit 9), after the same checks
(transport of the host: 12; no flash nodes: 21).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from iscsikit.cli.modes.session import (
    IFACE,
    PARAMS,
    SCSI_DEVS,
    STATE,
    session_tree,
    version_header,
)
from iscsikit.errors import IscsiErr, IscsiError
from iscsikit.manager.sessions import grouped

if TYPE_CHECKING:
    from iscsikit.cli.env import CliEnv
    from iscsikit.cli.options import ParsedArgs
    from iscsikit.manager.sessions import SessionInfo
    from iscsikit.sysfs import HostIface, IscsiHost, SysfsContext

__all__ = ["host_flat_line", "host_json", "host_tree", "run"]

EMPTY = "<empty>"
HOST_LEVEL_FLAGS = {1: 0, 2: IFACE | STATE, 3: IFACE | STATE | PARAMS}
HOST_LEVEL_FLAGS[4] = HOST_LEVEL_FLAGS[3] | SCSI_DEVS
_NETLINK = (
    "{what}: the kernel's iSCSI netlink interface (NETLINK_ISCSI) is not driven by iscsikit yet"
)


def _e(value: str | None) -> str:
    return value if value else EMPTY


def _ip(value: str | None, empty: str = EMPTY) -> str:
    if not value:
        return empty
    return value if "." in value else f"[{value}]"


def _transport(host: IscsiHost) -> str:
    t = host.transport()
    return t.name if t is not None else ""


def _iname(host: IscsiHost) -> str:
    return host.initiatorname or ""


def host_flat_line(host: IscsiHost) -> str:
    """``-P 0``: ``tcp: [2] 10.0.0.1,[<hw>],<netdev> <initiatorname>``."""
    ip = host.ipaddress
    ip_part = EMPTY if not ip else (ip if "." in ip else f"[{ip}]")
    return (
        f"{_e(_transport(host))}: [{host.host_no}] {ip_part},[{_e(host.hwaddress)}],"
        f"{_e(host.netdev)} {_e(_iname(host))}\n"
    )


def _iface_block(iface: HostIface, host: IscsiHost, p: str) -> list[str]:
    a = iface.attr
    lines = [f"{p}**********\n", f"{p}Interface:\n", f"{p}**********\n"]
    lines.append(f"{p}Kernel Name: {iface.name}\n")
    ip = a("ipaddress") or ""
    if not ip:
        lines.append(f"{p}IPaddress: {EMPTY}\n")
    elif "." in ip:
        lines.append(f"{p}IPaddress: {ip}\n")
        lines.append(f"{p}Gateway: {_e(a('gateway'))}\n")
        lines.append(f"{p}Subnet: {_e(a('subnet'))}\n")
        lines.append(f"{p}BootProto: {_e(a('bootproto'))}\n")
    else:
        lines.append(f"{p}IPaddress: [{ip}]\n")
        lines.append(f"{p}IPaddress Autocfg: {_e(a('ipaddr_autocfg'))}\n")
        lines.append(f"{p}Link Local Address: {_ip(a('link_local_addr'))}\n")
        lines.append(f"{p}Link Local Autocfg: {_e(a('link_local_autocfg'))}\n")
        lines.append(f"{p}Router Address: {_ip(a('router_addr'))}\n")
    lines.append(f"{p}Port State: {_e(host.attr('port_state'))}\n")
    lines.append(f"{p}Port Speed: {_e(host.attr('port_speed'))}\n")
    for label, key, unset in (
        ("Port", "port", 0),
        ("MTU", "mtu", 0),
        ("VLAN ID", "vlan_id", 0xFFFF),
        ("VLAN priority", "vlan_priority", 0xFF),
    ):
        value = iface.attr_int(key)
        value = unset if value is None else value
        lines.append(f"{p}{label}: {EMPTY if value == unset else value}\n")
    return lines


def host_tree(host: IscsiHost, flags: int, sessions: list[SessionInfo]) -> str:
    """``-P 1..4`` for one host (usr/host.c ``host_info_print_tree``)."""
    out = [f"Host Number: {host.host_no}\n", f"\tState: {host.state or 'Unknown'}\n"]
    out.append(f"\tTransport: {_e(_transport(host))}\n")
    out.append(f"\tInitiatorname: {_e(_iname(host))}\n")
    out.append(f"\tIPaddress: {_ip(host.ipaddress)}\n")
    out.append(f"\tHWaddress: {_e(host.hwaddress)}\n")
    out.append(f"\tNetdev: {_e(host.netdev)}\n")
    for iface in host.ifaces():
        out += _iface_block(iface, host, "\t")
    mine = [s for s in sessions if s.host_no == host.host_no]
    if flags and mine:
        out += ["\t*********\n", "\tSessions:\n", "\t*********\n"]
        out.append(session_tree(grouped(mine), flags, prefix="\t"))
    return "".join(out)


def _host_arg(args: ParsedArgs, ctx: SysfsContext) -> int:
    """``-H``: a MAC (``aa:bb:..``) or a number (C strtoul: junk reads as 0)."""
    value = args.host
    if value is None:
        return 0
    if ":" in value:
        host = ctx.host_by_hwaddress(value)
        if host is None:
            raise IscsiError("Could not match MAC to host.", code=IscsiErr.INVAL)
        return host.host_no
    digits = ""
    for c in value.lstrip():
        if not c.isdigit():
            break
        digits += c
    return int(digits) if digits else 0


def _submode(args: ParsedArgs, env: CliEnv, ctx: SysfsContext, submode: str) -> int:
    if submode == "chap" and not args.ops:
        raise IscsiError("CHAP mode requires host no and valid operation", code=IscsiErr.INVAL)
    host_no = _host_arg(args, ctx)
    host = ctx.host(host_no)
    if host is None or host.transport() is None:
        raise IscsiError(
            f"Could not match hostno {host_no} to transport.", code=IscsiErr.TRANS_NOT_FOUND
        )
    if submode == "chap":
        if "new" in args.ops and not args.params:
            env.err("Chap username/password not provided.")
            return 0
        raise IscsiError(_NETLINK.format(what="CHAP entries"), code=IscsiErr.INTERNAL)
    if submode == "stats":
        raise IscsiError(_NETLINK.format(what="host statistics"), code=IscsiErr.INTERNAL)
    if args.ops:
        raise IscsiError(_NETLINK.format(what="flash node operations"), code=IscsiErr.INTERNAL)
    nodes = host.flashnodes()
    if args.index is not None:
        node = next((n for n in nodes if n.index == args.index), None)
        if node is None:
            raise IscsiError(
                f"Could not read info for flashnode {args.index} of host {host_no}, "
                "No such file or directory",
                code=IscsiErr.SESS_NOT_FOUND,
            )
        attrs = {**node.attributes(), **node.conn().attributes()}
        env.out("".join(f"flashnode.{k} = {v or EMPTY}\n" for k, v in sorted(attrs.items())))
        return 0
    if not nodes:
        raise IscsiError(f"No flashnodes attached to host {host_no}.", code=IscsiErr.NO_OBJS_FOUND)
    transport = _transport(host)
    for n in nodes:
        conn = n.conn()
        env.out(
            f"{transport}: [{n.index}] {conn.attr('ipaddress') or ''}:{conn.attr_int('port', 0)},"
            f"{n.attr_int('tpgt', 0)} {n.attr('targetname') or ''}\n"
        )
    return 0


def host_json(host: IscsiHost) -> dict[str, Any]:
    """A host for ``--output json``: what ``-P 1`` prints, and its sessions' ids."""
    return {
        "host_no": host.host_no,
        "state": host.state,
        "transport": _transport(host),
        "initiatorname": _iname(host),
        "ipaddress": host.ipaddress or "",
        "hwaddress": host.hwaddress or "",
        "netdev": host.netdev or "",
        "ifaces": [{"name": i.name, **i.attributes()} for i in host.ifaces()],
        "sessions": [s.sid for s in host.sessions()],
    }


def run(args: ParsedArgs, env: CliEnv) -> int:
    from iscsikit.cli.modes.session import json_run
    from iscsikit.sysfs import SysfsContext

    def hosts() -> dict[str, Any]:
        if args.submode in ("chap", "flashnode", "stats", "ping"):
            return {}
        return {"hosts": [host_json(h) for h in SysfsContext.from_paths(env.paths).hosts()]}

    return json_run("host", args, env, _run, hosts)


def _run(args: ParsedArgs, env: CliEnv) -> int:
    from iscsikit.sysfs import SysfsContext

    ctx = SysfsContext.from_paths(env.paths)
    if args.host is not None and ":" in args.host:
        _host_arg(args, ctx)  # iscsiadm resolves a MAC while parsing, whatever the mode does
    if args.submode == "ping":
        env.err("Invalid Sub Mode")
        return 0
    if args.submode in ("chap", "flashnode", "stats"):
        return _submode(args, env, ctx, args.submode)
    level = args.print_level
    if level not in (-1, 0, *HOST_LEVEL_FLAGS):
        raise IscsiError(f"Invalid info level {level}. Try 0 - 4.", code=IscsiErr.INVAL)
    hosts = ctx.hosts()
    if not hosts:
        raise IscsiError("No iSCSI hosts.", code=IscsiErr.NO_OBJS_FOUND)
    if level in (-1, 0):
        env.out("".join(host_flat_line(h) for h in hosts))
        return 0
    flags = HOST_LEVEL_FLAGS[level]
    sessions: list[SessionInfo] = []
    if flags:
        sessions = env.session_service().sessions()
    header = version_header(env) if level == 4 else ""
    env.out(header + "".join(host_tree(h, flags, sessions) for h in hosts))
    return 0
