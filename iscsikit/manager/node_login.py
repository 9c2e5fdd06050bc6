"""A node record's login: what ``iscsiadm -m node -T ... -p ... --login`` would negotiate.

:func:`login_arguments` turns a :class:`~iscsikit.records.model.NodeRecord` into the
arguments of :func:`iscsikit.login`: the portal and target, CHAP (one-way or mutual,
with ``chap_algs``), the operational keys iscsid offers from the record
(``node.session.iscsi.*``, ``node.conn[0].iscsi.*``), the queue depth
(``node.session.cmds_max``) and every timer the data path obeys
(``node.conn[0].timeo.*``, ``node.session.err_timeo.*``).  Policy only: no I/O.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from iscsikit.errors import InvalidParameterError
from iscsikit.manager.spec import Chap, SessionSettings, session_settings
from iscsikit.net.connection import BINDING_KEYS
from iscsikit.proto.address import parse_portal
from iscsikit.proto.ffp import Timers
from iscsikit.records.model import NodeRecord

#: Operational keys iscsid sends from the record (usr/initiator_common.c).
_SESSION_KEYS = (
    "InitialR2T",
    "ImmediateData",
    "FirstBurstLength",
    "MaxBurstLength",
    "MaxOutstandingR2T",
    "DefaultTime2Wait",
    "DefaultTime2Retain",
)
_CONN_KEYS = ("MaxRecvDataSegmentLength",)


def _number(node: NodeRecord, key: str, fallback: float) -> float:
    text = node.get(key).strip()
    if not text:
        return fallback
    try:
        return float(int(text))
    except ValueError:
        raise InvalidParameterError(f"{key} = {text!r} is not a number") from None


def timers_of(node: NodeRecord) -> Timers:
    """The Full Feature Phase timers a node record asks for (0 disables, as in iscsid)."""
    interval = _number(node, "node.conn[0].timeo.noop_out_interval", 5)
    timeout = _number(node, "node.conn[0].timeo.noop_out_timeout", 5)
    if interval and not timeout:
        timeout = 5  # iscsid: an interval without a timeout gets the default timeout
    return Timers(
        noop_out_interval=interval,
        noop_out_timeout=timeout,
        abort_timeout=_number(node, "node.session.err_timeo.abort_timeout", 15),
        lu_reset_timeout=_number(node, "node.session.err_timeo.lu_reset_timeout", 30),
        tgt_reset_timeout=_number(node, "node.session.err_timeo.tgt_reset_timeout", 30),
        logout_timeout=_number(node, "node.conn[0].timeo.logout_timeout", 15) or 15,
    )


def chap_of(node: NodeRecord) -> Chap | None:
    """The node's CHAP credentials (:meth:`Chap.from_record`: a password means CHAP)."""
    algorithms = node.get("node.session.auth.chap_algs")
    return Chap.from_record(node.get, "node.session.auth.", algorithms)


def login_arguments(node: NodeRecord) -> tuple[str, str, dict[str, Any]]:
    """``(portal, target, keyword arguments)`` for :func:`iscsikit.login`."""
    keys: dict[str, Any] = {}
    for key in _SESSION_KEYS:
        if value := node.get(f"node.session.iscsi.{key}").strip():
            keys[key] = value
    for key in _CONN_KEYS:
        if value := node.get(f"node.conn[0].iscsi.{key}").strip():
            keys[key] = value
    header = node.get("node.conn[0].iscsi.HeaderDigest").strip() or "None"
    data = node.get("node.conn[0].iscsi.DataDigest").strip() or "None"
    keys.update(
        chap=chap_of(node),
        header_digest=header,
        data_digest=data,
        timeout=_number(node, "node.conn[0].timeo.login_timeout", 15) or 15,
        logout_timeout=_number(node, "node.conn[0].timeo.logout_timeout", 15) or 15,
        queue_depth=int(_number(node, "node.session.cmds_max", 128)) or 128,
        timers=timers_of(node),
    )
    initiator = node.get("iface.initiatorname").strip()
    if initiator:
        keys["initiator_name"] = initiator
    return node.portal, node.target, keys


def binding_of(node: NodeRecord) -> dict[str, str]:
    """The iface binding of ``node`` (``iface.hwaddress``, ``iface.net_ifacename``,
    ``iface.ipaddress``), the keys that are set: what a TCP driver binds its socket to
    (:func:`iscsikit.net.connection.socket_binding`)."""
    values = ((key, node.get(key).strip()) for key in BINDING_KEYS)
    return {key: value for key, value in values if value not in ("", "default", "<empty>")}


def node_settings(node: NodeRecord, *, transport: str = "usertcp") -> SessionSettings:
    """The settings of every login of a session made from ``node``: what
    :func:`login_arguments` gives, plus the recovery timer
    (``node.session.timeo.replacement_timeout``), the initial login's retries
    (``node.session.initial_login_retry_max``) and the iface binding
    (:func:`binding_of`)."""
    portal, target, arguments = login_arguments(node)
    settings = session_settings(
        parse_portal(portal),
        target,
        transport=transport,
        retries=int(_number(node, "node.session.initial_login_retry_max", 8)),
        replacement_timeout=_number(node, "node.session.timeo.replacement_timeout", 120),
        **arguments,
    )
    return dataclasses.replace(settings, binding=binding_of(node)).with_record(node.values)


__all__ = ["binding_of", "chap_of", "login_arguments", "node_settings", "timers_of"]
