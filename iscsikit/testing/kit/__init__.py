"""The driver kit: a transport conformance suite a driver package runs with pytest.

A driver package (in-tree or a vendor's own pip package) proves it implements the
:class:`~iscsikit.plugin.Transport` contract by subclassing :class:`TransportConformance`
in its tests::

    from iscsikit.plugin import Capability
    from iscsikit.testing.kit import TransportConformance


    class TestMyDriver(TransportConformance):
        TRANSPORT = "mydriver"  # the name its entry point registers
        CAPABILITIES = frozenset({Capability.LOGIN, Capability.SENDTARGETS})

Installed iscsikit brings the ``iscsikit`` pytest plugin (its ``tgtd_factory`` fixture
starts the private tgtd the kit logs in to), so no conftest is needed; tgt must be
installed (Debian package ``tgt``).  Without tgt, or for a driver that cannot reach
tgtd, override the ``kit_target`` fixture: :class:`SimulatedKitTarget` serves the same
targets in-process (no SCSI commands: not for a driver that declares ``DATA``), or write
a :class:`KitTarget` over your own simulated host.
"""

from __future__ import annotations

from iscsikit.testing.kit.simulated import SimulatedKitTarget
from iscsikit.testing.kit.spec import INITIATOR, KIT_TIMEOUTS, SpecFactory, new_isid
from iscsikit.testing.kit.suite import TransportConformance
from iscsikit.testing.kit.target import KIT_IQN, KitTarget, TgtdKitTarget, wait_for

__all__ = [
    "INITIATOR",
    "KIT_IQN",
    "KIT_TIMEOUTS",
    "KitTarget",
    "SimulatedKitTarget",
    "SpecFactory",
    "TgtdKitTarget",
    "TransportConformance",
    "new_isid",
    "wait_for",
]
