"""Location resolution: ISCSIKIT_ROOT prefixes everything; the database root's order."""

from __future__ import annotations

from pathlib import Path

import pytest

from iscsikit.config.paths import DB_SUBDIRS, resolve_paths, resolve_root
from iscsikit.errors import InvalidParameterError


def test_layout_under_root(tmp_path: Path) -> None:
    p = resolve_paths(root=tmp_path, env={})
    assert p.root == tmp_path
    assert p.config_dir == tmp_path / "etc/iscsi"
    assert p.iscsid_conf == tmp_path / "etc/iscsi/iscsid.conf"
    assert p.initiatorname_file == tmp_path / "etc/iscsi/initiatorname.iscsi"
    assert p.lock_dir == tmp_path / "run/lock/iscsi"
    assert p.lock_file == tmp_path / "run/lock/iscsi/lock"
    assert p.lock_write_file == tmp_path / "run/lock/iscsi/lock.write"
    assert p.run_dir == tmp_path / "run/iscsikit"
    assert p.iscsikit_conf == tmp_path / "etc/iscsikit/iscsikit.conf"
    # nothing anywhere: Debian 2.1.8's layout
    assert p.db_root == tmp_path / "etc/iscsi" and p.db_root_source == "detected"
    assert p.nodes_dir == p.db_root / "nodes"
    assert p.send_targets_dir == p.db_root / "send_targets"
    assert p.isns_dir == p.db_root / "isns"
    assert p.static_dir == p.db_root / "static"
    assert p.fw_dir == p.db_root / "fw"
    assert p.ifaces_dir == p.db_root / "ifaces"


def test_root_from_environment(tmp_path: Path) -> None:
    p = resolve_paths(env={"ISCSIKIT_ROOT": str(tmp_path)})
    assert p.root == tmp_path and p.config_dir == tmp_path / "etc/iscsi"
    assert resolve_root({}) == Path("/")
    assert resolve_root({"ISCSIKIT_ROOT": ""}) == Path("/")
    assert resolve_root({"ISCSIKIT_ROOT": "rel"}) == Path.cwd() / "rel"
    real = resolve_paths(env={})
    assert real.root == Path("/") and real.iscsid_conf == Path("/etc/iscsi/iscsid.conf")


@pytest.mark.parametrize("sub", DB_SUBDIRS)
def test_detects_var_lib_database(tmp_path: Path, sub: str) -> None:
    (tmp_path / "var/lib/iscsi" / sub).mkdir(parents=True)
    p = resolve_paths(root=tmp_path, env={})
    assert p.db_root == tmp_path / "var/lib/iscsi"
    assert p.config_dir == tmp_path / "etc/iscsi"  # config stays in /etc/iscsi


def test_etc_database_wins_over_var_lib(tmp_path: Path) -> None:
    (tmp_path / "var/lib/iscsi/nodes").mkdir(parents=True)
    (tmp_path / "etc/iscsi/ifaces").mkdir(parents=True)
    assert resolve_paths(root=tmp_path, env={}).db_root == tmp_path / "etc/iscsi"


def test_var_lib_without_database_is_ignored(tmp_path: Path) -> None:
    (tmp_path / "var/lib/iscsi").mkdir(parents=True)
    (tmp_path / "var/lib/iscsi/nodes").touch()  # a file is not a database directory
    assert resolve_paths(root=tmp_path, env={}).db_root == tmp_path / "etc/iscsi"


def test_iscsikit_conf_beats_detection(tmp_path: Path) -> None:
    (tmp_path / "etc/iscsi/nodes").mkdir(parents=True)
    conf = tmp_path / "etc/iscsikit/iscsikit.conf"
    conf.parent.mkdir(parents=True)
    conf.write_text("# iscsikit\ndb_root = /srv/iscsi   # inline comments are fine here\n")
    p = resolve_paths(root=tmp_path, env={})
    assert p.db_root == tmp_path / "srv/iscsi" and p.db_root_source == "iscsikit.conf"


def test_environment_beats_iscsikit_conf(tmp_path: Path) -> None:
    conf = tmp_path / "etc/iscsikit/iscsikit.conf"
    conf.parent.mkdir(parents=True)
    conf.write_text("db_root = /srv/iscsi\n")
    p = resolve_paths(root=tmp_path, env={"ISCSIKIT_DB_ROOT": "/var/lib/iscsi"})
    assert p.db_root == tmp_path / "var/lib/iscsi" and p.db_root_source == "environment"


def test_argument_beats_everything(tmp_path: Path) -> None:
    p = resolve_paths(
        root=tmp_path, db_root=tmp_path / "mine", env={"ISCSIKIT_DB_ROOT": "/var/lib/iscsi"}
    )
    assert p.db_root == tmp_path / "mine" and p.db_root_source == "argument"


def test_environment_root_prefixes_db_root(tmp_path: Path) -> None:
    env = {"ISCSIKIT_ROOT": str(tmp_path), "ISCSIKIT_DB_ROOT": "var/lib/iscsi"}
    assert resolve_paths(env=env).db_root == tmp_path / "var/lib/iscsi"


@pytest.mark.parametrize(
    "text",
    ["db_root = \n", "db_root = 1\ndb_root = 2\n", "[x\n", "db_root\n"],
)
def test_broken_iscsikit_conf(tmp_path: Path, text: str) -> None:
    conf = tmp_path / "etc/iscsikit/iscsikit.conf"
    conf.parent.mkdir(parents=True)
    conf.write_text(text)
    with pytest.raises(InvalidParameterError, match=r"iscsikit\.conf"):
        resolve_paths(root=tmp_path, env={})


def test_iscsikit_conf_without_db_root(tmp_path: Path) -> None:
    conf = tmp_path / "etc/iscsikit/iscsikit.conf"
    conf.parent.mkdir(parents=True)
    conf.write_text("other = 1\n")
    assert resolve_paths(root=tmp_path, env={}).db_root_source == "detected"
