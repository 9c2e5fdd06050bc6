"""The IPC between iscsikitd and its clients: a versioned JSON protocol over a unix socket.

- :mod:`iscsikit.ipc.protocol` -- framing, message shapes and bounds, sans-I/O;
- :mod:`iscsikit.ipc.errors` -- the protocol's errors, and the rebuilding of a daemon's error
  in the client;
- :mod:`iscsikit.ipc.client` -- :class:`DaemonClient`, blocking (the command line's client),
  loaded on first use.

The server is :mod:`iscsikit.daemon.server` (asyncio, above this layer).  docs/ipc.md
describes the protocol.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from iscsikit.ipc.errors import (
    AccessDeniedError,
    IpcProtocolError,
    RequestLimitError,
    TooManyClientsError,
    UnknownOperationError,
    UnsupportedVersionError,
    exception_from_reply,
)
from iscsikit.ipc.protocol import MAX_MESSAGE, VERSION

if TYPE_CHECKING:
    from iscsikit.ipc.client import (
        DaemonClient,
        DaemonCommError,
        DaemonNotRunningError,
        DaemonTimeoutError,
    )

# The client (sockets) loads on first use, so that importing the protocol stays sans-I/O.
_LAZY = frozenset(
    {"DaemonClient", "DaemonCommError", "DaemonNotRunningError", "DaemonTimeoutError"}
)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module("iscsikit.ipc.client"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "MAX_MESSAGE",
    "VERSION",
    "AccessDeniedError",
    "DaemonClient",
    "DaemonCommError",
    "DaemonNotRunningError",
    "DaemonTimeoutError",
    "IpcProtocolError",
    "RequestLimitError",
    "TooManyClientsError",
    "UnknownOperationError",
    "UnsupportedVersionError",
    "exception_from_reply",
]
