"""Fixtures of the golden battery: one runner and one pair of tgtds for the whole run."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from iscsikit.testing.plugin import require_tgt

from .harness import Runner, Targets


@pytest.fixture(scope="session")
def golden_runner(tmp_path_factory: pytest.TempPathFactory) -> Runner:
    """Starting databases and iscsiadm's outcomes are cached here across test modules."""
    return Runner(tmp_path_factory.mktemp("golden"))


@pytest.fixture(scope="session")
def golden_targets(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Targets]:
    """tgtd exporting ALPHA and BETA, and one exporting nothing; never reconfigured."""
    require_tgt()
    targets = Targets(tmp_path_factory.mktemp("golden-tgtd"))
    try:
        yield targets
    finally:
        targets.stop()
