"""Reading sysfs attributes the way open-iscsi reads them, and the device base class.

The kernel prints most iSCSI attributes with ``"%s\\n"``; a NULL string prints
``(null)`` (libiscsi's ``iscsi_session_get_param`` for an unset CHAP user, iscsi_tcp's
host ``netdev``).  open-iscsi treats ``(null)`` as empty (libopeniscsiusr/sysfs.c
``sysfs_read_file``) and parses numbers with ``strtoll``/``atoi``: leading digits count,
anything else reads as 0 (so ``off``, which 2.1.10+ kernels print for a disabled
timeout, reads as 0 in 2.1.8).  This module only reads; it never writes.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from iscsikit.config.cnum import strtol

__all__ = ["NULL_STR", "Device", "c_int", "read_attr", "sort_names"]

#: What the kernel prints for a NULL string attribute.
NULL_STR = "(null)"
#: open-iscsi reads at most this many bytes of an attribute (NAME_SIZE / PATH_SIZE).
_MAX_READ = 4096


def read_attr(path: Path) -> str | None:
    """The value of the attribute file ``path`` without its trailing newline, ``""`` for
    ``(null)``, or None if the file does not exist or cannot be read."""
    try:
        with path.open("rb") as f:
            data = f.read(_MAX_READ)
    except OSError:
        return None
    text = data.decode("utf-8", errors="surrogateescape")
    cut = text.rfind("\n")
    if cut >= 0:
        text = text[:cut]
    return "" if text == NULL_STR else text


def c_int(text: str | None, default: int | None = None) -> int | None:
    """C ``strtoll(text, NULL, 10)`` (:func:`iscsikit.config.cnum.strtol`); ``default``
    for None."""
    if text is None:
        return default
    return strtol(text)


def sort_names(names: list[str]) -> list[str]:
    """scandir(..., alphasort) order: byte order of the names (the C locale's strcoll),
    so ``session10`` sorts before ``session2`` -- exactly as iscsiadm lists them."""
    return sorted(names, key=lambda n: n.encode("utf-8", errors="surrogateescape"))


class Device:
    """A sysfs directory with attribute files: the base of every object in this package.

    ``path`` is the directory as reached through ``/sys/class`` (a symlink in a real
    tree); :attr:`real_path` resolves it to its place under ``/sys/devices``.
    """

    __slots__ = ("path",)

    def __init__(self, path: Path) -> None:
        self.path = path

    def attr(self, name: str) -> str | None:
        """The attribute ``name`` (``""`` for ``(null)``), None if there is none."""
        return read_attr(self.path / name)

    def attr_int(self, name: str, default: int | None = None) -> int | None:
        """The attribute as C's strtoll reads it; ``default`` if there is no attribute."""
        return c_int(self.attr(name), default)

    def has_attr(self, name: str) -> bool:
        return (self.path / name).is_file()

    def attributes(self) -> dict[str, str]:
        """Every readable regular attribute file of this directory (no symlinks, no
        sub-directories), by name."""
        out: dict[str, str] = {}
        try:
            entries = sorted(os.scandir(self.path), key=lambda e: e.name)
        except OSError:
            return out
        for entry in entries:
            if entry.is_file(follow_symlinks=False):
                value = read_attr(Path(entry.path))
                if value is not None:
                    out[entry.name] = value
        return out

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def real_path(self) -> Path:
        return self.path.resolve()

    @property
    def device_path(self) -> Path:
        """For a class directory (``class/<c>/<name>`` -> ``devices/.../<dev>/<c>/<name>``),
        the device it belongs to: its ``device`` link, else two levels up."""
        link = self.path / "device"
        if link.exists():
            return link.resolve()
        return self.real_path.parent.parent

    @property
    def exists(self) -> bool:
        return self.path.is_dir()

    def dump(self) -> dict[str, Any]:
        """A JSON-able view: the name, the path and every attribute."""
        return {"name": self.name, "path": str(self.path), "attributes": self.attributes()}

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Device):
            return NotImplemented
        # The same device reached through class/, bus/ or devices/ is one device.
        return type(self) is type(other) and self.real_path == other.real_path

    def __hash__(self) -> int:
        return hash((type(self), self.real_path))

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self.path)!r})"
