"""The IPC between iscsikitd and its clients: a versioned JSON protocol over a unix socket.

- :mod:`iscsikit.ipc.protocol` -- framing, message shapes and bounds, sans-I/O;
- :mod:`iscsikit.ipc.errors` -- the protocol's errors, and the rebuilding of a daemon's error
  in the client;
- :mod:`iscsikit.ipc.client` -- :class:`DaemonClient`, blocking (the command line's client).

The server is :mod:`iscsikit.daemon.server` (asyncio, above this layer).  docs/ipc.md
describes the protocol.
"""

from __future__ import annotations

from iscsikit.ipc.client import (
    DaemonClient,
    DaemonCommError,
    DaemonNotRunningError,
    DaemonTimeoutError,
)
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
