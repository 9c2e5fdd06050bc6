"""Corrupt and unusual node records: iscsikit-adm against iscsiadm 2.1.8, class by class.

One starting database (two nodes, built by iscsiadm) is copied for each class; the
record of :data:`T` is damaged the same way in both copies, then both tools run the
same command (``-m node``, ``-o show``, ``-o update``, ``-o delete``, ``-o new``) and
the exit codes, stdout and the record file afterwards are compared:

* :data:`FOUND` -- the file is still the record for iscsiadm (duplicate keys, CRLF, NUL
  bytes, lines over iscsiadm's 2047-byte fgets buffer, huge numbers, keys of other
  versions, no END line, modes 0000/0644, a non-default iface file...): same stdout and
  exit code for every command; what iscsikit writes reads back through iscsiadm as the
  values iscsikit shows (``-o show -S``), also after iscsiadm's own update.
* :data:`NOT_FOUND` -- iscsiadm reads the identity from the file and does not find it
  (empty, garbage, truncated, no ``node.name`` / address line, another name / port,
  NUL in the name): "No records found" (21) for show, update, delete and login, and
  ``-o new`` fails with iscsiadm's two lines (6); the file is never rewritten.
* :data:`DELIBERATE` -- iscsiadm finds the file by its values but then writes or
  deletes another path (tpgt or iface in the file differ from the path): iscsikit
  treats it as not found; docs/compatibility.md, "Corrupt and unusual records".

Listing goes by directory names in iscsikit (deliberate; iscsiadm prints the file's
values, e.g. ``[]:3260,4294967295`` for an empty file): checked equal for FOUND only.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from iscsikit.testing.oracle import Oracle, unavailable

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(unavailable() is not None, reason=str(unavailable())),
]

T = "iqn.2024-01.test.corrupt:a"
OTHER = "iqn.2024-01.test.corrupt:b"
ADDRESS = "127.0.0.1"
PORTAL = f"{ADDRESS}:3260"
REL = f"nodes/{T}/{ADDRESS},3260,1/default"
SHOW = ("-m", "node", "-T", T, "-p", PORTAL, "-o", "show", "-S")
UPDATE = (
    "-m",
    "node",
    "-T",
    T,
    "-p",
    PORTAL,
    "-o",
    "update",
    "-n",
    "node.startup",
    "-v",
    "automatic",
)
DELETE = ("-m", "node", "-T", T, "-p", PORTAL, "-o", "delete")
LOGIN = ("-m", "node", "-T", T, "-p", PORTAL, "-l")
NEW = ("-m", "node", "-o", "new", "-T", T, "-p", f"{PORTAL},1")

Edit = Callable[[bytes], bytes]


def _sub(old: bytes, new: bytes) -> Edit:
    def edit(data: bytes) -> bytes:
        assert old in data, old
        return data.replace(old, new, 1)

    return edit


def _drop(prefix: bytes) -> Edit:
    def edit(data: bytes) -> bytes:
        assert prefix in data, prefix
        return b"\n".join(line for line in data.split(b"\n") if not line.startswith(prefix))

    return edit


def _after(extra: bytes) -> Edit:
    return _sub(b"node.startup = manual\n", b"node.startup = manual\n" + extra + b"\n")


NAME_LINE = f"node.name = {T}".encode()
CMDS_MAX = b"node.session.cmds_max = 128"
FOUND: dict[str, Edit] = {
    "duplicate-key": _after(b"node.startup = automatic"),
    "crlf": lambda d: d.replace(b"\n", b"\r\n"),
    "nul-in-value": _sub(b"node.startup = manual", b"node.startup = man\0ual"),
    "huge-number": _sub(b"node.session.cmds_max = 128", b"node.session.cmds_max = " + b"9" * 5000),
    "number-over-64-bits": _sub(
        b"node.session.cmds_max = 128", b"node.session.cmds_max = " + b"9" * 30
    ),
    "line-over-2047": _after(b"node.session.auth.username = " + b"u" * 3000),
    "line-of-2046": _after(b"node.session.auth.username = " + b"u" * 2016),
    "keys-of-2.0-873": _after(
        b"node.session.iscsi.ImmediateData = Yes\nnode.conn[0].iscsi.IFMarker = No\n"
        b"node.conn[0].iscsi.OFMarker = No",
    ),
    "no-end-line": _sub(b"# END RECORD\n", b""),
    "no-last-newline": lambda d: d.rstrip(b"\n"),
    "no-port-line": _drop(b"node.conn[0].port"),
    "no-iface-name-line": _drop(b"iface.iscsi_ifacename"),
    "truncated-after-identity": lambda d: d[: d.index(b"node.conn[0].startup") + 10],
}
NOT_FOUND: dict[str, Edit] = {
    "empty": lambda d: b"",
    "binary-garbage": lambda d: bytes(range(256)) * 3,
    "truncated": lambda d: d[: len(d) // 2],
    "no-name-line": _drop(b"node.name"),
    "no-address-line": _drop(b"node.conn[0].address"),
    "other-name": _sub(NAME_LINE, NAME_LINE + b"zz"),
    "name-set-twice": _sub(b"node.tpgt = 1\n", b"node.tpgt = 1\n" + NAME_LINE + b"zz\n"),
    "other-port": _sub(b"node.conn[0].port = 3260", b"node.conn[0].port = 3261"),
    "nul-in-name": _sub(NAME_LINE, NAME_LINE + b"\0x"),
}
#: NOT_FOUND classes whose file still holds node.name = T.
NAME_KEPT = frozenset({"truncated", "no-address-line", "other-port"})
DELIBERATE: dict[str, Edit] = {
    "other-tpgt": _sub(b"node.tpgt = 1\n", b"node.tpgt = 7\n"),
    "no-tpgt-line": _drop(b"node.tpgt"),
    "other-iface-name": _sub(
        b"iface.iscsi_ifacename = default", b"iface.iscsi_ifacename = elsewhere"
    ),
}


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("corrupt-base")
    oracle = Oracle(path)
    for target in (T, OTHER):
        result = oracle.run("-m", "node", "-o", "new", "-T", target, "-p", f"{PORTAL},1")
        assert result.returncode == 0, result.stderr
    return path


class Pair:
    """The oracle's copy and iscsikit's copy of one damaged database."""

    def __init__(self, base: Path, tmp: Path, edit: Edit | None) -> None:
        self.oracle_dir = tmp / "oracle"
        shutil.copytree(base, self.oracle_dir, symlinks=True)
        self.oracle = Oracle(self.oracle_dir)
        self.root = tmp / "root"
        (self.root / "etc").mkdir(parents=True)
        shutil.copytree(base / "etc-iscsi", self.kit_db, symlinks=True)
        if edit is not None:
            data = edit((self.ora_db / REL).read_bytes())
            (self.ora_db / REL).write_bytes(data)
            (self.kit_db / REL).write_bytes(data)

    @property
    def ora_db(self) -> Path:
        return self.oracle_dir / "etc-iscsi"

    @property
    def kit_db(self) -> Path:
        return self.root / "etc" / "iscsi"

    def theirs(self, *args: str) -> tuple[int, bytes, str]:
        return _oracle(self.oracle_dir, args)

    def ours(self, *args: str) -> tuple[int, bytes, str]:
        env = {**os.environ, "ISCSIKIT_ROOT": str(self.root)}
        proc = subprocess.run(
            [sys.executable, "-m", "iscsikit", *args],
            capture_output=True,
            env=env,
            timeout=120,
            check=False,
        )
        return proc.returncode, proc.stdout, proc.stderr.decode(errors="replace")

    def both(self, *args: str) -> tuple[tuple[int, bytes, str], tuple[int, bytes, str]]:
        return self.theirs(*args), self.ours(*args)


def _oracle(oracle_dir: Path, args: tuple[str, ...]) -> tuple[int, bytes, str]:
    """iscsiadm in the oracle's namespaces, stdout as bytes (it may echo what it read)."""
    Path("/run/lock/iscsi").mkdir(parents=True, exist_ok=True)
    inner = [sys.executable, "-m", "iscsikit.testing.oracle", str(oracle_dir)]
    proc = subprocess.run(
        ["unshare", "-m", "-n", *inner, "--", *args],
        capture_output=True,
        timeout=120,
        check=False,
    )
    return proc.returncode, proc.stdout, proc.stderr.decode(errors="replace")


def read_back(db: Path, tmp: Path, args: tuple[str, ...] = SHOW) -> tuple[int, bytes]:
    """``-o show -S`` of T (or ``args``) by iscsiadm, on a copy of ``db``."""
    copy = tmp / f"readback-{len(list(tmp.glob('readback-*')))}"
    shutil.copytree(db, copy / "etc-iscsi", symlinks=True)
    Oracle(copy)
    code, out, _ = _oracle(copy, args)
    return code, out


def last_error(stderr: str) -> str:
    lines = [ln for ln in stderr.splitlines() if "connect to iSCSI daemon" not in ln]
    return lines[-1].split(": ", 1)[1] if lines else ""


# -- FOUND ----------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(FOUND))
def test_found_classes_behave_as_iscsiadm(base: Path, tmp_path: Path, name: str) -> None:
    pair = Pair(base, tmp_path, FOUND[name])
    for args in (("-m", "node"), ("-m", "node", "-P", "1"), SHOW):
        theirs, ours = pair.both(*args)
        assert (ours[0], ours[1]) == (theirs[0], theirs[1]), (args, ours[2], theirs[2])
    theirs, ours = pair.both(*UPDATE)
    assert (ours[0], ours[1]) == (theirs[0], theirs[1]) == (0, b""), (ours[2], theirs[2])
    # what iscsikit wrote reads back through iscsiadm as iscsikit shows it, and as the
    # record iscsiadm's own update left
    shown = pair.ours(*SHOW)
    assert shown[0] == 0 and b"node.startup = automatic" in shown[1]
    assert read_back(pair.kit_db, tmp_path) == (0, shown[1])
    assert read_back(pair.kit_db, tmp_path) == read_back(pair.ora_db, tmp_path)
    # -o new over it (a replacement), then delete
    theirs, ours = pair.both(*NEW)
    assert (ours[0], ours[1]) == (theirs[0], theirs[1]), (ours[2], theirs[2])
    assert read_back(pair.kit_db, tmp_path) == read_back(pair.ora_db, tmp_path)
    theirs, ours = pair.both(*DELETE)
    assert ours[0] == theirs[0] == 0
    assert not (pair.kit_db / REL).exists() and not (pair.ora_db / REL).exists()


def test_unknown_key_is_shown_where_iscsiadm_refuses_the_record(base: Path, tmp_path: Path) -> None:
    """2.1.8's libopeniscsiusr fails the whole listing and show on an unknown key (7);
    its record reader for update ignores the line.  iscsikit lists and shows the record
    (the key reported as a problem) -- a deliberate difference."""
    pair = Pair(base, tmp_path, _after(b"node.brand_new_key = 1"))
    for args in (("-m", "node"), SHOW):
        theirs, ours = pair.both(*args)
        assert theirs[0] == 7 and "node.brand_new_key" in theirs[2]
        assert ours[0] == 0 and ours[1]
    theirs, ours = pair.both(*UPDATE)
    assert ours[0] == theirs[0] == 0
    assert read_back(pair.kit_db, tmp_path) == read_back(pair.ora_db, tmp_path)


# -- NOT_FOUND ------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(NOT_FOUND))
def test_not_found_classes_are_no_records_and_never_rewritten(
    base: Path, tmp_path: Path, name: str
) -> None:
    pair = Pair(base, tmp_path, NOT_FOUND[name])
    damaged = (pair.kit_db / REL).read_bytes()
    # -T alone: iscsiadm matches the file's node.name only, and so shows a file that
    # has it but not the address or port of its path; iscsikit: not a record (21).
    theirs, ours = pair.both("-m", "node", "-T", T)
    assert theirs[0] == (0 if name in NAME_KEPT else 21) and ours == (21, b"", ours[2])
    for args in (SHOW, UPDATE, DELETE, LOGIN):
        theirs, ours = pair.both(*args)
        assert (ours[0], ours[1]) == (theirs[0], theirs[1]) == (21, b""), (args, ours, theirs)
        assert last_error(ours[2]) == last_error(theirs[2]) == "No records found"
        assert (pair.kit_db / REL).read_bytes() == damaged
        assert (pair.ora_db / REL).read_bytes() == damaged
    theirs, ours = pair.both(*NEW)
    assert (ours[0], ours[1]) == (theirs[0], theirs[1]) == (6, b""), (ours, theirs)
    ours_lines = [ln.split(": ", 1)[1] for ln in ours[2].splitlines()]
    theirs_lines = [
        ln.split(": ", 1)[1]
        for ln in theirs[2].splitlines()
        if ln.startswith("iscsiadm: ") and "too long" not in ln and "daemon" not in ln
    ]
    assert [ln.replace(str(pair.kit_db), "/etc/iscsi") for ln in ours_lines] == theirs_lines
    assert (pair.kit_db / REL).read_bytes() == damaged
    # the other record is untouched and still works
    code, out, _ = pair.ours("-m", "node", "-T", OTHER, "-p", PORTAL, "-o", "show")
    assert code == 0 and f"node.name = {OTHER}\n".encode() in out


# -- DELIBERATE -----------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(DELIBERATE))
def test_identity_elsewhere_is_not_found_where_iscsiadm_writes_another_file(
    base: Path, tmp_path: Path, name: str
) -> None:
    pair = Pair(base, tmp_path, DELIBERATE[name])
    damaged = (pair.kit_db / REL).read_bytes()
    theirs, ours = pair.both(*SHOW)
    assert theirs[0] == 0 and ours[0] == 21
    theirs, ours = pair.both(*UPDATE)
    assert theirs[0] == 0 and ours[0] == 21
    # iscsiadm wrote the update to the path the file's values name: a second record
    ora_files = sorted(p for p in (pair.ora_db / "nodes" / T).rglob("*") if p.is_file())
    assert len(ora_files) == 2
    assert (pair.kit_db / REL).read_bytes() == damaged
    # -o new over it: iscsiadm deletes the record the file names first and fails where
    # there is none (6) -- so does iscsikit, without touching the file
    pair = Pair(base, tmp_path / "new", DELIBERATE[name])
    theirs, ours = pair.both(*NEW)
    assert ours[0] == theirs[0] == 6
    assert (pair.kit_db / REL).read_bytes() == damaged


# -- the file system ------------------------------------------------------------------


def test_file_modes_as_root(base: Path, tmp_path: Path) -> None:
    """A 0000 record file and a 0000 portal directory are read as root by both; an
    update leaves iscsikit's file 0600 (it replaces files; iscsiadm rewrites in place
    and keeps the mode: deliberate, record files hold CHAP secrets)."""
    for mode_of in ("file", "dir", "0644"):
        pair = Pair(base, tmp_path / mode_of, None)
        for db in (pair.ora_db, pair.kit_db):
            target = db / REL if mode_of != "dir" else (db / REL).parent
            target.chmod(0o644 if mode_of == "0644" else 0)
        theirs, ours = pair.both(*SHOW)
        assert (ours[0], ours[1]) == (theirs[0], theirs[1]) and ours[0] == 0
        theirs, ours = pair.both(*UPDATE)
        assert ours[0] == theirs[0] == 0
        (pair.kit_db / REL).parent.chmod(0o700)
        assert stat.S_IMODE((pair.kit_db / REL).stat().st_mode) == 0o600
        (pair.ora_db / REL).parent.chmod(0o700)
        assert read_back(pair.kit_db, tmp_path) == read_back(pair.ora_db, tmp_path)


def _plant(db: Path, kind: str, tmp: Path) -> None:
    record = db / REL
    if kind == "dangling-record":
        record.unlink()
        record.symlink_to(tmp / "missing-record")
    elif kind == "dangling-target-dir":
        shutil.rmtree(db / "nodes" / T)
        (db / "nodes" / T).symlink_to(tmp / "missing-dir")
    elif kind == "dangling-portal-dir":
        shutil.rmtree(record.parent)
        record.parent.symlink_to(tmp / "missing-portal")


#: (show, update, delete, new) exit codes: iscsiadm's, iscsikit's.
DANGLING = {
    # libopeniscsiusr fails the show on the unreadable file (6); iscsikit: no record
    "dangling-record": ((6, 21, 21, 6), (21, 21, 21, 6)),  # -o new: "Could not open"
    # iscsiadm's update/delete fail on the unreadable directory (6); iscsikit: no record
    "dangling-target-dir": ((21, 6, 6, 6), (21, 21, 21, 6)),
    "dangling-portal-dir": ((21, 6, 6, 6), (21, 21, 21, 6)),
}


@pytest.mark.parametrize("kind", sorted(DANGLING))
def test_dangling_links_in_the_nodes_tree(base: Path, tmp_path: Path, kind: str) -> None:
    pair = Pair(base, tmp_path, None)
    _plant(pair.ora_db, kind, tmp_path / "ora-missing")
    _plant(pair.kit_db, kind, tmp_path / "kit-missing")
    codes: tuple[list[int], list[int]] = ([], [])
    for args in (SHOW, UPDATE, DELETE, NEW):
        theirs, ours = pair.both(*args)
        codes[0].append(theirs[0])
        codes[1].append(ours[0])
        assert ours[1] == b"" or args is SHOW
    assert (tuple(codes[0]), tuple(codes[1])) == DANGLING[kind]
    assert not (tmp_path / "kit-missing").exists()  # nothing created through the link
    assert not (tmp_path / "ora-missing").exists()
    # the other node: iscsikit shows it; iscsiadm too, except past a dangling record
    # file, which fails every show of its libopeniscsiusr (6)
    theirs, ours = pair.both("-m", "node", "-T", OTHER, "-p", PORTAL, "-o", "show")
    assert ours[0] == 0 and f"node.name = {OTHER}\n".encode() in ours[1]
    assert theirs[0] == (6 if kind == "dangling-record" else 0)
    if theirs[0] == 0:
        assert ours[1] == theirs[1]


def test_stray_entries(base: Path, tmp_path: Path) -> None:
    """Stray files in nodes/ and nodes/T/ make iscsiadm's show fail (1) and its update
    and delete fail (6); iscsikit reports and ignores them.  A stray directory where an
    iface file belongs is listed by iscsikit by its name (as every entry there)."""
    pair = Pair(base, tmp_path, None)
    for db in (pair.ora_db, pair.kit_db):
        (db / "nodes" / T / "strayfile").write_text("junk\n")
        (db / "nodes" / "strayfile2").write_text("junk\n")
    theirs, ours = pair.both(*SHOW)
    assert theirs[0] == 1 and ours[0] == 0 and f"node.name = {T}\n".encode() in ours[1]
    theirs, ours = pair.both(*UPDATE)
    assert theirs[0] == 6 and ours[0] == 0
    assert (pair.kit_db / "nodes" / T / "strayfile").read_text() == "junk\n"
    theirs, ours = pair.both(*DELETE)
    assert theirs[0] == 6 and ours[0] == 0
    assert (pair.kit_db / "nodes" / "strayfile2").read_text() == "junk\n"


# -- iface and discovery records (found by path by both tools) ------------------------


def test_damaged_discovery_record_is_found_by_its_path(base: Path, tmp_path: Path) -> None:
    """An emptied or garbage st_config: both tools find it by its directory (exit 0);
    iscsiadm shows the file's (empty) address, iscsikit the path's; what iscsikit
    writes on update reads back through iscsiadm with the path's address."""
    st = ("-m", "discoverydb", "-t", "st", "-p", "127.0.0.9")
    for damage in (b"", bytes(range(256)) * 3):
        pair = Pair(base, tmp_path / str(len(damage)), None)
        assert pair.theirs(*st, "-o", "new")[0] == 0
        shutil.rmtree(pair.kit_db)
        shutil.copytree(pair.ora_db, pair.kit_db, symlinks=True)
        rel = "send_targets/127.0.0.9,3260/st_config"
        for db in (pair.ora_db, pair.kit_db):
            (db / rel).write_bytes(damage)
        theirs, ours = pair.both(*st, "-o", "show")
        assert theirs[0] == ours[0] == 0
        assert b"discovery.sendtargets.address = 127.0.0.9\n" in ours[1]
        assert b"discovery.sendtargets.address = 127.0.0.9\n" not in theirs[1]
        update = (*st, "-o", "update", "-n", "discovery.startup", "-v", "automatic")
        assert pair.ours(*update)[0] == 0
        copy = tmp_path / f"st-readback-{len(damage)}"
        shutil.copytree(pair.kit_db, copy / "etc-iscsi", symlinks=True)
        Oracle(copy)
        code, out, _ = _oracle(copy, (*st, "-o", "show"))
        assert code == 0 and out == pair.ours(*st, "-o", "show")[1]
        assert b"discovery.startup = automatic\n" in out


def test_damaged_iface_files(base: Path, tmp_path: Path) -> None:
    """An iface file without its name line is that iface for both; an empty one is no
    iface for iscsiadm (show: 6) but one with the defaults for iscsikit (deliberate)."""
    pair = Pair(base, tmp_path, None)
    assert pair.theirs("-m", "iface", "-I", "ifx", "-o", "new")[0] == 0
    assert pair.theirs("-m", "iface", "-I", "ify", "-o", "new")[0] == 0
    shutil.rmtree(pair.kit_db)
    shutil.copytree(pair.ora_db, pair.kit_db, symlinks=True)
    for db in (pair.ora_db, pair.kit_db):
        ifx = db / "ifaces" / "ifx"
        ifx.write_bytes(_drop(b"iface.iscsi_ifacename")(ifx.read_bytes()))
        (db / "ifaces" / "ify").write_bytes(b"")
    theirs, ours = pair.both("-m", "iface", "-I", "ifx")
    assert (ours[0], ours[1]) == (theirs[0], theirs[1]) and ours[0] == 0
    theirs, ours = pair.both("-m", "iface", "-I", "ify")
    assert theirs[0] == 6 and ours[0] == 0
    # iscsikit's update of the empty file writes a whole record, which iscsiadm reads
    update = ("-m", "iface", "-I", "ify", "-o", "update", "-n", "iface.net_ifacename", "-v", "lo")
    assert pair.ours(*update)[0] == 0
    copy = tmp_path / "iface-readback"
    shutil.copytree(pair.kit_db, copy / "etc-iscsi", symlinks=True)
    Oracle(copy)
    code, out, _ = _oracle(copy, ("-m", "iface", "-I", "ify"))
    assert code == 0 and out == pair.ours("-m", "iface", "-I", "ify")[1]
    assert b"iface.iscsi_ifacename = ify\n" in out and b"iface.net_ifacename = lo\n" in out


def test_non_default_iface_files(base: Path, tmp_path: Path) -> None:
    """A record bound to another iface is that iface's record for both tools; a copy of
    the default record saved under another iface's name is no record of that iface
    (its file says default): iscsiadm shows it as a second default record and its
    delete by -T/-p fails on it (6); iscsikit leaves it out and deletes the real
    records only (docs/compatibility.md)."""
    pair = Pair(base, tmp_path, None)
    for args in (
        ("-m", "iface", "-I", "ifx", "-o", "new"),
        ("-m", "node", "-o", "new", "-T", T, "-p", f"{PORTAL},1", "-I", "ifx"),
    ):
        assert pair.theirs(*args)[0] == 0
    shutil.rmtree(pair.kit_db)
    shutil.copytree(pair.ora_db, pair.kit_db, symlinks=True)
    portal = f"nodes/{T}/{ADDRESS},3260,1"
    for db in (pair.ora_db, pair.kit_db):
        shutil.copy(db / portal / "default", db / portal / "ifz")
    with_ifx = (*SHOW, "-I", "ifx")
    theirs, ours = pair.both(*with_ifx)
    assert (ours[0], ours[1]) == (theirs[0], theirs[1]) and ours[0] == 0
    update = ("-m", "node", "-T", T, "-p", PORTAL, "-I", "ifx", "-o", "update")
    theirs, ours = pair.both(*update, "-n", "node.startup", "-v", "automatic")
    assert ours[0] == theirs[0] == 0
    shown = read_back(pair.kit_db, tmp_path, with_ifx)
    assert shown == read_back(pair.ora_db, tmp_path, with_ifx) and shown[0] == 0
    assert b"node.startup = automatic\n" in shown[1]
    # without -I: iscsiadm shows the copy too (as a second "default" record), iscsikit
    # the two records only
    theirs, ours = pair.both(*SHOW)
    assert theirs[0] == ours[0] == 0
    assert (theirs[1].count(b"# BEGIN RECORD"), ours[1].count(b"# BEGIN RECORD")) == (3, 2)
    theirs, ours = pair.both(*DELETE)
    assert theirs[0] == 6 and ours[0] == 0
    for db in (pair.ora_db, pair.kit_db):
        assert sorted(p.name for p in (db / portal).iterdir()) == ["ifz"]
