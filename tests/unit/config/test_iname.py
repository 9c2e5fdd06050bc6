"""iscsikit-iname (iscsi-iname's options and output) and initiatorname.iscsi handling."""

from __future__ import annotations

import re
import stat
import threading
from pathlib import Path

import pytest

from iscsikit.config.iname import PREFIX_MAX_LEN, ensure_initiator_name
from iscsikit.config.initiatorname import (
    IQN_PREFIX,
    check_iscsi_name,
    read_initiator_alias,
    read_initiator_name,
)
from iscsikit.config.paths import resolve_paths
from iscsikit.errors import InvalidParameterError
from iscsikit.tools.iname import main


def test_default_output(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 0
    out = capsys.readouterr().out
    assert re.fullmatch(re.escape(IQN_PREFIX) + r":[0-9a-f]{12}\n", out)
    check_iscsi_name(out.strip())


def test_prefix_and_key(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["-g", "-p", "iqn.2016-04.com.open-iscsi"]) == 0
    assert re.fullmatch(
        r"InitiatorName=iqn\.2016-04\.com\.open-iscsi:[0-9a-f]{12}\n", capsys.readouterr().out
    )
    assert main(["--prefix=foo", "--generate-iname-prefix"]) == 0
    assert capsys.readouterr().out.startswith("InitiatorName=foo:")


def test_names_differ(capsys: pytest.CaptureFixture[str]) -> None:
    for _ in range(3):
        main([])
    assert len(set(capsys.readouterr().out.split())) == 3


def test_prefix_too_long(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["-p", "a" * PREFIX_MAX_LEN]) == 0
    capsys.readouterr()
    assert main(["-p", "a" * (PREFIX_MAX_LEN + 1)]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith("error: prefix too long\nUsage: iscsikit-iname [OPTIONS]\n")


@pytest.mark.parametrize(
    ("argv", "rc", "first"),
    [
        (["-h"], 0, "Usage: iscsikit-iname [OPTIONS]"),
        (["-x"], 1, "iscsikit-iname: option -x not recognized"),
        (["-p"], 1, "iscsikit-iname: option -p requires argument"),
        (["extra"], 1, "unknown argument(s)"),
    ],
)
def test_usage(argv: list[str], rc: int, first: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(argv) == rc
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.splitlines()[0] == first
    assert "where <prefix> has max length of 210" in captured.err


# -- initiatorname.iscsi ------------------------------------------------------------------


def test_ensure_creates_the_file(tmp_path: Path) -> None:
    paths = resolve_paths(root=tmp_path, env={})
    name = ensure_initiator_name(paths)
    check_iscsi_name(name)
    f = paths.initiatorname_file
    assert f.read_text() == f"InitiatorName={name}\n"
    assert stat.S_IMODE(f.stat().st_mode) == 0o644
    assert [p.name for p in f.parent.iterdir()] == ["initiatorname.iscsi"]  # no temp left
    assert ensure_initiator_name(paths) == name  # stable


def test_ensure_keeps_an_existing_name(tmp_path: Path) -> None:
    paths = resolve_paths(root=tmp_path, env={})
    paths.config_dir.mkdir(parents=True)
    paths.initiatorname_file.write_text(
        "## DO NOT EDIT\nInitiatorName=iqn.1993-08.org.debian:01:x\n"
    )
    assert ensure_initiator_name(paths) == "iqn.1993-08.org.debian:01:x"


def test_ensure_refuses_a_file_without_a_name(tmp_path: Path) -> None:
    paths = resolve_paths(root=tmp_path, env={})
    paths.config_dir.mkdir(parents=True)
    paths.initiatorname_file.write_text("InitiatorName = iqn.x:y\n")  # iscsid ignores this
    with pytest.raises(InvalidParameterError, match="no InitiatorName= line"):
        ensure_initiator_name(paths)
    assert paths.initiatorname_file.read_text() == "InitiatorName = iqn.x:y\n"


def test_ensure_concurrent_callers_agree(tmp_path: Path) -> None:
    paths = resolve_paths(root=tmp_path, env={})
    names: list[str] = []
    threads = [
        threading.Thread(target=lambda: names.append(ensure_initiator_name(paths)))
        for _ in range(8)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(names)) == 1 and len(names) == 8
    assert read_initiator_name(paths.initiatorname_file) == names[0]


def test_ensure_cli(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("ISCSIKIT_ROOT", str(tmp_path))
    assert main(["--ensure", "-p", "iqn.2004-10.com.example"]) == 0
    name = capsys.readouterr().out.strip()
    assert name.startswith("iqn.2004-10.com.example:")
    assert read_initiator_name(tmp_path / "etc/iscsi/initiatorname.iscsi") == name
    (tmp_path / "etc/iscsi/initiatorname.iscsi").write_text("garbage\n")
    assert main(["-e"]) == 7
    assert "no InitiatorName= line" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("text", "name"),
    [  # usr/idbm.c get_global_string_param
        ("InitiatorName=iqn.a:b\n", "iqn.a:b"),
        ("  \tInitiatorName=iqn.a:b trailing words\n", "iqn.a:b"),
        ("InitiatorName=iqn.a:1\nInitiatorName=iqn.a:2\n", "iqn.a:2"),  # last wins
        ("#InitiatorName=iqn.a:b\n", None),
        ("InitiatorName = iqn.a:b\n", None),
        ("InitiatorName=\n", None),
        ("InitiatorName=iqn.a:1\nInitiatorName=\n", "iqn.a:1"),
        ("", None),
    ],
)
def test_read_initiator_name(tmp_path: Path, text: str, name: str | None) -> None:
    f = tmp_path / "initiatorname.iscsi"
    f.write_text(text)
    assert read_initiator_name(f) == name


def test_read_initiator_name_and_alias(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ISCSIKIT_ROOT", str(tmp_path))
    assert read_initiator_name() is None
    f = tmp_path / "etc/iscsi/initiatorname.iscsi"
    f.parent.mkdir(parents=True)
    f.write_text("InitiatorName=iqn.a:b\nInitiatorAlias=host1\n")
    assert read_initiator_name() == "iqn.a:b"
    assert read_initiator_alias() == "host1"
