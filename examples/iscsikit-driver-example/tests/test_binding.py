"""What the driver adds to the kit: its binding keys are checked before any connection."""

from __future__ import annotations

import pytest
from iscsikit.errors import IscsiErr, IscsiError
from iscsikit.plugin import ConnectSpec
from iscsikit.proto.address import Portal
from iscsikit.proto.login import LoginConfig

from iscsikit_example_driver import ExampleTransport


def _spec(binding: dict[str, str], target: str | None = "iqn.2024-01.test:t") -> ConnectSpec:
    login = LoginConfig("iqn.2024-01.test:i", isid=b"\x80\0\0\0\0\1", target_name=target)
    return ConnectSpec(Portal("127.0.0.1", 9), login, binding=binding)


@pytest.mark.parametrize("target", ["iqn.2024-01.test:t", None])
def test_unknown_binding_key_is_refused_with_7(target: str | None) -> None:
    transport = ExampleTransport()
    with pytest.raises(IscsiError) as info:
        if target is None:
            transport.discover_sendtargets(_spec({"hwaddress": "00:11:22:33:44:55"}, None))
        else:
            transport.login(_spec({"hwaddress": "00:11:22:33:44:55"}, target))
    assert info.value.code is IscsiErr.INVAL
    assert "hwaddress" in str(info.value)


def test_source_address_that_is_not_ours_is_a_connection_failure_4() -> None:
    # 192.0.2.1 (TEST-NET-1) is on no interface here: bind() fails before any packet.
    with pytest.raises(IscsiError) as info:
        ExampleTransport().login(_spec({"ipaddress": "192.0.2.1"}))
    assert info.value.code is IscsiErr.TRANS
