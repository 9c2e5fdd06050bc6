"""``-o update`` refuses a value with a line break in every record mode (exit 7) and
leaves the record file as it was: iscsiadm writes such a value as it is, which plants
the text after the break as a line of its own (docs/compatibility.md)."""

from __future__ import annotations

from pathlib import Path

import pytest

from iscsikit.cli.env import CliEnv
from iscsikit.cli.main import main

T = "iqn.2024-01.test:lines"
INJECTED = "x\nnode.session.auth.password = planted"


def run(root: Path, *argv: str) -> tuple[int, str]:
    env = CliEnv.for_test(root)
    code = main(list(argv), env=env)
    return code, env.stderr.getvalue()  # type: ignore[attr-defined]


def tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}


@pytest.mark.parametrize(
    ("setup", "update"),
    [
        (
            ("-m", "node", "-o", "new", "-T", T, "-p", "127.0.0.1:3260"),
            ("-m", "node", "-T", T, "-p", "127.0.0.1:3260", "-o", "update",
             "-n", "node.session.auth.username"),
        ),
        (
            ("-m", "iface", "-I", "ifl", "-o", "new"),
            ("-m", "iface", "-I", "ifl", "-o", "update", "-n", "iface.initiatorname"),
        ),
        (
            ("-m", "discoverydb", "-t", "st", "-p", "127.0.0.1", "-o", "new"),
            ("-m", "discoverydb", "-t", "st", "-p", "127.0.0.1", "-o", "update",
             "-n", "discovery.sendtargets.auth.username"),
        ),
    ],
    ids=["node", "iface", "discoverydb"],
)  # fmt: skip
def test_line_break_refused_and_nothing_written(
    tmp_path: Path, setup: tuple[str, ...], update: tuple[str, ...]
) -> None:
    assert run(tmp_path, *setup)[0] == 0
    before = tree(tmp_path / "etc")
    code, err = run(tmp_path, *update, "-v", INJECTED)
    assert code == 7
    assert "must be a single line" in err
    assert tree(tmp_path / "etc") == before
    assert all(b"planted" not in data for data in before.values())
