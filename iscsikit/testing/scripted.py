"""A scripted iSCSI target that logs in properly and then does what a test says.

:func:`logged_in` is a :class:`~iscsikit.testing.hostile.ScriptedTarget` behaviour: it
answers the initiator's login in one round (straight to Full Feature Phase) and hands the
connection to a script as a :class:`Peer`, the target end of one ERL 0 connection: it
numbers StatSN, tracks CmdSN, answers NOP-Out pings, builds every response PDU, and can
answer commands as a small honest disk (:meth:`Peer.answer`, :meth:`Peer.serve`).  Tests
of hostile targets (tests/integration/test_hostile_io.py) and of the session manager's
recovery use it.

Every PDU on the wire is built and parsed by :mod:`iscsikit.testing.rawpdu`, written
from RFC 7143 apart from the codec under test (digests included: a wrong one the
initiator sends fails the script).  :meth:`Peer.recv` hands scripts rawpdu's own
dataclasses (:class:`~iscsikit.testing.rawpdu.ScsiCommand`, ...): nothing here imports
the codec under test, not even its classes.
"""

from __future__ import annotations

import socket
from collections.abc import Callable
from typing import Any

from iscsikit.testing import rawpdu as raw
from iscsikit.testing.hostile import PeerClosed, read_pdu
from iscsikit.testing.rawpdu import (
    RESERVED_TAG,
    AsyncMessage,
    DataIn,
    InitiatorPdu,
    LoginRequest,
    LoginResponse,
    LogoutRequest,
    LogoutResponse,
    NopIn,
    ScsiCommand,
    ScsiResponse,
    TargetPdu,
    TaskMgmtResponse,
    encode_text,
)

__all__ = ["BLOCK", "BLOCKS", "Peer", "Script", "disk_bytes", "logged_in"]

#: The honest disk's geometry: BLOCKS blocks of BLOCK bytes.
BLOCK = 512
BLOCKS = 64


def disk_bytes(offset: int, length: int) -> bytes:
    return bytes((offset + i) % 251 for i in range(length))


class Peer:
    """The target end of one logged-in connection (ERL 0), for scripts to drive."""

    def __init__(self, conn: socket.socket, req: LoginRequest, *, digests: bool) -> None:
        self.conn = conn
        self.hd = self.dd = digests
        self.statsn = 2  # the login response had StatSN 1
        self.expcmdsn = req.cmdsn
        self.window = 16
        #: The ISID of the session this connection belongs to.
        self.isid = req.isid

    @property
    def maxcmdsn(self) -> int:
        return (self.expcmdsn + self.window - 1) & 0xFFFFFFFF

    def send(self, *items: TargetPdu | bytes) -> None:
        self.conn.sendall(b"".join(i if isinstance(i, bytes) else self.encode(i) for i in items))

    def encode(self, pdu: TargetPdu) -> bytes:
        return raw.encode(pdu, header_digest=self.hd, data_digest=self.dd)

    def recv(self, timeout: float | None = 10.0) -> InitiatorPdu:
        """The next PDU that is not a ping (pings are answered here)."""
        while True:
            wire = read_pdu(self.conn, timeout, header_digest=self.hd, data_digest=self.dd)
            pdu = raw.parse(wire, header_digest=self.hd, data_digest=self.dd)
            if isinstance(pdu, raw.NopOut) and pdu.itt != RESERVED_TAG:
                self.send(self.nop_in(pdu))
                continue
            if isinstance(pdu, raw.ScsiCommand) and not pdu.immediate:
                self.expcmdsn = (pdu.cmdsn + 1) & 0xFFFFFFFF
            return pdu

    def command(self) -> ScsiCommand:
        while True:
            pdu = self.recv()
            if isinstance(pdu, ScsiCommand):
                return pdu

    def _statsn(self) -> int:
        self.statsn += 1
        return self.statsn - 1

    def nop_in(self, ping: raw.NopOut) -> NopIn:
        return NopIn(itt=ping.itt, ttt=RESERVED_TAG, statsn=self._statsn(),
                     expcmdsn=self.expcmdsn, maxcmdsn=self.maxcmdsn, data=ping.data)  # fmt: skip

    def data_in(self, itt: int, data: bytes, *, offset: int = 0, datasn: int = 0,
                status: int | None = None, **kw: Any) -> DataIn:  # fmt: skip
        return DataIn(
            final=status is not None or kw.pop("final", False),
            status_present=status is not None,
            status=status or 0,
            itt=itt,
            statsn=self._statsn() if status is not None else self.statsn,
            expcmdsn=self.expcmdsn,
            maxcmdsn=self.maxcmdsn,
            datasn=datasn,
            buffer_offset=offset,
            data=data,
            **kw,
        )

    def response(self, itt: int, *, status: int = 0, data: bytes = b"", **kw: Any) -> ScsiResponse:
        return ScsiResponse(itt=itt, status=status, statsn=self._statsn(), expcmdsn=self.expcmdsn,
                            maxcmdsn=self.maxcmdsn, data=data, **kw)  # fmt: skip

    def tmf_response(self, itt: int, response: int) -> TaskMgmtResponse:
        return TaskMgmtResponse(response=response, itt=itt, statsn=self._statsn(),
                                expcmdsn=self.expcmdsn, maxcmdsn=self.maxcmdsn)  # fmt: skip

    def async_message(self, event: int, **kw: Any) -> AsyncMessage:
        """An Async Message (``event``: ``AsyncEvent``; parameters as keywords)."""
        return AsyncMessage(async_event=event, statsn=self.statsn, expcmdsn=self.expcmdsn,
                            maxcmdsn=self.maxcmdsn, **kw)  # fmt: skip

    def logout_response(self, itt: int) -> LogoutResponse:
        return LogoutResponse(itt=itt, statsn=self._statsn(), expcmdsn=self.expcmdsn,
                              maxcmdsn=self.maxcmdsn)  # fmt: skip

    # -- an honest disk, for the SCSI probe and the good commands --------------------------

    def answer(self, cmd: ScsiCommand) -> None:
        """Answer ``cmd`` as a small, well-behaved disk would."""
        op = cmd.cdb[0]
        length = cmd.expected_data_transfer_length
        if op == 0x12 and not cmd.cdb[1] & 1:  # standard INQUIRY
            data = bytes([0, 0, 6, 2, 31, 0, 0, 2]) + b"ISCSIKIT" + b"HOSTILE DISK    " + b"0001"
        elif op == 0x9E:  # READ CAPACITY(16)
            data = (BLOCKS - 1).to_bytes(8, "big") + BLOCK.to_bytes(4, "big") + bytes(20)
        elif op in (0x28, 0x88):  # READ(10), READ(16)
            lba = int.from_bytes(cmd.cdb[2:6] if op == 0x28 else cmd.cdb[2:10], "big")
            data = disk_bytes(lba * BLOCK, length)
        elif op in (0x00, 0x35, 0x91, 0x2A, 0x8A):  # TUR, SYNC CACHE, writes: no data back
            self.send(self.response(cmd.itt))
            return
        else:  # VPD, MODE SENSE, ...: ILLEGAL REQUEST, INVALID FIELD IN CDB
            sense = bytes([0x70, 0, 0x05, 0, 0, 0, 0, 10, 0, 0, 0, 0, 0x24, 0, 0, 0, 0, 0])
            self.send(self.response(cmd.itt, status=2, data=len(sense).to_bytes(2, "big") + sense))
            return
        data = data[:length]
        under = length - len(data)
        self.send(self.data_in(cmd.itt, data, status=0, underflow=under > 0, residual_count=under))

    def serve(self, until: Callable[[ScsiCommand], bool] | None = None) -> ScsiCommand | None:
        """Answer honestly until a command ``until`` picks (returned unanswered), a Logout
        (answered, then None), or the initiator closing (None)."""
        try:
            while True:
                pdu = self.recv(timeout=None)
                if isinstance(pdu, LogoutRequest):
                    self.send(self.logout_response(pdu.itt))
                    return None
                if isinstance(pdu, ScsiCommand):
                    if until is not None and until(pdu):
                        return pdu
                    self.answer(pdu)
        except PeerClosed:
            return None


Script = Callable[[Peer], None]


def logged_in(
    script: Script, *, digests: bool = False, time2wait: int | None = None
) -> Callable[[socket.socket], None]:
    """A behaviour: log the initiator in (a security stage round first when the
    initiator starts there, then one round to Full Feature Phase), then hand the
    connection to ``script``.  ``time2wait`` answers DefaultTime2Wait
    (unanswered, the session waits the RFC's 2 s before it reconnects)."""
    digest = "CRC32C" if digests else "None"
    answers = [("HeaderDigest", digest), ("DataDigest", digest), ("TargetPortalGroupTag", "1")]
    if time2wait is not None:
        answers.append(("DefaultTime2Wait", str(time2wait)))

    def behaviour(conn: socket.socket) -> None:
        req = raw.parse(read_pdu(conn))
        assert isinstance(req, LoginRequest)
        if req.csg == 0:  # the security stage first (AuthMethod=None), as open-iscsi does
            conn.sendall(
                raw.encode(
                    LoginResponse(
                        transit=True, csg=0, nsg=1, isid=req.isid, tsih=0, itt=req.itt,
                        statsn=0, expcmdsn=req.cmdsn, maxcmdsn=req.cmdsn + 15,
                        data=encode_text([("AuthMethod", "None")]),
                    )
                )
            )  # fmt: skip
            req = raw.parse(read_pdu(conn))
            assert isinstance(req, LoginRequest)
        conn.sendall(
            raw.encode(
                LoginResponse(
                    transit=True, csg=req.csg, nsg=3, isid=req.isid, tsih=7, itt=req.itt,
                    statsn=1, expcmdsn=req.cmdsn, maxcmdsn=req.cmdsn + 15,
                    data=encode_text(answers),
                )
            )
        )  # fmt: skip
        script(Peer(conn, req, digests=digests))

    return behaviour
