"""A daemon's error comes back as the exception class and code it was raised with."""

from __future__ import annotations

import pytest

from iscsikit import errors
from iscsikit.errors import IscsiErr, IscsiError
from iscsikit.ipc.client import DaemonCommError, DaemonNotRunningError, DaemonTimeoutError
from iscsikit.ipc.errors import (
    AccessDeniedError,
    RequestLimitError,
    TooManyClientsError,
    error_class_for_code,
    exception_from_reply,
)
from iscsikit.ipc.protocol import ReplyDecoder, encode_exception

ERROR_CLASSES = [
    getattr(errors, name)
    for name in errors.__all__
    if isinstance(getattr(errors, name), type) and issubclass(getattr(errors, name), IscsiError)
]


IPC_CLASSES = [
    AccessDeniedError,
    RequestLimitError,
    TooManyClientsError,
    DaemonCommError,
    DaemonNotRunningError,
    DaemonTimeoutError,
]


@pytest.mark.parametrize("cls", [*ERROR_CLASSES, *IPC_CLASSES])
def test_every_iscsikit_error_round_trips(cls: type[IscsiError]) -> None:
    original = cls("what happened")
    (event,) = ReplyDecoder().feed(encode_exception(1, original))
    rebuilt = event.error.to_exception()
    assert type(rebuilt) is cls
    assert rebuilt.code == original.code
    assert str(rebuilt) == "what happened"


def test_code_overrides_are_kept() -> None:
    rebuilt = exception_from_reply(21, "nothing", "IscsiError")
    assert type(rebuilt) is IscsiError
    assert rebuilt.code == IscsiErr.NO_OBJS_FOUND


@pytest.mark.parametrize(
    ("code", "cls"),
    [
        (4, errors.TransportError),
        (9, errors.InternalError),
        (19, errors.FatalLoginError),
        (24, errors.AuthenticationError),
        (7, errors.InvalidParameterError),
        (13, AccessDeniedError),
        (1, IscsiError),
        (33, DaemonTimeoutError),
    ],
)
def test_unknown_kind_falls_back_to_the_code(code: int, cls: type[IscsiError]) -> None:
    rebuilt = exception_from_reply(code, "m", "SomeDaemonSideError")
    assert type(rebuilt) is cls
    assert rebuilt.code == code


def test_every_code_has_a_class_with_that_code() -> None:
    for err in IscsiErr:
        cls = error_class_for_code(err)
        assert cls is IscsiError or cls.code == err
        assert exception_from_reply(err, "m", "").code == err


def test_unknown_code_is_still_an_error() -> None:
    rebuilt = exception_from_reply(99, "from the future", "FutureError")
    assert type(rebuilt) is IscsiError
    assert rebuilt.code == IscsiErr.ERR
    assert str(rebuilt) == "from the future"


def test_kind_outside_iscsikit_is_not_trusted() -> None:
    # Only iscsikit's own classes may be named: not builtins, not arbitrary names.
    rebuilt = exception_from_reply(7, "m", "SystemExit")
    assert type(rebuilt) is errors.InvalidParameterError
