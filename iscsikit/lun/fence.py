"""When a command that failed on one path may be issued again on another (no I/O).

A command whose path failed under it for a transport reason may still be at the target:
received and queued in its backend, or still in the network.  The target can carry it
out *late*, after a copy re-issued on another path was acknowledged and after the
application wrote newer data to the same blocks: the newer data would be silently lost.

So a multipath LUN re-issues at once only commands that change nothing
(:func:`reissue_at_once`: READ, INQUIRY, READ CAPACITY, ..., SYNCHRONIZE CACHE, whose late
execution is harmless); everything else - writes, UNMAP, WRITE SAME, COMPARE AND WRITE,
reservations, any opcode not known to be harmless - waits until the failed path is
*fenced* (:class:`Fence`):

* its session logged in again as the same session: same ISID, TSIH 0 - session
  reinstatement, after which the target has terminated every task of the old session
  and closed its connections (RFC 7143 §6.3.5; for ERL 0 the old session's tasks are
  aborted before the new login is answered), so nothing of it can run late any more; or
* ``fence_timeout`` seconds passed since the failure: the bound, for a path that does
  not come back.  This one is a bet on time, not a proof: a command still queued in the
  target (or a network) longer than that can still run late.

No I/O: times are passed in, session marks read from the session objects.
"""

from __future__ import annotations

from dataclasses import dataclass

from iscsikit.manager.policy import State
from iscsikit.manager.shell import SessionShell

__all__ = [
    "FENCE_TIMEOUT",
    "READ_ONLY_OPCODES",
    "Fence",
    "SessionMark",
    "failure_mark",
    "mark_of",
    "reissue_at_once",
]

#: Seconds after a path failed before a write it interrupted may be re-issued elsewhere
#: when its session does not log in again (see docs/multipath.md for the choice).
FENCE_TIMEOUT = 10.0

#: Opcodes that change nothing on the LU, or whose late execution is harmless.
READ_ONLY_OPCODES = frozenset(
    {
        0x00,  # TEST UNIT READY
        0x03,  # REQUEST SENSE
        0x08,  # READ(6)
        0x12,  # INQUIRY
        0x1A,  # MODE SENSE(6)
        0x1C,  # RECEIVE DIAGNOSTIC RESULTS
        0x25,  # READ CAPACITY(10)
        0x28,  # READ(10)
        0x2F,  # VERIFY(10)
        0x34,  # PRE-FETCH(10)
        0x35,  # SYNCHRONIZE CACHE(10)
        0x37,  # READ DEFECT DATA(10)
        0x3C,  # READ BUFFER(10)
        0x3E,  # READ LONG(10)
        0x4D,  # LOG SENSE
        0x5A,  # MODE SENSE(10)
        0x5E,  # PERSISTENT RESERVE IN
        0x88,  # READ(16)
        0x8F,  # VERIFY(16)
        0x90,  # PRE-FETCH(16)
        0x91,  # SYNCHRONIZE CACHE(16)
        0x9E,  # SERVICE ACTION IN(16): READ CAPACITY(16), GET LBA STATUS, ...
        0xA0,  # REPORT LUNS
        0xA2,  # SECURITY PROTOCOL IN
        0xA3,  # MAINTENANCE IN: REPORT TARGET PORT GROUPS, REPORT SUPPORTED OPCODES, ...
        0xA8,  # READ(12)
        0xAF,  # VERIFY(12)
        0xB7,  # READ DEFECT DATA(12)
    }
)

#: Service actions of VARIABLE LENGTH (0x7F) CDBs that change nothing: READ(32), VERIFY(32).
_READ_ONLY_32 = frozenset({0x0009, 0x000A})


def reissue_at_once(cdb: bytes | bytearray | memoryview) -> bool:
    """Whether ``cdb`` may be issued again on another path at once after its path failed
    (True only for commands known to change nothing)."""
    if not cdb:
        return False
    opcode = cdb[0]
    if opcode == 0x7F:
        return len(cdb) >= 10 and int.from_bytes(bytes(cdb[8:10]), "big") in _READ_ONLY_32
    return opcode in READ_ONLY_OPCODES


@dataclass(frozen=True, slots=True)
class SessionMark:
    """What a path's session says about its logins: how many times it logged in again
    after a failure, with which ISID, offering which TSIH (0: a new session, so a login
    with an existing ISID reinstates it)."""

    logins: int
    isid: bytes
    tsih_offered: int
    logged_in: bool
    #: The session never sends a command on a second connection: with
    #: ``replacement_timeout`` 0 a command its connection dropped fails at once.
    single_connection: bool = False


def mark_of(session: object) -> SessionMark | None:
    """The mark of a managed session now (None: a session the manager does not own,
    which proves nothing): its recoveries, whether it is logged in, and the ISID its
    current connection's login used as the transport reports it (the ISID it will log
    in with, while it is down)."""
    if not isinstance(session, SessionShell):
        return None
    inner = session.transport_session
    logged_in = session.policy.state is State.LOGGED_IN and inner is not None
    isid = bytes(inner.isid) if inner is not None and logged_in else session.settings.isid
    return SessionMark(
        session.policy.recoveries,
        isid,
        session.settings.config.tsih,
        logged_in,
        single_connection=session.policy.replacement_timeout <= 0,
    )


def failure_mark(before: SessionMark | None, after: SessionMark | None) -> SessionMark | None:
    """The mark a fence compares later logins with, from the marks taken when a call was
    issued (``before``) and when its failure was seen (``after``).

    A session that sends each command on one connection only (``single_connection``)
    sent it on the connection of ``before``: any later login is a reinstatement after
    that connection died (the session may well have logged in again before the failure
    reached the caller).  Otherwise the command may have been sent again on any
    connection up to ``after``'s, so only a login after that one counts.
    """
    if before is not None and after is not None and before.single_connection:
        return before
    return after


@dataclass(frozen=True, slots=True)
class Fence:
    """A command that failed on path ``path`` at ``since`` waits for that path's fence.

    ``mark`` is the path's session mark taken when the failure was seen (None: a path
    whose session cannot be watched; only the timeout clears it).
    """

    path: int
    since: float
    mark: SessionMark | None
    timeout: float

    @property
    def deadline(self) -> float:
        return self.since + self.timeout

    def reinstated(self, now_mark: SessionMark | None) -> bool:
        """Whether the path's session logged in again, after the failure, as the same
        session with TSIH 0 (a reinstatement: the target ended the old one's tasks)."""
        if self.mark is None or now_mark is None:
            return False
        return (
            now_mark.logged_in
            and now_mark.logins > self.mark.logins
            and now_mark.isid == self.mark.isid
            and now_mark.tsih_offered == 0
        )

    def cleared(self, now: float, now_mark: SessionMark | None) -> bool:
        """Whether the command may be issued again (on any path)."""
        return self.reinstated(now_mark) or now >= self.deadline
