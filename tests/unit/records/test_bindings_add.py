"""Bindings.add: bindings with their own ids (a migration keeps linux-iscsi's)."""

from __future__ import annotations

from pathlib import Path

from iscsikit.records.bindings import Binding, Bindings


def test_add_keeps_ids_refuses_conflicts_and_skips_what_is_there(tmp_path: Path) -> None:
    bindings = Bindings.under(tmp_path)
    assert bindings.bind("iqn.t:first") == Binding(0, 0, "iqn.t:first")
    refused = bindings.add(
        [
            Binding(0, 0, "iqn.t:first"),  # already so: neither added nor refused
            Binding(2, 7, "iqn.t:kept"),
            Binding(0, 0, "iqn.t:clash"),  # id taken by another name
            Binding(3, 3, "iqn.t:first"),  # name bound elsewhere
        ]
    )
    assert refused == [
        (Binding(0, 0, "iqn.t:clash"), "0 0 is bound to iqn.t:first"),
        (Binding(3, 3, "iqn.t:first"), "already bound to 0 0"),
    ]
    assert bindings.read() == [Binding(0, 0, "iqn.t:first"), Binding(2, 7, "iqn.t:kept")]
    assert bindings.bind("iqn.t:next") == Binding(0, 1, "iqn.t:next")


def test_a_dry_run_adds_nothing_and_creates_nothing(tmp_path: Path) -> None:
    bindings = Bindings.under(tmp_path)
    assert bindings.add([Binding(1, 1, "iqn.t:x")], dry_run=True) == []
    assert not bindings.path.parent.exists()
