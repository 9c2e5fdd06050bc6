"""The initiator's iSCSI name: read ``initiatorname.iscsi``, or make one up.

open-iscsi keeps ``InitiatorName=<iqn>`` in ``/etc/iscsi/initiatorname.iscsi``
(written by ``iscsi-iname`` at install time).  ``ISCSIKIT_ROOT`` prefixes the path, as
for every iscsikit file.  When no file exists, a stable name is derived from the host
name so that target ACLs keep matching across runs.
"""

from __future__ import annotations

import os
import re
import secrets
import socket
from pathlib import Path

from iscsikit.errors import InvalidParameterError

#: iscsikit's own naming authority for generated names (RFC 3720 §3.2.6.3.1 iqn form).
IQN_PREFIX = "iqn.2024-01.org.iscsikit"

_IQN = re.compile(r"^iqn\.\d{4}-\d{2}\.[a-z0-9][a-z0-9.-]*(:.+)?$", re.IGNORECASE)
_EUI = re.compile(r"^eui\.[0-9A-Fa-f]{16}$")
_NAA = re.compile(r"^naa\.([0-9A-Fa-f]{16}|[0-9A-Fa-f]{32})$")


def root() -> Path:
    """The filesystem root every iscsikit path hangs from (``ISCSIKIT_ROOT`` or ``/``)."""
    return Path(os.environ.get("ISCSIKIT_ROOT") or "/")


def initiatorname_path() -> Path:
    return root() / "etc/iscsi/initiatorname.iscsi"


def check_iscsi_name(name: str) -> str:
    """Validate an iSCSI name (iqn., eui. or naa. form, RFC 7143 §4.2.7); return it."""
    if len(name.encode()) > 223 or not (_IQN.match(name) or _EUI.match(name) or _NAA.match(name)):
        raise InvalidParameterError(f"invalid iSCSI name {name!r}")
    return name


def read_initiator_name(path: Path | None = None) -> str | None:
    """``InitiatorName`` from an initiatorname.iscsi file, or None if there is none."""
    path = initiatorname_path() if path is None else path
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except (FileNotFoundError, PermissionError, IsADirectoryError):
        return None
    for raw in text.splitlines():
        line = raw.strip()
        if line.startswith("#"):
            continue
        key, sep, value = line.partition("=")
        if sep and key.strip() == "InitiatorName" and value.strip():
            return value.strip()
    return None


def generate_initiator_name(prefix: str = IQN_PREFIX) -> str:
    """A random name like ``iscsi-iname`` makes: ``<prefix>:<12 hex digits>``."""
    return f"{prefix}:{secrets.token_hex(6)}"


def default_initiator_name() -> str:
    """The configured name, else one stable per host (``<prefix>:<hostname>``)."""
    configured = os.environ.get("ISCSIKIT_INITIATOR_NAME") or read_initiator_name()
    if configured:
        return configured
    host = re.sub(r"[^a-z0-9.-]", "-", socket.gethostname().lower()).strip("-.") or "localhost"
    return f"{IQN_PREFIX}:{host}"
