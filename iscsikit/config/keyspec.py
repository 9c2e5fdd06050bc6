"""The row type of the key tables (:mod:`iscsikit.config.keytable`) and shared options.

Type codes are :class:`~iscsikit.config.registry.ValueType` values: ``string``,
``int32``, ``uint8``, ``uint16``, ``uint32``, ``enum`` (a fixed option list, e.g.
``No|Yes``), ``list`` (``chap_algs``) and ``int64`` (display type only).

Flags: ``id`` a record id (iscsiadm: "It is used to look up the record and cannot be
changed"), ``ro`` an iface value copied into a node record ("Use iface mode to update
this value"), ``mask`` printed as ``********`` unless ``-S``, ``hide`` never printed nor
written (``*_length``), ``v4``/``v6`` only in records of that iface family.
"""

from __future__ import annotations

from typing import NamedTuple


class KeySpec(NamedTuple):
    """One key as the tables describe it; the registry turns it into a RecordKey.

    ``default`` is the compiled-in default (2.1.8), ``conf_default`` the value in
    open-iscsi 2.1.8's shipped iscsid.conf (None: not set there), ``show_vtype`` the
    libopeniscsiusr display type when it differs from ``vtype``.
    """

    name: str
    vtype: str
    default: str
    description: str
    allowed: tuple[str, ...] = ()
    flags: frozenset[str] = frozenset()
    max_length: int | None = None
    conf_default: str | None = None
    show_vtype: str | None = None
    suggested: tuple[str, ...] = ()
    since: str | None = None


def flags(*names: str) -> frozenset[str]:
    return frozenset(names)


YES_NO = ("No", "Yes")
STARTUP = ("manual", "automatic", "onboot")
DIGESTS = ("None", "CRC32C", "CRC32C,None", "None,CRC32C")
AUTH_METHODS = ("None", "CHAP")
#: ``node.session.auth.chap_algs`` tokens (Debian's 2.1.8 is built with SHA3-256).
CHAP_ALGS = ("MD5", "SHA1", "SHA256", "SHA3-256")
#: 2.1.8's ``node.discovery_type`` options, in their stored index order.
NODE_DISC_TYPES = ("send_targets", "isns", "offload_send_targets", "slp", "static", "fw")
#: 2.1.8's ``discovery.type`` options.
DISC_TYPES = ("sendtargets", "isns", "offload_send_targets", "slp", "static", "fw")
TRANSPORTS = ("tcp", "iser", "qla4xxx", "bnx2i", "cxgb3i", "cxgb4i", "be2iscsi", "qedi", "ocs")
ENABLE = ("enable", "disable")

# Longest value iscsiadm 2.1.8 keeps in each kind of string field (strlcpy into the
# struct member; 255 is also the limit of idbm's value buffer).
VALUE_MAX = 255
HBA_STR_MAX = 79  # ISCSI_MAX_STR_LEN - 1: the HBA "enable|disable" style fields
