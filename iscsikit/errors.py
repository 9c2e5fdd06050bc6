"""Error codes and exceptions shared by every layer of iscsikit.

``IscsiErr`` carries the numbers and names of open-iscsi's ``include/iscsi_err.h``
(identical in 2.1.8 and later), so that the CLI can exit with exactly what iscsiadm
would.  Every exception the library raises is an :class:`IscsiError` with a ``.code``.

This module owns the *one* mapping from iSCSI login status (class, detail) to an
error (:func:`login_status_error`).  It does no I/O and must stay importable from
the sans-I/O protocol core.
"""

from __future__ import annotations

from enum import IntEnum


class IscsiErr(IntEnum):
    """open-iscsi ``enum iscsi_err`` (include/iscsi_err.h)."""

    SUCCESS = 0
    ERR = 1
    SESS_NOT_FOUND = 2
    NOMEM = 3
    TRANS = 4
    LOGIN = 5
    IDBM = 6
    INVAL = 7
    TRANS_TIMEOUT = 8
    INTERNAL = 9
    LOGOUT = 10
    PDU_TIMEOUT = 11
    TRANS_NOT_FOUND = 12
    ACCESS = 13
    TRANS_CAPS = 14
    SESS_EXISTS = 15
    INVALID_MGMT_REQ = 16
    ISNS_UNAVAILABLE = 17
    ISCSID_COMM_ERR = 18
    FATAL_LOGIN = 19
    ISCSID_NOTCONN = 20
    NO_OBJS_FOUND = 21
    SYSFS_LOOKUP = 22
    HOST_NOT_FOUND = 23
    LOGIN_AUTH_FAILED = 24
    ISNS_QUERY = 25
    ISNS_REG_FAILED = 26
    OP_NOT_SUPP = 27
    BUSY = 28
    AGAIN = 29
    UNKNOWN_DISCOVERY_TYPE = 30
    CHILD_TERMINATED = 31
    SESSION_NOT_CONNECTED = 32
    REQ_TIMEDOUT = 33


#: open-iscsi's ``iscsi_err_msgs[]`` (usr/iscsi_err.c), used for messages.
MESSAGES: dict[IscsiErr, str] = {
    IscsiErr.SUCCESS: "no error",
    IscsiErr.ERR: "unknown error",
    IscsiErr.SESS_NOT_FOUND: "session not found",
    IscsiErr.NOMEM: "no available memory",
    IscsiErr.TRANS: "encountered connection failure",
    IscsiErr.LOGIN: "encountered iSCSI login failure",
    IscsiErr.IDBM: "encountered iSCSI database failure",
    IscsiErr.INVAL: "invalid parameter",
    IscsiErr.TRANS_TIMEOUT: "connection timed out",
    IscsiErr.INTERNAL: "internal error",
    IscsiErr.LOGOUT: "encountered iSCSI logout failure",
    IscsiErr.PDU_TIMEOUT: "iSCSI PDU timed out",
    IscsiErr.TRANS_NOT_FOUND: "iSCSI driver not found. Please make sure it is loaded, "
    "and retry the operation",
    IscsiErr.ACCESS: "daemon access denied",
    IscsiErr.TRANS_CAPS: "iSCSI driver does not support requested capability.",
    IscsiErr.SESS_EXISTS: "session exists",
    IscsiErr.INVALID_MGMT_REQ: "Unknown request",
    IscsiErr.ISNS_UNAVAILABLE: "iSNS service not supported",
    IscsiErr.ISCSID_COMM_ERR: "could not communicate to iscsid",
    IscsiErr.FATAL_LOGIN: "encountered non-retryable iSCSI login failure",
    IscsiErr.ISCSID_NOTCONN: "could not connect to iscsid",
    IscsiErr.NO_OBJS_FOUND: "no objects found",
    IscsiErr.SYSFS_LOOKUP: "sysfs lookup failure",
    IscsiErr.HOST_NOT_FOUND: "host not found",
    IscsiErr.LOGIN_AUTH_FAILED: "iSCSI login failed due to authorization failure",
    IscsiErr.ISNS_QUERY: "iSNS query failed",
    IscsiErr.ISNS_REG_FAILED: "iSNS registration failed",
    IscsiErr.OP_NOT_SUPP: "operation not supported",
    IscsiErr.BUSY: "device or resource in use",
    IscsiErr.AGAIN: "operation failed but retry may succeed",
    IscsiErr.UNKNOWN_DISCOVERY_TYPE: "unknown discovery type",
    IscsiErr.CHILD_TERMINATED: "child process terminated",
    IscsiErr.SESSION_NOT_CONNECTED: "session is not connected",
    IscsiErr.REQ_TIMEDOUT: "iscsid request timed out",
}


class IscsiError(Exception):
    """Base of every error iscsikit raises.  ``code`` is what iscsiadm would exit with."""

    code: IscsiErr = IscsiErr.ERR

    def __init__(self, message: str | None = None, *, code: IscsiErr | None = None) -> None:
        if code is not None:
            self.code = code
        super().__init__(message if message is not None else MESSAGES[self.code])


class InternalError(IscsiError):
    code = IscsiErr.INTERNAL


class InvalidParameterError(IscsiError, ValueError):
    """A caller passed a bad argument, key or value (iscsiadm exit 7)."""

    code = IscsiErr.INVAL


class TransportError(IscsiError):
    """The connection failed: refused, reset, closed by the peer (exit 4)."""

    code = IscsiErr.TRANS


class TransportTimeoutError(TransportError):
    """Connecting, or waiting for a login or logout response, timed out (exit 8)."""

    code = IscsiErr.TRANS_TIMEOUT


class PduTimeoutError(TransportError):
    """A response PDU (text, NOP-In, task management) did not arrive in time (exit 11)."""

    code = IscsiErr.PDU_TIMEOUT


class ConnectionFailedError(TransportError):
    """The connection failed while commands were in flight (exit 4).

    Every command outstanding on the connection ends with this error: at error recovery
    level 0 the connection is gone and nothing it carried completed as good.  The
    commands may be retried on a new connection (the kernel's SCSI layer does exactly
    that after session recovery).
    """


class CommandTimeoutError(PduTimeoutError):
    """A SCSI command did not complete in time and was aborted (exit 11)."""


class TaskManagementError(IscsiError):
    """A task management function (abort, LUN reset, target reset) failed (exit 1)."""

    def __init__(self, message: str, *, response: int | None = None) -> None:
        super().__init__(message)
        self.response = response


class TransportNotFoundError(IscsiError):
    """No transport driver of that name is registered (exit 12)."""

    code = IscsiErr.TRANS_NOT_FOUND


class ProtocolError(IscsiError):
    """Base of the two protocol-violation errors below (exit 4: the connection is unusable)."""

    code = IscsiErr.TRANS


class LocalProtocolError(ProtocolError):
    """The caller asked the protocol core for something the protocol forbids."""

    code = IscsiErr.INTERNAL


class RemoteProtocolError(ProtocolError):
    """The target broke the protocol: malformed PDU, bad digest, illegal key or state.

    ``reject_reason`` is the RFC 7143 §11.17.1 Reject reason the initiator would
    report (e.g. 0x02 data digest error, 0x04 protocol error, 0x09 invalid PDU field).
    """

    def __init__(
        self,
        message: str,
        *,
        reject_reason: int | None = None,
        code: IscsiErr | None = None,
    ) -> None:
        super().__init__(message, code=code)
        self.reject_reason = reject_reason


class DigestError(RemoteProtocolError):
    """A header or data digest (CRC32C) did not match."""


class LoginError(IscsiError):
    """A login failed (exit 5 unless a subclass says otherwise).

    ``status_class`` / ``status_detail`` are the Login Response status, when the
    target sent one.
    """

    code = IscsiErr.LOGIN

    def __init__(
        self,
        message: str | None = None,
        *,
        status_class: int | None = None,
        status_detail: int | None = None,
        code: IscsiErr | None = None,
    ) -> None:
        super().__init__(message, code=code)
        self.status_class = status_class
        self.status_detail = status_detail


class FatalLoginError(LoginError):
    """A login failure retrying cannot fix: an initiator error (status class 2), exit 19."""

    code = IscsiErr.FATAL_LOGIN


class AuthenticationError(FatalLoginError):
    """Authentication or authorization failed (status 0x0201/0x0202, or our CHAP check), exit 24."""

    code = IscsiErr.LOGIN_AUTH_FAILED


class TargetNotFoundError(FatalLoginError):
    """The target does not exist here or hides from this initiator (status 0x0203), exit 19."""


class TargetRemovedError(FatalLoginError):
    """The target was removed (status 0x0204), exit 19."""


class TargetError(LoginError):
    """The target failed the login (status class 3); retryable, exit 5 when retries are out."""


class TooManyRedirectsError(LoginError):
    """A redirect chain exceeded the configured limit."""


class SessionNotFoundError(IscsiError):
    code = IscsiErr.SESS_NOT_FOUND


class SessionExistsError(IscsiError):
    code = IscsiErr.SESS_EXISTS


class NoObjectsFoundError(IscsiError):
    code = IscsiErr.NO_OBJS_FOUND


class DatabaseError(IscsiError):
    code = IscsiErr.IDBM


class LogoutError(IscsiError):
    code = IscsiErr.LOGOUT


class NotSupportedError(IscsiError):
    code = IscsiErr.OP_NOT_SUPP


# RFC 7143 §11.13.5 status details, as open-iscsi prints them (usr/login.c).
_STATUS_TEXT: dict[tuple[int, int], str] = {
    (0x01, 0x01): "target moved temporarily",
    (0x01, 0x02): "target moved permanently",
    (0x02, 0x00): "initiator error",
    (0x02, 0x01): "authentication failure",
    (0x02, 0x02): "authorization failure",
    (0x02, 0x03): "target not found",
    (0x02, 0x04): "target removed",
    (0x02, 0x05): "unsupported version",
    (0x02, 0x06): "too many connections",
    (0x02, 0x07): "missing parameter",
    (0x02, 0x08): "can't include in session",
    (0x02, 0x09): "session type not supported",
    (0x02, 0x0A): "session does not exist",
    (0x02, 0x0B): "invalid request during login",
    (0x03, 0x00): "target error",
    (0x03, 0x01): "service unavailable",
    (0x03, 0x02): "out of resources",
}


def login_status_text(status_class: int, status_detail: int) -> str:
    """A human description of a Login Response status."""
    text = _STATUS_TEXT.get((status_class, status_detail))
    if text is None:
        text = f"unknown status (class 0x{status_class:02x})"
    return f"{text} (0x{status_class:02x}{status_detail:02x})"


def login_status_error(status_class: int, status_detail: int, target: str = "") -> LoginError:
    """The one place a non-success, non-redirect login status becomes an exception.

    Authentication / authorization failure → 24; other initiator errors → 19;
    target errors (class 3) → :class:`TargetError` (5), which callers may retry.
    """
    what = login_status_text(status_class, status_detail)
    message = f"login to {target} rejected: {what}" if target else f"login rejected: {what}"
    cls: type[LoginError] = LoginError
    if status_class == 0x02:
        cls = {
            0x01: AuthenticationError,
            0x02: AuthenticationError,
            0x03: TargetNotFoundError,
            0x04: TargetRemovedError,
        }.get(status_detail, FatalLoginError)
    elif status_class == 0x03:
        cls = TargetError
    # Class 1 (redirect) is handled by the login machine; any other class is reported as
    # a plain login failure, as open-iscsi does.
    return cls(message, status_class=status_class, status_detail=status_detail)


__all__ = [
    "MESSAGES",
    "AuthenticationError",
    "CommandTimeoutError",
    "ConnectionFailedError",
    "DatabaseError",
    "DigestError",
    "FatalLoginError",
    "InternalError",
    "InvalidParameterError",
    "IscsiErr",
    "IscsiError",
    "LocalProtocolError",
    "LoginError",
    "LogoutError",
    "NoObjectsFoundError",
    "NotSupportedError",
    "PduTimeoutError",
    "ProtocolError",
    "RemoteProtocolError",
    "SessionExistsError",
    "SessionNotFoundError",
    "TargetError",
    "TargetNotFoundError",
    "TargetRemovedError",
    "TaskManagementError",
    "TooManyRedirectsError",
    "TransportError",
    "TransportNotFoundError",
    "TransportTimeoutError",
    "login_status_error",
    "login_status_text",
]
