"""Moved: the ``iscsikit-nbd`` command is :mod:`iscsikit.tools.nbd`.

Kept only so that ``python -m iscsikit.nbd`` (:mod:`iscsikit.nbd.__main__`) runs until
that module imports :mod:`iscsikit.tools.nbd` itself; then delete this file (it imports
from a layer above :mod:`iscsikit.nbd`).
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["main"]


def main(argv: Sequence[str] | None = None) -> int:
    """:func:`iscsikit.tools.nbd.main`."""
    from iscsikit.tools.nbd import main as tool_main

    return tool_main(argv)
