"""iscsikit's discovery agrees with two independent initiators on the same target.

The acceptance check of the foundation issue: against a tgtd configured outside
iscsikit's control (several targets, an extra portal, an ACL-hidden target), the
(portal, tpgt, target) set must equal libiscsi's ``iscsi-ls -s`` and open-iscsi
2.1.8's ``iscsiadm -m discovery -t st`` (run through shared/tools/iscsiadm-oracle).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

import iscsikit
from iscsikit.testing import peers
from iscsikit.testing.tgtd import Tgtd

pytestmark = pytest.mark.integration

IQN = "iqn.2024-01.test.iscsikit"
INITIATOR = f"{IQN}:agreement"


@pytest.fixture
def configured(tgtd_factory: Callable[..., Tgtd]) -> Tgtd:
    tgtd = tgtd_factory()
    for name in ("alpha", "beta", "gamma.with.dots", "delta-2"):
        tgtd.add_target(f"{IQN}:{name}", luns=1)
    hidden = tgtd.add_target(f"{IQN}:acl-only", acl=())
    tgtd.bind_initiator_name(hidden, f"{IQN}:someone-else")
    return tgtd


def ours(portal: str) -> set[tuple[str, int, str]]:
    return {(t.portal, t.tpgt, t.name) for t in iscsikit.discover(portal, initiator_name=INITIATOR)}


def test_same_set_as_libiscsi(configured: Tgtd) -> None:
    theirs = peers.iscsi_ls_targets(configured.portal, initiator_name=INITIATOR)
    assert theirs  # the peer really answered
    assert ours(configured.portal) == theirs


def test_same_set_as_open_iscsi(configured: Tgtd, tmp_path: Path) -> None:
    theirs = peers.iscsiadm_discover(
        configured.portal, db=tmp_path / "oracle", initiator_name=INITIATOR
    )
    assert theirs
    assert ours(configured.portal) == theirs
