"""``-m host``: list iSCSI hosts (``-P 0..4``) and the HBA sub-modes ``-C chap``,
``-C flashnode`` and ``-C stats``.

Formats are iscsiadm 2.1.8's usr/host.c, compared with the real iscsiadm on
kernel-shaped sysfs trees.  As in 2.1.8, ``-H`` does not narrow the listing (it only
names the host of a sub-mode, by number or by MAC).

The sub-modes talk to the host's driver over NETLINK_ISCSI (usr/iscsiadm.c): ``-C chap``
(``-o show``: GET_CHAP, each entry as a ``host.auth.*`` record; ``new``/``update``:
SET_CHAP at ``-x``; ``delete``: DELETE_CHAP), ``-C stats`` (GET_HOST_STATS, ``Host
Statistics:`` and the 82 counters as iscsiadm prints them) and the ``-C flashnode`` ops
(``new -A ipv4|ipv6``, ``update -n flashnode.* -v ..``, ``delete``, ``login``,
``logout`` at ``-x``).  They go through
the offload driver plugin registered under the host's transport name (an
:class:`~iscsikit.plugin.transport.OffloadDriver`: ``iscsikit_drivers.offload``, tested
against **simulated** hosts, docs/offload.md).  A host whose transport has no such
driver (``tcp``) fails as before, as iscsiadm fails where netlink cannot serve it
(exit 9), after the same checks (transport of the host: 12; no flash nodes: 21).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from iscsikit.cli.modes.session import (
    IFACE,
    PARAMS,
    SCSI_DEVS,
    STATE,
    session_tree,
    version_header,
)
from iscsikit.cli.options import host_number
from iscsikit.errors import IscsiErr, IscsiError

# Listing hosts is start-up bound (``-m host`` on a machine without an HBA: exit 21):
# the netlink codec, the session layer, the record format and the driver plugins are
# imported by the functions that use them (bench/startup_bench.py).
if TYPE_CHECKING:
    from iscsikit.cli.env import CliEnv
    from iscsikit.cli.options import ParsedArgs
    from iscsikit.manager.sessions import SessionInfo
    from iscsikit.netlink import NetlinkRequestError
    from iscsikit.netlink.wire import ChapRecord
    from iscsikit.plugin.transport import OffloadDriver, OffloadHostOps
    from iscsikit.sysfs import HostIface, IscsiHost, SysfsContext
    from iscsikit.sysfs.host import Flashnode

__all__ = [
    "chap_json",
    "chap_record_text",
    "flashnode_json",
    "host_flat_line",
    "host_json",
    "host_stats_text",
    "host_tree",
    "offload_driver",
    "run",
]

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
        from iscsikit.manager.sessions import grouped

        out += ["\t*********\n", "\tSessions:\n", "\t*********\n"]
        out.append(session_tree(grouped(mine), flags, prefix="\t"))
    return "".join(out)


def _host_arg(args: ParsedArgs, ctx: SysfsContext) -> int:
    """``-H``: a MAC (``aa:bb:..``) or a number (:func:`~iscsikit.cli.options.host_number`)."""
    value = args.host
    if value is None:
        return 0
    number = host_number(value)
    if number is None:
        host = ctx.host_by_hwaddress(value)
        if host is None:
            raise IscsiError("Could not match MAC to host.", code=IscsiErr.INVAL)
        return host.host_no
    return number


# -- offload drivers ---------------------------------------------------------------------


def offload_driver(transport: str | None, root: Path) -> OffloadDriver | None:
    """The offload driver registered as ``transport``, reading the tree under ``root``;
    None when no plugin of that name drives offload hosts."""
    if not transport:
        return None
    from iscsikit.plugin import manager
    from iscsikit.plugin.transport import OffloadDriver

    registry = manager.transports()
    if transport not in registry:
        return None
    driver = registry.create(transport)
    return driver.at_root(root) if isinstance(driver, OffloadDriver) else None


def chap_record_text(record: ChapRecord) -> str:
    """One CHAP entry as ``idbm_print(IDBM_PRINT_TYPE_HOST_CHAP, .., show=1)`` prints it:
    index, then username and password (``_in`` for an incoming entry), in the clear."""
    from iscsikit.netlink.constants import ChapType
    from iscsikit.records.fileformat import BEGIN_PREFIX, END_LINE, RECORD_VERSION

    suffix = "_in" if record.chap_type == ChapType.IN else ""
    password = record.password.split(b"\0", 1)[0].decode("utf-8", "backslashreplace")
    lines = [
        f"{BEGIN_PREFIX} {RECORD_VERSION}",
        f"host.auth.tbl_idx = {record.chap_tbl_idx}",
        f"host.auth.username{suffix} = {record.username or EMPTY}",
        f"host.auth.password{suffix} = {password or EMPTY}",
        END_LINE,
    ]
    return "".join(f"{line}\n" for line in lines)


def host_stats_text(counters: Mapping[str, int]) -> str:
    """``print_host_stats``: the header and every counter (``%lld``: signed)."""

    lines = "".join(f"\t{k}: {v}\n" for k, v in _signed(counters).items())
    return "Host Statistics:\n" + lines


def _chap(args: ParsedArgs, env: CliEnv, ops: OffloadHostOps, found: dict[str, Any]) -> int:
    from iscsikit.netlink import NetlinkRequestError

    op = args.ops[0]
    if op == "show":
        try:
            entries = ops.chap_entries()
        except NetlinkRequestError as exc:
            env.err(f"get_chap_info failed. errno={exc.errno}")
            return int(IscsiErr.ERR)
        found["chap"] = [chap_json(e, show_secrets=args.show) for e in entries]
        if args.output != "json":
            env.out("".join(chap_record_text(e) for e in entries))
        return 0
    if op in ("new", "update"):
        return _set_chap(args, env, ops)
    if op == "delete":
        index = args.index
        if index is None or index > _MAX_CHAP_ENTRIES:
            env.err("Invalid chap table index.")
            return 0
        try:
            ops.delete_chap(index)
        except NetlinkRequestError as exc:
            env.err("CHAP Delete failed.")
            return _busy(env, exc, index)
        return 0
    raise IscsiError("Invalid operation.", code=IscsiErr.INVAL)


def _set_chap(args: ParsedArgs, env: CliEnv, ops: OffloadHostOps) -> int:
    """``new``/``update``: one username/password pair (out, or ``_in``) at ``-x``."""
    from iscsikit.netlink import NetlinkRequestError
    from iscsikit.netlink.constants import ChapType

    params = dict(args.params)
    kinds = {
        ChapType.OUT: ("host.auth.username", "host.auth.password"),
        ChapType.IN: ("host.auth.username_in", "host.auth.password_in"),
    }
    found = [t for t, keys in kinds.items() if all(k in params for k in keys)]
    if len(found) != 1:
        raise IscsiError(
            "Invalid username/password pair passed. Unable to determine the type of chap entry",
            code=IscsiErr.INVAL,
        )
    if len(args.params) > 2:
        raise IscsiError("Only one pair of username/password can be passed.", code=IscsiErr.ERR)
    user_key, password_key = kinds[found[0]]
    index = args.index or 0
    try:
        ops.set_chap(index, found[0], params[user_key], params[password_key])
    except NetlinkRequestError as exc:
        env.err("CHAP setting failed")
        return _busy(env, exc, index)
    return 0


def _busy(env: CliEnv, exc: NetlinkRequestError, index: int) -> int:
    import errno

    if exc.errno == errno.EBUSY:
        env.err(f"CHAP index {index} is in use.")
        return int(IscsiErr.BUSY)
    return int(IscsiErr.ERR)


def _flashnode_op(args: ParsedArgs, env: CliEnv, ops: OffloadHostOps, host_no: int) -> int:
    from iscsikit.netlink import NetlinkRequestError

    op = args.ops[0]
    if op == "new":
        portal_type = (args.portal_type or "").lower()
        if portal_type not in ("ipv4", "ipv6"):
            raise IscsiError("Invalid type mentioned for flashnode", code=IscsiErr.INVAL)
        try:
            index = ops.new_flashnode(portal_type)
        except NetlinkRequestError:
            env.err(f"Creation of flashnode for host {host_no} failed.")
            return int(IscsiErr.ERR)
        env.err(f"New flashnode for host {host_no} added at index {index}.")
        return 0
    if args.index is None or args.index > _MAX_FLASHNODE_IDX:
        raise IscsiError("Invalid flashnode index", code=IscsiErr.INVAL)
    index = args.index
    if op == "update":
        return _flashnode_update(args, env, ops, host_no, index)
    done, failed = _FLASHNODE_MESSAGES.get(op, (None, None))
    if done is None or failed is None:
        raise IscsiError("Invalid operation", code=IscsiErr.INVAL)
    try:
        ops.flashnode(op, index)
    except NetlinkRequestError:
        env.err(failed.format(index=index, host=host_no))
        return int(IscsiErr.ERR)
    env.err(done.format(index=index, host=host_no))
    return 0


def _flashnode_update(
    args: ParsedArgs, env: CliEnv, ops: OffloadHostOps, host_no: int, index: int
) -> int:
    """``-o update -n flashnode.* -v ..`` (usr/iscsiadm.c ``iscsi_set_flashnode_params``):
    the node is read first (missing: ``Could not read info for flashnode N, <strerror>``,
    exit errno), then the driver checks and builds the parameters (iscsiadm's messages),
    then SET_FLASHNODE_PARAMS (refused: exit 1)."""
    import errno
    import os

    from iscsikit.netlink import NetlinkRequestError
    from iscsikit.sysfs import SysfsContext

    failed = f"Update for flashnode {index} of host {host_no} failed."
    node = next(
        (n for n in _flashnodes(SysfsContext.from_paths(env.paths), host_no) if n.index == index),
        None,
    )
    if node is None:
        env.err(f"Could not read info for flashnode {index}, {os.strerror(errno.ENOENT)}")
        env.err(failed)
        return errno.ENOENT
    try:
        ops.update_flashnode(index, list(args.params), node.attr("portal_type") or "")
    except IscsiError as exc:
        env.err(str(exc))
        env.err(failed)
        return int(exc.code)
    except NetlinkRequestError:
        env.err(failed)
        return int(IscsiErr.ERR)
    env.err(f"Update for flashnode {index} of host {host_no} successful.")
    return 0


def _flashnodes(ctx: SysfsContext, host_no: int) -> list[Flashnode]:
    host = ctx.host(host_no)
    return host.flashnodes() if host is not None else []


_MAX_CHAP_ENTRIES = 2048
_MAX_FLASHNODE_IDX = 0xFFFFFFFF
_FLASHNODE_MESSAGES = {
    "delete": ("Flashnode {index} of host {host} deleted.",
               "Deletion of flashnode {index} of host {host} failed."),
    "login": ("Login to flashnode {index} of host {host} successful.",
              "Login to flashnode {index} of host {host} failed."),
    "logout": ("Logout of flashnode {index} of host {host} successful.",
               "Logout of flashnode {index} of host {host} failed."),
}  # fmt: skip


def _submode(
    args: ParsedArgs, env: CliEnv, ctx: SysfsContext, submode: str, found: dict[str, Any]
) -> int:
    """``-C chap|stats|flashnode``; ``found`` gets the ``--output json`` objects (the
    text records are printed only in text mode: they would repeat them, secrets and all,
    as ``messages``)."""
    from iscsikit.netlink import NetlinkRequestError

    text = args.output != "json"
    if submode == "stats":
        found["op"] = "stats"
    elif args.ops and (submode == "chap" or args.ops[0] != "show"):
        found["op"] = args.ops[0]
    else:
        found["op"] = "show" if args.index is not None else "list"
    if submode == "chap" and not args.ops:
        raise IscsiError("CHAP mode requires host no and valid operation", code=IscsiErr.INVAL)
    host_no = _host_arg(args, ctx)
    host = ctx.host(host_no)
    if host is None or host.transport() is None:
        # iscsiadm reads the SCSI host's proc_name first; sysfs answers EIO (5) without one.
        if not (ctx.class_dir("scsi_host") / f"host{host_no}" / "proc_name").exists():
            env.err(f"Could not read proc_name for host{host_no} rc 5.")
        raise IscsiError(
            f"Could not match hostno {host_no} to transport.", code=IscsiErr.TRANS_NOT_FOUND
        )
    driver = offload_driver(host.transport_name, ctx.root)
    ops = driver.host(host_no) if driver is not None else None
    if submode == "chap":
        if "new" in args.ops and not args.params:
            env.err("Chap username/password not provided.")
            return 0
        if ops is None:
            raise IscsiError(_NETLINK.format(what="CHAP entries"), code=IscsiErr.INTERNAL)
        return _chap(args, env, ops, found)
    if submode == "stats":
        if ops is None:
            raise IscsiError(_NETLINK.format(what="host statistics"), code=IscsiErr.INTERNAL)
        try:
            counters = ops.host_stats()
        except NetlinkRequestError as exc:
            env.err(f"get_host_stats failed. errno={exc.errno}")
            return int(IscsiErr.ERR)
        found["stats"] = [{"host_no": host_no, **_signed(counters)}]
        if text:
            env.out(host_stats_text(counters))
        return 0
    if args.ops and args.ops[0] != "show":
        if ops is None:
            raise IscsiError(_NETLINK.format(what="flash node operations"), code=IscsiErr.INTERNAL)
        return _flashnode_op(args, env, ops, host_no)
    nodes = host.flashnodes()
    if args.index is not None:
        node = next((n for n in nodes if n.index == args.index), None)
        if node is None:
            raise IscsiError(
                f"Could not read info for flashnode {args.index} of host {host_no}, "
                "No such file or directory",
                code=IscsiErr.SESS_NOT_FOUND,
            )
        found["flashnodes"] = [flashnode_json(node, show_secrets=args.show)]
        if text:
            env.out(flashnode_record_text(node))
        return 0
    if not nodes:
        raise IscsiError(f"No flashnodes attached to host {host_no}.", code=IscsiErr.NO_OBJS_FOUND)
    found["flashnodes"] = [flashnode_json(n, show_secrets=args.show) for n in nodes]
    transport = _transport(host)
    for n in nodes if text else ():
        conn = n.conn()
        env.out(
            f"{transport}: [{n.index}] {conn.attr('ipaddress') or ''}:{conn.attr_int('port', 0)},"
            f"{n.attr_int('tpgt', 0)} {n.attr('targetname') or ''}\n"
        )
    return 0


def _signed(counters: Mapping[str, int]) -> dict[str, int]:
    """The counters as ``%lld`` prints them (u64 read as signed), in iscsiadm's order."""
    from iscsikit.netlink.params import HOST_STATS_FIELDS

    return {
        k: (v - (1 << 64) if v >= 1 << 63 else v)
        for k in HOST_STATS_FIELDS
        for v in [counters.get(k, 0)]
    }


def chap_json(record: ChapRecord, *, show_secrets: bool = False) -> dict[str, Any]:
    """A CHAP entry for ``--output json``: the ``host.auth.*`` keys ``-o show`` prints;
    the password is null unless ``-S``."""
    from iscsikit.netlink.constants import ChapType

    suffix = "_in" if record.chap_type == ChapType.IN else ""
    password = record.password.split(b"\0", 1)[0].decode("utf-8", "backslashreplace")
    return {
        "host.auth.tbl_idx": record.chap_tbl_idx,
        f"host.auth.username{suffix}": record.username or None,
        f"host.auth.password{suffix}": (password or None) if show_secrets else None,
    }


_FLASHNODE_SECRETS = ("password", "password_in")

#: Record keys whose sysfs attribute has another name (iscsi_sysfs.c
#: ``iscsi_sysfs_get_flashnode_info``); every other key reads the attribute of its name.
_FLASHNODE_ATTR = {
    "session.chap_auth_en": "chap_auth",
    "session.discovery_logout_en": "discovery_logout",
    "session.bidi_chap_en": "bidi_chap",
    "conn[0].header_digest_en": "header_digest",
    "conn[0].data_digest_en": "data_digest",
    "conn[0].snack_req_en": "snack_req",
    "conn[0].tcp_timestamp_en": "tcp_timestamp_enable",
}
_UINT_BITS = {"uint8": 8, "uint16": 16, "uint32": 32}


def flashnode_record_text(node: Flashnode) -> str:
    """``-C flashnode -x N`` as iscsiadm prints it (``idbm_print_flashnode_info``:
    ``idbm_recinfo_flashnode``'s keys in order, shown in the clear).  Values are read as
    ``iscsi_sysfs_get_flashnode_info`` reads them: numbers by ``atoi`` cut to the field,
    all bits set when the attribute is missing (``sysfs_get_uint*`` store -1 first);
    strings as they are, ``<empty>`` when empty or missing."""
    from iscsikit.config.keytable import FLASHNODE_SPECS
    from iscsikit.records.fileformat import BEGIN_PREFIX, END_LINE, RECORD_VERSION
    from iscsikit.sysfs.attrs import c_int

    sess, conn = node, node.conn()
    lines = [f"{BEGIN_PREFIX} {RECORD_VERSION}"]
    for spec in FLASHNODE_SPECS:
        short = spec.name.removeprefix("flashnode.")
        device = conn if short.startswith("conn[0].") else sess
        attr = _FLASHNODE_ATTR.get(short, short.partition(".")[2])
        text = device.attr(attr)
        bits = _UINT_BITS.get(spec.vtype)
        if bits is None:
            value = text or EMPTY
        else:
            number = c_int(text)
            value = str((-1 if number is None else number) & ((1 << bits) - 1))
        lines.append(f"{spec.name} = {value}")
    lines.append(END_LINE)
    return "".join(f"{line}\n" for line in lines)


def _flashnode_attrs(node: Flashnode) -> dict[str, str]:
    return {**node.attributes(), **node.conn().attributes()}


def flashnode_json(node: Flashnode, *, show_secrets: bool = False) -> dict[str, Any]:
    """A flash node for ``--output json``: its index and the ``flashnode.<attribute>``
    keys ``-x`` prints (session then connection attributes; passwords null unless
    ``-S``)."""
    out: dict[str, Any] = {"index": node.index}
    for key, value in sorted(_flashnode_attrs(node).items()):
        hidden = key in _FLASHNODE_SECRETS and not show_secrets
        out[f"flashnode.{key}"] = None if hidden or not value else value
    return out


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

    found: dict[str, Any] = {}

    def body(args: ParsedArgs, env: CliEnv) -> int:
        return _run(args, env, found)

    def hosts() -> dict[str, Any]:
        if args.submode in ("chap", "flashnode", "stats", "ping"):
            return found
        return {"hosts": [host_json(h) for h in SysfsContext.from_paths(env.paths).hosts()]}

    return json_run("host", args, env, body, hosts)


def _run(args: ParsedArgs, env: CliEnv, found: dict[str, Any] | None = None) -> int:
    from iscsikit.sysfs import SysfsContext

    ctx = SysfsContext.from_paths(env.paths)
    if args.host is not None and ":" in args.host:
        _host_arg(args, ctx)  # iscsiadm resolves a MAC while parsing, whatever the mode does
    if args.submode == "ping":
        env.err("Invalid Sub Mode")
        return 0
    if args.submode in ("chap", "flashnode", "stats"):
        return _submode(args, env, ctx, args.submode, {} if found is None else found)
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
