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
installed (Debian package ``tgt``).  A driver that cannot reach tgtd overrides the
``kit_target`` fixture with its own :class:`KitTarget` (a simulated host).
"""

from __future__ import annotations

from iscsikit.testing.kit.spec import INITIATOR, KIT_TIMEOUTS, SpecFactory, new_isid
from iscsikit.testing.kit.suite import TransportConformance
from iscsikit.testing.kit.target import KIT_IQN, KitTarget, TgtdKitTarget, wait_for

__all__ = [
    "INITIATOR",
    "KIT_IQN",
    "KIT_TIMEOUTS",
    "KitTarget",
    "SpecFactory",
    "TgtdKitTarget",
    "TransportConformance",
    "new_isid",
    "wait_for",
]
