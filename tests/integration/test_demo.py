"""The README's demo runs end to end against a real tgtd (so it cannot rot)."""

from __future__ import annotations

import pytest

from iscsikit import demo
from iscsikit.testing.plugin import require_tgt

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("host", ["127.0.0.1", "::1"])
def test_demo(host: str, capsys: pytest.CaptureFixture[str]) -> None:
    require_tgt()
    assert demo.main(["--host", host]) == 0
    out = capsys.readouterr().out
    assert f"{demo.TARGET}" in out
    assert "HeaderDigest             = CRC32C" in out
    assert "AuthMethod               = CHAP" in out
    assert "read back 1048576 bytes: identical" in out
    assert "tgtd backing file holds the same bytes" in out
    assert f"logged out of {demo.TARGET}" in out
    assert "iscsiadm exit code 24: LOGIN_AUTH_FAILED" in out
    # The command-line half, through iscsikitd.
    assert f"Login to [iface: default, target: {demo.TARGET}, portal: " in out
    assert "Attached NBD exports:" in out and "nbd+unix:///?socket=" in out
    assert "read it back: identical" in out
    assert "tgtd's backing file holds the same bytes" in out
    assert "txdata_octets: 1048576" in out
    assert f"Logout of [sid: 1, target: {demo.TARGET}, portal: " in out
    assert "No active sessions.   (exit 21)" in out
