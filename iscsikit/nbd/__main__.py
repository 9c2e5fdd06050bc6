"""``python -m iscsikit.nbd``: the ``iscsikit-nbd`` command."""

from __future__ import annotations

from iscsikit.nbd.cli import main

raise SystemExit(main())
