"""The requests a Full Feature Phase connection carries, and what became of them.

A :class:`ScsiTask` is one SCSI command with its data buffers; a :class:`TmfTask` a
task management function; a :class:`PingTask` a NOP-Out that wants its NOP-In.  The
caller creates one, hands it to :meth:`FullFeatureConnection.submit
<iscsikit.proto.ffp.FullFeatureConnection.submit>` and learns the outcome from its
fields once ``done`` is true (a ``callback``, when set, is called at that moment, from
inside the connection's ``buffer_updated`` / ``handle_timer`` / ``connection_lost``).

These are plain slotted objects, not dataclasses: the data path creates one per I/O,
so construction is kept to attribute stores.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from iscsikit.errors import IscsiError, LocalProtocolError
from iscsikit.proto.constants import ScsiStatus, TaskAttribute, TmfFunction, TmfResponse
from iscsikit.proto.pdu_base import lun_to_field

#: Bytes-like objects accepted as write data.
WriteData = bytes | bytearray | memoryview


class Request:
    """What every request has: a tag, a completion flag, an error, a callback.

    The common base of the request classes below, for I/O layers that handle any of
    them alike (a completion callback, a wait until ``done``).
    """

    __slots__ = ("callback", "done", "error", "itt", "started")

    def __init__(self, callback: Callable[[Any], object] | None) -> None:
        self.callback = callback
        self.done = False
        #: Why the request failed, when it did (``status`` etc. are then meaningless).
        self.error: IscsiError | None = None
        self.itt = -1
        #: When the connection first saw the request in flight (its own clock), or None.
        self.started: float | None = None


class ScsiTask(Request):
    """One SCSI command (RFC 7143 §11.3), unidirectional or without data.

    ``read_buffer`` is filled in place by Data-In PDUs (a ``bytearray`` or a writable
    ``memoryview``, at least ``expected_length`` long); ``write_data`` is what Data-Out
    and immediate data carry.  ``expected_length`` defaults to the buffer's length.
    """

    __slots__ = (
        "_datasn",
        "_r2tsn",
        "attr",
        "cdb",
        "cmdsn",
        "expected_length",
        "lun",
        "lun_field",
        "read_view",
        "received",
        "residual",
        "response",
        "sense_data",
        "status",
        "write_view",
    )

    def __init__(
        self,
        cdb: bytes,
        *,
        lun: int = 0,
        read_buffer: bytearray | memoryview | None = None,
        write_data: WriteData | None = None,
        expected_length: int | None = None,
        attr: TaskAttribute = TaskAttribute.SIMPLE,
        callback: Callable[[ScsiTask], object] | None = None,
    ) -> None:
        super().__init__(callback)
        if read_buffer is not None and write_data is not None:
            raise LocalProtocolError("bidirectional commands are not supported")
        if not 1 <= len(cdb) <= 260:
            raise LocalProtocolError(f"a CDB is 1..260 bytes, not {len(cdb)}")
        self.cdb = cdb
        self.lun = lun
        self.lun_field = lun_to_field(lun)
        self.attr = int(attr)
        self.read_view: memoryview | None = None
        self.write_view: memoryview | None = None
        if read_buffer is not None:
            view = memoryview(read_buffer).cast("B")
            if view.readonly:
                raise LocalProtocolError("the read buffer must be writable")
            self.read_view = view
            length = len(view) if expected_length is None else expected_length
            if not 0 <= length <= len(view):
                raise LocalProtocolError("expected_length exceeds the read buffer")
        elif write_data is not None:
            self.write_view = memoryview(write_data).cast("B")
            length = len(self.write_view) if expected_length is None else expected_length
            if not 0 <= length <= len(self.write_view):
                raise LocalProtocolError("expected_length exceeds the write data")
        else:
            length = 0
        if length > 0xFFFFFFFF:
            raise LocalProtocolError("a command transfers at most 4 GiB - 1")
        self.expected_length = length
        self.cmdsn = -1
        #: SCSI status (``ScsiStatus``) once done without ``error``.
        self.status = -1
        #: iSCSI service response: 0 = command completed at target (§11.4.3).
        self.response = 0
        #: Residual count: negative for overflow, positive for underflow (§11.4.5).
        self.residual = 0
        #: The sense data the target returned with CHECK CONDITION (without SenseLength).
        self.sense_data = b""
        #: Data-In bytes received (reads).
        self.received = 0
        self._datasn = 0
        self._r2tsn = 0

    @property
    def is_read(self) -> bool:
        return self.read_view is not None

    @property
    def is_write(self) -> bool:
        return self.write_view is not None

    @property
    def good(self) -> bool:
        """Done, without error, with GOOD status."""
        return self.done and self.error is None and self.status == ScsiStatus.GOOD

    @property
    def transferred(self) -> int:
        """Bytes the target reports it moved: expected length minus the underflow."""
        return self.expected_length - max(self.residual, 0)

    def __repr__(self) -> str:
        state = "done" if self.done else "pending"
        return f"<ScsiTask 0x{self.cdb[0]:02x} lun {self.lun} itt {self.itt} {state}>"


class TmfTask(Request):
    """A task management function request (RFC 7143 §11.5)."""

    __slots__ = ("escalates", "function", "lun", "lun_field", "referenced", "response")

    def __init__(
        self,
        function: TmfFunction,
        *,
        lun: int = 0,
        referenced: ScsiTask | None = None,
        callback: Callable[[TmfTask], object] | None = None,
    ) -> None:
        super().__init__(callback)
        if function == TmfFunction.ABORT_TASK and referenced is None:
            raise LocalProtocolError("ABORT TASK needs the task to abort")
        self.function = TmfFunction(function)
        self.lun = referenced.lun if referenced is not None else lun
        self.lun_field = lun_to_field(self.lun)
        self.referenced = referenced
        #: The target's answer (``TmfResponse``) once done without ``error``.
        self.response = -1
        #: Sent by the connection's own error handling: escalate when it fails.
        self.escalates = False

    @property
    def succeeded(self) -> bool:
        """Done, and the response means the function was carried out (§11.6.1)."""
        return self.done and self.error is None and self.response_means_done()

    def response_means_done(self) -> bool:
        """FUNCTION COMPLETE, or for ABORT TASK also TASK DOES NOT EXIST: either way
        the target will not answer the affected commands any more."""
        if self.response == TmfResponse.FUNCTION_COMPLETE:
            return True
        return (
            self.function == TmfFunction.ABORT_TASK
            and self.response == TmfResponse.TASK_DOES_NOT_EXIST
        )


class PingTask(Request):
    """A NOP-Out ping that asks for a NOP-In echoing ``data`` (RFC 7143 §11.18)."""

    __slots__ = ("data",)

    def __init__(
        self, data: bytes = b"", callback: Callable[[PingTask], object] | None = None
    ) -> None:
        super().__init__(callback)
        self.data = data


class LogoutTask(Request):
    """A Logout Request closing the session (RFC 7143 §11.14)."""

    __slots__ = ("time2retain", "time2wait")

    def __init__(self, callback: Callable[[LogoutTask], object] | None = None) -> None:
        super().__init__(callback)
        self.time2wait = 0
        self.time2retain = 0


__all__ = ["LogoutTask", "PingTask", "Request", "ScsiTask", "TmfTask", "WriteData"]
