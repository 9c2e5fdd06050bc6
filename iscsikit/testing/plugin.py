"""iscsikit's pytest plugin: tgtd and scripted-target fixtures, and CI's no-skip rule.

Registered through the ``pytest11`` entry point ``iscsikit``, so any package that has
iscsikit installed (a vendor's driver package included) gets these fixtures without a
conftest. Disable with ``-p no:iscsikit``.

Fixtures
    ``tgtd_factory``    function scope: ``tgtd_factory(host=..., port=..., iscsi_params=...)``
                        starts a private :class:`~iscsikit.testing.tgtd.Tgtd` in tmp_path;
                        every instance is stopped at teardown.
    ``tgtd``            session scope: one shared Tgtd on 127.0.0.1 with target
                        ``iqn.2024-01.test.iscsikit:disk`` (tid 1, one 16 MiB LUN, open ACL).
                        Read-only by convention: reconfigure a ``tgtd_factory`` one instead.
    ``scripted_target`` function scope: ``scripted_target(behaviour, host=...)`` starts a
                        :class:`~iscsikit.testing.hostile.ScriptedTarget`; stopped at teardown.

Without tgt installed, the tgtd fixtures skip with "tgt not installed: ...".

CI never skips (STYLE.md: CI installs every prerequisite). When the environment has
``CI=true``, this plugin turns every skipped test, and every module skipped at collection,
into a failure that carries the skip reason; expected failures (xfail) are untouched.
``ISCSIKIT_ALLOW_SKIPS=1`` switches that off (useful for a downstream package whose CI
sets CI=true but cannot install tgt).

Debugging: when a test that used a tgtd fails, the tail of that tgtd's log is attached
to the report. ``ISCSIKIT_KEEP_TGTD=1`` keeps the LUN images as well as the logs and lists
every tgtd's workdir at the end of the run.
"""

from __future__ import annotations

import os
from collections.abc import Generator, Iterator
from pathlib import Path

import pytest

from iscsikit.testing.hostile import Behaviour, ScriptedTarget
from iscsikit.testing.tgtd import Tgtd, tgt_missing

__all__ = [
    "DISK_IQN",
    "ScriptedTargetFactory",
    "TgtdFactory",
    "ci_forbids_skips",
    "keep_tgtd",
    "require_tgt",
]

#: The target the session-scoped ``tgtd`` fixture exports (tid 1, LUN 1).
DISK_IQN = "iqn.2024-01.test.iscsikit:disk"

_LOG_TAIL_LINES = 60
_instances_key = pytest.StashKey[list[Tgtd]]()
_kept_key = pytest.StashKey[list[Path]]()


def ci_forbids_skips() -> bool:
    """True under ``CI=true`` unless ``ISCSIKIT_ALLOW_SKIPS=1``."""
    return (
        os.environ.get("CI", "").lower() == "true"
        and os.environ.get("ISCSIKIT_ALLOW_SKIPS", "") != "1"
    )


def keep_tgtd() -> bool:
    """True when ``ISCSIKIT_KEEP_TGTD=1``."""
    return os.environ.get("ISCSIKIT_KEEP_TGTD", "") == "1"


def require_tgt() -> None:
    """``pytest.skip`` with a reason unless tgtd and tgtadm are installed."""
    missing = tgt_missing()
    if missing:
        pytest.skip(f"tgt not installed: {', '.join(missing)} not on PATH (Debian package tgt)")


class TgtdFactory:
    """Starts private Tgtd instances under one base directory; stop_all() ends them."""

    def __init__(self, base: Path, *, keep: bool = False) -> None:
        self.base = base
        self.keep = keep
        self.instances: list[Tgtd] = []

    def __call__(
        self, *, host: str = "127.0.0.1", port: int | None = None, iscsi_params: str = ""
    ) -> Tgtd:
        require_tgt()
        workdir = self.base / f"tgtd{len(self.instances)}"
        tgtd = Tgtd(workdir, host=host, port=port, iscsi_params=iscsi_params, keep=self.keep)
        self.instances.append(tgtd)
        return tgtd

    def stop_all(self) -> None:
        for tgtd in self.instances:
            tgtd.stop()


class ScriptedTargetFactory:
    """Starts ScriptedTargets; stop_all() ends them."""

    def __init__(self) -> None:
        self.instances: list[ScriptedTarget] = []

    def __call__(self, behaviour: Behaviour, host: str = "127.0.0.1") -> ScriptedTarget:
        target = ScriptedTarget(behaviour, host).start()
        self.instances.append(target)
        return target

    def stop_all(self) -> None:
        for target in self.instances:
            target.stop()


# -- hooks ---------------------------------------------------------------------------


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "integration: needs real peers (tgtd, libiscsi, open-iscsi) on loopback"
    )
    config.stash[_kept_key] = []


def _skip_reason(longrepr: object) -> str:
    # A skip's longrepr is (path, lineno, "Skipped: reason").
    if isinstance(longrepr, tuple) and len(longrepr) == 3:
        path, lineno, reason = longrepr
        return f"{reason} ({path}:{lineno})"
    return str(longrepr)


def _ci_failure(reason: str) -> str:
    return (
        f"skipped under CI=true, which is a failure here: CI installs every prerequisite "
        f"(.ci/system-deps), so nothing may skip. Skip reason: {reason}"
    )


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    if report.skipped and not hasattr(report, "wasxfail") and ci_forbids_skips():
        report.outcome = "failed"
        report.longrepr = _ci_failure(_skip_reason(report.longrepr))
    if report.failed:
        _attach_tgtd_logs(item, report)
    return report


@pytest.hookimpl(wrapper=True)
def pytest_make_collect_report(
    collector: pytest.Collector,
) -> Generator[None, pytest.CollectReport, pytest.CollectReport]:
    report = yield
    if report.skipped and ci_forbids_skips():
        report.outcome = "failed"
        report.longrepr = _ci_failure(_skip_reason(report.longrepr))
    return report


def _attach_tgtd_logs(item: pytest.Item, report: pytest.TestReport) -> None:
    own: list[Tgtd] = item.stash.get(_instances_key, [])
    instances = list(own)
    if "tgtd" in getattr(item, "fixturenames", ()):
        shared: list[Tgtd] = item.session.stash.get(_instances_key, [])
        instances += shared
    for tgtd in instances:
        tail = "\n".join(tgtd.log.splitlines()[-_LOG_TAIL_LINES:])
        report.sections.append((f"tgtd {tgtd.portal} log ({tgtd.log_path})", tail))


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    kept = terminalreporter.config.stash.get(_kept_key, [])
    if kept:
        terminalreporter.section("tgtd workdirs kept (ISCSIKIT_KEEP_TGTD=1)")
        for path in kept:
            terminalreporter.write_line(str(path))


# -- fixtures ------------------------------------------------------------------------


@pytest.fixture
def tgtd_factory(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[TgtdFactory]:
    """Factory for private tgtd instances in tmp_path, all stopped at teardown."""
    factory = TgtdFactory(tmp_path, keep=keep_tgtd())
    request.node.stash[_instances_key] = factory.instances
    try:
        yield factory
    finally:
        factory.stop_all()
        if factory.keep:
            request.config.stash[_kept_key].extend(t.workdir for t in factory.instances)


@pytest.fixture(scope="session")
def tgtd(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Tgtd]:
    """A shared tgtd on 127.0.0.1 exporting DISK_IQN (tid 1, one LUN). Do not reconfigure."""
    require_tgt()
    keep = keep_tgtd()
    with Tgtd(tmp_path_factory.mktemp("tgtd-shared"), keep=keep) as shared:
        request.session.stash[_instances_key] = [shared]
        shared.add_target(DISK_IQN, tid=1, luns=1)
        yield shared
    if keep:
        request.config.stash[_kept_key].append(shared.workdir)


@pytest.fixture
def scripted_target() -> Iterator[ScriptedTargetFactory]:
    """Factory for ScriptedTarget servers: ``scripted_target(behaviour, host=...)``."""
    factory = ScriptedTargetFactory()
    try:
        yield factory
    finally:
        factory.stop_all()
