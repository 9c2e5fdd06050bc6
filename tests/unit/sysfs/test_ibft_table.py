"""The raw ACPI iBFT: tables built byte by byte, read as iscsi_ibft would export them."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from iscsikit.errors import IscsiErr
from iscsikit.sysfs import SysfsContext
from iscsikit.sysfs.fake import FakeIbftTarget, FakeSysfs
from iscsikit.sysfs.ibft_table import IbftError, parse_ibft
from iscsikit.testing.ibft import IbftNic, IbftTarget, build_ibft

MAC = "52:54:00:12:34:56"
NIC = IbftNic(0, MAC, ip="192.168.0.20", prefix=24, origin=1, gateway="192.168.0.1")
TARGET = IbftTarget(
    0, "iqn.2024-01.test:boot", "192.168.0.5", port=3261, lun=b"\x00\x01" + bytes(6),
    chap_type=1, chap_name="user", chap_secret="secret12345678",
)  # fmt: skip


def _table(**kw: object) -> bytes:
    return build_ibft("iqn.2024-01.test:host", [NIC], [TARGET], **kw)  # type: ignore[arg-type]


def test_blocks_as_the_module_exports_them() -> None:
    table = parse_ibft(_table(isns_server="10.1.1.1"))
    assert [b.name for b in table.blocks] == ["initiator", "ethernet0", "target0"]
    assert (table.oem_id, table.oem_table_id) == ("ISCKIT", "IBFTTEST")
    initiator, nic, target = table.blocks
    assert initiator.attrs == {
        "index": "0", "flags": "3", "isns-server": "10.1.1.1",
        "initiator-name": "iqn.2024-01.test:host",
    }  # fmt: skip
    assert nic.attrs == {
        "index": "0", "flags": "3", "ip-addr": "192.168.0.20", "prefix-len": "24",
        "subnet-mask": "255.255.255.0", "origin": "1", "gateway": "192.168.0.1",
        "vlan": "0", "mac": MAC,
    }  # fmt: skip
    assert nic.pci_bdf == 0x18
    assert target.attrs == {
        "index": "0", "flags": "3", "ip-addr": "192.168.0.5", "port": "3261",
        "lun": "01000000",  # "%x" per byte, as iscsi_ibft prints it
        "chap-type": "1", "nic-assoc": "0", "target-name": "iqn.2024-01.test:boot",
        "chap-name": "user", "chap-secret": "secret12345678",
    }  # fmt: skip


def test_ipv6_dhcp_and_hostname() -> None:
    nic = IbftNic(1, MAC, ip="fd00::20", prefix=64, origin=3, dhcp="fd00::1", vlan=5,
                  hostname="boothost")  # fmt: skip
    tgt = IbftTarget(0, "iqn.t:v6", "fd00::5", nic=1, rev_chap_name="tgt", rev_chap_secret="s" * 12)
    _, nic_block, target = parse_ibft(build_ibft("iqn.h", [nic], [tgt])).blocks
    assert nic_block.name == "ethernet1"
    # %pI6: every group, zero-padded, uncompressed
    assert nic_block.attrs["ip-addr"] == "fd00:0000:0000:0000:0000:0000:0000:0020"
    assert nic_block.attrs["dhcp"] == "fd00:0000:0000:0000:0000:0000:0000:0001"
    assert (nic_block.attrs["origin"], nic_block.attrs["vlan"]) == ("3", "5")
    assert nic_block.attrs["hostname"] == "boothost"
    assert nic_block.attrs["subnet-mask"] == "255.255.255.255"  # the kernel's IPv4 mask
    assert target.attrs["ip-addr"] == "fd00:0000:0000:0000:0000:0000:0000:0005"
    assert "chap-name" not in target.attrs and "chap-secret" not in target.attrs
    assert (target.attrs["rev-chap-name"], target.attrs["rev-chap-name-secret"]) == (
        "tgt", "s" * 12,
    )  # fmt: skip


@pytest.mark.parametrize("corrupt", ["checksum", "signature", "revision", "control"])
def test_tables_the_kernel_refuses(corrupt: str) -> None:
    with pytest.raises(IbftError) as exc:
        parse_ibft(_table(corrupt=corrupt))
    assert exc.value.code == IscsiErr.NO_OBJS_FOUND


def test_a_structure_of_the_wrong_length_is_skipped() -> None:
    table = parse_ibft(_table(corrupt="target-length"))
    assert [b.name for b in table.blocks] == ["initiator", "ethernet0"]


def test_strings_outside_the_table_are_refused() -> None:
    with pytest.raises(IbftError, match="past the table's end"):
        parse_ibft(_table(corrupt="string-offset"))


def test_truncated_table() -> None:
    data = _table()
    for cut in (0, 4, 40, 60, len(data) - 1):
        with pytest.raises(IbftError):
            parse_ibft(data[:cut])


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_any_damage_is_an_ibft_error_or_a_table(data: st.DataObject) -> None:
    """Flipped bytes (with the checksum fixed, so the structure parser is reached) never
    raise anything but IbftError."""
    raw = bytearray(_table())
    for _ in range(data.draw(st.integers(1, 8))):
        at = data.draw(st.integers(10, len(raw) - 1))
        raw[at] = data.draw(st.integers(0, 255))
    raw[9] = 0
    raw[9] = (-sum(raw)) & 0xFF
    try:
        table = parse_ibft(bytes(raw))
    except IbftError:
        return
    for block in table.blocks:
        assert all(isinstance(v, str) for v in block.attrs.values())


# -- Ibft: the raw table when iscsi_ibft is not loaded --------------------------------------


def _raw_tree(root: Path, table: bytes, *, netdev: str | None = "eth0") -> FakeSysfs:
    f = FakeSysfs(root)
    acpi = f.sys / "firmware/acpi/tables"
    acpi.mkdir(parents=True)
    (acpi / "iBFT").write_bytes(table)
    if netdev is not None:
        pci = f.sys / "devices/pci0000:00/0000:00:03.0"
        (pci / "net" / netdev).mkdir(parents=True)
        (pci / "net" / netdev / "address").write_text(MAC + "\n")
        (f.sys / "bus/pci/devices").mkdir(parents=True)
        (f.sys / "bus/pci/devices/0000:00:03.0").symlink_to(pci)
    return f


def test_raw_table_gives_what_the_module_tree_gives(tmp_path: Path) -> None:
    _raw_tree(tmp_path / "raw", _table())
    raw = SysfsContext(tmp_path / "raw").ibft()
    assert raw.present
    module = FakeSysfs(tmp_path / "module")
    module.add_ibft(
        initiator_name="iqn.2024-01.test:host",
        nics=[
            {
                "index": 0,
                "mac": MAC,
                "ip-addr": "192.168.0.20",
                "prefix-len": 24,
                "subnet-mask": "255.255.255.0",
                "origin": 1,
                "gateway": "192.168.0.1",
                "vlan": 0,
            }
        ],
        targets=[
            FakeIbftTarget(
                0,
                "iqn.2024-01.test:boot",
                "192.168.0.5",
                port=3261,
                lun="01000000",
                chap_type=1,
                chap_name="user",
                chap_secret="secret12345678",
            )
        ],
        netdevs={0: "eth0"},
    )
    (from_raw,) = raw.targets()
    (from_module,) = SysfsContext(tmp_path / "module").ibft().targets()
    assert from_raw == from_module
    assert (from_raw.netdev, from_raw.target_port, from_raw.chap_name) == ("eth0", 3261, "user")


def test_the_module_tree_wins_over_the_raw_table(tmp_path: Path) -> None:
    f = _raw_tree(tmp_path, _table())
    f.add_ibft(initiator_name="iqn.x:module", nics=[{"index": 0, "mac": MAC}],
               targets=[FakeIbftTarget(0, "iqn.t:module", "10.0.0.9")])  # fmt: skip
    (t,) = SysfsContext(tmp_path).ibft().targets()
    assert t.target_name == "iqn.t:module"


def test_a_refused_raw_table_is_no_table(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    _raw_tree(tmp_path, _table(corrupt="checksum"))
    with caplog.at_level(logging.WARNING):
        ibft = SysfsContext(tmp_path).ibft()
        assert not ibft.present and ibft.targets() == []
    assert "incorrect checksum" in caplog.text


def test_raw_nic_without_its_pci_function(tmp_path: Path) -> None:
    """No PCI function at the table's BDF: the kernel makes no ``device`` link, and the
    target stays, without a netdev (as from the module's tree)."""
    _raw_tree(tmp_path, _table(), netdev=None)
    (t,) = SysfsContext(tmp_path).ibft().targets()
    assert (t.netdev, t.mac) == ("", MAC)
