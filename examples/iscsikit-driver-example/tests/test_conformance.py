"""The iscsikit driver kit against this driver, on a private tgtd (Debian package tgt).

The kit's tests come from the base class; the ``tgtd_factory`` fixture they use comes
from iscsikit's pytest plugin, which installing iscsikit registers.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar

from iscsikit.plugin import Capability
from iscsikit.testing.kit import TransportConformance


class TestExampleConformance(TransportConformance):
    TRANSPORT = "example"
    CAPABILITIES = frozenset(
        {
            Capability.SENDTARGETS,
            Capability.LOGIN,
            Capability.HEADER_DIGEST,
            Capability.DATA_DIGEST,
            Capability.IPV6,
        }
    )
    # Every kit login leaves from 127.0.0.2; the kit checks the target sees that address.
    IFACE_BINDING: ClassVar[Mapping[str, str]] = {"ipaddress": "127.0.0.2"}
