"""dm-multipath over a session's disks: which map holds a disk, and the path's state there.

A disk dm-multipath uses is held by a ``dm-N`` device (``block/sdX/holders/dm-N``) whose
``dm/uuid`` starts with ``mpath-`` (multipath-tools names its maps ``mpath-<WWID>``) and
whose ``dm/name`` is the map's name (``mpatha``, or the WWID without user_friendly_names).
The path's state is not in sysfs: the kernel keeps it in the map's status line, what
``dmsetup status`` prints, read here with the device-mapper's ``DM_TABLE_STATUS`` ioctl on
``/dev/mapper/control`` (include/uapi/linux/dm-ioctl.h; root only, read only).  Its
``multipath`` format is drivers/md/dm-mpath.c's ``multipath_status`` (STATUSTYPE_INFO)::

    n_features [features]* n_handler [handler]* n_groups next_group
        (A|D|E n_ps [ps]* n_paths n_selector
            (major:minor A|F fail_count [selector]*){n_paths}){n_groups}

Without the ioctl (not root, no device-mapper) a path's state reads ``unknown``; the map
itself is still found from sysfs.
"""

from __future__ import annotations

import errno
import fcntl
import os
import struct
from dataclasses import dataclass
from pathlib import Path

from iscsikit.sysfs.attrs import read_attr

__all__ = [
    "DM_CONTROL",
    "MpathPath",
    "holder_map",
    "map_status",
    "multipath_of",
    "parse_multipath_status",
]

#: The device-mapper's control node.
DM_CONTROL = Path("/dev/mapper/control")

#: ``struct dm_ioctl``: version[3], data_size, data_start, target_count, open_count,
#: flags, event_nr, padding, dev, name[128], uuid[129], data[7] -- 312 bytes.
_DM_IOCTL = struct.Struct("=3IIIIiIIIQ128s129s7s")
#: ``struct dm_target_spec``: sector_start, length, status, next, target_type[16].
_DM_TARGET_SPEC = struct.Struct("=QQiI16s")
#: _IOWR(0xfd, DM_TABLE_STATUS_CMD = 12, struct dm_ioctl).
_DM_TABLE_STATUS = (3 << 30) | (_DM_IOCTL.size << 16) | (0xFD << 8) | 12
_DM_BUFFER_FULL_FLAG = 1 << 8
_DM_VERSION = (4, 0, 0)
_MAX_BUFFER = 1 << 20

_PATH_STATES = {"A": "active", "F": "failed"}
_GROUP_STATES = {"A": "active", "E": "enabled", "D": "disabled"}
UNKNOWN = "unknown"


@dataclass(frozen=True, slots=True)
class MpathPath:
    """A disk as a path of a dm-multipath map."""

    #: The map's name (``mpatha``) and its dm device (``dm-0``).
    map_name: str
    dm: str
    #: ``active`` or ``failed`` (dm-mpath's A/F), ``unknown`` without the status.
    state: str = UNKNOWN
    #: Its priority group: ``active`` (in use), ``enabled`` or ``disabled``.
    group_state: str = UNKNOWN


def holder_map(disk: Path) -> tuple[str, str] | None:
    """``(map name, dm-N)`` of the dm-multipath map holding the disk at sysfs ``disk``
    (``.../block/sdX``), or None when no multipath map holds it."""
    try:
        holders = sorted(p for p in (disk / "holders").iterdir())
    except OSError:
        return None
    for holder in holders:
        uuid = read_attr(holder / "dm" / "uuid") or ""
        if uuid.startswith("mpath-"):
            return read_attr(holder / "dm" / "name") or holder.name, holder.name
    return None


def map_status(name: str, control: Path = DM_CONTROL) -> str | None:
    """The map's status line (``dmsetup status``'s text after the target type), or None
    when the device-mapper cannot be asked (no control node, not root, no such map)."""
    size = 16384
    try:
        fd = os.open(control, os.O_RDWR | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        while size <= _MAX_BUFFER:
            buf = bytearray(size)
            _DM_IOCTL.pack_into(
                buf, 0, *_DM_VERSION, size, _DM_IOCTL.size, 0, 0, 0, 0, 0, 0,
                name.encode()[:127], b"", b"",
            )  # fmt: skip
            try:
                fcntl.ioctl(fd, _DM_TABLE_STATUS, buf, True)
            except OSError as exc:
                if exc.errno in (errno.ENXIO, errno.EPERM, errno.EACCES, errno.EINVAL):
                    return None
                raise
            fields = _DM_IOCTL.unpack_from(buf, 0)
            data_start, targets, flags = fields[4], fields[5], fields[7]
            if flags & _DM_BUFFER_FULL_FLAG:
                size *= 4
                continue
            return _first_multipath_params(bytes(buf), data_start, targets)
        return None
    except OSError:
        return None
    finally:
        os.close(fd)


def _first_multipath_params(buf: bytes, start: int, targets: int) -> str | None:
    offset = start
    for _ in range(targets):
        if offset + _DM_TARGET_SPEC.size > len(buf):
            return None
        _, _, _, nxt, kind = _DM_TARGET_SPEC.unpack_from(buf, offset)
        text_at = offset + _DM_TARGET_SPEC.size
        end = buf.find(b"\0", text_at)
        if kind.rstrip(b"\0") == b"multipath":
            return buf[text_at : end if end >= 0 else len(buf)].decode(errors="replace")
        offset = start + nxt
    return None


def parse_multipath_status(text: str) -> dict[str, tuple[str, str, int]]:
    """Each path of a multipath status line by device (``"8:16"``): (its state, its
    group's state, its fail count).  Malformed text gives what was read before it."""
    tokens = text.split()
    out: dict[str, tuple[str, str, int]] = {}
    pos = 0

    def take() -> str:
        nonlocal pos
        if pos >= len(tokens):
            raise IndexError(pos)
        pos += 1
        return tokens[pos - 1]

    def count() -> int:
        return int(take())

    def skip(n: int) -> None:
        nonlocal pos
        pos += n

    try:
        for _ in range(2):  # features, then hardware handler: a count and its arguments
            skip(count())
        groups = count()
        take()  # the next group's number
        for _ in range(groups):
            group = _GROUP_STATES.get(take(), UNKNOWN)
            skip(count())  # the path selector's group status
            paths, selector_args = count(), count()
            for _ in range(paths):
                dev, state, fails = take(), take(), count()
                out[dev] = (_PATH_STATES.get(state, UNKNOWN), group, fails)
                skip(selector_args)
    except (IndexError, ValueError):
        pass
    return out


def _control_of(disk: Path) -> Path:
    """The control node of the system whose ``sys`` tree ``disk`` is in (``/`` on a real
    system; a test's root for a fake tree)."""
    for parent in disk.parents:
        if parent.name == "sys":
            return parent.parent / DM_CONTROL.relative_to("/")
    return DM_CONTROL


def multipath_of(
    disk: Path, devnum: tuple[int, int] | None, statuses: dict[str, str | None]
) -> MpathPath | None:
    """The disk at sysfs ``disk`` (``major:minor`` ``devnum``) as a multipath path, or
    None.  ``statuses`` caches map status lines by map name across calls; the status
    is asked of the control node under the root of ``disk``'s sysfs."""
    found = holder_map(disk)
    if found is None:
        return None
    name, dm = found
    if name not in statuses:
        statuses[name] = map_status(name, _control_of(disk))
    text = statuses[name]
    if text is None or devnum is None:
        return MpathPath(name, dm)
    state = parse_multipath_status(text).get(f"{devnum[0]}:{devnum[1]}")
    if state is None:
        return MpathPath(name, dm)
    return MpathPath(name, dm, state[0], state[1])
