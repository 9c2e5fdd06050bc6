"""``iscsikit-adm`` as a subprocess against simulated offload HBAs (iscsikit.testing.simhba).

The CLI finds the host under ``ISCSIKIT_ROOT`` (the simulated sysfs tree) and reaches
the simulated kernel through the offload drivers' test seam (``ISCSIKIT_OFFLOAD_NETLINK``
naming the simulator's ``AF_UNIX`` socket).  Expected output is written from iscsiadm's
own format strings (usr/iscsiadm.c ``print_host_stats``, ``exec_ping_op``,
``idbm_print`` of ``idbm_recinfo_host_chap``): real iscsiadm cannot be run here, since
no kernel offload driver exists to answer it.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from iscsikit.netlink.constants import ChapType, PingStatus
from iscsikit.netlink.params import HOST_STATS_FIELDS
from iscsikit.netlink.wire import ChapRecord
from iscsikit.testing.simhba import HbaServer, SimulatedHba

MAC = "00:0e:1e:04:93:a0"


class Adm:
    def __init__(self, hba: SimulatedHba, sock: Path) -> None:
        self.hba = hba
        self.env = {
            **os.environ,
            "ISCSIKIT_ROOT": str(hba.root),
            "ISCSIKIT_OFFLOAD_NETLINK": str(sock),
        }

    def __call__(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "iscsikit", *args],
            env=self.env, capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip


@pytest.fixture
def adm(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Adm]:
    hba = SimulatedHba(tmp_path / "root", getattr(request, "param", "qla4xxx"), hwaddress=MAC)
    with HbaServer(hba) as server:
        yield Adm(hba, server.listen(tmp_path / "nl.sock"))


def test_iface_auto_created_for_the_host(adm: Adm) -> None:
    # One record per kernel iface (ipv4-iface-7-0, ipv6-iface-7-0, ipv6-iface-7-1), named
    # and filled as iface_setup_binding_from_kern_iface does (2.1.8 iface.c:482-523): the
    # host's initiatorname is read into each (iscsi_sysfs_read_iface); qla4xxx shows no
    # netdev.  Format: iscsiadm.c's "%s %s,%s,%s,%s,%s" listing with <empty>.
    listed = adm("-m", "iface")
    assert listed.returncode == 0, listed.stderr
    iname = _iname()
    assert listed.stdout.splitlines()[:3] == [
        f"qla4xxx.{MAC}.ipv4.0 qla4xxx,{MAC},192.0.2.50,<empty>,{iname}",
        f"qla4xxx.{MAC}.ipv6.0 qla4xxx,{MAC},::,<empty>,{iname}",
        f"qla4xxx.{MAC}.ipv6.1 qla4xxx,{MAC},::,<empty>,{iname}",
    ]
    assert f"qla4xxx.{MAC} " not in listed.stdout  # only hosts without kernel ifaces
    host = adm("-m", "host")
    assert host.stdout == f"qla4xxx: [7] 192.0.2.50,[{MAC}],<empty> {_iname()}\n"


def _iname() -> str:
    return "iqn.2000-04.com.qlogic:isp8214.000e1e0493a0.4"


def test_host_chap_show_new_delete(adm: Adm) -> None:
    adm.hba.chap[0] = ChapRecord(0, ChapType.OUT, "joe", b"secret123456")
    adm.hba.chap[5] = ChapRecord(5, ChapType.IN, "tgt", b"")
    shown = adm("-m", "host", "-H", "7", "-C", "chap", "-o", "show")
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout == (
        "# BEGIN RECORD 2.1.8\nhost.auth.tbl_idx = 0\nhost.auth.username = joe\n"
        "host.auth.password = secret123456\n# END RECORD\n"
        "# BEGIN RECORD 2.1.8\nhost.auth.tbl_idx = 5\nhost.auth.username_in = tgt\n"
        "host.auth.password_in = <empty>\n# END RECORD\n"
    )
    new = adm(
        "-m", "host", "-H", MAC, "-C", "chap", "-o", "new", "-x", "9",
        "-n", "host.auth.username_in", "-v", "bob", "-n", "host.auth.password_in", "-v", "pw12",
    )  # fmt: skip
    assert new.returncode == 0, new.stderr
    assert (adm.hba.chap[9].username, adm.hba.chap[9].chap_type) == ("bob", ChapType.IN)
    assert adm("-m", "host", "-H", "7", "-C", "chap", "-o", "delete", "-x", "0").returncode == 0
    assert sorted(adm.hba.chap) == [5, 9]
    gone = adm("-m", "host", "-H", "7", "-C", "chap", "-o", "delete", "-x", "0")
    assert gone.returncode == 1 and "CHAP Delete failed." in gone.stderr


def test_host_stats(adm: Adm) -> None:
    adm.hba.host_stats = {"mactx_frames": 5, "iscsi_sequence_error": 2**64 - 1}
    stats = adm("-m", "host", "-H", "7", "-C", "stats")
    assert stats.returncode == 0, stats.stderr
    values = {"mactx_frames": 5, "iscsi_sequence_error": -1}  # %lld
    expected = "".join(f"\t{k}: {values.get(k, 0)}\n" for k in HOST_STATS_FIELDS)
    assert stats.stdout == "Host Statistics:\n" + expected
    assert stats.stdout.count("\n") == 83


def test_flashnode_list_new_delete(adm: Adm) -> None:
    adm.hba.add_flashnode(0, "iqn.2003-01.org.example:fl0", "192.0.2.9")
    listed = adm("-m", "host", "-H", "7", "-C", "flashnode")
    assert listed.stdout == "qla4xxx: [0] 192.0.2.9:3260,1 iqn.2003-01.org.example:fl0\n"
    new = adm("-m", "host", "-H", "7", "-C", "flashnode", "-o", "new", "-A", "ipv4")
    assert new.returncode == 0, new.stderr
    assert "added at index 1." in new.stderr
    assert (
        adm("-m", "host", "-H", "7", "-C", "flashnode", "-o", "delete", "-x", "0").returncode == 0
    )
    listed = adm("-m", "host", "-H", "7", "-C", "flashnode")
    assert listed.stdout == "qla4xxx: [1] :3260,0 \n"


def test_iface_apply_and_ping(adm: Adm) -> None:
    name = f"qla4xxx.{MAC}.ipv4.0"
    assert adm("-m", "iface").returncode == 0  # creates the iface records
    for key, value in (("iface.ipaddress", "10.1.1.9"), ("iface.subnet_mask", "255.255.0.0"),
                       ("iface.vlan_id", "12"), ("iface.vlan_state", "enable")):  # fmt: skip
        assert (
            adm("-m", "iface", "-I", name, "-o", "update", "-n", key, "-v", value).returncode == 0
        )
    applied = adm("-m", "iface", "-I", name, "-o", "apply")
    assert (applied.returncode, applied.stdout) == (0, f"{name} applied.\n"), applied.stderr
    iface = adm.hba.iface_dir(1)
    assert (iface / "ipaddress").read_text() == "10.1.1.9\n"
    assert (iface / "subnet").read_text() == "255.255.0.0\n"
    assert (iface / "vlan_id").read_text() == "12\n"
    assert (iface / "vlan_enabled").read_text() == "enable\n"  # OP_STATE, ql4_def.h:185
    every = adm("-m", "iface", "-o", "applyall", "-H", "7")
    assert (every.returncode, every.stdout) == (
        0,
        "Applied settings to ifaces attached to host7.\n",
    )
    adm.hba.ping_status = lambda a: PingStatus.TIMEOUT if a == "10.9.9.9" else 0
    ok = adm("-m", "iface", "-I", name, "-C", "ping", "-a", "192.0.2.1", "-c", "2", "-b", "64")
    assert (ok.returncode, ok.stdout) == (0, "Ping 1 completed\nPing 2 completed\n")
    lost = adm("-m", "iface", "-I", name, "-C", "ping", "-a", "10.9.9.9")
    assert (lost.returncode, lost.stdout) == (0, "Ping 1 failed: timed out\n")


@pytest.mark.parametrize("adm", ["bnx2i"], indirect=True)
def test_what_bnx2i_cannot_do(adm: Adm) -> None:
    chap = adm("-m", "host", "-H", "7", "-C", "chap", "-o", "show")
    assert chap.returncode == 1 and "get_chap_info failed. errno=22" in chap.stderr
    stats = adm("-m", "host", "-H", "7", "-C", "stats")
    assert stats.returncode == 1 and "get_host_stats failed. errno=38" in stats.stderr
    assert adm("-m", "iface").returncode == 0
    # bnx2i pings through iscsiuio (no send_ping in its iscsi_transport; open-iscsi's
    # template has exec_ping): without iscsiuio, uip_broadcast's ISCSID_NOTCONN (20).
    ping = adm("-m", "iface", "-I", f"bnx2i.{MAC}", "-C", "ping", "-a", "192.0.2.1")
    assert (ping.returncode, ping.stdout) == (20, "Ping 1 failed: could not connect to iscsid\n")


def test_help_labels_the_offload_transports_simulated(adm: Adm) -> None:
    shown = adm("--help")
    lines = {line.split()[0]: line for line in shown.stdout.splitlines() if line.startswith("  ")}
    for name in ("qla4xxx", "cxgb3i", "cxgb4i", "bnx2i", "be2iscsi", "qedi"):
        assert "simulated" in lines[name], shown.stdout


def test_flashnode_update(adm: Adm) -> None:
    """``-o update`` (SET_FLASHNODE_PARAMS); messages and exit codes from usr/iscsiadm.c
    (``exec_flashnode_op``, ``iscsi_set_flashnode_params``) and usr/idbm.c
    (``idbm_verify_param``): iscsiadm cannot run here, no kernel qla4xxx answers it."""
    adm.hba.add_flashnode(0, "iqn.2003-01.org.example:fl0", "192.0.2.9")
    base = ("-m", "host", "-H", "7", "-C", "flashnode", "-x", "0")
    done = adm(*base, "-o", "update",
               "-n", "flashnode.session.targetname", "-v", "iqn.2003-01.org.example:fl1",
               "-n", "flashnode.conn[0].port", "-v", "3261")  # fmt: skip
    assert (done.returncode, done.stdout) == (0, ""), done.stderr
    assert "Update for flashnode 0 of host 7 successful." in done.stderr
    listed = adm("-m", "host", "-H", "7", "-C", "flashnode")
    assert listed.stdout == "qla4xxx: [0] 192.0.2.9:3261,1 iqn.2003-01.org.example:fl1\n"
    shown = adm(*base, "-o", "show")
    assert "targetname = iqn.2003-01.org.example:fl1\n" in shown.stdout

    bad_key = adm(*base, "-o", "update", "-n", "flashnode.session.bogus", "-v", "1")
    assert (bad_key.returncode, bad_key.stdout) == (7, "")
    assert _messages(bad_key.stderr) == [
        "Cannot modify flashnode.session.bogus. Invalid param name.",
        "Update for flashnode 0 of host 7 failed.",
    ]
    # An address inet_pton refuses, or only keys flashnode_build_config never sends
    # (username, password, chap_in_idx, is_boot_target): nothing to send, ISCSI_ERR.
    for name, value in (("flashnode.conn[0].ipaddress", "300.1.1.1"),
                        ("flashnode.session.password", "secret")):  # fmt: skip
        bad = adm(*base, "-o", "update", "-n", name, "-v", value)
        assert (bad.returncode, bad.stdout) == (1, "")
        assert _messages(bad.stderr) == [
            "Build flashnode config failed.",
            "Update for flashnode 0 of host 7 failed.",
        ]
    missing = adm("-m", "host", "-H", "7", "-C", "flashnode", "-x", "5", "-o", "update",
                  "-n", "flashnode.session.erl", "-v", "1")  # fmt: skip
    assert missing.returncode == 2
    assert "Could not read info for flashnode 5, No such file or directory" in missing.stderr
    assert adm(*base, "-o", "show").stdout == shown.stdout  # the failures changed nothing


def _messages(stderr: str) -> list[str]:
    """stderr's lines without the program name (iscsiadm's ``iscsiadm: ``)."""
    return [line.partition(": ")[2] for line in stderr.splitlines()]
