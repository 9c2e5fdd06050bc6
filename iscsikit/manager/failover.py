"""Which portal a session tries when its own does not answer: portal failover.

A target often listens on several portals of one portal group (two NICs, two
controllers).  A session is bound to its record's portal for the first login, as
iscsiadm does; when it has to log in again during recovery it starts from the
preferred portal (failing back once that one answers again, as iscsid falls back to
its ``failback_saddr``) and moves on to the next one after each failed attempt.

The order is linux-iscsi's ``iscsi.conf`` "Preferred network path" / "Portal Failover"
rule: the preferred portal first, then the portals in the preferred subnet, then the
rest in record order.  The preferences are ``failover.preferred_portal``
(``ip[:port]``), ``failover.preferred_subnet`` (``ip/prefix``) and ``failover`` (``yes``
/ ``no``, default yes) in iscsikit.conf (docs/configuration.md).  Pure functions; no I/O.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from iscsikit.errors import InvalidParameterError
from iscsikit.proto.address import Portal, parse_portal

__all__ = ["FailoverPreferences", "failover_order"]


@dataclass(frozen=True, slots=True)
class FailoverPreferences:
    enabled: bool = True
    portal: Portal | None = None
    subnet: ipaddress.IPv4Network | ipaddress.IPv6Network | None = None

    @classmethod
    def from_settings(cls, values: Mapping[str, str]) -> FailoverPreferences:
        """From iscsikit.conf's ``failover*`` keys (InvalidParameterError if malformed)."""
        enabled = values.get("failover", "yes").strip().lower()
        if enabled not in ("yes", "no"):
            raise InvalidParameterError(f"failover = {enabled!r}: yes or no")
        portal_text = values.get("failover.preferred_portal", "").strip()
        subnet_text = values.get("failover.preferred_subnet", "").strip()
        try:
            subnet = ipaddress.ip_network(subnet_text, strict=False) if subnet_text else None
        except ValueError as exc:
            raise InvalidParameterError(f"failover.preferred_subnet: {exc}") from None
        return cls(
            enabled=enabled == "yes",
            portal=parse_portal(portal_text) if portal_text else None,
            subnet=subnet,
        )


def _in_subnet(portal: Portal, prefs: FailoverPreferences) -> bool:
    if prefs.subnet is None:
        return False
    try:
        return ipaddress.ip_address(portal.host.strip("[]").split("%")[0]) in prefs.subnet
    except ValueError:  # a host name
        return False


def _is_preferred(portal: Portal, prefs: FailoverPreferences) -> bool:
    wanted = prefs.portal
    if wanted is None:
        return False
    same_host = portal.host.strip("[]") == wanted.host.strip("[]")
    return same_host and portal.port == wanted.port


def failover_order(
    primary: Portal, others: Iterable[Portal], prefs: FailoverPreferences = FailoverPreferences()
) -> tuple[Portal, ...]:
    """The portals a recovering session tries, in order, without repeats: the preferred
    portal, the preferred subnet's, then the rest (the record's own portal first among
    equals).  With failover off, only ``primary``."""
    if not prefs.enabled:
        return (primary,)
    seen: set[tuple[str, int]] = set()
    candidates: list[Portal] = []
    for portal in (primary, *others):
        key = (portal.host.strip("[]"), portal.port)
        if key not in seen:
            seen.add(key)
            candidates.append(portal)

    def rank(indexed: tuple[int, Portal]) -> tuple[int, int]:
        index, portal = indexed
        if _is_preferred(portal, prefs):
            return (0, index)
        if _in_subnet(portal, prefs):
            return (1, index)
        return (2, index)

    return tuple(p for _, p in sorted(enumerate(candidates), key=rank))
