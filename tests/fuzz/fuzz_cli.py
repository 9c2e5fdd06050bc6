"""Fuzz harness: iscsikit-adm's command line (:mod:`iscsikit.cli.getopt` and
:mod:`iscsikit.cli.options`), and the values it carries.

Input: argv, NUL-separated, each word decoded as Python decodes ``sys.argv``
(surrogateescape).  :func:`~iscsikit.cli.options.parse` runs glibc's getopt_long
emulation and iscsiadm's per-mode checks; it may raise ``UsageError`` (exit 7).  A
command line it accepts then has its ``-p`` portal, ``-H`` host and ``-n``/``-v`` pairs
read as the modes read them: the portal with ``parse_portal``, the host with
``host_number`` (``UsageError``), and each pair validated for the mode's record type,
strictly (``-o new``) and leniently (``-o update``), which may raise
``InvalidParameterError``.  Nothing here touches a records tree (``ISCSIKIT_ROOT`` points
at a private empty directory anyway).  Anything else raised is a finding.
"""

from __future__ import annotations

import contextlib
import os

import fuzzlib

if fuzzlib.as_program():
    os.environ["ISCSIKIT_ROOT"] = str(fuzzlib.scratch_root())

with fuzzlib.instrument():
    from iscsikit.cli.options import UsageError, host_number, parse, parse_portal
    from iscsikit.config.registry import REGISTRY, RecordType
    from iscsikit.errors import InvalidParameterError

_RECORDS = {
    "node": RecordType.NODE,
    "iface": RecordType.IFACE,
    "discoverydb": RecordType.SENDTARGETS,
    "discovery": RecordType.SENDTARGETS,
}


def TestOneInput(data: bytes) -> None:
    argv = [os.fsdecode(word) for word in data.split(b"\0")] if data else []
    try:
        args = parse(argv)
    except UsageError:
        return
    if args.portal is not None:
        parse_portal(args.portal)
    try:
        if args.host is not None:
            host_number(args.host)
    except UsageError:
        pass
    record = _RECORDS.get(args.mode or "")
    if record is None:
        return
    if args.type == "isns":
        record = RecordType.ISNS
    for name, value in zip(args.names, args.values, strict=False):
        for lenient in (False, True):
            with contextlib.suppress(InvalidParameterError):
                REGISTRY.validate(record, name, value, lenient=lenient)


if __name__ == "__main__":
    fuzzlib.main(TestOneInput)
