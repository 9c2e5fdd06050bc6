"""The Full Feature Phase of one iSCSI connection, as a sans-I/O state machine.

:class:`FullFeatureConnection` carries SCSI commands and their data between a caller
and a target once login is over (RFC 7143 §4.2, ERL 0, one connection per session).
It owns CmdSN / ExpStatSN bookkeeping, the command window and queue depth, Data-In
placement, R2T answering, immediate and unsolicited data, NOP keepalive, task
management and the target's asynchronous messages.

It performs no I/O and reads no clock, in the BufferedProtocol style:

* :meth:`get_buffer` hands out the memory the next received bytes must go to and
  :meth:`buffer_updated` says how many arrived.  Normally that is a 256 KiB scratch
  buffer, so one receive can bring many PDUs (a QD32 4 KiB workload completes ~30
  commands per ``recv_into``); whatever part of a Data-In payload is already there is
  copied to the caller's buffer, and the rest of an incomplete payload is received
  *directly* into the caller's buffer (no copy).  While large payloads flow, the scratch
  window shrinks to 4 KiB so that they mostly take the direct route;
* :meth:`data_to_send` returns the buffers to write, a gather list (write data is
  never copied either);
* :meth:`handle_timer` takes the current time; :meth:`get_timer` says when to call it
  next; keepalive pings, command timeouts and task management escalation hang off it.

Requests (:mod:`iscsikit.proto.task`) complete by setting ``done`` and calling their
callback.  Whatever breaks the connection - a protocol violation by the target, a bad
digest, a keepalive timeout, the transport closing - fails every outstanding request
with :class:`~iscsikit.errors.ConnectionFailedError`, and the machine is finished: at
ERL 0 recovery means a new connection (that policy lives above this module).
Notifications that are not answers to a request are returned by :meth:`next_event`.

This module is the public entry: the machine is assembled here from one module per
concern, and every name callers use is importable from here.

* :mod:`.ffp_params` - :class:`ConnectionParams` and :class:`Timers`;
* :mod:`.ffp_events` - the events :meth:`next_event` returns;
* :mod:`.ffp_stats` - :class:`ConnectionStats`, the counters in :attr:`stats`;
* :mod:`.ffp_core` - the connection's state, the send list, failing;
* :mod:`.ffp_commands` - commands, Data-Out / R2T, completion and residuals;
* :mod:`.ffp_control` - pings, task management, logout, Reject, timers and escalation;
* :mod:`.ffp_renegotiation` - Async Messages and Text renegotiation;
* :mod:`.ffp_receive` - buffers, PDU parsing, Data-In placement, the opcode table.

An I/O layer needs only public names: :meth:`data_to_send` / :attr:`wants_write`,
:meth:`get_buffer` / :meth:`get_buffers` / :meth:`buffer_updated`,
:meth:`next_event` / :attr:`has_events`, :meth:`get_timer` / :meth:`handle_timer`,
:meth:`connection_lost`, and :class:`~iscsikit.proto.task.Request` for any request;
:attr:`stats` counts what crossed the connection (``iscsiadm -m session -s``).
"""

from __future__ import annotations

from iscsikit.proto.ffp_events import (
    AsyncEventReceived,
    ConnectionFailed,
    Event,
    LogoutRequested,
    ParametersRenegotiated,
)
from iscsikit.proto.ffp_params import ConnectionParams, Timers
from iscsikit.proto.ffp_receive import _Receiver
from iscsikit.proto.ffp_stats import STATS_FIELDS, ConnectionStats


class FullFeatureConnection(_Receiver):
    """One connection in Full Feature Phase (see the module docstring)."""


__all__ = [
    "AsyncEventReceived",
    "ConnectionFailed",
    "ConnectionParams",
    "ConnectionStats",
    "Event",
    "FullFeatureConnection",
    "LogoutRequested",
    "ParametersRenegotiated",
    "STATS_FIELDS",
    "Timers",
]
