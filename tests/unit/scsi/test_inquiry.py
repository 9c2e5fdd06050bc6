"""Standard INQUIRY and VPD pages: captured tgt answers checked against iscsi-inq's output."""

from __future__ import annotations

import pytest

from iscsikit.scsi.buffer import ScsiParseError
from iscsikit.scsi.inquiry import DeviceType, parse_inquiry
from iscsikit.scsi.vpd import (
    Association,
    CodeSet,
    DesignatorType,
    parse_vpd_block_device_characteristics,
    parse_vpd_block_limits,
    parse_vpd_device_identification,
    parse_vpd_logical_block_provisioning,
    parse_vpd_supported_pages,
    parse_vpd_unit_serial,
    vpd_page_length,
)

# Provenance of every *_TGT vector: Data-In of tgt 1.0.85 (Debian 1:1.0.85-1+deb12u1)
# answering libiscsi-bin 1.19.0 tools on loopback, captured by a logging TCP proxy; the
# target had a 64 MiB file LUN 1 and a 64 MiB LUN 2 with thin_provisioning=1.

# iscsi-inq .../1 (allocation length 0x42): Vendor:IET Product:VIRTUAL-DISK Revision:0001
# Version:5 HiSup:1 ReponseDataFormat:2 TPGS:0 Protect:0 CmdQue:1, version descriptors
# 04c0 (SBC-3) 0960 (iSCSI) 0300 (SPC-3).
INQUIRY_LUN1_TGT = bytes.fromhex(
    "000005123d00000249455420202020205649525455414c2d4449534b2020202030303031"
    "0000000000000000000000000000000000000000000004c0096003000000"
)
# iscsi-inq .../0 (allocation 0x40): STORAGE_ARRAY_CONTROLLER, Product:Controller.
INQUIRY_LUN0_TGT = bytes.fromhex(
    "0c0005123d0000024945542020202020436f6e74726f6c6c65722020202020203030303100"
    "00000000000000000000000000000000000000000004c0096001fb"
)
VPD00_TGT = bytes.fromhex("00000006008083b0b1b2")
VPD80_TGT = bytes.fromhex(
    "00800024202020202020202020202020202020202020202020202020202020202020626561663131"
)
VPD83_TGT = bytes.fromhex(
    "00830048020100244945542020202020303030313030303100000000000000000000000000000000"
    "000000000103000830000001000000010103001060000000000000000e00000000010001"
)
VPDB0_LUN1_TGT = bytes.fromhex("00b0003c0080" + "00" * 58)
VPDB0_LUN2_TGT = bytes.fromhex(
    "00b0003c00800000000000000000000000000000ffffffffffffffff" + "00" * 36
)
VPDB1_TGT = bytes.fromhex("00b10040" + "00" * 64)
VPDB2_LUN2_TGT = bytes.fromhex("00b2000400e40200")


def test_standard_inquiry_disk() -> None:
    inq = parse_inquiry(INQUIRY_LUN1_TGT)
    assert inq.peripheral_qualifier == 0 and inq.connected
    assert inq.device_type is DeviceType.DISK
    assert not inq.removable
    assert inq.version == 5 and inq.response_data_format == 2
    assert inq.hisup and not inq.normaca
    assert inq.additional_length == 0x3D
    assert inq.tpgs == 0 and not inq.protect and inq.cmdque and not inq.multip
    assert (inq.vendor, inq.product, inq.revision) == ("IET", "VIRTUAL-DISK", "0001")
    assert inq.version_descriptors == (0x04C0, 0x0960, 0x0300)
    assert not inq.truncated


def test_standard_inquiry_controller_truncated() -> None:
    inq = parse_inquiry(INQUIRY_LUN0_TGT)
    assert inq.device_type is DeviceType.RAID
    assert inq.product == "Controller"
    assert inq.version_descriptors == (0x04C0, 0x0960, 0x01FB)
    assert inq.truncated  # 64 of 66 bytes


def test_standard_inquiry_hand_built() -> None:
    # PQ=1 PDT=0x1E (W-LUN), RMB, VERSION 6 (SPC-4), NORMACA|RDF 2, length 31,
    # SCCS|ACC|TPGS=3|3PC|PROTECT = 0xFD, MULTIP 0x10, CMDQUE 0x02.
    data = bytes.fromhex("3e80062 21f fd1002".replace(" ", "")) + b"VEND    PROD            R1  "
    inq = parse_inquiry(data)
    assert inq.peripheral_qualifier == 1 and inq.device_type is DeviceType.WLUN
    assert inq.removable and inq.normaca and inq.sccs and inq.acc and inq.threepc
    assert inq.tpgs == 3 and inq.protect and inq.multip and inq.cmdque
    assert (inq.vendor, inq.product, inq.revision) == ("VEND", "PROD", "R1")
    assert parse_inquiry(bytes.fromhex("150000021f")).device_type == 0x15  # reserved
    assert parse_inquiry(bytes.fromhex("1f0000021f")).device_type is DeviceType.UNKNOWN
    with pytest.raises(ScsiParseError):
        parse_inquiry(b"\0\0\0\0")


def test_vpd_supported_and_serial() -> None:
    # iscsi-inq -e 1 -c 0: pages 0x00 0x80 0x83 0xb0 0xb1 0xb2.
    assert parse_vpd_supported_pages(VPD00_TGT) == [0x00, 0x80, 0x83, 0xB0, 0xB1, 0xB2]
    # iscsi-inq -e 1 -c 128: "Unit Serial Number:[      ...      beaf11]".
    assert parse_vpd_unit_serial(VPD80_TGT) == "beaf11"
    assert vpd_page_length(VPD80_TGT) == 0x28
    with pytest.raises(ScsiParseError, match="expected VPD page 0x80"):
        parse_vpd_unit_serial(VPD00_TGT)
    with pytest.raises(ScsiParseError):
        parse_vpd_supported_pages(b"\0\0\0")
    # Short page: the announced length is longer than the buffer.
    assert parse_vpd_supported_pages(bytes.fromhex("000000060080")) == [0x00, 0x80]


def test_vpd_device_identification_tgt() -> None:
    # iscsi-inq -e 1 -c 131: #0 ASCII T10_VENDORT_ID "IET     00010001",
    # #1 BINARY NAA (8 bytes), #2 BINARY NAA (16 bytes), all LOGICAL_UNIT, PIV 0.
    # (iscsi-inq prints binary designators as C strings; sg_inq prints NAA as 0x + hex.)
    ids = parse_vpd_device_identification(VPD83_TGT)
    assert [d.designator_type for d in ids] == [
        DesignatorType.T10_VENDOR_ID,
        DesignatorType.NAA,
        DesignatorType.NAA,
    ]
    assert [d.code_set for d in ids] == [CodeSet.ASCII, CodeSet.BINARY, CodeSet.BINARY]
    assert all(d.association == Association.LOGICAL_UNIT and not d.piv for d in ids)
    assert ids[0].value == "IET     00010001"
    assert ids[1].value == "0x3000000100000001"
    assert ids[2].value == "0x60000000000000000e00000000010001"


def test_vpd_device_identification_other_types() -> None:
    name = b"iqn.2003-01.org.linux-iscsi:x,t,0x1\0\0\0\0"
    page = (
        # EUI-64: binary, LU.
        bytes.fromhex("01020008 0011223344556677")
        # Relative target port 1: PIV, iSCSI (5), target port association.
        + bytes.fromhex("5194 0004 00000001")
        # Target port group 0x0102.
        + bytes.fromhex("0115 0004 00000102")
        # SCSI name string, UTF-8, target port, iSCSI.
        + bytes([0x53, 0xA8, 0, len(name)])
        + name
        # UUID (type 1).
        + bytes.fromhex("010a0012 1000 00112233445566778899aabbccddeeff")
    )
    data = bytes([0, 0x83]) + len(page).to_bytes(2, "big") + page
    ids = parse_vpd_device_identification(data)
    assert [d.value for d in ids] == [
        "0x0011223344556677",
        "0x1",
        "0x102",
        "iqn.2003-01.org.linux-iscsi:x,t,0x1",
        "00112233-4455-6677-8899-aabbccddeeff",
    ]
    assert ids[1].piv and ids[1].protocol_identifier == 5
    assert ids[1].association == Association.TARGET_PORT
    assert ids[3].association == Association.TARGET_DEVICE
    # A descriptor cut off by the buffer keeps what arrived.
    cut = parse_vpd_device_identification(data[:10])
    assert cut[0].designator == bytes.fromhex("0011")


def test_vpd_block_limits() -> None:
    # iscsi-inq -e 1 -c 176 (LUN 1): wsnz:0, maximum compare and write length:128,
    # everything else 0.
    lun1 = parse_vpd_block_limits(VPDB0_LUN1_TGT)
    assert not lun1.wsnz and lun1.max_compare_and_write_length == 128
    assert lun1.max_transfer_length == lun1.optimal_transfer_length == 0
    assert lun1.max_unmap_lba_count == 0 and not lun1.unmap_granularity_alignment_valid
    # LUN 2 (thin): maximum unmap lba count / block descriptor count: 4294967295.
    lun2 = parse_vpd_block_limits(VPDB0_LUN2_TGT)
    assert lun2.max_unmap_lba_count == lun2.max_unmap_block_descriptor_count == 0xFFFF_FFFF
    assert lun2.max_write_same_length == 0
    # Hand-built SBC-4 page: every field distinct.
    page = bytes.fromhex(
        "00b0003c 01 05 0008 00000800 00000100 00000010 00001000 00000040"
        "00000008 80000003 0000000000010000 00000020 00000004 00000002"
    ).ljust(64, b"\0")
    bl = parse_vpd_block_limits(page)
    assert bl.wsnz and bl.max_compare_and_write_length == 5
    assert bl.optimal_transfer_length_granularity == 8
    assert (bl.max_transfer_length, bl.optimal_transfer_length) == (0x800, 0x100)
    assert bl.max_prefetch_length == 0x10
    assert (bl.max_unmap_lba_count, bl.max_unmap_block_descriptor_count) == (0x1000, 0x40)
    assert bl.optimal_unmap_granularity == 8
    assert bl.unmap_granularity_alignment_valid and bl.unmap_granularity_alignment == 3
    assert bl.max_write_same_length == 0x10000
    assert (bl.max_atomic_transfer_length, bl.atomic_alignment) == (0x20, 4)
    assert bl.atomic_transfer_length_granularity == 2
    # SBC-2 era page (length 0x0C): later fields read 0.
    short = parse_vpd_block_limits(bytes.fromhex("00b0000c 0000 0001 00000080 00000008"))
    assert short.max_transfer_length == 0x80 and short.max_unmap_lba_count == 0


def test_vpd_block_device_characteristics() -> None:
    # iscsi-inq -e 1 -c 177: "Medium Rotation Rate:0RPM".
    bdc = parse_vpd_block_device_characteristics(VPDB1_TGT)
    assert bdc.medium_rotation_rate == 0 and not bdc.non_rotating
    ssd = parse_vpd_block_device_characteristics(bytes.fromhex("00b1003c 0001 00 53 13"))
    assert ssd.non_rotating and ssd.wabereq == 1 and ssd.wacereq == 1
    assert ssd.nominal_form_factor == 3 and ssd.zoned == 1 and ssd.fuab and ssd.vbuls


def test_vpd_logical_block_provisioning() -> None:
    # iscsi-inq -e 1 -c 178 (LUN 2): Threshold Exponent:0 lbpu:1 lbpws:1 lbpws10:1
    # lbprz:1 anc_sup:0 dp:0 provisioning type:2.
    lbp = parse_vpd_logical_block_provisioning(VPDB2_LUN2_TGT)
    assert lbp.threshold_exponent == 0
    assert lbp.lbpu and lbp.lbpws and lbp.lbpws10 and lbp.lbprz == 1
    assert not lbp.anc_sup and not lbp.dp and lbp.provisioning_type == 2
    # SBC-4 3-bit LBPRZ = 0b010, ANC_SUP, DP with a provisioning group descriptor.
    full = parse_vpd_logical_block_provisioning(
        bytes.fromhex("00b2000c 09 0b 29 05 01030004aabbccdd")
    )
    assert full.threshold_exponent == 9 and full.lbprz == 2 and full.anc_sup and full.dp
    assert full.minimum_percentage == 5 and full.provisioning_type == 1
    assert full.threshold_percentage == 5
    assert full.provisioning_group_descriptor == bytes.fromhex("01030004aabbccdd")
