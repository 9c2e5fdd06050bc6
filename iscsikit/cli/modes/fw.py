"""``-m fw``: print the boot firmware's targets (iBFT) as pseudo-records, or log in to
them (``-l``).

The pseudo-record is usr/fwparam_ibft/fw_entry.c's ``fw_print_entry`` (fields only when
the firmware gave them, CHAP secrets in clear as iscsiadm prints them), checked against
the real iscsiadm 2.1.8 on kernel-shaped ``firmware/ibft`` trees.  Without a table:
"Could not get list of targets from firmware. (err 21)", exit 21.  Logins go through the
session service, with ``-n``/``-v`` overriding node keys (iface keys are refused, as in
iscsiadm).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from iscsikit.errors import InvalidParameterError, IscsiErr, IscsiError

if TYPE_CHECKING:
    from collections.abc import Mapping

    from iscsikit.cli.env import CliEnv
    from iscsikit.cli.options import ParsedArgs
    from iscsikit.records import NodeRecord
    from iscsikit.sysfs import BootTarget

__all__ = ["boot_node", "fw_entry", "run"]

BEGIN = "# BEGIN RECORD 2.1.8"
END = "# END RECORD"


def fw_entry(t: BootTarget) -> str:
    """One target as ``iscsiadm -m fw`` prints it."""
    lines = [BEGIN]

    def add(key: str, value: str | int, present: bool | None = None) -> None:
        if present if present is not None else bool(value):
            lines.append(f"{key} = {value}")

    add("iface.initiatorname", t.initiator_name)
    add("iface.isid", t.isid)
    add("iface.transport_name", t.transport, True)
    add("iface.hwaddress", t.mac)
    add("iface.bootproto", "DHCP" if t.uses_dhcp else "STATIC", True)
    add("iface.ipaddress", t.ipaddress)
    add("iface.prefix_len", t.prefix_len)
    add("iface.subnet_mask", t.subnet_mask)
    add("iface.gateway", t.gateway)
    add("iface.primary_dns", t.primary_dns)
    add("iface.secondary_dns", t.secondary_dns)
    add("iface.vlan_id", t.vlan)
    add("iface.net_ifacename", t.netdev)
    add("node.name", t.target_name)
    add("node.conn[0].address", t.target_address)
    add("node.conn[0].port", t.target_port, True)
    add("node.session.auth.username", t.chap_name)
    add("node.session.auth.password", t.chap_password)
    add("node.session.auth.username_in", t.chap_name_in)
    add("node.session.auth.password_in", t.chap_password_in)
    add("node.boot_lun", t.lun)
    lines.append(END)
    return "\n".join(lines) + "\n"


def boot_node(
    t: BootTarget,
    overrides: list[tuple[str, str]] | None = None,
    *,
    template: Mapping[str, str] | None = None,
    login: bool = False,
) -> NodeRecord:
    """The node record iscsiadm makes of a firmware target
    (idbm_create_rec_from_boot_context): iscsid.conf's node values (``template``), then
    the target's portal with tpgt 1 (hard-coded there: "tpgt hard coded to 1 ???"), its
    initiator name and CHAP credentials (``authmethod`` stays iscsid.conf's: a password
    means CHAP anyway), ``discovery_type fw``.  For a login (``-m fw -l``,
    fill_in_default_fw_values) ``overrides`` apply, and what they leave unset of
    ``initial_login_retry_max`` (30), the NOP-Out interval and timeout (0: "firmware
    logins are usually used for booting, so no NOPs") and ``scan`` (auto) is set."""
    from iscsikit.config.registry import REGISTRY, RecordType
    from iscsikit.records import NodeRecord

    node = NodeRecord.new(t.target_name, t.target_address, t.target_port, 1, template=template)
    node.values["node.discovery_type"] = "fw"
    node.values["iface.transport_name"] = t.transport
    if t.initiator_name:
        node.values["iface.initiatorname"] = t.initiator_name
    for key, value in (
        ("username", t.chap_name), ("password", t.chap_password),
        ("username_in", t.chap_name_in), ("password_in", t.chap_password_in),
    ):  # fmt: skip
        if value:
            node.set(f"node.session.auth.{key}", value)
    if not login:
        return node
    given: set[str] = set()
    for key, value in overrides or []:
        if key.startswith("iface."):
            raise InvalidParameterError("Cannot override interface parameters for firmware logins")
        node.set(key, value)
        given.add(REGISTRY.canonical_name(RecordType.NODE, key))
    for key, value in (
        ("node.session.initial_login_retry_max", "30"),
        ("node.conn[0].timeo.noop_out_interval", "0"),
        ("node.conn[0].timeo.noop_out_timeout", "0"),
        ("node.session.scan", "auto"),
    ):
        if key not in given:
            node.set(key, value)
    return node


def run(args: ParsedArgs, env: CliEnv) -> int:
    from iscsikit.cli.jsonout import object_json
    from iscsikit.cli.modes.session import json_run
    from iscsikit.sysfs import SysfsContext

    def targets() -> dict[str, Any]:
        found = SysfsContext.from_paths(env.paths).ibft().targets()
        return {"targets": [object_json(t, show_secrets=args.show) for t in found]}

    return json_run("fw", args, env, _run, targets)


def _run(args: ParsedArgs, env: CliEnv) -> int:
    from iscsikit.sysfs import SysfsContext

    ibft = SysfsContext.from_paths(env.paths).ibft()
    targets = ibft.targets()
    if not targets:
        code = IscsiErr.NO_OBJS_FOUND if ibft.readable else IscsiErr.SYSFS_LOOKUP
        raise IscsiError(
            f"Could not get list of targets from firmware. (err {int(code)})", code=code
        )
    if not args.login:
        env.out("".join(fw_entry(t) for t in targets))
        return 0
    from iscsikit.cli.modes.session import run_logins
    from iscsikit.config.registry import RecordType
    from iscsikit.manager.login_plan import plan_login

    template = env.iscsid_conf().template(RecordType.NODE)
    service = env.session_service()
    sessions = service.sessions()
    requests = []
    for t in targets:
        node = boot_node(t, args.params, template=template, login=True)
        try:
            requests += plan_login(node, sessions)
        except IscsiError as exc:
            env.err(str(exc))
    run_logins(env, service, requests, wait=not args.no_wait, summary=False)
    # iscsiadm 2.1.8 ignores the login results of ``-m fw -l`` and exits 0 (kept: boot
    # scripts such as dracut's test this exit code).
    return 0
