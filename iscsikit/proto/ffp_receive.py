"""The receive side of a Full Feature Phase connection, in the BufferedProtocol style.

:meth:`get_buffer` / :meth:`get_buffers` hand out the memory the next received bytes
go to and :meth:`buffer_updated` parses what arrived: normally into a 256 KiB scratch
buffer, many PDUs per receive; the rest of a large Data-In payload straight into the
caller's buffer (no copy), and a data segment too large for the scratch buffer into
its own.  Data-In is placed here (its checks inlined: this runs once per PDU); every
other PDU goes through :data:`_HANDLERS`, the table of which concern answers which
opcode in Full Feature Phase.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

from iscsikit.errors import DigestError, IscsiError, RemoteProtocolError
from iscsikit.proto import ffp_wire as w
from iscsikit.proto.constants import Opcode, RejectReason
from iscsikit.proto.digest import crc32c
from iscsikit.proto.ffp_commands import _CommandPath
from iscsikit.proto.ffp_control import _ControlPath
from iscsikit.proto.ffp_core import _CLOSED, _FAILED, _RX_SIZE
from iscsikit.proto.ffp_renegotiation import _Renegotiation
from iscsikit.proto.task import ScsiTask

#: While large Data-In payloads arrive, receive at most this much into the scratch buffer
#: at a time: the next large payload then stays in the kernel until it can go straight to
#: the caller's buffer, instead of being received here and copied.
_RX_SMALL: Final = 4096
#: A Data-In payload rest at least this large counts as large.
_LARGE: Final = 16 * 1024
#: Room kept free behind an incomplete PDU in the scratch buffer before it is compacted.
_RX_RESERVE: Final = 16 * 1024


class _Receiver(_Renegotiation):  # a chain, not mixins: see ffp_control
    """Receiving and routing PDUs (see the module docstring)."""

    def get_buffer(self) -> memoryview:
        """Where the next received bytes go; never empty."""
        buf = self._buf
        if buf is not None:
            return buf[self._pos :] if self._pos else buf
        end = self._end
        return self._rxv[end : end + self._rx_limit]

    def get_buffers(self) -> list[memoryview]:
        """Like :meth:`get_buffer`, as a scatter list for ``recvmsg_into`` / ``readv``.

        While the rest of a payload goes straight to the caller's buffer (or a segment
        buffer), what the machine will want next follows it in the list - a Data-In's
        padding and data digest, then the scratch buffer - so one receive can finish
        the payload *and* bring the PDUs behind it.  :meth:`buffer_updated` takes the
        total count.
        """
        buf = self._buf
        if buf is None:
            end = self._end
            return [self._rxv[end : end + self._rx_limit]]
        # Direct mode: the scratch buffer is empty (every byte in it belonged to this PDU).
        scratch = self._rxv[: self._rx_limit]
        rest = buf[self._pos :] if self._pos else buf
        if self._step == self._on_data_in_payload:
            tail = (-self._fields[4] & 3) + (4 if self._dd else 0)
            if tail:  # _on_data_in_payload receives these into _tail next
                return [rest, memoryview(self._tail)[:tail], scratch]
        return [rest, scratch]

    def buffer_updated(self, nbytes: int) -> None:
        """``nbytes`` were written at the start of the last :meth:`get_buffer` view (or
        across the last :meth:`get_buffers` list, in order)."""
        self._activity = True
        buf = self._buf
        if buf is None:
            self._end += nbytes
            if self.phase is _FAILED or self.phase is _CLOSED:
                self._start = self._end = 0  # keep draining into scratch
                return
            try:
                self._parse()
            except IscsiError as exc:
                self._fail(exc)
                return
        else:
            try:
                # Fill the direct buffer; a get_buffers() receive may run on into what
                # the machine wants next (the Data-In tail, then the scratch buffer).
                while buf is not None:
                    pos = self._pos + nbytes
                    if pos < len(buf):
                        self._pos = pos
                        nbytes = 0
                        break
                    nbytes = pos - len(buf)
                    self._pos = 0
                    if self.phase is _FAILED or self.phase is _CLOSED:
                        self._buf = None
                        self._start = self._end = 0
                        return
                    self._step()
                    buf = self._buf
                if nbytes:
                    if self.phase is _FAILED or self.phase is _CLOSED:
                        self._start = self._end = 0
                        return
                    self._end = nbytes  # the scratch buffer was empty
                    self._parse()
            except IscsiError as exc:
                self._fail(exc)
                return
        if self._queue:
            self._pump()

    def receive_data(self, data: bytes | bytearray | memoryview) -> None:
        """Feed bytes that are already in memory (tests, other I/O layers): copies them."""
        view = memoryview(data).cast("B")
        while view:
            buf = self.get_buffer()
            n = min(len(buf), len(view))
            buf[:n] = view[:n]
            view = view[n:]
            self.buffer_updated(n)

    def _parse(self) -> None:
        """Handle every whole PDU in the scratch buffer; go direct for a large payload."""
        rx = self._rx
        rxv = self._rxv
        hlen = self._hlen
        hd = self._hd
        dd = self._dd
        unpack = w.TARGET_BHS.unpack_from
        tasks = self._tasks
        max_recv = self._max_recv
        start = self._start
        end = self._end
        while end - start >= hlen:
            header_len = hlen
            ahs = rx[start + 4]
            if ahs:
                # Targets send no AHS in practice; check it (digest included) and skip it.
                header_len += ahs * 4
                if end - start < header_len:
                    break
            if hd:
                cut = start + header_len - 4
                if crc32c(rxv[start:cut]) != int.from_bytes(rx[cut : cut + 4], "little"):
                    raise DigestError(
                        "header digest error", reject_reason=RejectReason.DATA_DIGEST_ERROR
                    )
            fields = unpack(rx, start)
            dlen = fields[4] & 0xFFFFFF  # w.LENGTHS
            pad = -dlen & 3
            total = header_len + dlen + pad + (4 if dd and dlen else 0)
            avail = end - start
            p = start + header_len
            if fields[0] & 0x3F == 0x25:  # Opcode.SCSI_DATA_IN
                # _data_in_header's checks, inlined: this runs for every Data-In PDU.
                task = tasks.get(fields[6])  # ITT
                offset = fields[12]  # Buffer Offset
                if (
                    task is None
                    or (view := task.read_view) is None
                    or fields[11] != task._datasn  # DataSN
                    or offset != task.received
                    or offset + dlen > task.expected_length
                    or fields[1] & 0x81 == w.DATAIN_STATUS
                    or dlen > max_recv
                ):
                    task = self._data_in_header(fields, dlen)  # raises the right error
                    view = task.read_view
                    assert view is not None
                if avail >= total:
                    if dlen:
                        view[offset : offset + dlen] = rxv[p : p + dlen]
                        if dd:
                            q = p + dlen + pad
                            if crc32c(rxv[p:q]) != int.from_bytes(rx[q : q + 4], "little"):
                                raise DigestError(
                                    "data digest error in Data-In",
                                    reject_reason=RejectReason.DATA_DIGEST_ERROR,
                                )
                    start += total
                    self._start = start
                    self._rx_limit = _RX_SIZE
                    self._data_in_done(fields, task)
                else:
                    # The rest of the payload goes straight to the caller's buffer.
                    self._data_in_direct(fields, task, dlen, p, end)
                    return
            elif dlen > self._max_recv:
                self._check_length(dlen)
            elif avail >= total:
                data = b""
                if dlen:
                    data = bytes(rx[p : p + dlen])
                    if dd:
                        q = p + dlen + pad
                        if crc32c(rxv[p:q]) != int.from_bytes(rx[q : q + 4], "little"):
                            raise DigestError(
                                "data digest error", reject_reason=RejectReason.DATA_DIGEST_ERROR
                            )
                start += total
                self._start = start
                self._dispatch(fields, data)
            elif total > _RX_SIZE:
                self._segment_direct(fields, total - header_len, p, end)
                return
            else:
                break
            if self.phase is _FAILED or self.phase is _CLOSED:
                self._start = self._end = 0
                return
            end = self._end
        # Keep room behind the unparsed rest (a partial header, or a non-Data-In PDU that
        # fits the scratch buffer); compacting moves at most one PDU.
        if start == end:
            self._start = self._end = 0
        elif start and _RX_SIZE - end < _RX_RESERVE:
            rx[: end - start] = rxv[start:end]
            self._start = 0
            self._end = end - start
        else:
            self._start = start

    def _check_length(self, dlen: int) -> None:
        if dlen > self._max_recv:
            raise RemoteProtocolError(
                f"data segment of {dlen} bytes exceeds MaxRecvDataSegmentLength {self._max_recv}",
                reject_reason=RejectReason.PROTOCOL_ERROR,
            )

    def _segment_direct(self, fields: tuple[int, ...], size: int, p: int, end: int) -> None:
        """A data segment too large for the scratch buffer: receive the rest into its own."""
        segment = bytearray(size)
        have = end - p
        segment[:have] = self._rxv[p:end]
        self._start = self._end = 0
        self._fields = fields
        self._segment = segment
        self._buf = memoryview(segment)
        self._pos = have
        self._step = self._on_segment

    def _on_segment(self) -> None:
        fields = self._fields
        segment = self._segment
        dlen = fields[w.LENGTHS] & 0xFFFFFF
        self._buf = None
        self._segment = bytearray()
        if self._dd:
            end = len(segment) - 4
            if crc32c(segment[:end]) != int.from_bytes(segment[end:], "little"):
                raise DigestError("data digest error", reject_reason=RejectReason.DATA_DIGEST_ERROR)
        self._dispatch(fields, bytes(segment[:dlen]))

    def _dispatch(self, fields: tuple[int, ...], data: bytes) -> None:
        """Hand a whole PDU (not Data-In) to the concern that answers its opcode."""
        opcode = fields[w.OPCODE] & 0x3F
        handler = _HANDLERS.get(opcode)
        if handler is None:
            raise RemoteProtocolError(
                f"unexpected opcode 0x{opcode:02x} in Full Feature Phase",
                reject_reason=RejectReason.PROTOCOL_ERROR,
            )
        handler(self, fields, data)

    # -- Data-In, straight into the caller's buffer --------------------------------------

    def _data_in_header(self, fields: tuple[int, ...], dlen: int) -> ScsiTask:
        """The command a Data-In header belongs to, once the header checks out."""
        itt = fields[6]  # w.ITT
        task = self._tasks.get(itt)
        if task is None or task.read_view is None:
            raise RemoteProtocolError(
                f"Data-In for ITT 0x{itt:08x}, which is no outstanding read",
                reject_reason=RejectReason.INVALID_PDU_FIELD,
            )
        offset = fields[12]  # w.OFFSET40
        if (
            fields[11] != task._datasn
            or offset != task.received
            or offset + dlen > task.expected_length
            or fields[1] & 0x81 == w.DATAIN_STATUS
            or dlen > self._max_recv
        ):
            self._data_in_violation(fields, dlen, task)
        return task

    def _data_in_violation(self, fields: tuple[int, ...], dlen: int, task: ScsiTask) -> None:
        self._check_length(dlen)
        if fields[w.SN36] != task._datasn:
            raise RemoteProtocolError(
                f"Data-In DataSN {fields[w.SN36]} where {task._datasn} was due",
                reject_reason=RejectReason.PROTOCOL_ERROR,
            )
        offset = fields[w.OFFSET40]
        if offset != task.received:
            # DataPDUInOrder=Yes and DataSequenceInOrder=Yes (what iscsikit offers).
            raise RemoteProtocolError(
                f"Data-In at offset {offset} where {task.received} was due",
                reject_reason=RejectReason.PROTOCOL_ERROR,
            )
        if offset + dlen > task.expected_length:
            raise RemoteProtocolError(
                f"Data-In of {dlen} bytes at offset {offset} runs beyond the "
                f"{task.expected_length}-byte buffer",
                reject_reason=RejectReason.PROTOCOL_ERROR,
            )
        raise RemoteProtocolError(
            "Data-In with status but without the F bit",
            reject_reason=RejectReason.INVALID_PDU_FIELD,
        )

    def _data_in_direct(
        self, fields: tuple[int, ...], task: ScsiTask, dlen: int, p: int, end: int
    ) -> None:
        """Copy the part of a Data-In PDU already here; the rest of the payload goes to the
        caller's buffer directly (the scratch buffer is empty afterwards: all of it was
        this PDU)."""
        view = task.read_view
        assert view is not None
        rxv = self._rxv
        offset = fields[w.OFFSET40]
        have = min(end - p, dlen)
        if have:
            view[offset : offset + have] = rxv[p : p + have]
        self._crc = crc32c(rxv[p : p + have]) if self._dd and have else 0
        self._start = self._end = 0
        self._fields = fields
        self._task = task
        self._pos = 0
        if have < dlen:
            self._rx_limit = _RX_SMALL if dlen - have >= _LARGE else _RX_SIZE
            self._buf = view[offset + have : offset + dlen]
            self._step = self._on_data_in_payload
            return
        # Payload complete, part of the padding / digest behind it is not (rare).
        extra = end - p - have
        self._tail[:extra] = rxv[p + have : end]
        self._buf = memoryview(self._tail)[: (-dlen & 3) + (4 if self._dd else 0)]
        self._pos = extra
        self._step = self._on_data_in_tail

    def _on_data_in_payload(self) -> None:
        fields = self._fields
        buf = self._buf
        assert buf is not None
        if self._dd:
            self._crc = crc32c(buf, self._crc)
        tail = (-(fields[w.LENGTHS] & 0xFFFFFF) & 3) + (4 if self._dd else 0)
        if tail:
            self._buf = memoryview(self._tail)[:tail]
            self._step = self._on_data_in_tail
        else:
            self._data_in_finished()

    def _on_data_in_tail(self) -> None:
        buf = self._buf
        assert buf is not None
        if self._dd:
            pad = len(buf) - 4
            crc = crc32c(buf[:pad], self._crc) if pad else self._crc
            if crc != int.from_bytes(buf[pad:], "little"):
                raise DigestError(
                    "data digest error in Data-In", reject_reason=RejectReason.DATA_DIGEST_ERROR
                )
        self._data_in_finished()

    def _data_in_finished(self) -> None:
        task = self._task
        assert task is not None
        self._task = None
        self._buf = None
        self._data_in_done(self._fields, task)


#: A handler takes the connection, the BHS fields (``ffp_wire.TARGET_BHS``) and the data
#: segment (digest checked, padding dropped).
_Handler = Callable[[_Receiver, tuple[int, ...], bytes], None]

#: Which concern answers each opcode a target may send in Full Feature Phase, Data-In
#: excepted (``_parse`` places it itself).  Any other opcode - a Login Response, or one
#: RFC 7143 §11.2.1 does not define - breaks the protocol.  Keyed by plain ints: the
#: lookup runs once per PDU.
_HANDLERS: Final[dict[int, _Handler]] = {
    int(opcode): handler
    for opcode, handler in (
        (Opcode.SCSI_RESPONSE, _CommandPath._scsi_response),
        (Opcode.R2T, _CommandPath._r2t),
        (Opcode.NOP_IN, _ControlPath._nop_in),
        (Opcode.TASK_MGMT_RESPONSE, _ControlPath._tmf_response),
        (Opcode.LOGOUT_RESPONSE, _ControlPath._logout_response),
        (Opcode.REJECT, _ControlPath._reject),
        (Opcode.ASYNC_MESSAGE, _Renegotiation._async_message),
        (Opcode.TEXT_RESPONSE, _Renegotiation._text_response),
    )
}

__all__: list[str] = []
