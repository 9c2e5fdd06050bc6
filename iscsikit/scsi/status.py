"""SCSI status codes (SAM-5 §5.3.1), as carried in the iSCSI SCSI Response (RFC 7143 §11.4.2).

This module owns the status numbers and their printable names; deciding what a status
means for a caller (error, retry) is :mod:`iscsikit.scsi.errors`' job.
"""

from __future__ import annotations

from enum import IntEnum

__all__ = ["ScsiStatus", "status_name"]


class ScsiStatus(IntEnum):
    """SAM-5 Table 33 status codes (obsolete INTERMEDIATE codes omitted)."""

    GOOD = 0x00
    CHECK_CONDITION = 0x02
    CONDITION_MET = 0x04
    BUSY = 0x08
    RESERVATION_CONFLICT = 0x18
    TASK_SET_FULL = 0x28
    ACA_ACTIVE = 0x30
    TASK_ABORTED = 0x40

    @property
    def text(self) -> str:
        """The SAM spelling: ``CHECK CONDITION``."""
        return self.name.replace("_", " ")


def status_name(status: int) -> str:
    """``CHECK CONDITION`` for a known status, ``status 0x1e`` for anything else."""
    try:
        return ScsiStatus(status).text
    except ValueError:
        return f"status 0x{status:02x}"
