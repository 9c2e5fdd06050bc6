"""iscsiadm 2.1.8's text formats for records, shared by every record mode.

Each function returns text (lines end in ``\\n``); callers write it to ``env.stdout``.
Every format here was compared byte for byte with the real iscsiadm 2.1.8 (the oracle;
captures in ``tests/unit/cli/golden/``):

* :func:`record_text` -- ``-o show``: ``# BEGIN RECORD 2.1.8``, one ``key = value`` per
  key in the registry's ``show_order`` (libopeniscsiusr's order for node and iface
  records, usr/idbm.c's for discovery records), ``# END RECORD``.  Empty values print
  ``<empty>``; masked keys with a value print ``********`` unless ``-S``; numbers print
  with libopeniscsiusr's display type (``iface.iface_num`` -1 is 4294967295).
  :func:`node_text`, :func:`iface_text` and :func:`discovery_text` pick the IP-family
  block and the record type.
* :func:`node_flat` -- node ``-P 0``: ``"%s,%u %s"``: portal, tpgt printed as an
  *unsigned* 32-bit number (so an old-style record's -1 is 4294967295), target.
* :func:`node_tree` -- node ``-P 1`` (and the node part of discovery ``-P 1``): Target,
  Portal, Iface Name; the Target line is not repeated for consecutive records of the
  same target.
* :func:`portal_text` -- ``ip:port``; an address without a '.' is ``[ip]:port``.
* :func:`login_target`, :func:`session_target`, :func:`session_stats_text` -- how
  login, logout, rescan and ``-s`` name a node or a session (from iscsiadm's format
  strings; needs a live session to compare).

This module does no I/O and imports neither the records store nor the CLI machinery.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Protocol

from iscsikit.config.registry import (
    EMULATED_VERSION,
    REGISTRY,
    Family,
    RecordKey,
    RecordType,
    ValueType,
    iface_family,
)

if TYPE_CHECKING:
    from iscsikit.records.model import DiscoveryRecord, IfaceRecord, NodeRecord

__all__ = [
    "EMPTY",
    "MASK",
    "display_value",
    "discovery_text",
    "iface_text",
    "login_target",
    "node_flat",
    "node_iface_label",
    "node_text",
    "node_tree",
    "portal_text",
    "record_text",
    "session_stats_text",
    "session_target",
]

#: What iscsiadm prints for an empty value, and for a secret hidden without ``-S``.
EMPTY = "<empty>"
MASK = "********"
BEGIN = f"# BEGIN RECORD {EMULATED_VERSION}"
END = "# END RECORD"

_BITS = {ValueType.UINT8: 8, ValueType.UINT16: 16, ValueType.UINT32: 32}


class NodeLike(Protocol):
    """What the node listings need: a :class:`~iscsikit.records.NodeId` or a record id."""

    @property
    def target(self) -> str: ...
    @property
    def address(self) -> str: ...
    @property
    def port(self) -> int: ...
    @property
    def tpgt(self) -> int: ...
    @property
    def iface(self) -> str: ...


def portal_text(address: str, port: int | str) -> str:
    """``ip:port``, or ``[ip]:port`` for an address without a '.' (iscsiadm's rule:
    IPv6, but also a dotless host name)."""
    if "." in address:
        return f"{address}:{port}"
    return f"[{address}]:{port}"


def display_value(key: RecordKey, value: str, *, show_secrets: bool = False) -> str:
    """``value`` as ``-o show`` prints it for ``key``."""
    if value == "":
        return EMPTY
    if key.masked and not show_secrets:
        return MASK
    shown = key.show_value_type
    if shown is not None and shown is not key.value_type and shown in _BITS:
        try:
            return str(int(value) & ((1 << _BITS[shown]) - 1))
        except ValueError:
            return value
    return value


def record_text(
    values: Mapping[str, str],
    record: RecordType,
    family: Family | None = None,
    *,
    show_secrets: bool = False,
) -> str:
    """A whole ``-o show`` record, BEGIN to END (keys missing from ``values`` print
    their default)."""
    lines = [BEGIN]
    for key in REGISTRY.show_order(record, family):
        value = values.get(key.name, key.default)
        lines.append(f"{key.name} = {display_value(key, value, show_secrets=show_secrets)}")
    lines.append(END)
    return "\n".join(lines) + "\n"


def node_text(node: NodeRecord, *, show_secrets: bool = False) -> str:
    """``iscsiadm -m node -T ... -o show``: libopeniscsiusr decides the iface block by
    the iface *name* alone (see :func:`~iscsikit.config.registry.iface_family`)."""
    family = iface_family(node.values, node.iface, show=True)
    return record_text(node.values, RecordType.NODE, family, show_secrets=show_secrets)


def iface_text(iface: IfaceRecord, *, show_secrets: bool = False) -> str:
    """``iscsiadm -m iface -I name`` (IP block by name, as libopeniscsiusr does)."""
    family = iface_family(iface.values, iface.name, show=True)
    return record_text(iface.values, RecordType.IFACE, family, show_secrets=show_secrets)


def discovery_text(discovery: DiscoveryRecord, *, show_secrets: bool = False) -> str:
    """``iscsiadm -m discoverydb -t st|isns -p ... -o show`` (usr/idbm.c order)."""
    return record_text(discovery.values, discovery.record_type, show_secrets=show_secrets)


def node_flat(node: NodeLike) -> str:
    """One node ``-P 0`` line: ``127.0.0.1:3260,1 iqn...`` (tpgt as unsigned 32 bits)."""
    return f"{portal_text(node.address, node.port)},{node.tpgt & 0xFFFFFFFF} {node.target}\n"


def node_iface_label(node: NodeRecord) -> str:
    """``tcp:[hw=,ip=,net_if=,iscsi_if=default] 127.0.0.1,3260,1 iqn...``: how iscsiadm
    names a node with its iface when it adds one (usr/iscsiadm.c, ``iface_fmt``)."""
    v = node.values
    return (
        f"{v['iface.transport_name']}:[hw={v['iface.hwaddress']},ip={v['iface.ipaddress']},"
        f"net_if={v['iface.net_ifacename']},iscsi_if={node.iface}] "
        f"{node.address},{node.port},{node.tpgt} {node.target}"
    )


def node_tree(nodes: Iterable[NodeLike], *, indent: str = "") -> str:
    """Node ``-P 1``: Target (once per run of equal targets), Portal, Iface Name."""
    out: list[str] = []
    last: str | None = None
    for node in nodes:
        if node.target != last:
            out.append(f"{indent}Target: {node.target}\n")
            last = node.target
        out.append(f"{indent}\tPortal: {portal_text(node.address, node.port)},{node.tpgt}\n")
        out.append(f"{indent}\t\tIface Name: {node.iface}\n")
    return "".join(out)


# -- sessions: login, logout, rescan, stats ---------------------------------------------


def login_target(iface: str, target: str, address: str, port: int) -> str:
    """``[iface: I, target: T, portal: A,P]`` as iscsiadm's login messages name a node
    (the address is never bracketed here)."""
    return f"[iface: {iface}, target: {target}, portal: {address},{port}]"


def session_target(sid: int, target: str, address: str, port: int) -> str:
    """``[sid: N, target: T, portal: A,P]`` as logout, rescan and stats name a session."""
    return f"[sid: {sid}, target: {target}, portal: {address},{port}]"


#: ``struct iscsi_stats`` counters in the order iscsiadm prints them.
SESSION_STATS = (
    "txdata_octets",
    "rxdata_octets",
    "noptx_pdus",
    "scsicmd_pdus",
    "tmfcmd_pdus",
    "login_pdus",
    "text_pdus",
    "dataout_pdus",
    "logout_pdus",
    "snack_pdus",
    "noprx_pdus",
    "scsirsp_pdus",
    "tmfrsp_pdus",
    "textrsp_pdus",
    "datain_pdus",
    "logoutrsp_pdus",
    "r2t_pdus",
    "async_pdus",
    "rjt_pdus",
    "digest_err",
    "timeout_err",
)


def session_stats_text(
    sid: int, target: str, address: str, port: int, stats: Mapping[str, int]
) -> str:
    """``-s`` output: the 21 ``iSCSI SNMP`` counters, then any driver-specific ones
    under ``iSCSI Extended:`` (in the mapping's order)."""
    lines = [f"Stats for session {session_target(sid, target, address, port)}", "iSCSI SNMP:"]
    lines += [f"\t{name}: {stats.get(name, 0)}" for name in SESSION_STATS]
    extra = [name for name in stats if name not in SESSION_STATS]
    if extra:
        lines.append("iSCSI Extended:")
        lines += [f"\t{name}: {stats[name]}" for name in extra]
    return "\n".join(lines) + "\n"
