"""Record-writer checks that mutation testing found untested (docs/mutation.md).

Each test drives :class:`~iscsikit.records.store.Records` on a tmp_path database and
pins a refusal of :mod:`iscsikit.records.writer` that a mutant removed without any other
test noticing: names that would escape the database tree, and a stored record whose
identity was changed in place.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

from iscsikit.errors import InvalidParameterError
from iscsikit.records import (
    DiscoveryRecord,
    IfaceRecord,
    NodeRecord,
    NodesNotWritten,
    Records,
    fsio,
)

T1 = "iqn.2001-04.com.example:disk1"
T2 = "iqn.2001-04.com.example:disk2"


@pytest.fixture
def db(tmp_path: Path) -> Records:
    return Records.at(tmp_path / "iscsi", durable=False)


def files(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if not str(p).count(".lock"))


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("node.name", "../../escaped"),
        ("node.name", "a/b"),
        ("node.conn[0].address", ".."),
        ("node.conn[0].address", "10.0.0.1/../.."),
        ("iface.iscsi_ifacename", "../default"),
        ("iface.iscsi_ifacename", "."),
    ],
)
def test_names_that_would_leave_the_tree_are_refused(
    db: Records, tmp_path: Path, key: str, value: str
) -> None:
    """A record's names become path components; one changed after the record was made
    is checked again when it is written, and nothing is written for it."""
    record = NodeRecord.new(T1, "10.0.0.1", 3260, 1)
    record.values[key] = value
    with pytest.raises(InvalidParameterError, match="for a record name"):
        db.add_node(record)
    written = [p for p in tmp_path.rglob("*") if not p.is_dir() and ".lock" not in str(p)]
    assert written == []
    assert not any("escaped" in name for name in os.listdir(tmp_path))


@pytest.mark.parametrize(("tpgt", "new_tpgt"), [(0, 5), (1, 0)])
def test_a_stored_new_record_cannot_change_its_identity(
    db: Records, tpgt: int, new_tpgt: int
) -> None:
    """A record made with ``new()`` carries no change set (it is rewritten whole), so
    the writer's path check is what refuses a tpgt changed after it was stored."""
    record = NodeRecord.new(T1, "10.0.0.1", 3260, tpgt)
    db.add_node(record)
    stored = files(db.db_root)
    record.values["node.tpgt"] = str(new_tpgt)
    with pytest.raises(InvalidParameterError, match="ids cannot be changed"):
        db.update_node(record)
    assert files(db.db_root) == stored
    assert db.node().tpgt == tpgt


def _isns_node(target: str = T1) -> NodeRecord:
    return NodeRecord.new(target, "10.0.0.1", 3260, 1,
                          discovery=DiscoveryRecord.new("isns", "127.0.0.2", 3205))  # fmt: skip


def test_isns_node_without_a_server_directory_links_in_isns_itself(db: Records) -> None:
    """``-m discovery -t isns`` stores no server record: iscsiadm links the node in
    isns/ itself (the pre-2.0-872 layout, setup_disc_to_node_link)."""
    db.add_node(_isns_node())
    link = db.db_root / "isns" / f"{T1},10.0.0.1,3260,1,default"
    assert link.is_symlink()
    assert not (db.db_root / "isns" / "127.0.0.2,3205").exists()


def test_isns_node_with_a_server_directory_links_there(db: Records) -> None:
    db.add_discovery(DiscoveryRecord.new("isns", "127.0.0.2", 3205))
    db.add_node(_isns_node())
    server = db.db_root / "isns" / "127.0.0.2,3205"
    assert (server / f"{T1},10.0.0.1,3260,1,default").is_symlink()
    assert not (db.db_root / "isns" / f"{T1},10.0.0.1,3260,1,default").exists()


def test_an_old_style_isns_link_found_wins(db: Records) -> None:
    """A node linked in isns/ before its server got a directory keeps that link when
    written again, as setup_disc_to_node_link finds it first."""
    db.add_node(_isns_node())
    db.add_discovery(DiscoveryRecord.new("isns", "127.0.0.2", 3205))
    db.add_node(_isns_node())
    old_style = db.db_root / "isns" / f"{T1},10.0.0.1,3260,1,default"
    assert old_style.is_symlink()
    server = db.db_root / "isns" / "127.0.0.2,3205"
    assert not (server / f"{T1},10.0.0.1,3260,1,default").exists()
    db.delete_node(db.node())  # the link the node is known by goes with it
    assert not os.path.lexists(old_style)


def test_an_old_style_record_over_a_directory_is_refused(db: Records) -> None:
    db.add_node(NodeRecord.new(T1, "10.0.0.2", 3260))  # makes the target directory
    path = db.db_root / "nodes" / T1 / "10.0.0.1,3260"
    path.mkdir()
    with pytest.raises(InvalidParameterError, match="is a directory, not a record"):
        db.add_node(NodeRecord.new(T1, "10.0.0.1", 3260))
    assert path.is_dir() and not any(path.iterdir())


def test_an_old_style_record_written_again(db: Records) -> None:
    """An old-style record has no link; writing it again replaces the file and touches
    no link."""
    db.add_node(NodeRecord.new(T1, "10.0.0.1", 3260))
    record = NodeRecord.new(T1, "10.0.0.1", 3260)
    record.values["node.session.timeo.replacement_timeout"] = "17"
    db.add_node(record)
    assert db.node().values["node.session.timeo.replacement_timeout"] == "17"
    assert db.problems == []
    assert [p.name for p in (db.db_root / "nodes" / T1).iterdir()] == ["10.0.0.1,3260"]


def test_a_node_of_an_unknown_sendtargets_server_gets_no_link_and_a_problem(
    db: Records,
) -> None:
    unknown = DiscoveryRecord.new("sendtargets", "10.9.9.9", 3260)
    record = NodeRecord.new(T1, "10.0.0.1", 3260, 1, discovery=unknown)
    db.add_node(record)
    server = db.db_root / "send_targets" / "10.9.9.9,3260"
    assert [str(p) for p in db.problems] == [f"{server}: no such discovery record: no link"]
    assert db.node().tpgt == 1
    assert not (db.db_root / "send_targets").exists() or not any(
        (db.db_root / "send_targets").iterdir()
    )


def test_an_update_is_applied_once(db: Records) -> None:
    """After an update the record's values count as stored: updating it again without
    new changes does not re-apply the old ones over a change another writer made since."""
    db.add_node(NodeRecord.new(T1, "10.0.0.1", 3260, 1))
    key = "node.session.timeo.replacement_timeout"
    record = db.node()
    record.values[key] = "5"
    db.update_node(record)
    db.update_node_values({key: "7"})  # another writer
    db.update_node(record)
    assert db.node().values[key] == "7"


def test_a_discovery_record_cannot_change_its_identity(db: Records) -> None:
    db.add_discovery(DiscoveryRecord.new("sendtargets", "10.9.9.9", 3260))
    (record,) = db.discoveries("sendtargets")
    record.values["discovery.sendtargets.address"] = "10.9.9.8"
    with pytest.raises(InvalidParameterError):
        db.update_discovery(record)
    assert [d.address for d in db.discoveries("sendtargets")] == ["10.9.9.9"]


def test_an_update_without_changes_leaves_the_file_alone(db: Records) -> None:
    """A record file not in open-iscsi's exact layout (a comment added by hand) is not
    normalized by an update that changes nothing."""
    db.add_node(NodeRecord.new(T1, "10.0.0.1", 3260, 1))
    path = db.db_root / "nodes" / T1 / "10.0.0.1,3260,1" / "default"
    text = "# edited by hand\n" + path.read_text()
    path.write_text(text)
    record = db.node()
    db.update_node(record)
    assert path.read_text() == text


def test_deleting_a_tpgt_0_node_removes_its_portal_directory(db: Records) -> None:
    db.add_node(NodeRecord.new(T1, "10.0.0.1", 3260, 0))
    db.delete_node(db.node())
    assert not (db.db_root / "nodes" / T1).exists()


def test_an_update_rewriting_a_malformed_file_reports_its_problems(db: Records) -> None:
    """A file open-iscsi's line splice cannot patch is rewritten whole; what was wrong
    in it is reported, not dropped silently."""
    db.add_node(NodeRecord.new(T1, "10.0.0.1", 3260, 1))
    path = db.db_root / "nodes" / T1 / "10.0.0.1,3260,1" / "default"
    path.write_text(path.read_text() + "this line is no key = value pair\n= nameless\n")
    record = db.node()
    record.values["node.session.timeo.replacement_timeout"] = "9"
    db.update_node(record)
    assert db.problems, "the malformed lines went unreported"
    assert all(p.path == path for p in db.problems)
    assert db.node().values["node.session.timeo.replacement_timeout"] == "9"


# -- durability: which directories are synced ----------------------------------------------
#
# records/fsio.py's contract: a record file's new text is on disk before its name points at
# it, and every directory whose entries changed (a file renamed in, a link made or
# removed, a subdirectory made or removed) is synced after its last change.  The spy
# below records, at each os.fsync / syncfs, the state of what it syncs: for a directory
# its entries as (name, inode) (a rename over a name changes the inode), for a file its
# text.  A test then checks the final tree against those snapshots.

_Entries = frozenset[tuple[str, int]]


def _entries(directory: str) -> _Entries:
    return frozenset(
        (e.name, e.inode()) for e in os.scandir(directory) if not e.name.startswith(".")
    )


def _state(root: Path) -> tuple[dict[str, _Entries], dict[str, str]]:
    """Every directory's entries and every regular file's text under ``root``."""
    dirs: dict[str, _Entries] = {}
    texts: dict[str, str] = {}
    for top, subdirs, names in os.walk(root):
        subdirs[:] = [d for d in subdirs if not d.startswith(".")]
        dirs[top] = _entries(top)
        for name in names:
            path = os.path.join(top, name)
            if not os.path.islink(path) and not name.startswith("."):
                texts[path] = Path(path).read_text()
    return dirs, texts


class SyncSpy:
    """Records what each os.fsync and syncfs made durable (see above)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, root: Path) -> None:
        self.root = root
        self.dirs: list[tuple[str, _Entries]] = []  # (directory, entries when synced)
        self.texts: list[tuple[str, str]] = []  # (file, its text) when synced
        self.syncfs = 0
        self.fsyncs = 0
        real_fsync = os.fsync

        def fsync(fd: int) -> None:
            self.fsyncs += 1
            path = os.readlink(f"/proc/self/fd/{fd}")
            if os.path.isdir(path):
                self.dirs.append((path, _entries(path)))
            else:
                self.texts.append((path, Path(path).read_text()))
            real_fsync(fd)

        def syncfs(path: str) -> None:
            self.syncfs += 1
            dirs, _ = _state(self.root)
            self.dirs.extend(dirs.items())
            for top, _, names in os.walk(self.root):
                files = (os.path.join(top, n) for n in names if not n.startswith(".lock"))
                self.texts += [(f, Path(f).read_text()) for f in files if not os.path.islink(f)]

        monkeypatch.setattr(os, "fsync", fsync)
        monkeypatch.setattr(fsio, "_syncfs", syncfs)

    def check(
        self, before: tuple[dict[str, _Entries], dict[str, str]], *, exact: bool = True
    ) -> None:
        """Every directory changed since ``before`` was synced in its final state, and
        every file written was synced with its final text before its rename; ``exact``: no directory
        whose entries did not change was synced."""
        after_dirs, after_texts = _state(self.root)
        changed = {d for d, e in after_dirs.items() if before[0].get(d) != e}
        # A directory made here was synced by its parent (its entries are new with it);
        # its own entries changed too and count like any other.
        for directory in sorted(changed):
            assert (directory, after_dirs[directory]) in self.dirs, (
                f"{directory} not synced after its last change"
            )
        written = {p for p, t in after_texts.items() if before[1].get(p) != t}
        for path in sorted(written):  # synced under its temporary name, before the rename
            assert any(t == after_texts[path] and p != path for p, t in self.texts), (
                f"{path}: its text was not synced before it was renamed into place"
            )
        if exact and not self.syncfs:
            synced = {d for d, _ in self.dirs}
            assert synced <= changed, f"synced although unchanged: {sorted(synced - changed)}"


def _sendtargets(db: Records, address: str = "127.0.0.1") -> DiscoveryRecord:
    disc = DiscoveryRecord.new("sendtargets", address, 3260)
    db.add_discovery(disc)
    return disc


def _nothing(db: Records) -> None:
    pass


def _add_static(db: Records) -> None:
    db.add_node(NodeRecord.new(T1, "10.0.0.1", 3260, 1))


def _add_discovered(db: Records) -> None:
    db.add_node(NodeRecord.new(T1, "127.0.0.1", 3260, 1), discovery=_sendtargets(db))


def _add_discovered_two(db: Records) -> None:
    disc = _sendtargets(db)
    db.add_nodes([NodeRecord.new(t, "127.0.0.1", 3260, 1) for t in (T1, T2)], discovery=disc)


def _rediscover_elsewhere(db: Records) -> None:
    """The node's link moves from one server's directory to another's."""
    second = db.discovery("sendtargets", "127.0.0.2")
    db.add_node(NodeRecord.new(T1, "127.0.0.1", 3260, 1), discovery=second)


def _add_second_server(db: Records) -> None:
    _add_discovered(db)
    _sendtargets(db, "127.0.0.2")


def _add_old_style(db: Records) -> None:
    db.add_node(NodeRecord.new(T1, "10.0.0.1", 3260))


def _add_with_tpgt(db: Records) -> None:
    """Replaces the old-style file: a new portal directory, the old file removed."""
    db.add_node(NodeRecord.new(T1, "10.0.0.1", 3260, 3))


def _add_again(db: Records) -> None:
    record = NodeRecord.new(T1, "10.0.0.1", 3260, 1)
    record.values["node.session.timeo.replacement_timeout"] = "17"
    db.add_node(record)


def _update(db: Records) -> None:
    record = db.node()
    record.set("node.startup", "automatic")
    db.update_node(record)


def _delete(db: Records) -> None:
    db.delete_node(db.node())


def _delete_by_id(db: Records) -> None:
    db.delete_node(db.node().id)


def _delete_both_by_id(db: Records) -> None:
    db.delete_nodes([db.node(target=T1).id, db.node(target=T2).id])


def _two_ifaces(db: Records) -> None:
    """One portal, two ifaces: the portal directory holds two record files."""
    _add_static(db)
    _bound_node(db)


def _two_old_style(db: Records) -> None:
    """One target directory holding two old-style record files."""
    db.add_node(NodeRecord.new(T1, "10.0.0.1", 3260))
    db.add_node(NodeRecord.new(T1, "10.0.0.2", 3260))


def _two_portals(db: Records) -> None:
    """One target directory holding two portal directories."""
    db.add_node(NodeRecord.new(T1, "10.0.0.1", 3260, 1))
    db.add_node(NodeRecord.new(T1, "10.0.0.2", 3260, 1))


def _delete_default_iface(db: Records) -> None:
    db.delete_node(db.node(iface="default"))


def _delete_first_portal(db: Records) -> None:
    db.delete_node(db.node(address="10.0.0.1"))


def _delete_one_of_two(db: Records) -> None:
    db.delete_node(db.node(target=T2))


def _add_isns_and_static(db: Records) -> None:
    db.add_node(_isns_node())
    db.add_node(NodeRecord.new(T2, "10.0.0.1", 3260, 1))


def _add_iface(db: Records) -> None:
    db.add_iface(IfaceRecord.new("ifx"))


def _update_iface(db: Records) -> None:
    ifx = db.iface("ifx")
    ifx.set("iface.mtu", "9000")
    db.update_iface(ifx)


def _bound_node(db: Records) -> None:
    _add_iface(db)
    db.add_node(NodeRecord.new(T1, "10.0.0.1", 3260, 1, iface=db.iface("ifx")))


def _update_discovery(db: Records) -> None:
    disc = db.discovery("sendtargets", "127.0.0.1")
    disc.set("discovery.sendtargets.timeo.login_timeout", "9")
    db.update_discovery(disc)


@pytest.mark.parametrize(
    ("setup", "action"),
    [
        (_nothing, _add_static),
        (_nothing, _add_discovered),
        (_nothing, _add_discovered_two),
        (_add_second_server, _rediscover_elsewhere),
        (_add_old_style, _add_with_tpgt),
        (_add_static, _add_again),
        (_add_static, _update),
        (_add_static, _delete),
        (_add_discovered, _delete),
        (_add_discovered, _delete_by_id),
        (_add_discovered_two, _delete_one_of_two),
        (_two_ifaces, _delete_default_iface),
        (_two_old_style, _delete_first_portal),
        (_two_portals, _delete_first_portal),
        (_add_old_style, _delete),
        (_nothing, _add_isns_and_static),
        (_add_isns_and_static, _delete_both_by_id),
        (_nothing, _add_iface),
        (_bound_node, _update_iface),
        (_add_discovered, _update_discovery),
    ],
    ids=lambda f: f.__name__.strip("_"),
)
def test_every_changed_directory_is_synced_after_its_change(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    setup: Callable[[Records], None],
    action: Callable[[Records], None],
) -> None:
    db = Records.at(tmp_path / "iscsi", durable=True)
    setup(db)
    before = _state(db.db_root)
    spy = SyncSpy(monkeypatch, db.db_root)
    action(db)
    assert spy.syncfs == 0  # a few files: fsync() each file and directory
    spy.check(before)


def test_a_large_batch_is_synced_by_syncfs_before_and_after_the_renames(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """From fsio.SYNCFS_THRESHOLD files on (so: exactly that many here), one syncfs()
    before the renames and one after replace the fsync()s; the contract is the same."""
    db = Records.at(tmp_path / "iscsi", durable=True)
    disc = _sendtargets(db)
    targets = [f"{T1}-{i}" for i in range(fsio.SYNCFS_THRESHOLD)]  # exactly as many
    before = _state(db.db_root)
    spy = SyncSpy(monkeypatch, db.db_root)
    db.add_nodes([NodeRecord.new(t, "127.0.0.1", 3260, 1) for t in targets], discovery=disc)
    spy.check(before)
    assert spy.syncfs >= 2
    before = _state(db.db_root)
    spy = SyncSpy(monkeypatch, db.db_root)
    db.delete_nodes([db.node(target=t) for t in targets])
    spy.check(before)
    assert (spy.syncfs, spy.fsyncs) == (1, 0)  # one syncfs, no fsync per directory


# -- scenarios the first run found untested ----------------------------------------------


def test_deleting_the_fw_source_removes_its_nodes_and_links(db: Records) -> None:
    fw = DiscoveryRecord.new("fw")
    db.add_node(NodeRecord.new(T1, "10.0.0.1", 3260, 1), discovery=fw)
    db.add_node(NodeRecord.new(T2, "10.0.0.2", 3260, 1))  # static: stays
    assert (db.db_root / "fw" / f"{T1},10.0.0.1,3260,1,default").is_symlink()
    db.delete_discovery(db.discovery("fw"))
    assert [n.target for n in db.nodes()] == [T2]
    assert not any((db.db_root / "fw").iterdir())


def test_a_pre_directory_discovery_file_is_updated_and_deleted_in_place(db: Records) -> None:
    """Before open-iscsi 2.0-872 a SendTargets record was the file
    ``send_targets/<address>,<port>`` itself; iscsiadm still reads and updates it there."""
    disc = _sendtargets(db)
    directory = db.db_root / "send_targets" / "127.0.0.1,3260"
    text = (directory / "st_config").read_text()
    (directory / "st_config").unlink()
    directory.rmdir()
    directory.write_text(text)
    record = db.discovery("sendtargets", "127.0.0.1")
    record.set("discovery.sendtargets.timeo.login_timeout", "9")
    db.update_discovery(record)
    assert directory.is_file()
    assert "discovery.sendtargets.timeo.login_timeout = 9" in directory.read_text()
    assert (
        db.discovery("sendtargets", "127.0.0.1").get("discovery.sendtargets.timeo.login_timeout")
        == "9"
    )
    db.delete_discovery(disc)
    assert not directory.exists()


def test_a_record_written_whole_counts_as_stored(db: Records) -> None:
    """After add_iface / add_discovery the record object tracks changes from what was
    written: a later update applies only its own change, keeping another writer's."""
    ifx = IfaceRecord.new("ifx")
    db.add_iface(ifx)
    assert ifx.path == db.db_root / "ifaces" / "ifx"
    theirs = db.iface("ifx")
    theirs.set("iface.mtu", "9000")
    db.update_iface(theirs)
    ifx.set("iface.prefix_len", "24")
    db.update_iface(ifx)
    stored = db.iface("ifx")
    assert (stored.get("iface.mtu"), stored.get("iface.prefix_len")) == ("9000", "24")


def test_a_file_naming_another_stored_record_is_not_replaced(db: Records) -> None:
    """The file at T1's path names T2, which is stored: iscsiadm would delete T2's
    record there; iscsikit refuses T1 and leaves both files alone."""
    db.add_node(NodeRecord.new(T1, "10.0.0.1", 3260, 1))
    db.add_node(NodeRecord.new(T2, "10.0.0.1", 3260, 1))
    path = db.db_root / "nodes" / T1 / "10.0.0.1,3260,1" / "default"
    foreign = (db.db_root / "nodes" / T2 / "10.0.0.1,3260,1" / "default").read_text()
    path.write_text(foreign)
    with pytest.raises(NodesNotWritten) as err:
        db.add_node(NodeRecord.new(T1, "10.0.0.1", 3260, 1))
    named = db.db_root / "nodes" / T2 / "10.0.0.1,3260,1" / "default"
    assert str(err.value) == f"{path} names the record {named}: not replaced"
    assert [r.target for r, _ in err.value.refused] == [T1]
    assert path.read_text() == foreign


def test_replacing_a_node_of_a_discovery_type_without_links(db: Records) -> None:
    """An SLP-discovered node has no link (setup_disc_to_node_link); replacing it by a
    static one removes no link and makes the static one."""
    record = NodeRecord.new(T1, "10.0.0.1", 3260, 1)
    record.values["node.discovery_type"] = "slp"
    db.add_node(record)
    db.add_node(NodeRecord.new(T1, "10.0.0.1", 3260, 1))
    assert db.problems == []
    assert (db.db_root / "static" / f"{T1},10.0.0.1,3260,1,default").is_symlink()
    assert db.node().discovery_type == "static"


def test_one_batch_storing_a_node_twice_keeps_the_link_of_the_last(db: Records) -> None:
    """A batch holding one node twice, first found by server B then by A (where it is
    stored): A's link, stale for the first record, is the second's new link and stays."""
    first, second = _sendtargets(db), _sendtargets(db, "127.0.0.2")
    db.add_node(NodeRecord.new(T1, "10.0.0.1", 3260, 1), discovery=first)
    via_b, via_a = (NodeRecord.new(T1, "10.0.0.1", 3260, 1) for _ in range(2))
    via_b.set_discovery(second)
    via_a.set_discovery(first)
    db.add_nodes([via_b, via_a])
    assert db.node().discovery_address == "127.0.0.1"
    assert [n.target for n in db.discovery_nodes(first)] == [T1]


def test_deleting_a_discovered_node_removes_its_static_link_too(db: Records) -> None:
    """A node found by SendTargets may also have a static/ link (left by an older
    iscsiadm -o new): usr/idbm.c idbm_delete_node removes static and fw links too."""
    db.add_node(NodeRecord.new(T1, "127.0.0.1", 3260, 1), discovery=_sendtargets(db))
    static = db.db_root / "static"
    static.mkdir(exist_ok=True)
    link = static / f"{T1},127.0.0.1,3260,1,default"
    link.symlink_to(db.db_root / "nodes" / T1 / "127.0.0.1,3260,1")
    db.delete_node(db.node())
    assert not os.path.lexists(link)
    assert db.nodes() == []


def test_a_deleted_record_has_no_pending_changes(db: Records) -> None:
    """After delete the record object is stored nowhere and has nothing left to apply."""
    db.add_node(NodeRecord.new(T1, "10.0.0.1", 3260, 1))
    record = db.node()
    record.set("node.startup", "automatic")
    db.delete_node(record)
    assert record.path is None
    assert record.changes() == {}


def test_a_malformed_discovery_file_rewritten_whole_gets_discovery_defaults(
    db: Records,
) -> None:
    """A discovery file the line splice cannot patch is rewritten whole from the
    discovery registry's defaults plus what the file holds (and its identity keys)."""
    _sendtargets(db)
    path = db.db_root / "send_targets" / "127.0.0.1,3260" / "st_config"
    path.write_text("discovery.startup = manual\nno pair here\n")
    record = db.discovery("sendtargets", "127.0.0.1")
    record.set("discovery.sendtargets.timeo.login_timeout", "9")
    db.update_discovery(record)
    assert db.problems, "the malformed line went unreported"
    expected = DiscoveryRecord.new("sendtargets", "127.0.0.1", 3260)
    expected.set("discovery.sendtargets.timeo.login_timeout", "9")
    assert path.read_text() == expected.to_text()


def test_a_store_that_is_not_durable_syncs_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``durable=False`` (tests, scratch data): no fsync or syncfs, whatever changed."""
    db = Records.at(tmp_path / "iscsi", durable=False)
    spy = SyncSpy(monkeypatch, db.db_root)
    _add_second_server(db)
    _rediscover_elsewhere(db)  # a stale link removed
    _add_old_style(db)
    _add_with_tpgt(db)  # a stale old-style file removed
    db.delete_nodes([n.id for n in db.nodes()])
    assert db.nodes() == []
    assert (spy.fsyncs, spy.syncfs) == (0, 0)


def test_deleting_as_many_records_as_the_threshold_in_few_directories_uses_syncfs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The syncfs choice counts files, not directories: SYNCFS_THRESHOLD records of one
    portal (one per iface) live in one directory, and deleting them is one syncfs."""
    db = Records.at(tmp_path / "iscsi", durable=False)
    names = [f"if{i}" for i in range(fsio.SYNCFS_THRESHOLD)]
    for name in names:
        db.add_iface(IfaceRecord.new(name))
    db.add_nodes([NodeRecord.new(T1, "10.0.0.1", 3260, 1, iface=db.iface(n)) for n in names])
    db = Records.at(tmp_path / "iscsi", durable=True)
    before = _state(db.db_root)
    spy = SyncSpy(monkeypatch, db.db_root)
    db.delete_nodes([n.id for n in db.nodes()])
    spy.check(before)
    assert (spy.syncfs, spy.fsyncs) == (1, 0)
