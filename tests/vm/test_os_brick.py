"""OpenStack os-brick, a client no one here wrote, attaching volumes through the guest's
kernel with ``iscsiadm`` from ``PATH`` being open-iscsi's (the reference) or iscsikit-adm.

os-brick's ``ISCSIConnector`` is what Nova and Cinder use to attach an iSCSI volume: it
runs ``iscsiadm`` (node records, login, ``-m session`` parsed for the sid, logout,
delete), scans sysfs for the LUN's disk and returns it.  Each case: ``connect_volume``
against a tgtd in the guest (without and with CHAP), the returned disk and its
``/dev/disk/by-path`` link, 1 MiB written with ``O_DIRECT`` read back byte-exact and found
in tgtd's backing file, ``disconnect_volume``, then no session, disk, link or node record
left.  Every ``iscsiadm`` call goes through a logging shim (printed with the result).

* ``open-iscsi``: /usr/sbin/iscsiadm and a running iscsid.
* ``iscsikit``: ``iscsiadm`` runs ``iscsikit-adm``; iscsikitd owns the sessions (its kernel
  login path: the kernel's iscsi_tcp through drivers/kerneltcp); no iscsid runs.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from iscsikit.testing.daemon import RunningDaemon
from iscsikit.testing.plugin import require_tgt
from iscsikit.testing.tgtd import Tgtd
from iscsikit.testing.vmguest.checks import WAIT, assert_by_path_link, session_of, wait_for
from iscsikit.testing.vmguest.iscsid import iscsid_listening, iscsid_running
from iscsikit.testing.vmguest.osbrick import (
    ISCSIKIT_ADM,
    IscsiadmCall,
    IscsiadmShim,
    connection_properties,
    iscsi_connector,
    read_direct,
    write_direct,
)

pytest.importorskip("os_brick", reason="os-brick not installed (tox -e vm installs it)")

IQN = "iqn.2024-01.test.iscsikit.vm:brick"
IQN_CHAP = "iqn.2024-01.test.iscsikit.vm:brick-chap"
CHAP = ("brick-user", "brick-secret-1234")
LUN = 1


@dataclass(frozen=True)
class Target:
    tgtd: Tgtd
    tids: dict[str, int]  # IQN -> tid


@dataclass(frozen=True)
class Client:
    name: str
    real: tuple[str, ...]  # the iscsiadm behind the shim
    shim: IscsiadmShim

    def iscsiadm(self, *argv: str) -> subprocess.CompletedProcess[str]:
        """This client's ``iscsiadm``, bypassing the shim (not an os-brick call)."""
        return subprocess.run(
            [*self.real, *argv], capture_output=True, text=True, timeout=WAIT, check=False
        )


@pytest.fixture(scope="module")
def target(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Target]:
    # sd_mod by hand: the guest's busybox modprobe has no modules.alias to autoload it.
    for module in ("iscsi_tcp", "sd_mod"):
        subprocess.run(["modprobe", module], check=True, timeout=WAIT)
    require_tgt()
    with Tgtd(tmp_path_factory.mktemp("tgtd"), start_timeout=WAIT) as tgtd:
        tids = {iqn: tgtd.add_target(iqn, luns=1, lun_size=32 << 20) for iqn in (IQN, IQN_CHAP)}
        tgtd.add_account(*CHAP)
        tgtd.bind_account(CHAP[0], tid=tids[IQN_CHAP])
        yield Target(tgtd, tids)


@pytest.fixture(scope="module")
def connector(tmp_path_factory: pytest.TempPathFactory) -> Any:
    return iscsi_connector(tmp_path_factory.mktemp("brick-locks"))


@pytest.fixture(scope="module", params=["open-iscsi", "iscsikit"])
def client(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Client]:
    work = tmp_path_factory.mktemp(f"client-{request.param}")
    with pytest.MonkeyPatch.context() as mp:
        if request.param == "open-iscsi":
            found = shutil.which("iscsiadm")
            assert found is not None, "open-iscsi's iscsiadm is not installed"
            shim = IscsiadmShim(work / "bin", [found])
            mp.setenv("PATH", shim.path_env())
            with iscsid_running(work / "iscsid.log"):
                yield Client(request.param, (found,), shim)
        else:
            assert not iscsid_listening(), "iscsid runs: the sessions would not be iscsikit's"
            shim = IscsiadmShim(work / "bin", ISCSIKIT_ADM)
            mp.setenv("PATH", shim.path_env())
            # The machine's own root: kernel sessions live in the real /sys, records in
            # /etc/iscsi (the guest's root is a throw-away overlay).
            daemon = RunningDaemon(Path("/"))
            try:
                yield Client(request.param, ISCSIKIT_ADM, shim)
            finally:
                daemon.stop()
                log = daemon.log
                print(f"iscsikitd log (last 40 lines):\n{''.join(log.splitlines(True)[-40:])}")


#: (client, auth) -> the iscsiadm calls os-brick made in that case, for the comparison.
_CALLS: dict[tuple[str, str], list[IscsiadmCall]] = {}


def _as_seen_by_brick(call: IscsiadmCall) -> tuple[object, ...]:
    """What os-brick acts on, with what must differ made equal: sids (the kernel numbers
    sessions, and the reference's went first) and the program's name before a message."""
    out = re.sub(r"^(\w+: )\[\d+\]", r"\1[N]", call.stdout, flags=re.M)
    out = re.sub(r"\bsid: \d+", "sid: N", out)
    err = re.sub(r"^[\w-]+: ", "", call.stderr, flags=re.M)
    return (call.argv, call.rc, out, err)


def _report(client: Client, case: str, first: int) -> list[IscsiadmCall]:
    """Print (and keep in the run's out/ directory) the iscsiadm calls os-brick made."""
    calls = client.shim.calls()[first:]
    print(f"iscsiadm calls by os-brick ({client.name}, {case}):")
    for call in calls:
        print(f"  {call}")
        if call.rc != 0 or call.stderr:
            print(f"      stderr: {call.stderr.strip()!r}")
    out = os.environ.get("ISCSIKIT_VM_OUT")
    if out:
        with open(Path(out, f"os-brick-{client.name}-{case}.jsonl"), "w") as f:
            for call in calls:
                f.write(json.dumps(dataclasses.asdict(call)) + "\n")
    return calls


@pytest.mark.parametrize("auth", ["none", "chap"])
def test_connect_volume_round_trips_data_and_disconnect_cleans_up(
    client: Client, target: Target, connector: Any, auth: str
) -> None:
    iqn = IQN_CHAP if auth == "chap" else IQN
    portal = target.tgtd.portal
    props = connection_properties(portal, iqn, LUN, CHAP if auth == "chap" else None)
    by_path = Path(f"/dev/disk/by-path/ip-{portal}-iscsi-{iqn}-lun-{LUN}")
    first = len(client.shim.calls())
    device: dict[str, str] | None = None
    try:
        device = connector.connect_volume(props)
        assert device is not None
        # os-brick 7 returns the disk (/dev/sdX) and finds it again by its by-path name.
        assert device["type"] == "block"
        assert re.fullmatch(r"/dev/sd[a-z]+", device["path"]), device
        disk = Path(device["path"]).name
        assert_by_path_link(disk, by_path)
        assert connector.get_volume_paths(props) == [str(by_path)]
        session = session_of(iqn)
        assert session is not None and session.state == "LOGGED_IN"
        assert [b.path.name for b in session.block_devices()] == [disk]

        data = os.urandom(1 << 20)
        offset = 5 << 20
        write_direct(str(by_path), offset, data)
        assert read_direct(str(by_path), offset, len(data)) == data
        with open(target.tgtd.backing_path(target.tids[iqn], LUN), "rb") as f:
            f.seek(offset)
            assert f.read(len(data)) == data

        connector.disconnect_volume(props, device)
        device = None
        wait_for("the session to go", lambda: session_of(iqn) is None)
        wait_for(f"/dev/{disk} to go", lambda: not Path("/dev", disk).exists())
        wait_for(f"{by_path} to go", lambda: not by_path.exists())
        assert connector.get_volume_paths(props) == []
        # os-brick deleted the node record it made.
        assert client.iscsiadm("-m", "node", "-T", iqn, "-p", portal).returncode == 21

        # The reference ran first (same target, same case): os-brick must have run the
        # same commands and been told the same things by both.
        calls = _CALLS[(client.name, auth)] = _report(client, auth, first)
        reference = _CALLS.get(("open-iscsi", auth))
        if client.name != "open-iscsi" and reference is not None:
            theirs = [_as_seen_by_brick(c) for c in reference]
            ours = [_as_seen_by_brick(c) for c in calls]
            assert ours == theirs
    finally:
        if (client.name, auth) not in _CALLS:
            _report(client, auth, first)
        if device is not None or session_of(iqn) is not None:
            connector.disconnect_volume(props, device or {}, force=True, ignore_errors=True)
