"""The rule from iface.transport_name to a driver (pure)."""

from __future__ import annotations

import pytest

from iscsikit.errors import InvalidParameterError, TransportNotFoundError
from iscsikit.manager.transports import choose_driver

USER = {"usertcp"}
BOTH = {"usertcp", "tcp"}


@pytest.mark.parametrize(
    ("name", "registered", "kernel", "settings", "expected"),
    [
        # auto: the kernel's tcp only when a tcp driver is registered and the kernel has it
        ("tcp", USER, (), {}, "usertcp"),
        ("tcp", USER, ("tcp",), {}, "usertcp"),
        ("tcp", BOTH, (), {}, "usertcp"),
        ("tcp", BOTH, ("tcp",), {}, "tcp"),
        ("", BOTH, ("tcp",), {}, "tcp"),  # no transport_name: tcp
        # the override
        ("tcp", BOTH, ("tcp",), {"transport.tcp": "usertcp"}, "usertcp"),
        ("tcp", BOTH, ("tcp",), {"transport.tcp": "kernel"}, "tcp"),
        ("tcp", BOTH, ("tcp",), {"transport.tcp": " Auto "}, "tcp"),
        # names other than tcp: the driver of that name
        ("usertcp", BOTH, ("tcp",), {}, "usertcp"),
        ("iser", {"usertcp", "iser"}, (), {}, "iser"),
    ],
)
def test_rule(
    name: str, registered: set[str], kernel: tuple[str, ...], settings: dict[str, str],
    expected: str,
) -> None:  # fmt: skip
    assert choose_driver(name, registered=registered, kernel_transports=kernel,
                         settings=settings) == expected  # fmt: skip


@pytest.mark.parametrize(
    ("name", "registered", "kernel", "settings"),
    [
        ("tcp", USER, ("tcp",), {"transport.tcp": "kernel"}),  # no kernel driver
        ("tcp", BOTH, (), {"transport.tcp": "kernel"}),  # no kernel transport
        ("bnx2i", USER, ("bnx2i",), {}),
        ("usertcp", {"tcp"}, ("tcp",), {}),
    ],
)
def test_no_driver_is_transport_not_found(
    name: str, registered: set[str], kernel: tuple[str, ...], settings: dict[str, str]
) -> None:
    with pytest.raises(TransportNotFoundError) as caught:
        choose_driver(name, registered=registered, kernel_transports=kernel, settings=settings)
    assert caught.value.code == 12
    assert f"Could not load transport {name}" in str(caught.value)


def test_bad_setting() -> None:
    with pytest.raises(InvalidParameterError):
        choose_driver("tcp", registered=BOTH, kernel_transports=(),
                      settings={"transport.tcp": "fast"})  # fmt: skip
