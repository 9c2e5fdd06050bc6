"""Persistent /dev/iscsi names (iscsikit-persistent-name) and the bindings file."""

from __future__ import annotations

import multiprocessing
from pathlib import Path

import pytest

from iscsikit.errors import DatabaseError
from iscsikit.records.bindings import Binding, Bindings
from iscsikit.sysfs.fake import FakeSession, FakeSysfs
from iscsikit.tools import persistent_name as tool

T1 = "iqn.2003-01.org.example:disk1"
T2 = "iqn.2003-01.org.example:disk2"


@pytest.fixture
def root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    f = FakeSysfs(tmp_path)
    f.add_session(FakeSession(1, T1, "192.168.1.10"))
    f.add_session(FakeSession(2, T2, "192.168.1.11"))
    f.add_lun(1, 0, block="sdb", partitions=2)
    f.add_lun(2, 5, block="sdc")
    monkeypatch.setenv("ISCSIKIT_ROOT", str(tmp_path))
    return tmp_path


def test_names_and_the_bindings_they_create(root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert tool.persistent_name("sdc") == "iscsi/bus0/target0/lun5/disk"  # first target bound
    assert tool.persistent_name("sdb") == "iscsi/bus0/target1/lun0/disk"
    assert tool.persistent_name("/dev/sdb2") == "iscsi/bus0/target1/lun0/part2"
    assert (root / "var/lib/iscsi/bindings").read_text() == f"0 0 {T2}\n0 1 {T1}\n"
    # The same target keeps its ids (a reboot: sessions come back in another order).
    assert tool.persistent_name("sdb") == "iscsi/bus0/target1/lun0/disk"
    assert tool.main(["sdc"]) == 0
    assert capsys.readouterr().out == "iscsi/bus0/target0/lun5/disk\n"


def test_not_an_iscsi_disk(root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert tool.main(["sdz"]) == tool.NOT_ISCSI
    (root / "sys/devices/virtual/block/vda").mkdir(parents=True)
    (root / "sys/class/block/vda").symlink_to(root / "sys/devices/virtual/block/vda")
    assert tool.persistent_name("vda") is None
    assert capsys.readouterr().out == ""


def test_existing_lines_and_comments_are_kept(tmp_path: Path) -> None:
    path = tmp_path / "bindings"
    path.write_text("# from linux-iscsi\n0 0 iqn.a:x\n0 2 iqn.a:y")  # no final newline
    b = Bindings(path)
    assert b.bind("iqn.a:z") == Binding(0, 1, "iqn.a:z")  # the smallest free id
    assert b.bind("iqn.a:x") == Binding(0, 0, "iqn.a:x")
    assert path.read_text() == "# from linux-iscsi\n0 0 iqn.a:x\n0 2 iqn.a:y\n0 1 iqn.a:z\n"


def test_a_malformed_file_is_a_database_error(tmp_path: Path) -> None:
    path = tmp_path / "bindings"
    path.write_text("0 zero iqn.a:x\n")
    with pytest.raises(DatabaseError, match=r"bindings:1:"):
        Bindings(path).bind("iqn.a:y")


def _bind_many(path: str, names: list[str]) -> None:
    b = Bindings(Path(path))
    for name in names:
        b.bind(name)


def test_concurrent_helpers_never_lose_or_duplicate(tmp_path: Path) -> None:
    path = tmp_path / "bindings"
    names = [f"iqn.2024-01.test:t{i}" for i in range(40)]
    procs = [
        multiprocessing.Process(target=_bind_many, args=(str(path), names[i::4] + names))
        for i in range(4)
    ]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    bound = Bindings(path).read()
    assert sorted(b.name for b in bound) == sorted(names)  # each once
    assert len({(b.bus, b.target) for b in bound}) == len(names)  # ids unique
