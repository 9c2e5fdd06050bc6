"""The kit's targets without tgtd: iscsikit's in-process fake target on a loopback port.

:class:`SimulatedKitTarget` serves the same two targets as the tgtd one (open, and
one-way CHAP) with :class:`~iscsikit.testing.faketarget.FakeTarget` (login with the
target role of the protocol core, CHAP, SendTargets, NOP-In, Logout) behind a
:class:`~iscsikit.testing.hostile.ScriptedTarget` listener.  It answers no SCSI
command, so a driver that declares :attr:`~iscsikit.plugin.Capability.DATA` needs tgtd;
one whose data path is elsewhere (the kernel, an HBA) or absent runs the whole kit here,
with no tgt installed.  It is a peer of the initiator code, not a model of any driver.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from types import TracebackType
from typing import Self

from iscsikit.proto.address import Portal, format_portal
from iscsikit.proto.login import ChapSecrets
from iscsikit.proto.pdu import LoginRequest, decode_pdu
from iscsikit.proto.text import decode_text
from iscsikit.testing.faketarget import FakeTarget, FakeTargetConfig, serve
from iscsikit.testing.hostile import BHS_LEN, ScriptedTarget, pdu_length

from .target import KIT_IQN, KitTarget

__all__ = ["SimulatedKitTarget"]

#: How long a served connection may stay idle before the fake target hangs up.
_IDLE = 120.0


class SimulatedKitTarget(KitTarget):
    """The kit's targets served in-process; a context manager (or call :meth:`close`)."""

    def __init__(self, host: str = "127.0.0.1") -> None:
        self.open_target = f"{KIT_IQN}:open"
        self.chap_target = f"{KIT_IQN}:chap"
        self.chap = ChapSecrets("kituser", "kitsecret1234")
        self.tpgt = 1
        self._lock = threading.Lock()
        #: Live connections: socket -> (target name, "" for discovery; initiator address).
        self._live: dict[socket.socket, tuple[str, str]] = {}
        self._server = ScriptedTarget(self._serve, host).start()
        self.portal = Portal(host, self._server.port)

    def close(self) -> None:
        self._server.stop()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- KitTarget ------------------------------------------------------------------------

    def connections(self, target: str) -> list[str]:
        with self._lock:
            return [address for name, address in self._live.values() if name == target]

    def drop(self, target: str) -> int:
        with self._lock:
            socks = [sock for sock, (name, _) in self._live.items() if name == target]
        for sock in socks:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)  # the initiator reads EOF
        return len(socks)

    # -- serving --------------------------------------------------------------------------

    def _config(self, target_name: str) -> FakeTargetConfig:
        address = [f"{format_portal(self.portal.host, self.portal.port)},{self.tpgt}"]
        chap = target_name == self.chap_target
        return FakeTargetConfig(
            targets={self.open_target: address, self.chap_target: address},
            accounts={self.chap.username: str(self.chap.password)} if chap else None,
            tpgt=self.tpgt,
        )

    def _serve(self, conn: socket.socket) -> None:
        """One connection: peek at the first Login Request for the target it names
        (which decides whether CHAP is required), then let the fake target answer."""
        conn.settimeout(_IDLE)
        name = _first_target_name(conn)
        with self._lock:
            self._live[conn] = (name, conn.getpeername()[0])
        try:
            serve(FakeTarget(self._config(name)), conn, timeout=_IDLE)
        except OSError:
            pass  # dropped (drop(), or the initiator reset the connection)
        finally:
            with self._lock:
                self._live.pop(conn, None)


def _first_target_name(conn: socket.socket) -> str:
    """The TargetName of the first PDU, left unread in the socket ("" if none)."""
    deadline = time.monotonic() + _IDLE
    have = b""
    while len(have) < BHS_LEN or len(have) < pdu_length(have[:BHS_LEN]):
        more = conn.recv(65536, socket.MSG_PEEK)
        if not more:
            return ""  # closed before a whole PDU
        if len(more) == len(have):  # the rest is still on its way
            if time.monotonic() > deadline:
                return ""
            time.sleep(0.01)
        have = more
    pdu = decode_pdu(have[: pdu_length(have[:BHS_LEN])])
    if not isinstance(pdu, LoginRequest):
        return ""
    return dict(decode_text(pdu.data)).get("TargetName", "")
