"""The two errors of the NETLINK_ISCSI codec.

:class:`NetlinkDecodeError` is the only exception the decoders raise, whatever the bytes;
:class:`NetlinkRequestError` is what an IF_ERROR reply (the kernel refused a request)
becomes when the caller asks for it (:meth:`RequestFailed.exception
<iscsikit.netlink.events.RequestFailed.exception>`).
"""

from __future__ import annotations

import errno as _errno

from iscsikit.errors import IscsiErr, IscsiError, RemoteProtocolError

__all__ = ["NetlinkDecodeError", "NetlinkRequestError"]


class NetlinkDecodeError(RemoteProtocolError):
    """A received netlink datagram is malformed: short, truncated, or inconsistent.

    The kernel never sends such a thing; receiving one means the socket is not what we
    think it is.  ``offset`` is where in the datagram the bad message starts.
    """

    def __init__(self, message: str, *, offset: int = 0) -> None:
        super().__init__(message, code=IscsiErr.INTERNAL)
        self.offset = offset


class NetlinkRequestError(IscsiError):
    """The kernel answered a request with ISCSI_KEVENT_IF_ERROR (``iferror = -errno``).

    ``errno`` is positive (``EINVAL``, ``ENOSYS``...); ``request_type`` is the request's
    :class:`~iscsikit.netlink.constants.UEvent` code.  iscsid treats ENOSYS as "this
    kernel does not support it", not as a failure: see :attr:`not_supported`.
    """

    code = IscsiErr.INTERNAL

    def __init__(self, request_type: int, errno: int) -> None:
        self.request_type = request_type
        self.errno = errno
        name = _errno.errorcode.get(errno, str(errno))
        super().__init__(f"netlink request {request_type} failed: -{name}")

    @property
    def not_supported(self) -> bool:
        """Whether the kernel or transport does not implement the request (ENOSYS)."""
        return self.errno == _errno.ENOSYS
