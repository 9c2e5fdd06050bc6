"""The migration's results, read back through the records API and from the files.

Rules of linux-iscsi being tested are cited where they are used (see
test_migrate_conf.py for the sources).  Everything runs under ``tmp_path`` as the
filesystem root (``--root``), so the paths are iscsikit's defaults under it.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from iscsikit.config.iscsid_conf import IscsidConf
from iscsikit.config.paths import read_iscsikit_conf, resolve_paths
from iscsikit.config.registry import RecordType
from iscsikit.errors import InvalidParameterError
from iscsikit.migrate import migrate
from iscsikit.migrate.apply import BEGIN, END
from iscsikit.records import NodeRecord, Records
from iscsikit.records.bindings import Bindings
from iscsikit.tools.migrate import main

CONF = """\
# global CHAP: the default of the discovery sections below
Username=joe
Password="se cret"
IncomingUsername=tgt
IncomingPassword=tgtsecret
LoginTimeout=1m
HeaderDigest=always
MaxRecvDataSegmentLength=65536
DiscoveryAddress=192.0.2.10:3261
    Continuous=yes
    AuthTimeout=50
    PingTimeout=7
TargetName=iqn.2026-12.test:disk1
    DataDigest=prefer-on
    ResetTimeout=45
    Enabled=no
Subnet=192.0.2.0/24
    AbortTimeout=20
# After the sections: only targets without a section see it (captured globals).
ImmediateData=no
MaxBurstLength=131072
ConnFailTimeout=0
SLPUnicast=192.0.2.99
Bogus=1
"""


def _write(root: Path, rel: str, text: str) -> None:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


@pytest.fixture
def root(tmp_path: Path) -> Path:
    _write(tmp_path, "etc/iscsi.conf", CONF)
    return tmp_path


def test_discovery_record_and_template(root: Path) -> None:
    result = migrate(root)
    assert result.exit_code == 1  # unmapped / unknown lines are reported
    records = Records(resolve_paths(root=root))
    (disc,) = records.discoveries()
    assert (disc.type, disc.address, disc.port) == ("sendtargets", "192.0.2.10", 3261)
    assert disc.get("discovery.sendtargets.auth.authmethod") == "CHAP"
    assert disc.get("discovery.sendtargets.auth.username") == "joe"
    assert disc.get("discovery.sendtargets.auth.password") == "se cret"
    assert disc.get("discovery.sendtargets.auth.username_in") == "tgt"
    assert disc.get("discovery.sendtargets.auth.password_in") == "tgtsecret"
    assert disc.get("discovery.sendtargets.timeo.login_timeout") == "60"
    assert disc.get("discovery.sendtargets.timeo.auth_timeout") == "50"
    assert disc.get("discovery.sendtargets.use_discoveryd") == "Yes"
    assert disc.get("discovery.sendtargets.discoveryd_poll_inval") == "30"
    # The template, read as open-iscsi reads iscsid.conf.
    template = IscsidConf.load(root / "etc/iscsi/iscsid.conf").template(RecordType.NODE)
    assert template["node.startup"] == "automatic"
    assert template["node.conn[0].timeo.login_timeout"] == "60"
    assert template["node.conn[0].iscsi.HeaderDigest"] == "CRC32C"
    assert template["node.conn[0].iscsi.MaxRecvDataSegmentLength"] == "65536"
    assert template["node.session.iscsi.ImmediateData"] == "No"
    assert template["node.session.iscsi.MaxBurstLength"] == "131072"
    assert template["node.session.auth.authmethod"] == "CHAP"
    assert template["node.session.auth.password_in"] == "tgtsecret"
    assert template["node.session.timeo.replacement_timeout"] == "120"  # 0: reported
    text = "\n".join(result.reports)
    assert "/etc/iscsi.conf:12: PingTimeout=7" in text  # no discovery keepalive
    assert "/etc/iscsi.conf:22: ConnFailTimeout=0" in text
    assert "/etc/iscsi.conf:23: SLPUnicast=192.0.2.99" in text
    assert "/etc/iscsi.conf:24: unrecognized line" in text
    assert "pending: /etc/iscsi.conf:13: TargetName=iqn.2026-12.test:disk1" in text


def test_node_records_get_linux_iscsi_resolution(root: Path) -> None:
    migrate(root)
    records = Records(resolve_paths(root=root))
    (disc,) = records.discoveries()
    nodes = [
        NodeRecord.new("iqn.2026-12.test:disk1", "192.0.2.10", 3261, 1),
        NodeRecord.new("iqn.2026-12.test:disk2", "192.0.2.10", 3261, 1),
        NodeRecord.new("iqn.2026-12.test:disk3", "198.51.100.5", 3260, 1),
        NodeRecord.new("iqn.2026-12.test:disk4", "192.0.2.44", 3260, 1),
    ]
    records.add_nodes(nodes[:2], discovery=disc)
    records.add_nodes(nodes[2:])  # static: outside every section / in the Subnet
    result = migrate(root)
    assert not any("pending" in r for r in result.reports)
    one = records.node("iqn.2026-12.test:disk1")
    assert one.get("node.startup") == "manual"  # Enabled=no
    assert one.get("node.conn[0].iscsi.DataDigest") == "CRC32C,None"  # prefer-on
    assert one.get("node.conn[0].iscsi.HeaderDigest") == "CRC32C"  # captured global
    assert one.get("node.session.err_timeo.lu_reset_timeout") == "45"
    assert one.get("node.session.err_timeo.tgt_reset_timeout") == "45"
    assert one.get("node.session.err_timeo.abort_timeout") == "20"  # the Subnet
    # Set globally after the TargetName line: the section kept linux-iscsi's defaults.
    assert one.get("node.session.iscsi.ImmediateData") == "Yes"
    assert one.get("node.session.iscsi.MaxBurstLength") == "16776192"
    # CHAP of the discovery that found it, both ways.
    assert one.get("node.session.auth.authmethod") == "CHAP"
    assert one.get("node.session.auth.username_in") == "tgt"
    two = records.node("iqn.2026-12.test:disk2")
    assert two.get("node.startup") == "automatic"
    assert two.get("node.session.iscsi.ImmediateData") == "No"
    assert two.get("node.session.err_timeo.abort_timeout") == "20"
    assert two.get("node.conn[0].iscsi.DataDigest") == "None"  # global default kept
    three = records.node("iqn.2026-12.test:disk3")
    assert three.get("node.startup") == "manual"  # untouched
    assert three.get("node.session.auth.authmethod") == "None"
    four = records.node("iqn.2026-12.test:disk4")  # static, but in the Subnet section
    assert four.get("node.session.err_timeo.abort_timeout") == "20"
    assert four.get("node.startup") == "manual"  # no template: no discovery found it
    assert four.get("node.conn[0].iscsi.HeaderDigest") == "None"
    # A second run changes nothing more.
    again = migrate(root)
    assert not any(a.startswith("update node") for a in again.actions)


def test_dry_run_writes_nothing(root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _write(root, "var/iscsi/bindings", "0 0 iqn.2026-12.test:disk1\n")
    _write(root, "etc/fstab.iscsi", "/dev/sdb1 /data ext3 defaults 0 0\n")
    before = sorted(p.relative_to(root) for p in root.rglob("*"))
    code = main(["--root", str(root), "--dry-run"])
    out, err = capsys.readouterr()
    assert code == 1
    assert sorted(p.relative_to(root) for p in root.rglob("*")) == before
    assert "would add discovery record sendtargets 192.0.2.10:3261 (from line 9)" in out
    assert "discovery.sendtargets.auth.password = ********" in out
    assert "se cret" not in out
    assert "would bind iqn.2026-12.test:disk1 to bus 0 target 0" in out
    assert "defaults,_netdev" in out and "(dry run: nothing written)" in out
    assert "iscsikit-migrate: not migrated: /etc/iscsi.conf:23: SLPUnicast" in err


def test_bindings_fstab_and_failover(tmp_path: Path) -> None:
    _write(
        tmp_path,
        "etc/iscsi.conf",
        "PortalFailover=no\nPreferredSubnet=10.1.0.0&ffff0000\nPreferredPortal=10.1.2.3\n",
    )
    _write(tmp_path, "etc/iscsi.bindings", "# old\n0 3 iqn.a:x\n1 0 iqn.a:y\n0 1 iqn.a:z\n")
    _write(tmp_path, "etc/fstab", "/dev/sda1 / ext4 defaults 0 1\n/dev/sdc1 /old xfs rw 0 0")
    _write(
        tmp_path,
        "etc/fstab.iscsi",
        "/dev/iscsi/bus0/target3/lun0/part1 /data ext3 noatime 0 2\n"
        "/dev/sdc1 /old xfs rw\n"
        "broken line\n",
    )
    # iscsikit already bound iqn.a:z elsewhere: reported, not overwritten.
    Bindings.under(tmp_path).bind("iqn.a:z")
    result = migrate(tmp_path)
    assert [(b.bus, b.target, b.name) for b in Bindings.under(tmp_path).read()] == [
        (0, 0, "iqn.a:z"),
        (0, 3, "iqn.a:x"),
        (1, 0, "iqn.a:y"),
    ]
    fstab = (tmp_path / "etc/fstab").read_text().splitlines()
    assert fstab[-1] == "/dev/iscsi/bus0/target3/lun0/part1\t/data\text3\tnoatime,_netdev\t0\t2"
    assert len(fstab) == 3
    conf = read_iscsikit_conf(tmp_path)
    assert conf["failover"] == "no"
    assert conf["failover.preferred_subnet"] == "10.1.0.0/16"
    assert conf["failover.preferred_portal"] == "10.1.2.3"
    reports = "\n".join(result.reports)
    assert "/etc/iscsi.bindings:4: iqn.a:z: already bound to 0 0" in reports
    assert "/etc/fstab.iscsi:2: /old is already in" in reports
    assert "/etc/fstab.iscsi:3: expected" in reports
    # The block is replaced, not repeated, on a second run.
    migrate(tmp_path)
    text = (tmp_path / "etc/iscsikit/iscsikit.conf").read_text()
    assert text.count(BEGIN) == 1 and text.count(END) == 1


def test_bad_input_exits_7(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(InvalidParameterError):
        migrate(tmp_path)  # nothing to migrate
    assert main(["--root", str(tmp_path), "--conf", "/etc/nope.conf"]) == 7
    assert main(["--root", str(tmp_path), "--bogus"]) == 7
    _write(tmp_path, "etc/iscsi.conf", "DiscoveryAddress=10.0.0.1\n")
    assert main(["--root", str(tmp_path)]) == 0
    assert "nope.conf: no such file" in capsys.readouterr().err


def test_initiator_name_carried_over_once(tmp_path: Path) -> None:
    # linux-iscsi read /etc/initiatorname.iscsi; open-iscsi reads /etc/iscsi/...
    _write(
        tmp_path,
        "etc/initiatorname.iscsi",
        "## generated\nInitiatorName=iqn.1987-05.com.cisco:01.abc\n",
    )
    _write(tmp_path, "etc/iscsi.conf", "DiscoveryAddress=10.0.0.1\n")
    result = migrate(tmp_path)
    assert result.exit_code == 0
    assert (tmp_path / "etc/iscsi/initiatorname.iscsi").read_text() == (
        "InitiatorName=iqn.1987-05.com.cisco:01.abc\n"
    )
    _write(tmp_path, "etc/iscsi/initiatorname.iscsi", "InitiatorName=iqn.2026-12.new:host\n")
    result = migrate(tmp_path)
    assert result.exit_code == 1
    assert "already names iqn.2026-12.new:host" in result.reports[0]
    assert (tmp_path / "etc/iscsi/initiatorname.iscsi").read_text().endswith("new:host\n")
