"""``python -m iscsikit``: the same as ``iscsikit-adm``."""

from __future__ import annotations

from iscsikit.cli.main import run

if __name__ == "__main__":
    run()
