"""The NBD client tests use: the library's :class:`iscsikit.nbd.client.NbdClient`.

Kept as a name for the tests that import it from here; :class:`NbdError` is the error an
export answers a request with (EIO during an outage: an ``NbdIOError``)."""

from __future__ import annotations

from iscsikit.nbd.client import NbdClient, NbdError

__all__ = ["NbdClient", "NbdError"]
