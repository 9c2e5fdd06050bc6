"""The data behind :mod:`iscsikit.config.registry`: every open-iscsi record key, as rows.

These modules are plain data (they import nothing but each other) so the registry can
be built from them without import cycles.  They own *what* each key is; the registry
owns how it is looked up, ordered, validated and parsed.

Sources, in order of authority:

* the real iscsiadm 2.1.8 (``shared/tools/iscsiadm-oracle``): on-disk order
  (``usr/idbm.c``), ``-o show`` order (libopeniscsiusr), defaults of new records, the
  numeric type of every key (each was set to ``-1`` and read back: ``-1`` is an int32,
  ``255``/``65535``/``4294967295`` an unsigned 8/16/32-bit field) and the longest
  value each string field keeps (each was set to 400 characters);
* ``shared/reference/open-iscsi-record-keys.tsv`` (upstream HEAD) for keys the oracle
  cannot show (``host_chap`` and ``flashnode`` need an offload HBA) and for keys added
  after 2.1.8 (``since`` below).

The rows live in one module per record kind; this module gathers them and adds what
changed after 2.1.8.  Row format and flags: :mod:`iscsikit.config.keyspec`.
"""

from __future__ import annotations

from typing import Any

from iscsikit.config.keys_discovery import ISNS_SPECS, SENDTARGETS_SPECS
from iscsikit.config.keys_hba import FLASHNODE_SPECS, HOST_CHAP_SPECS
from iscsikit.config.keys_iface import IFACE_ORDER, IFACE_SPECS
from iscsikit.config.keys_node import (
    NODE_COMMON_IFACE_KEYS,
    NODE_DISK_ORDER,
    NODE_IFACE_OVERRIDES,
    NODE_SHOW_ORDER,
    NODE_SPECS,
)
from iscsikit.config.keyspec import KeySpec

__all__ = [
    "FLASHNODE_SPECS",
    "HOST_CHAP_SPECS",
    "IFACE_ORDER",
    "IFACE_SPECS",
    "ISNS_SPECS",
    "NODE_COMMON_IFACE_KEYS",
    "NODE_DISK_ORDER",
    "NODE_IFACE_OVERRIDES",
    "NODE_SHOW_ORDER",
    "NODE_SPECS",
    "NODE_UPDATE_ALIASES",
    "SENDTARGETS_SPECS",
    "VERSIONED",
    "KeySpec",
]

# -- what changed after 2.1.8 ------------------------------------------------------------

#: Field overrides that apply from a given open-iscsi version on (inclusive).
VERSIONED: dict[str, tuple[tuple[str, dict[str, Any]], ...]] = {
    # 2.1.10 made 0 ("do not touch") the default and commented it out of iscsid.conf.
    "node.session.xmit_thread_priority": (("2.1.10", {"default": "0", "conf_default": None}),),
    # SLP support was removed in 2.1.9.
    "node.discovery_type": (
        ("2.1.9", {"allowed": ("send_targets", "isns", "offload_send_targets", "static", "fw")}),
    ),
    "discovery.type": (
        ("2.1.9", {"allowed": ("sendtargets", "isns", "offload_send_targets", "static", "fw")}),
    ),
}

#: ``iscsiadm -m node -o update`` accepts these old names (only there: the record file
#: reader does not know them).
NODE_UPDATE_ALIASES: dict[str, str] = {"node.transport_name": "iface.transport_name"}
