"""What a failed SCSI command means to the caller: the exception and the retry policy.

This module owns :class:`ScsiCommandError` (a command completed with a status other
than GOOD / CONDITION MET) and the two questions every caller asks of a failure,
:func:`is_unit_attention` and :func:`retryable`.  It only reads already-decoded
:class:`~iscsikit.scsi.sense.Sense`; decoding is :mod:`iscsikit.scsi.sense`'s job.
"""

from __future__ import annotations

from iscsikit.errors import IscsiErr, IscsiError
from iscsikit.scsi.cdb import command_name
from iscsikit.scsi.sense import Sense, SenseKey
from iscsikit.scsi.status import ScsiStatus, status_name

__all__ = ["ScsiCommandError", "is_unit_attention", "retryable"]


class ScsiCommandError(IscsiError):
    """A SCSI command failed at the SCSI level (the iSCSI exchange itself worked).

    ``command`` is the T10 command name (``READ(16)``), ``status`` the SAM status and
    ``sense`` the decoded sense data when the target sent some.  The message reads
    ``READ(16) failed: CHECK CONDITION, MEDIUM ERROR: unrecovered read error``.
    """

    code = IscsiErr.ERR

    def __init__(
        self,
        command: str,
        status: ScsiStatus | int,
        sense: Sense | None = None,
        *,
        message: str | None = None,
    ) -> None:
        if status in ScsiStatus._value2member_map_:
            status = ScsiStatus(status)
        self.command = command
        self.status: ScsiStatus | int = status
        self.sense = sense
        if message is None:
            message = f"{command} failed: {status_name(status)}"
            if sense is not None:
                message += f", {sense.description}"
        super().__init__(message)

    @classmethod
    def from_cdb(
        cls, cdb: bytes, status: ScsiStatus | int, sense: Sense | None = None
    ) -> ScsiCommandError:
        """The error for ``cdb``, named with :func:`~iscsikit.scsi.cdb.command_name`."""
        return cls(command_name(cdb), status, sense)

    @property
    def retryable(self) -> bool:
        return retryable(self.status, self.sense)


def is_unit_attention(sense: Sense | None) -> bool:
    """True for UNIT ATTENTION sense (SAM-5 §5.14): an event report, not a failure."""
    return sense is not None and sense.key == SenseKey.UNIT_ATTENTION


def retryable(status: ScsiStatus | int, sense: Sense | None) -> bool:
    """Whether re-issuing the same command unchanged may succeed.

    Retryable: BUSY and TASK SET FULL (SAM-5 §5.3.1, the task set is momentarily full);
    CHECK CONDITION with UNIT ATTENTION (the condition is cleared by being reported);
    NOT READY 04/01 "becoming ready" and 04/0A "asymmetric access state transition"
    (a transient state, retried by Linux's scsi_check_sense as well).  Everything else,
    including GOOD, is not.
    """
    if status in (ScsiStatus.BUSY, ScsiStatus.TASK_SET_FULL):
        return True
    if status != ScsiStatus.CHECK_CONDITION or sense is None:
        return False
    if sense.key == SenseKey.UNIT_ATTENTION:
        return True
    return sense.key == SenseKey.NOT_READY and (sense.asc, sense.ascq) in (
        (0x04, 0x01),
        (0x04, 0x0A),
    )
