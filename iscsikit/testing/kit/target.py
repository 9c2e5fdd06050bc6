"""The targets the conformance suite logs in to: what the kit needs of a peer.

:class:`KitTarget` is the interface: a portal exporting an open target and a CHAP
target, and two operations on the peer's side (list a target's live connections, drop
them as a network failure would).  :class:`TgtdKitTarget` implements it over a private
tgtd (:class:`~iscsikit.testing.tgtd.Tgtd`); a driver whose hardware cannot reach tgtd
(an offload HBA tested against a simulated host) implements the same five members over
its simulator.  Nothing here knows about any driver.
"""

from __future__ import annotations

import abc
import time
from collections.abc import Callable
from dataclasses import dataclass

from iscsikit.proto.address import Portal, parse_portal
from iscsikit.proto.login import ChapSecrets
from iscsikit.testing.tgtd import Tgtd

__all__ = ["KIT_IQN", "KitTarget", "TgtdKitTarget", "wait_for"]

#: The IQN prefix of everything the kit names (targets, the initiator).
KIT_IQN = "iqn.2024-01.test.iscsikit.kit"


class KitTarget(abc.ABC):
    """A peer for the conformance suite (see the module docstring)."""

    #: Where the targets listen.
    portal: Portal
    #: A target any initiator may log in to without authentication (LUN 1 exists).
    open_target: str
    #: A target that demands one-way CHAP with :attr:`chap`.
    chap_target: str
    #: The credentials :attr:`chap_target` accepts.
    chap: ChapSecrets
    #: The portal group tag both targets answer with.
    tpgt: int

    @abc.abstractmethod
    def connections(self, target: str) -> list[str]:
        """The initiator addresses of ``target``'s live connections, as the peer sees them."""

    @abc.abstractmethod
    def drop(self, target: str) -> int:
        """Kill every connection of ``target`` as a network failure would; how many."""


def wait_for(condition: Callable[[], object], timeout: float = 5.0, interval: float = 0.05) -> bool:
    """Poll ``condition()`` until it is true or ``timeout`` seconds passed; its last value."""
    deadline = time.monotonic() + timeout
    while True:
        if condition():
            return True
        if time.monotonic() >= deadline:
            return bool(condition())
        time.sleep(interval)


@dataclass
class TgtdKitTarget(KitTarget):
    """The kit's targets on a private tgtd: tid 1 open, tid 2 behind one-way CHAP (MD5:
    tgt 1.0.85 speaks no other CHAP algorithm)."""

    tgtd: Tgtd
    portal: Portal
    open_target: str
    chap_target: str
    chap: ChapSecrets
    tpgt: int = 1

    @classmethod
    def on(cls, tgtd: Tgtd) -> TgtdKitTarget:
        """Configure a fresh ``tgtd`` with the kit's two targets."""
        open_target = f"{KIT_IQN}:open"
        chap_target = f"{KIT_IQN}:chap"
        tgtd.add_target(open_target, tid=1, luns=1)
        tgtd.add_target(chap_target, tid=2, luns=1)
        chap = ChapSecrets("kituser", "kitsecret1234")
        tgtd.add_account(chap.username, str(chap.password))
        tgtd.bind_account(chap.username, tid=2)
        return cls(tgtd, parse_portal(tgtd.portal), open_target, chap_target, chap)

    def _tid(self, target: str) -> int:
        return {self.open_target: 1, self.chap_target: 2}[target]

    def connections(self, target: str) -> list[str]:
        return [conn.address for conn in self.tgtd.sessions(self._tid(target))]

    def drop(self, target: str) -> int:
        return self.tgtd.drop_connections(self._tid(target))
