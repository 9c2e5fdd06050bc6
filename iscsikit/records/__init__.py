"""open-iscsi records: node, discovery and iface records, and the database that holds them.

``from iscsikit.records import Records, NodeRecord`` is the API; the modules own:

* :mod:`~iscsikit.records.fileformat` -- a record file's text (read and write);
* :mod:`~iscsikit.records.model` -- typed records over the key registry;
* :mod:`~iscsikit.records.layout` -- where records live and what names on disk mean;
* :mod:`~iscsikit.records.lock` -- open-iscsi's database lock, shared with iscsiadm;
* :mod:`~iscsikit.records.fsio` -- atomic, durable file replacement in batches;
* :mod:`~iscsikit.records.reader` / :mod:`~iscsikit.records.writer` -- walking and
  loading records / what each write does to files;
* :mod:`~iscsikit.records.namecache` -- the node listing, cached outside the database;
* :mod:`~iscsikit.records.store` -- :class:`Records`, the database API.
"""

from __future__ import annotations

from iscsikit.records.fileformat import (
    RECORD_VERSION,
    ParsedRecord,
    RecordProblem,
    format_record,
    parse_record,
)
from iscsikit.records.layout import NodeId
from iscsikit.records.lock import DbLock
from iscsikit.records.model import DiscoveryRecord, IfaceRecord, NodeRecord, Record
from iscsikit.records.store import Records
from iscsikit.records.writer import NodesNotWritten

__all__ = [
    "RECORD_VERSION",
    "DbLock",
    "DiscoveryRecord",
    "IfaceRecord",
    "NodeId",
    "NodeRecord",
    "NodesNotWritten",
    "ParsedRecord",
    "Record",
    "RecordProblem",
    "Records",
    "format_record",
    "parse_record",
]
