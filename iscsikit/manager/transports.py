"""Which driver logs a record in: the rule from a record's ``iface.transport_name`` to a
registered transport driver.

open-iscsi names transports as the kernel does (``tcp``, ``iser``, ``bnx2i``, ...); a
driver plugin registers under the same name when it drives that kernel transport, and the
userspace TCP driver is ``usertcp``.  The rule (docs/configuration.md):

* ``tcp`` (the ``default`` iface): the kernel's iscsi_tcp when a driver named ``tcp`` is
  registered *and* the kernel offers the transport (``/sys/class/iscsi_transport/tcp``,
  or the ``iscsi_tcp`` module can be loaded), else the userspace driver.  iscsikit.conf's
  ``transport.tcp = auto | kernel | usertcp`` overrides it (``kernel`` without the
  kernel transport fails with 12, "Could not load transport");
* ``usertcp``: the userspace driver;
* any other name: the driver registered under that name, else 12.

Pure: the caller says what is registered and what the kernel offers.  No I/O.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping

from iscsikit.errors import InvalidParameterError, TransportNotFoundError

__all__ = ["TCP_CHOICES", "USERSPACE", "choose_driver"]

#: The userspace TCP driver's name.
USERSPACE = "usertcp"
#: Values of iscsikit.conf's ``transport.tcp``.
TCP_CHOICES = ("auto", "kernel", "usertcp")


def _not_found(name: str) -> TransportNotFoundError:
    return TransportNotFoundError(f"Could not load transport {name}. Dropping request.")


def choose_driver(
    iface_transport: str,
    *,
    registered: Collection[str],
    kernel_transports: Collection[str],
    settings: Mapping[str, str] | None = None,
) -> str:
    """The driver name for a record whose ``iface.transport_name`` is
    ``iface_transport`` (empty: ``tcp``).  ``registered``: driver names in the registry;
    ``kernel_transports``: transports the kernel offers; ``settings``: iscsikit.conf."""
    name = iface_transport or "tcp"
    if name == USERSPACE:
        if USERSPACE not in registered:
            raise _not_found(name)
        return USERSPACE
    if name != "tcp":
        if name in registered:
            return name
        raise _not_found(name)
    choice = (settings or {}).get("transport.tcp", "auto").strip().lower() or "auto"
    if choice not in TCP_CHOICES:
        raise InvalidParameterError(f"transport.tcp = {choice!r}: one of {', '.join(TCP_CHOICES)}")
    kernel = "tcp" in registered and "tcp" in kernel_transports
    if choice == "kernel" or (choice == "auto" and kernel):
        if not kernel:
            raise _not_found("tcp")
        return "tcp"
    if USERSPACE not in registered:
        raise _not_found(name)
    return USERSPACE
