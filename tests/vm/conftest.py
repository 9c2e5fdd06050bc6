"""The VM tier's guest tests (docs/vm-tier.md): collected only inside the guest.

``python -m iscsikit.testing.vm`` (``tox -e vm``) boots Debian's kernel under qemu and runs
``pytest tests/vm`` there with ``ISCSIKIT_VM_GUEST=1``.  Anywhere else -- the default
``pytest`` run on the host included -- this directory collects nothing: these tests load
kernel modules and log the kernel in, which only a throw-away guest may do.

Shared fixtures: :func:`iscsid` (open-iscsi's daemon for a module's tests).
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from iscsikit.testing.vmguest.checks import kernel_initiator
from iscsikit.testing.vmguest.iscsid import iscsid_running

collect_ignore_glob = [] if os.environ.get("ISCSIKIT_VM_GUEST") == "1" else ["*.py"]

#: Files whose tests leave state in the guest that later tests would trip over: after
#: dm-multipath made a map of a WWID, multipath-tools' udev rules (``multipath -u``) go
#: on claiming disks with that WWID -- and every tgtd gives its tid 1 LUN 1 the same
#: WWID -- so udev makes no partition links for them.  They run after all the others.
RUN_LAST = ("test_multipath.py", "test_os_brick_multipath.py")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    items.sort(key=lambda item: item.path.name in RUN_LAST)  # stable: file order otherwise


@pytest.fixture(scope="module")
def iscsid(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[None]:
    """open-iscsi's ``iscsid -f`` for the module's tests, stopped after them.

    The kernel initiator is readied first with the module's ``INITIATOR`` name when it
    has one (iscsid reads /etc/iscsi/initiatorname.iscsi once, at start-up).
    """
    name = getattr(request.module, "INITIATOR", None)
    if isinstance(name, str):
        kernel_initiator(name)
    with iscsid_running(tmp_path_factory.mktemp("iscsid") / "iscsid.log"):
        yield
