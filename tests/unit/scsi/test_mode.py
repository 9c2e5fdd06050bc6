"""MODE SENSE parameter data, Caching and Control pages."""

from __future__ import annotations

import pytest

from iscsikit.scsi.buffer import ScsiParseError
from iscsikit.scsi.mode import (
    ModePage,
    ModePageCode,
    parse_caching_page,
    parse_control_page,
    parse_mode_sense6,
    parse_mode_sense10,
)

# MODE SENSE(6) answers of tgt 1.0.85 to libiscsi 1.19.0 iscsi-test-cu (ModeSense6
# suite) on loopback, 64 MiB file LUN 1.
# CDB 1a 00 3f 00 ff 00 (all pages, DBD=0): header 69 00 10 08 (length 105, medium 0,
# DPOFUA, 8-byte block descriptor), descriptor 00000000 00 000200, then pages 0x00
# (vendor-specific, length 0), 0x02,
# 0x08 (WCE=1), 0x0A, 0x0A/0x01 (control extension, SPF), 0x1C.
ALL_PAGES_TGT = bytes.fromhex(
    "6900100800000000000002000000020e8080000a0000000000000000000008121400ffff0000ffffffff"
    "80140000000000000a0a021000000000000002004a01001c040000000000000000000000000000000000"
    "000000000000000000001c0a08000000000000000000"
)
# CDB 1a 00 0a 00 ff 00: the Control page only.
CONTROL_TGT = bytes.fromhex("1700100800000000000002000a0a02100000000000000200")
# CDB 1a 00 3f 00 04 00: allocation length 4, header only.
HEADER_ONLY_TGT = bytes.fromhex("69001008")


def test_all_pages_captured() -> None:
    assert len(ALL_PAGES_TGT) == 0x69 + 1
    mode = parse_mode_sense6(ALL_PAGES_TGT)
    assert (mode.mode_data_length, mode.medium_type, mode.device_specific) == (0x69, 0, 0x10)
    assert mode.dpofua and not mode.write_protected and not mode.long_lba
    assert len(mode.block_descriptors) == 1
    assert mode.block_descriptors[0].block_size == 512
    assert [(p.page_code, p.subpage, p.spf) for p in mode.pages] == [
        (0x00, 0, False),  # tgt's empty vendor-specific page 0
        (0x02, 0, False),
        (0x08, 0, False),
        (0x0A, 0, False),
        (0x0A, 1, True),
        (0x1C, 0, False),
    ]
    assert not mode.truncated
    caching = mode.page(ModePageCode.CACHING)
    assert caching is not None and len(caching.data) == 0x12 + 2
    page = parse_caching_page(caching)
    assert page.wce and not page.rcd and page.disc
    assert page.maximum_prefetch == 0xFFFF and page.maximum_prefetch_ceiling == 0xFFFF
    assert page.fsw and page.number_of_cache_segments == 20
    extension = mode.page(0x0A, 1)
    assert extension is not None and len(extension.parameters) == 0x1C
    assert mode.page(0x19) is None


def test_control_page_captured() -> None:
    mode = parse_mode_sense6(CONTROL_TGT)
    control_page = mode.page(ModePageCode.CONTROL)
    assert control_page is not None
    control = parse_control_page(control_page)
    # byte 2 = 02 (GLTSD), byte 3 = 10 (queue algorithm modifier 1), bytes 10-11 = 0x0200.
    assert control.gltsd and not control.d_sense and control.tst == 0
    assert control.queue_algorithm_modifier == 1 and control.qerr == 0
    assert control.busy_timeout_period == 0
    assert control.extended_self_test_completion_time == 0x200


def test_header_only_is_truncated() -> None:
    mode = parse_mode_sense6(HEADER_ONLY_TGT)
    assert mode.truncated and mode.required_allocation_length == 0x6A
    assert mode.pages == () and mode.block_descriptors == ()


def test_mode_sense10_long_lba() -> None:
    # SPC-4 Table 454 header: MODE DATA LENGTH 0x22, medium 0, WP|DPOFUA = 0x90,
    # LONGLBA, rsvd, BLOCK DESCRIPTOR LENGTH 16; SBC-4 long descriptor: 2^33 blocks,
    # 4096 bytes; then a Control page with D_SENSE | TST=1 (0x24), SWP, TAS.
    data = bytes.fromhex(
        "0022 00 90 01 00 0010"  # header
        + "0000000200000000 00000000 00001000"  # long LBA block descriptor
        + "0a0a 24 00 08 40 0000 0000 0000"  # Control page
    )
    mode = parse_mode_sense10(data)
    assert mode.write_protected and mode.dpofua and mode.long_lba
    assert mode.block_descriptors[0].blocks == 1 << 33
    assert mode.block_descriptors[0].block_size == 4096
    assert not mode.truncated and mode.required_allocation_length == len(data)
    control_page = mode.page(0x0A)
    assert control_page is not None
    control = parse_control_page(control_page)
    assert control.d_sense and control.tst == 1 and control.swp and control.tas


def test_mode_sense10_truncated_page() -> None:
    data = bytes.fromhex("0014 00 00 00 00 0000 0812 04")
    mode = parse_mode_sense10(data)
    assert mode.truncated
    page = parse_caching_page(mode.pages[0])
    assert page.wce and page.cache_segment_size == 0


def test_errors() -> None:
    with pytest.raises(ScsiParseError):
        parse_mode_sense6(b"\x03\x00\x00")
    with pytest.raises(ScsiParseError):
        parse_mode_sense10(bytes(7))
    with pytest.raises(ScsiParseError, match="MODE DATA LENGTH"):
        parse_mode_sense6(bytes(4))
    with pytest.raises(ScsiParseError, match="expected mode page 0x08"):
        parse_caching_page(ModePage(0x0A, 0, False, False, b"\x0a\x00"))
