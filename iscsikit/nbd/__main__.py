"""``python -m iscsikit.nbd``: the ``iscsikit-nbd`` command."""

from __future__ import annotations

from iscsikit.tools.nbd import main

raise SystemExit(main())
