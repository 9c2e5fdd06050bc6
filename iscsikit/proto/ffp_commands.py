"""The command path of a Full Feature Phase connection: SCSI commands and their data.

Submitting commands through the CmdSN window and the queue depth (RFC 7143 §4.2.2.1),
immediate and unsolicited data and the Data-Out answering an R2T (§11.7, §11.8), and
completing a command: the accounting of each Data-In PDU once it is placed (the
receive side, :mod:`.ffp_receive`, places it) and the SCSI Response with its sense data
and residuals (§11.4).  ``reissue``, ``_send_command`` and ``_data_in_done`` run once
per I/O: they are written for speed, with the usual case inlined.
"""

from __future__ import annotations

from typing import Final

from iscsikit.errors import LocalProtocolError, RemoteProtocolError
from iscsikit.proto import ffp_wire as w
from iscsikit.proto.constants import RESERVED_TAG, Opcode, RejectReason
from iscsikit.proto.ffp_core import _ACTIVE, _HALF, _MASK, _ConnectionCore
from iscsikit.proto.pdu import ScsiCommand, encode_pdu
from iscsikit.proto.session import sn_le
from iscsikit.proto.task import ScsiTask

_READ_FINAL: Final = w.F_READ | w.F_FINAL


class _CommandPath(_ConnectionCore):
    """Commands, Data-Out and R2T, command completion (see the module docstring)."""

    def submit(self, task: ScsiTask) -> None:
        """Queue a SCSI command; it is sent as soon as the window and queue depth allow."""
        if self.phase != _ACTIVE:
            raise self._closed_error()
        if task.itt != -1:
            raise LocalProtocolError("a task can be submitted once")
        state = self.state
        if (
            not self._queue
            and len(self._tasks) < self.queue_depth
            and ((state.maxcmdsn - state.cmdsn) & _MASK) < _HALF  # CmdSN <= MaxCmdSN
        ):
            self._send_command(task)  # nothing waits ahead of it: skip the queue
            return
        self._queue.append(task)
        self._pump()

    def reissue(self, task: ScsiTask, cdb: bytes, expected_length: int) -> None:
        """Submit ``task`` again as a new command: ``cdb`` over the same buffer.

        For callers that keep one task per slot (``iscsikit-perf``) instead of building a
        :class:`ScsiTask` per I/O.  The task must be new or finished; its outcome fields
        are reset.  ``expected_length`` may be shorter than the buffer, never longer.
        ``cdb`` is at most 16 bytes (no extended-CDB AHS on this path).
        """
        if task.itt != -1 and not task.done:
            raise LocalProtocolError("a task can be reissued only once it is done")
        view = task.read_view
        if view is None:
            view = task.write_view
        if not 1 <= len(cdb) <= 16 or expected_length > (0 if view is None else len(view)):
            raise LocalProtocolError("reissue: CDB over 16 bytes or length beyond the buffer")
        task.cdb = cdb
        task.expected_length = expected_length
        task.itt = -1
        task.done = False
        task.error = None
        task.status = -1
        task.response = 0
        task.residual = 0
        task.sense_data = b""
        task.received = 0
        task._datasn = 0
        task._r2tsn = 0
        # submit(), inlined (task.itt is -1 now).
        if self.phase != _ACTIVE:
            raise self._closed_error()
        state = self.state
        tasks = self._tasks
        if (
            not self._queue
            and len(tasks) < self.queue_depth
            and ((state.maxcmdsn - state.cmdsn) & _MASK) < _HALF
        ):
            if task.read_view is None:
                self._send_command(task)
                return
            # _send_command() for a read, inlined: this runs once per I/O.
            itt = state.next_itt()
            while itt in tasks or itt in self._others:
                itt = state.next_itt()
            task.itt = itt
            task.cmdsn = cmdsn = state.cmdsn
            state.cmdsn = (cmdsn + 1) & _MASK
            task.started = self._now
            tasks[itt] = task
            header = w.SCSI_COMMAND.pack(
                0x01,  # Opcode.SCSI_COMMAND
                task.attr | _READ_FINAL,
                0,
                0,
                task.lun_field,
                itt,
                expected_length,
                cmdsn,
                state.expstatsn,
                cdb,
            )
            if self._hd:
                header += w.digest_word(header)
            self._out.append(header)
            self.stats.scsicmd_pdus += 1
            return
        self._queue.append(task)
        self._pump()

    def _pump(self) -> None:
        """Send queued commands while the window is open and the queue depth allows."""
        queue = self._queue
        tasks = self._tasks
        state = self.state
        while queue and len(tasks) < self.queue_depth and sn_le(state.cmdsn, state.maxcmdsn):
            self._send_command(queue.popleft())

    def _send_command(self, task: ScsiTask) -> None:
        state = self.state
        tasks = self._tasks
        task.itt = itt = self._free_itt()
        task.cmdsn = cmdsn = state.cmdsn
        state.cmdsn = (cmdsn + 1) & _MASK
        task.started = self._now
        tasks[itt] = task
        self.stats.scsicmd_pdus += 1
        if task.write_view is None and len(task.cdb) <= 16:
            # Reads and commands without data (the hot path): the header is all there is.
            header = w.SCSI_COMMAND.pack(
                0x01,  # Opcode.SCSI_COMMAND
                task.attr | (_READ_FINAL if task.read_view is not None else w.F_FINAL),
                0,
                0,
                task.lun_field,
                itt,
                task.expected_length,
                cmdsn,
                state.expstatsn,
                task.cdb,
            )
            if self._hd:
                header += w.digest_word(header)
            self._out.append(header)
            return
        length = task.expected_length
        flags = task.attr
        immediate = 0
        unsolicited = 0
        view = task.write_view
        if view is not None:
            flags |= w.F_WRITE
            first = min(length, self.params.first_burst_length)
            if self.params.immediate_data:
                immediate = min(first, self._max_xmit)
            unsolicited = immediate if self.params.initial_r2t else first
        elif task.read_view is not None:
            flags |= w.F_READ
        if unsolicited <= immediate:
            flags |= w.F_FINAL  # no unsolicited Data-Out follows (§11.3.4)
        data = view[:immediate] if view is not None and immediate else None
        if immediate:
            self.stats.txdata_octets += immediate
        if len(task.cdb) <= 16:
            header = w.SCSI_COMMAND.pack(
                Opcode.SCSI_COMMAND,
                flags,
                0,
                immediate,
                task.lun_field,
                itt,
                length,
                cmdsn,
                state.expstatsn,
                task.cdb,
            )
            self._emit(header, data)
        else:
            command = ScsiCommand(
                final=bool(flags & w.F_FINAL),
                read=task.read_view is not None,
                write=view is not None,
                attr=task.attr,
                lun=task.lun_field,
                itt=itt,
                expected_data_transfer_length=length,
                cmdsn=cmdsn,
                expstatsn=state.expstatsn,
                cdb=task.cdb,
                data=bytes(data) if data is not None else b"",
            )
            # A CDB over 16 bytes needs an extended-CDB AHS: the general codec does that.
            self._out.append(encode_pdu(command, header_digest=self._hd, data_digest=self._dd))
        if unsolicited > immediate:
            self._send_data_out(task, RESERVED_TAG, immediate, unsolicited - immediate)

    def _send_data_out(self, task: ScsiTask, ttt: int, offset: int, length: int) -> None:
        """One Data-Out sequence (§11.7): ``length`` bytes from ``offset``, DataSN from 0."""
        view = task.write_view
        assert view is not None
        if self._hd or self._dd or (length | offset | self._max_xmit) & 3:
            self._send_data_out_general(task, ttt, offset, length)
            return
        # No digests, no padding (the usual write): header and payload per PDU, inlined.
        pack = w.DATA_OUT.pack
        append = self._out.append
        lun_field = task.lun_field
        itt = task.itt
        expstatsn = self.state.expstatsn
        step = self._max_xmit
        end = offset + length
        datasn = 0
        while offset < end:
            n = end - offset
            if n > step:
                n = step
                final = 0
            else:
                final = w.F_FINAL
            append(pack(0x05, final, 0, n, lun_field, itt, ttt, 0, expstatsn, 0, datasn, offset, 0))
            append(view[offset : offset + n])
            offset += n
            datasn += 1
        stats = self.stats
        stats.dataout_pdus += datasn
        stats.txdata_octets += length

    def _send_data_out_general(self, task: ScsiTask, ttt: int, offset: int, length: int) -> None:
        view = task.write_view
        assert view is not None
        pack = w.DATA_OUT.pack
        step = self._max_xmit
        end = offset + length
        datasn = 0
        while offset < end:
            n = min(step, end - offset)
            final = w.F_FINAL if offset + n >= end else 0
            header = pack(
                0x05,  # Opcode.SCSI_DATA_OUT
                final,
                0,
                n,
                task.lun_field,
                task.itt,
                ttt,
                0,
                self.state.expstatsn,
                0,
                datasn,
                offset,
                0,
            )
            self._emit(header, view[offset : offset + n])
            offset += n
            datasn += 1
        stats = self.stats
        stats.dataout_pdus += datasn
        stats.txdata_octets += length

    # -- completion --------------------------------------------------------------------------

    def _data_in_done(self, fields: tuple[int, ...], task: ScsiTask) -> None:
        dlen = fields[4] & 0xFFFFFF  # w.LENGTHS
        task.received = fields[12] + dlen  # OFFSET40 + data length
        task._datasn += 1
        stats = self.stats
        stats.datain_pdus += 1
        stats.rxdata_octets += dlen
        state = self.state
        # RFC 7143 §4.2.2.1, inlined from SessionState.update_from_response: this runs
        # once per Data-In PDU.
        expcmdsn = fields[9]
        maxcmdsn = fields[10]
        if ((maxcmdsn - expcmdsn + 1) & _MASK) < _HALF:
            if expcmdsn != state.expcmdsn and ((expcmdsn - state.expcmdsn) & _MASK) < _HALF:
                state.expcmdsn = expcmdsn
            if maxcmdsn != state.maxcmdsn and ((maxcmdsn - state.maxcmdsn) & _MASK) < _HALF:
                state.maxcmdsn = maxcmdsn
        flags = fields[1]
        if flags & w.DATAIN_STATUS:
            stats.scsirsp_pdus += 1  # as libiscsi counts a status in Data-In
            state.expstatsn = (fields[8] + 1) & _MASK
            if flags & 0x06 or task.error is not None or task.received != task.expected_length:
                # A residual, or fewer bytes than expected: the general path decides.
                self._complete_command(task, 0, fields[3], flags, fields[13], b"")
                return
            # GOOD-path completion without residuals (the usual case), inlined.
            del self._tasks[task.itt]
            task.response = 0
            task.status = fields[3]
            task.done = True
            callback = task.callback
            if callback is not None:
                callback(task)

    # -- responses -------------------------------------------------------------------------

    def _scsi_response(self, fields: tuple[int, ...], data: bytes) -> None:
        self.stats.scsirsp_pdus += 1
        itt = fields[w.ITT]
        task = self._tasks.get(itt)
        if task is None:
            raise RemoteProtocolError(
                f"SCSI Response for ITT 0x{itt:08x}, which is no outstanding command",
                reject_reason=RejectReason.INVALID_PDU_FIELD,
            )
        self.state.update_from_response(fields[w.STATSN], fields[w.EXPCMDSN], fields[w.MAXCMDSN])
        sense = b""
        if data:
            if len(data) < 2:
                raise RemoteProtocolError(
                    "SCSI Response data segment shorter than its SenseLength field",
                    reject_reason=RejectReason.INVALID_PDU_FIELD,
                )
            length = int.from_bytes(data[:2], "big")
            if length > len(data) - 2:
                raise RemoteProtocolError(
                    f"SenseLength {length} exceeds the {len(data) - 2} bytes that follow",
                    reject_reason=RejectReason.INVALID_PDU_FIELD,
                )
            sense = data[2 : 2 + length]
        self._complete_command(
            task, fields[w.BYTE2], fields[w.BYTE3], fields[w.FLAGS], fields[w.WORD44], sense
        )

    def _complete_command(
        self, task: ScsiTask, response: int, status: int, flags: int, residual: int, sense: bytes
    ) -> None:
        del self._tasks[task.itt]
        task.response = response
        task.status = status
        task.sense_data = sense
        if flags & w.RESIDUAL_UNDERFLOW and flags & w.RESIDUAL_OVERFLOW:
            task.error = RemoteProtocolError(
                "the target reported both residual overflow and underflow",
                reject_reason=RejectReason.INVALID_PDU_FIELD,
            )
        elif flags & w.RESIDUAL_UNDERFLOW:
            task.residual = residual
        elif flags & w.RESIDUAL_OVERFLOW:
            task.residual = -residual
        if task.error is None and response != 0:
            task.error = RemoteProtocolError(
                f"target failure (iSCSI response 0x{response:02x}) for command 0x{task.cdb[0]:02x}",
                reject_reason=None,
            )
        if task.error is None and task.read_view is not None and status == 0:
            # Never hand out a buffer with holes as good data (RFC 7143 §11.4.5).
            if task.residual > task.expected_length:
                task.error = RemoteProtocolError(
                    f"residual underflow {task.residual} exceeds the expected "
                    f"length {task.expected_length}",
                    reject_reason=RejectReason.INVALID_PDU_FIELD,
                )
            elif task.received != task.transferred:
                task.error = RemoteProtocolError(
                    f"the target reported {task.transferred} bytes read but sent {task.received}",
                    reject_reason=RejectReason.PROTOCOL_ERROR,
                )
        self._finish(task)

    def _r2t(self, fields: tuple[int, ...], data: bytes) -> None:
        self.stats.r2t_pdus += 1
        itt = fields[w.ITT]
        task = self._tasks.get(itt)
        if task is None or task.write_view is None:
            raise RemoteProtocolError(
                f"R2T for ITT 0x{itt:08x}, which is no outstanding write",
                reject_reason=RejectReason.INVALID_PDU_FIELD,
            )
        self.state.update_from_response(None, fields[w.EXPCMDSN], fields[w.MAXCMDSN])
        ttt = fields[w.TTT]
        offset = fields[w.OFFSET40]
        length = fields[w.WORD44]
        if ttt == RESERVED_TAG:
            raise RemoteProtocolError(
                "R2T with the reserved Target Transfer Tag",
                reject_reason=RejectReason.INVALID_PDU_FIELD,
            )
        if fields[w.SN36] != task._r2tsn:
            raise RemoteProtocolError(
                f"R2TSN {fields[w.SN36]} where {task._r2tsn} was due",
                reject_reason=RejectReason.PROTOCOL_ERROR,
            )
        if not 0 < length <= self.params.max_burst_length or (
            offset + length > task.expected_length
        ):
            raise RemoteProtocolError(
                f"R2T for {length} bytes at offset {offset} does not fit the "
                f"{task.expected_length}-byte transfer (MaxBurstLength "
                f"{self.params.max_burst_length})",
                reject_reason=RejectReason.INVALID_PDU_FIELD,
            )
        task._r2tsn += 1
        self._send_data_out(task, ttt, offset, length)


__all__: list[str] = []
