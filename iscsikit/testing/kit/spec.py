"""What the kit logs in with: the initiator, the bounds, and the ConnectSpec of each login.

Driver-neutral: a :class:`SpecFactory` builds plain :class:`~iscsikit.plugin.ConnectSpec`
values against a :class:`~iscsikit.testing.kit.KitTarget`, as the session manager would
for one attempt (random ISID unless one is given, the driver's declared binding).
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from iscsikit.errors import IscsiErr
from iscsikit.plugin import ConnectSpec, Timeouts
from iscsikit.proto.address import Portal
from iscsikit.proto.login import ChapSecrets, LoginConfig

from .target import KIT_IQN, KitTarget

__all__ = ["CONNECTION_CODES", "INITIATOR", "KIT_TIMEOUTS", "SpecFactory", "new_isid"]

#: The initiator name every kit login uses.
INITIATOR = f"{KIT_IQN}:initiator"

#: Short bounds: a conformant driver answers a loopback peer in well under a second.
KIT_TIMEOUTS = Timeouts(login=10.0, logout=5.0, response=5.0)

#: The codes a failed connection may carry (iscsiadm's "encountered connection failure",
#: and "session is not connected" for a driver that checks before sending).
CONNECTION_CODES = frozenset({IscsiErr.TRANS, IscsiErr.SESSION_NOT_CONNECTED})


def new_isid() -> bytes:
    """A random ISID of type 0x80 (RFC 7143 §10.12.5: random qualifier)."""
    return b"\x80" + os.urandom(5)


class SpecFactory:
    """Builds the :class:`ConnectSpec` of one kit login (or discovery) against a KitTarget."""

    def __init__(
        self, target: KitTarget, binding: Mapping[str, str], timeouts: Timeouts = KIT_TIMEOUTS
    ) -> None:
        self.target = target
        self.binding = dict(binding)
        self.timeouts = timeouts

    def __call__(
        self,
        target_name: str | None,
        *,
        chap: ChapSecrets | None = None,
        isid: bytes | None = None,
        portal: Portal | None = None,
        binding: Mapping[str, str] | None = None,
    ) -> ConnectSpec:
        login = LoginConfig(
            initiator_name=INITIATOR,
            isid=isid or new_isid(),
            target_name=target_name,
            chap=chap,
        )
        return ConnectSpec(
            portal or self.target.portal,
            login,
            self.timeouts,
            binding=self.binding if binding is None else dict(binding),
        )
