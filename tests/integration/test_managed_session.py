"""The session manager against a scripted target: what a target asks for is done.

A target's Async logout request (AsyncEvent 1) is acted upon, not only surfaced: the
command in flight is finished, new commands wait, the session logs out, logs in again as
the same session (same ISID) after Time2Wait, and the waiting commands run there; none
is lost or answered twice.  A target that drops the connection with an Async "dropping
connection" event gets the same recovery.
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest

from iscsikit.manager.managed import ManagedSession
from iscsikit.manager.spec import session_settings
from iscsikit.proto.address import parse_portal
from iscsikit.proto.ffp import Timers
from iscsikit.proto.task import ScsiTask
from iscsikit.scsi import cdb as C
from iscsikit.testing.hostile import PeerClosed, ScriptedTarget
from iscsikit.testing.rawpdu import (
    ASYNC_CONNECTION_DROP,
    ASYNC_LOGOUT_REQUEST,
    LogoutRequest,
    ScsiCommand,
)
from iscsikit.testing.scripted import BLOCK, Peer, disk_bytes, logged_in

pytestmark = pytest.mark.integration

TARGET = "iqn.2024-01.test.iscsikit:scripted"
TIMERS = Timers(noop_out_interval=0, noop_out_timeout=0, command_timeout=5, tick=0.1)
COMMANDS = 20


def read_block(lba: int) -> ScsiTask:
    return ScsiTask(C.read10(lba, 1), lun=1, read_buffer=bytearray(BLOCK))


async def run_reads(portal: str) -> tuple[ManagedSession, list[ScsiTask]]:
    settings = session_settings(
        parse_portal(portal), TARGET, timers=TIMERS, retries=0, replacement_timeout=10,
        DefaultTime2Wait=0,
    )  # fmt: skip
    session = ManagedSession(settings, sid=1)
    await session.login()
    done = []
    for lba in range(COMMANDS):  # one at a time: the target sees exactly what is in flight
        task = await asyncio.wait_for(session.io.execute(read_block(lba)), 10)
        done.append(task)
    await asyncio.wait_for(session.logout(), 10)
    return session, done


def scripted(first: Any) -> tuple[Any, dict[str, Any]]:
    """Connection 1 runs ``first``; later connections serve honestly.  What happened
    is recorded in the returned dict."""
    seen: dict[str, Any] = {"isids": [], "commands": [], "logout_after_event": None}
    lock = threading.Lock()

    def behaviour(conn: Any) -> None:
        with lock:
            n = len(seen["isids"])

        def script(peer: Peer) -> None:
            with lock:
                seen["isids"].append(peer.isid)
            if n == 0:
                first(peer, seen)
            else:
                while True:
                    try:
                        cmd = peer.serve(until=lambda c: True)
                    except PeerClosed:
                        return
                    if cmd is None:
                        return
                    seen["commands"].append((n, int.from_bytes(cmd.cdb[2:6], "big")))
                    peer.answer(cmd)

        logged_in(script, time2wait=0)(conn)

    return behaviour, seen


def test_async_logout_request_drains_logs_out_and_comes_back() -> None:
    def first(peer: Peer, seen: dict[str, Any]) -> None:
        for _ in range(5):
            cmd = peer.command()
            seen["commands"].append((0, int.from_bytes(cmd.cdb[2:6], "big")))
            peer.answer(cmd)
        cmd = peer.command()  # in flight when the target asks for the logout
        peer.send(peer.async_message(ASYNC_LOGOUT_REQUEST, parameter3=5))
        seen["commands"].append((0, int.from_bytes(cmd.cdb[2:6], "big")))
        peer.answer(cmd)
        pdu = peer.recv()  # nothing new may come before the Logout
        seen["logout_after_event"] = isinstance(pdu, LogoutRequest)
        if isinstance(pdu, LogoutRequest):
            peer.send(peer.logout_response(pdu.itt))

    behaviour, seen = scripted(first)
    with ScriptedTarget(behaviour) as target:
        session, done = asyncio.run(run_reads(target.portal))
    assert seen["logout_after_event"] is True
    assert len(seen["isids"]) == 2 and seen["isids"][0] == seen["isids"][1]  # reinstated
    # Every command ran exactly once (the drained one was not re-issued), in order.
    assert [lba for _, lba in seen["commands"]] == list(range(COMMANDS))
    assert all(n == 0 for n, lba in seen["commands"] if lba < 6)
    assert all(n == 1 for n, lba in seen["commands"] if lba >= 6)
    for lba, task in enumerate(done):
        assert task.good and bytes(task.read_view or b"") == disk_bytes(lba * BLOCK, BLOCK)
    assert session.policy.recoveries == 1


def test_dropping_connection_event_recovers_and_reissues() -> None:
    def first(peer: Peer, seen: dict[str, Any]) -> None:
        for _ in range(3):
            cmd = peer.command()
            seen["commands"].append((0, int.from_bytes(cmd.cdb[2:6], "big")))
            peer.answer(cmd)
        cmd = peer.command()  # never answered on this connection: it must come again
        assert isinstance(cmd, ScsiCommand)
        peer.send(peer.async_message(ASYNC_CONNECTION_DROP, parameter2=0, parameter3=0))
        peer.conn.close()

    behaviour, seen = scripted(first)
    with ScriptedTarget(behaviour) as target:
        session, done = asyncio.run(run_reads(target.portal))
    lbas = [lba for _, lba in seen["commands"]]
    assert lbas == list(range(COMMANDS))  # LBA 3 answered once, on the new connection
    assert seen["isids"][0] == seen["isids"][1]
    assert all(t.good for t in done)
    assert session.io.reissued == 1 and session.policy.recoveries == 1
