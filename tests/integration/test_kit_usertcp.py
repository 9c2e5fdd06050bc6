"""The driver kit's conformance suite against the in-tree userspace driver, on tgtd."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from xml.etree import ElementTree

import pytest

from iscsikit.plugin import Capability
from iscsikit.testing.kit import TransportConformance

pytestmark = pytest.mark.integration


class TestUserTcpConformance(TransportConformance):
    TRANSPORT = "usertcp"
    CAPABILITIES = frozenset(
        {
            Capability.SENDTARGETS,
            Capability.LOGIN,
            Capability.DATA,
            Capability.HEADER_DIGEST,
            Capability.DATA_DIGEST,
            Capability.IPV6,
        }
    )


# The kit must be able to fail: a usertcp that reports every login failure as a plain
# login failure (5), and comes from no entry point, fails exactly the tests that check
# those things and passes the rest.
_SLOPPY = """
import pytest
from iscsikit.errors import IscsiError, LoginError
from iscsikit.testing.kit import TransportConformance
from iscsikit_drivers.usertcp import UserTcpTransport


class Sloppy(UserTcpTransport):
    def login(self, spec):
        try:
            return super().login(spec)
        except IscsiError as exc:
            raise LoginError(str(exc)) from exc


class TestSloppy(TransportConformance):
    TRANSPORT = "usertcp"
    CAPABILITIES = UserTcpTransport.capabilities

    @pytest.fixture
    def transport(self):
        return Sloppy()
"""


def test_the_kit_fails_a_sloppy_driver(tmp_path: Path) -> None:
    (tmp_path / "test_sloppy.py").write_text(_SLOPPY)
    report = tmp_path / "report.xml"
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-o", "addopts=",
         f"--junitxml={report}", "--rootdir", str(tmp_path), str(tmp_path / "test_sloppy.py")],
        cwd=tmp_path, capture_output=True, text=True, timeout=180, check=False,
    )  # fmt: skip
    assert run.returncode == 1, run.stdout + run.stderr
    failed: set[str] = set()
    passed: set[str] = set()
    for case in ElementTree.parse(report).iter("testcase"):
        name = case.get("name", "")
        (failed if case.find("failure") is not None or case.find("error") is not None
         else passed).add(name)  # fmt: skip
    assert failed == {
        "test_registered_through_the_entry_point",
        "test_unknown_target_is_fatal_login_19",
        "test_bad_chap_is_auth_failure_24",
        "test_refused_connection_is_4",
    }, run.stdout
    assert "test_login_and_logout" in passed
    kit_tests = {name for name in dir(TransportConformance) if name.startswith("test_")}
    assert passed == kit_tests - failed  # every other kit test ran and passed
