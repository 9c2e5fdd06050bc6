"""The LUN scan (``iscsikit-ls``) agrees with libiscsi's ``iscsi-ls -s``; the file
adapter reads and writes a real LUN."""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import shutil
import subprocess
from collections.abc import Iterator

import pytest

import iscsikit
from iscsikit.lun.fileio import LunIO
from iscsikit.testing.tgtd import Tgtd
from iscsikit.tools import ls

pytestmark = pytest.mark.integration

A = "iqn.2024-01.test.lstool:a"
B = "iqn.2024-01.test.lstool:b"


@pytest.fixture(scope="module")
def target(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Tgtd]:
    with Tgtd(tmp_path_factory.mktemp("lstool")) as tgtd:
        tgtd.add_target(A, luns=2, lun_size=8 << 20)
        tgtd.add_target(B, luns=1, null=True)
        yield tgtd


def _iscsi_ls(portal: str) -> dict[str, list[tuple[int, str]]]:
    out = subprocess.run(
        ["iscsi-ls", "-s", f"iscsi://{portal}"],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    ).stdout
    found: dict[str, list[tuple[int, str]]] = {}
    current = ""
    for line in out.splitlines():
        if m := re.match(r"Target:(\S+) Portal:", line):
            current = m.group(1)
            found[current] = []
        elif m := re.match(r"Lun:(\d+)\s+Type:(\w+)", line):
            found[current].append((int(m.group(1)), m.group(2)))
    return found


def test_scan_agrees_with_iscsi_ls(target: Tgtd) -> None:
    assert shutil.which("iscsi-ls"), "libiscsi-bin is missing"
    theirs = _iscsi_ls(target.portal)
    out = io.StringIO()
    assert ls.main(["-s", "--json", f"iscsi://{target.portal}"], out=out) == 0
    doc = json.loads(out.getvalue())
    ours = {t["target"]: [(lun["lun"], lun["type"]) for lun in t["luns"]] for t in doc["targets"]}
    assert ours == theirs
    sizes = {t["target"]: {lun["lun"]: lun["size"] for lun in t["luns"]} for t in doc["targets"]}
    assert sizes[A] == {0: None, 1: 8 << 20, 2: 8 << 20}
    assert sizes[B][1] == 1 << 40  # tgt's null backing store reports 1 TiB


def test_text_output_and_identifiers(target: Tgtd) -> None:
    out = io.StringIO()
    assert ls.main(["-s", "-v", f"iscsi://{target.portal}/{A}"], out=out) == 0
    text = out.getvalue()
    assert f"Target:{A} Portal:{target.portal}" in text
    assert "Lun:1    Type:DIRECT_ACCESS (Size:8M)" in text
    assert "Vendor:IET Product:VIRTUAL-DISK" in text
    assert re.search(r"Designator:0x6[0-9a-f]{31}", text)  # NAA IEEE Registered Extended


def test_unreachable_portal_exit_code(target: Tgtd, capsys: pytest.CaptureFixture[str]) -> None:
    from iscsikit.testing.tgtd import free_port

    code = ls.main([f"iscsi://127.0.0.1:{free_port()}"])
    assert code == 4  # ISCSI_ERR_TRANS, as iscsiadm reports a refused connection
    assert "iscsikit-ls:" in capsys.readouterr().err


def test_bad_arguments_exit_7(capsys: pytest.CaptureFixture[str]) -> None:
    assert ls.main(["--bogus"]) == 7
    err = capsys.readouterr().err
    assert err.startswith("usage: iscsikit-ls")
    assert err.splitlines()[-1].startswith("iscsikit-ls: error: ")
    assert ls.main(["http://nope"]) == 7
    assert capsys.readouterr().err == "iscsikit-ls: invalid iSCSI URL 'http://nope'\n"


def test_file_adapter_round_trip(target: Tgtd) -> None:
    payload = os.urandom(3 * 65536 + 123)
    with iscsikit.open_lun(f"iscsi://{target.portal}/{A}/2") as lun:
        f = LunIO(lun)
        f.seek(1000)
        assert f.write(payload) == len(payload)
        f.flush()
        f.seek(1000)
        reader = io.BufferedReader(f, buffer_size=65536)
        assert reader.read(len(payload)) == payload
        assert f.seek(0, os.SEEK_END) == lun.size
        assert f.read(10) == b""
        f.seek(0)
        digest = hashlib.sha256()
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    image = target.backing_path(1, 2).read_bytes()
    assert digest.hexdigest() == hashlib.sha256(image).hexdigest()
    assert image[1000 : 1000 + len(payload)] == payload


def test_open_lun_from_a_node_record_with_chap(tmp_path_factory: pytest.TempPathFactory) -> None:
    from iscsikit.lun.lun import open_node_lun
    from iscsikit.records.model import NodeRecord

    iqn = "iqn.2024-01.test.lstool:chap"
    with Tgtd(tmp_path_factory.mktemp("node-chap")) as tgtd:
        tid = tgtd.add_target(iqn, lun_size=4 << 20)
        tgtd.add_account("node-user", "node-secret-12")
        tgtd.bind_account("node-user", tid=tid)
        node = NodeRecord.new(iqn, "127.0.0.1", tgtd.port, 1)
        node.set("node.session.auth.authmethod", "CHAP")
        node.set("node.session.auth.username", "node-user")
        node.set("node.session.auth.password", "node-secret-12")
        node.set("node.session.cmds_max", "16")
        with open_node_lun(node, 1) as lun:
            assert lun.session.params["AuthMethod"] == "CHAP"
            lun.write(512, b"node" * 128)
            assert lun.read(512, 512) == b"node" * 128
        node.set("node.session.auth.password", "wrong-secret-1")
        with pytest.raises(iscsikit.IscsiError) as info:
            open_node_lun(node, 1, retries=0)
        assert info.value.code == 24
