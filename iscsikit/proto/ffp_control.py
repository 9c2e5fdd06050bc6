"""Control requests and timers of a Full Feature Phase connection.

The requests that are not SCSI commands - NOP-Out pings and keepalive (RFC 7143
§11.18), task management (§11.5) and logout (§11.14) - with their responses and the
target's Reject (§11.17); and the clock-driven part of the connection: keepalive,
command timeouts, and task management escalation as the kernel's SCSI error handler
does it (abort → LUN reset → target reset → drop the connection), as the table
``_TMF_RULES`` says.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Final, Literal

from iscsikit.errors import (
    CommandTimeoutError,
    ConnectionFailedError,
    IscsiError,
    LogoutError,
    PduTimeoutError,
    RemoteProtocolError,
    TaskManagementError,
)
from iscsikit.proto import ffp_wire as w
from iscsikit.proto.constants import (
    RESERVED_TAG,
    LogoutReason,
    LogoutResult,
    RejectReason,
    TmfFunction,
    TmfResponse,
)
from iscsikit.proto.ffp_commands import _CommandPath
from iscsikit.proto.ffp_core import _ACTIVE, _BHS, _CLOSED, _LOGGING_OUT
from iscsikit.proto.ffp_params import Timers
from iscsikit.proto.pdu import LogoutRequest, NopOut, Reject, TaskMgmtRequest
from iscsikit.proto.task import LogoutTask, PingTask, ScsiTask, TmfTask


# One base each, in a chain (core → commands → control → renegotiation → receive) rather
# than mixins beside each other: mypyc compiles single inheritance only.  No two of these
# classes define the same name, so every lookup resolves as it would with mixins.
class _ControlPath(_CommandPath):
    """Pings, task management, logout, Reject, and the timers (see the module docstring)."""

    def ping(self, task: PingTask) -> None:
        """Send a NOP-Out ping; the task completes when the matching NOP-In arrives."""
        if self.phase != _ACTIVE:
            raise self._closed_error()
        self._send_ping(task)

    def task_management(self, task: TmfTask) -> None:
        """Send a task management request (immediate: it passes a closed window)."""
        if self.phase != _ACTIVE:
            raise self._closed_error()
        self._send_tmf(task)

    def logout(self, task: LogoutTask) -> None:
        """Close the session; commands still queued (never sent) fail at once."""
        if self.phase != _ACTIVE:
            raise self._closed_error()
        self.phase = _LOGGING_OUT
        for queued in self._queue:
            queued.error = ConnectionFailedError("the session is logging out")
        dropped, self._queue = list(self._queue), deque()
        itt = self._register(task)
        request = LogoutRequest(
            immediate=True,
            reason=int(LogoutReason.CLOSE_SESSION),
            itt=itt,
            cmdsn=self.state.cmdsn,
            expstatsn=self.state.expstatsn,
        )
        self._emit_pdu(request)
        self.stats.logout_pdus += 1
        for queued in dropped:
            self._finish(queued)

    def _send_ping(self, task: PingTask) -> None:
        itt = self._register(task)
        self._emit_pdu(
            NopOut(
                immediate=True,
                lun=0,
                itt=itt,
                ttt=RESERVED_TAG,
                cmdsn=self.state.cmdsn,
                expstatsn=self.state.expstatsn,
                data=task.data,
            )
        )
        self.stats.noptx_pdus += 1

    def _send_tmf(self, task: TmfTask) -> None:
        itt = self._register(task)
        referenced = task.referenced
        self._emit_pdu(
            TaskMgmtRequest(
                immediate=True,
                function=int(task.function),
                lun=task.lun_field,
                itt=itt,
                referenced_task_tag=referenced.itt if referenced is not None else RESERVED_TAG,
                cmdsn=self.state.cmdsn,
                expstatsn=self.state.expstatsn,
                refcmdsn=(
                    referenced.cmdsn if referenced is not None and referenced.cmdsn >= 0 else 0
                ),
            )
        )
        self.stats.tmfcmd_pdus += 1

    def _nop_in(self, fields: tuple[int, ...], data: bytes) -> None:
        self.stats.noprx_pdus += 1
        itt = fields[w.ITT]
        if itt == RESERVED_TAG:
            # Unsolicited: carries the next StatSN without advancing it (§11.19).
            self.state.update_from_response(None, fields[w.EXPCMDSN], fields[w.MAXCMDSN])
            ttt = fields[w.TTT]
            if ttt != RESERVED_TAG:
                self._emit_pdu(
                    NopOut(
                        immediate=True,
                        lun=fields[w.LUN],
                        itt=RESERVED_TAG,
                        ttt=ttt,
                        cmdsn=self.state.cmdsn,
                        expstatsn=self.state.expstatsn,
                        data=data,
                    )
                )
                self.stats.noptx_pdus += 1
            return
        request = self._answered(fields, PingTask, "NOP-In", "ping")
        if data != request.data:
            request.error = RemoteProtocolError(
                "NOP-In did not echo the ping data", reject_reason=RejectReason.PROTOCOL_ERROR
            )
        if request is self._keepalive:
            self._keepalive = None
        self._finish(request)

    def _tmf_response(self, fields: tuple[int, ...], data: bytes) -> None:
        self.stats.tmfrsp_pdus += 1
        request = self._answered(fields, TmfTask, "Task Management Response", "request")
        request.response = fields[w.BYTE2]
        if request.response_means_done():
            self._tasks_ended_by(request)
            self._finish(request)
        elif request.escalates:
            self._escalate(request, f"answered {_tmf_answer(request.response)}")
        else:
            self._finish(request)

    def _tasks_ended_by(self, tmf: TmfTask) -> None:
        """Complete the commands a successful TMF ended: the target will not answer them."""
        scope = _TMF_RULES.get(tmf.function, _OTHER_TMF).ends
        if scope == "task":
            victims = [tmf.referenced] if tmf.referenced is not None else []
        elif scope == "lun":
            victims = [t for t in self._tasks.values() if t.lun == tmf.lun]
        elif scope == "target":
            victims = list(self._tasks.values())
        else:
            victims = []
        name = tmf.function.name.replace("_", " ")
        for task in victims:
            if task is None or self._tasks.pop(task.itt, None) is None:
                continue
            if task.error is None:
                task.error = CommandTimeoutError(
                    f"command 0x{task.cdb[0]:02x} (ITT 0x{task.itt:08x}) ended by {name}"
                )
            self._finish(task)

    def _logout_response(self, fields: tuple[int, ...], data: bytes) -> None:
        self.stats.logoutrsp_pdus += 1
        request = self._answered(fields, LogoutTask, "Logout Response", "logout")
        response = fields[w.BYTE2]
        if response != LogoutResult.SUCCESS:
            try:
                why = LogoutResult(response).name.lower().replace("_", " ")
            except ValueError:
                why = f"response {response}"
            request.error = LogoutError(f"target refused the logout: {why}")
        request.time2wait = fields[w.OFFSET40] >> 16  # bytes 40-41, then Time2Retain
        request.time2retain = fields[w.OFFSET40] & 0xFFFF
        self.phase = _CLOSED
        leftovers = list(self._tasks.values()) + list(self._others.values())
        self._tasks.clear()
        self._others.clear()
        for left in leftovers:
            left.error = ConnectionFailedError("the session logged out")
        self._finish(request)
        for left in leftovers:
            self._finish(left)

    def _reject(self, fields: tuple[int, ...], data: bytes) -> None:
        self.stats.rjt_pdus += 1
        message = self._decode(fields, data)
        assert isinstance(message, Reject)
        self.state.update_from_response(message.statsn, message.expcmdsn, message.maxcmdsn)
        try:
            reason = RejectReason(message.reason).name.lower().replace("_", " ")
        except ValueError:
            reason = f"reason 0x{message.reason:02x}"
        if len(data) < _BHS:
            raise RemoteProtocolError(
                f"Reject ({reason}) without the rejected header",
                reject_reason=RejectReason.INVALID_PDU_FIELD,
            )
        itt = int.from_bytes(data[16:20], "big")
        error = RemoteProtocolError(
            f"the target rejected a PDU (opcode 0x{data[0] & 0x3F:02x}): {reason}",
            reject_reason=message.reason,
        )
        task = self._tasks.pop(itt, None)
        if task is not None:
            task.error = error
            self._finish(task)
            return
        request = self._others.pop(itt, None)
        if request is not None:
            if request is self._keepalive:
                self._keepalive = None
            request.error = error
            self._finish(request)
            if isinstance(request, LogoutTask):
                self.phase = _ACTIVE
            return
        if message.reason == RejectReason.PROTOCOL_ERROR:
            raise error

    # -- timers ----------------------------------------------------------------------------

    def get_timer(self) -> float | None:
        """When :meth:`handle_timer` should next run (same clock as its ``now``)."""
        if self.closed:
            return None
        if self._now is None:
            return 0.0
        return self._now + self.timers.tick

    def handle_timer(self, now: float) -> None:
        """Run keepalive, command timeouts and TMF escalation as of ``now`` (seconds)."""
        first = self._now is None
        self._now = now
        if self._activity or first:
            self._last_rx = now
            self._activity = False
        if self.closed:
            return
        t = self.timers
        try:
            self._keepalive_timer(now, t)
            self._request_timers(now, t)
        except IscsiError as exc:
            self._fail(exc)

    def _keepalive_timer(self, now: float, t: Timers) -> None:
        if not t.noop_out_interval or self.phase != _ACTIVE:
            return
        ping = self._keepalive
        if ping is not None:
            if self._last_rx <= self._keepalive_sent and now - self._keepalive_sent >= (
                t.noop_out_timeout or t.noop_out_interval
            ):
                raise PduTimeoutError(
                    f"ping timeout of {t.noop_out_timeout:g} s expired "
                    f"(nothing received for {now - self._last_rx:.1f} s)"
                )
            return
        if now - self._last_rx >= t.noop_out_interval:
            ping = PingTask()
            self._keepalive = ping
            self._keepalive_sent = now
            self._send_ping(ping)

    def _request_timers(self, now: float, t: Timers) -> None:
        if t.command_timeout:
            for task in list(self._tasks.values()):
                if task.started is None:
                    task.started = now
                elif now - task.started >= t.command_timeout and not self._aborting(task):
                    self.stats.timeout_err += 1
                    abort = TmfTask(TmfFunction.ABORT_TASK, referenced=task)
                    abort.escalates = True
                    self._send_tmf(abort)
            self._queue_timers(now, t.command_timeout)
        for request in list(self._others.values()):
            if request.started is None:
                request.started = now
                continue
            age = now - request.started
            if isinstance(request, TmfTask):
                limit = _tmf_timeout(request.function, t)
                if limit and age >= limit:
                    self._tmf_timed_out(request)
            elif isinstance(request, PingTask):
                if request is not self._keepalive and age >= (t.noop_out_timeout or 30.0):
                    del self._others[request.itt]
                    request.error = PduTimeoutError(
                        f"no NOP-In answered the ping within {age:.1f} s"
                    )
                    self._finish(request)
            elif isinstance(request, LogoutTask) and t.logout_timeout and age >= t.logout_timeout:
                raise PduTimeoutError(f"no Logout Response within {t.logout_timeout:g} s")

    def _queue_timers(self, now: float, limit: float) -> None:
        """Commands the window or queue depth held back too long fail unsent."""
        expired = []
        for task in self._queue:
            if task.started is None:
                task.started = now
            elif now - task.started >= limit:
                expired.append(task)
        self.stats.timeout_err += len(expired)
        for task in expired:
            self._queue.remove(task)
            task.started = None
            task.error = CommandTimeoutError(
                f"command 0x{task.cdb[0]:02x} could not be sent within {limit:g} s "
                "(the target kept its command window closed)"
            )
            self._finish(task)

    def _aborting(self, task: ScsiTask) -> bool:
        """Whether a task management request already in flight covers ``task``."""
        for request in self._others.values():
            if not isinstance(request, TmfTask):
                continue
            function = request.function
            if function in (TmfFunction.TARGET_WARM_RESET, TmfFunction.TARGET_COLD_RESET):
                return True
            if request.referenced is task:
                return True
            if function != TmfFunction.ABORT_TASK and request.lun == task.lun:
                return True
        return False

    def _tmf_timed_out(self, tmf: TmfTask) -> None:
        del self._others[tmf.itt]
        if tmf.escalates:
            self._escalate(tmf, "timed out", registered=False)
            return
        name = tmf.function.name.replace("_", " ")
        tmf.error = TaskManagementError(f"{name} timed out")
        self._finish(tmf)

    def _escalate(self, tmf: TmfTask, why: str, *, registered: bool = True) -> None:
        """The connection's own recovery, as the kernel's SCSI error handler does it:
        abort → LUN reset → target reset → drop the connection.  ``tmf`` failed (timed
        out, or the target refused it); send the next step."""
        if registered:
            self._others.pop(tmf.itt, None)
        name = tmf.function.name.replace("_", " ")
        tmf.error = TaskManagementError(f"{name} {why}", response=tmf.response)
        self._finish(tmf)
        following = _TMF_RULES.get(tmf.function, _OTHER_TMF).escalates_to
        if following is None:
            raise PduTimeoutError(f"{name} {why}; giving up on the connection")
        lun = tmf.lun if _TMF_RULES[following].ends == "lun" else 0
        step = TmfTask(following, lun=lun)
        step.escalates = True
        self._send_tmf(step)


def _tmf_answer(response: int) -> str:
    try:
        return TmfResponse(response).name.lower().replace("_", " ")
    except ValueError:
        return f"response {response}"


def _tmf_timeout(function: TmfFunction, t: Timers) -> float:
    return float(getattr(t, _TMF_RULES.get(function, _OTHER_TMF).timeout))


@dataclass(frozen=True, slots=True)
class _TmfRule:
    """What the connection does around one task management function."""

    #: Which outstanding commands a successful answer ends: the referenced one, those of
    #: the request's LUN, all of them, or none (RFC 7143 §11.5.1, §11.6.1).
    ends: Literal["task", "lun", "target", "none"]
    #: The :class:`Timers` field that bounds the wait for its response.
    timeout: str
    #: The next step when it fails in the connection's own error handling (refused or
    #: timed out); None: drop the connection.
    escalates_to: TmfFunction | None


#: Task management escalation as the kernel's SCSI error handler does it (abort → LUN
#: reset → target reset → drop the connection), with open-iscsi's timeouts per step.
_TMF_RULES: Final[dict[TmfFunction, _TmfRule]] = {
    TmfFunction.ABORT_TASK: _TmfRule("task", "abort_timeout", TmfFunction.LOGICAL_UNIT_RESET),
    TmfFunction.ABORT_TASK_SET: _TmfRule("lun", "abort_timeout", TmfFunction.TARGET_WARM_RESET),
    TmfFunction.LOGICAL_UNIT_RESET: _TmfRule(
        "lun", "lu_reset_timeout", TmfFunction.TARGET_WARM_RESET
    ),
    TmfFunction.TARGET_WARM_RESET: _TmfRule("target", "tgt_reset_timeout", None),
    TmfFunction.TARGET_COLD_RESET: _TmfRule("target", "tgt_reset_timeout", None),
}
#: CLEAR ACA, CLEAR TASK SET, TASK REASSIGN: nothing ended here, never escalated.
_OTHER_TMF: Final = _TmfRule("none", "tgt_reset_timeout", None)

__all__: list[str] = []
