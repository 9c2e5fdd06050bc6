"""The errors of the daemon IPC, and the rebuilding of a daemon's error on the client side.

A failed request travels as ``{"code": int, "message": str, "kind": str}``: ``code`` is the
iscsiadm exit code (:class:`~iscsikit.errors.IscsiErr`), ``kind`` the name of the exception
class the daemon raised.  :func:`exception_from_reply` turns that back into an exception the
caller can catch as if the daemon's code had run in its own process: the class named by
``kind`` when it is one of iscsikit's own (``iscsikit.errors`` and this package), else the most
general class for ``code``, else a plain :class:`~iscsikit.errors.IscsiError` carrying
``code``.  The rebuilt exception always has the code and message of the reply.

This module does no I/O.
"""

from __future__ import annotations

from iscsikit.errors import IscsiErr, IscsiError

__all__ = [
    "AccessDeniedError",
    "IpcProtocolError",
    "RequestLimitError",
    "TooManyClientsError",
    "UnknownOperationError",
    "UnsupportedVersionError",
    "error_class_for_code",
    "exception_from_reply",
]


class IpcProtocolError(IscsiError):
    """A message broke the IPC protocol: bad framing, JSON, shape or version (exit 16).

    iscsid answers a request it cannot handle with ``ISCSI_ERR_INVALID_MGMT_REQ``
    (usr/mgmt_ipc.c), and so does iscsikitd.
    """

    code = IscsiErr.INVALID_MGMT_REQ


class UnsupportedVersionError(IpcProtocolError):
    """The request's ``"v"`` is not a version this side speaks."""


class UnknownOperationError(IpcProtocolError):
    """The request names an operation the daemon does not have."""


class RequestLimitError(IpcProtocolError):
    """The connection carried its maximum number of requests; reconnect (exit 29)."""

    code = IscsiErr.AGAIN


class TooManyClientsError(IscsiError):
    """The daemon serves its maximum number of connections already (exit 29)."""

    code = IscsiErr.AGAIN


class AccessDeniedError(IscsiError):
    """The peer's credentials do not allow it to use the daemon (exit 13, as iscsid)."""

    code = IscsiErr.ACCESS


# Modules whose IscsiError subclasses a reply's "kind" may name.  Anything else (a class a
# daemon-side module defines) is rebuilt from its code alone.
_KIND_MODULES = frozenset({"iscsikit.errors", __name__, "iscsikit.ipc.client"})


def _iscsikit_classes() -> list[type[IscsiError]]:
    """IscsiError and its subclasses from :data:`_KIND_MODULES`, breadth first."""
    found: list[type[IscsiError]] = []
    queue: list[type[IscsiError]] = [IscsiError]
    seen: set[type[IscsiError]] = set()
    while queue:
        cls = queue.pop(0)
        if cls in seen:
            continue
        seen.add(cls)
        if cls.__module__ in _KIND_MODULES:
            found.append(cls)
        queue.extend(cls.__subclasses__())
    return found


def error_class_for_code(code: int) -> type[IscsiError]:
    """The most general iscsikit exception class whose ``code`` is ``code``.

    Breadth-first over the class tree, so 4 is :class:`~iscsikit.errors.TransportError`
    (not one of its subclasses) and a code without a class of its own is
    :class:`~iscsikit.errors.IscsiError`.
    """
    for cls in _iscsikit_classes():
        if cls.code == code:
            return cls
    return IscsiError


def _as_code(code: int) -> IscsiErr:
    try:
        return IscsiErr(code)
    except ValueError:
        # A newer daemon may know codes this client does not: still an error.
        return IscsiErr.ERR


def exception_from_reply(code: int, message: str, kind: str) -> IscsiError:
    """Rebuild the exception a daemon reported (see the module docstring)."""
    err = _as_code(code)
    cls = next((c for c in _iscsikit_classes() if c.__name__ == kind), None)
    if cls is None:
        cls = error_class_for_code(err)
    try:
        exc = cls(message)
    except TypeError:  # a subclass with a different constructor
        exc = IscsiError(message)
    exc.code = err
    return exc
