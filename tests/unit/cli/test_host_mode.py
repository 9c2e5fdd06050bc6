"""``-m host`` on a fake kernel: iscsiadm 2.1.8's output (goldens) and sub-mode errors."""

from __future__ import annotations

from pathlib import Path

import pytest
from test_session_mode import goldens, make_root, parse_golden, run

from iscsikit.sysfs.fake import FakeSysfs


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_root(tmp_path_factory.mktemp("kernel"))


@pytest.mark.parametrize("path", goldens("host"), ids=lambda p: p.stem)
def test_golden(root: Path, path: Path) -> None:
    args, code, out = parse_golden(path)
    assert run(root, args)[:2] == (code, out)


def test_no_hosts(tmp_path: Path) -> None:
    FakeSysfs(tmp_path)
    assert run(tmp_path, ["-m", "host"]) == (21, "", "iscsikit-adm: No iSCSI hosts.\n")
    assert run(tmp_path, ["-m", "host", "-P", "7"])[0] == 7  # the level is checked first


def test_host_filter_and_mac(root: Path) -> None:
    # As in 2.1.8, -H does not narrow the listing.
    assert run(root, ["-m", "host", "-H", "2"])[1] == run(root, ["-m", "host"])[1]
    code, _, err = run(root, ["-m", "host", "-H", "00:11:22:33:44:55"])
    assert (code, err) == (7, "iscsikit-adm: Could not match MAC to host.\n")
    assert run(root, ["-m", "host", "-H", "00:0E:1E:AA:BB:CC"])[0] == 0  # host4's MAC


def test_submodes(root: Path) -> None:
    assert run(root, ["-m", "host", "-C", "chap"])[0] == 7
    assert run(root, ["-m", "host", "-C", "chap", "-o", "show"])[0] == 12  # host0
    assert run(root, ["-m", "host", "-C", "chap", "-H", "2", "-o", "new"])[:2] == (0, "")
    assert run(root, ["-m", "host", "-C", "chap", "-H", "2", "-o", "show"])[0] == 9
    assert run(root, ["-m", "host", "-C", "flashnode", "-H", "2", "-x", "1"])[0] == 2
    assert run(root, ["-m", "host", "-C", "flashnode", "-H", "2", "-o", "login"])[0] == 9
    assert run(root, ["-m", "host", "-C", "ping", "-H", "2"])[:2] == (0, "")
    assert run(root, ["-m", "host", "-C", "stats"])[0] == 12


def test_flashnodes_listed(tmp_path: Path) -> None:
    f = FakeSysfs(tmp_path)
    f.add_transport("qla4xxx")
    f.add_host(5, proc_name="qla4xxx")
    base = f.sys / "bus/iscsi_flashnode/devices"
    sess, conn = base / "flashnode_sess-5:0", base / "flashnode_conn-5:0:0"
    for d, attrs in ((sess, {"targetname": "iqn.t:flash", "tpgt": "1"}),
                     (conn, {"ipaddress": "10.1.1.1", "port": "3260"})):  # fmt: skip
        d.mkdir(parents=True)
        for k, v in attrs.items():
            (d / k).write_text(v + "\n")
    code, out, _ = run(tmp_path, ["-m", "host", "-C", "flashnode", "-H", "5"])
    assert (code, out) == (0, "qla4xxx: [0] 10.1.1.1:3260,1 iqn.t:flash\n")
    code, out, _ = run(tmp_path, ["-m", "host", "-C", "flashnode", "-H", "5", "-x", "0"])
    # iscsiadm's record (idbm_print_flashnode_info, 2.1.8 idbm.c:728-877): every key of
    # idbm_recinfo_flashnode in order; a missing numeric attribute reads as -1 cut to the
    # field (sysfs_get_uint8/16/uint store -1 before the read), a missing string <empty>.
    assert code == 0
    lines = out.splitlines()
    assert (lines[0], lines[-1]) == ("# BEGIN RECORD 2.1.8", "# END RECORD")
    assert len(lines) == 2 + 33 + 26  # session keys, conn[0] keys
    assert lines[1:4] == [
        "flashnode.session.auto_snd_tgt_disable = 255",
        "flashnode.session.discovery_session = 255",
        "flashnode.session.portal_type = <empty>",
    ]
    assert "flashnode.session.targetname = iqn.t:flash" in lines
    assert "flashnode.session.tpgt = 1" in lines
    assert "flashnode.session.first_burst_len = 4294967295" in lines
    assert "flashnode.session.tsid = 65535" in lines
    assert lines[34] == "flashnode.conn[0].is_fw_assigned_ipv6 = 255"
    assert "flashnode.conn[0].port = 3260" in lines
    assert "flashnode.conn[0].ipaddress = 10.1.1.1" in lines
    assert lines[-2] == "flashnode.conn[0].exp_statsn = 4294967295"


def test_offload_iface_block(tmp_path: Path) -> None:
    f = FakeSysfs(tmp_path)
    f.add_transport("qla4xxx")
    dev = f.add_host(6, proc_name="qla4xxx", attrs={"hwaddress": "00:c0:dd:00:00:01"})
    iface = dev / "iscsi_iface/ipv4-iface-6-0"
    iface.mkdir(parents=True)
    for k, v in {"ipaddress": "10.2.2.2", "subnet": "255.255.255.0", "bootproto": "static",
                 "port": "3260", "mtu": "1500"}.items():  # fmt: skip
        (iface / k).write_text(v + "\n")
    code, out, _ = run(tmp_path, ["-m", "host", "-P", "1"])
    assert code == 0
    assert out == (
        "Host Number: 6\n\tState: running\n\tTransport: qla4xxx\n\tInitiatorname: <empty>\n"
        "\tIPaddress: <empty>\n\tHWaddress: 00:c0:dd:00:00:01\n\tNetdev: <empty>\n"
        "\t**********\n\tInterface:\n\t**********\n\tKernel Name: ipv4-iface-6-0\n"
        "\tIPaddress: 10.2.2.2\n\tGateway: <empty>\n\tSubnet: 255.255.255.0\n"
        "\tBootProto: static\n\tPort State: <empty>\n\tPort Speed: <empty>\n\tPort: 3260\n"
        "\tMTU: 1500\n\tVLAN ID: <empty>\n\tVLAN priority: <empty>\n"
    )
