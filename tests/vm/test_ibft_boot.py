"""Boot firmware for real: the guest boots with an ACPI iBFT (``qemu -acpitable``, the
table :func:`iscsikit.testing.ibft.vm_boot_table` builds byte by byte) and a NIC with no
backend at the PCI address the table names.  The kernel's ``iscsi_ibft`` exports it under
/sys/firmware/ibft, and:

* ``iscsikit-adm -m fw`` prints what ``iscsiadm -m fw`` prints, and so does
  ``-m discovery -t fw`` (and the node records it writes are iscsiadm's);
* without the module, iscsikit reads the raw table (/sys/firmware/acpi/tables/iBFT) into
  the same boot targets the module gives (iscsiadm finds nothing then: exit 21);
* ``-m fw -l`` logs in to the target the table names (CHAP from the table) -- first with
  open-iscsi (iscsiadm + iscsid, the reference), then with iscsikit-adm + iscsikitd --
  and the disk appears with its by-path link; data lands in tgtd's backing file.

The target lives in the guest: tgtd on the table's target address, which (with the
initiator's address) sits on the iBFT NIC; nothing leaves the guest.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from iscsikit.sysfs import SysfsContext
from iscsikit.sysfs.ibft_table import parse_ibft
from iscsikit.testing.daemon import RunningDaemon
from iscsikit.testing.ibft import (
    VM_INITIATOR_IP,
    VM_NIC_MAC,
    VM_TARGET,
    VM_TARGET_IP,
    VM_TARGET_PORT,
)
from iscsikit.testing.plugin import require_tgt
from iscsikit.testing.tgtd import Tgtd
from iscsikit.testing.vmguest.checks import (
    WAIT,
    assert_by_path_link,
    assert_dd_lands,
    disk_of,
    kernel_initiator,
    session_of,
    wait_for,
)
from iscsikit.testing.vmguest.compare import adm, assert_same_lines, run
from iscsikit.testing.vmguest.iscsid import iscsid_running

IBFT = Path("/sys/firmware/ibft")
RAW = Path("/sys/firmware/acpi/tables/iBFT")
PORTAL = f"{VM_TARGET_IP}:{VM_TARGET_PORT}"
BY_PATH = Path(f"/dev/disk/by-path/ip-{PORTAL}-iscsi-{VM_TARGET}-lun-1")
#: What iscsiadm printed for ``-m fw -l`` (the tests run in file order).
REFERENCE: dict[str, str] = {}


def _sh(*argv: str) -> None:
    subprocess.run(argv, check=True, timeout=WAIT)


def _nic() -> str:
    for net in Path("/sys/class/net").iterdir():
        if (net / "address").read_text().strip() == VM_NIC_MAC:
            return net.name
    pytest.fail(f"no network device with the iBFT NIC's MAC {VM_NIC_MAC}")


@pytest.fixture(scope="module")
def target(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Tgtd, int]]:
    """The NIC up with both addresses, iscsi_ibft loaded, tgtd serving the boot target."""
    assert RAW.is_file(), "qemu gave the guest no iBFT (-acpitable)"
    kernel_initiator("iqn.2026-12.test.iscsikit.vm:not-the-firmware-one")
    _sh("modprobe", "virtio_net")
    wait_for("the iBFT NIC", lambda: any(
        (n / "address").read_text().strip() == VM_NIC_MAC
        for n in Path("/sys/class/net").iterdir()
    ))  # fmt: skip
    _sh("udevadm", "settle", "--timeout=60")  # udev may rename eth0 (ens10...) meanwhile
    nic = _nic()
    _sh("ip", "link", "set", nic, "up")
    for address in (VM_TARGET_IP, VM_INITIATOR_IP):
        _sh("ip", "addr", "add", f"{address}/24", "dev", nic)
    _sh("modprobe", "iscsi_ibft")
    wait_for("/sys/firmware/ibft/target0", (IBFT / "target0").exists)
    require_tgt()
    with Tgtd(
        tmp_path_factory.mktemp("tgtd"), host=VM_TARGET_IP, port=VM_TARGET_PORT,
        start_timeout=WAIT,
    ) as tgtd:  # fmt: skip
        tid = tgtd.add_target(VM_TARGET, luns=1, lun_size=16 << 20)
        tgtd.add_account("bootuser", "bootsecret123")
        tgtd.bind_account("bootuser", tid=tid)
        try:
            yield tgtd, tid
        finally:  # the next tests find the guest as it booted
            subprocess.run(["ip", "addr", "flush", "dev", nic], timeout=WAIT, check=False)
            subprocess.run(["modprobe", "-r", "iscsi_ibft"], timeout=WAIT, check=False)
            subprocess.run(["modprobe", "-r", "virtio_net"], timeout=WAIT, check=False)


def test_fw_equals_iscsiadm(target: tuple[Tgtd, int]) -> None:
    theirs, ours = run("iscsiadm", "-m", "fw"), adm("-m", "fw")
    assert theirs.returncode == 0, theirs.stderr
    assert ours.returncode == 0, ours.stderr
    assert f"node.name = {VM_TARGET}" in ours.stdout
    assert "node.session.auth.username = bootuser" in ours.stdout
    assert_same_lines(theirs.stdout, ours.stdout)


def test_discovery_fw_writes_iscsiadms_records(target: tuple[Tgtd, int], tmp_path: Path) -> None:
    """With iscsid running, so that iscsiadm reads iscsid.conf (it asks iscsid for the
    path; without iscsid it writes compiled defaults, which iscsikit does not copy)."""
    shown = ("-m", "node", "-T", VM_TARGET, "-p", PORTAL, "-o", "show")
    with iscsid_running(tmp_path / "iscsid.log"):
        theirs = run("iscsiadm", "-m", "discovery", "-t", "fw")
        assert theirs.returncode == 0, theirs.stderr
        their_record = run("iscsiadm", *shown)
        assert their_record.returncode == 0, their_record.stderr
        assert run("iscsiadm", "-m", "node", "-T", VM_TARGET, "-o", "delete").returncode == 0
        ours = adm("-m", "discovery", "-t", "fw")
        assert ours.returncode == 0, ours.stderr
        assert_same_lines(theirs.stdout, ours.stdout)
        # Read back by iscsiadm: the record iscsikit wrote is the one iscsiadm wrote.
        our_record = run("iscsiadm", *shown)
        assert our_record.returncode == 0, our_record.stderr
        assert_same_lines(their_record.stdout, our_record.stdout)
        run("iscsiadm", "-m", "node", "-T", VM_TARGET, "-o", "delete")


def test_raw_table_without_the_module_gives_the_same_targets(target: tuple[Tgtd, int]) -> None:
    table = parse_ibft(RAW.read_bytes())
    assert [b.name for b in table.blocks] == ["initiator", "ethernet0", "target0"]
    for block in table.blocks:  # every attribute the module exports, with its text
        exported = {p.name: p.read_text().rstrip("\n") for p in (IBFT / block.name).iterdir()
                    if p.is_file()}  # fmt: skip
        assert block.attrs == exported, block.name
    with_module = SysfsContext(Path("/")).ibft().targets()
    printed = adm("-m", "fw")
    _sh("modprobe", "-r", "iscsi_ibft")
    try:
        assert not IBFT.exists()
        assert SysfsContext(Path("/")).ibft().targets() == with_module
        assert adm("-m", "fw").stdout == printed.stdout
        nothing = run("iscsiadm", "-m", "fw")  # iscsiadm reads only the module's tree
        assert nothing.returncode == 21, nothing.stdout + nothing.stderr
    finally:
        _sh("modprobe", "iscsi_ibft")
        wait_for("/sys/firmware/ibft/target0", (IBFT / "target0").exists)


def _assert_logged_in(tgtd: Tgtd, tid: int, offset: int) -> int:
    wait_for("the boot target's disk", lambda: disk_of(VM_TARGET) is not None)
    session = session_of(VM_TARGET)
    assert session is not None and session.state == "LOGGED_IN"
    disk = disk_of(VM_TARGET)
    assert disk is not None
    assert_by_path_link(disk, BY_PATH)
    assert_dd_lands(disk, tgtd.backing_path(tid), offset)
    return session.sid


def test_fw_login_with_open_iscsi(target: tuple[Tgtd, int], tmp_path: Path) -> None:
    """The reference: what iscsiadm -m fw -l does with iscsid."""
    tgtd, tid = target
    with iscsid_running(tmp_path / "iscsid.log"):
        done = run("iscsiadm", "-m", "fw", "-l")
        assert done.returncode == 0, done.stdout + done.stderr
        sid = _assert_logged_in(tgtd, tid, 1 << 20)
        out = run("iscsiadm", "-m", "session", "-r", str(sid), "-u")
        assert out.returncode == 0, out.stderr
        wait_for("the session to go", lambda: session_of(VM_TARGET) is None)
        REFERENCE["login"] = done.stdout


def test_fw_login_with_iscsikit(target: tuple[Tgtd, int]) -> None:
    tgtd, tid = target
    daemon = RunningDaemon(Path("/"))
    try:
        done = daemon.adm("-m", "fw", "-l")
        assert done.returncode == 0, f"{done.stdout}{done.stderr}{daemon.log[-4000:]}"
        assert "login" in REFERENCE, "the open-iscsi login (the reference) did not run"
        assert_same_lines(REFERENCE["login"], str(done.stdout))
        sid = _assert_logged_in(tgtd, tid, 5 << 20)
        out = daemon.adm("-m", "session", "-r", str(sid), "-u")
        assert out.returncode == 0, out.stderr
        wait_for("the session to go", lambda: session_of(VM_TARGET) is None)
        assert not BY_PATH.exists()
    finally:
        daemon.stop()
