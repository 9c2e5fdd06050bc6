"""Where each record lives in an open-iscsi database, and what its names on disk mean.

open-iscsi 2.1.8 (usr/idbm.c) lays a database out as follows; iscsikit reads and writes
exactly this (verified with the iscsiadm oracle)::

    nodes/<target>/<address>,<port>,<tpgt>/<iface>     node record (one file per iface)
    nodes/<target>/<address>,<port>                    old-style node record, tpgt -1
    send_targets/<address>,<port>/st_config            SendTargets discovery record
    send_targets/<address>,<port>/<target>,<address>,<port>,<tpgt>,<iface>
                                                       symlink -> nodes/<target>/<a>,<p>,<t>
    isns/<address>,<port>/isns_config                  iSNS discovery record (+ links)
    static/<target>,<address>,<port>,<tpgt>,<iface>    link for ``-m node -o new`` records
    fw/<target>,<address>,<port>,<tpgt>,<iface>        link for firmware (iBFT) records
    ifaces/<name>                                      iface record ("default", "iser" are
                                                       built in and have no file)

IPv6 addresses appear without brackets.  A link's *name* says which node it stands for;
open-iscsi itself parses link names (``get_params_from_disc_link``) and never follows
them, and so does iscsikit.  The link *target* is the absolute path of the node's portal
directory as the writer saw it (``/etc/iscsi/nodes/...`` for iscsiadm); iscsikit writes
``<link_root>/nodes/...`` (``link_root`` defaults to its own database root) and maps a
foreign prefix back into its database with :meth:`Layout.resolve_link`.

This module only computes names and paths: it does no I/O.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import NamedTuple

from iscsikit.errors import InvalidParameterError

__all__ = [
    "BUILTIN_IFACES",
    "FW_DIR",
    "IFACES_DIR",
    "ISNS_CONFIG",
    "ISNS_DIR",
    "NODES_DIR",
    "SEND_TARGETS_DIR",
    "STATIC_DIR",
    "ST_CONFIG",
    "TEMP_MARKER",
    "Layout",
    "NodeId",
    "check_name",
    "is_temp_name",
    "parse_discovery_dir_name",
    "parse_link_name",
    "parse_portal_name",
    "strip_brackets",
]

NODES_DIR = "nodes"
SEND_TARGETS_DIR = "send_targets"
ISNS_DIR = "isns"
STATIC_DIR = "static"
FW_DIR = "fw"
IFACES_DIR = "ifaces"
ST_CONFIG = "st_config"
ISNS_CONFIG = "isns_config"

#: iface records open-iscsi has built in (usr/iface.c ``default_ifaces``): no file.
BUILTIN_IFACES: dict[str, str] = {"default": "tcp", "iser": "iser"}

#: Marks iscsikit's temporary files (``.<name>.iscsikit-tmp.<pid>.<n>``).  Readers skip
#: them; a writer holding the lock removes any it finds (left by a crashed writer).
TEMP_MARKER = ".iscsikit-tmp."

#: node.discovery_type values whose nodes are linked from a discovery directory.
_LINKED_TYPES = ("send_targets", "isns", "static", "fw")


def is_temp_name(name: str) -> bool:
    return TEMP_MARKER in name


def check_name(what: str, name: str) -> str:
    """``name`` if it is usable as one path component, else InvalidParameterError.

    Target names, addresses and iface names become directory and file names; a ``/``,
    a NUL, ``.``/``..`` or an empty name would escape or corrupt the database.
    """
    if not name or name in (".", "..") or "/" in name or "\0" in name or is_temp_name(name):
        raise InvalidParameterError(f"invalid {what} {name!r} for a record name")
    return name


def strip_brackets(address: str) -> str:
    """``[fe80::1]`` -> ``fe80::1``: open-iscsi stores IPv6 addresses bare."""
    if address.startswith("[") and address.endswith("]"):
        return address[1:-1]
    return address


class NodeId(NamedTuple):
    """What names a node record: the path components of its file.

    ``tpgt`` is -1 for an old-style record (a file ``nodes/<target>/<address>,<port>``,
    bound to the ``default`` iface).
    """

    target: str
    address: str
    port: int
    tpgt: int
    iface: str

    @property
    def old_style(self) -> bool:
        return self.tpgt == -1

    @property
    def portal_name(self) -> str:
        """The entry under ``nodes/<target>/``: ``a,p,t`` (a directory) or ``a,p`` (a file)."""
        if self.tpgt == -1:
            return f"{self.address},{self.port}"
        return f"{self.address},{self.port},{self.tpgt}"

    @property
    def link_name(self) -> str:
        """The name of a discovery link to this node: ``target,address,port,tpgt,iface``."""
        return f"{self.target},{self.address},{self.port},{self.tpgt},{self.iface}"

    @property
    def portal(self) -> str:
        """``ip:port`` or ``[ipv6]:port`` (as iscsiadm prints it)."""
        if ":" in self.address:
            return f"[{self.address}]:{self.port}"
        return f"{self.address}:{self.port}"


def _int(text: str) -> int | None:
    if text.isascii() and (text.isdigit() or (text[:1] == "-" and text[1:].isdigit())):
        return int(text)
    return None


def parse_portal_name(name: str) -> tuple[str, int, int | None] | None:
    """``a,p,t`` -> (a, p, t); ``a,p`` (old style) -> (a, p, None); else None.

    usr/idbm.c ``idbm_for_each_portal`` splits at the first two commas; an IPv6 address
    has none.  Unlike its ``atoi`` iscsikit refuses a non-numeric port or tpgt, so that a
    stray file is reported instead of becoming port 0.
    """
    parts = name.split(",")
    if len(parts) not in (2, 3) or not parts[0]:
        return None
    port = _int(parts[1])
    if port is None:
        return None
    if len(parts) == 2:
        return parts[0], port, None
    tpgt = _int(parts[2])
    if tpgt is None or tpgt < 0:
        return None
    return parts[0], port, tpgt


def parse_link_name(name: str) -> NodeId | None:
    """A discovery link name -> the node it names (``get_params_from_disc_link``)."""
    parts = name.split(",", 4)
    if len(parts) != 5 or not all(parts):
        return None
    port, tpgt = _int(parts[2]), _int(parts[3])
    if port is None or tpgt is None:
        return None
    return NodeId(parts[0], parts[1], port, tpgt, parts[4])


def parse_discovery_dir_name(name: str) -> tuple[str, int] | None:
    """``address,port`` under send_targets/ or isns/ -> (address, port).

    usr/idbm.c ``idbm_for_each_drec`` skips entries whose text after the first comma
    holds ``:`` or ``.``: those are pre-2.0-872 iSNS node links, not servers.
    """
    address, comma, rest = name.partition(",")
    if not comma or not address or ":" in rest or "." in rest:
        return None
    port = _int(rest)
    return None if port is None else (address, port)


class Layout:
    """The paths of one database (rooted at ``db_root``), as ``str`` for speed."""

    def __init__(self, db_root: Path, link_root: str | os.PathLike[str] | None = None) -> None:
        self.db_root = Path(os.path.abspath(db_root))
        root = str(self.db_root)
        #: What symlinks to node directories start with (``<link_root>/nodes/...``).
        self.link_root = os.fspath(link_root) if link_root is not None else root
        self.nodes = os.path.join(root, NODES_DIR)
        self.send_targets = os.path.join(root, SEND_TARGETS_DIR)
        self.isns = os.path.join(root, ISNS_DIR)
        self.static = os.path.join(root, STATIC_DIR)
        self.fw = os.path.join(root, FW_DIR)
        self.ifaces = os.path.join(root, IFACES_DIR)

    # -- nodes ------------------------------------------------------------------------

    def target_dir(self, target: str) -> str:
        return f"{self.nodes}/{target}"

    def portal_dir(self, node: NodeId) -> str:
        """``nodes/<target>/<a>,<p>,<t>`` (meaningless for an old-style record)."""
        return f"{self.nodes}/{node.target}/{node.address},{node.port},{node.tpgt}"

    def old_style_file(self, target: str, address: str, port: int) -> str:
        return f"{self.nodes}/{target}/{address},{port}"

    def node_file(self, node: NodeId) -> str:
        if node.tpgt == -1:
            return self.old_style_file(node.target, node.address, node.port)
        return f"{self.portal_dir(node)}/{node.iface}"

    def link_target(self, node: NodeId) -> str:
        """What a discovery link to ``node`` points at (usr/idbm.c ``idbm_add_node``)."""
        return f"{self.link_root}/{NODES_DIR}/{node.target}/{node.address},{node.port},{node.tpgt}"

    def resolve_link(self, target: str) -> Path:
        """A link target as a path in *this* database.

        iscsiadm writes ``/etc/iscsi/nodes/...`` (its own root); in a database copied
        elsewhere, or one iscsikit wrote under another ``link_root``, the part after
        ``/nodes/`` is what identifies the node directory.
        """
        for prefix in (self.link_root, str(self.db_root)):
            if target.startswith(prefix + "/"):
                return self.db_root / target[len(prefix) + 1 :]
        _, sep, rest = target.partition(f"/{NODES_DIR}/")
        if sep and rest:
            return self.db_root / NODES_DIR / rest
        return Path(target)

    # -- discovery --------------------------------------------------------------------

    def discovery_root(self, kind: str) -> str:
        """send_targets/ or isns/ for a discovery.type of sendtargets or isns."""
        if kind == "sendtargets":
            return self.send_targets
        if kind == "isns":
            return self.isns
        raise InvalidParameterError(f"discovery type {kind!r} has no record directory")

    def discovery_dir(self, kind: str, address: str, port: int) -> str:
        return f"{self.discovery_root(kind)}/{address},{port}"

    def discovery_file(self, kind: str, address: str, port: int) -> str:
        name = ST_CONFIG if kind == "sendtargets" else ISNS_CONFIG
        return f"{self.discovery_dir(kind, address, port)}/{name}"

    def link_dir(self, disc_type: str, disc_address: str, disc_port: int) -> str | None:
        """The directory holding a node's discovery link, from its ``node.discovery_*``.

        usr/idbm.c ``setup_disc_to_node_link``: SendTargets and iSNS links sit in the
        server's directory, static and firmware ones in static/ and fw/; other types
        (offload_send_targets, slp) get no link.
        """
        if disc_type not in _LINKED_TYPES:
            return None
        if disc_type == "send_targets":
            return f"{self.send_targets}/{disc_address},{disc_port}"
        if disc_type == "isns":
            return f"{self.isns}/{disc_address},{disc_port}"
        return self.static if disc_type == "static" else self.fw

    # -- ifaces -----------------------------------------------------------------------

    def iface_file(self, name: str) -> str:
        return f"{self.ifaces}/{name}"
