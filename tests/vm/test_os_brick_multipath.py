"""OpenStack os-brick's ``ISCSIConnector`` with ``use_multipath=True`` (issue 13, item 3;
peers.md §8): one tgtd target on two portals (127.0.0.1 and 127.0.0.2, one port),
Cinder's ``target_portals`` / ``target_iqns`` / ``target_luns``, multipathd running.

Each client -- open-iscsi's iscsiadm with iscsid (the reference), then ``iscsikit-adm``
as the ``iscsiadm`` on os-brick's ``PATH`` with iscsikitd -- must: ``connect_volume``
logs in on both portals and returns the dm-multipath device, whose two paths are the
two sessions' disks; 1 MiB written to it with ``O_DIRECT`` is read back and found in
tgtd's backing file; ``disconnect_volume`` flushes the map and logs both sessions out,
leaving no session, sd disk, map or node record; and os-brick ran the same ``iscsiadm``
commands with both and got the same exit codes.  Every call goes through the logging
shim (printed).  multipathd runs here: the file is in conftest's RUN_LAST.

A map still open when os-brick flushes it fails the disconnect ("map in use"); the
failure message names who holds it (``map_users``).  Every tgtd gives tid 1 LUN 1 the
same WWID, so a map an earlier test left behind would take this volume's disks: the
test first requires that no map exists.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from iscsikit.sysfs import IscsiSession, SysfsContext
from iscsikit.testing.plugin import require_tgt
from iscsikit.testing.tgtd import Tgtd
from iscsikit.testing.vmguest.checks import WAIT, kernel_initiator, wait_for
from iscsikit.testing.vmguest.multipath import Multipathd, map_users, settle
from iscsikit.testing.vmguest.osbrick import (
    BrickClient,
    IscsiadmCall,
    brick_client,
    iscsi_connector,
    multipath_connection_properties,
    read_direct,
    write_direct,
)

pytest.importorskip("os_brick", reason="os-brick not installed (tox -e vm installs it)")

IQN = "iqn.2024-01.test.iscsikit.vm:brick-mpath"
INITIATOR = "iqn.2024-01.test.iscsikit.vm:brick-mpath-initiator"
HOSTS = ("127.0.0.1", "127.0.0.2")
LUN = 1


@dataclass(frozen=True)
class Target:
    tgtd: Tgtd
    tid: int
    multipathd: Multipathd

    @property
    def portals(self) -> list[str]:
        return [f"{host}:{self.tgtd.port}" for host in HOSTS]


#: client -> what os-brick ran in its case, for the comparison with the reference.
_RAN: dict[str, list[tuple[tuple[str, ...], int | None]]] = {}


def _ran(calls: list[IscsiadmCall]) -> list[tuple[tuple[str, ...], int | None]]:
    """The commands os-brick ran and their exit codes, sorted: its connect threads (one a
    portal) interleave differently from run to run.  ``-m session``'s code is left out:
    whether it saw the other thread's session yet (0) or none (21) is timing."""
    return sorted((c.argv, None if c.argv == ("-m", "session") else c.rc) for c in calls)


def _sessions() -> list[IscsiSession]:
    return [s for s in SysfsContext().sessions() if s.targetname == IQN]


def _disks() -> list[str]:
    return sorted(d.path.name for s in _sessions() for d in s.block_devices())


@pytest.fixture(scope="module")
def target(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Target]:
    kernel_initiator(INITIATOR)
    require_tgt()
    if shutil.which("multipathd") is None:
        pytest.fail("multipathd missing: .ci/vm-deps installs multipath-tools on the host")
    work = tmp_path_factory.mktemp("brick-mpath")
    with Tgtd(work / "tgtd", host=HOSTS[0], start_timeout=WAIT) as tgtd:
        tgtd.add_portal(HOSTS[1], tgtd.port)
        tid = tgtd.add_target(IQN, luns=1, lun_size=32 << 20)
        with Multipathd(work / "multipathd.log") as multipathd:
            try:
                yield Target(tgtd, tid, multipathd)
            finally:
                print(f"multipathd log (end):\n{multipathd.log[-6000:]}")


@pytest.fixture(scope="module")
def connector(tmp_path_factory: pytest.TempPathFactory) -> Any:
    return iscsi_connector(tmp_path_factory.mktemp("brick-mpath-locks"), use_multipath=True)


@pytest.fixture(scope="module", params=["open-iscsi", "iscsikit"])
def client(
    request: pytest.FixtureRequest, target: Target, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[BrickClient]:
    with brick_client(request.param, tmp_path_factory.mktemp(f"brick-{request.param}")) as c:
        yield c


def test_multipath_connect_write_disconnect(
    target: Target, client: BrickClient, connector: Any
) -> None:
    # Every tgtd gives tid 1 LUN 1 the same WWID: a map an earlier test left (held open)
    # would take this volume's disks as its paths and could not be flushed.
    left = target.multipathd.maps()
    assert not left, f"multipath maps left: {left}: {[map_users(dm) for dm in left.values()]}"
    props = multipath_connection_properties(target.portals, IQN, LUN)
    first = len(client.shim.calls())
    device: dict[str, str] | None = None
    try:
        device = connector.connect_volume(props)
        assert device is not None
        assert device["type"] == "block"
        dm = Path(device["path"]).resolve().name
        assert dm.startswith("dm-"), device
        sessions = _sessions()
        assert len(sessions) == 2 and all(s.state == "LOGGED_IN" for s in sessions)
        # os-brick returns the map once it exists; the second path may join it later.
        slaves = Path("/sys/block", dm, "slaves")
        wait_for(f"two paths under {dm}", lambda: len(list(slaves.iterdir())) == 2)
        disks = _disks()
        assert sorted(p.name for p in slaves.iterdir()) == disks
        assert list(target.multipathd.maps().values()) == [dm]

        data = os.urandom(1 << 20)
        offset = 3 << 20
        write_direct(f"/dev/{dm}", offset, data)
        assert read_direct(f"/dev/{dm}", offset, len(data)) == data
        with target.tgtd.backing_path(target.tid, LUN).open("rb") as f:
            f.seek(offset)
            assert f.read(len(data)) == data

        settle(0.5)
        try:
            connector.disconnect_volume(props, device)
        except Exception:
            print(f"[{client.name}] disconnect failed:", *map_users(dm), sep="\n  ")
            raise
        device = None
        wait_for("both sessions to go", lambda: _sessions() == [])
        gone = [Path("/dev", name) for name in (dm, *disks)]
        wait_for(f"{gone} to go", lambda: not any(p.exists() for p in gone))
        wait_for("no multipath map", lambda: target.multipathd.maps() == {})
        # os-brick deleted the node records it made.
        for portal in target.portals:
            assert client.iscsiadm("-m", "node", "-T", IQN, "-p", portal).returncode == 21
        # The reference ran first: os-brick must have run the same commands with both
        # and been answered with the same exit codes.
        _RAN[client.name] = _ran(client.shim.calls()[first:])
        reference = _RAN.get("open-iscsi")
        if client.name != "open-iscsi" and reference is not None:
            assert _RAN[client.name] == reference
    finally:
        print(f"iscsiadm calls by os-brick ({client.name}):")
        for call in client.shim.calls()[first:]:
            print(f"  {call}")
            if call.rc != 0 or call.stderr:
                print(f"      stderr: {call.stderr.strip()!r}")
        if device is not None or _sessions():
            connector.disconnect_volume(props, device or {}, force=True, ignore_errors=True)
