"""The node-name cache (records/namecache.py): a listing through it is always the
listing of the tree as it is now -- after changes made between listings, in the same
clock tick as a listing (racily clean directories), behind a restored mtime -- and a
cache file that is not trustworthy (corrupt, truncated, a link, another owner, a loose
mode) is ignored."""

from __future__ import annotations

import hashlib
import marshal
import os
import subprocess
import time
from pathlib import Path

import pytest

from iscsikit.records import NodeRecord, Records, namecache
from iscsikit.records.layout import NodeId
from iscsikit.records.namecache import MARGIN_NS, NameCache

T = "iqn.2024-01.test.cache:t"


def walk(root: Path) -> list[NodeId]:
    """The listing without any cache."""
    return Records.at(root, durable=False, name_cache=False).node_ids()


def settle() -> None:
    """Let every directory time fall out of the racy window."""
    time.sleep(MARGIN_NS / 1e9 * 2)


@pytest.fixture
def db(tmp_path: Path) -> Records:
    records = Records.at(tmp_path / "iscsi", durable=False)
    records.add_nodes(NodeRecord.new(f"{T}{i}", "127.0.0.1", 3260 + (i % 2), 1) for i in range(6))
    return records


def cache_file(db: Records) -> Path:
    path = db._reader.names.path() if db._reader.names else None
    assert path is not None
    return Path(path)


def warm(db: Records) -> list[NodeId]:
    settle()
    first = db.node_ids()
    assert db._reader.last_walk[1] > 0  # read the tree
    second = db.node_ids()
    assert second == first
    hits, misses = db._reader.last_walk
    assert misses == 0 and hits == 1 + 6 + 6, db._reader.last_walk  # nodes/, T/, T/P
    return first


def test_cached_listing_is_the_tree(db: Records) -> None:
    assert warm(db) == walk(db.db_root)
    path = cache_file(db)
    assert path.is_file() and (path.stat().st_mode & 0o777) == 0o600
    # The cache lives outside the records: nothing new anywhere iscsiadm reads.
    assert not str(path).startswith(str(db.db_root / "nodes"))
    assert path.parent.parent == db.paths.run_dir


@pytest.mark.parametrize("change", ["new target", "new portal", "new iface", "delete"])
def test_changes_between_listings_are_seen(db: Records, change: str) -> None:
    warm(db)
    if change == "new target":
        db.add_node(NodeRecord.new(f"{T}x", "127.0.0.1", 3260, 1))
    elif change == "new portal":
        db.add_node(NodeRecord.new(f"{T}0", "127.0.0.2", 3260, 1))
    elif change == "new iface":
        (db.db_root / "nodes" / f"{T}0" / "127.0.0.1,3260,1" / "other").write_text("x")
    else:
        db.delete_node(db.node_ids(target=f"{T}3")[0])
    assert db.node_ids() == walk(db.db_root)  # at once: in the racy window
    settle()
    assert db.node_ids() == walk(db.db_root)  # and later, from the cache
    assert db.node_ids() == walk(db.db_root)


def test_racily_clean_directory_is_not_trusted(tmp_path: Path) -> None:
    """A listing is kept only if every directory's times are older than the start of
    the walk by the margin: a change in the same clock tick leaves them as they were."""
    top = tmp_path / "nodes"
    (top / "a").mkdir(parents=True)
    read = [str(top), str(top / "a")]
    newest = max(max(st.st_mtime_ns, st.st_ctime_ns) for st in map(os.stat, read))
    cache = NameCache(str(tmp_path), str(tmp_path / "run"))
    nodes = [("t", "127.0.0.1", 3260, 1, "a")]
    assert not cache.store(str(top), read, nodes, newest + MARGIN_NS)  # racy: not kept
    assert cache.load(str(top)) is None
    assert cache.store(str(top), read, nodes, newest + MARGIN_NS + 1)
    assert cache.load(str(top)) == nodes
    assert cache.checked == 2
    (top / "b").mkdir()  # the top directory changes: the listing is no longer used
    assert cache.load(str(top)) is None


def test_mtime_restored_with_touch_d_is_seen(db: Records) -> None:
    warm(db)
    portal = db.db_root / "nodes" / f"{T}0" / "127.0.0.1,3260,1"
    before = portal.stat().st_mtime_ns
    (portal / "other").write_text("x")
    stamp = f"@{before // 10**9}.{before % 10**9:09d}"
    subprocess.run(["touch", "-m", "-d", stamp, str(portal)], check=True)
    assert portal.stat().st_mtime_ns == before
    ids = db.node_ids()
    assert NodeId(f"{T}0", "127.0.0.1", 3260, 1, "other") in ids
    assert ids == walk(db.db_root)


def test_replaced_directory_is_seen(db: Records) -> None:
    """Another directory with the same times under the same name (another inode)."""
    warm(db)
    portal = db.db_root / "nodes" / f"{T}0" / "127.0.0.1,3260,1"
    st = portal.stat()
    portal.rename(portal.with_name("moved"))
    portal.mkdir()
    (portal / "other").write_text("x")
    os.utime(portal, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert db.node_ids() == walk(db.db_root)


def forge(db: Records) -> Path:
    """A cache that lists a node that does not exist (valid checksum): used only when
    the file is trusted, so the tests below can see whether it was."""
    path = cache_file(db)
    data = path.read_bytes()
    head = len(namecache._MAGIC) + namecache._DIGEST
    top, rels, keys, nodes = marshal.loads(data[head:])
    nodes.append((f"{T}0", "127.0.0.1", 3260, 1, "forged"))
    payload = marshal.dumps((top, rels, keys, nodes))
    digest = hashlib.blake2b(payload, digest_size=namecache._DIGEST).digest()
    path.write_bytes(namecache._MAGIC + digest + payload)
    return path


def test_forged_cache_shows_it_is_trusted_when_ours(db: Records) -> None:
    warm(db)
    forge(db)
    assert NodeId(f"{T}0", "127.0.0.1", 3260, 1, "forged") in db.node_ids()


@pytest.mark.parametrize(
    "damage", ["corrupt", "truncated", "empty", "symlink", "foreign owner", "mode 0644", "dir mode"]
)
def test_untrustworthy_cache_is_ignored(db: Records, damage: str, tmp_path: Path) -> None:
    truth = warm(db)
    path = forge(db)
    if damage == "corrupt":
        data = bytearray(path.read_bytes())
        data[-3] ^= 0xFF
        path.write_bytes(bytes(data))
    elif damage == "truncated":
        path.write_bytes(path.read_bytes()[:-7])
    elif damage == "empty":
        path.write_bytes(b"")
    elif damage == "symlink":
        elsewhere = tmp_path / "elsewhere"
        path.rename(elsewhere)
        path.symlink_to(elsewhere)
    elif damage == "foreign owner":
        os.chown(path, 65534, 65534)
    elif damage == "mode 0644":
        path.chmod(0o644)
    else:
        path.parent.chmod(0o777)
    assert db.node_ids() == truth == walk(db.db_root)


def test_listing_works_without_a_usable_cache_directory(db: Records) -> None:
    truth = warm(db)
    directory = cache_file(db).parent
    for child in directory.iterdir():
        child.unlink()
    directory.rmdir()
    directory.write_text("not a directory")
    assert db.node_ids() == truth
    assert db.node_ids() == truth


def test_cache_only_on_local_filesystems(db: Records, monkeypatch: pytest.MonkeyPatch) -> None:
    """Directory times are trusted only where one clock stamps them and stat() is not
    served from an attribute cache: on anything else every listing walks."""
    top = str(db.db_root / "nodes")
    assert namecache.fs_type(top) in namecache.LOCAL_FS  # tmp_path: ext4 or tmpfs here
    truth = warm(db)
    monkeypatch.setattr(namecache, "LOCAL_FS", frozenset({0x6969}))  # as if only NFS were
    forge(db)
    assert db.node_ids() == truth
    assert db._reader.last_walk[1] > 0  # walked, the (forged) cache not used
