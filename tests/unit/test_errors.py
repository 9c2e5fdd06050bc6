"""The error codes are open-iscsi's, and login status maps to them in one place."""

from __future__ import annotations

import pytest

from iscsikit import errors
from iscsikit.errors import IscsiErr

# include/iscsi_err.h, as listed in open-iscsi-notes.md §4.3.
ISCSI_ERR_H = [
    "SUCCESS", "ERR", "SESS_NOT_FOUND", "NOMEM", "TRANS", "LOGIN", "IDBM", "INVAL",
    "TRANS_TIMEOUT", "INTERNAL", "LOGOUT", "PDU_TIMEOUT", "TRANS_NOT_FOUND", "ACCESS",
    "TRANS_CAPS", "SESS_EXISTS", "INVALID_MGMT_REQ", "ISNS_UNAVAILABLE", "ISCSID_COMM_ERR",
    "FATAL_LOGIN", "ISCSID_NOTCONN", "NO_OBJS_FOUND", "SYSFS_LOOKUP", "HOST_NOT_FOUND",
    "LOGIN_AUTH_FAILED", "ISNS_QUERY", "ISNS_REG_FAILED", "OP_NOT_SUPP", "BUSY", "AGAIN",
    "UNKNOWN_DISCOVERY_TYPE", "CHILD_TERMINATED", "SESSION_NOT_CONNECTED", "REQ_TIMEDOUT",
]  # fmt: skip


def test_codes_match_iscsi_err_h() -> None:
    assert [e.name for e in IscsiErr] == ISCSI_ERR_H
    assert [int(e) for e in IscsiErr] == list(range(34))
    assert set(errors.MESSAGES) == set(IscsiErr)


@pytest.mark.parametrize(
    ("status", "cls", "code"),
    [
        ((2, 1), errors.AuthenticationError, IscsiErr.LOGIN_AUTH_FAILED),
        ((2, 2), errors.AuthenticationError, IscsiErr.LOGIN_AUTH_FAILED),
        ((2, 3), errors.TargetNotFoundError, IscsiErr.FATAL_LOGIN),
        ((2, 4), errors.TargetRemovedError, IscsiErr.FATAL_LOGIN),
        ((2, 0), errors.FatalLoginError, IscsiErr.FATAL_LOGIN),
        ((2, 5), errors.FatalLoginError, IscsiErr.FATAL_LOGIN),
        ((2, 0x0B), errors.FatalLoginError, IscsiErr.FATAL_LOGIN),
        ((2, 0x7F), errors.FatalLoginError, IscsiErr.FATAL_LOGIN),
        ((3, 0), errors.TargetError, IscsiErr.LOGIN),
        ((3, 1), errors.TargetError, IscsiErr.LOGIN),
        ((3, 2), errors.TargetError, IscsiErr.LOGIN),
        ((7, 7), errors.LoginError, IscsiErr.LOGIN),
    ],
)
def test_login_status_mapping(status: tuple[int, int], cls: type, code: IscsiErr) -> None:
    exc = errors.login_status_error(*status, target="iqn.2024-01.test:t")
    assert type(exc) is cls
    assert exc.code is code
    assert (exc.status_class, exc.status_detail) == status
    assert "iqn.2024-01.test:t" in str(exc)
    assert f"0x{status[0]:02x}{status[1]:02x}" in str(exc)


def test_every_error_is_an_iscsi_error_with_a_code() -> None:
    for name in errors.__all__:
        obj = getattr(errors, name)
        if isinstance(obj, type) and issubclass(obj, Exception):
            assert issubclass(obj, errors.IscsiError), name
            assert isinstance(obj.code, IscsiErr), name


def test_code_override_and_default_message() -> None:
    assert str(errors.TransportError()) == "encountered connection failure"
    exc = errors.TransportTimeoutError("slow", code=IscsiErr.PDU_TIMEOUT)
    assert exc.code is IscsiErr.PDU_TIMEOUT
    assert errors.TransportTimeoutError.code is IscsiErr.TRANS_TIMEOUT
