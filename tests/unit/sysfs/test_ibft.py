"""iBFT reading: open-iscsi's fwparam_sysfs_get_targets rules, on fake firmware trees."""

from __future__ import annotations

from pathlib import Path

from iscsikit.sysfs import SysfsContext
from iscsikit.sysfs.fake import FakeIbftTarget, FakeSysfs

NIC = {"index": 0, "mac": "52:54:00:12:34:56", "ip-addr": "192.168.0.20", "origin": 3}


def test_targets_with_nic_and_initiator(tmp_path: Path) -> None:
    f = FakeSysfs(tmp_path)
    f.add_ibft(
        initiator_name="iqn.x:host",
        nics=[{**NIC, "prefix-len": 24}],
        targets=[FakeIbftTarget(0, "iqn.t:a", "192.168.0.5", chap_name="u", chap_secret="s")],
        netdevs={0: "eth0"},
    )
    ibft = SysfsContext(tmp_path).ibft()
    assert ibft.present
    (t,) = ibft.targets()
    assert (t.initiator_name, t.target_name, t.target_address, t.target_port) == (
        "iqn.x:host", "iqn.t:a", "192.168.0.5", 3260,
    )  # fmt: skip
    assert (t.netdev, t.mac, t.prefix_len, t.uses_dhcp, t.transport) == (
        "eth0", "52:54:00:12:34:56", 24, True, "tcp",
    )  # fmt: skip
    assert (t.chap_name, t.chap_password, t.boot_nic, t.boot_target) == (
        "u", "s", "ethernet0", "target0",
    )  # fmt: skip


def test_invalid_blocks_are_skipped(tmp_path: Path) -> None:
    f = FakeSysfs(tmp_path)
    f.add_ibft(
        initiator_name="iqn.x:host",
        nics=[{"index": 0, "mac": "52:54:00:aa:bb:cc", "ip-addr": "10.0.0.2"}],
        targets=[
            FakeIbftTarget(0, "iqn.t:off", "10.0.0.3", flags=0),
            FakeIbftTarget(1, "iqn.t:nonic", "10.0.0.4", nic_assoc=7),
            FakeIbftTarget(2, "iqn.t:ok", "10.0.0.5"),
        ],
    )
    (t,) = SysfsContext(tmp_path).ibft().targets()
    # No device link: the target stays, with no netdev; no prefix-len / origin: -1.
    assert (t.target_name, t.netdev, t.prefix_len, t.origin, t.uses_dhcp) == (
        "iqn.t:ok", "", -1, 1, False,
    )  # fmt: skip


def test_netdev_by_mac_when_the_device_has_no_net_link(tmp_path: Path) -> None:
    f = FakeSysfs(tmp_path)
    f.add_ibft(
        initiator_name="iqn.x:h", nics=[NIC], targets=[FakeIbftTarget(0, "iqn.t:a", "1.2.3.4")]
    )
    pci = f.sys / "devices/pci0000:00/0000:00:09.0"
    pci.mkdir(parents=True)
    (f.sys / "firmware/ibft/ethernet0/device").symlink_to(pci)
    assert SysfsContext(tmp_path).ibft().targets() == []  # no netdev anywhere: skipped
    net = f.sys / "class/net/eth7"
    net.mkdir(parents=True)
    (net / "address").write_text("52:54:00:12:34:56\n")
    (t,) = SysfsContext(tmp_path).ibft().targets()
    assert t.netdev == "eth7"


def test_no_table(tmp_path: Path) -> None:
    FakeSysfs(tmp_path)
    ibft = SysfsContext(tmp_path).ibft()
    assert ibft.readable and not ibft.present and ibft.targets() == []
