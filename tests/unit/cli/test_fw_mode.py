"""``-m fw`` on fake iBFT tables: iscsiadm 2.1.8's pseudo-records (goldens) and logins."""

from __future__ import annotations

from pathlib import Path

import pytest
from test_session_mode import goldens, make_root, parse_golden, run

from iscsikit.cli.modes.fw import boot_node
from iscsikit.errors import InvalidParameterError
from iscsikit.sysfs import SysfsContext
from iscsikit.sysfs.fake import FakeSysfs


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_root(tmp_path_factory.mktemp("kernel"))


@pytest.mark.parametrize("path", goldens("fw"), ids=lambda p: p.stem)
def test_golden(root: Path, path: Path) -> None:
    args, code, out = parse_golden(path)
    assert run(root, args)[:2] == (code, out)


def test_no_firmware_table(tmp_path: Path) -> None:
    FakeSysfs(tmp_path)
    msg = "iscsikit-adm: Could not get list of targets from firmware. (err 21)\n"
    assert run(tmp_path, ["-m", "fw"]) == (21, "", msg)
    assert run(tmp_path, ["-m", "fw", "-l"])[0] == 21


def test_unreadable_firmware_dir(tmp_path: Path) -> None:
    code, _, err = run(tmp_path, ["-m", "fw"])
    assert code == 22 and "(err 22)" in err


def test_boot_node_record(root: Path) -> None:
    """idbm_create_rec_from_boot_context + fill_in_default_fw_values (checked against the
    real iscsiadm on a real iBFT in the VM tier: tests/vm/test_ibft_boot.py)."""
    first = SysfsContext(root).ibft().targets()[0]
    record = boot_node(first, template={"node.startup": "automatic"})
    assert (record.target, record.address, record.port, record.tpgt) == (
        "iqn.2003-01.org.example:boot", "192.168.0.5", 3260, 1,
    )  # fmt: skip
    # iscsid.conf's values stay (startup, authmethod); the firmware's CHAP is added.
    assert record.get("node.startup") == "automatic" and record.discovery_type == "fw"
    assert record.get("node.session.auth.authmethod") == "None"
    assert record.get("node.session.auth.username") == "u"
    # Not a login: iscsid.conf's retries and NOP-Outs.
    assert record.get("node.conn[0].timeo.noop_out_interval") == "5"
    node = boot_node(
        first,
        [("node.session.timeo.replacement_timeout", "5"), ("node.session.scan", "manual")],
        login=True,
    )
    assert node.get("node.session.timeo.replacement_timeout") == "5"
    assert node.get("node.session.initial_login_retry_max") == "30"
    assert node.get("node.conn[0].timeo.noop_out_interval") == "0"
    assert node.get("node.conn[0].timeo.noop_out_timeout") == "0"
    assert node.get("node.session.scan") == "manual"  # the override wins
    with pytest.raises(InvalidParameterError, match="interface parameters"):
        boot_node(first, [("iface.ipaddress", "1.2.3.4")], login=True)
