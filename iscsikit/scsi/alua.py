"""ALUA: REPORT TARGET PORT GROUPS (SPC-4 §6.37) and the asymmetric access states.

This module owns the RTPG request (MAINTENANCE IN, service action 0x0A), the parser of
its parameter data (both formats: length only, and extended with the implicit
transition time) and what a multipath initiator asks of a state: may I/O go there
(:meth:`AccessState.usable`), and how much is the path preferred
(:attr:`AccessState.rank`).  Pure: bytes in, dataclasses out.  Which designators of
VPD page 0x83 name the LU, its port and its port group is :mod:`iscsikit.scsi.vpd`'s.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum
from typing import Final

from iscsikit.scsi.buffer import ScsiParseError, be, byte, require
from iscsikit.scsi.sense import Sense, SenseKey

__all__ = [
    "MAINTENANCE_IN",
    "RTPG_SERVICE_ACTION",
    "AccessState",
    "PortGroups",
    "TargetPortGroup",
    "is_alua_state_change",
    "is_alua_transition",
    "parse_report_target_port_groups",
    "report_target_port_groups",
]

MAINTENANCE_IN: Final = 0xA3
RTPG_SERVICE_ACTION: Final = 0x0A


class AccessState(IntEnum):
    """ASYMMETRIC ACCESS STATE (SPC-4 Table 168)."""

    ACTIVE_OPTIMIZED = 0x0
    ACTIVE_NON_OPTIMIZED = 0x1
    STANDBY = 0x2
    UNAVAILABLE = 0x3
    LBA_DEPENDENT = 0x4
    OFFLINE = 0xE
    TRANSITIONING = 0xF

    @property
    def usable(self) -> bool:
        """Whether a multipath initiator sends I/O through a port in this state: the
        active ones (LBA dependent counts as active, as Linux's scsi_dh_alua treats it);
        never standby, unavailable, offline or transitioning (SPC-4 §5.16.2.4)."""
        return self in _USABLE

    @property
    def rank(self) -> int:
        """Lower is better: optimized 0, non-optimized / LBA dependent 1, else 2."""
        if self is AccessState.ACTIVE_OPTIMIZED:
            return 0
        return 1 if self in _USABLE else 2

    @property
    def text(self) -> str:
        """The state as ``sg_rtpg`` / multipath print it."""
        return _TEXT[self]


_USABLE: Final = frozenset(
    {AccessState.ACTIVE_OPTIMIZED, AccessState.ACTIVE_NON_OPTIMIZED, AccessState.LBA_DEPENDENT}
)
_TEXT: Final = {
    AccessState.ACTIVE_OPTIMIZED: "active/optimized",
    AccessState.ACTIVE_NON_OPTIMIZED: "active/non-optimized",
    AccessState.STANDBY: "standby",
    AccessState.UNAVAILABLE: "unavailable",
    AccessState.LBA_DEPENDENT: "lba-dependent",
    AccessState.OFFLINE: "offline",
    AccessState.TRANSITIONING: "transitioning",
}


def report_target_port_groups(*, allocation_length: int = 1024, extended: bool = True) -> bytes:
    """MAINTENANCE IN / REPORT TARGET PORT GROUPS (SPC-4 §6.37, 12-byte CDB).

    ``extended`` asks for PARAMETER DATA FORMAT 001b (with the implicit transition
    time); a target that only knows the length-only format answers with it anyway.
    """
    if not 0 <= allocation_length <= 0xFFFF_FFFF:
        raise ValueError(f"allocation_length out of range: {allocation_length}")
    cdb = bytearray(12)
    cdb[0] = MAINTENANCE_IN
    cdb[1] = (0x20 if extended else 0) | RTPG_SERVICE_ACTION
    cdb[6:10] = allocation_length.to_bytes(4, "big")
    return bytes(cdb)


@dataclass(frozen=True, slots=True)
class TargetPortGroup:
    """One target port group descriptor (SPC-4 Table 167)."""

    group_id: int
    state: AccessState | int
    preferred: bool
    #: The states this group supports (T_SUP, O_SUP, LBD_SUP, U_SUP, S_SUP, AN_SUP, AO_SUP).
    supported: frozenset[AccessState]
    status_code: int
    #: RELATIVE TARGET PORT IDENTIFIERs of the group's ports.
    ports: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class PortGroups:
    """The parsed parameter data: every group, and the extended header's fields."""

    groups: tuple[TargetPortGroup, ...]
    extended: bool = False
    #: Seconds an implicit transition may take (0: not reported; extended format only).
    implicit_transition_time: int = 0

    def group_of_port(self, relative_port: int) -> TargetPortGroup | None:
        """The group that lists ``relative_port``, if any."""
        for group in self.groups:
            if relative_port in group.ports:
                return group
        return None

    def group(self, group_id: int) -> TargetPortGroup | None:
        for group in self.groups:
            if group.group_id == group_id:
                return group
        return None


#: Byte 1 of a descriptor: which bit says which state is supported.
_SUPPORT_BITS: Final = (
    (0x80, AccessState.TRANSITIONING),
    (0x40, AccessState.OFFLINE),
    (0x10, AccessState.LBA_DEPENDENT),
    (0x08, AccessState.UNAVAILABLE),
    (0x04, AccessState.STANDBY),
    (0x02, AccessState.ACTIVE_NON_OPTIMIZED),
    (0x01, AccessState.ACTIVE_OPTIMIZED),
)


def _state(value: int) -> AccessState | int:
    return AccessState(value) if value in AccessState._value2member_map_ else value


def parse_report_target_port_groups(data: bytes) -> PortGroups:
    """RTPG parameter data (SPC-4 §6.37.2): the groups in the order sent.

    RETURN DATA LENGTH bounds the list; a buffer cut short by the allocation length
    parses the descriptors whose 8-byte head is whole, the last with the port
    identifiers that are whole.  A FORMAT TYPE of 1 in byte 4 marks the extended header
    (8 bytes), otherwise the descriptors start at byte 4.

    LIO (target_emulate_report_target_port_groups, Linux 6.1) leaves the extended
    header's bytes 4-7 out of RETURN DATA LENGTH and sends no more than it counts, so
    its last group's last port identifier never arrives; Linux's scsi_dh_alua and
    sg_rtpg read every descriptor that starts inside the length, and so does this.
    """
    require(data, 4, "REPORT TARGET PORT GROUPS data")
    end = min(len(data), be(data, 0, 4) + 4)
    extended = end >= 8 and (byte(data, 4) >> 4) & 0x07 == 1
    offset = 8 if extended else 4
    groups: list[TargetPortGroup] = []
    while offset + 8 <= end:
        b0, b1 = data[offset], data[offset + 1]
        count = data[offset + 7]
        ports_end = offset + 8 + 4 * count
        whole = min(ports_end, offset + 8 + (len(data) - offset - 8) // 4 * 4)
        ports = tuple(be(data, p + 2, 2) for p in range(offset + 8, whole, 4))
        groups.append(
            TargetPortGroup(
                group_id=be(data, offset + 2, 2),
                state=_state(b0 & 0x0F),
                preferred=bool(b0 & 0x80),
                supported=frozenset(s for bit, s in _SUPPORT_BITS if b1 & bit),
                status_code=data[offset + 5],
                ports=ports,
            )
        )
        if whole < ports_end:
            break  # the list was cut inside this descriptor
        offset = ports_end
    if not groups and end > offset:
        raise ScsiParseError("REPORT TARGET PORT GROUPS data: a descriptor is cut short")
    return PortGroups(
        tuple(groups),
        extended=extended,
        implicit_transition_time=byte(data, 5) if extended else 0,
    )


# -- what sense data says about ALUA -----------------------------------------------------

#: NOT READY, 04/0A transitioning, 04/0B standby, 04/0C unavailable (SPC-4 §5.16.2.6).
_NOT_READY_ALUA: Final = frozenset({(0x04, 0x0A), (0x04, 0x0B), (0x04, 0x0C)})
#: UNIT ATTENTION 2A/06 asymmetric access state changed, 2A/07 implicit transition failed.
_UA_ALUA: Final = frozenset({(0x2A, 0x06), (0x2A, 0x07)})


def is_alua_transition(sense: Sense | None) -> bool:
    """NOT READY because of the port's access state (transitioning, standby,
    unavailable): the command may succeed through another port group."""
    return (
        sense is not None
        and sense.key == SenseKey.NOT_READY
        and (sense.asc, sense.ascq) in _NOT_READY_ALUA
    )


def is_alua_state_change(sense: Sense | None) -> bool:
    """UNIT ATTENTION saying the access states changed: read them again (RTPG)."""
    return (
        sense is not None
        and sense.key == SenseKey.UNIT_ATTENTION
        and (sense.asc, sense.ascq) in _UA_ALUA
    )
