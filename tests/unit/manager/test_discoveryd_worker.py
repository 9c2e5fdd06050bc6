"""discoveryd's driver (iscsikit.daemon.discoveryd) over a fake runner and a fake
daemon: the real records store, schedule and state machine; the SendTargets runner
replaced so that each test says what a discovery returns or raises."""

from __future__ import annotations

import asyncio
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from iscsikit.config.iscsid_conf import IscsidConf
from iscsikit.daemon import discoveryd
from iscsikit.daemon.discoveryd import Discoveryd
from iscsikit.errors import IscsiErr, IscsiError
from iscsikit.manager.discoveryd import Schedule
from iscsikit.proto.sendtargets import DiscoveredTarget
from iscsikit.records.model import DiscoveryRecord, NodeRecord
from iscsikit.records.store import Records

T1 = DiscoveredTarget("iqn.2026-12.t:one", "127.0.0.1", 3260, 1)
T2 = DiscoveredTarget("iqn.2026-12.t:two", "127.0.0.1", 3260, 1)


@dataclass
class FakeInfo:
    sid: int
    target: str
    address: str
    port: int
    tpgt: int
    persistent_address: str
    persistent_port: int
    iface: str
    transport: str = "tcp"


@dataclass
class FakeDaemon:
    """What discoveryd uses of Daemon: records, conf, paths, manager, login, op_logout."""

    records: Records
    conf: IscsidConf
    paths: Any
    live: dict[int, FakeInfo] = field(default_factory=dict)
    logins: list[str] = field(default_factory=list)
    logouts: list[int] = field(default_factory=list)
    refuse: set[str] = field(default_factory=set)

    @property
    def manager(self) -> FakeDaemon:
        return self

    def info(self, sid: int) -> FakeInfo:
        return self.live[sid]

    def sessions(self) -> list[int]:
        return list(self.live)

    async def login(self, node: NodeRecord) -> None:
        self.logins.append(node.target)
        if node.target in self.refuse:
            raise IscsiError("login refused", code=IscsiErr.LOGIN_AUTH_FAILED)
        sid = max(self.live, default=0) + 1
        self.live[sid] = FakeInfo(sid, node.target, node.address, node.port, node.tpgt,
                                      node.address, node.port, node.iface)  # fmt: skip

    async def op_logout(self, args: dict[str, Any]) -> None:
        self.logouts.append(args["sid"])
        del self.live[args["sid"]]


class Runner:
    """The fake SendTargets runner: returns ``answers`` in turn (an exception raises)."""

    def __init__(self, *answers: list[DiscoveredTarget] | Exception) -> None:
        self.answers = list(answers)
        self.calls = 0
        self.active = 0
        self.most_at_once = 0
        self.gate = threading.Event()
        self.gate.set()
        self._lock = threading.Lock()

    def __call__(self, record: DiscoveryRecord, *, initiator_name: str | None = None) -> Any:
        with self._lock:
            self.active += 1
            self.most_at_once = max(self.most_at_once, self.active)
        try:
            self.gate.wait(5)
            answer = self.answers[min(self.calls, len(self.answers) - 1)]
            self.calls += 1
            if isinstance(answer, Exception):
                raise answer
            return answer
        finally:
            with self._lock:
                self.active -= 1


def make_daemon(tmp_path: Path, *, use: str = "Yes") -> FakeDaemon:
    records = Records.at(tmp_path / "db")
    record = DiscoveryRecord.new("sendtargets", "127.0.0.1", 3260)
    record.set("discovery.sendtargets.use_discoveryd", use)
    record.set("discovery.sendtargets.discoveryd_poll_inval", "1")
    records.add_discovery(record)

    class Paths:
        initiatorname_file = tmp_path / "initiatorname.iscsi"

    (tmp_path / "initiatorname.iscsi").write_text("InitiatorName=iqn.2026-12.t:ini\n")
    return FakeDaemon(records, IscsidConf.load(tmp_path / "none.conf"), Paths())


async def run_until(d: Discoveryd, done: Any, timeout: float = 5.0) -> None:
    d.start()
    for worker in d.workers:  # fast polls: the schedule is the policy's, 50 ms here
        worker.poller.schedule = Schedule(0.05)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    try:
        while not done():
            assert loop.time() < deadline, "condition not reached"
            await asyncio.sleep(0.01)
    finally:
        await d.stop()


def test_logs_in_new_and_out_of_vanished(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    daemon = make_daemon(tmp_path)
    runner = Runner([T1], [T1, T2], [T2])
    monkeypatch.setattr(discoveryd, "send_targets", runner)
    d = Discoveryd(daemon)  # type: ignore[arg-type]
    asyncio.run(run_until(d, lambda: runner.calls >= 4))
    assert daemon.logins == [T1.name, T2.name]  # each once: later polls see the session
    assert daemon.logouts == [1]
    assert [s.target for s in daemon.live.values()] == [T2.name]
    assert daemon.records.node_ids() == []  # nothing written


def test_errors_are_retried_and_never_end_the_worker(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    daemon = make_daemon(tmp_path)
    daemon.refuse.add(T1.name)
    runner = Runner(IscsiError("no route", code=IscsiErr.TRANS), RuntimeError("bug"), [T1])
    monkeypatch.setattr(discoveryd, "send_targets", runner)
    d = Discoveryd(daemon)  # type: ignore[arg-type]
    asyncio.run(run_until(d, lambda: len(daemon.logins) >= 2))
    assert runner.calls >= 4 and daemon.live == {}  # failed logins tried again


def test_never_two_runs_of_one_record(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    daemon = make_daemon(tmp_path)
    runner = Runner([T1])
    runner.gate.clear()  # the first discovery hangs until released
    monkeypatch.setattr(discoveryd, "send_targets", runner)
    d = Discoveryd(daemon)  # type: ignore[arg-type]

    async def scenario() -> None:
        d.start()
        worker = d.workers[0]
        worker.poller.schedule = Schedule(0.01)
        await asyncio.sleep(0.2)
        for _ in range(5):
            worker.notify()  # SCN-like wake-ups while the discovery is in flight
        await asyncio.sleep(0.2)
        assert runner.active == 1
        runner.gate.set()
        await asyncio.sleep(0.3)
        await d.stop()

    asyncio.run(scenario())
    assert runner.most_at_once == 1 and runner.calls >= 2


def test_records_without_use_discoveryd_are_left_alone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    daemon = make_daemon(tmp_path, use="No")
    monkeypatch.setattr(discoveryd, "send_targets", Runner([T1]))
    d = Discoveryd(daemon)  # type: ignore[arg-type]
    d.start()
    assert d.workers == []
