"""Fuzz harness: node / iface / discovery record files and the records tree's names
(:mod:`iscsikit.records.fileformat`, :mod:`iscsikit.records.layout`).

Input: ``kind, text``.  ``kind`` picks the record type (node, iface, SendTargets,
iSNS); the text is decoded as the store decodes a file (UTF-8, surrogateescape) and
read by :func:`~iscsikit.records.fileformat.parse_record`, which documents no error:
whatever a file holds becomes values and problems.  What it read is then written back
with :func:`~iscsikit.records.fileformat.format_record` and read again: every value
written must read back as it was (a record iscsikit writes must be one it, and iscsiadm,
can read); values of the other iface IP family are not written, as by iscsiadm.
``format_record`` may refuse a value with ``InvalidParameterError`` (a NUL).
The text's first line is also parsed as the names of the tree's directories and links
(portal ``ip,port,tpgt``, ``static/`` links, discovery directories).
Anything else raised, or a value that does not read back, is a finding.
"""

from __future__ import annotations

import fuzzlib

with fuzzlib.instrument():
    from iscsikit.config.registry import RecordType
    from iscsikit.errors import InvalidParameterError
    from iscsikit.records.fileformat import format_record, parse_record
    from iscsikit.records.layout import (
        parse_discovery_dir_name,
        parse_link_name,
        parse_portal_name,
    )

_C_SPACE = " \t\n\v\f\r"
_KINDS = (RecordType.NODE, RecordType.IFACE, RecordType.SENDTARGETS, RecordType.ISNS)


def TestOneInput(data: bytes) -> None:
    if not data:
        return
    record = _KINDS[data[0] & 3]
    text = data[1:].decode("utf-8", "surrogateescape")
    name = text.partition("\n")[0]
    parse_portal_name(name)
    parse_link_name(name)
    parse_discovery_dir_name(name)
    parsed = parse_record(text, record)
    try:
        written = format_record(parsed.values, record)
    except InvalidParameterError:
        return
    again = parse_record(written, record)
    written_keys = {line.partition(" = ")[0] for line in written.splitlines()}
    for key, value in parsed.values.items():
        # Only the iface IP block of the record's family is written (as idbm_print does).
        # A string cut to its field length may end in a blank, which the reader strips
        # (as iscsiadm's does): that value reads back without it.
        if key in written_keys and again.values.get(key) not in (value, value.rstrip(_C_SPACE)):
            raise AssertionError(
                f"{key} = {value!r} was written and reads back as {again.values.get(key)!r}"
            )


if __name__ == "__main__":
    fuzzlib.main(TestOneInput)
