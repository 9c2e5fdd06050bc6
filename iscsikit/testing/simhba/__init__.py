"""Simulated offload HBAs: sysfs trees and netlink answers shaped like real drivers'.

No qla4xxx, cxgb3i, cxgb4i, bnx2i, be2iscsi or qedi hardware exists where iscsikit is
tested, so the offload drivers (``iscsikit_drivers.offload``) and the CLI's HBA modes
run against these **simulations**:

- :mod:`.profiles`: each driver's transport caps, netlink callbacks and sysfs
  attributes, from the drivers' published source;
- :mod:`.hba`: :class:`SimulatedHba`, one host's tree (through
  :class:`~iscsikit.sysfs.fake.FakeSysfs`) and its answers to decoded requests;
- :mod:`.server`: :class:`HbaServer`, the kernel end of a socketpair, or an
  ``AF_UNIX`` socket at a path for subprocesses (the test seam).

docs/offload.md says what is simulated and what is not.
"""

from __future__ import annotations

from .hba import SimulatedHba
from .profiles import MISSING_ERRNO, PROFILES, DriverProfile
from .server import HbaServer

__all__ = ["MISSING_ERRNO", "PROFILES", "DriverProfile", "HbaServer", "SimulatedHba"]
