"""The driver kit against the kernel's iscsi_tcp driver (``tcp``, drivers/kerneltcp) on
the guest's kernel, with a tgtd in the guest: the kit's kernel branch (a
``KernelTransportSession``: watch / suspend / reconnect after a dropped connection, the
same kernel sid after recovery, ping left to the kernel) on a real kernel.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from iscsikit.plugin import Capability, Timeouts
from iscsikit.testing.kit import KitTarget, TgtdKitTarget, TransportConformance
from iscsikit.testing.plugin import require_tgt
from iscsikit.testing.tgtd import Tgtd
from iscsikit.testing.vmguest.checks import WAIT


class TestKernelTcpConformance(TransportConformance):
    TRANSPORT = "tcp"
    CAPABILITIES = frozenset(
        {
            Capability.SENDTARGETS,
            Capability.LOGIN,
            Capability.HEADER_DIGEST,
            Capability.DATA_DIGEST,
            Capability.IPV6,
            Capability.BLOCK_DEVICE,
        }
    )
    # The guest runs under TCG: everything takes several times longer than on a host.
    TIMEOUTS = Timeouts(login=WAIT, logout=WAIT, response=WAIT)

    @pytest.fixture
    def kit_target(self, tmp_path: Path) -> Iterator[KitTarget]:
        for module in ("iscsi_tcp", "sd_mod"):
            subprocess.run(["modprobe", module], check=True, timeout=WAIT)
        require_tgt()
        with Tgtd(tmp_path / "tgtd", start_timeout=WAIT) as tgtd:
            yield TgtdKitTarget.on(tgtd)
