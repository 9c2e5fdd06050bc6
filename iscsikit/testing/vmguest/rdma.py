"""Soft-RoCE inside the VM tier's guest: an RDMA fabric for iser with no RDMA hardware.

:class:`SoftRoce` makes a veth pair, gives each end a 10.99.x address and puts a
soft-RoCE device (``rdma_rxe``) on each (``rdma link add rxeN type rxe netdev vethN``),
then waits until ``rdma link show`` reports both ACTIVE -- the recipe of
/work/shared/reference/peers.md §8, verified there with open-iscsi and LIO's isert.
The target listens on :attr:`SoftRoce.target_address`; the initiator's RDMA CM picks the
other end.  :meth:`SoftRoce.close` deletes the RDMA links and the veth pair.

Why not loopback: RDMA CM cannot resolve a route over 127.x
(``iser_addr_handler: resolve route failed: -19``).  The guest has no NIC (qemu
``-nic none``), so nothing made here reaches outside it.  It loads kernel modules and
changes the network, so it belongs in a throw-away guest (docs/vm-tier.md), never on a
host.  No pytest dependency.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from types import TracebackType
from typing import Self

__all__ = ["ISER_MODULES", "RdmaError", "SoftRoce", "rdma_missing"]

#: The soft-RoCE driver and both iSER ends (initiator ib_iser, LIO's ib_isert).  Loaded
#: by hand: the guest's busybox modprobe has no modules.alias to autoload them.
ISER_MODULES = ("rdma_rxe", "ib_iser", "ib_isert")

_TIMEOUT = 60.0


class RdmaError(RuntimeError):
    """The soft-RoCE fabric could not be made (the message says which step failed)."""


def rdma_missing() -> str | None:
    """Why soft-RoCE cannot be set up here, or None (iproute2's ``rdma`` and ``ip``)."""
    for tool in ("rdma", "ip"):
        if shutil.which(tool) is None:
            return f"{tool} (iproute2) is not installed"
    return None


def _run(*argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(argv, capture_output=True, text=True, timeout=_TIMEOUT, check=False)
    if check and done.returncode != 0:
        raise RdmaError(f"{' '.join(argv)}: {(done.stderr or done.stdout).strip()}")
    return done


class SoftRoce:
    """A veth pair with a soft-RoCE device on each end (``prefix``0/1, ``rxe_prefix``0/1).

    ``target_address`` goes on end 0, ``initiator_address`` on end 1 (a /24).  Use as a
    context manager or call :meth:`close`.
    """

    def __init__(
        self,
        *,
        target_address: str = "10.99.0.1",
        initiator_address: str = "10.99.0.2",
        prefix: str = "iskveth",
        rxe_prefix: str = "iskrxe",
    ) -> None:
        missing = rdma_missing()
        if missing:
            raise RdmaError(missing)
        self.target_address = target_address
        self.initiator_address = initiator_address
        self.netdevs = (f"{prefix}0", f"{prefix}1")
        self.rdma_links = (f"{rxe_prefix}0", f"{rxe_prefix}1")
        self._made: list[tuple[str, ...]] = []  # undo commands, newest last
        try:
            self._set_up()
        except BaseException:
            self.close()
            raise

    def _set_up(self) -> None:
        for module in ISER_MODULES:
            _run("modprobe", module)
        veth0, veth1 = self.netdevs
        _run("ip", "link", "add", veth0, "type", "veth", "peer", "name", veth1)
        self._made.append(("ip", "link", "del", veth0))
        addresses = (self.target_address, self.initiator_address)
        for dev, address in zip(self.netdevs, addresses, strict=True):
            _run("ip", "addr", "add", f"{address}/24", "dev", dev)
            _run("ip", "link", "set", dev, "up")
        for link, dev in zip(self.rdma_links, self.netdevs, strict=True):
            _run("rdma", "link", "add", link, "type", "rxe", "netdev", dev)
            self._made.append(("rdma", "link", "delete", link))
        deadline = time.monotonic() + _TIMEOUT
        while not self.active():
            if time.monotonic() > deadline:
                shown = _run("rdma", "link", "show", check=False).stdout
                raise RdmaError(f"soft-RoCE links not ACTIVE after {_TIMEOUT:.0f} s:\n{shown}")
            time.sleep(0.2)

    def active(self) -> bool:
        """Both RDMA links report ``state ACTIVE`` (``rdma link show``)."""
        shown = _run("rdma", "link", "show", check=False).stdout.splitlines()
        return all(
            any(line.startswith(f"link {link}/") and "state ACTIVE" in line for line in shown)
            for link in self.rdma_links
        )

    def close(self) -> None:
        """Delete the RDMA links, then the veth pair (both ends go together); idempotent."""
        while self._made:
            _run(*self._made.pop(), check=False)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
