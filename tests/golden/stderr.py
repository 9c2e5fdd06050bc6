"""stderr against iscsiadm's: the same messages in the same order, more allowed.

docs/compatibility.md promises that iscsikit-adm's stderr "carries the same messages in
the same situations" as iscsiadm's, and may say more.  :func:`stderr_problems` holds a
case to that: after both sides are normalised (the program-name prefixes, iscsiadm's
``iSCSI ERROR:`` decoration with its ``# file.c:function():line`` tail, the "can not
connect to iSCSI daemon" noise of a host without iscsid, iscsikit-adm's private root
in paths), every line iscsiadm printed must appear in iscsikit-adm's stderr, in order,
either equal or as the start of a longer line (a reason appended).  Lines only
iscsikit-adm prints (hints) may come in between.

Where the message differs on purpose, :data:`DIFFERENT` names the case and why; those
cases compare exit code and stdout only (and are listed in docs/compatibility.md).
"""

from __future__ import annotations

import re

__all__ = ["DIFFERENT", "normalise_stderr", "stderr_problems"]

#: Cases whose stderr differs deliberately, with the reason (docs/compatibility.md).
DIFFERENT = {
    "bad_mode": "iscsiadm says 'mode -1 is not yet supported' (its internal number for an "
    "unknown mode); iscsikit-adm names the mode given and the valid ones",
    "killiscsid": "the oracle's iscsiadm talks to a fake iscsid that does not know the "
    "request; iscsikit-adm with no daemon says the daemon is not running",
    "iface_show_unknown": "iscsiadm prints the errno number before strerror "
    "('2 No such file or directory')",
}

_NOISE = re.compile(r"can not connect to iSCSI daemon|could not connect to iscsid \(111\)")
_PREFIX = re.compile(r"^(?:\S*/)?(?:iscsiadm|iscsikit-adm): ")
_DECORATION = re.compile(r"^iSCSI (?:ERROR|WARNING): ")
_SOURCE_TAIL = re.compile(r"\s+# \w+\.c:\w+\(\):\d+$")
_TOOL = re.compile(r"\b(?:iscsiadm|iscsikit-adm)\b")
#: iscsikit-adm's private root before a database or run path: /tmp/.../root/etc/iscsi/...
_ROOT = re.compile(r"(?:/[^\s/]+)+?/root(?=/etc/iscsi|/run/|/var/lib/iscsi)")


def normalise_stderr(text: str) -> list[str]:
    """The comparable lines of one tool's stderr."""
    lines = []
    for raw in text.splitlines():
        if _NOISE.search(raw):
            continue
        line = _SOURCE_TAIL.sub("", _DECORATION.sub("", _PREFIX.sub("", raw)))
        lines.append(_TOOL.sub("TOOL", _ROOT.sub("", line)).rstrip())
    return [line for line in lines if line]


def stderr_problems(name: str, iscsiadm: str, ours: str) -> list[str]:
    """Why ``ours`` does not carry iscsiadm's messages (empty when it does)."""
    if name in DIFFERENT:
        return []
    want, got = normalise_stderr(iscsiadm), normalise_stderr(ours)
    at = 0
    for line in want:
        for index in range(at, len(got)):
            if got[index] == line or got[index].startswith(line):
                at = index + 1
                break
        else:
            return [f"stderr: iscsiadm's line {line!r} is missing (in order) from {got!r}"]
    return []
