"""REPORT TARGET PORT GROUPS: the CDB, the parameter data, ALUA sense."""

from __future__ import annotations

import pytest

from iscsikit.scsi.alua import (
    AccessState,
    is_alua_state_change,
    is_alua_transition,
    parse_report_target_port_groups,
    report_target_port_groups,
)
from iscsikit.scsi.buffer import ScsiParseError
from iscsikit.scsi.sense import Sense, SenseKey


def test_cdb() -> None:
    assert report_target_port_groups(allocation_length=0x1234).hex() == "a32a00000000000012340000"
    assert report_target_port_groups(extended=False)[:2] == b"\xa3\x0a"
    with pytest.raises(ValueError):
        report_target_port_groups(allocation_length=-1)


def _group(b0: int, b1: int, tpg: int, ports: list[int], status: int = 0) -> bytes:
    head = bytes([b0, b1]) + tpg.to_bytes(2, "big") + bytes([0, status, 0, len(ports)])
    return head + b"".join(b"\0\0" + p.to_bytes(2, "big") for p in ports)


#: Two groups the way LIO answers (extended format, transition time 10 s): group 1
#: active/optimized, preferred, ports 1 and 2; group 2 standby, port 3.
LIO_LIKE = _group(0x80, 0x0F, 1, [1, 2]) + _group(0x02, 0x0F, 2, [3], status=2)


def test_extended_format() -> None:
    data = (8 - 4 + len(LIO_LIKE)).to_bytes(4, "big") + bytes([0x10, 10, 0, 0]) + LIO_LIKE
    groups = parse_report_target_port_groups(data)
    assert groups.extended and groups.implicit_transition_time == 10
    first, second = groups.groups
    assert (first.group_id, first.state, first.preferred, first.ports) == (
        1, AccessState.ACTIVE_OPTIMIZED, True, (1, 2)
    )  # fmt: skip
    assert first.supported == {
        AccessState.UNAVAILABLE,
        AccessState.STANDBY,
        AccessState.ACTIVE_NON_OPTIMIZED,
        AccessState.ACTIVE_OPTIMIZED,
    }
    assert (second.group_id, second.state, second.status_code, second.ports) == (
        2, AccessState.STANDBY, 2, (3,)
    )  # fmt: skip
    assert groups.group_of_port(3) is second and groups.group_of_port(9) is None
    assert groups.group(1) is first


def test_length_only_format_and_truncation() -> None:
    data = len(LIO_LIKE).to_bytes(4, "big") + LIO_LIKE
    groups = parse_report_target_port_groups(data)
    assert not groups.extended and [g.group_id for g in groups.groups] == [1, 2]
    # Cut by a small allocation length: the whole descriptors only.
    assert [g.group_id for g in parse_report_target_port_groups(data[:20]).groups] == [1]
    with pytest.raises(ScsiParseError):
        parse_report_target_port_groups(data[:9])
    with pytest.raises(ScsiParseError):
        parse_report_target_port_groups(b"\0\0")
    assert parse_report_target_port_groups(bytes(4)).groups == ()


def test_unknown_state_kept_as_number() -> None:
    data = (12).to_bytes(4, "big") + _group(0x07, 0, 5, [1])
    (group,) = parse_report_target_port_groups(data).groups
    assert group.state == 7 and not isinstance(group.state, AccessState)


def test_states() -> None:
    usable = {s for s in AccessState if s.usable}
    assert usable == {
        AccessState.ACTIVE_OPTIMIZED,
        AccessState.ACTIVE_NON_OPTIMIZED,
        AccessState.LBA_DEPENDENT,
    }
    assert AccessState.ACTIVE_OPTIMIZED.rank < AccessState.ACTIVE_NON_OPTIMIZED.rank
    assert AccessState.ACTIVE_NON_OPTIMIZED.rank < AccessState.STANDBY.rank
    assert AccessState.TRANSITIONING.text == "transitioning"


def _sense(key: SenseKey, asc: int, ascq: int) -> Sense:
    return Sense(response_code=0x70, key=key, asc=asc, ascq=ascq)


def test_alua_sense() -> None:
    for ascq in (0x0A, 0x0B, 0x0C):
        assert is_alua_transition(_sense(SenseKey.NOT_READY, 0x04, ascq))
    assert not is_alua_transition(_sense(SenseKey.NOT_READY, 0x04, 0x01))
    assert not is_alua_transition(_sense(SenseKey.MEDIUM_ERROR, 0x04, 0x0A))
    assert not is_alua_transition(None)
    assert is_alua_state_change(_sense(SenseKey.UNIT_ATTENTION, 0x2A, 0x06))
    assert not is_alua_state_change(_sense(SenseKey.UNIT_ATTENTION, 0x29, 0x00))
