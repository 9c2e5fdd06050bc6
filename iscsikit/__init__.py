"""iscsikit: an iSCSI initiator framework.

The Python API in one import::

    import iscsikit
    targets = iscsikit.discover("127.0.0.1:3260")
    with iscsikit.login(targets[0].portal, targets[0].name,
                        chap=iscsikit.Chap("user", "secret")) as session:
        print(session.params)

Every error raised is an :class:`IscsiError` whose ``.code`` (an :class:`IscsiErr`)
is the exit code iscsiadm uses for the same failure.
"""

from __future__ import annotations

from iscsikit.api import Chap, Session, discover, login
from iscsikit.errors import (
    AuthenticationError,
    IscsiErr,
    IscsiError,
    LoginError,
    TransportError,
    TransportTimeoutError,
)
from iscsikit.proto.sendtargets import DiscoveredTarget

__version__ = "0.1.0"

__all__ = [
    "AuthenticationError",
    "Chap",
    "DiscoveredTarget",
    "IscsiErr",
    "IscsiError",
    "LoginError",
    "Session",
    "TransportError",
    "TransportTimeoutError",
    "__version__",
    "discover",
    "login",
]
