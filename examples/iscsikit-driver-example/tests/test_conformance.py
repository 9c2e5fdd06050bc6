"""The iscsikit driver kit against this driver, on a private tgtd (Debian package tgt).

The kit's tests come from the base class; the ``tgtd_factory`` fixture they use comes
from iscsikit's pytest plugin, which installing iscsikit registers.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import ClassVar

import pytest
from iscsikit.plugin import Capability
from iscsikit.testing.kit import KitTarget, SimulatedKitTarget, TransportConformance


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


class TestExampleOnSimulatedTarget(TestExampleConformance):
    """The same kit against iscsikit's in-process simulated target (no tgt needed): the
    driver declares no SCSI data path, so nothing here needs a real target."""

    @pytest.fixture
    def kit_target(self) -> Iterator[KitTarget]:
        with SimulatedKitTarget() as target:
            yield target
