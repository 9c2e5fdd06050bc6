"""VPD page 0x83: the LU identity multipath groups by, and the port designators."""

from __future__ import annotations

from iscsikit.scsi.vpd import (
    Association,
    DesignatorType,
    lu_identity,
    parse_vpd_device_identification,
    relative_target_port,
    target_port_group,
)

#: Captured from tgtd 1.0.x (Debian), target tid 1 LUN 1: T10 vendor ID, NAA 3 (tgt's
#: locally assigned 8-byte NAA) and NAA 6 (IEEE Registered Extended, 16 bytes).
TGT_PAGE = bytes.fromhex(
    "00830048020100244945542020202020303030313030303100000000000000000000000000000000"
    "000000000103000830000001000000010103001060000000000000000e00000000010001"
)


def _descriptor(assoc: int, kind: int, body: bytes, code_set: int = 1) -> bytes:
    return bytes([code_set, (assoc << 4) | kind, 0, len(body)]) + body


def _page(*descriptors: bytes) -> bytes:
    body = b"".join(descriptors)
    return bytes([0, 0x83]) + len(body).to_bytes(2, "big") + body


def test_tgt_page_identity_is_the_registered_extended_naa() -> None:
    designators = parse_vpd_device_identification(TGT_PAGE)
    assert [d.designator_type for d in designators] == [1, 3, 3]
    identity = lu_identity(designators)
    assert identity is not None
    assert identity.designator_type == DesignatorType.NAA
    assert identity.value == "0x60000000000000000e00000000010001"
    assert relative_target_port(designators) is None
    assert target_port_group(designators) is None


def test_spc4_order_of_preference() -> None:
    t10 = _descriptor(0, 1, b"VENDOR  serial-1", code_set=2)
    naa3 = _descriptor(0, 3, bytes.fromhex("3000000100000001"))
    naa5 = _descriptor(0, 3, bytes.fromhex("5001405abcdef012"))
    eui8 = _descriptor(0, 2, bytes.fromhex("0011223344556677"))
    eui16 = _descriptor(0, 2, bytes(range(16)))
    naa6 = _descriptor(0, 3, bytes.fromhex("6001405abcdef0123456789abcdef012"))
    name = _descriptor(0, 8, b"iqn.2024-01.test:lu\0", code_set=3)
    order = [name, naa6, eui16, naa5, eui8, naa3, t10]
    for best in range(len(order)):
        # The best remaining one wins whatever the order on the page.
        page = _page(*reversed(order[best:]))
        identity = lu_identity(parse_vpd_device_identification(page))
        expected = parse_vpd_device_identification(_page(order[best]))[0]
        assert identity == expected, best


def test_port_designators_do_not_name_the_lu() -> None:
    # A target-port NAA (association 1) must not be taken for the LU's identity.
    port_naa = _descriptor(1, 3, bytes.fromhex("6001405aaaaaaaaaaaaaaaaaaaaaaaaa"))
    rtp = _descriptor(1, 4, bytes([0, 0, 0x00, 0x02]))
    tpg = _descriptor(1, 5, bytes([0, 0, 0x00, 0x11]))
    t10 = _descriptor(0, 1, b"LIO-ORG disk", code_set=2)
    designators = parse_vpd_device_identification(_page(port_naa, rtp, tpg, t10))
    identity = lu_identity(designators)
    assert identity is not None and identity.designator_type == DesignatorType.T10_VENDOR_ID
    assert identity.association == Association.LOGICAL_UNIT
    assert relative_target_port(designators) == 2
    assert target_port_group(designators) == 0x11


def test_no_lu_designator() -> None:
    rtp = _descriptor(1, 4, bytes([0, 0, 0, 1]))
    assert lu_identity(parse_vpd_device_identification(_page(rtp))) is None
    assert lu_identity(parse_vpd_device_identification(_page())) is None
