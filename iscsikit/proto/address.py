"""Portal and TargetAddress syntax: parsing and printing, nothing else.

RFC 7143 §13.8: ``TargetAddress=domainname[:port][,portal-group-tag]`` where an IPv6
literal is written in brackets.  iscsikit prints portals the way iscsiadm does:
``ip:port`` and ``[ipv6]:port``.  No name resolution happens here (that is I/O).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from iscsikit.errors import InvalidParameterError

#: The IANA well-known iSCSI port (RFC 7143 §13.8).
DEFAULT_PORT = 3260


@dataclass(frozen=True, slots=True)
class Portal:
    """A network portal: a host (IP literal or name) and a TCP port."""

    host: str
    port: int = DEFAULT_PORT

    @property
    def is_ipv6(self) -> bool:
        return ":" in self.host

    def __str__(self) -> str:
        return format_portal(self.host, self.port)


def format_portal(host: str, port: int) -> str:
    """``ip:port``, or ``[addr]:port`` for IPv6 (an optional ``%zone`` is kept)."""
    if ":" in host:
        return f"[{host}]:{port}"
    return f"{host}:{port}"


def _check_host(host: str, text: str, *, ipv6: bool = False) -> str:
    if not host:
        raise InvalidParameterError(f"invalid portal {text!r}: empty address")
    if ipv6 or ":" in host:
        bare = host.split("%", 1)[0]
        try:
            ipaddress.IPv6Address(bare)
        except ValueError:
            raise InvalidParameterError(
                f"invalid portal {text!r}: {host!r} is not an IPv6 address"
            ) from None
    elif any(c.isspace() or c in "[]/,\0" for c in host):
        raise InvalidParameterError(f"invalid portal {text!r}: bad host name {host!r}")
    return host


def _check_port(port_text: str, text: str) -> int:
    if not port_text.isdigit():
        raise InvalidParameterError(f"invalid portal {text!r}: bad port {port_text!r}")
    port = int(port_text)
    if not 0 < port < 65536:
        raise InvalidParameterError(f"invalid portal {text!r}: port {port} out of range")
    return port


def parse_address(text: str, default_port: int = DEFAULT_PORT) -> tuple[Portal, int | None]:
    """Parse ``host[:port][,tpgt]`` (host may be ``[ipv6]`` or a bare IPv6 literal).

    Returns the portal and the portal group tag (None when absent).  A bare IPv6
    literal without brackets (``fe80::1``) is accepted, as iscsiadm does, and then
    carries no port.
    """
    original = text
    text = text.strip()
    tpgt: int | None = None
    if "," in text:
        text, _, tag = text.rpartition(",")
        tag = tag.strip()
        if not tag.lstrip("-").isdigit():
            raise InvalidParameterError(f"invalid portal {original!r}: bad tpgt {tag!r}")
        tpgt = int(tag)
        if not -1 <= tpgt <= 0xFFFF:
            raise InvalidParameterError(f"invalid portal {original!r}: tpgt {tpgt} out of range")
    if text.startswith("["):
        host, sep, rest = text[1:].partition("]")
        if not sep:
            raise InvalidParameterError(f"invalid portal {original!r}: missing ']'")
        if rest and not rest.startswith(":"):
            raise InvalidParameterError(f"invalid portal {original!r}: junk after ']'")
        port = _check_port(rest[1:], original) if rest else default_port
        return Portal(_check_host(host, original, ipv6=True), port), tpgt
    if text.count(":") > 1:
        # Bare IPv6 literal, no port possible.
        return Portal(_check_host(text, original), default_port), tpgt
    host, sep, port_text = text.partition(":")
    port = _check_port(port_text, original) if sep else default_port
    return Portal(_check_host(host, original), port), tpgt


def parse_portal(text: str | Portal, default_port: int = DEFAULT_PORT) -> Portal:
    """Parse ``host[:port]``; a ``,tpgt`` suffix is refused (use :func:`parse_address`)."""
    if isinstance(text, Portal):
        return text
    portal, tpgt = parse_address(text, default_port)
    if tpgt is not None:
        raise InvalidParameterError(f"invalid portal {text!r}: unexpected portal group tag")
    return portal
