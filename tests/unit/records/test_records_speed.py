"""The fast paths of the record writer keep its guarantees: fsio.Remover (directories
kept open and opened from their open parent) and open_dir's openat2 refuse a symlink
anywhere below the root exactly as the component walk does, leak no descriptor, and
a large delete / update leaves the database as the slow path would."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from iscsikit.errors import DatabaseError
from iscsikit.records import NodeRecord, Records, fsio

T = "iqn.2024-01.test.speed:t"


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


@pytest.fixture
def root(tmp_path: Path) -> Path:
    root = tmp_path / "db"
    for t in range(3):
        (root / "nodes" / f"t{t}" / "p").mkdir(parents=True)
        (root / "nodes" / f"t{t}" / "p" / "default").write_text("x")
    return root


def test_remover_removes_and_keeps_few_descriptors(root: Path) -> None:
    before = open_fds()
    with fsio.Remover(str(root)) as remover:
        for t in range(3):
            assert remover.unlink(f"{root}/nodes/t{t}/p/default")
            assert not remover.unlink(f"{root}/nodes/t{t}/p/default")  # gone
            assert remover.remove_empty_dir(f"{root}/nodes/t{t}/p")
            assert remover.remove_empty_dir(f"{root}/nodes/t{t}")
            assert open_fds() <= before + fsio.Remover.KEEP + 1
        assert not remover.unlink(f"{root}/nodes/t9/p/default")  # missing directory
    assert open_fds() == before
    assert list((root / "nodes").iterdir()) == []


def test_remover_refuses_a_link_met_from_an_open_parent(root: Path, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    (outside / "p").mkdir(parents=True)
    (outside / "p" / "default").write_text("keep")
    with fsio.Remover(str(root)) as remover:
        assert remover.unlink(f"{root}/nodes/t0/p/default")  # nodes/ now open
        assert remover.remove_empty_dir(f"{root}/nodes/t0/p")
        assert remover.remove_empty_dir(f"{root}/nodes/t0")
        (root / "nodes" / "t0").symlink_to(outside)
        with pytest.raises(DatabaseError, match="symbolic link"):
            remover.unlink(f"{root}/nodes/t0/p/default")
        assert not remover.unlink(f"{root}/nodes/t1/none")  # nodes/t1 now open
        (root / "nodes" / "t1" / "p" / "default").unlink()
        (root / "nodes" / "t1" / "p").rmdir()
        (root / "nodes" / "t1" / "p").symlink_to(outside / "p")
        with pytest.raises(DatabaseError, match="symbolic link"):
            remover.unlink(f"{root}/nodes/t1/p/default")
    assert (outside / "p" / "default").read_text() == "keep"


def test_open_dir_refuses_links_on_the_openat2_path(root: Path, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (root / "nodes" / "link").symlink_to(outside)
    (root / "nodes" / "inside").symlink_to("t0")  # a link that stays below the root
    root_fd = fsio.open_root(str(root))
    try:
        for name in ("link", "inside", "inside/p"):
            with pytest.raises(DatabaseError, match="symbolic link"):
                fsio.open_dir(f"{root}/nodes/{name}", str(root), root_fd=root_fd)
        fd = fsio.open_dir(f"{root}/nodes/t0/p", str(root), root_fd=root_fd)
        assert os.path.samestat(os.fstat(fd), (root / "nodes" / "t0" / "p").stat())
        os.close(fd)
    finally:
        os.close(root_fd)


def test_large_update_and_delete_leave_what_the_slow_path_would(tmp_path: Path) -> None:
    db = Records.at(tmp_path / "db", durable=True)
    db.add_nodes(NodeRecord.new(f"{T}{i:03d}", "127.0.0.1", 3260, 1) for i in range(40))
    before = open_fds()
    assert db.update_node_values({"node.startup": "automatic"}) == 40
    assert {r.values["node.startup"] for r in db.nodes()} == {"automatic"}
    texts = {p.name for p in (tmp_path / "db" / "nodes").rglob("*") if ".iscsikit-tmp" in p.name}
    assert not texts  # no temporary file left
    db.delete_nodes(db.found_node_ids())
    assert open_fds() == before
    assert list((tmp_path / "db" / "nodes").iterdir()) == []
    assert list((tmp_path / "db" / "static").iterdir()) == []
