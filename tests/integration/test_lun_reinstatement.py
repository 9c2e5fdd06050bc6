"""A single session's recovery reinstates the session at the target, so a write still
held in the network when the connection failed cannot run late over newer data.

``open_lun`` goes through a :class:`~iscsikit.testing.stallproxy.StallProxy` to tgtd.
Each round: ``OLD`` is written; the proxy HOLDS the session's bytes while a ``STALE``
write is sent (all immediate data: the held bytes are the whole command), then CUTS the
initiator's side (the upstream connection to tgtd stays open).  The session logs in
again and re-issues the write; the application writes ``NEWER`` to the same blocks;
then the proxy RELEASES the held bytes into the old connection.  Every block must hold
``NEWER``, and tgtd must show one session: the new login reinstated the old session
(RFC 7143 §6.3.5), which made tgtd close its connection, so the stale bytes go nowhere.
tgtd reinstates only on a login that starts at the security stage (open-iscsi always
sends it): a login straight to the operational stage left the old session and its held
write alive, and ``STALE`` won (found by the multipath fence tests).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

import iscsikit
from iscsikit.proto.ffp import Timers
from iscsikit.testing.stallproxy import StallProxy
from iscsikit.testing.tgtd import Tgtd

pytestmark = pytest.mark.integration

IQN = "iqn.2024-01.test.reinstate:t1"
SIZE = 4096
ROUNDS = 3
OPTIONS: dict[str, Any] = {
    "DefaultTime2Wait": 1,
    "timers": Timers(noop_out_interval=1, noop_out_timeout=1, command_timeout=3, tick=0.1),
    "timeout": 2,
    "retry_delay": 0.5,
}


@pytest.fixture(scope="module")
def tgtd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Tgtd]:
    with Tgtd(tmp_path_factory.mktemp("reinstate")) as tgtd:
        tgtd.add_target(IQN, tid=1, lun_size=16 << 20)
        yield tgtd


def _data(kind: str, round_: int) -> bytes:
    head = f"{kind}:{round_:04d}:".encode()
    return (head * (SIZE // len(head) + 1))[:SIZE]


def _wait(what: str, until: Any, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not until():
        assert time.monotonic() < deadline, f"timed out waiting: {what}"
        time.sleep(0.01)


def test_recovery_reinstates_and_a_late_stale_write_goes_nowhere(tgtd: Tgtd) -> None:
    blocks = bad = dropped = delivered = 0
    with (
        StallProxy(tgtd.portal) as proxy,
        iscsikit.open_lun(f"iscsi://{proxy.portal}/{IQN}/1", **OPTIONS) as lun,
    ):
        for round_ in range(ROUNDS):
            offset = (round_ + 1) << 20
            lun.write(offset, _data("OLD", round_))
            proxy.hold()
            errors: list[BaseException] = []

            def stale_write(
                at: int = offset, r: int = round_, errors: list[BaseException] = errors
            ) -> None:
                try:
                    lun.write(at, _data("STALE", r))
                except BaseException as exc:  # pragma: no cover - reported below
                    errors.append(exc)

            writer = threading.Thread(target=stale_write)
            writer.start()
            _wait("the write held", lambda: proxy.held() >= 48 + SIZE, 10)
            assert proxy.cut() >= 1
            writer.join(60)
            assert not writer.is_alive() and not errors, errors
            lun.write(offset, _data("NEWER", round_))
            sent, refused = proxy.release()
            delivered += sent
            dropped += refused
            time.sleep(1.0)  # whatever tgtd took of the stale bytes, it has done by now
            got = lun.read(offset, SIZE)
            newer = _data("NEWER", round_)
            for b in range(0, SIZE, 512):
                blocks += 1
                bad += got[b : b + 512] != newer[b : b + 512]
            assert bad == 0, f"round {round_}: the stale write ran late over NEWER"
            assert len(tgtd.sessions(1)) == 1, "the old session outlived the new login"
    print(
        f"\nsingle-session reinstatement: rounds {ROUNDS}, stale bytes delivered {delivered}"
        f" / refused by tgtd {dropped}, blocks verified {blocks}, lost/corrupted {bad}"
    )
    assert bad == 0
    assert delivered == 0 and dropped >= ROUNDS * SIZE
