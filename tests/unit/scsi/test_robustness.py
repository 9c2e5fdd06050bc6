"""Every parser, fed arbitrary bytes, either decodes or raises ScsiParseError (never
IndexError / struct.error / anything else)."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from hypothesis import given
from hypothesis import strategies as st

from iscsikit.scsi import capacity, inquiry, luns, mode, vpd
from iscsikit.scsi.buffer import ScsiParseError

PARSERS: list[Callable[[bytes], object]] = [
    inquiry.parse_inquiry,
    vpd.parse_vpd_supported_pages,
    vpd.parse_vpd_unit_serial,
    vpd.parse_vpd_device_identification,
    vpd.parse_vpd_block_limits,
    vpd.parse_vpd_block_device_characteristics,
    vpd.parse_vpd_logical_block_provisioning,
    capacity.parse_read_capacity10,
    capacity.parse_read_capacity16,
    luns.parse_report_luns,
    mode.parse_mode_sense6,
    mode.parse_mode_sense10,
]
VPD_CODES = {
    vpd.parse_vpd_supported_pages: 0x00,
    vpd.parse_vpd_unit_serial: 0x80,
    vpd.parse_vpd_device_identification: 0x83,
    vpd.parse_vpd_block_limits: 0xB0,
    vpd.parse_vpd_block_device_characteristics: 0xB1,
    vpd.parse_vpd_logical_block_provisioning: 0xB2,
}


def _exercise(result: object) -> None:
    # Touch derived values too: they must not blow up either.
    if isinstance(result, list):
        for item in result:
            for name in ("value", "number", "hierarchical"):
                if hasattr(item, name):
                    getattr(item, name)
    for name in ("truncated", "needs_16", "size_bytes", "protection_type"):
        if hasattr(result, name):
            getattr(result, name)
    if isinstance(result, mode.ModeParameters):
        for page in result.pages:
            if page.page_code == mode.ModePageCode.CACHING and not page.spf:
                mode.parse_caching_page(page)
            if page.page_code == mode.ModePageCode.CONTROL and not page.spf:
                mode.parse_control_page(page)


@pytest.mark.parametrize("parser", PARSERS, ids=lambda p: p.__name__)
@given(data=st.binary(max_size=200))
def test_arbitrary_bytes(parser: Callable[[bytes], object], data: bytes) -> None:
    try:
        result = parser(data)
    except ScsiParseError:
        return
    _exercise(result)


@pytest.mark.parametrize("parser", list(VPD_CODES), ids=lambda p: p.__name__)
@given(body=st.binary(max_size=200), length=st.integers(0, 0xFFFF))
def test_vpd_with_right_page_code(
    parser: Callable[[bytes], object], body: bytes, length: int
) -> None:
    # Valid header, arbitrary length and content: parse must never raise.
    data = bytes([0, VPD_CODES[parser]]) + length.to_bytes(2, "big") + body
    _exercise(parser(data))
