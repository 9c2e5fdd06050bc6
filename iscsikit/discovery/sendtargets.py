"""SendTargets discovery driven by a discovery record, as ``iscsiadm -m discovery -t st``.

The record (``send_targets/<ip>,<port>/st_config``) says how to discover: CHAP
credentials and algorithms, timeouts, MaxRecvDataSegmentLength.  A missing record is
made from the iscsid.conf discovery template (and stored, unless nonpersistent).
:func:`send_targets` is the one SendTargets runner (the CLI's discovery modes and
:func:`discover` use it); the targets found are applied to the node database by
:func:`iscsikit.discovery.db.apply_discovery`.  Errors are raised, never printed.
"""

from __future__ import annotations

from collections.abc import Sequence

from iscsikit.config.iscsid_conf import IscsidConf
from iscsikit.config.registry import RecordType
from iscsikit.discovery.db import DiscoveryOp, DiscoveryOutcome, apply_discovery, binding_ifaces
from iscsikit.errors import NoObjectsFoundError, PduTimeoutError, TransportTimeoutError
from iscsikit.manager import connect
from iscsikit.manager.spec import Chap
from iscsikit.proto.address import Portal
from iscsikit.proto.sendtargets import DiscoveredTarget
from iscsikit.records.model import DiscoveryRecord
from iscsikit.records.store import Records

__all__ = ["chap_of", "discover", "discovery_record", "send_targets"]

_AUTH = "discovery.sendtargets.auth."
_TIMEO = "discovery.sendtargets.timeo."


def discovery_record(
    records: Records, conf: IscsidConf, portal: Portal, *, create: bool = True
) -> DiscoveryRecord:
    """The stored SendTargets record for ``portal``, or a new one from iscsid.conf."""
    try:
        return records.discovery("sendtargets", portal.host, portal.port)
    except NoObjectsFoundError:
        record = DiscoveryRecord.new(
            "sendtargets",
            portal.host,
            portal.port,
            template=conf.template(RecordType.SENDTARGETS),
        )
        if create:
            records.add_discovery(record)
        return record


def chap_of(record: DiscoveryRecord) -> Chap | None:
    """The discovery CHAP credentials (:meth:`Chap.from_record`: a password means CHAP)."""
    return Chap.from_record(record.get, _AUTH, record.get("node.session.auth.chap_algs"))


def send_targets(
    record: DiscoveryRecord, *, initiator_name: str | None = None
) -> list[DiscoveredTarget]:
    """SendTargets at the record's portal with its settings (CHAP, login and active
    timeouts, MaxRecvDataSegmentLength), as ``initiator_name`` (None: the host's).
    Raises the :class:`~iscsikit.errors.IscsiError` of a failure; a login that times out
    (``login_timeout``) is a :class:`~iscsikit.errors.PduTimeoutError` (11), as iscsiadm
    2.1.8 ends it ("iSCSI PDU timed out", usr/discovery.c once ``reopen_max`` is spent),
    and so is an answer that does not come within ``active_timeout``."""
    try:
        return connect.discover(
            Portal(record.address, record.port),
            chap=chap_of(record),
            initiator_name=initiator_name,
            login_timeout=float(record.get(_TIMEO + "login_timeout") or 15),
            response_timeout=float(record.get(_TIMEO + "active_timeout") or 30),
            max_recv_data_segment_length=int(
                record.get("discovery.sendtargets.iscsi.MaxRecvDataSegmentLength") or 32768
            ),
        )
    except TransportTimeoutError as exc:
        raise PduTimeoutError(str(exc)) from exc


def discover(
    records: Records,
    conf: IscsidConf,
    portal: Portal,
    *,
    iface_names: Sequence[str] = (),
    ops: DiscoveryOp | None = None,
    initiator_name: str | None = None,
) -> DiscoveryOutcome:
    """Run SendTargets at ``portal`` with its record's settings and apply the result."""
    ops = DiscoveryOp.default() if ops is None else ops
    persistent = DiscoveryOp.NONPERSISTENT not in ops
    record = discovery_record(records, conf, portal, create=persistent)
    ifaces = binding_ifaces(records, iface_names)
    if initiator_name is None:
        named = [i.get("iface.initiatorname") for i in ifaces if i.get("iface.initiatorname")]
        initiator_name = named[0] if named else None
    found = send_targets(record, initiator_name=initiator_name)
    return apply_discovery(
        records, record, found, ifaces, ops=ops, template=conf.template(RecordType.NODE)
    )
