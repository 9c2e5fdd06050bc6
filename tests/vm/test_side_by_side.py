"""open-iscsi and iscsikit side by side on the same kernel and target: the session each
makes from the same node record has the same parameters in sysfs.

open-iscsi first (iscsid + iscsiadm), then iscsikitd + iscsikit-adm, one after the other
(each daemon takes over every kernel session it finds, so they never run together); every
attribute of the session and its connection is compared, except the few that must differ
and why (``MAY_DIFFER``).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from iscsikit.sysfs import SysfsContext
from iscsikit.testing.daemon import RunningDaemon
from iscsikit.testing.plugin import require_tgt
from iscsikit.testing.tgtd import Tgtd
from iscsikit.testing.vmguest.checks import (
    WAIT,
    kernel_initiator,
    session_of,
    wait_for,
)
from iscsikit.testing.vmguest.compare import run
from iscsikit.testing.vmguest.iscsid import iscsid_running

IQN = "iqn.2024-01.test.iscsikit.vm:side-by-side"
INITIATOR = "iqn.2024-01.test.iscsikit.vm:side-by-side-initiator"

#: Attributes that name this session rather than describe it, and why they differ:
#: the kernel numbers sessions and SCSI hosts; the target numbers its sessions (TSIH);
#: each initiator picks its own ISID (open-iscsi: 00023d + a counter; iscsikit: a random
#: qualifier under the same OUI rule, docs/compatibility.md); the local port is the
#: kernel's choice.
MAY_DIFFER = {
    "session:isid",
    "session:tsih",
    "session:target_id",
    "session:creator",
    "conn:local_port",
    "conn:local_ipaddr",
    "conn:statsn",
    "conn:exp_statsn",
}


def _read(directory: Path, prefix: str) -> dict[str, str]:
    out = {}
    for path in sorted(directory.iterdir()):
        if path.name in ("uevent", "power", "subsystem", "device") or not path.is_file():
            continue
        try:
            out[f"{prefix}:{path.name}"] = path.read_text().strip()
        except OSError as exc:  # write-only or not implemented by the transport
            out[f"{prefix}:{path.name}"] = f"<{exc.strerror}>"
    return out


def _snapshot() -> dict[str, str]:
    sessions = [s for s in SysfsContext().sessions() if s.targetname == IQN]
    assert len(sessions) == 1, f"{len(sessions)} sessions to {IQN}"
    s = sessions[0]
    conn = s.connection()
    assert conn is not None
    return {**_read(s.path, "session"), **_read(conn.path, "conn")}


@pytest.fixture(scope="module")
def tgtd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Tgtd]:
    kernel_initiator(INITIATOR)
    require_tgt()
    with Tgtd(tmp_path_factory.mktemp("tgtd"), start_timeout=WAIT) as target:
        target.add_target(IQN, luns=1, lun_size=16 << 20)
        yield target


def _no_session() -> bool:
    return session_of(IQN) is None


def _open_iscsi_snapshot(tgtd: Tgtd, log: Path) -> dict[str, str]:
    with iscsid_running(log):
        found = run("iscsiadm", "-m", "discovery", "-t", "st", "-p", tgtd.portal)
        assert found.returncode == 0, found.stderr
        done = run("iscsiadm", "-m", "node", "-T", IQN, "-p", tgtd.portal, "-l")
        assert done.returncode == 0, done.stderr
        snapshot = _snapshot()
        out_ = run("iscsiadm", "-m", "node", "-T", IQN, "-p", tgtd.portal, "-u")
        assert out_.returncode == 0, out_.stderr
        wait_for("open-iscsi's session to go", _no_session)
    return snapshot


def _iscsikit_snapshot(tgtd: Tgtd) -> dict[str, str]:
    daemon = RunningDaemon(Path("/"))
    try:
        found = daemon.adm("-m", "discovery", "-t", "st", "-p", tgtd.portal)
        assert found.returncode == 0, found.stderr
        done = daemon.adm("-m", "node", "-T", IQN, "-p", tgtd.portal, "-l")
        assert done.returncode == 0, done.stderr + daemon.log[-3000:]
        snapshot = _snapshot()
        out = daemon.adm("-m", "node", "-T", IQN, "-p", tgtd.portal, "-u")
        assert out.returncode == 0, out.stderr
        wait_for("iscsikit's session to go", _no_session)
    finally:
        daemon.stop()
    return snapshot


def test_same_sysfs_session_parameters(tgtd: Tgtd, tmp_path: Path) -> None:
    theirs = _open_iscsi_snapshot(tgtd, tmp_path / "iscsid.log")
    ours = _iscsikit_snapshot(tgtd)
    compared = sorted((set(theirs) | set(ours)) - MAY_DIFFER)
    assert len(compared) > 30, compared  # the whole session and connection were read
    diff = [f"{k}: open-iscsi {theirs.get(k)!r} iscsikit {ours.get(k)!r}"
            for k in compared if theirs.get(k) != ours.get(k)]  # fmt: skip
    assert not diff, "\n".join(diff)
