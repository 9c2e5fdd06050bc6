"""TCP transport plumbing: what a driver that connects TCP itself reuses.

A driver that reaches its target over a TCP socket it opens in userspace (``usertcp``,
which keeps the socket for its Python data path; a kernel ``iscsi_tcp`` driver, which
logs in here and then hands the socket's fd to the kernel) needs the same few steps,
each bounded by a deadline and failing with iscsiadm's error codes:

- :class:`Deadline` / :func:`deadline_after`: one monotonic instant bounding a whole
  exchange.
- :class:`PduConnection`: connect (IPv4, IPv6 ``%zone``, host names; optionally bound to
  a source address or a network device), send and receive
  whole PDUs with the negotiated digests; :meth:`PduConnection.take_buffered` and
  :meth:`PduConnection.detach` hand the stream over to whatever reads it next.
- :func:`run_login`: connect and run the :mod:`iscsikit.proto` login machine
  (``spec.timeouts.login``); returns the connection in Full Feature Phase with the
  negotiated digests and MaxRecvDataSegmentLength applied (:func:`enter_full_feature`)
  and the :class:`~iscsikit.proto.login.LoginAccepted` event, or the
  :class:`~iscsikit.proto.login.TargetRedirected` event.  :func:`session_state` gives the
  sequence numbers the login left.  :func:`log_in` is the same login over a connection
  the driver opened itself (``PduConnection.connect`` binds to an iface's source address
  or device on request).
- :func:`recv_answering_nops`, :func:`ping`, :func:`logout`: Full Feature Phase control
  exchanges on a connection without a data path.
- :func:`sendtargets` (over a logged-in connection) and :func:`discover_sendtargets`
  (a whole Discovery session: connect, log in, ask, log out).

Layer 4: imports :mod:`iscsikit.errors`, :mod:`iscsikit.proto` and
:mod:`iscsikit.plugin` only.  It makes no policy decisions (redirects, retries, records
belong to the session manager) and starts no threads or event loops.
"""

from __future__ import annotations

from iscsikit.net.connection import Deadline, PduConnection, deadline_after, resolve
from iscsikit.net.control import logout, ping, recv_answering_nops
from iscsikit.net.login import enter_full_feature, log_in, run_login, session_state
from iscsikit.net.sendtargets import discover_sendtargets, sendtargets

__all__ = [
    "Deadline",
    "PduConnection",
    "deadline_after",
    "discover_sendtargets",
    "enter_full_feature",
    "log_in",
    "logout",
    "ping",
    "recv_answering_nops",
    "resolve",
    "run_login",
    "sendtargets",
    "session_state",
]
