"""iscsikit: an iSCSI initiator framework.

The Python API in one import::

    import iscsikit
    targets = iscsikit.discover("127.0.0.1:3260")
    with iscsikit.login(targets[0].portal, targets[0].name,
                        chap=iscsikit.Chap("user", "secret")) as session:
        print(session.params)

Every error raised is an :class:`IscsiError` whose ``.code`` (an :class:`IscsiErr`)
is the exit code iscsiadm uses for the same failure.

The API names are loaded on first use (PEP 562), so ``import iscsikit.proto`` stays a
pure protocol import and command-line tools start fast.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from iscsikit.errors import (
    AuthenticationError,
    IscsiErr,
    IscsiError,
    LoginError,
    TransportError,
    TransportTimeoutError,
)

if TYPE_CHECKING:
    from iscsikit.api import Chap, Session, discover, login
    from iscsikit.lun.aio import AsyncLun, open_lun_async
    from iscsikit.lun.aio_multipath import AsyncMultipathLun, open_multipath_lun_async
    from iscsikit.lun.lun import Lun, open_lun
    from iscsikit.lun.multipath import MultipathLun, open_multipath_lun
    from iscsikit.nbd.session_lun import SessionLun, open_session_lun
    from iscsikit.proto.sendtargets import DiscoveredTarget
    from iscsikit.records.model import DiscoveryRecord, IfaceRecord, NodeRecord
    from iscsikit.records.store import Records

__version__ = "0.1.0"

_LAZY = {
    "Chap": "iscsikit.api",
    "Session": "iscsikit.api",
    "discover": "iscsikit.api",
    "login": "iscsikit.api",
    "Lun": "iscsikit.lun.lun",
    "open_lun": "iscsikit.lun.lun",
    "AsyncLun": "iscsikit.lun.aio",
    "open_lun_async": "iscsikit.lun.aio",
    "MultipathLun": "iscsikit.lun.multipath",
    "open_multipath_lun": "iscsikit.lun.multipath",
    "AsyncMultipathLun": "iscsikit.lun.aio_multipath",
    "open_multipath_lun_async": "iscsikit.lun.aio_multipath",
    "SessionLun": "iscsikit.nbd.session_lun",
    "open_session_lun": "iscsikit.nbd.session_lun",
    "DiscoveredTarget": "iscsikit.proto.sendtargets",
    "Records": "iscsikit.records.store",
    "NodeRecord": "iscsikit.records.model",
    "DiscoveryRecord": "iscsikit.records.model",
    "IfaceRecord": "iscsikit.records.model",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'iscsikit' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


__all__ = [
    "AsyncLun",
    "AsyncMultipathLun",
    "AuthenticationError",
    "Chap",
    "DiscoveredTarget",
    "DiscoveryRecord",
    "IfaceRecord",
    "IscsiErr",
    "IscsiError",
    "LoginError",
    "Lun",
    "MultipathLun",
    "NodeRecord",
    "Records",
    "Session",
    "SessionLun",
    "TransportError",
    "TransportTimeoutError",
    "__version__",
    "discover",
    "login",
    "open_lun",
    "open_lun_async",
    "open_multipath_lun",
    "open_multipath_lun_async",
    "open_session_lun",
]
