"""SCSI status codes (SAM-5 §5.3.1), as carried in the iSCSI SCSI Response (RFC 7143 §11.4.2).

The numbers are :class:`iscsikit.proto.constants.ScsiStatus` (the iSCSI codec carries
them); this module adds their printable names; deciding what a status
means for a caller (error, retry) is :mod:`iscsikit.scsi.errors`' job.
"""

from __future__ import annotations

from iscsikit.proto.constants import ScsiStatus

__all__ = ["ScsiStatus", "status_name"]


def status_name(status: int) -> str:
    """``CHECK CONDITION`` for a known status, ``status 0x1e`` for anything else."""
    try:
        return ScsiStatus(status).name.replace("_", " ")
    except ValueError:
        return f"status 0x{status:02x}"
