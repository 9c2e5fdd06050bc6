"""The initiator's iSCSI name: read ``initiatorname.iscsi``, or make one up.

open-iscsi keeps ``InitiatorName=<iqn>`` in ``/etc/iscsi/initiatorname.iscsi`` (written by
``iscsi-iname`` at install time, see :mod:`iscsikit.config.iname`).  ``ISCSIKIT_ROOT``
prefixes the path, as for every iscsikit file (:mod:`iscsikit.config.paths`).  The file
is read as iscsid reads it: a line must start (after leading blanks) with exactly
``InitiatorName=``, the value ends at the first blank, and the last such line wins.
When no file exists, :func:`default_initiator_name` derives a stable name from the host
name so that target ACLs keep matching across runs.
"""

from __future__ import annotations

import os
import re
import secrets
import socket
from pathlib import Path

from iscsikit.config.paths import resolve_root
from iscsikit.errors import InvalidParameterError

#: iscsikit's own naming authority for generated names (RFC 3720 §3.2.6.3.1 iqn form).
IQN_PREFIX = "iqn.2024-01.org.iscsikit"

_IQN = re.compile(r"^iqn\.\d{4}-\d{2}\.[a-z0-9][a-z0-9.-]*(:.+)?$", re.IGNORECASE)
_EUI = re.compile(r"^eui\.[0-9A-Fa-f]{16}$")
_NAA = re.compile(r"^naa\.([0-9A-Fa-f]{16}|[0-9A-Fa-f]{32})$")
_BLANK = " \t\n\v\f\r"


def root() -> Path:
    """The filesystem root every iscsikit path hangs from (``ISCSIKIT_ROOT`` or ``/``)."""
    return resolve_root()


def initiatorname_path() -> Path:
    return root() / "etc/iscsi/initiatorname.iscsi"


def check_iscsi_name(name: str) -> str:
    """Validate an iSCSI name (iqn., eui. or naa. form, RFC 7143 §4.2.7); return it."""
    if len(name.encode()) > 223 or not (_IQN.match(name) or _EUI.match(name) or _NAA.match(name)):
        raise InvalidParameterError(f"invalid iSCSI name {name!r}")
    return name


def _read_param(path: Path, key: str) -> str | None:
    """usr/idbm.c get_global_string_param: last ``<key><value>`` line, value up to a blank."""
    try:
        text = path.read_text(encoding="utf-8", errors="surrogateescape")
    except (FileNotFoundError, PermissionError, IsADirectoryError, NotADirectoryError):
        return None
    found = None
    for raw in text.splitlines():
        line = raw.lstrip(_BLANK)
        if not line.startswith(key):
            continue
        value = re.split(r"[ \t\n\v\f\r]", line[len(key) :], maxsplit=1)[0]
        if value:
            found = value
    return found


def read_initiator_name(path: Path | None = None) -> str | None:
    """``InitiatorName`` from an initiatorname.iscsi file, or None if there is none."""
    return _read_param(initiatorname_path() if path is None else path, "InitiatorName=")


def read_initiator_alias(path: Path | None = None) -> str | None:
    """``InitiatorAlias`` from the same file (iscsid defaults it to the host name)."""
    return _read_param(initiatorname_path() if path is None else path, "InitiatorAlias=")


def generate_initiator_name(prefix: str = IQN_PREFIX) -> str:
    """A random name like ``iscsi-iname`` makes: ``<prefix>:<12 hex digits>``.

    Unlike iscsi-iname, which prints each of its 6 random bytes with ``%x`` (so its
    suffix is 6 to 12 digits long), the suffix is always 12 digits.
    """
    return f"{prefix}:{secrets.token_hex(6)}"


def default_initiator_name() -> str:
    """The configured name, else one stable per host (``<prefix>:<hostname>``)."""
    configured = os.environ.get("ISCSIKIT_INITIATOR_NAME") or read_initiator_name()
    if configured:
        return configured
    host = re.sub(r"[^a-z0-9.-]", "-", socket.gethostname().lower()).strip("-.") or "localhost"
    return f"{IQN_PREFIX}:{host}"
