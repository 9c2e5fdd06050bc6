"""REPORT TARGET PORT GROUPS as LIO really answers it (captured in the VM tier).

Linux 6.1's target_emulate_report_target_port_groups leaves the extended header's
bytes 4-7 out of RETURN DATA LENGTH and transfers only what it counts, so the last
group's port identifiers are cut off; the group itself (id and state) must still be
read, as Linux's scsi_dh_alua and sg_rtpg read it.
"""

from __future__ import annotations

from iscsikit.scsi.alua import AccessState, parse_report_target_port_groups

#: tests/vm/test_alua_lio.py, iscsikit.testing.lio.AluaLio: group 10 (TPG 1's LUN 0,
#: relative port 1) active/optimized, group 20 (TPG 2's LUN 0) standby, changed by an
#: implicit transition (status 02); 28 bytes arrived for an allocation length of 1024.
LIO_AO_STANDBY = bytes.fromhex("000000181000000000cf000a000000010000000102cf001400020001")
#: The same LU with group 10 unavailable and group 20 active/non-optimized.
LIO_UNAVAILABLE_AN = bytes.fromhex("000000181000000003cf000a000200010000000101cf001400020001")


def test_lios_last_group_is_read_though_its_port_list_is_cut() -> None:
    groups = parse_report_target_port_groups(LIO_AO_STANDBY)
    assert groups.extended and groups.implicit_transition_time == 0
    first, second = groups.groups
    assert (first.group_id, first.state, first.status_code, first.ports) == (
        10, AccessState.ACTIVE_OPTIMIZED, 0, (1,)
    )  # fmt: skip
    assert (second.group_id, second.state, second.status_code, second.ports) == (
        20, AccessState.STANDBY, 2, ()
    )  # fmt: skip
    # LIO supports T, O, U, S, AN and AO (0xCF), not LBA dependent.
    assert AccessState.LBA_DEPENDENT not in second.supported
    assert len(second.supported) == 6
    assert groups.group(20) is second and groups.group_of_port(1) is first


def test_lios_other_states() -> None:
    groups = parse_report_target_port_groups(LIO_UNAVAILABLE_AN)
    assert [(g.group_id, g.state) for g in groups.groups] == [
        (10, AccessState.UNAVAILABLE),
        (20, AccessState.ACTIVE_NON_OPTIMIZED),
    ]


def test_a_port_list_cut_inside_keeps_its_whole_ports() -> None:
    # One group of two ports, cut by the allocation length inside the second one.
    head = (20).to_bytes(4, "big") + bytes([0x10, 0, 0, 0])
    data = head + bytes([0x02, 0xCF, 0, 0x14, 0, 2, 0, 2]) + b"\0\0\0\x07" + b"\0\0"
    (group,) = parse_report_target_port_groups(data).groups
    assert (group.group_id, group.state, group.ports) == (20, AccessState.STANDBY, (7,))
