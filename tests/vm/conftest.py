"""The VM tier's guest tests (docs/vm-tier.md): collected only inside the guest.

``python -m iscsikit.testing.vm`` (``tox -e vm``) boots Debian's kernel under qemu and runs
``pytest tests/vm`` there with ``ISCSIKIT_VM_GUEST=1``.  Anywhere else -- the default
``pytest`` run on the host included -- this directory collects nothing: these tests load
kernel modules and log the kernel in, which only a throw-away guest may do.
"""

from __future__ import annotations

import os

collect_ignore_glob = [] if os.environ.get("ISCSIKIT_VM_GUEST") == "1" else ["*.py"]
